//! Webhook tools against a real HTTP server on loopback: what the business's endpoint
//! receives (arguments, method, signature it can verify on its own), and how every failure
//! becomes a sentence for the agent instead of an error for the call.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use sha2::Sha256;

use hermes_core::call::ToolCall;
use hermes_core::config::{Business, Tools, WebhookTool};
use hermes_core::units::Millis;
use hermes_io::net::http::HttpClient;
use hermes_io::tools::webhooks::WebhookTools;
use hermes_io::tools::{CallParties, ProfileTools, ToolOutcome, ToolRunner};

const SECRET: &str = "whsec-test-0123456789";

/// One request as the business's server saw it.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    target: String,
    headers: hyper::HeaderMap,
    body: Bytes,
}

/// A business endpoint: `/points` answers, `/slow` stalls, `/missing` is a 404 with a
/// message, `/broken` a 500 with internals, `/huge` a 200 longer than a tool result may be.
async fn business_server() -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let log = log.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let log = log.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body =
                                body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            let target =
                                parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
                            log.lock().expect("log").push(Seen {
                                method: parts.method.to_string(),
                                target: target.clone(),
                                headers: parts.headers,
                                body,
                            });
                            let (status, text) = match parts.uri.path() {
                                "/points" => (StatusCode::OK, r#"{"points": 120}"#.to_string()),
                                "/slow" => {
                                    tokio::time::sleep(Duration::from_secs(30)).await;
                                    (StatusCode::OK, "{}".to_string())
                                }
                                "/missing" => (
                                    StatusCode::NOT_FOUND,
                                    r#"{"error": "No member with that phone number."}"#.to_string(),
                                ),
                                "/broken" => (
                                    StatusCode::INTERNAL_SERVER_ERROR,
                                    r#"{"error": "NullPointerException at db.LoyaltyRepo"}"#
                                        .to_string(),
                                ),
                                "/huge" => (StatusCode::OK, "x".repeat(100 * 1024)),
                                _ => (StatusCode::NOT_FOUND, String::new()),
                            };
                            let mut response = Response::new(Full::new(Bytes::from(text)));
                            *response.status_mut() = status;
                            Ok::<_, Infallible>(response)
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (base, seen)
}

fn points_schema() -> Value {
    json!({
        "type": "object",
        "required": ["phone"],
        "properties": {
            "phone": {"type": "string", "pattern": "^\\+[0-9]{8,15}$"},
            "include_history": {"type": "boolean"}
        },
        "additionalProperties": false
    })
}

fn hook(name: &str, url: String, method: &str, secret: bool) -> WebhookTool {
    WebhookTool {
        name: name.into(),
        description: "Loyalty points by phone number.".into(),
        url,
        method: method.into(),
        timeout_ms: Millis(300),
        secret_env: if secret { "POINTS_SECRET".into() } else { String::new() },
        parameters: points_schema(),
        ..WebhookTool::default()
    }
}

fn env(name: &str) -> Option<String> {
    (name == "POINTS_SECRET").then(|| SECRET.to_string())
}

fn runner(hooks: Vec<WebhookTool>) -> WebhookTools {
    let tools = Tools { webhook: hooks, ..Tools::default() };
    let builtin = Arc::new(ProfileTools::new(Business::default()));
    let http = HttpClient::new(Duration::from_secs(5)).expect("http client");
    WebhookTools::new(&tools, builtin, &http, &env).expect("webhook tools")
}

async fn call(tools: &WebhookTools, name: &str, arguments: Value) -> ToolOutcome {
    let call =
        ToolCall { id: "toolu_1".into(), name: name.into(), arguments: arguments.to_string() };
    let parties = CallParties { call_id: "call-42".into(), ..CallParties::default() };
    tools.run(call, parties).await
}

/// What a business would write to check a request: recompute the HMAC from the secret and
/// compare, independently of Hermes's own signing code.
fn verify(seen: &Seen) -> bool {
    let Some(header) = seen.headers.get("x-hermes-signature").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some((t, v1)) = header.strip_prefix("t=").and_then(|rest| rest.split_once(",v1=")) else {
        return false;
    };
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(format!("{t}.{}.{}.", seen.method, seen.target).as_bytes());
    mac.update(&seen.body);
    let Ok(given) = hex::decode(v1) else { return false };
    mac.verify_slice(&given).is_ok()
}

