//! A fake Telnyx: signs webhooks with a test key the way Telnyx does, connects to our media
//! WebSocket as Telnyx would, streams caller audio at real-time pace in 20 ms frames, and plays
//! what it receives at real-time pace — acknowledging each mark only once the audio before it
//! has "played", and dropping queued audio on `clear` (returning the marks behind it).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use ed25519_dalek::{Signer, SigningKey};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::playout::Playout;
use crate::net::http::{HttpClient, HttpError};

/// What the fake heard from us during a call.
#[derive(Debug, Default)]
pub struct Recording {
    /// Agent audio (G.711) in the order it was played, without what a `clear` dropped.
    pub played: Vec<u8>,
    /// Each mark and when (since the stream started) it was acknowledged.
    pub marks: Vec<(String, Duration)>,
    pub clears: usize,
    /// Frames that were not valid JSON or not a known event.
    pub bad_frames: usize,
}

/// How the fake places a call on the media stream. `Debug` shows no token.
#[derive(Clone)]
pub struct StreamScript {
    pub call_control_id: String,
    pub stream_id: String,
    /// `x-telnyx-streaming-auth-token`, in the handshake and the `connected` frame.
    pub auth_token: Option<String>,
    /// Caller audio, G.711 μ-law at 8 kHz, sent in 20 ms frames at real-time pace.
    pub caller_audio: Vec<u8>,
    /// Keep listening this long after the caller audio ends, then send `stop`.
    pub linger: Duration,
}

impl std::fmt::Debug for StreamScript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamScript")
            .field("call_control_id", &self.call_control_id)
            .field("stream_id", &self.stream_id)
            .field("auth_token", &crate::net::redact::secret(&self.auth_token))
            .field("caller_audio_bytes", &self.caller_audio.len())
            .field("linger", &self.linger)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FakeCarrierError {
    #[error("fake carrier: cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("fake carrier: {0}")]
    Http(#[from] HttpError),
}

/// Reads a mono 8 kHz 16-bit WAV file and encodes it as μ-law, as a carrier would send it.
pub fn ulaw_from_wav(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let reader = hound::WavReader::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let spec = reader.spec();
    if spec.channels != 1 || spec.sample_rate != 8000 || spec.bits_per_sample != 16 {
        return Err(format!(
            "{}: need mono 8 kHz 16-bit PCM, found {} channel(s) at {} Hz, {} bits",
            path.display(),
            spec.channels,
            spec.sample_rate,
            spec.bits_per_sample
        ));
    }
    reader
        .into_samples::<i16>()
        .map(|s| {
            s.map(|s| hermes_core::codec::G711::Mulaw.encode(s))
                .map_err(|e| format!("{}: {e}", path.display()))
        })
        .collect()
}

/// The fake carrier: one signing key, any number of calls.
#[derive(Debug)]
pub struct FakeTelnyx {
    key: SigningKey,
}

impl FakeTelnyx {
    /// A fake with a deterministic key from `seed`.
    pub fn new(seed: [u8; 32]) -> Self {
        FakeTelnyx { key: SigningKey::from_bytes(&seed) }
    }

    /// The public key to configure Hermes with (`TELNYX_PUBLIC_KEY`), base64.
    pub fn public_key(&self) -> String {
        BASE64.encode(self.key.verifying_key().as_bytes())
    }

    /// `(telnyx-signature-ed25519, telnyx-timestamp)` for `body` sent at `unix_time`.
    pub fn sign(&self, body: &str, unix_time: i64) -> (String, String) {
        let ts = unix_time.to_string();
        let signature = self.key.sign(format!("{ts}|{body}").as_bytes());
        (BASE64.encode(signature.to_bytes()), ts)
    }

    /// POSTs a signed webhook; returns the HTTP status.
    pub async fn post_webhook(
        &self,
        http: &HttpClient,
        url: &str,
        body: &str,
        unix_time: i64,
    ) -> Result<u16, FakeCarrierError> {
        let (signature, ts) = self.sign(body, unix_time);
        let headers =
            [("telnyx-signature-ed25519", signature.as_str()), ("telnyx-timestamp", ts.as_str())];
        let (status, _, _) =
            http.post_json(url, &headers, Bytes::from(body.to_string()), 64 * 1024).await?;
        Ok(status.as_u16())
    }

    /// Connects to `ws_url` as Telnyx would and runs one call's media; returns what it heard.
    pub async fn stream_call(
        &self,
        ws_url: &str,
        script: &StreamScript,
    ) -> Result<Recording, FakeCarrierError> {
        let connect_err = |e: &dyn std::fmt::Display| FakeCarrierError::Connect {
            url: ws_url.to_string(),
            reason: e.to_string(),
        };
        let ws = connect_media(ws_url, script.auth_token.as_deref(), None).await?;
        let (mut tx, mut rx) = ws.split();
        let mut connected = serde_json::json!({"event": "connected", "version": "1.0.0"});
        if let Some(token) = &script.auth_token {
            connected["x-telnyx-streaming-auth-token"] = token.clone().into();
        }
        let start = serde_json::json!({
            "event": "start", "sequence_number": "1", "stream_id": script.stream_id,
            "start": {"call_control_id": script.call_control_id, "from": "+15555550123", "to": "+15555550100",
                      "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1}}
        });
        let send_err = |e: tokio_tungstenite::tungstenite::Error| connect_err(&e);
        tx.send(Message::text(connected.to_string())).await.map_err(send_err)?;
        tx.send(Message::text(start.to_string())).await.map_err(send_err)?;

        let began = Instant::now();
        let mut recording = Recording::default();
        let mut player = Playout::default();
        let mut outgoing = script.caller_audio.chunks(160).enumerate();
        let frame = Duration::from_millis(20);
        let mut tick = tokio::time::interval(frame);
        let mut caller_done_at: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let now = Instant::now();
                    // The caller speaks…
                    match outgoing.next() {
                        Some((i, chunk)) => {
                            let media = serde_json::json!({
                                "event": "media", "sequence_number": (i + 2).to_string(), "stream_id": script.stream_id,
                                "media": {"track": "inbound", "chunk": (i + 1).to_string(), "timestamp": (i * 20).to_string(), "payload": BASE64.encode(chunk)}
                            });
                            if tx.send(Message::text(media.to_string())).await.is_err() { break; }
                        }
                        None => {
                            let done = *caller_done_at.get_or_insert(now);
                            if now.duration_since(done) >= script.linger { break; }
                        }
                    }
                    // …and hears 20 ms of whatever is queued.
                    for name in player.play(160, |a| recording.played.extend_from_slice(a)) {
                        recording.marks.push((name.clone(), now.duration_since(began)));
                        let ack = serde_json::json!({"event": "mark", "stream_id": script.stream_id, "mark": {"name": name}});
                        if tx.send(Message::text(ack.to_string())).await.is_err() { break; }
                    }
                }
                incoming = rx.next() => {
                    let Some(Ok(Message::Text(text))) = incoming else {
                        if matches!(incoming, None | Some(Err(_)) | Some(Ok(Message::Close(_)))) { return Ok(recording); }
                        continue;
                    };
                    let Ok(v) = serde_json::from_str::<serde_json::Value>(text.as_str()) else { recording.bad_frames += 1; continue };
                    match v["event"].as_str() {
                        Some("media") => match v["media"]["payload"].as_str().map(|p| BASE64.decode(p)) {
                            Some(Ok(audio)) => player.queue_audio(audio),
                            _ => recording.bad_frames += 1,
                        },
                        Some("mark") => match v["mark"]["name"].as_str() {
                            Some(name) => player.queue_mark(name),
                            None => recording.bad_frames += 1,
                        },
                        Some("clear") => {
                            recording.clears += 1;
                            let now = Instant::now();
                            for name in player.clear() {
                                recording.marks.push((name.clone(), now.duration_since(began)));
                                let ack = serde_json::json!({"event": "mark", "stream_id": script.stream_id, "mark": {"name": name}});
                                let _ = tx.send(Message::text(ack.to_string())).await;
                            }
                        }
                        _ => recording.bad_frames += 1,
                    }
                }
            }
        }
        let stop = serde_json::json!({"event": "stop", "sequence_number": "0", "stream_id": script.stream_id,
                                      "stop": {"call_control_id": script.call_control_id}});
        let _ = tx.send(Message::text(stop.to_string())).await;
        let _ = tx.close().await;
        Ok(recording)
    }
}

