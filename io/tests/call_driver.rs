//! A whole call through the real path on loopback: the fake Telnyx streams a caller's speech
//! (espeak-ng) into the media server → audio core and VAD → the driver → fake Deepgram → the
//! call machine → fake Anthropic (answering from the offline brain) → fake ElevenLabs
//! (espeak-ng) → back to the carrier, with playout marks.

mod common;

use std::sync::Arc;
use std::time::Duration;

use hermes_core::config::{BUILTIN_TOOLS, HermesConfig};
use hermes_core::wall_clock::WallClock;
use hermes_io::call::{CallClocks, CallDeps, CarrierQueue, MediaSettings, Outcome, Speaker};
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
    carrier_rx: mpsc::Receiver<hermes_io::call::CarrierRequest>,
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
        hermes_core::audio::AudioConfig::default(),
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
    assert!(report.logs.contains(&hermes_core::call::CallLog::BargeIn), "{:?}", report.logs);

    let greeting = "Thanks for calling Maple Street Hair, this is Sam. How can I help?";
    // The record: what was heard of the greeting, whole words, marked as cut.
    writer.flush().await;
    let record = store.show_call("call-barge").await.expect("reads").expect("recorded");
    let heard = record.turns[0].heard.strip_suffix('—').expect("the greeting was cut");
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
