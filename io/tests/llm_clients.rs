//! The LLM clients against the fake providers (real HTTP on loopback, real SSE): requests in
//! the providers' shapes, streamed text and tool calls, retries, fallback, stalls, drops and
//! cancellation.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hermes_core::agent::{Brain, ToolSpec, specs_for};
use hermes_core::call::{Context, Message, ToolCall};
use hermes_core::config::{BUILTIN_TOOLS, Business, Tools};
use hermes_core::wall_clock::WallClock;
use hermes_io::fakes::llm::{
    FakeLlm, FakeLlmOptions, Quirk, UNKNOWN_BLOCK_TEXT, context_from_anthropic, context_from_openai,
};
use hermes_io::fakes::profile::{Delay, Fault, LatencyProfile};
use hermes_io::metrics::{Provider, ProviderIssue, provider_errors};
use hermes_io::net::http::HttpClient;
use hermes_io::net::retry::RetryPolicy;
use hermes_io::providers::llm::{
    LlmClient, LlmEvent, LlmSession, Protocol, RemoteSettings, Verbatim, WireRequest, anthropic,
    openai,
};
use jiff::civil::date;
use serde_json::{Value, json};

fn tools() -> Arc<[ToolSpec]> {
    specs_for(&Tools::default()).into()
}

fn wire() -> WireRequest {
    WireRequest { max_tokens: 300, temperature: None, clock: None }
}

async fn fake(options: FakeLlmOptions) -> FakeLlm {
    let new_york = jiff::tz::TimeZone::get("America/New_York").expect("tzdb");
    let at = new_york.to_timestamp(date(2026, 11, 25).at(10, 0, 0, 0)).expect("exists");
    let options = FakeLlmOptions { clock: WallClock::frozen(at), ..options };
    FakeLlm::start("127.0.0.1:0".parse().expect("addr"), options).await.expect("fake starts")
}

fn settings(protocol: Protocol, fake: &FakeLlm) -> RemoteSettings {
    RemoteSettings {
        protocol,
        base_url: fake.base_url(),
        api_key: "test-key".into(),
        model: "claude-sonnet-5-5".into(),
        fallback_model: String::new(),
        max_tokens: 300,
        temperature: None,
        stall_timeout: Duration::from_millis(400),
        request_timeout: Duration::from_secs(10),
        retry: RetryPolicy {
            attempts: 2,
            first_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
        },
    }
}

fn remote(settings: RemoteSettings) -> (LlmClient, LlmSession) {
    let http = HttpClient::new(Duration::from_secs(2)).expect("client");
    let client = LlmClient::remote(http, settings);
    let session = client.session(tools());
    (client, session)
}

fn conversation(lines: &[&str]) -> Context {
    let mut c = Context::default();
    c.push(Message::System("You answer the phone for Maple Street Hair.".into()));
    for line in lines {
        c.push(Message::User(line.to_string()));
    }
    c
}

/// Runs one completion to its end.
async fn complete(session: &LlmSession, context: Context) -> Vec<LlmEvent> {
    let mut stream = session.start(Arc::new(context));
    let mut events = Vec::new();
    while let Some(e) = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("the completion ends")
    {
        let end = matches!(e, LlmEvent::Done { .. } | LlmEvent::Failed(_));
        events.push(e);
        if end {
            break;
        }
    }
    events
}