// `http` is re-exported by tungstenite; name it for the header error type.
use tokio_tungstenite::tungstenite::http as http_value;

/// Opens a media WebSocket to `ws_url` as a carrier does: the stream token header when there
/// is one, Twilio's signature of the upgrade when there is one, and the socket settings
/// Hermes's own sockets use.
pub(crate) async fn connect_media(
    ws_url: &str,
    auth_token: Option<&str>,
    twilio_signature: Option<&str>,
) -> Result<WebSocketStream<MaybeTlsStream<TcpStream>>, FakeCarrierError> {
    let connect_err = |e: &dyn std::fmt::Display| FakeCarrierError::Connect {
        url: ws_url.to_string(),
        reason: e.to_string(),
    };
    let mut request = ws_url.into_client_request().map_err(|e| connect_err(&e))?;
    if let Some(token) = auth_token {
        let value =
            token.parse().map_err(|e: http_value::header::InvalidHeaderValue| connect_err(&e))?;
        request.headers_mut().insert("x-telnyx-streaming-auth-token", value);
    }
    if let Some(signature) = twilio_signature {
        let value = signature
            .parse()
            .map_err(|e: http_value::header::InvalidHeaderValue| connect_err(&e))?;
        request.headers_mut().insert("x-twilio-signature", value);
    }
    let config = crate::net::ws::socket_config(1 << 20, 1 << 20);
    let (ws, _) = tokio_tungstenite::connect_async_with_config(request, Some(config), true)
        .await
        .map_err(|e| connect_err(&e))?;
    Ok(ws)
}
