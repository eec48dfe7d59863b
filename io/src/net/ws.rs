//! Outbound WebSocket connections for the streaming providers (Deepgram, ElevenLabs): TCP, TLS
//! with the system's trust store for `wss://` (rustls with ring, like the HTTP client), the
//! upgrade with the provider's headers, all within one connect timeout. Plain `ws://` is for
//! loopback fakes.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::SinkExt;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Response;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue, Uri};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Bytes read from a socket at a time. tungstenite's default (128 KiB) is zero-filled on every
/// read; a call's sockets carry messages of a few hundred bytes every 20 ms, so under load that
/// memset alone was a fifth of the whole call path's CPU (flamegraphs/README.md). 4 KiB holds
/// many messages, and larger ones are read in several pieces.
pub const READ_BUFFER_BYTES: usize = 4 * 1024;

/// The configuration every WebSocket of a call uses: the small read buffer, and these limits
/// on one message and one frame.
pub fn socket_config(max_message: usize, max_frame: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_frame))
}

/// Anything a WebSocket can run over.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Transport for T {}

pub type WsStream = WebSocketStream<Box<dyn Transport>>;

/// Why a connection could not be opened. Never carries header values (they hold keys).
#[derive(Debug, thiserror::Error)]
pub enum WsError {
    #[error("{url}: invalid URL: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{url}: no connection within {ms} ms")]
    Timeout { url: String, ms: u64 },
    #[error("{url}: the server refused the WebSocket upgrade with HTTP {status}{detail}")]
    Refused { url: String, status: u16, detail: String },
    #[error("{url}: WebSocket handshake failed: {reason}")]
    Handshake { url: String, reason: String },
}

/// The TLS client configuration, built once: ring, safe protocol versions, system roots.
fn tls() -> Option<Arc<rustls::ClientConfig>> {
    static CONFIG: OnceLock<Option<Arc<rustls::ClientConfig>>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let builder = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .ok()?;
            Some(Arc::new(builder.with_root_certificates(roots).with_no_client_auth()))
        })
        .clone()
}

/// Opens `url` (`ws://` or `wss://`) with extra `headers`, within `timeout`.
pub async fn connect(
    url: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> Result<(WsStream, Response), WsError> {
    let ms = timeout.as_millis() as u64;
    tokio::time::timeout(timeout, connect_now(url, headers))
        .await
        .map_err(|_| WsError::Timeout { url: redact(url), ms })?
}

async fn connect_now(url: &str, headers: &[(&str, &str)]) -> Result<(WsStream, Response), WsError> {
    let shown = redact(url);
    let bad = |reason: String| WsError::BadUrl { url: shown.clone(), reason };
    let uri: Uri = url
        .parse()
        .map_err(|e: tokio_tungstenite::tungstenite::http::uri::InvalidUri| bad(e.to_string()))?;
    let secure = match uri.scheme_str() {
        Some("wss") => true,
        Some("ws") => false,
        other => return Err(bad(format!("scheme {other:?} is not ws or wss"))),
    };
    let host = uri.host().ok_or_else(|| bad("no host".into()))?.to_string();
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let mut request = url.into_client_request().map_err(|e| bad(e.to_string()))?;
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| bad(e.to_string()))?;
        let value =
            HeaderValue::from_str(value).map_err(|_| bad(format!("header {name} is not valid")))?;
        request.headers_mut().insert(name, value);
    }
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| WsError::Unreachable { url: shown.clone(), reason: e.to_string() })?;
    let _ = tcp.set_nodelay(true);
    let transport: Box<dyn Transport> = if secure {
        let name = ServerName::try_from(host.clone()).map_err(|e| bad(e.to_string()))?;
        let config = tls().ok_or_else(|| WsError::Unreachable {
            url: shown.clone(),
            reason: "TLS could not be set up".into(),
        })?;
        let stream = TlsConnector::from(config).connect(name, tcp).await.map_err(|e| {
            WsError::Unreachable { url: shown.clone(), reason: format!("TLS: {e}") }
        })?;
        Box::new(stream)
    } else {
        Box::new(tcp)
    };
    let config = socket_config(4 << 20, 1 << 20);
    tokio_tungstenite::client_async_with_config(request, transport, Some(config)).await.map_err(
        |e| match e {
            tokio_tungstenite::tungstenite::Error::Http(response) => {
                let header = |n: &str| {
                    response.headers().get(n).and_then(|v| v.to_str().ok()).map(String::from)
                };
                // Deepgram says why in `dg-error`; others in the body.
                let detail = header("dg-error")
                    .or_else(|| {
                        response
                            .body()
                            .as_ref()
                            .map(|b| String::from_utf8_lossy(b).chars().take(200).collect())
                    })
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default();
                WsError::Refused { url: shown.clone(), status: response.status().as_u16(), detail }
            }
            other => WsError::Handshake { url: shown.clone(), reason: other.to_string() },
        },
    )
}

/// How long one WebSocket write may take before the connection counts as broken: a peer that
/// stops reading must not freeze a call.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends `message` within [`WRITE_TIMEOUT`].
pub async fn send_within<S>(sink: &mut S, message: Message) -> Result<(), String>
where
    S: futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
{
    match tokio::time::timeout(WRITE_TIMEOUT, sink.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("a write took longer than {} s", WRITE_TIMEOUT.as_secs())),
    }
}

/// The URL without its query (which may carry tokens), for errors and logs.
pub fn redact(url: &str) -> String {
    url.split('?').next().unwrap_or(url).to_string()
}