fn only_request(seen: &Mutex<Vec<Seen>>) -> Seen {
    let seen = seen.lock().expect("log");
    assert_eq!(seen.len(), 1, "exactly one request: {seen:?}");
    seen[0].clone()
}

#[tokio::test]
async fn a_post_sends_the_checked_arguments_signed_so_the_business_can_verify_them() {
    let (base, seen) = business_server().await;
    let tools = runner(vec![hook("loyalty_points", format!("{base}/points"), "POST", true)]);

    let outcome = call(&tools, "loyalty_points", json!({"phone": "+15551234567"})).await;

    assert_eq!(outcome, ToolOutcome::ok(r#"{"points": 120}"#));
    let request = only_request(&seen);
    assert_eq!(request.method, "POST");
    assert_eq!(request.target, "/points");
    let body: Value = serde_json::from_slice(&request.body).expect("JSON body");
    assert_eq!(body, json!({"phone": "+15551234567"}));
    assert_eq!(request.headers["content-type"], "application/json");
    assert_eq!(request.headers["x-hermes-tool"], "loyalty_points");
    assert_eq!(request.headers["x-hermes-call-id"], "call-42");
    assert!(verify(&request), "signature does not verify: {:?}", request.headers);

    // The same request with one byte of the body changed would not verify.
    let mut tampered = request.clone();
    let altered: Vec<u8> = request.body.iter().map(|&b| if b == b'5' { b'6' } else { b }).collect();
    tampered.body = Bytes::from(altered);
    assert!(!verify(&tampered), "a tampered body must not verify");
}

#[tokio::test]
async fn a_get_sends_the_arguments_as_query_parameters_and_signs_the_query() {
    let (base, seen) = business_server().await;
    let tools = runner(vec![hook("loyalty_points", format!("{base}/points?v=2"), "GET", true)]);

    let outcome =
        call(&tools, "loyalty_points", json!({"phone": "+15551234567", "include_history": true}))
            .await;

    assert!(!outcome.is_error, "{outcome:?}");
    let request = only_request(&seen);
    assert_eq!(request.method, "GET");
    assert_eq!(request.target, "/points?v=2&include_history=true&phone=%2B15551234567");
    assert!(request.body.is_empty());
    assert!(verify(&request), "signature does not verify: {:?}", request.headers);
}

#[tokio::test]
async fn an_unsigned_tool_sends_no_signature_header() {
    let (base, seen) = business_server().await;
    let tools = runner(vec![hook("loyalty_points", format!("{base}/points"), "PUT", false)]);

    let outcome = call(&tools, "loyalty_points", json!({"phone": "+15551234567"})).await;

    assert!(!outcome.is_error, "{outcome:?}");
    let request = only_request(&seen);
    assert_eq!(request.method, "PUT");
    assert!(request.headers.get("x-hermes-signature").is_none());
}

#[tokio::test]
async fn arguments_that_break_the_schema_are_refused_before_any_request_without_echoing_them() {
    let (base, seen) = business_server().await;
    let tools = runner(vec![hook("loyalty_points", format!("{base}/points"), "POST", true)]);

    let missing = call(&tools, "loyalty_points", json!({"include_history": "yes"})).await;
    let malformed = call(&tools, "loyalty_points", json!({"phone": "555-CALL-NOW"})).await;
    let extra =
        call(&tools, "loyalty_points", json!({"phone": "+15551234567", "pin": "8812"})).await;
    let not_json = tools
        .run(
            ToolCall { id: "t".into(), name: "loyalty_points".into(), arguments: "{phone:".into() },
            CallParties::default(),
        )
        .await;

    assert!(seen.lock().expect("log").is_empty(), "no request may leave with bad arguments");
    for outcome in [&missing, &malformed, &extra, &not_json] {
        assert!(outcome.is_error, "{outcome:?}");
        assert!(
            outcome.output.starts_with("Sorry, I need a bit more information"),
            "a sentence the agent can say: {}",
            outcome.output
        );
    }
    assert!(missing.output.contains("\"phone\" is a required property"), "{}", missing.output);
    assert!(
        missing.output.contains("include_history"),
        "names the wrong field: {}",
        missing.output
    );
    assert!(malformed.output.contains("phone:"), "names the field: {}", malformed.output);
    assert!(
        !malformed.output.contains("555-CALL-NOW"),
        "echoes the caller's value: {}",
        malformed.output
    );
    assert!(extra.output.contains("pin"), "names the unexpected field: {}", extra.output);
    assert!(!extra.output.contains("8812"), "echoes the caller's value: {}", extra.output);
    assert!(not_json.output.contains("not JSON"), "{}", not_json.output);
}

#[tokio::test]
async fn a_webhook_slower_than_its_timeout_becomes_a_sentence_not_a_stuck_call() {
    let (base, _seen) = business_server().await;
    let tools = runner(vec![hook("loyalty_points", format!("{base}/slow"), "POST", false)]);

    let started = Instant::now();
    let outcome = call(&tools, "loyalty_points", json!({"phone": "+15551234567"})).await;

    assert!(outcome.is_error);
    assert!(
        outcome.output.starts_with("Sorry, I couldn't get an answer from our system in time"),
        "{}",
        outcome.output
    );
    assert!(started.elapsed() < Duration::from_secs(20), "gave up long before the server answered");
    assert_eq!(tools.counters().timeouts.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[tokio::test]
async fn error_answers_become_sentences_and_only_client_errors_lend_their_message() {
    let (base, _seen) = business_server().await;
    let tools = runner(vec![
        hook("missing", format!("{base}/missing"), "POST", false),
        hook("broken", format!("{base}/broken"), "POST", false),
        hook("huge", format!("{base}/huge"), "POST", false),
    ]);
    let args = json!({"phone": "+15551234567"});

    let missing = call(&tools, "missing", args.clone()).await;
    let broken = call(&tools, "broken", args.clone()).await;
    let huge = call(&tools, "huge", args).await;

    assert!(missing.is_error && broken.is_error && huge.is_error);
    assert_eq!(
        missing.output,
        "Sorry, I couldn't do that: No member with that phone number. (missing answered HTTP 404)"
    );
    assert!(
        broken.output.starts_with("Sorry, I couldn't get that done just now"),
        "{}",
        broken.output
    );
    assert!(
        !broken.output.contains("NullPointer"),
        "server internals reach the caller: {}",
        broken.output
    );
    assert!(huge.output.contains("more than 64 KiB"), "{}", huge.output);
    assert!(huge.output.len() < 300, "the oversized body itself is not passed on");
}

#[tokio::test]
async fn an_unreachable_webhook_is_a_sentence_and_other_tools_still_work() {
    // A port nobody listens on: bind, read the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let tools = runner(vec![hook(
        "loyalty_points",
        format!("http://127.0.0.1:{port}/points"),
        "POST",
        false,
    )]);

    let down = call(&tools, "loyalty_points", json!({"phone": "+15551234567"})).await;
    let builtin = call(&tools, "business_info", json!({"topic": "hours"})).await;

    assert!(down.is_error);
    assert!(
        down.output.starts_with("Sorry, I can't reach our system right now"),
        "{}",
        down.output
    );
    assert!(
        !down.output.contains(&port.to_string()),
        "the URL is not for the caller: {}",
        down.output
    );
    assert!(!builtin.is_error, "built-in tools go to the wrapped runner: {builtin:?}");
}

#[test]
fn a_signing_secret_that_is_not_set_stops_start_up_naming_the_field() {
    let mut unset = hook("loyalty_points", "http://127.0.0.1:9/points".into(), "POST", true);
    unset.secret_env = "UNSET_SECRET".into();
    let tools = Tools {
        webhook: vec![hook("other", "http://127.0.0.1:9/x".into(), "GET", false), unset],
        ..Tools::default()
    };
    let http = HttpClient::new(Duration::from_secs(5)).expect("http client");
    let builtin = Arc::new(ProfileTools::new(Business::default()));

    let err = WebhookTools::new(&tools, builtin, &http, &env).expect_err("unset secret");

    assert_eq!(err.field, "tools.webhook[1].secret_env");
    assert!(err.to_string().contains("UNSET_SECRET is not set"), "{err}");
}
