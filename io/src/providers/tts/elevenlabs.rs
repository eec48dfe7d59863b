//! ElevenLabs text-to-speech (PROTOCOLS.md §4): the multi-context WebSocket (one socket per
//! call, opened when the call starts; one context per sentence, so a barge-in closes the
//! contexts in flight and the next sentence needs no new connection), and HTTP streaming as
//! the fallback when the socket is gone. Audio comes back as 8 kHz μ-law (`ulaw_8000`), ready
//! for the carrier.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use super::heard::ChunkAlignment;
use crate::net::http::{HttpClient, error_chain};
use crate::net::ws::{self, WsError};
use crate::providers::errors::{Provider, ProviderIssue, clip, report};

/// How to reach ElevenLabs and how the voice should sound.
#[derive(Clone)]
pub struct ElevenLabsSettings {
    /// `wss://api.elevenlabs.io` (or a fake's `ws://127.0.0.1:…`); HTTP uses the same host.
    pub base_url: String,
    pub api_key: String,
    pub voice_id: String,
    pub model_id: String,
    pub connect_timeout: Duration,
    pub speed: f64,
}

impl fmt::Debug for ElevenLabsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ElevenLabsSettings")
            .field("base_url", &self.base_url)
            .field("api_key", &"<redacted>")
            .field("voice_id", &self.voice_id)
            .field("model_id", &self.model_id)
            .finish_non_exhaustive()
    }
}

/// The multi-context socket's URL.
pub fn multi_stream_url(s: &ElevenLabsSettings) -> String {
    format!(
        "{}/v1/text-to-speech/{}/multi-stream-input?model_id={}&output_format=ulaw_8000\
         &inactivity_timeout=180&auto_mode=true",
        s.base_url.trim_end_matches('/'),
        s.voice_id,
        s.model_id
    )
}

/// The HTTP streaming endpoint, on the same host.
pub fn http_stream_url(s: &ElevenLabsSettings) -> String {
    let base = s.base_url.trim_end_matches('/');
    let base = base
        .strip_prefix("wss://")
        .map(|rest| format!("https://{rest}"))
        .or_else(|| base.strip_prefix("ws://").map(|rest| format!("http://{rest}")))
        .unwrap_or_else(|| base.to_string());
    format!(
        "{base}/v1/text-to-speech/{}/stream?output_format=ulaw_8000&optimize_streaming_latency=3",
        s.voice_id
    )
}

/// What a backend reports about one sentence.
#[derive(Clone, Debug, PartialEq)]
pub enum Chunk {
    /// Audio, with the characters it carries when the provider aligned them.
    Audio(Bytes, Option<ChunkAlignment>),
    /// All its audio has been delivered.
    End,
    /// The provider refused or failed this sentence.
    Error(String),
    /// The connection carrying it went away; another route may still speak it.
    Lost(String),
}

enum Out {
    Speak { id: u64, text: String },
    Cancel { id: u64 },
}

/// One call's multi-context socket. Dropping it closes the socket.
#[derive(Debug)]
pub struct MultiStream {
    commands: mpsc::UnboundedSender<Out>,
    task: JoinHandle<()>,
}

impl Drop for MultiStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn context(id: u64) -> String {
    format!("s{id}")
}

