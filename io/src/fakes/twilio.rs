//! A fake Twilio REST API — the part Hermes uses, updating a call in progress (`POST
//! /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`, form-encoded) — on a loopback
//! port. Like Twilio it checks HTTP Basic auth (401, error 20003, otherwise), answers an
//! update with the call's JSON, and an update of a call that has ended (the test ended it, or
//! an earlier `Status=completed` did) with 400, error 21220 "Call is not in-progress". Faults
//! queued on it ([`FakeTwilio::fail_next`], or a [`Fault::Stall`]) fail the next requests,
//! to exercise retries.

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::profile::{Fault, Faults};
use crate::carriers::twilio::signature::form_params;

/// One update of a call, as the fake received it (with valid credentials).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallUpdate {
    pub call_sid: String,
    /// The form's fields in the order sent (`Twiml`, `Status`, …).
    pub form: Vec<(String, String)>,
    /// The status the fake answered with (0: none, a stall).
    pub answered: u16,
}

impl CallUpdate {
    /// The form field `name`, if sent.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// A running fake. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeTwilio {
    pub addr: SocketAddr,
    /// Queue faults here; each applies to one request (see [`FakeTwilio::fail_next`]).
    pub faults: Faults,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for FakeTwilio {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Shared {
    account_sid: String,
    /// `Basic base64(AccountSid:AuthToken)`, as a client must send it.
    authorization: String,
    faults: Faults,
    updates: Mutex<Vec<CallUpdate>>,
    ended: Mutex<HashSet<String>>,
    /// Every request, refused or not.
    requests: AtomicU64,
    updated: Notify,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("account_sid", &self.account_sid)
            .field("authorization", &"<redacted>")
            .field("faults", &self.faults)
            .finish_non_exhaustive()
    }
}

impl FakeTwilio {
    /// Starts on `addr` (port 0 for any free port), for one account and its auth token.
    pub async fn start(
        addr: SocketAddr,
        account_sid: &str,
        auth_token: &str,
    ) -> std::io::Result<FakeTwilio> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let faults = Faults::default();
        let shared = Arc::new(Shared {
            account_sid: account_sid.to_string(),
            authorization: format!(
                "Basic {}",
                BASE64.encode(format!("{account_sid}:{auth_token}"))
            ),
            faults: faults.clone(),
            updates: Mutex::new(Vec::new()),
            ended: Mutex::new(HashSet::new()),
            requests: AtomicU64::new(0),
            updated: Notify::new(),
        });
        let serving = Arc::clone(&shared);
        let task = super::serve_http(listener, move |req| handle(Arc::clone(&serving), req));
        Ok(FakeTwilio { addr, faults, shared, task })
    }

    /// The base URL to configure as `telephony.twilio.api_base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The call has ended (the caller hung up): updates of it are refused with 21220.
    pub fn end_call(&self, call_sid: &str) {
        if let Ok(mut ended) = self.shared.ended.lock() {
            ended.insert(call_sid.to_string());
        }
    }

    /// The next `n` requests fail with `status` (500, 503, 429…) and Twilio's error body.
    pub fn fail_next(&self, n: usize, status: u16) {
        for _ in 0..n {
            self.faults.push(Fault::Status(status));
        }
    }

    /// Every update received with valid credentials, in order (failed by a fault or not).
    pub fn updates(&self) -> Vec<CallUpdate> {
        self.shared.updates.lock().map(|u| u.clone()).unwrap_or_default()
    }

    /// Every request received, refused or not.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// The updates once there are at least `n`, or whatever came within `within`.
    pub async fn wait_for_updates(&self, n: usize, within: Duration) -> Vec<CallUpdate> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            // Created before the check, so an update in between still wakes it.
            let updated = self.shared.updated.notified();
            let updates = self.updates();
            if updates.len() >= n || tokio::time::Instant::now() >= deadline {
                return updates;
            }
            let _ = tokio::time::timeout_at(deadline, updated).await;
        }
    }
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    shared.requests.fetch_add(1, Ordering::Relaxed);
    let authorized = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes() == shared.authorization.as_bytes());
    if !authorized {
        return Ok(error(401, 20003, "Authenticate"));
    }
    let path = req.uri().path().to_string();
    let Some((account, call_sid)) = call_resource(&path) else {
        return Ok(error(404, 20404, "The requested resource was not found"));
    };
    if account != shared.account_sid {
        return Ok(error(404, 20404, "The requested resource was not found"));
    }
    if req.method() != Method::POST {
        return Ok(error(405, 20004, "Method not allowed"));
    }
    let is_form = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let Ok(body) = Limited::new(req.into_body(), 64 * 1024).collect().await else {
        return Ok(error(400, 20001, "The request body could not be read"));
    };
    if !is_form {
        return Ok(error(400, 20001, "Twilio takes form-encoded parameters"));
    }
    let form = form_params(&body.to_bytes());
    let call_sid = call_sid.to_string();
    let completes = form.iter().any(|(n, v)| n == "Status" && v == "completed");
    let (answered, response) = match shared.faults.next() {
        Some(Fault::Status(429)) => (429, error(429, 20429, "Too Many Requests")),
        Some(Fault::Status(status)) => (status, error(status, 20500, "Internal Server Error")),
        Some(Fault::Stall) => (0, error(500, 20500, "never sent")),
        Some(_) => (500, error(500, 20500, "Internal Server Error")),
        None if is_ended(&shared, &call_sid) => {
            (400, error(400, 21220, "Call is not in-progress. Cannot redirect."))
        }
        None => {
            if completes && let Ok(mut ended) = shared.ended.lock() {
                ended.insert(call_sid.clone());
            }
            let status = if completes { "completed" } else { "in-progress" };
            let call = json!({
                "sid": call_sid,
                "account_sid": shared.account_sid,
                "status": status,
                "api_version": "2010-04-01",
                "uri": path,
            });
            (200, json_response(200, call))
        }
    };
    if let Ok(mut updates) = shared.updates.lock() {
        updates.push(CallUpdate { call_sid, form, answered });
    }
    shared.updated.notify_waiters();
    if answered == 0 {
        // Accepted, and never answered: the client's timeout is all that ends it.
        std::future::pending::<()>().await;
    }
    Ok(response)
}

fn is_ended(shared: &Shared, call_sid: &str) -> bool {
    shared.ended.lock().is_ok_and(|ended| ended.contains(call_sid))
}

/// `(AccountSid, CallSid)` of `/2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`.
fn call_resource(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/2010-04-01/Accounts/")?;
    let (account, rest) = rest.split_once('/')?;
    let call = rest.strip_prefix("Calls/")?.strip_suffix(".json")?;
    (!call.is_empty() && !call.contains('/')).then_some((account, call))
}

/// Twilio's error body: `{"code","message","more_info","status"}`.
fn error(status: u16, code: u32, message: &str) -> Response<Full<Bytes>> {
    json_response(
        status,
        json!({
            "code": code,
            "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status,
        }),
    )
}

fn json_response(status: u16, body: Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_call_resource_of_the_2010_api_is_a_call() {
        assert_eq!(call_resource("/2010-04-01/Accounts/AC1/Calls/CA1.json"), Some(("AC1", "CA1")));
        assert_eq!(call_resource("/2010-04-01/Accounts/AC1/Calls/CA1"), None);
        assert_eq!(call_resource("/2010-04-01/Accounts/AC1/Calls/.json"), None);
        assert_eq!(call_resource("/2010-04-01/Accounts/AC1/Messages/SM1.json"), None);
    }
}
