//! A whole call through the real path on loopback: the fake Telnyx streams a caller's speech
//! (espeak-ng) into the media server → audio core and VAD → the driver → fake Deepgram → the
//! call machine → fake Anthropic (answering from the offline brain) → fake ElevenLabs
//! (espeak-ng) → back to the carrier, with playout marks.
//!
//! And the same call task in virtual time (tokio's clock paused, the audio engine driven from
//! it, a carrier line double): the session's timings through the task, pinned to the tick.

mod common;

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hermes_core::audio::{AudioConfig, AudioEngine, EgressFrame};
use hermes_core::call::{CallConfig, CallLog, HangupReason, SpeakId};
use hermes_core::codec::G711;
use hermes_core::config::{BUILTIN_TOOLS, HermesConfig};
use hermes_core::engines::{TurnJudge, TurnJudgeFactory, TurnJudgement};
use hermes_core::units::{FRAME_SAMPLES, Samples};
use hermes_core::vad::EnergyVad;
use hermes_core::wall_clock::WallClock;
use hermes_io::call::{
    CallClocks, CallDeps, CarrierQueue, CarrierRequest, MediaCounters, MediaLink, MediaSettings,
    Outcome, Received, Speaker, StreamStart, Transport, WriteTimedOut, mark_name, run_call,
};
use hermes_io::fakes::carrier::{FakeTelnyx, Recording, StreamScript};
use hermes_io::fakes::deepgram::{FakeDeepgram, FakeDeepgramOptions};
use hermes_io::fakes::elevenlabs::FakeElevenLabs;
use hermes_io::fakes::llm::{FakeLlm, FakeLlmOptions};
use hermes_io::fakes::profile::{Fault, LatencyProfile};
use hermes_io::net::http::HttpClient;
use hermes_io::net::retry::RetryPolicy;
use hermes_io::observe::calls::CallCounters;
use hermes_io::observe::latency::LatencyBook;
use hermes_io::observe::recent::RecentCalls;
use hermes_io::providers::llm::{LlmClient, Protocol, RemoteSettings};
use hermes_io::providers::stt::{DeepgramSettings, LocalStt, LocalSttLoader, SttCounters};
use hermes_io::providers::tts::{ElevenLabsSettings, TtsCounters, TtsSettings};
use hermes_io::providers::turn::TurnJudges;
use hermes_io::records::{Outbox, RecordWriter, WriterSettings};
use hermes_io::server::Calls;
use hermes_io::store::SqliteStore;
use hermes_io::store::sessions::Sessions;
use hermes_io::tools::ProfileTools;
use hermes_models::voice::LocalVoice;
use tokio::sync::mpsc;

fn silence(ms: usize) -> Vec<u8> {
    vec![0xFF; ms * 8]
}

/// Hermes on loopback with the fakes, the embedded store and a driver per media stream.
/// A caller on `call_id` who waits `lead_ms`, says `words` in espeak-ng's voice, and stays
/// `tail_ms` more.
fn caller(
    voice: &LocalVoice,
    call_id: &str,
    lead_ms: usize,
    words: &str,
    tail_ms: usize,
) -> StreamScript {
    let mut audio = silence(lead_ms);
    audio.extend(voice.speak_ulaw(words).expect("speaks"));
    audio.extend(silence(tail_ms));
    StreamScript {
        call_control_id: call_id.into(),
        stream_id: format!("stream-{call_id}"),
        auth_token: None,
        caller_audio: audio,
        linger: Duration::from_secs(4),
    }
}

/// Streams `script` into the media server as Telnyx would; what the carrier heard, and the
/// driver's report of the call.
async fn place(
    addr: std::net::SocketAddr,
    reports: &mut mpsc::Receiver<hermes_io::call::CallReport>,
    script: &StreamScript,
) -> (Recording, hermes_io::call::CallReport) {
    let recording = FakeTelnyx::new([7; 32])
        .stream_call(&format!("ws://{addr}/telnyx/media"), script)
        .await
        .expect("the call runs");
    let report = tokio::time::timeout(Duration::from_secs(10), reports.recv())
        .await
        .expect("the driver finishes")
        .expect("a report");
    (recording, report)
}

/// Destructure with `_stop` and `_data` named: a field left to `..` is dropped at once.
struct Rig {
    voice: Arc<LocalVoice>,
    llm_fake: FakeLlm,
    stt_fake: FakeDeepgram,
    tts_fake: FakeElevenLabs,
    deps: Arc<CallDeps>,
    writer: Arc<RecordWriter>,
    store: SqliteStore,
    addr: std::net::SocketAddr,
    reports: mpsc::Receiver<hermes_io::call::CallReport>,
    carrier_rx: mpsc::Receiver<CarrierRequest>,
    _stop: tokio::sync::watch::Sender<bool>,
    _data: tempfile::TempDir,
}

async fn rig() -> Rig {
    rig_with(None, true).await
}