impl MultiStream {
    /// Opens the socket; chunks for each sentence id go to `chunks`.
    pub async fn connect(
        s: &ElevenLabsSettings,
        chunks: mpsc::Sender<(u64, Chunk)>,
    ) -> Result<MultiStream, WsError> {
        let url = multi_stream_url(s);
        let (socket, _) =
            ws::connect(&url, &[("xi-api-key", &s.api_key)], s.connect_timeout).await?;
        let (commands, mut rx) = mpsc::unbounded_channel::<Out>();
        let speed = s.speed;
        let task = tokio::spawn(async move {
            let (mut sink, mut source) = socket.split();
            let mut live: Vec<u64> = Vec::new();
            loop {
                tokio::select! {
                    command = rx.recv() => {
                        let Some(command) = command else {
                            let _ = ws::send_within(&mut sink, text(json!({"close_socket": true}))).await;
                            return;
                        };
                        let messages = match command {
                            Out::Speak { id, text: words } => {
                                live.push(id);
                                let ctx = context(id);
                                vec![
                                    json!({"text": " ", "context_id": ctx,
                                           "voice_settings": {"stability": 0.5, "similarity_boost": 0.8, "speed": speed},
                                           "generation_config": {"chunk_length_schedule": [50, 120, 160, 250]}}),
                                    json!({"text": format!("{} ", words.trim()), "context_id": ctx}),
                                    json!({"context_id": ctx, "flush": true}),
                                    json!({"context_id": ctx, "close_context": true}),
                                ]
                            }
                            Out::Cancel { id } => {
                                live.retain(|l| *l != id);
                                vec![json!({"context_id": context(id), "close_context": true})]
                            }
                        };
                        for m in messages {
                            if ws::send_within(&mut sink, text(m)).await.is_err() {
                                fail_all(&chunks, &live, "the ElevenLabs socket closed").await;
                                return;
                            }
                        }
                    }
                    message = source.next() => {
                        let reason = match message {
                            Some(Ok(Message::Text(t))) => {
                                on_message(&t, &mut live, &chunks).await;
                                continue;
                            }
                            Some(Ok(Message::Close(frame))) => frame.map_or("closed".to_string(), |f| format!("closed: {} {}", u16::from(f.code), f.reason)),
                            Some(Ok(_)) => continue,
                            Some(Err(e)) => e.to_string(),
                            None => "the connection dropped".to_string(),
                        };
                        fail_all(&chunks, &live, &format!("ElevenLabs {reason}")).await;
                        return;
                    }
                }
            }
        });
        Ok(MultiStream { commands, task })
    }

    /// Whether the socket is still up (a dead one means: use HTTP).
    pub fn is_alive(&self) -> bool {
        !self.task.is_finished()
    }

    pub fn speak(&self, id: u64, text: &str) {
        let _ = self.commands.send(Out::Speak { id, text: text.to_string() });
    }

    /// Stops generating `id`; its late audio is dropped here.
    pub fn cancel(&self, id: u64) {
        let _ = self.commands.send(Out::Cancel { id });
    }
}

fn text(v: Value) -> Message {
    Message::Text(v.to_string().into())
}

async fn fail_all(chunks: &mpsc::Sender<(u64, Chunk)>, live: &[u64], reason: &str) {
    for id in live {
        let _ = chunks.send((*id, Chunk::Lost(reason.to_string()))).await;
    }
}

/// Passes one server message on to the sentences in flight (`live`), and counts and logs
/// what is not audio or an end.
async fn on_message(text: &str, live: &mut Vec<u64>, chunks: &mpsc::Sender<(u64, Chunk)>) {
    match parse(text) {
        ServerMessage::Chunk(id, chunk) => {
            if let Chunk::Error(e) = &chunk {
                report(Provider::ElevenLabs, ProviderIssue::Error, &format!("context s{id}: {e}"));
            }
            if !live.contains(&id) {
                return; // cancelled: its late audio is dropped here
            }
            if matches!(chunk, Chunk::End | Chunk::Error(_)) {
                live.retain(|l| *l != id);
            }
            let _ = chunks.send((id, chunk)).await;
        }
        ServerMessage::SocketError(e) => {
            report(Provider::ElevenLabs, ProviderIssue::Error, &e);
            // It names no context, so it concerns them all: each sentence in flight goes to
            // the next voice now rather than waiting out its first-audio timeout.
            for id in live.drain(..) {
                let _ = chunks.send((id, Chunk::Error(format!("ElevenLabs: {e}")))).await;
            }
        }
        ServerMessage::Ignored => {}
        ServerMessage::Unknown(what) => report(Provider::ElevenLabs, ProviderIssue::Unknown, &what),
        ServerMessage::Malformed => report(
            Provider::ElevenLabs,
            ProviderIssue::Malformed,
            &format!("a message of {} bytes that is not ElevenLabs'", text.len()),
        ),
    }
}

/// What one message on the multi-context socket means (PROTOCOLS.md §4b).
#[derive(Clone, Debug, PartialEq)]
pub enum ServerMessage {
    /// Audio, the end, or an error, for one of our contexts (`s{id}`).
    Chunk(u64, Chunk),
    /// An error that names no context: it concerns the whole socket (the five-context
    /// limit, a quota, the key). "error: message", clipped.
    SocketError(String),
    /// For a context that is not ours, or nothing (`audio: null`).
    Ignored,
    /// A shape this client does not know: its keys, clipped.
    Unknown(String),
    /// Not JSON, not an object, or audio that is not base64.
    Malformed,
}

