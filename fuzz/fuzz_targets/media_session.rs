//! Sequences of frames through a call's media link — the real WebSocket adapter in one of the
//! three dialects (Telnyx, Twilio, the browser phone), the media link and the audio core, with
//! the agent's audio, line ends, barge-in clears and engine ticks interleaved as the input
//! says. Invariants: no panic; one start at most; nothing after the stream ended; caller audio
//! in 160 ms pieces at most; a bounded number of events per step.
//!
//! The input: a dialect byte, then steps of an op byte and an argument byte (raw frames take
//! that many bytes more). `cargo fuzz run media_session` (from `fuzz/`; seeds in
//! `fuzz/seeds/media_session`).

#![no_main]

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use hermes_core::audio::{AudioConfig, AudioEngine, DrivenWorkers};
use hermes_core::call::SpeakId;
use hermes_core::units::Samples;
use hermes_core::vad::EnergyVad;
use hermes_io::call::{MediaCounters, MediaEvent, MediaLink, MediaSettings, Wake};
use hermes_io::carriers::Dialect;
use hermes_io::carriers::phone::PhoneDialect;
use hermes_io::carriers::telnyx::media::TelnyxDialect;
use hermes_io::carriers::twilio::media::TwilioDialect;
use hermes_io::carriers::websocket::{WsIncoming, WsTransport};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, DuplexStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

/// One engine for the whole run, its workers driven by hand; the clock only moves forward.
struct World {
    runtime: tokio::runtime::Runtime,
    engine: Arc<AudioEngine>,
    workers: Mutex<(DrivenWorkers, u64)>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let config = AudioConfig {
            workers: Some(1),
            pin_workers: false,
            max_calls_per_worker: 16,
            max_vad_batch: 4,
            ..AudioConfig::default()
        };
        let (engine, workers) =
            AudioEngine::start_driven(config, Arc::new(EnergyVad::default())).expect("engine");
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        World { runtime, engine: Arc::new(engine), workers: Mutex::new((workers, 0)) }
    })
}

