//! Twilio's REST API for a call in progress (PROTOCOLS.md §6): `POST
//! {base}/2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`, form-encoded, with HTTP Basic
//! auth (the account SID and the auth token). A transfer updates the call with `<Dial>` TwiML,
//! which ends its `<Connect><Stream>` (Twilio closes our media stream itself) and hands the
//! caller to the human; a hang-up sets `Status=completed`. 429, 5xx and transport failures are
//! retried with backoff; a hang-up of a call that has already ended is success.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde_json::Value;

use super::twiml;
use crate::net::http::{HttpClient, HttpError};
use crate::net::retry::{RetryPolicy, retry_after};

/// Twilio's error code for an update of a call that is no longer in progress ("Call is not
/// in-progress. Cannot redirect.", with HTTP 400).
pub const CALL_NOT_IN_PROGRESS: u32 = 21220;

/// The most of a response read: a call's JSON is about 2 KiB.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// The longest SID put into a URL (Twilio's are 34 characters).
const MAX_SID_CHARS: usize = 64;

/// The longest piece of Twilio's error message kept in an error.
const MAX_MESSAGE_CHARS: usize = 200;

/// An update of a call that failed. No variant carries the auth token.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    #[error(
        "Twilio {action}: the {what} {shown:?} is not a Twilio SID (1-{MAX_SID_CHARS} letters and digits)"
    )]
    BadSid { action: &'static str, what: &'static str, shown: String },
    #[error("Twilio {action}: {source}")]
    Http { action: &'static str, source: HttpError },
    #[error(
        "Twilio {action}: HTTP {status}{}{}",
        code.map(|c| format!(", error {c}")).unwrap_or_default(),
        message.as_deref().map(|m| format!(": {m}")).unwrap_or_default()
    )]
    Refused { action: &'static str, status: u16, code: Option<u32>, message: Option<String> },
    #[error("Twilio {action}: gave up after {attempts} attempts (last: HTTP {status})")]
    Exhausted { action: &'static str, attempts: u32, status: u16 },
}

impl RestError {
    /// Twilio says the call is over: it no longer knows it (404), or it is not in progress
    /// (21220). A hang-up of such a call has nothing left to do.
    pub fn call_already_ended(&self) -> bool {
        match self {
            RestError::Refused { status: 404, .. } => true,
            RestError::Refused { status, code: Some(CALL_NOT_IN_PROGRESS), .. } => {
                (400..500).contains(status)
            }
            _ => false,
        }
    }
}

/// The REST client, for one account. The auth token stays out of `Debug` and every error.
#[derive(Clone)]
pub struct TwilioRest {
    http: HttpClient,
    /// `{base}/2010-04-01/Accounts/{AccountSid}/Calls`
    calls_url: String,
    /// `Basic base64(AccountSid:AuthToken)`
    authorization: String,
    retry: RetryPolicy,
}

impl fmt::Debug for TwilioRest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioRest")
            .field("calls_url", &self.calls_url)
            .field("authorization", &"<redacted>")
            .field("retry", &self.retry)
            .finish()
    }
}

impl TwilioRest {
    /// A client of the API at `base_url` (`https://api.twilio.com`) for `account_sid`.
    /// Refuses an account SID that is not one, rather than build URLs from it.
    pub fn new(
        http: HttpClient,
        base_url: &str,
        account_sid: &str,
        auth_token: &str,
        retry: RetryPolicy,
    ) -> Result<Self, RestError> {
        let account = path_sid("set-up", "account SID", account_sid)?;
        Ok(TwilioRest {
            http,
            calls_url: format!(
                "{}/2010-04-01/Accounts/{account}/Calls",
                base_url.trim_end_matches('/')
            ),
            authorization: basic_authorization(account_sid, auth_token),
            retry,
        })
    }

    /// Hands the call to a human at `to`: the call's TwiML becomes `<Dial>to</Dial>`.
    pub async fn transfer(&self, call_sid: &str, to: &str) -> Result<(), RestError> {
        let twiml = twiml::dial(to);
        self.update_call("transfer", call_sid, &[("Twiml", &twiml)]).await.map(drop)
    }

    /// Ends the call. A call that has already ended counts as hung up.
    pub async fn hangup(&self, call_sid: &str) -> Result<(), RestError> {
        match self.update_call("hangup", call_sid, &[("Status", "completed")]).await {
            Err(e) if e.call_already_ended() => Ok(()),
            other => other.map(drop),
        }
    }