/// Reads one server message. Public for the fuzz target.
pub fn parse(message: &str) -> ServerMessage {
    let Ok(Value::Object(m)) = serde_json::from_str::<Value>(message) else {
        return ServerMessage::Malformed;
    };
    let v = Value::Object(m);
    let context = v["contextId"].as_str().or(v["context_id"].as_str());
    let ours = context.and_then(|c| c.strip_prefix('s')?.parse::<u64>().ok());
    if v["isFinal"].as_bool() == Some(true) {
        return ours.map_or(ServerMessage::Ignored, |id| ServerMessage::Chunk(id, Chunk::End));
    }
    if let Some(error) = error_of(&v) {
        return match (ours, context) {
            (Some(id), _) => ServerMessage::Chunk(id, Chunk::Error(error)),
            (None, None) => ServerMessage::SocketError(error),
            (None, Some(_)) => ServerMessage::Ignored,
        };
    }
    match &v["audio"] {
        Value::String(audio) => match base64::engine::general_purpose::STANDARD.decode(audio) {
            Ok(audio) => ours.map_or(ServerMessage::Ignored, |id| {
                ServerMessage::Chunk(id, Chunk::Audio(Bytes::from(audio), alignment(&v)))
            }),
            Err(_) => ServerMessage::Malformed,
        },
        Value::Null if v.get("audio").is_some() => ServerMessage::Ignored,
        _ => {
            let keys: Vec<&str> =
                v.as_object().into_iter().flatten().map(|(k, _)| k.as_str()).collect();
            ServerMessage::Unknown(clip(&format!("keys {keys:?}"), 120))
        }
    }
}

/// An error message's text: `{"message", "error", "code"}` (the error a code, or an object
/// with its own `message`), or a lone `message`.
fn error_of(v: &Value) -> Option<String> {
    let message = v["message"].as_str().unwrap_or("");
    let code = match &v["error"] {
        Value::String(e) => e.as_str(),
        Value::Object(e) => e.get("type").and_then(Value::as_str).unwrap_or("error"),
        Value::Null if !message.is_empty() && v.get("audio").is_none() => "error",
        _ => return None,
    };
    let message = match (&v["error"]["message"], message) {
        (Value::String(inner), "") => inner.as_str(),
        _ => message,
    };
    Some(clip(&format!("{code}: {message}"), 200))
}

/// A chunk's character timing: `alignment` (the characters of the text as sent), or
/// `normalizedAlignment` (after the provider's text normalisation) when that is all there is.
fn alignment(v: &Value) -> Option<ChunkAlignment> {
    let a = [&v["alignment"], &v["normalizedAlignment"]]
        .into_iter()
        .find(|a| a["charStartTimesMs"].is_array())?;
    let starts = a["charStartTimesMs"].as_array()?.iter().filter_map(Value::as_f64);
    Some(ChunkAlignment::from_starts(starts))
}

