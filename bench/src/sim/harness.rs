//! Hermes started inside the simulator: the real server, media path, audio core, call driver,
//! tools and embedded stores — exactly what `hermes serve` runs — with the cloud providers
//! replaced by their protocol fakes on loopback, paced by a latency profile. The carrier side
//! (hang-ups and transfers the agent asks for) is routed back to the synthetic caller.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::error::{Context, SimError, SimResult};
use hermes_core::audio::AudioEngine;
use hermes_core::config::{Env, HermesConfig, LlmEngine, SttEngine, TtsEngine};
use hermes_core::wall_clock::WallClock;
use hermes_io::call::{Admission, MediaCounters, MediaSettings};
use hermes_io::call::{
    CallClocks, CallDeps, CallReport, CarrierQueue, CarrierRequest, CarrierRequestCounters,
};
use hermes_io::carriers::stream_auth::StreamSecret;
use hermes_io::fakes::caller::EndedBy;
use hermes_io::fakes::deepgram::{FakeDeepgram, FakeDeepgramOptions, ScriptLine, Scripts};
use hermes_io::fakes::elevenlabs::FakeElevenLabs;
use hermes_io::fakes::llm::{FakeLlm, FakeLlmOptions};
use hermes_io::fakes::profile::LatencyProfile;
use hermes_io::metrics::EngineMetrics;
use hermes_io::observe::dashboard::Dashboard;
use hermes_io::server::{self, Calls, ConfigStore, MediaHub, ServerState};
use hermes_models::voice::LocalVoice;
use tokio::sync::{mpsc, oneshot, watch};

/// What the simulator needs from the binary's wiring to start Hermes in this process: exactly
/// what `hermes serve` builds for its calls, and its audio engine. The simulator brings the
/// fakes, the stores' temporary folder and the carrier's stand-in.
pub trait Wiring: Send + Sync {
    /// The call path on `config` (read from `config_dir`), its hang-ups and transfers going to
    /// `carrier`, provider keys looked up with `keys`.
    fn call_deps<'a>(
        &'a self,
        config: &'a HermesConfig,
        config_dir: &'a Path,
        carrier: CarrierQueue,
        keys: Env<'a>,
    ) -> Pin<Box<dyn Future<Output = Result<CallDeps, String>> + 'a>>;

    /// The audio engine calls join, as `serve` starts it.
    fn audio_engine(&self, config: &HermesConfig) -> Result<AudioEngine, String>;
}

/// The key every fake accepts; never a real one.
const FAKE_KEY: &str = "sim-fake-key";

type Waiters<T> = Arc<Mutex<HashMap<String, T>>>;

/// What the in-process Hermes uses for speech-to-text, the LLM and the voice.
#[derive(Clone, Copy, Debug)]
pub enum Engines {
    /// The protocol fakes on loopback, paced by a latency profile; the fake speech-to-text
    /// reads the scenario's lines.
    Fakes { profile: LatencyProfile, seed: u64 },
    /// This machine's own engines, as `serve` uses without keys: Moonshine, the rule-based
    /// agent, espeak-ng. The caller's speech is really transcribed.
    Local,
}

/// Starts the three fakes and points `config`'s providers at them.
async fn start_fakes(
    config: &mut HermesConfig,
    loopback: SocketAddr,
    profile: LatencyProfile,
    seed: u64,
    clock: WallClock,
) -> SimResult<(FakeLlm, FakeDeepgram, FakeElevenLabs)> {
    let voice = Arc::new(LocalVoice::new(&config.persona.voice, 175).with_context(|| {
        format!("persona.voice: espeak-ng cannot speak {:?}", config.persona.voice)
    })?);
    let llm_options = FakeLlmOptions {
        business: config.business.clone(),
        tools: config.tools.enabled.clone(),
        profile,
        seed,
        // Hermes tells the model each call's local time; this is for requests that do not.
        clock,
        ..FakeLlmOptions::default()
    };
    let llm = FakeLlm::start(loopback, llm_options).await.context("starting the LLM fake")?;
    let stt_options = FakeDeepgramOptions { profile, seed, ..FakeDeepgramOptions::default() };
    let stt = FakeDeepgram::start(loopback, stt_options)
        .await
        .context("starting the speech-to-text fake")?;
    let tts = FakeElevenLabs::start(loopback, voice, profile, seed)
        .await
        .context("starting the text-to-speech fake")?;
    let p = &mut config.providers;
    p.stt.engine = SttEngine::Deepgram;
    p.stt.base_url = stt.url();
    p.llm.engine = LlmEngine::Anthropic;
    p.llm.base_url = llm.base_url();
    p.tts.engine = TtsEngine::Elevenlabs;
    p.tts.base_url = tts.url();
    Ok((llm, stt, tts))
}