    /// POSTs `form` to the call's resource and returns the call as Twilio answers it. Retries
    /// on 429, 5xx and transport failures, waiting at least what Twilio asks, with the same
    /// update every time: a hang-up applied twice is applied once; a transfer Twilio applied
    /// before failing to answer is dialled again (Twilio takes no idempotency key here), which
    /// restarts the ringing of the same number a moment after it began.
    async fn update_call(
        &self,
        action: &'static str,
        call_sid: &str,
        form: &[(&str, &str)],
    ) -> Result<Value, RestError> {
        let sid = path_sid(action, "call SID", call_sid)?;
        let url = format!("{}/{sid}.json", self.calls_url);
        let body = Bytes::from(
            form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish(),
        );
        let headers =
            [("authorization", self.authorization.as_str()), ("accept", "application/json")];
        let (mut last_status, mut server_hint) = (0, None);
        for attempt in 0..=self.retry.attempts {
            if attempt > 0 {
                tokio::time::sleep(self.retry.backoff(attempt, server_hint.take())).await;
            }
            let (status, response_headers, bytes) =
                match self.http.post_form(&url, &headers, body.clone(), MAX_RESPONSE_BYTES).await {
                    Ok(r) => r,
                    Err(HttpError::Unreachable { .. } | HttpError::Timeout { .. })
                        if attempt < self.retry.attempts =>
                    {
                        continue;
                    }
                    Err(source) => return Err(RestError::Http { action, source }),
                };
            let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            if status.is_success() {
                return Ok(json);
            }
            last_status = status.as_u16();
            if last_status == 429 || status.is_server_error() {
                server_hint = retry_after(&response_headers);
                continue;
            }
            // Twilio's errors: {"code":21220,"message":"…","more_info":"…","status":400}
            return Err(RestError::Refused {
                action,
                status: last_status,
                code: json["code"].as_u64().and_then(|c| u32::try_from(c).ok()),
                message: json["message"]
                    .as_str()
                    .map(|m| m.chars().take(MAX_MESSAGE_CHARS).collect()),
            });
        }
        Err(RestError::Exhausted { action, attempts: self.retry.attempts + 1, status: last_status })
    }
}

/// `sid` as one path segment: only letters and digits (Twilio's SIDs are two letters and 32
/// hex digits). A call SID comes from outside; anything else is refused, never escaped into
/// a URL.
fn path_sid<'a>(
    action: &'static str,
    what: &'static str,
    sid: &'a str,
) -> Result<&'a str, RestError> {
    if !sid.is_empty()
        && sid.len() <= MAX_SID_CHARS
        && sid.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        Ok(sid)
    } else {
        Err(RestError::BadSid { action, what, shown: sid.chars().take(MAX_SID_CHARS).collect() })
    }
}

/// HTTP Basic authorization (RFC 7617): `Basic base64(user:password)`.
fn basic_authorization(user: &str, password: &str) -> String {
    format!("Basic {}", BASE64.encode(format!("{user}:{password}")))
}

/// A loopback HTTP/1.1 server for the client's tests: it records each request as it came
/// over the wire and answers as `answer` says, after the delay it names.
#[cfg(test)]
pub(crate) mod test_server {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// One request, as the server read it.
    #[derive(Clone, Debug)]
    pub struct Seen {
        pub method: String,
        pub path: String,
        /// Lower-cased names.
        pub headers: Vec<(String, String)>,
        pub body: String,
    }