/// Speaks one sentence over HTTP streaming, sending its chunks as they arrive.
pub async fn http_speak(
    http: &HttpClient,
    s: &ElevenLabsSettings,
    id: u64,
    words: &str,
    chunks: &mpsc::Sender<(u64, Chunk)>,
) {
    let body = json!({"text": words, "model_id": s.model_id,
                      "voice_settings": {"stability": 0.5, "similarity_boost": 0.8, "speed": s.speed}});
    let url = http_stream_url(s);
    let response = match http
        .post_stream(&url, &[("xi-api-key", &s.api_key)], Bytes::from(body.to_string()))
        .await
    {
        Ok(r) => r,
        Err(e) => {
            let _ = chunks.send((id, Chunk::Error(e.to_string()))).await;
            return;
        }
    };
    if !response.status().is_success() {
        let status = response.status();
        let _ = chunks.send((id, Chunk::Error(format!("ElevenLabs HTTP {status}")))).await;
        return;
    }
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data()
                    && !data.is_empty()
                    && chunks.send((id, Chunk::Audio(data, None))).await.is_err()
                {
                    return;
                }
            }
            Err(e) => {
                let _ = chunks.send((id, Chunk::Error(error_chain(&e)))).await;
                return;
            }
        }
    }
    let _ = chunks.send((id, Chunk::End)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ElevenLabsSettings {
        ElevenLabsSettings {
            base_url: "wss://api.elevenlabs.io".into(),
            api_key: "secret".into(),
            voice_id: "21m00Tcm4TlvDq8ikWAM".into(),
            model_id: "eleven_flash_v2_5".into(),
            connect_timeout: Duration::from_secs(2),
            speed: 1.0,
        }
    }

    #[test]
    fn urls_ask_for_phone_audio_on_the_configured_host() {
        let s = settings();
        assert_eq!(
            multi_stream_url(&s),
            "wss://api.elevenlabs.io/v1/text-to-speech/21m00Tcm4TlvDq8ikWAM/multi-stream-input\
             ?model_id=eleven_flash_v2_5&output_format=ulaw_8000&inactivity_timeout=180&auto_mode=true"
        );
        assert_eq!(
            http_stream_url(&s),
            "https://api.elevenlabs.io/v1/text-to-speech/21m00Tcm4TlvDq8ikWAM/stream\
             ?output_format=ulaw_8000&optimize_streaming_latency=3"
        );
        assert!(!format!("{s:?}").contains("secret"));
    }

    #[test]
    fn server_messages_carry_audio_or_the_end_of_a_context() {
        let audio = base64::engine::general_purpose::STANDARD.encode([1u8, 2, 3]);
        let m = format!(r#"{{"audio":"{audio}","normalizedAlignment":null,"contextId":"s7"}}"#);
        assert_eq!(
            parse(&m),
            ServerMessage::Chunk(7, Chunk::Audio(Bytes::from_static(&[1, 2, 3]), None))
        );
        assert_eq!(
            parse(r#"{"isFinal":true,"contextId":"s7"}"#),
            ServerMessage::Chunk(7, Chunk::End)
        );
        assert_eq!(parse(r#"{"audio":"AAAA","contextId":"other"}"#), ServerMessage::Ignored);
        assert_eq!(parse(r#"{"audio":null,"isFinal":true}"#), ServerMessage::Ignored);
        assert_eq!(parse("not json"), ServerMessage::Malformed);
        assert_eq!(parse(r#"{"audio":"%%%","contextId":"s7"}"#), ServerMessage::Malformed);
    }

    #[test]
    fn an_error_names_its_context_or_concerns_the_whole_socket() {
        // PROTOCOLS §4b: the five-context limit, as the server words it (no context).
        let limit = r#"{"message":"Maximum simultaneous contexts per WebSocket connection exceeded (5).","error":"max_active_conversations","code":1008}"#;
        assert_eq!(
            parse(limit),
            ServerMessage::SocketError(
                "max_active_conversations: Maximum simultaneous contexts per WebSocket connection exceeded (5).".into()
            )
        );
        assert_eq!(
            parse(r#"{"message":"Text too long","error":"invalid_request","contextId":"s3"}"#),
            ServerMessage::Chunk(3, Chunk::Error("invalid_request: Text too long".into()))
        );
        assert_eq!(
            parse(r#"{"error":{"type":"quota_exceeded","message":"No credits left"}}"#),
            ServerMessage::SocketError("quota_exceeded: No credits left".into())
        );
        assert_eq!(
            parse(r#"{"message":"Something went wrong"}"#),
            ServerMessage::SocketError("error: Something went wrong".into())
        );
        assert_eq!(
            parse(r#"{"somethingNew":1,"contextId":"s3"}"#),
            ServerMessage::Unknown(r#"keys ["contextId", "somethingNew"]"#.into())
        );
    }

    #[test]
    fn the_documented_audio_message_carries_its_character_times() {
        // PROTOCOLS §4b, with the alignment the §4 example shows.
        let m = r#"{"audio":"AQID","normalizedAlignment":{"charStartTimesMs":[0,3],"charDurationsMs":[3,5],"chars":["H","i"]},
                    "alignment":{"charStartTimesMs":[40,43],"charDurationsMs":[3,5],"chars":["H","i"]},"contextId":"s9"}"#;
        let ServerMessage::Chunk(9, Chunk::Audio(audio, Some(alignment))) = parse(m) else {
            panic!("not parsed: {:?}", parse(m));
        };
        assert_eq!(audio.as_ref(), &[1, 2, 3]);
        // `alignment` wins, counted from the chunk's first character.
        assert_eq!(alignment.starts_ms, vec![0, 3]);
        let normalized_only = r#"{"audio":"AQID","normalizedAlignment":{"charStartTimesMs":[5,9,12],"chars":["a","b","c"]},"contextId":"s9"}"#;
        let ServerMessage::Chunk(_, Chunk::Audio(_, Some(alignment))) = parse(normalized_only)
        else {
            panic!("not parsed");
        };
        assert_eq!(alignment.starts_ms, vec![0, 4, 7]);
    }
}