/// Runs the engine `frames` ticks on.
fn tick(frames: u64) {
    let Ok(mut w) = world().workers.lock() else { return };
    for _ in 0..frames {
        w.1 += 160;
        let at = Samples(w.1);
        w.0.tick(at);
    }
}

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn bytes(&mut self, n: usize) -> &[u8] {
        let (taken, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        taken
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Telnyx,
    Twilio,
    Phone,
}

fn start(kind: Kind, arg: u8) -> Message {
    Message::text(match kind {
        Kind::Telnyx => format!(
            r#"{{"event":"start","sequence_number":"1","stream_id":"S1","start":{{"call_control_id":"v3:c{arg}","from":"+15555550100","to":"+15555550199","media_format":{{"encoding":"{}","sample_rate":8000,"channels":1}}}}}}"#,
            if arg.is_multiple_of(2) { "PCMU" } else { "PCMA" }
        ),
        Kind::Twilio => format!(
            r#"{{"event":"start","sequenceNumber":"1","start":{{"streamSid":"MZ1","callSid":"CA{arg}","tracks":["inbound"],"mediaFormat":{{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}},"streamSid":"MZ1"}}"#
        ),
        Kind::Phone => format!(
            r#"{{"event":"start","sample_rate":{}}}"#,
            if arg.is_multiple_of(2) { 16000 } else { 8000 }
        ),
    })
}

fn media(kind: Kind, audio: &[u8], arg: u8) -> Message {
    let payload = base64::engine::general_purpose::STANDARD.encode(audio);
    let track = if arg.is_multiple_of(5) { "outbound" } else { "inbound" };
    match kind {
        Kind::Telnyx => Message::text(format!(
            r#"{{"event":"media","sequence_number":"{arg}","media":{{"track":"{track}","chunk":"1","timestamp":"5","payload":"{payload}"}},"stream_id":"S1"}}"#
        )),
        Kind::Twilio => Message::text(format!(
            r#"{{"event":"media","sequenceNumber":"{arg}","media":{{"track":"{track}","chunk":"1","timestamp":"5","payload":"{payload}"}},"streamSid":"MZ1"}}"#
        )),
        Kind::Phone => Message::binary(audio.to_vec()),
    }
}

fn simple(kind: Kind, event: &str, field: &str, value: &str) -> Message {
    Message::text(match kind {
        Kind::Phone => format!(r#"{{"event":"{event}","{field}":"{value}"}}"#),
        _ => {
            format!(r#"{{"event":"{event}","{event}":{{"{field}":"{value}"}},"streamSid":"MZ1"}}"#)
        }
    })
}

async fn drain(mut far_end: DuplexStream) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = far_end.read(&mut buf).await {
        if n == 0 {
            return;
        }
    }
}

async fn run(data: &[u8]) {
    let mut input = Input(data);
    let Some(first) = input.byte() else { return };
    let (kind, dialect): (Kind, Box<dyn Dialect>) = match first % 3 {
        0 => (Kind::Telnyx, Box::new(TelnyxDialect)),
        1 => (Kind::Twilio, Box::new(TwilioDialect::with_rest(first & 0x80 != 0))),
        _ => (Kind::Phone, Box::new(PhoneDialect::new("web-fuzz".into()))),
    };
    let (ours, far_end) = tokio::io::duplex(64 * 1024);
    tokio::spawn(drain(far_end));
    let ws = WebSocketStream::from_raw_socket(ours, Role::Server, None).await;
    let transport = WsTransport::new(ws, dialect, Duration::from_millis(50));
    let world = world();
    // The last run's call is gone: a tick lets its worker see so, and its slot is freed.
    tick(1);
    world.engine.collect_garbage();
    let mut link = MediaLink::new(
        transport,
        Arc::clone(&world.engine),
        MediaSettings::default(),
        Arc::new(MediaCounters::default()),
        None,
    );
    let mut started = false;
    let mut ended = false;
    while let (Some(op), Some(arg)) = (input.byte(), input.byte()) {
        if link.is_over() {
            break; // the call's task reads nothing more from an ended stream
        }
        let speak = SpeakId(u64::from(arg % 8));
        match op % 14 {
            0 => {
                let connected = Message::text(r#"{"event":"connected","version":"1.0.0"}"#);
                link.handle(Wake::Incoming(WsIncoming::Message(connected))).await;
            }
            1 => link.handle(Wake::Incoming(WsIncoming::Message(start(kind, arg)))).await,
            2 => {
                let audio = input.bytes(usize::from(arg) * 8).to_vec();
                let m = media(kind, &audio, arg);
                link.handle(Wake::Incoming(WsIncoming::Message(m))).await;
            }
            3 => {
                let name =
                    if arg.is_multiple_of(4) { format!("x{arg}") } else { format!("s{}", arg % 8) };
                let m = simple(kind, "mark", "name", &name);
                link.handle(Wake::Incoming(WsIncoming::Message(m))).await;
            }
            4 => {
                let digit = char::from(b"0123456789*#A"[usize::from(arg) % 13]).to_string();
                let m = simple(kind, "dtmf", "digit", &digit);
                link.handle(Wake::Incoming(WsIncoming::Message(m))).await;
            }
            5 => {
                let stop = Message::text(r#"{"event":"stop"}"#);
                link.handle(Wake::Incoming(WsIncoming::Message(stop))).await;
            }
            6 => {
                let text = String::from_utf8_lossy(input.bytes(usize::from(arg) * 4)).into_owned();
                link.handle(Wake::Incoming(WsIncoming::Message(Message::text(text)))).await;
            }
            7 => {
                let frame = input.bytes(usize::from(arg) * 16).to_vec();
                link.handle(Wake::Incoming(WsIncoming::Message(Message::binary(frame)))).await;
            }
            8 => link.play(speak, Bytes::from(vec![0x55u8; usize::from(arg) * 16 + 1])),
            9 => link.end_line(speak).await,
            10 => link.clear().await,
            11 => {
                tick(u64::from(arg % 16) + 1);
                link.handle(Wake::Audio).await;
            }
            12 => {
                let note = WsIncoming::Note(format!("note {arg}"));
                link.handle(Wake::Incoming(note)).await;
            }
            _ => {
                let close = Message::Close(None);
                link.handle(Wake::Incoming(WsIncoming::Message(close))).await;
            }
        }
        let mut events = 0;
        while let Some(event) = link.poll_event() {
            events += 1;
            assert!(!ended, "an event after the stream ended: {event:?}");
            match event {
                MediaEvent::Started(_) => {
                    assert!(!started, "a second start");
                    started = true;
                }
                MediaEvent::CallerAudio { g711, .. } => assert!(g711.len() <= 8 * 160),
                MediaEvent::Ended(_) => ended = true,
                _ => {}
            }
        }
        assert!(events <= 64, "{events} events from one step");
        assert_eq!(link.is_over(), ended);
    }
    link.close().await;
}

fuzz_target!(|data: &[u8]| {
    world().runtime.block_on(run(data));
});