    impl Seen {
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
        }
    }

    pub type Answer = (u16, String, Duration);

    /// An account SID of the right shape.
    pub const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";

    /// Serves until the test's runtime ends; returns the base URL and what it saw.
    pub async fn start(
        answer: impl Fn(&Seen, usize) -> Answer + Send + Sync + 'static,
    ) -> (String, Arc<Mutex<Vec<Seen>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (record, answer) = (Arc::clone(&seen), Arc::new(answer));
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else { return };
                let (record, answer) = (Arc::clone(&record), Arc::clone(&answer));
                tokio::spawn(async move {
                    let Some(request) = read_request(&mut stream).await else { return };
                    let n = {
                        let mut seen = record.lock().expect("lock");
                        seen.push(request.clone());
                        seen.len()
                    };
                    let (status, body, delay) = answer(&request, n);
                    tokio::time::sleep(delay).await;
                    let response = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                });
            }
        });
        (format!("http://{addr}"), seen)
    }

    async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<Seen> {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            let n = stream.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let mut first = lines.next()?.split(' ');
        let (method, path) = (first.next()?.to_string(), first.next()?.to_string());
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = buf[head_end + 4..].to_vec();
        while body.len() < length {
            let n = stream.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
            body.extend_from_slice(&chunk[..n]);
        }
        Some(Seen { method, path, headers, body: String::from_utf8_lossy(&body).into_owned() })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::test_server::{self, ACCOUNT, Seen};
    use super::*;
    use crate::carriers::twilio::signature::form_params;

    fn quick_retries(attempts: u32) -> RetryPolicy {
        RetryPolicy {
            attempts,
            first_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
        }
    }

    fn client(base: &str, retry: RetryPolicy) -> TwilioRest {
        let http = HttpClient::new(Duration::from_secs(5)).expect("client");
        TwilioRest::new(http, base, ACCOUNT, "secret-token", retry).expect("valid account")
    }

    fn ok(_: &Seen, _: usize) -> test_server::Answer {
        (200, r#"{"sid":"CA1","status":"in-progress"}"#.into(), Duration::ZERO)
    }

    #[test]
    fn basic_auth_is_the_rfc_7617_form_of_sid_and_token() {
        // RFC 7617 §2's example.
        assert_eq!(
            basic_authorization("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        let header = basic_authorization(ACCOUNT, "secret-token");
        let decoded = BASE64.decode(header.strip_prefix("Basic ").expect("Basic")).expect("base64");
        assert_eq!(decoded, format!("{ACCOUNT}:secret-token").as_bytes());
    }

    #[test]
    fn the_auth_token_never_prints() {
        let rest = client("https://api.twilio.com", RetryPolicy::default());
        let shown = format!("{rest:?}");
        assert!(!shown.contains("secret-token") && !shown.contains(&rest.authorization[6..]));
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[tokio::test]
    async fn a_call_sid_that_could_change_the_path_is_refused_before_any_request() {
        let (base, seen) = test_server::start(ok).await;
        let rest = client(&base, quick_retries(0));
        for sid in ["", "CA1/../../Accounts/ACother", "CA1?Status=x", "CA%2F1", "CA 1", "CA1.json"]
        {
            let e = rest.hangup(sid).await.expect_err(sid);
            assert!(matches!(e, RestError::BadSid { action: "hangup", .. }), "{sid}: {e}");
        }
        let e = rest.transfer(&"C".repeat(65), "+15555550199").await.expect_err("too long");
        assert!(e.to_string().starts_with("Twilio transfer: the call SID"), "{e}");
        assert!(seen.lock().expect("lock").is_empty(), "no request was made");
        let bad = TwilioRest::new(
            HttpClient::new(Duration::from_secs(1)).expect("client"),
            &base,
            "AC1/../x",
            "t",
            RetryPolicy::default(),
        );
        assert!(matches!(bad, Err(RestError::BadSid { what: "account SID", .. })));
    }

    #[tokio::test]
    async fn a_transfer_posts_dial_twiml_to_the_calls_resource_with_basic_auth() {
        let (base, seen) = test_server::start(ok).await;
        let rest = client(&format!("{base}/"), quick_retries(0));
        rest.transfer("CA0123456789abcdef0123456789abcdef", "+15555550199").await.expect("done");
        let seen = seen.lock().expect("lock");
        let request = &seen[0];
        assert_eq!(request.method, "POST");
        assert_eq!(
            request.path,
            format!("/2010-04-01/Accounts/{ACCOUNT}/Calls/CA0123456789abcdef0123456789abcdef.json")
        );
        assert_eq!(
            request.header("authorization"),
            Some(basic_authorization(ACCOUNT, "secret-token").as_str())
        );
        assert_eq!(request.header("content-type"), Some("application/x-www-form-urlencoded"));
        assert_eq!(
            form_params(request.body.as_bytes()),
            [("Twiml".to_string(), "<Response><Dial>+15555550199</Dial></Response>".to_string())]
        );
    }

    #[tokio::test]
    async fn a_hangup_of_a_call_that_already_ended_counts_as_hung_up() {
        let not_in_progress = r#"{"code":21220,"message":"Call is not in-progress. Cannot redirect.","more_info":"https://www.twilio.com/docs/errors/21220","status":400}"#;
        let (base, seen) = test_server::start(move |request, _| {
            let body = if request.path.contains("CAgone") {
                (404, r#"{"code":20404,"message":"The requested resource was not found","status":404}"#.into())
            } else {
                (400, not_in_progress.to_string())
            };
            (body.0, body.1, Duration::ZERO)
        })
        .await;
        let rest = client(&base, quick_retries(2));
        rest.hangup("CAended").await.expect("21220 is hung up");
        rest.hangup("CAgone").await.expect("404 is hung up");
        assert_eq!(seen.lock().expect("lock").len(), 2, "neither is retried");
        assert_eq!(
            form_params(seen.lock().expect("lock")[0].body.as_bytes()),
            [("Status".to_string(), "completed".to_string())]
        );
        // A transfer of an ended call did not happen, and says why.
        let e = rest.transfer("CAended", "+15555550199").await.expect_err("no call to transfer");
        assert_eq!(
            e.to_string(),
            "Twilio transfer: HTTP 400, error 21220: Call is not in-progress. Cannot redirect."
        );
    }

    #[tokio::test]
    async fn an_update_is_retried_after_two_server_errors_and_then_succeeds() {
        let (base, seen) = test_server::start(|_, n| match n {
            1 | 2 => (
                500,
                r#"{"code":20500,"message":"Internal Server Error","status":500}"#.into(),
                Duration::ZERO,
            ),
            _ => (200, r#"{"sid":"CA1","status":"completed"}"#.into(), Duration::ZERO),
        })
        .await;
        let rest = client(&base, quick_retries(2));
        rest.hangup("CA1").await.expect("the third attempt succeeds");
        let seen = seen.lock().expect("lock");
        assert_eq!(seen.len(), 3);
        assert!(seen.iter().all(|s| s.body == "Status=completed"), "the same update each time");
    }

    #[tokio::test]
    async fn it_gives_up_after_the_policys_attempts_naming_the_action() {
        let (base, seen) = test_server::start(|_, _| {
            (
                429,
                r#"{"code":20429,"message":"Too Many Requests","status":429}"#.into(),
                Duration::ZERO,
            )
        })
        .await;
        let rest = client(&base, quick_retries(3));
        let e = rest.transfer("CA1", "+15555550199").await.expect_err("never succeeds");
        assert!(matches!(e, RestError::Exhausted { action: "transfer", attempts: 4, status: 429 }));
        assert_eq!(e.to_string(), "Twilio transfer: gave up after 4 attempts (last: HTTP 429)");
        assert_eq!(seen.lock().expect("lock").len(), 4);
    }

    #[tokio::test]
    async fn an_unreachable_twilio_is_retried_and_then_named_in_the_error() {
        // A port nothing listens on: bound, then let go.
        let addr =
            std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
        let rest = client(&format!("http://{addr}"), quick_retries(2));
        let e = rest.hangup("CA1").await.expect_err("nobody answers");
        assert!(
            matches!(
                e,
                RestError::Http { action: "hangup", source: HttpError::Unreachable { .. } }
            ),
            "{e}"
        );
        assert!(!e.to_string().contains("secret-token"), "{e}");
    }

    #[tokio::test]
    async fn a_refusal_names_the_action_status_and_code_without_the_token() {
        let (base, _) = test_server::start(|_, _| {
            (401, r#"{"code":20003,"message":"Authenticate","more_info":"https://www.twilio.com/docs/errors/20003","status":401}"#.into(), Duration::ZERO)
        })
        .await;
        let e = client(&base, quick_retries(3)).hangup("CA1").await.expect_err("refused");
        assert_eq!(e.to_string(), "Twilio hangup: HTTP 401, error 20003: Authenticate");
        assert!(!e.call_already_ended());
    }

    #[tokio::test]
    async fn an_oversized_answer_is_not_read_whole() {
        let (base, _) =
            test_server::start(|_, _| (200, "x".repeat(MAX_RESPONSE_BYTES + 1), Duration::ZERO))
                .await;
        let e = client(&base, quick_retries(0)).hangup("CA1").await.expect_err("too large");
        assert!(matches!(e, RestError::Http { source: HttpError::TooLarge { .. }, .. }), "{e}");
    }
}
