//! The outbound HTTP client every part of `io` shares: hyper 1 over rustls with the system's
//! trust store (deployments sit behind corporate TLS proxies more often than not), HTTP/1.1,
//! plain HTTP allowed for loopback fakes and mirrors.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

const JSON: &str = "application/json";
const FORM: &str = "application/x-www-form-urlencoded";

/// Why an HTTP request failed, with the URL it was for.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{url}: invalid URL: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{url}: no response within {seconds} s")]
    Timeout { url: String, seconds: u64 },
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: StatusCode },
    #[error("{url}: the response is longer than {limit} bytes")]
    TooLarge { url: String, limit: usize },
    #[error("{url}: too many redirects")]
    Redirects { url: String },
    #[error("could not set up TLS: {0}")]
    Tls(String),
}

/// A pooled HTTP(S) client.
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl HttpClient {
    /// A client whose every request (headers, not the body) must answer within `timeout`.
    pub fn new(timeout: Duration) -> Result<Self, HttpError> {
        let provider = rustls::crypto::ring::default_provider();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(provider)
            .map_err(|e| HttpError::Tls(e.to_string()))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(HttpClient { inner: Client::builder(TokioExecutor::new()).build(https), timeout })
    }

    /// GET `url`, following up to five redirects, with extra `headers`. Returns the response
    /// once its status is 2xx (the body is still to be read).
    pub async fn get(
        &self,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<Response<Incoming>, HttpError> {
        let mut url = url.to_string();
        for _ in 0..5 {
            let uri: Uri = url.parse().map_err(|e: hyper::http::uri::InvalidUri| {
                HttpError::BadUrl { url: url.clone(), reason: e.to_string() }
            })?;
            let mut request = Request::get(uri.clone());
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            let request = request
                .header("user-agent", concat!("hermes/", env!("CARGO_PKG_VERSION")))
                .body(Full::new(Bytes::new()))
                .map_err(|e| HttpError::BadUrl { url: url.clone(), reason: e.to_string() })?;
            let response = tokio::time::timeout(self.timeout, self.inner.request(request))
                .await
                .map_err(|_| HttpError::Timeout {
                    url: url.clone(),
                    seconds: self.timeout.as_secs(),
                })?
                .map_err(|e| HttpError::Unreachable {
                    url: url.clone(),
                    reason: error_chain(&e),
                })?;
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get("location")
                    .and_then(|l| l.to_str().ok())
                    .ok_or_else(|| HttpError::Status { url: url.clone(), status })?;
                url = resolve(&uri, location);
                continue;
            }
            if !status.is_success() {
                return Err(HttpError::Status { url, status });
            }
            return Ok(response);
        }
        Err(HttpError::Redirects { url })
    }
}