/// `local_stt`: this machine's transcriber; `cloud_stt`: whether calls are transcribed by the
/// fake Deepgram (then this machine's is their fallback).
async fn rig_with(local_stt: Option<LocalSttLoader>, cloud_stt: bool) -> Rig {
    let voice = Arc::new(LocalVoice::new("en-us", 175).expect("espeak-ng: run scripts/setup"));
    let addr = "127.0.0.1:0".parse().expect("addr");
    let llm_fake = FakeLlm::start(addr, FakeLlmOptions::default()).await.expect("llm fake");
    let stt_fake =
        FakeDeepgram::start(addr, FakeDeepgramOptions::default()).await.expect("stt fake");
    let tts_fake = FakeElevenLabs::start(addr, voice.clone(), LatencyProfile::ZERO, 5)
        .await
        .expect("tts fake");

    let http = HttpClient::new(Duration::from_secs(5)).expect("http");
    let config = Arc::new(HermesConfig::default());
    let llm = LlmClient::remote(
        http.clone(),
        RemoteSettings {
            protocol: Protocol::Anthropic,
            base_url: llm_fake.base_url(),
            api_key: "key".into(),
            model: config.providers.llm.model.clone(),
            fallback_model: String::new(),
            max_tokens: 300,
            temperature: None,
            stall_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
        },
    );
    let (carrier_queue, carrier_rx) = CarrierQueue::new(8);
    // The embedded defaults: a database file and in-process sessions.
    let data = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(data.path().join("hermes.db")).expect("embedded database");
    let outbox = Outbox::open(data.path().join("outbox.jsonl"), 1 << 20).expect("outbox");
    let writer =
        Arc::new(RecordWriter::start(Arc::new(store.clone()), outbox, WriterSettings::default()));
    let deps = Arc::new(CallDeps {
        config: config.clone(),
        llm,
        tools: Arc::new(ProfileTools::new(config.business.clone())),
        stt: cloud_stt.then(|| DeepgramSettings::new(&stt_fake.url(), "key", "nova-3", "en-US")),
        local_stt,
        turn_judge: None,
        stt_counters: Arc::new(SttCounters::default()),
        tts: TtsSettings {
            cloud: Some((
                ElevenLabsSettings {
                    base_url: tts_fake.url(),
                    api_key: "key".into(),
                    voice_id: "v".into(),
                    model_id: "eleven_flash_v2_5".into(),
                    connect_timeout: Duration::from_secs(2),
                    speed: 1.0,
                },
                http,
            )),
            first_audio_timeout: Duration::from_secs(2),
            local: voice.clone(),
            phrases: None,
        },
        tts_counters: Arc::new(TtsCounters::default()),
        counters: Arc::new(CallCounters::default()),
        carrier: Some(carrier_queue),
        sessions: Sessions::in_memory(Duration::from_secs(60), Duration::from_secs(300)),
        records: Some(writer.clone()),
        latency: Arc::new(LatencyBook::new(config.budgets.clone())),
        recent: Arc::new(RecentCalls::default()),
        // An ordinary open Tuesday morning, whatever day the test runs.
        clocks: CallClocks::new(WallClock::frozen(
            "2026-12-08T15:00:00Z".parse().expect("an instant"),
        )),
    });
    assert_eq!(BUILTIN_TOOLS.len(), config.tools.enabled.len());

    let (reports_tx, reports) = mpsc::channel(4);
    let calling = deps.clone();
    let calls = Calls::new(
        move || calling.clone(),
        move |report| {
            let _ = reports_tx.try_send(report);
        },
    );
    let common::MediaServer { addr, stop, .. } = common::media_server_with(
        MediaSettings::default(),
        Duration::from_secs(1),
        AudioConfig::default(),
        Some(Arc::new(calls)),
        |_| {},
    )
    .await;

    Rig {
        voice,
        llm_fake,
        stt_fake,
        tts_fake,
        deps,
        writer,
        store,
        addr,
        reports,
        carrier_rx,
        _stop: stop,
        _data: data,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_asks_for_a_booking_and_hears_the_agent_ask_which_day() {
    let Rig {
        voice,
        llm_fake,
        stt_fake,
        tts_fake,
        deps,
        writer,
        store,
        addr,
        mut reports,
        mut carrier_rx,
        _stop,
        _data,
    } = rig().await;
    stt_fake.scripts.set("call-e2e", ["I'd like to book a haircut."]);

    // The caller waits out the greeting, asks, then listens.
    let script = caller(&voice, "call-e2e", 5000, "I'd like to book a haircut.", 1000);
    let (recording, report) = place(addr, &mut reports, &script).await;

    // What the agent said, as the voice provider received it.
    let said: Vec<String> =
        tts_fake.texts.lock().expect("log").iter().map(|(_, t)| t.clone()).collect();
    assert_eq!(
        said.first().map(String::as_str),
        Some("Thanks for calling Maple Street Hair, this is Sam. How can I help?")
    );
    assert!(said.iter().any(|t| t == "What day would suit you?"), "{said:?}");
    // The model saw the caller's words.
    let requests = llm_fake.requests.lock().expect("log").clone();
    let last = requests.last().expect("an LLM request");
    assert!(last.to_string().contains("I'd like to book a haircut."), "{last}");
    // The carrier played the greeting and the answer, and acknowledged their marks in order.
    let marks: Vec<u64> = recording
        .marks
        .iter()
        .map(|(m, _)| m.trim_start_matches('s').parse().expect("a sentence mark"))
        .collect();
    assert!(marks.len() >= 2, "greeting and answer: {marks:?}");
    assert!(marks.windows(2).all(|w| w[0] < w[1]), "in order: {marks:?}");
    assert!(recording.played.len() > 8000 * 3, "{} bytes of agent audio", recording.played.len());
    // The call record.
    assert_eq!(report.call_control_id, "call-e2e");
    // The ended call is counted once, under its record's outcome (for /metrics).
    let c = &deps.counters;
    let by_outcome =
        [&c.outcome_completed, &c.outcome_escalated, &c.outcome_abandoned, &c.outcome_callback]
            .iter()
            .map(|n| n.load(std::sync::atomic::Ordering::Relaxed))
            .sum::<u64>();
    assert_eq!(by_outcome, 1);
    assert_eq!(c.calls_ended.load(std::sync::atomic::Ordering::Relaxed), 1);
    // The turn is in the latency book and the call among the dashboard's recent calls.
    let now = std::time::Instant::now();
    let v2v_stage = deps.latency.summary(now).into_iter().find(|s| s.stage == "voice_to_voice");
    assert!(v2v_stage.is_some_and(|s| s.since_start.count >= 1 && s.window.count >= 1));
    assert!(deps.recent.call("call-e2e").is_some_and(|r| r.turns.len() >= 3));
    assert!(deps.recent.active().is_empty());
    assert!(
        report.transcript.contains(&(Speaker::Caller, "I'd like to book a haircut.".into())),
        "{:?}",
        report.transcript
    );
    assert!(
        report
            .transcript
            .iter()
            .any(|(s, t)| *s == Speaker::Agent && t == "What day would suit you?")
    );
    assert_eq!(report.outcome, Outcome::Abandoned, "the caller hung up first");
    let turn = report.turns.iter().find(|t| t.voice_to_voice().is_some()).expect("a measured turn");
    let v2v = turn.voice_to_voice().expect("measured");
    assert!(v2v < Duration::from_secs(3), "voice-to-voice {v2v:?}");
    assert!(
        carrier_rx.try_recv().is_err(),
        "no hang-up or transfer asked of the carrier: {:?}",
        carrier_rx.try_recv()
    );

    // The record went through the batching writer into the embedded database.
    writer.flush().await;
    let record = store.show_call("call-e2e").await.expect("reads").expect("the call is recorded");
    assert_eq!(record.outcome.as_str(), "abandoned");
    let caller_turn =
        record.turns.iter().position(|t| t.speaker == "caller").expect("a caller turn");
    assert_eq!(record.turns[caller_turn].text, "I'd like to book a haircut.");
    let answer = &record.turns[caller_turn + 1];
    assert_eq!(answer.speaker, "agent");
    assert!(answer.heard.contains("What day would suit you?"), "{answer:?}");
    assert_eq!(
        answer.voice_to_voice_ms,
        Some(v2v.as_millis() as u32),
        "the turn's voice-to-voice as the machine measured it"
    );
    assert!(answer.stages.iter().any(|(s, _)| s == "llm_first_token"), "{:?}", answer.stages);
    assert!(record.turns[0].heard.starts_with("Thanks for calling"), "the greeting was heard");

    // The carrier reconnects the media stream for the same call: the conversation resumes
    // where it was, without a second greeting, and the record carries on.
    tts_fake.texts.lock().expect("log").clear();
    let again = StreamScript { caller_audio: silence(3000), ..script };
    let (_, resumed) = place(addr, &mut reports, &again).await;
    assert!(resumed.resumed);
    let said: Vec<String> =
        tts_fake.texts.lock().expect("log").iter().map(|(_, t)| t.clone()).collect();
    assert_eq!(
        said.first().map(String::as_str),
        Some("Sorry, the line dropped for a moment. I'm still here.")
    );
    assert!(!said.iter().any(|t| t.starts_with("Thanks for calling")), "{said:?}");
    writer.flush().await;
    let record = store.show_call("call-e2e").await.expect("reads").expect("recorded");
    assert!(record.turns.iter().any(|t| t.text == "I'd like to book a haircut."), "kept");
    assert!(record.turns.iter().any(|t| t.text.starts_with("Sorry, the line dropped")));
    assert_eq!(store.list_calls(10).await.expect("lists").len(), 1, "one call, one record");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_who_talks_over_the_greeting_leaves_only_the_words_heard_in_context_and_record() {
    // Bound by name so the media server and the database folder live to the end.
    let Rig { voice, llm_fake, stt_fake, writer, store, addr, mut reports, _stop, _data, .. } =
        rig().await;
    stt_fake.scripts.set("call-barge", ["I'd like to book a haircut."]);
    // The greeting takes about four seconds; the caller starts talking two seconds in.
    let script = caller(&voice, "call-barge", 2000, "I'd like to book a haircut.", 1000);
    let (_, report) = place(addr, &mut reports, &script).await;
    assert!(report.logs.contains(&CallLog::BargeIn), "{:?}", report.logs);

    let greeting = "Thanks for calling Maple Street Hair, this is Sam. How can I help?";
    // The record: what was heard of the greeting, whole words, marked as cut.
    writer.flush().await;
    let record = store.show_call("call-barge").await.expect("reads").expect("recorded");
    let heard = record.turns[0]
        .heard
        .strip_suffix('—')
        .unwrap_or_else(|| panic!("the greeting was cut: {:?}", record.turns));
    assert!(
        !heard.is_empty() && greeting.starts_with(heard) && heard.len() < greeting.len() - 10,
        "{heard:?}"
    );
    assert_eq!(greeting.as_bytes().get(heard.len()), Some(&b' '), "whole words: {heard:?}");
    // The model was told exactly that, before the caller's words.
    let requests = llm_fake.requests.lock().expect("log").clone();
    let first = requests.first().expect("an LLM request").to_string();
    let cut = first.find(&format!("{heard}—")).expect("the heard part is in the context");
    let asked = first.find("I'd like to book a haircut.").expect("the caller's words");
    assert!(cut < asked, "{first}");
    assert!(!first.contains(greeting), "the unheard rest is not: {first}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_cloud_transcriber_the_caller_is_understood_by_moonshine_on_this_machine() {
    let models = hermes_models::models_dir_under(
        &std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."),
    );
    let moonshine = hermes_models::moonshine::MoonshineFiles::installed_in(&models);
    let engine = LocalStt::start(&moonshine, 1).expect("Moonshine loads (run scripts/setup)");
    let Rig { voice, llm_fake, writer, store, addr, mut reports, deps, _stop, _data, .. } =
        rig_with(Some(LocalSttLoader::running(engine.clone())), false).await;
    let question = "What time do you open on Saturday?";
    let script = caller(&voice, "call-local", 5000, question, 1500);
    let (_, report) = place(addr, &mut reports, &script).await;
    // The caller's words, as Moonshine heard them, reached the model and the record.
    let said: Vec<&String> =
        report.transcript.iter().filter(|(s, _)| *s == Speaker::Caller).map(|(_, t)| t).collect();
    assert_eq!(said.len(), 1, "{:?}", report.transcript);
    let norm = |t: &str| t.to_lowercase().replace(['?', '.', ','], "");
    assert_eq!(norm(said[0]), norm(question));
    let requests = llm_fake.requests.lock().expect("log").clone();
    assert!(requests.iter().any(|r| r.to_string().contains("Saturday")), "{requests:?}");
    assert!(engine.counters.utterances.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    assert_eq!(deps.counters.stt_unavailable.load(std::sync::atomic::Ordering::Relaxed), 0);
    writer.flush().await;
    let record = store.show_call("call-local").await.expect("reads").expect("recorded");
    let answer = record.turns.iter().skip_while(|t| t.speaker != "caller").nth(1);
    assert!(answer.is_some_and(|t| t.speaker == "agent" && !t.heard.is_empty()), "{record:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_whose_deepgram_drops_mid_question_is_understood_by_moonshine_loaded_on_first_need()
 {
    let models = hermes_models::models_dir_under(
        &std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."),
    );
    let moonshine = hermes_models::moonshine::MoonshineFiles::installed_in(&models);
    let local = LocalSttLoader::on_first_need(Arc::new(moonshine), 1);
    let Rig { voice, llm_fake, stt_fake, addr, mut reports, deps, _stop, _data, .. } =
        rig_with(Some(local.clone()), true).await;
    let question = "What time do you open on Saturday?";
    stt_fake.scripts.set("call-drop", [question]);
    // The caller starts at 5 s; Deepgram's connection drops a moment into the question and
    // every reconnect is refused.
    stt_fake.faults.push(Fault::DropAfter(265));
    for _ in 0..DeepgramSettings::new("", "", "", "").reconnect.attempts {
        stt_fake.faults.push(Fault::Status(503));
    }
    let script = caller(&voice, "call-drop", 5000, question, 4000);
    let (_, report) = place(addr, &mut reports, &script).await;
    assert!(local.running_now().is_some(), "Moonshine was loaded when the call needed it");
    // The question, cut from the call's tape, as Moonshine heard it, reached the model.
    let said: Vec<&String> =
        report.transcript.iter().filter(|(s, _)| *s == Speaker::Caller).map(|(_, t)| t).collect();
    let norm = |t: &str| t.to_lowercase().replace(['?', '.', ','], "");
    assert_eq!(said.iter().map(|t| norm(t)).collect::<Vec<_>>(), [norm(question)]);
    let requests = llm_fake.requests.lock().expect("log").clone();
    assert!(requests.iter().any(|r| r.to_string().contains("Saturday")), "{requests:?}");
    let asked = report.transcript.iter().position(|(s, _)| *s == Speaker::Caller);
    assert!(
        asked.is_some_and(|i| report.transcript[i + 1..].iter().any(|(s, _)| *s == Speaker::Agent)),
        "answered: {:?}",
        report.transcript
    );
    let c = &deps.counters;
    let get = |n: &std::sync::atomic::AtomicU64| n.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!((get(&c.stt_failed), get(&c.stt_fallback_local)), (1, 1));
    assert_eq!(get(&c.stt_fallback_handoff), 0);
    assert!(get(&local.counters().utterances) >= 1);
}

// ----- the thin task in virtual time -----
//
// tokio's clock is paused, so the call task's one `now` per turn, its one timer and the line's
// idle timer move only as the test's ticks do; the audio engine is the driven one, ticked from
// the same clock; the carrier is a line double in memory and this machine's voice a tone of
// fixed length per character. Nothing waits on real time, so the session's timings through
// the task are pinned to the tick.

/// What the caller's side puts on the line double.
enum FromCaller {
    /// The stream starts: the call's id, and the number the far end says was dialled.
    Start(String, String),
    Audio(Vec<u8>),
}

/// What the call sent the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sent {
    Audio(Option<SpeakId>),
    Mark(SpeakId),
    Clear,
    Close,
}

/// A carrier line in memory. Marks are echoed at once (a carrier with no jitter buffer);
/// everything the call sends is written down with its virtual time since the line opened.
struct LineDouble {
    from_caller: mpsc::UnboundedReceiver<FromCaller>,
    echoes: VecDeque<SpeakId>,
    sent: Arc<Mutex<Vec<(Duration, Sent)>>>,
    opened: tokio::time::Instant,
}

/// What one message on the line double carries, as the call task reads it.
enum LineMessage {
    Caller(FromCaller),
    Echo(SpeakId),
}

impl LineDouble {
    fn note(&self, what: Sent) {
        self.sent.lock().expect("log").push((self.opened.elapsed(), what));
    }
}

impl Transport for LineDouble {
    type Incoming = LineMessage;

    async fn recv(&mut self) -> Option<LineMessage> {
        if let Some(speak) = self.echoes.pop_front() {
            return Some(LineMessage::Echo(speak));
        }
        self.from_caller.recv().await.map(LineMessage::Caller)
    }

    fn read<'a>(&'a mut self, incoming: LineMessage, audio: &mut [u8]) -> Received<'a> {
        match incoming {
            LineMessage::Echo(speak) => Received::Mark(Cow::Owned(mark_name(speak))),
            LineMessage::Caller(FromCaller::Start(call_id, to)) => Received::Start(StreamStart {
                stream_id: Cow::Borrowed("stream-1"),
                call_control_id: Cow::Owned(call_id),
                codec: G711::Mulaw,
                sample_rate: 8000,
                from: Some(Cow::Borrowed("+15550100001")),
                to: Some(Cow::Owned(to)),
                client_state: None,
                auth_token: None,
            }),
            LineMessage::Caller(FromCaller::Audio(frame)) => {
                audio[..frame.len()].copy_from_slice(&frame);
                Received::Audio { len: frame.len(), wideband: None }
            }
        }
    }

    fn started(&mut self, _: &StreamStart<'_>) {}

    async fn send_audio(&mut self, frame: &EgressFrame) -> Result<(), WriteTimedOut> {
        self.note(Sent::Audio(frame.speak));
        Ok(())
    }

    async fn send_mark(&mut self, speak: SpeakId) -> Result<(), WriteTimedOut> {
        self.note(Sent::Mark(speak));
        self.echoes.push_back(speak);
        Ok(())
    }

    async fn send_clear(&mut self) -> Result<(), WriteTimedOut> {
        self.note(Sent::Clear);
        Ok(())
    }

    async fn send_note(&mut self, _: &str) -> Result<(), WriteTimedOut> {
        Ok(())
    }

    async fn close(&mut self, _reason: hermes_io::call::CloseReason) {
        self.note(Sent::Close);
    }
}

/// What the caller does at each moment of the call.
type CallerScript = fn(Duration) -> CallerDoes;

enum CallerDoes {
    Listens,
    Talks,
    /// The caller hangs up (the line closes from their side).
    HangsUp,
}

/// What one call in virtual time left behind.
struct VirtualCall {
    report: hermes_io::call::CallReport,
    sent: Vec<(Duration, Sent)>,
    carrier: Vec<CarrierRequest>,
    config: Arc<HermesConfig>,
}

impl VirtualCall {
    /// When each line's first audio frame went out, in order.
    fn line_starts(&self) -> Vec<(SpeakId, Duration)> {
        let mut starts: Vec<(SpeakId, Duration)> = Vec::new();
        for (at, sent) in &self.sent {
            if let Sent::Audio(Some(speak)) = sent
                && !starts.iter().any(|(s, _)| s == speak)
            {
                starts.push((*speak, *at));
            }
        }
        starts
    }

    fn first(&self, wanted: Sent) -> Option<Duration> {
        self.sent.iter().find(|(_, s)| *s == wanted).map(|(at, _)| *at)
    }

    fn last_audio_of(&self, speak: SpeakId) -> Option<Duration> {
        self.sent.iter().rev().find(|(_, s)| *s == Sent::Audio(Some(speak))).map(|(at, _)| *at)
    }

    /// When the call's record noted `kind` (its `n`-th time, from 0).
    fn noted(&self, kind: &str, n: usize) -> Option<Duration> {
        let record = self.report.record.as_ref()?;
        let at = record.events.iter().filter(|e| e.kind == kind).nth(n)?.at_ms;
        Some(Duration::from_millis(at))
    }

    /// The first line whose audio started at `t` or later, and when.
    fn first_line_from(&self, t: Duration) -> Option<(SpeakId, Duration)> {
        self.line_starts().into_iter().find(|(_, at)| *at >= t)
    }

    /// What the caller heard the agent say, line by line, and what they said.
    fn said_by(&self, who: Speaker) -> Vec<&str> {
        self.report.transcript.iter().filter(|(s, _)| *s == who).map(|(_, t)| t.as_str()).collect()
    }
}

/// The 1.5 s rule: whatever fails, the caller hears a sentence, a fallback or a handoff within
/// this of the failure.
const RULE: Duration = Duration::from_millis(1500);

/// Runs one call through `run_call` in virtual time, the caller following `script`, until
/// the call ends (at most `limit`), with nothing remote: the offline brain, the tone voice,
/// no transcriber.
async fn call_in_virtual_time(script: CallerScript, limit: Duration) -> VirtualCall {
    let config = Arc::new(HermesConfig::default());
    let (carrier_queue, mut carrier_rx) = CarrierQueue::new(8);
    let deps = common::offline_call_deps(&config, carrier_queue);
    virtual_call(&deps, &mut carrier_rx, "call-virtual", "+15550100002", script, limit).await
}

/// The offline dependencies on `config`, changed by `change` (a transcriber, a language
/// model…), and where their carrier requests go.
fn deps_with(
    config: HermesConfig,
    change: impl FnOnce(&mut CallDeps),
) -> (Arc<CallDeps>, mpsc::Receiver<CarrierRequest>) {
    let config = Arc::new(config);
    let (carrier_queue, carrier_rx) = CarrierQueue::new(8);
    let mut deps = (*common::offline_call_deps(&config, carrier_queue)).clone();
    change(&mut deps);
    (Arc::new(deps), carrier_rx)
}

/// Runs one call on `deps` through `run_call` in virtual time: the stream of `call_id`, which
/// says `to` was dialled, the caller following `script`, until the call ends (at most
/// `limit`). `carrier_rx`: where `deps` sends its carrier requests.
async fn virtual_call(
    deps: &Arc<CallDeps>,
    carrier_rx: &mut mpsc::Receiver<CarrierRequest>,
    call_id: &str,
    to: &str,
    script: CallerScript,
    limit: Duration,
) -> VirtualCall {
    let config = deps.config.clone();
    let mut audio_config =
        AudioConfig { workers: Some(1), pin_workers: false, ..AudioConfig::default() };
    // As the binary starts it: with an end-of-turn model, the VAD reports short pauses.
    audio_config.vad.min_silence = config.vad_pause(deps.turn_judge.is_some());
    // The engine's sample 0 is now on tokio's paused clock, so the VAD's instants and the
    // task's are one time line.
    let epoch = tokio::time::Instant::now().into_std();
    let (engine, mut workers) =
        AudioEngine::start_driven_at(audio_config, Arc::new(EnergyVad::default()), epoch)
            .expect("engine");
    let (to_call, from_caller) = mpsc::unbounded_channel();
    let sent = Arc::new(Mutex::new(Vec::new()));
    let line = LineDouble {
        from_caller,
        echoes: VecDeque::new(),
        sent: sent.clone(),
        opened: tokio::time::Instant::now(),
    };
    let link = MediaLink::new(
        line,
        Arc::new(engine),
        MediaSettings::default(),
        Arc::new(MediaCounters::default()),
        None,
    );
    let call = tokio::spawn(run_call(link, deps.clone()));
    to_call.send(FromCaller::Start(call_id.into(), to.into())).expect("the line is open");

    // The carrier's 20 ms: one frame of the caller's line, then one tick of the engine.
    let tick = Duration::from_millis(20);
    let mut clock = tokio::time::interval(tick);
    let mut elapsed = Duration::ZERO;
    let mut to_call = Some(to_call);
    while !call.is_finished() {
        // This machine's transcriber works on threads of its own, in real time: the clock
        // waits for it, as it waits for the voice (a blocking task).
        if let Some(local) = deps.local_stt.as_ref().and_then(|l| l.running_now()) {
            while local.in_flight() > 0 {
                std::thread::sleep(Duration::from_micros(100));
            }
        }
        // So does the end-of-turn judge.
        if let Some(judges) = &deps.turn_judge {
            while judges.in_flight() > 0 {
                std::thread::sleep(Duration::from_micros(100));
            }
        }
        clock.tick().await;
        assert!(elapsed < limit, "the call did not end within {limit:?}");
        let frame = match script(elapsed) {
            CallerDoes::Listens => Some(vec![0xFF; FRAME_SAMPLES]),
            CallerDoes::Talks => Some(common::tone(20)),
            CallerDoes::HangsUp => None,
        };
        match (frame, &to_call) {
            (Some(frame), Some(line)) => {
                let _ = line.send(FromCaller::Audio(frame));
            }
            (None, _) => to_call = None,
            (Some(_), None) => {}
        }
        elapsed += tick;
        workers.tick(Samples(elapsed.as_millis() as u64 * 8));
    }
    let report = call.await.expect("the call task ends cleanly");
    let mut carrier = Vec::new();
    while let Ok(request) = carrier_rx.try_recv() {
        carrier.push(request);
    }
    let sent = sent.lock().expect("log").clone();
    VirtualCall { report, sent, carrier, config }
}

/// Whether `actual` is `expected`, or up to `slack` after it (the playout's tick and lead).
/// The engine ticks every 20 ms; a line's first frame goes out on the tick after it is
/// queued, so two ticks bound it.
fn on_time(actual: Duration, expected: Duration, slack: Duration) -> bool {
    actual >= expected && actual <= expected + slack
}

#[tokio::test(start_paused = true)]
async fn in_virtual_time_a_silent_caller_hears_the_silence_ladder_on_its_timings() {
    let call = call_in_virtual_time(|_| CallerDoes::Listens, Duration::from_secs(60)).await;
    let c = &call.config.conversation;
    let ms = |m: u64| Duration::from_millis(m);
    let slack = ms(40);
    let starts = call.line_starts();
    let [(greeting, _), (filler, filler_at), (offer, offer_at), (goodbye, goodbye_at)] = starts[..]
    else {
        panic!("greeting, silence prompt, callback offer, goodbye: {starts:?}");
    };
    // The ladder counts from when the greeting's question was heard (its mark came back).
    let asked = call.first(Sent::Mark(greeting)).expect("the greeting was heard");
    assert!(
        on_time(filler_at, asked + c.silence_filler_after_ms.as_duration(), slack),
        "prompt at {filler_at:?}, question heard at {asked:?}"
    );
    assert!(call.first(Sent::Mark(filler)).is_some_and(|heard| heard < offer_at));
    assert!(
        on_time(offer_at, asked + c.silence_callback_after_ms.as_duration(), slack),
        "offer at {offer_at:?}, question heard at {asked:?}"
    );
    // The goodbye never cuts the offer off: due while the offer still plays, it waits for
    // it, then gives the caller the configured gap to answer.
    let offer_heard = call.first(Sent::Mark(offer)).expect("the offer was heard");
    let gap = c.silence_hangup_after_ms.as_duration() - c.silence_callback_after_ms.as_duration();
    let goodbye_due = (asked + c.silence_hangup_after_ms.as_duration()).max(offer_heard + gap);
    assert!(
        on_time(goodbye_at, goodbye_due, slack),
        "goodbye at {goodbye_at:?}, due {goodbye_due:?}"
    );
    // The goodbye is heard whole, then the carrier is asked to hang up, and the line closes.
    assert!(call.first(Sent::Mark(goodbye)).is_some());
    assert_eq!(call.first(Sent::Clear), None, "nothing was cut");
    assert!(
        matches!(&call.carrier[..], [CarrierRequest::Hangup { call_control_id }] if call_control_id == "call-virtual"),
        "{:?}",
        call.carrier
    );
    assert!(call.first(Sent::Close).is_some_and(|closed| closed > goodbye_at));
    assert_eq!(call.report.outcome, Outcome::EndedByAgent(HangupReason::Silence));
}

#[tokio::test(start_paused = true)]
async fn in_virtual_time_a_caller_who_talks_over_the_greeting_cuts_it_and_a_false_start_asks_again()
{
    // The caller coughs for 800 ms a second into the greeting, and says nothing after. The
    // agent talks on until the barge-in minimum confirms it (no pause): a cut, then a false
    // start.
    let talks_from = Duration::from_millis(1000);
    let talks_until = Duration::from_millis(1800);
    let mut config = HermesConfig::default();
    config.conversation.barge_in_pause = false;
    let (deps, mut carrier_rx) = deps_with(config, |_| {});
    let call = virtual_call(
        &deps,
        &mut carrier_rx,
        "call-virtual",
        "+15550100002",
        |t| {
            if (1000..1800).contains(&t.as_millis()) {
                CallerDoes::Talks
            } else {
                CallerDoes::Listens
            }
        },
        Duration::from_secs(60),
    )
    .await;
    let c = &call.config.conversation;
    let ms = |m: u64| Duration::from_millis(m);
    let starts = call.line_starts();
    let (greeting, _) = starts[0];
    // The barge-in waits out its minimum from the VAD's decision, while the caller talks.
    let cleared = call.first(Sent::Clear).expect("the greeting is cleared from the carrier");
    assert!(
        cleared >= talks_from + c.barge_in_min_ms.as_duration() && cleared < talks_until,
        "cleared at {cleared:?}"
    );
    // Nothing of the greeting goes out after the clear, and its mark never comes.
    assert!(call.last_audio_of(greeting).is_some_and(|last| last <= cleared));
    assert_eq!(call.first(Sent::Mark(greeting)), None);
    // No words followed: once the false-start window has passed, the agent asks again.
    let (again, again_at) = starts[1];
    assert!(
        on_time(again_at, cleared + c.false_start_window_ms.as_duration(), ms(100)),
        "asked again at {again_at:?}, cleared at {cleared:?}"
    );
    let logs = &call.report.logs;
    assert!(logs.contains(&CallLog::BargeIn) && logs.contains(&CallLog::FalseStart), "{logs:?}");
    // What the caller heard of the greeting is in the record, cut at a word; the rest of
    // the call's lines (no caller turn came between them) follow it whole.
    let record = call.report.record.as_ref().expect("a record");
    let greeting_text = "Thanks for calling Maple Street Hair, this is Sam. How can I help?";
    assert!(record.turns[0].text.starts_with(greeting_text), "{:?}", record.turns[0]);
    let (heard, rest) = record.turns[0].heard.split_once('—').expect("the greeting was cut");
    assert!(!heard.is_empty() && greeting_text.starts_with(heard), "{heard:?}");
    assert!(heard.len() < greeting_text.len(), "{heard:?}");
    assert!(rest.starts_with(" Are you still there?"), "{rest:?}");
    assert!(call.first(Sent::Mark(again)).is_some(), "the question again was heard");
}

// ----- a provider fails: within 1.5 s the caller hears a sentence, a fallback or a handoff -----

const QUESTION: &str = "What time do you open on Saturday?";

/// When the caller of [`asks_then_hangs_up`] stops speaking: the rule's clock starts there
/// (what the caller waits through), not where Hermes noticed a provider was gone.
const QUESTION_ENDS: Duration = Duration::from_millis(7600);

/// The caller asks [`QUESTION`] from 6 s to 7.6 s (the greeting heard), listens, and hangs up
/// at 16 s.
#[tokio::test(start_paused = true)]
async fn in_virtual_time_a_cough_over_the_greeting_pauses_it_and_it_goes_on_to_its_mark_whole() {
    fn coughs(t: Duration) -> CallerDoes {
        if (1000..1160).contains(&t.as_millis()) { CallerDoes::Talks } else { CallerDoes::Listens }
    }
    fn listens(_: Duration) -> CallerDoes {
        CallerDoes::Listens
    }
    let coughed = call_in_virtual_time(coughs, Duration::from_secs(60)).await;
    let quiet = call_in_virtual_time(listens, Duration::from_secs(60)).await;
    let (greeting, _) = coughed.line_starts()[0];
    let sent_at = |call: &VirtualCall| -> Vec<Duration> {
        call.sent
            .iter()
            .filter(|(_, s)| *s == Sent::Audio(Some(greeting)))
            .map(|(t, _)| *t)
            .collect()
    };
    let (paused, unpaused) = (sent_at(&coughed), sent_at(&quiet));
    assert_eq!(
        paused.len(),
        unpaused.len(),
        "every frame of the greeting once: no repeat, no loss"
    );
    assert_eq!(coughed.first(Sent::Clear), None, "nothing was cut");
    assert!(coughed.first(Sent::Mark(greeting)).is_some(), "the greeting was heard to its end");
    // It stopped after the cough began and went on once its voice had ended.
    let gap = paused.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default();
    assert!(gap >= Duration::from_millis(200), "the longest gap between frames: {gap:?}");
    let logs = &coughed.report.logs;
    assert!(
        logs.contains(&CallLog::PlayoutPaused)
            && logs.contains(&CallLog::PlayoutResumed)
            && !logs.contains(&CallLog::BargeIn),
        "{logs:?}"
    );
    let record = coughed.report.record.as_ref().expect("a record");
    assert!(!record.turns[0].heard.contains('—'), "heard whole: {:?}", record.turns[0]);
}

fn asks_then_hangs_up(t: Duration) -> CallerDoes {
    match t.as_millis() {
        6000..7600 => CallerDoes::Talks,
        0..16_000 => CallerDoes::Listens,
        _ => CallerDoes::HangsUp,
    }
}

/// A fake Deepgram whose first connection drops after `frames` frames of audio, and that
/// refuses every reconnect.
async fn deepgram_that_drops_after(frames: usize, call_id: &str) -> FakeDeepgram {
    let loopback = "127.0.0.1:0".parse().expect("addr");
    let fake = FakeDeepgram::start(loopback, FakeDeepgramOptions::default()).await.expect("fake");
    fake.scripts.set(call_id, [QUESTION]);
    fake.faults.push(Fault::DropAfter(frames));
    for _ in 0..DeepgramSettings::new("", "", "", "").reconnect.attempts {
        fake.faults.push(Fault::Status(503));
    }
    fake
}

fn count(n: &std::sync::atomic::AtomicU64) -> u64 {
    n.load(std::sync::atomic::Ordering::Relaxed)
}

#[tokio::test(start_paused = true)]
async fn in_virtual_time_a_transcriber_dropped_mid_utterance_is_transcribed_locally_and_answered() {
    // Deepgram's connection drops 0.4 s into the question (frame 320 of the call's audio).
    let stt_fake = deepgram_that_drops_after(320, "call-dropped").await;
    let local = LocalSttLoader::on_first_need(Arc::new(common::CannedTranscriber(QUESTION)), 1);
    let (deps, mut carrier_rx) = deps_with(HermesConfig::default(), |d| {
        d.stt = Some(DeepgramSettings::new(&stt_fake.url(), "key", "nova-3", "en-US"));
        d.local_stt = Some(local.clone());
    });
    let call = virtual_call(
        &deps,
        &mut carrier_rx,
        "call-dropped",
        "+15555550100",
        asks_then_hangs_up,
        Duration::from_secs(30),
    )
    .await;
    // The reconnects were refused, then this machine's transcriber took over: loaded at
    // first need, it transcribed the question from the call's tape.
    let fell_back = call.noted("stt_fell_back", 0).expect("the call fell back");
    assert!(fell_back > Duration::from_millis(6400), "after the drop: {fell_back:?}");
    assert!(local.running_now().is_some(), "loaded at first need");
    assert_eq!(call.said_by(Speaker::Caller), [QUESTION], "{:?}", call.report.transcript);
    // …and answered within the rule, without a "didn't catch that" first.
    let (answer, answered_at) = call.first_line_from(fell_back).expect("an answer");
    assert!(
        answered_at <= QUESTION_ENDS + RULE,
        "answered at {answered_at:?}, the question ended at {QUESTION_ENDS:?}, fell back {fell_back:?}"
    );
    assert!(call.first(Sent::Mark(answer)).is_some(), "the answer was heard");
    assert!(!call.report.logs.contains(&CallLog::NothingTranscribed), "{:?}", call.report.logs);
    let answer_text = call.said_by(Speaker::Agent).last().copied().unwrap_or_default();
    assert!(answer_text.contains("Saturday"), "{answer_text:?}");
    let c = &deps.counters;
    assert_eq!((count(&c.stt_failed), count(&c.stt_fallback_local)), (1, 1));
    assert_eq!(count(&c.stt_fallback_handoff), 0);
    assert_eq!(call.report.outcome, Outcome::Abandoned, "the caller hung up at the end");
}

#[tokio::test(start_paused = true)]
async fn in_virtual_time_a_transcriber_lost_with_no_local_model_hands_the_call_to_a_person() {
    let stt_fake = deepgram_that_drops_after(320, "call-no-model").await;
    let mut config = HermesConfig::default();
    config.business.transfer_number = "+15555550199".into();
    // A fallback is configured, but its model is not installed: the load fails.
    let local = LocalSttLoader::on_first_need(Arc::new(common::NoModelInstalled), 1);
    let (deps, mut carrier_rx) = deps_with(config, |d| {
        d.stt = Some(DeepgramSettings::new(&stt_fake.url(), "key", "nova-3", "en-US"));
        d.local_stt = Some(local);
    });
    let call = virtual_call(
        &deps,
        &mut carrier_rx,
        "call-no-model",
        "+15555550100",
        asks_then_hangs_up,
        Duration::from_secs(30),
    )
    .await;
    let lost = call.noted("transcriber_lost", 0).expect("the transcriber was lost");
    // The caller is told, at once, and handed to the team.
    let (line, said_at) = call.first_line_from(lost).expect("a line after the loss");
    assert!(said_at <= QUESTION_ENDS + RULE, "said at {said_at:?}, lost at {lost:?}");
    let persona = &call.config.persona;
    let expected = format!("{} {}", CallConfig::default().cannot_hear, persona.escalation_line);
    let last = call.said_by(Speaker::Agent).last().copied().unwrap_or_default();
    assert!(last.ends_with(&expected), "{last:?}");
    let heard = call.first(Sent::Mark(line)).expect("the handoff line was heard");
    assert!(
        matches!(&call.carrier[..], [CarrierRequest::Transfer { call_control_id, to }]
            if call_control_id == "call-no-model" && to == "+15555550199"),
        "{:?}",
        call.carrier
    );
    assert!(call.first(Sent::Close).is_none_or(|closed| closed > heard));
    assert_eq!(call.report.outcome, Outcome::Escalated);
    assert!(call.report.logs.contains(&CallLog::TranscriberLost));
    let c = &deps.counters;
    assert_eq!((count(&c.stt_fallback_local), count(&c.stt_fallback_handoff)), (0, 1));
}

#[tokio::test(start_paused = true)]
async fn in_virtual_time_a_call_on_a_node_with_no_transcriber_at_all_is_told_and_transferred_at_once()
 {
    let mut config = HermesConfig::default();
    config.business.transfer_number = "+15555550199".into();
    // No Deepgram key and no model installed: what `serve` wires then.
    let (deps, mut carrier_rx) = deps_with(config, |d| {
        d.stt = None;
        d.local_stt = Some(LocalSttLoader::unavailable());
    });
    let call = virtual_call(
        &deps,
        &mut carrier_rx,
        "call-deaf-node",
        "+15555550100",
        asks_then_hangs_up,
        Duration::from_secs(30),
    )
    .await;
    // Told before the caller has asked anything (6 s), not after a silence hang-up.
    let lost = call.noted("transcriber_lost", 0).expect("the transcriber was lost");
    assert!(lost < Duration::from_secs(6), "lost at {lost:?}");
    let last = call.said_by(Speaker::Agent).last().copied().unwrap_or_default();
    assert!(last.contains(&CallConfig::default().cannot_hear), "{last:?}");
    assert!(
        matches!(&call.carrier[..], [CarrierRequest::Transfer { to, .. }] if to == "+15555550199"),
        "{:?}",
        call.carrier
    );
    assert_eq!(call.report.outcome, Outcome::Escalated);
    assert_eq!(count(&deps.counters.stt_fallback_handoff), 1);
}

#[tokio::test(start_paused = true)]
async fn in_virtual_time_a_local_transcriber_failing_utterance_after_utterance_hands_the_call_over()
{
    let mut config = HermesConfig::default();
    config.business.transfer_number = "+15555550199".into();
    let local = LocalSttLoader::on_first_need(Arc::new(common::FailingTranscriber), 1);
    let (deps, mut carrier_rx) = deps_with(config, |d| {
        d.stt = None;
        d.local_stt = Some(local);
    });
    // Three questions, each failed by the transcriber.
    let call = virtual_call(
        &deps,
        &mut carrier_rx,
        "call-shed",
        "+15555550100",
        |t| match t.as_millis() {
            6000..7600 | 12_000..13_600 | 18_000..19_600 => CallerDoes::Talks,
            0..40_000 => CallerDoes::Listens,
            _ => CallerDoes::HangsUp,
        },
        Duration::from_secs(60),
    )
    .await;
    let lost = call.noted("transcriber_lost", 0).expect("handed off");
    assert!(lost > Duration::from_millis(19_600), "after the third utterance: {lost:?}");
    assert!(
        matches!(&call.carrier[..], [CarrierRequest::Transfer { to, .. }] if to == "+15555550199"),
        "{:?}",
        call.carrier
    );
    assert_eq!(count(&deps.counters.stt_failed), 3);
    assert_eq!(count(&deps.counters.stt_fallback_handoff), 1);
}

#[tokio::test(start_paused = true)]
async fn in_virtual_time_a_transcriber_unreachable_with_nothing_to_take_over_and_no_one_to_transfer_to_ends_the_call_politely()
 {
    // Nothing listens where Deepgram should be.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let nowhere = format!("ws://{}/v1/listen", closed.local_addr().expect("addr"));
    drop(closed);
    let mut config = HermesConfig::default();
    config.business.transfer_number = String::new();
    let (deps, mut carrier_rx) = deps_with(config, |d| {
        d.stt = Some(DeepgramSettings::new(&nowhere, "key", "nova-3", "en-US"));
        d.local_stt = None;
    });
    let call = virtual_call(
        &deps,
        &mut carrier_rx,
        "call-unreachable",
        "+15555550100",
        |_| CallerDoes::Listens,
        Duration::from_secs(30),
    )
    .await;
    let lost = call.noted("transcriber_lost", 0).expect("the transcriber was lost");
    let (_, said_at) = call.first_line_from(lost).expect("a line after the loss");
    assert!(said_at <= lost + RULE, "said at {said_at:?}, lost at {lost:?}");
    let goodbye = call.config.persona.goodbye.replace("{business}", &call.config.business.name);
    let expected = format!("{} {goodbye}", CallConfig::default().cannot_hear);
    let last = call.said_by(Speaker::Agent).last().copied().unwrap_or_default();
    assert!(last.ends_with(&expected), "{last:?}");
    assert!(
        matches!(&call.carrier[..], [CarrierRequest::Hangup { call_control_id }] if call_control_id == "call-unreachable"),
        "{:?}",
        call.carrier
    );
    assert_eq!(call.report.outcome, Outcome::EndedByAgent(HangupReason::TranscriberLost));
    let c = &deps.counters;
    assert_eq!((count(&c.stt_unavailable), count(&c.stt_fallback_handoff)), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn in_virtual_time_a_language_model_refusing_every_request_is_covered_by_a_filler_then_a_handoff()
 {
    let loopback = "127.0.0.1:0".parse().expect("addr");
    let llm_fake = FakeLlm::start(loopback, FakeLlmOptions::default()).await.expect("llm fake");
    for _ in 0..32 {
        llm_fake.faults.push(Fault::Status(529));
    }
    let mut config = HermesConfig::default();
    config.business.transfer_number = "+15555550199".into();
    let l = config.providers.llm.clone();
    let llm = LlmClient::remote(
        HttpClient::new(Duration::from_secs(5)).expect("http"),
        RemoteSettings {
            protocol: Protocol::Anthropic,
            base_url: llm_fake.base_url(),
            api_key: "key".into(),
            model: l.model,
            fallback_model: l.fallback_model,
            max_tokens: l.max_tokens,
            temperature: None,
            stall_timeout: l.first_token_timeout_ms.as_duration(),
            request_timeout: l.request_timeout_ms.as_duration(),
            // As `serve` retries.
            retry: RetryPolicy {
                attempts: l.max_retries,
                first_backoff: Duration::from_millis(250),
                max_backoff: Duration::from_secs(1),
            },
        },
    );
    let local = LocalStt::start(&common::CannedTranscriber(QUESTION), 1).expect("starts");
    let (deps, mut carrier_rx) = deps_with(config, |d| {
        d.llm = llm;
        d.local_stt = Some(LocalSttLoader::running(local));
    });
    let call = virtual_call(
        &deps,
        &mut carrier_rx,
        "call-llm-down",
        "+15555550100",
        asks_then_hangs_up,
        Duration::from_secs(30),
    )
    .await;
    // Each failed completion (its retries spent) is followed within the rule: first by a
    // filler while a fresh one is tried, then, failing again, by the handoff.
    let first = call.noted("llm_failed", 0).expect("the completion failed");
    let (_, filler_at) = call.first_line_from(first).expect("a filler");
    assert!(filler_at <= first + RULE, "filler at {filler_at:?}, failed at {first:?}");
    let second = call.noted("llm_failed", 1).expect("the retry failed too");
    let (_, handoff_at) = call.first_line_from(second).expect("the handoff line");
    assert!(handoff_at <= second + RULE, "handoff at {handoff_at:?}, failed at {second:?}");
    let persona = &call.config.persona;
    let record = call.report.record.as_ref().expect("a record");
    let spoken: Vec<&str> =
        record.turns.iter().filter(|t| t.speaker == "agent").map(|t| t.text.as_str()).collect();
    assert!(spoken.iter().any(|t| t.contains(&persona.fillers[0])), "{spoken:?}");
    let agent = call.said_by(Speaker::Agent);
    assert_eq!(agent.last().copied(), Some(persona.escalation_line.as_str()));
    assert!(matches!(&call.carrier[..], [CarrierRequest::Transfer { .. }]), "{:?}", call.carrier);
    assert_eq!(call.report.outcome, Outcome::Escalated);
}

#[tokio::test(start_paused = true)]
async fn in_virtual_time_a_voice_provider_refusing_to_speak_is_replaced_by_the_local_voice_at_once()
{
    let loopback = "127.0.0.1:0".parse().expect("addr");
    let tone: Arc<dyn hermes_core::engines::Voice> = Arc::new(common::ToneVoice);
    let tts_fake =
        FakeElevenLabs::start(loopback, tone, LatencyProfile::ZERO, 5).await.expect("tts fake");
    // The socket is refused, and so is the sentence sent over HTTP instead.
    tts_fake.faults.push(Fault::Status(500));
    tts_fake.faults.push(Fault::Status(500));
    let (deps, mut carrier_rx) = deps_with(HermesConfig::default(), |d| {
        d.tts.cloud = Some((
            ElevenLabsSettings {
                base_url: tts_fake.url(),
                api_key: "key".into(),
                voice_id: "v".into(),
                model_id: "eleven_flash_v2_5".into(),
                connect_timeout: Duration::from_secs(3),
                speed: 1.0,
            },
            HttpClient::new(Duration::from_secs(5)).expect("http"),
        ));
    });
    let call = virtual_call(
        &deps,
        &mut carrier_rx,
        "call-voice-down",
        "+15555550100",
        |t| if t < Duration::from_secs(8) { CallerDoes::Listens } else { CallerDoes::HangsUp },
        Duration::from_secs(30),
    )
    .await;
    // The greeting, asked of the cloud at the call's start, is spoken by this machine's voice
    // within the rule, and heard.
    let [(greeting, greeted_at), ..] = call.line_starts()[..] else { panic!("no line") };
    assert!(greeted_at <= RULE, "greeting at {greeted_at:?}");
    assert!(call.first(Sent::Mark(greeting)).is_some());
    assert!(count(&deps.tts_counters.fallbacks) >= 1);
    assert!(call.said_by(Speaker::Agent)[0].starts_with("Thanks for calling"));
}

// ----- the semantic end of turn: an end-of-turn model judges the caller's pauses -----

/// A judge that calls every pause complete, or every pause incomplete.
struct FixedJudge(bool);

impl TurnJudgeFactory for FixedJudge {
    fn load(&self) -> Result<Box<dyn TurnJudge>, hermes_core::engines::EngineFailure> {
        Ok(Box::new(FixedJudge(self.0)))
    }
}

impl TurnJudge for FixedJudge {
    fn judge_16k(
        &mut self,
        _: &[f32],
    ) -> Result<TurnJudgement, hermes_core::engines::EngineFailure> {
        Ok(TurnJudgement { complete_probability: if self.0 { 0.9 } else { 0.1 }, complete: self.0 })
    }
    fn judge_g711(
        &mut self,
        _: G711,
        audio: &[u8],
    ) -> Result<TurnJudgement, hermes_core::engines::EngineFailure> {
        assert!(audio.len() <= 8 * 8000, "at most the model's 8 s");
        self.judge_16k(&[])
    }
}

/// The caller asks [`QUESTION`] (its voice ends at 7.6 s), transcribed on this machine, with
/// `judge` calling pauses complete (`Some(true)`), incomplete, or no model at all (`None`):
/// how long after the voice the answer's first audio went out, and the call.
async fn answered_after(judge: Option<bool>) -> (Duration, VirtualCall) {
    let local = LocalStt::start(&common::CannedTranscriber(QUESTION), 1).expect("transcriber");
    let mut config = HermesConfig::default();
    config.conversation.smart_turn.enabled = true;
    let (deps, mut carrier_rx) = deps_with(config, |d| {
        d.local_stt = Some(LocalSttLoader::running(local));
        d.turn_judge = judge.map(|c| TurnJudges::start(&FixedJudge(c), 1).expect("judges"));
    });
    let call = virtual_call(
        &deps,
        &mut carrier_rx,
        "call-judged",
        "+15555550100",
        asks_then_hangs_up,
        Duration::from_secs(30),
    )
    .await;
    let voice_end = Duration::from_millis(7600);
    let (_, answered_at) = call.first_line_from(voice_end).expect("an answer");
    assert_eq!(call.said_by(Speaker::Caller), [QUESTION]);
    (answered_at - voice_end, call)
}

#[tokio::test(start_paused = true)]
async fn in_virtual_time_a_pause_judged_complete_is_answered_sooner_and_incomplete_no_sooner() {
    let (old, _) = answered_after(None).await;
    let (complete, call) = answered_after(Some(true)).await;
    let (incomplete, _) = answered_after(Some(false)).await;
    // The old policy: the VAD's 320 ms window, then endpointing_min_ms (300).
    assert!(old >= Duration::from_millis(620), "{old:?}");
    // Judged complete: 200 ms after the voice (complete_after_ms), not 620.
    assert!(complete + Duration::from_millis(400) <= old, "{complete:?} against {old:?}");
    assert!(call.report.logs.contains(&CallLog::TurnComplete), "{:?}", call.report.logs);
    // Judged incomplete (a long question, no short answer): incomplete_after_ms (700) from
    // the voice's end as the VAD dates it.
    assert!(incomplete >= Duration::from_millis(650), "{incomplete:?}");
    assert!(incomplete >= complete + Duration::from_millis(450), "{incomplete:?}");
}

// ----- memory: many calls leave bounded state, which returns to nothing -----

#[tokio::test(start_paused = true)]
async fn in_virtual_time_many_callers_dialling_made_up_numbers_leave_bounded_state_that_expires() {
    use hermes_io::store::sessions::{MemorySizes, RESUME_WINDOW, SWEEP_EVERY};
    const CALLS: usize = 24;
    let local = LocalStt::start(&common::CannedTranscriber(QUESTION), 1).expect("starts");
    let (deps, mut carrier_rx) =
        deps_with(HermesConfig::default(), |d| d.local_stt = Some(LocalSttLoader::running(local)));
    let metrics_lines = |deps: &CallDeps| {
        let mut out = hermes_io::metrics::Exposition::new();
        for source in deps.metric_sources() {
            source.render(&mut out);
        }
        out.finish().lines().count()
    };
    let mut lines_after_first = 0;
    for i in 0..CALLS {
        // Each caller's stream says another number was dialled (the far end chooses it), and
        // each hangs up first: its snapshot is kept for a reconnect.
        let call = virtual_call(
            &deps,
            &mut carrier_rx,
            &format!("call-mem-{i}"),
            &format!("+1999555{i:04}"),
            asks_then_hangs_up,
            Duration::from_secs(30),
        )
        .await;
        assert_eq!(call.said_by(Speaker::Caller), [QUESTION], "call {i}: {:?}", call.report);
        if i == 0 {
            lines_after_first = metrics_lines(&deps);
        }
    }
    let now = tokio::time::Instant::now().into_std();
    // Numbers the business does not have share one series: /metrics did not grow.
    let numbers: Vec<String> = deps.latency.by_number(now).into_iter().map(|(n, ..)| n).collect();
    assert_eq!(numbers, [hermes_io::observe::latency::OTHER_NUMBER]);
    assert_eq!(metrics_lines(&deps), lines_after_first);
    assert_eq!(deps.recent.sizes(), (0, CALLS), "none in progress; the last ones kept");
    let sizes = deps.sessions.memory_sizes().expect("in memory");
    assert_eq!(sizes.active, 0);
    assert!(sizes.sessions <= CALLS, "{sizes:?}");
    // Nobody reads the ended calls' snapshots again; the sweep drops them once a reconnect
    // can no longer come.
    tokio::time::sleep(RESUME_WINDOW + 2 * SWEEP_EVERY).await;
    assert_eq!(deps.sessions.memory_sizes(), Some(MemorySizes::default()));
    let c = deps.sessions.counters();
    assert_eq!(count(&c.sessions_expired), CALLS as u64);
    assert_eq!(count(&c.sessions_evicted), 0);
}