fn text(events: &[LlmEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            LlmEvent::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

fn tool_calls(events: &[LlmEvent]) -> Vec<ToolCall> {
    events
        .iter()
        .filter_map(|e| match e {
            LlmEvent::ToolCall(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

fn a_full_context() -> Context {
    let mut c = conversation(&["I'd like a haircut tomorrow at 3"]);
    c.push(Message::Assistant("Let me check.".into()));
    c.push(Message::ToolCalls(vec![
        ToolCall {
            id: "toolu_1".into(),
            name: "check_availability".into(),
            arguments: r#"{"date":"2026-11-26","service":"cut"}"#.into(),
        },
        ToolCall {
            id: "toolu_2".into(),
            name: "business_info".into(),
            arguments: r#"{"topic":"hours"}"#.into(),
        },
    ]));
    c.push(Message::ToolResult {
        id: "toolu_1".into(),
        output: r#"{"slots":[]}"#.into(),
        is_error: false,
    });
    c.push(Message::ToolResult { id: "toolu_2".into(), output: "timeout".into(), is_error: true });
    c.push(Message::System("Stay brief and friendly.".into()));
    c.push(Message::User("What about Friday?".into()));
    c
}

#[test]
fn anthropic_request_caches_the_prefix_and_alternates_roles() {
    let body = anthropic::body(
        &wire(),
        "claude-sonnet-5-5",
        &a_full_context(),
        &tools(),
        &Verbatim::default(),
    );
    assert_eq!(body["stream"], true);
    assert_eq!(body["model"], "claude-sonnet-5-5");
    assert_eq!(body["system"][0]["cache_control"], json!({"type": "ephemeral"}));
    let tool_defs = body["tools"].as_array().expect("tools");
    assert_eq!(tool_defs.len(), BUILTIN_TOOLS.len());
    assert_eq!(tool_defs.last().expect("a tool")["cache_control"], json!({"type": "ephemeral"}));
    assert!(tool_defs[..tool_defs.len() - 1].iter().all(|t| t.get("cache_control").is_none()));
    assert_eq!(body["tool_choice"], json!({"type": "auto"}));
    assert!(body.get("temperature").is_none(), "no sampling override by default");
    let messages = body["messages"].as_array().expect("messages");
    let roles: Vec<&str> = messages.iter().map(|m| m["role"].as_str().unwrap_or("")).collect();
    assert_eq!(roles, ["user", "assistant", "user"]);
    // Both results in the one user turn after the calls, first, then the reminder and the words.
    let types: Vec<&str> = messages[2]["content"]
        .as_array()
        .expect("blocks")
        .iter()
        .map(|b| b["type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(types, ["tool_result", "tool_result", "text", "text"]);
    assert_eq!(messages[2]["content"][1]["is_error"], true);
    assert_eq!(messages[1]["content"][1]["input"], json!({"date": "2026-11-26", "service": "cut"}));
}

#[test]
fn the_clock_follows_the_cached_prompt_and_never_enters_it() {
    let clock = Some("Current local time: Wednesday, November 25, 2026, 10 AM (UTC).".to_string());
    let w = WireRequest { clock: clock.clone(), ..wire() };
    let body = anthropic::body(&w, "m", &a_full_context(), &tools(), &Verbatim::default());
    assert_eq!(body["system"][1], json!({"type": "text", "text": clock}));
    assert!(body["system"][1].get("cache_control").is_none());
    let body = openai::body(&w, "m", &a_full_context(), &tools());
    assert_eq!(body["messages"][0]["role"], "system");
    assert_eq!(body["messages"][1], json!({"role": "system", "content": clock}));
}

#[test]
fn anthropic_and_openai_requests_carry_the_whole_conversation() {
    let context = a_full_context();
    let body = anthropic::body(&wire(), "m", &context, &tools(), &Verbatim::default());
    let back = context_from_anthropic(&body);
    let normalise = |c: &Context| -> Vec<Message> {
        c.messages
            .iter()
            .map(|m| match m {
                Message::ToolCalls(calls) => Message::ToolCalls(
                    calls
                        .iter()
                        .map(|c| ToolCall {
                            arguments: serde_json::from_str::<Value>(&c.arguments)
                                .expect("json")
                                .to_string(),
                            ..c.clone()
                        })
                        .collect(),
                ),
                other => other.clone(),
            })
            .collect()
    };
    assert_eq!(normalise(&back), normalise(&context));
    let body = openai::body(&wire(), "m", &context, &tools());
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
    assert_eq!(body["tools"][0]["type"], "function");
    assert_eq!(normalise(&context_from_openai(&body)), normalise(&context));
}

#[test]
fn a_verbatim_turn_goes_back_unchanged_and_its_heard_text_is_not_repeated() {
    let original: Arc<[Value]> = vec![
        json!({"type": "thinking", "thinking": "Check the calendar.", "signature": "sig"}),
        json!({"type": "text", "text": "Let me check."}),
        json!({"type": "tool_use", "id": "toolu_1", "name": "check_availability", "input": {"date": "2026-11-26"}}),
        json!({"type": "tool_use", "id": "toolu_2", "name": "business_info", "input": {"topic": "hours"}, "caller": {"type": "direct"}}),
    ]
    .into();
    let mut verbatim = Verbatim::default();
    verbatim.insert("toolu_1".into(), original.clone());
    let body = anthropic::body(&wire(), "m", &a_full_context(), &tools(), &verbatim);
    assert_eq!(body["messages"][1]["content"], Value::Array(original.to_vec()));
}

#[tokio::test]
async fn anthropic_client_streams_text_then_tool_calls_from_the_fake() {
    let fake = fake(FakeLlmOptions::default()).await;
    let (_, session) = remote(settings(Protocol::Anthropic, &fake));
    let events =
        complete(&session, conversation(&["I'd like to book a haircut tomorrow at 3"])).await;
    assert_eq!(text(&events), "Let me check.");
    let calls = tool_calls(&events);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].name, "check_availability");
    let args: Value = serde_json::from_str(&calls[0].arguments).expect("json");
    assert_eq!(args, json!({"service": "cut", "date": "2026-11-26", "time": "15:00"}));
    assert!(
        matches!(events.last(), Some(LlmEvent::Done { stop_reason: Some(r), .. }) if r == "tool_use")
    );
    let request = fake.requests.lock().expect("log")[0].clone();
    assert_eq!(request["system"][0]["text"], "You answer the phone for Maple Street Hair.");
}

#[tokio::test]
async fn thinking_blocks_from_a_tool_turn_are_returned_to_the_model_verbatim() {
    let fake = fake(FakeLlmOptions { thinking: true, ..FakeLlmOptions::default() }).await;
    let (_, session) = remote(settings(Protocol::Anthropic, &fake));
    let mut context = conversation(&["What are your hours?"]);
    let events = complete(&session, context.clone()).await;
    let calls = tool_calls(&events);
    assert_eq!(calls[0].name, "business_info");
    context.push(Message::ToolCalls(calls.clone()));
    context.push(Message::ToolResult {
        id: calls[0].id.clone(),
        output: r#"{"answer":"9 to 5."}"#.into(),
        is_error: false,
    });
    let events = complete(&session, context).await;
    assert!(text(&events).starts_with("9 to 5."));
    let second = fake.requests.lock().expect("log")[1].clone();
    let turn = &second["messages"][1];
    assert_eq!(turn["role"], "assistant");
    assert_eq!(
        turn["content"][0],
        json!({"type": "thinking", "thinking": "The caller wants help.", "signature": "sig-1"})
    );
    assert_eq!(turn["content"][1]["type"], "tool_use");
}

#[tokio::test]
async fn an_overloaded_answer_is_retried_and_the_caller_never_knows() {
    let fake = fake(FakeLlmOptions::default()).await;
    fake.faults.push(Fault::Status(529));
    fake.faults.push(Fault::OverloadedEvent);
    let (client, session) = remote(settings(Protocol::Anthropic, &fake));
    let events = complete(&session, conversation(&["What are your hours?"])).await;
    assert_eq!(tool_calls(&events)[0].name, "business_info");
    assert_eq!(fake.requests.lock().expect("log").len(), 3);
    let LlmClient::Remote(remote) = &client else { panic!("remote") };
    assert_eq!(remote.counters.retries.load(Ordering::Relaxed), 2);
    assert_eq!(remote.counters.failures.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_model_that_stays_overloaded_falls_back_to_the_fallback_model() {
    let fake = fake(FakeLlmOptions::default()).await;
    for _ in 0..3 {
        fake.faults.push(Fault::Status(529));
    }
    let s = RemoteSettings {
        fallback_model: "claude-haiku-4-5".into(),
        ..settings(Protocol::Anthropic, &fake)
    };
    let (_, session) = remote(s);
    let events = complete(&session, conversation(&["What are your hours?"])).await;
    assert!(matches!(events.last(), Some(LlmEvent::Done { .. })), "{events:?}");
    let models: Vec<String> = fake
        .requests
        .lock()
        .expect("log")
        .iter()
        .map(|r| r["model"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        models,
        ["claude-sonnet-5-5", "claude-sonnet-5-5", "claude-sonnet-5-5", "claude-haiku-4-5"]
    );
}

#[tokio::test]
async fn a_refused_request_fails_at_once_naming_the_status() {
    let fake = fake(FakeLlmOptions::default()).await;
    fake.faults.push(Fault::Status(400));
    let (_, session) = remote(settings(Protocol::Anthropic, &fake));
    let events = complete(&session, conversation(&["hello"])).await;
    match events.as_slice() {
        [LlmEvent::Failed(message)] => {
            assert!(message.starts_with("HTTP 400 (api_error)"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.requests.lock().expect("log").len(), 1, "not retried");
    let s = RemoteSettings { api_key: String::new(), ..settings(Protocol::Anthropic, &fake) };
    let (_, session) = remote(s);
    let events = complete(&session, conversation(&["hello"])).await;
    assert!(
        matches!(&events[..], [LlmEvent::Failed(m)] if m.contains("authentication_error")),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_stalled_stream_fails_after_the_stall_timeout() {
    let fake = fake(FakeLlmOptions::default()).await;
    fake.faults.push(Fault::Stall);
    let (client, session) = remote(settings(Protocol::Anthropic, &fake));
    let events = complete(&session, conversation(&["hello"])).await;
    assert!(matches!(&events[..], [LlmEvent::Failed(m)] if m.contains("stalled")), "{events:?}");
    let LlmClient::Remote(remote) = &client else { panic!("remote") };
    assert_eq!(remote.counters.stalls.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_drop_before_output_is_retried_but_not_once_words_have_streamed() {
    let fake = fake(FakeLlmOptions::default()).await;
    fake.faults.push(Fault::DropAfter(1)); // after message_start: nothing said yet
    let (_, session) = remote(settings(Protocol::Anthropic, &fake));
    let events = complete(&session, conversation(&["hello"])).await;
    assert!(matches!(events.last(), Some(LlmEvent::Done { .. })), "{events:?}");

    fake.faults.push(Fault::DropAfter(5)); // mid-sentence
    let events = complete(&session, conversation(&["hello"])).await;
    assert!(!text(&events).is_empty());
    assert!(
        matches!(events.last(), Some(LlmEvent::Failed(m)) if m.contains("ended before")),
        "{events:?}"
    );
    assert_eq!(fake.requests.lock().expect("log").len(), 3);
}

#[tokio::test]
async fn dropping_the_stream_cancels_the_request_mid_answer() {
    let slow = LatencyProfile {
        llm_first_token: Delay::ms(10, 0.0),
        llm_tokens_per_second: 20.0,
        ..LatencyProfile::ZERO
    };
    let fake = fake(FakeLlmOptions { profile: slow, ..FakeLlmOptions::default() }).await;
    let (_, session) = remote(settings(Protocol::Anthropic, &fake));
    let mut stream = session.start(Arc::new(conversation(&["The weather is lovely"])));
    let first = stream.next().await;
    assert!(matches!(first, Some(LlmEvent::Text(_))), "{first:?}");
    drop(stream); // barge-in
    for _ in 0..50 {
        if fake.abandoned.load(Ordering::Relaxed) == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the fake kept streaming to a cancelled request");
}

#[tokio::test]
async fn openai_compatible_client_reassembles_tool_calls_and_text() {
    let fake = fake(FakeLlmOptions::default()).await;
    let s = RemoteSettings {
        model: "llama-3.1-8b".into(),
        api_key: String::new(),
        ..settings(Protocol::OpenAi, &fake)
    };
    let (_, session) = remote(s);
    let events = complete(&session, conversation(&["Where is my order 1042?"])).await;
    assert_eq!(text(&events), "Let me look that up.");
    let calls = tool_calls(&events);
    assert_eq!(
        (calls[0].name.as_str(), calls[0].arguments.as_str()),
        ("lookup_order", r#"{"order_number":"1042"}"#)
    );
    assert!(
        matches!(events.last(), Some(LlmEvent::Done { stop_reason: Some(r), .. }) if r == "tool_calls")
    );
    fake.faults.push(Fault::Status(429));
    let events = complete(&session, conversation(&["What are your hours?"])).await;
    assert!(matches!(events.last(), Some(LlmEvent::Done { .. })), "{events:?}");
}

#[tokio::test]
async fn the_local_brain_streams_like_a_model() {
    let client = LlmClient::local(
        Brain::new(Business::default(), BUILTIN_TOOLS.iter().map(|t| t.to_string()).collect()),
        jiff::tz::TimeZone::UTC,
    );
    let session = client.session(tools());
    let events = complete(&session, conversation(&["Can I talk to a real person?"])).await;
    assert_eq!(tool_calls(&events)[0].name, "transfer_to_human");
    let events = complete(&session, conversation(&["I want to make a complaint"])).await;
    assert!(events.iter().filter(|e| matches!(e, LlmEvent::Text(_))).count() > 3, "word by word");
    assert_eq!(text(&events), "I'm sorry to hear that. Could you tell me briefly what happened?");
}

fn new_york_at(civil: jiff::civil::DateTime) -> WallClock {
    let new_york = jiff::tz::TimeZone::get("America/New_York").expect("tzdb");
    WallClock::frozen(new_york.to_timestamp(civil).expect("exists"))
}

#[tokio::test]
async fn the_model_is_told_the_calls_clock_and_the_fake_answers_by_what_it_is_told() {
    // The fake's own clock says 25 November 2026; the call's says Tuesday 4 March 2025.
    let fake = fake(FakeLlmOptions::default()).await;
    let (_, session) = remote(settings(Protocol::Anthropic, &fake));
    let new_york = jiff::tz::TimeZone::get("America/New_York").expect("tzdb");
    let session = session.with_clock(
        new_york_at(date(2025, 3, 4).at(10, 0, 0, 0)),
        new_york,
        "America/New_York",
    );
    let events =
        complete(&session, conversation(&["I'd like to book a haircut tomorrow at 3"])).await;
    let args: Value = serde_json::from_str(&tool_calls(&events)[0].arguments).expect("json");
    assert_eq!(args["date"], "2025-03-05", "tomorrow by the call's clock");
    let request = fake.requests.lock().expect("log")[0].clone();
    assert_eq!(
        request["system"][1]["text"],
        "Current local time: Tuesday, March 4, 2025, 10 AM (2025-03-04T10:00, America/New_York)."
    );
}

/// As another framework's Anthropic SDK client asks: an auth token as `Authorization: Bearer`
/// (no `x-api-key`), and the clock on a line of its own at the end of a one-string system
/// prompt.
#[tokio::test]
async fn the_fake_takes_a_bearer_token_and_a_clock_line_inside_a_string_system_prompt() {
    let fake = fake(FakeLlmOptions::default()).await;
    let http = HttpClient::new(Duration::from_secs(5)).expect("client");
    let url = format!("{}/v1/messages", fake.base_url());
    let body = json!({
        "model": "claude-sonnet-5-5", "max_tokens": 400, "stream": true,
        "system": "You answer the phone.\nCurrent local time: Tuesday, March 4, 2025, 10 AM \
                   (2025-03-04T10:00, America/New_York).",
        "messages": [{"role": "user", "content": "I'd like to book a haircut tomorrow at 3"}],
    });
    let post = |headers: &'static [(&'static str, &'static str)]| {
        let (http, url, body) = (http.clone(), url.clone(), body.to_string());
        async move {
            let (status, _, text) =
                http.post_json(&url, headers, body.into(), 1 << 20).await.expect("answers");
            (status.as_u16(), String::from_utf8_lossy(&text).into_owned())
        }
    };
    let (status, why) = post(&[("anthropic-version", "2023-06-01")]).await;
    assert_eq!(status, 401, "no key, no answer: {why}");
    let (status, stream) =
        post(&[("authorization", "Bearer token-1"), ("anthropic-version", "2023-06-01")]).await;
    assert_eq!(status, 200, "{stream}");
    assert!(stream.contains(r#""name":"check_availability""#), "{stream}");
    let arguments: String = stream
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["delta"]["partial_json"].as_str().map(String::from))
        .collect();
    let args: Value = serde_json::from_str(&arguments).expect("the tool's arguments");
    assert_eq!(args["date"], "2025-03-05", "tomorrow by the told clock");
}

#[tokio::test]
async fn the_local_brain_answers_by_the_sessions_clock() {
    let new_york = jiff::tz::TimeZone::get("America/New_York").expect("tzdb");
    let client = LlmClient::local(
        Brain::new(Business::default(), BUILTIN_TOOLS.iter().map(|t| t.to_string()).collect()),
        new_york.clone(),
    );
    let saturday = new_york_at(date(2025, 3, 8).at(10, 0, 0, 0));
    let session = client.session(tools()).with_clock(saturday, new_york, "America/New_York");
    let events =
        complete(&session, conversation(&["I'd like to book a haircut tomorrow at 3"])).await;
    let args: Value = serde_json::from_str(&tool_calls(&events)[0].arguments).expect("json");
    assert_eq!(args["date"], "2025-03-09");
}

/// How many of `issue` `provider` has had so far (process-wide: tests compare before and after).
fn seen(provider: Provider, issue: ProviderIssue) -> u64 {
    provider_errors().get(provider, issue)
}

fn retries(client: &LlmClient) -> u64 {
    let LlmClient::Remote(remote) = client else { panic!("remote") };
    remote.counters.retries.load(Ordering::Relaxed)
}

const COMPLAINT: &str = "I want to make a complaint";
const COMPLAINT_ANSWER: &str = "I'm sorry to hear that. Could you tell me briefly what happened?";

#[tokio::test]
async fn an_overloaded_error_mid_stream_is_counted_retried_before_any_word_and_reported_after() {
    let fake = fake(FakeLlmOptions::default()).await;
    let (client, session) = remote(settings(Protocol::Anthropic, &fake));
    let before = seen(Provider::Anthropic, ProviderIssue::Overloaded);
    fake.quirks.push(Quirk::ErrorEvent { kind: "overloaded_error", after_tokens: 0 });
    let events = complete(&session, conversation(&[COMPLAINT])).await;
    assert_eq!(text(&events), COMPLAINT_ANSWER, "the retry answered");
    assert_eq!(retries(&client), 1);
    assert!(seen(Provider::Anthropic, ProviderIssue::Overloaded) > before);

    // Once words have streamed, a retry would say them twice: the call is told instead.
    let before = seen(Provider::Anthropic, ProviderIssue::Overloaded);
    fake.quirks.push(Quirk::ErrorEvent { kind: "overloaded_error", after_tokens: 3 });
    let events = complete(&session, conversation(&[COMPLAINT])).await;
    assert_eq!(text(&events), "I'm sorry to ");
    assert!(
        matches!(events.last(), Some(LlmEvent::Failed(m)) if m.contains("overloaded_error")),
        "{events:?}"
    );
    assert_eq!(retries(&client), 1, "not retried after words");
    assert!(seen(Provider::Anthropic, ProviderIssue::Overloaded) > before);
}

#[tokio::test]
async fn an_unknown_content_block_is_skipped_counted_and_never_spoken() {
    let fake = fake(FakeLlmOptions::default()).await;
    let (_, session) = remote(settings(Protocol::Anthropic, &fake));
    let before = seen(Provider::Anthropic, ProviderIssue::Unknown);
    fake.quirks.push(Quirk::UnknownBlock);
    let events = complete(&session, conversation(&[COMPLAINT])).await;
    assert!(!text(&events).contains(UNKNOWN_BLOCK_TEXT.trim()), "{events:?}");
    assert_eq!(text(&events), COMPLAINT_ANSWER);
    assert!(
        matches!(events.last(), Some(LlmEvent::Done { stop_reason: Some(r), .. }) if r == "end_turn")
    );
    assert!(seen(Provider::Anthropic, ProviderIssue::Unknown) >= before + 2, "block and delta");
}

#[tokio::test]
async fn a_ping_between_a_tools_input_deltas_leaves_the_call_whole() {
    let fake = fake(FakeLlmOptions::default()).await;
    let (_, session) = remote(settings(Protocol::Anthropic, &fake));
    let events = complete(&session, conversation(&["Where is my order 1042?"])).await;
    let calls = tool_calls(&events);
    assert_eq!(
        (calls[0].name.as_str(), calls[0].arguments.as_str()),
        ("lookup_order", r#"{"order_number":"1042"}"#)
    );
}

#[tokio::test]
async fn a_content_block_index_no_real_answer_has_is_refused_counted_and_retried() {
    let fake = fake(FakeLlmOptions::default()).await;
    let (client, session) = remote(settings(Protocol::Anthropic, &fake));
    let before = seen(Provider::Anthropic, ProviderIssue::OutOfBounds);
    fake.quirks.push(Quirk::HugeIndex);
    let events = complete(&session, conversation(&[COMPLAINT])).await;
    assert_eq!(text(&events), COMPLAINT_ANSWER, "{events:?}");
    assert_eq!(retries(&client), 1);
    assert!(seen(Provider::Anthropic, ProviderIssue::OutOfBounds) > before);

    let s = RemoteSettings { api_key: String::new(), ..settings(Protocol::OpenAi, &fake) };
    let (client, session) = remote(s);
    let before = seen(Provider::OpenAi, ProviderIssue::OutOfBounds);
    fake.quirks.push(Quirk::HugeIndex);
    // An answer that is only a tool call: nothing said before the refusal, so it is retried.
    let events = complete(&session, conversation(&["What are your hours?"])).await;
    assert_eq!(tool_calls(&events)[0].name, "business_info", "{events:?}");
    assert_eq!(retries(&client), 1);
    assert!(seen(Provider::OpenAi, ProviderIssue::OutOfBounds) > before);
}

#[tokio::test]
async fn stop_reasons_that_are_not_a_finished_answer_are_counted_and_end_the_turn_cleanly() {
    let fake = fake(FakeLlmOptions::default()).await;
    let (client, session) = remote(settings(Protocol::Anthropic, &fake));

    // Cut at the token limit: what came is what the caller hears, and the turn ends there.
    let before = seen(Provider::Anthropic, ProviderIssue::MaxTokens);
    fake.quirks.push(Quirk::Stop { reason: "max_tokens", after_tokens: Some(3) });
    let events = complete(&session, conversation(&[COMPLAINT])).await;
    assert_eq!(text(&events), "I'm sorry to ");
    assert!(
        matches!(events.last(), Some(LlmEvent::Done { stop_reason: Some(r), .. }) if r == "max_tokens")
    );
    assert!(seen(Provider::Anthropic, ProviderIssue::MaxTokens) > before);

    // A refusal with nothing said is a failure for the call to handle, not a silent turn;
    // asking again would only be refused again.
    let before = seen(Provider::Anthropic, ProviderIssue::Refusal);
    let requests = fake.requests.lock().expect("log").len();
    fake.quirks.push(Quirk::Stop { reason: "refusal", after_tokens: Some(0) });
    let events = complete(&session, conversation(&[COMPLAINT])).await;
    assert!(matches!(&events[..], [LlmEvent::Failed(m)] if m.contains("refusal")), "{events:?}");
    assert_eq!(fake.requests.lock().expect("log").len(), requests + 1, "not retried");
    assert!(seen(Provider::Anthropic, ProviderIssue::Refusal) > before);

    // A paused turn with nothing said is the provider's to finish: asked again.
    let before = seen(Provider::Anthropic, ProviderIssue::PauseTurn);
    let retried = retries(&client);
    fake.quirks.push(Quirk::Stop { reason: "pause_turn", after_tokens: Some(0) });
    let events = complete(&session, conversation(&[COMPLAINT])).await;
    assert_eq!(text(&events), COMPLAINT_ANSWER);
    assert_eq!(retries(&client), retried + 1);
    assert!(seen(Provider::Anthropic, ProviderIssue::PauseTurn) > before);

    // A stop sequence is a finished answer: nothing counted.
    let others = seen(Provider::Anthropic, ProviderIssue::OtherStop);
    fake.quirks.push(Quirk::Stop { reason: "stop_sequence", after_tokens: None });
    let events = complete(&session, conversation(&[COMPLAINT])).await;
    assert_eq!(text(&events), COMPLAINT_ANSWER);
    assert_eq!(seen(Provider::Anthropic, ProviderIssue::OtherStop), others);

    // OpenAI-compatible servers say `length`.
    let s = RemoteSettings { api_key: String::new(), ..settings(Protocol::OpenAi, &fake) };
    let (_, session) = remote(s);
    let before = seen(Provider::OpenAi, ProviderIssue::MaxTokens);
    fake.quirks.push(Quirk::Stop { reason: "length", after_tokens: Some(2) });
    let events = complete(&session, conversation(&[COMPLAINT])).await;
    assert_eq!(text(&events), "I'm sorry ");
    assert!(seen(Provider::OpenAi, ProviderIssue::MaxTokens) > before);
}

#[tokio::test]
async fn an_openai_compatible_error_chunk_is_an_error_not_a_finished_answer() {
    let fake = fake(FakeLlmOptions::default()).await;
    let s = RemoteSettings { api_key: String::new(), ..settings(Protocol::OpenAi, &fake) };
    let (client, session) = remote(s);
    let before = seen(Provider::OpenAi, ProviderIssue::Error);
    fake.quirks.push(Quirk::ErrorEvent { kind: "server_error", after_tokens: 0 });
    let events = complete(&session, conversation(&[COMPLAINT])).await;
    assert_eq!(text(&events), COMPLAINT_ANSWER, "retried: {events:?}");
    assert_eq!(retries(&client), 1);
    assert!(seen(Provider::OpenAi, ProviderIssue::Error) > before);

    fake.quirks.push(Quirk::ErrorEvent { kind: "server_error", after_tokens: 2 });
    let events = complete(&session, conversation(&[COMPLAINT])).await;
    assert_eq!(text(&events), "I'm sorry ");
    assert!(
        matches!(events.last(), Some(LlmEvent::Failed(m)) if m.contains("api_error")),
        "the stream's [DONE] does not make a cut answer whole: {events:?}"
    );
}