/// A running in-process Hermes with fakes. Dropping it stops everything.
pub struct InProcess {
    /// `ws://127.0.0.1:PORT`: the media WebSocket routes live under it.
    pub base_ws: String,
    /// What the fake speech-to-text hears in each call, by call id.
    pub scripts: Scripts,
    /// The live dashboard of this Hermes, with its one-off token.
    pub dashboard_url: String,
    /// Its browser phone, behind the same token.
    pub phone_url: String,
    /// Its calls in progress and finished, with their live transcript.
    pub recent: Arc<hermes_io::observe::recent::RecentCalls>,
    /// Its latency book: every turn's stages, against the budgets.
    pub latency: Arc<hermes_io::observe::latency::LatencyBook>,
    /// Its audio core, for the workers' own counters.
    pub audio: Arc<AudioEngine>,
    /// The delays the fakes drew (empty on local engines), for the invariants' bounds.
    pub delays: super::invariants::ProviderDelays,
    /// What its streams are let in by.
    stream_pass: super::StreamPass,
    /// The calendar time of each call.
    clocks: CallClocks,
    reports: Waiters<oneshot::Sender<CallReport>>,
    ends: Waiters<mpsc::Sender<EndedBy>>,
    _stop: watch::Sender<bool>,
    _fakes: Option<(FakeLlm, FakeDeepgram, FakeElevenLabs)>,
    _data: tempfile::TempDir,
}

/// What to wait on for one call placed through [`InProcess::expect_call`].
#[derive(Debug)]
pub struct CallHooks {
    pub report: oneshot::Receiver<CallReport>,
    pub ends: mpsc::Receiver<EndedBy>,
}

impl std::fmt::Debug for InProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcess").field("base_ws", &self.base_ws).finish_non_exhaustive()
    }
}

impl InProcess {
    /// What a caller presents so this Hermes lets its stream in.
    pub fn stream_pass(&self) -> &super::StreamPass {
        &self.stream_pass
    }