impl HttpClient {
    fn json_post(
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Request<Full<Bytes>>, HttpError> {
        Self::request(Method::POST, url, headers, Some((JSON, body)))
    }

    /// A request with `headers`; with a body, of the content type it is paired with.
    fn request(
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<(&'static str, Bytes)>,
    ) -> Result<Request<Full<Bytes>>, HttpError> {
        let uri: Uri = url.parse().map_err(|e: hyper::http::uri::InvalidUri| {
            HttpError::BadUrl { url: url.to_string(), reason: e.to_string() }
        })?;
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header("user-agent", concat!("hermes/", env!("CARGO_PKG_VERSION")));
        let body = match body {
            Some((content_type, body)) => {
                request = request.header("content-type", content_type);
                body
            }
            None => Bytes::new(),
        };
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request
            .body(Full::new(body))
            .map_err(|e| HttpError::BadUrl { url: url.to_string(), reason: e.to_string() })
    }

    /// The same pooled connections, with another per-request deadline.
    pub fn with_timeout(&self, timeout: Duration) -> HttpClient {
        HttpClient { inner: self.inner.clone(), timeout }
    }

    /// POSTs a JSON body and returns the response as soon as its headers arrive (within the
    /// client's timeout), whatever the status, with the body still streaming: for SSE and
    /// audio streams, where the caller reads at its own pace and with its own deadlines.
    pub async fn post_stream(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Response<Incoming>, HttpError> {
        let request = Self::json_post(url, headers, body)?;
        tokio::time::timeout(self.timeout, self.inner.request(request))
            .await
            .map_err(|_| HttpError::Timeout {
                url: url.to_string(),
                seconds: self.timeout.as_secs(),
            })?
            .map_err(|e| HttpError::Unreachable { url: url.to_string(), reason: error_chain(&e) })
    }

    /// POSTs a JSON body and returns the status and the whole response body (up to
    /// `max_body` bytes) whatever the status: API clients decide what each status means.
    pub async fn post_json(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
        max_body: usize,
    ) -> Result<(StatusCode, hyper::HeaderMap, Bytes), HttpError> {
        self.exchange(Method::POST, url, headers, Some(body), max_body).await
    }

    /// POSTs an `application/x-www-form-urlencoded` body (Twilio's REST API takes no JSON);
    /// like [`HttpClient::post_json`].
    pub async fn post_form(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
        max_body: usize,
    ) -> Result<(StatusCode, hyper::HeaderMap, Bytes), HttpError> {
        let request = Self::request(Method::POST, url, headers, Some((FORM, body)))?;
        self.send(request, url, max_body).await
    }

    /// PUTs a JSON body; like [`HttpClient::post_json`].
    pub async fn put_json(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
        max_body: usize,
    ) -> Result<(StatusCode, hyper::HeaderMap, Bytes), HttpError> {
        self.exchange(Method::PUT, url, headers, Some(body), max_body).await
    }

    /// Sends `method` with an optional JSON body and returns the status and the whole
    /// response body (up to `max_body` bytes) whatever the status, all within the timeout.
    pub async fn exchange(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<Bytes>,
        max_body: usize,
    ) -> Result<(StatusCode, hyper::HeaderMap, Bytes), HttpError> {
        let request = Self::request(method, url, headers, body.map(|b| (JSON, b)))?;
        self.send(request, url, max_body).await
    }

    /// Sends `request` and reads its status and whole body (up to `max_body` bytes), all
    /// within the timeout.
    async fn send(
        &self,
        request: Request<Full<Bytes>>,
        url: &str,
        max_body: usize,
    ) -> Result<(StatusCode, hyper::HeaderMap, Bytes), HttpError> {
        let exchange = async {
            let response = self.inner.request(request).await.map_err(|e| {
                HttpError::Unreachable { url: url.to_string(), reason: error_chain(&e) }
            })?;
            let (parts, incoming) = response.into_parts();
            let limited = http_body_util::Limited::new(incoming, max_body);
            let bytes = limited.collect().await.map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    HttpError::TooLarge { url: url.to_string(), limit: max_body }
                } else {
                    HttpError::Unreachable {
                        url: url.to_string(),
                        reason: format!("reading the response: {e}"),
                    }
                }
            })?;
            Ok((parts.status, parts.headers, bytes.to_bytes()))
        };
        tokio::time::timeout(self.timeout, exchange).await.map_err(|_| HttpError::Timeout {
            url: url.to_string(),
            seconds: self.timeout.as_secs(),
        })?
    }
}

/// A redirect target, absolute or relative to `base`.
fn resolve(base: &Uri, location: &str) -> String {
    if location.contains("://") {
        return location.to_string();
    }
    let scheme = base.scheme_str().unwrap_or("https");
    let authority = base.authority().map_or("", |a| a.as_str());
    format!("{scheme}://{authority}{location}")
}

/// An error and all its causes on one line (hyper's top-level message alone says little).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Reads a whole response body, calling `progress(bytes_so_far)` as it arrives, within
/// `timeout` for the whole body.
pub async fn read_body(
    response: Response<Incoming>,
    url: &str,
    timeout: Duration,
    mut progress: impl FnMut(u64),
) -> Result<Vec<u8>, HttpError> {
    let mut body = response.into_body();
    let mut out = Vec::new();
    let read = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| HttpError::Unreachable {
                url: url.to_string(),
                reason: error_chain(&e),
            })?;
            if let Ok(data) = frame.into_data() {
                out.extend_from_slice(&data);
                progress(out.len() as u64);
            }
        }
        Ok::<(), HttpError>(())
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| HttpError::Timeout { url: url.to_string(), seconds: timeout.as_secs() })??;
    Ok(out)
}
