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
use hermes_core::call::{CallLog, HangupReason, SpeakId};
use hermes_core::codec::G711;
use hermes_core::config::{BUILTIN_TOOLS, HermesConfig};
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
use hermes_io::fakes::profile::LatencyProfile;
use hermes_io::net::http::HttpClient;
use hermes_io::net::retry::RetryPolicy;
use hermes_io::observe::calls::CallCounters;
use hermes_io::observe::latency::LatencyBook;
use hermes_io::observe::recent::RecentCalls;
use hermes_io::providers::llm::{LlmClient, Protocol, RemoteSettings};
use hermes_io::providers::stt::{DeepgramSettings, LocalStt, SttCounters};
use hermes_io::providers::tts::{ElevenLabsSettings, TtsCounters, TtsSettings};
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
    rig_with(None).await
}

/// With `local_stt`, callers are transcribed on this machine instead of by the fake Deepgram.
async fn rig_with(local_stt: Option<LocalStt>) -> Rig {
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
        stt: match local_stt {
            Some(_) => None,
            None => Some(DeepgramSettings::new(&stt_fake.url(), "key", "nova-3", "en-US")),
        },
        local_stt,
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
        rig_with(Some(engine.clone())).await;
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

// ----- the thin task in virtual time -----
//
// tokio's clock is paused, so the call task's one `now` per turn, its one timer and the line's
// idle timer move only as the test's ticks do; the audio engine is the driven one, ticked from
// the same clock; the carrier is a line double in memory and this machine's voice a tone of
// fixed length per character. Nothing waits on real time, so the session's timings through
// the task are pinned to the tick.

/// What the caller's side puts on the line double.
enum FromCaller {
    Start(&'static str),
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
            LineMessage::Caller(FromCaller::Start(call_id)) => Received::Start(StreamStart {
                stream_id: Cow::Borrowed("stream-1"),
                call_control_id: Cow::Borrowed(call_id),
                codec: G711::Mulaw,
                sample_rate: 8000,
                from: Some(Cow::Borrowed("+15550100001")),
                to: Some(Cow::Borrowed("+15550100002")),
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
}

/// Runs one call through `run_call` in virtual time, the caller following `script`, until
/// the call ends (at most `limit`).
async fn call_in_virtual_time(script: CallerScript, limit: Duration) -> VirtualCall {
    let config = Arc::new(HermesConfig::default());
    let audio_config =
        AudioConfig { workers: Some(1), pin_workers: false, ..AudioConfig::default() };
    // The engine's sample 0 is now on tokio's paused clock, so the VAD's instants and the
    // task's are one time line.
    let epoch = tokio::time::Instant::now().into_std();
    let (engine, mut workers) =
        AudioEngine::start_driven_at(audio_config, Arc::new(EnergyVad::default()), epoch)
            .expect("engine");
    let (carrier_queue, mut carrier_rx) = CarrierQueue::new(8);
    let deps = common::offline_call_deps(&config, carrier_queue);
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
    let call = tokio::spawn(run_call(link, deps));
    to_call.send(FromCaller::Start("call-virtual")).expect("the line is open");

    // The carrier's 20 ms: one frame of the caller's line, then one tick of the engine.
    let tick = Duration::from_millis(20);
    let mut clock = tokio::time::interval(tick);
    let mut elapsed = Duration::ZERO;
    while !call.is_finished() {
        clock.tick().await;
        assert!(elapsed < limit, "the call did not end within {limit:?}");
        let frame = match script(elapsed) {
            CallerDoes::Listens => vec![0xFF; FRAME_SAMPLES],
            CallerDoes::Talks => common::tone(20),
        };
        let _ = to_call.send(FromCaller::Audio(frame));
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
    // The caller coughs for 800 ms a second into the greeting, and says nothing after.
    let talks_from = Duration::from_millis(1000);
    let talks_until = Duration::from_millis(1800);
    let call = call_in_virtual_time(
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