    /// Starts Hermes on `config` with its stores in a temporary folder (a simulation never
    /// writes into a real database), its providers being `engines`, its calls on `clock`
    /// unless [`InProcess::expect_call`] sets another.
    pub async fn start(
        wiring: &dyn Wiring,
        mut config: HermesConfig,
        config_dir: &Path,
        engines: Engines,
        listen: &str,
        clock: WallClock,
    ) -> SimResult<InProcess> {
        let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
        let (fakes, scripts) = match engines {
            Engines::Fakes { profile, seed } => {
                let fakes = start_fakes(&mut config, loopback, profile, seed, clock).await?;
                let scripts = fakes.1.scripts.clone();
                (Some(fakes), scripts)
            }
            Engines::Local => {
                let p = &mut config.providers;
                p.stt.engine = SttEngine::Local;
                p.llm.engine = LlmEngine::Local;
                p.tts.engine = TtsEngine::Local;
                (None, Scripts::default())
            }
        };
        let data = tempfile::tempdir().context("a temporary folder for the simulation's stores")?;
        let mut config_dir = config_dir.to_path_buf();
        if !config_dir.join(&config.business.data_dir).is_dir() {
            // The embedded demo business has no folder of its own: seed it with the example's
            // calendars and orders, so order lookups and bookings have data to work on.
            config_dir = data.path().to_path_buf();
            write_demo_seed(&config_dir.join(&config.business.data_dir))?;
        }
        let s = &mut config.storage;
        (s.postgres_url, s.redis_url) = (String::new(), String::new());
        // Names no variable can have, so the process environment cannot point a simulation
        // at a real database.
        (s.postgres_url_env, s.redis_url_env) = (String::new(), String::new());
        s.data_dir = data.path().to_string_lossy().into_owned();

        let (carrier_queue, carrier_rx) = CarrierQueue::new(256);
        let carrier_counters = carrier_queue.counters();
        // The fakes take any key; local engines need none (and must not find a real one).
        let with_fakes = fakes.is_some();
        let key_env = move |_: &str| with_fakes.then(|| FAKE_KEY.to_string());
        let mut deps = wiring
            .call_deps(&config, &config_dir, carrier_queue, &key_env)
            .await
            .map_err(SimError::msg)?;
        deps.clocks = CallClocks::new(clock);
        let clocks = deps.clocks.clone();
        if let Err(e) = deps.llm.warm_up().await {
            eprintln!("warning: could not pre-connect to the LLM fake: {e}");
        }
        let engine = Arc::new(wiring.audio_engine(&config).map_err(SimError::msg)?);
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("--listen: cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;

        let reports: Waiters<oneshot::Sender<CallReport>> = Arc::default();
        let ends: Waiters<mpsc::Sender<EndedBy>> = Arc::default();
        let mut metrics = deps.metric_sources();
        metrics.push(Arc::new(EngineMetrics {
            engine: Arc::clone(&engine),
            tick_budget: config.budgets.audio_tick,
        }));
        let token = one_off_token()?;
        let dashboard = Dashboard {
            token: token.clone(),
            latency: deps.latency.clone(),
            recent: deps.recent.clone(),
            counters: deps.counters.clone(),
        };
        let latency_book = deps.latency.clone();
        let recent = deps.recent.clone();
        let deps = Arc::new(deps);
        let waiting = reports.clone();
        // Each call's report goes to whoever placed it.
        let calls = Calls::new(
            move || deps.clone(),
            move |report| {
                let waiter =
                    waiting.lock().ok().and_then(|mut w| w.remove(&report.call_control_id));
                if let Some(waiter) = waiter {
                    let _ = waiter.send(report);
                }
            },
        );
        tokio::spawn(carrier(carrier_rx, ends.clone(), carrier_counters));

        let store = Arc::new(ConfigStore::new(config.clone()));
        let (events_tx, mut events_rx) = mpsc::channel(64);
        tokio::spawn(async move { while events_rx.recv().await.is_some() {} });
        let mut state = ServerState::new(store, None, events_tx);
        // Streams are let in as `hermes serve` lets them in: each with its own call's token.
        let stream_secret = Arc::new(StreamSecret::random()?);
        // Admission as `serve` does it, when the run sets a capacity (`--max-concurrent-calls`);
        // otherwise every simulated call is let in, whatever the engines' measured capacity.
        let admission = match config.server.max_concurrent_calls as usize {
            0 => None,
            n => Some(Admission::new(n)),
        };
        if let Some(admission) = &admission {
            metrics.push(admission.clone());
        }
        state.media = Some(MediaHub {
            engine: engine.clone(),
            settings: MediaSettings {
                stream_secret: Some(Arc::clone(&stream_secret)),
                admission,
                ..MediaSettings::default()
            },
            counters: Arc::new(MediaCounters::default()),
            calls: Arc::new(calls),
        });
        state.metrics = metrics;
        state.dashboard = Some(dashboard);
        let (stop, stop_rx) = watch::channel(false);
        tokio::spawn(server::serve(listener, Arc::new(state), stop_rx, Duration::from_secs(2)));
        let delays = match &fakes {
            Some((llm, stt, tts)) => super::invariants::ProviderDelays {
                stt: stt.delays.clone(),
                llm: llm.delays.clone(),
                tts: tts.delays.clone(),
            },
            None => super::invariants::ProviderDelays::default(),
        };
        Ok(InProcess {
            stream_pass: super::StreamPass::new(stream_secret),
            delays,
            base_ws: format!("ws://{addr}"),
            dashboard_url: format!("http://{addr}/dashboard?token={token}"),
            phone_url: format!("http://{addr}/phone?token={token}"),
            recent,
            audio: engine,
            clocks,
            latency: latency_book,
            scripts,
            reports,
            ends,
            _stop: stop,
            _fakes: fakes,
            _data: data,
        })
    }

    /// Registers a call before the caller dials: its transcript script, the calendar time it
    /// lives in, and where its report and the carrier's end of it go.
    pub fn expect_call(
        &self,
        call_id: &str,
        lines: Vec<ScriptLine>,
        clock: WallClock,
    ) -> CallHooks {
        self.scripts.set(call_id, lines);
        self.clocks.pin(call_id, clock);
        let (report_tx, report) = oneshot::channel();
        let (ends_tx, ends) = mpsc::channel(2);
        if let Ok(mut w) = self.reports.lock() {
            w.insert(call_id.to_string(), report_tx);
        }
        if let Ok(mut e) = self.ends.lock() {
            e.insert(call_id.to_string(), ends_tx);
        }
        CallHooks { report, ends }
    }

    /// Drops what [`Self::expect_call`] set up for a call that never started (refused busy):
    /// no report or end will come for it.
    pub fn forget_call(&self, call_id: &str) {
        if let Ok(mut w) = self.reports.lock() {
            w.remove(call_id);
        }
        if let Ok(mut e) = self.ends.lock() {
            e.remove(call_id);
        }
    }
}

/// A token for this run's dashboard: 128 bits from the kernel, as hex.
fn one_off_token() -> SimResult<String> {
    use std::io::Read as _;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom for the dashboard token")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The example business's seed files, compiled in.
const DEMO_SEED: [(&str, &str); 3] = [
    ("orders.json", include_str!("../../../examples/hair-salon/data/orders.json")),
    ("calendars/ana.json", include_str!("../../../examples/hair-salon/data/calendars/ana.json")),
    ("calendars/ben.json", include_str!("../../../examples/hair-salon/data/calendars/ben.json")),
];

fn write_demo_seed(dir: &Path) -> SimResult<()> {
    for (name, text) in DEMO_SEED {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The carrier: a hang-up or transfer the agent asks for ends that caller's call, as the
/// phone network would.
async fn carrier(
    mut requests: mpsc::Receiver<CarrierRequest>,
    ends: Waiters<mpsc::Sender<EndedBy>>,
    counters: Arc<CarrierRequestCounters>,
) {
    while let Some(request) = requests.recv().await {
        counters.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (call, how) = match &request {
            CarrierRequest::Hangup { call_control_id } => (call_control_id, EndedBy::Agent),
            CarrierRequest::Transfer { call_control_id, .. } => {
                (call_control_id, EndedBy::Transfer)
            }
        };
        let sender = ends.lock().ok().and_then(|mut e| e.remove(call));
        if let Some(sender) = sender {
            let _ = sender.try_send(how);
        }
    }
}
