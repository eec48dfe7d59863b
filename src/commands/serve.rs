//! `hermes serve`: the HTTP front door, with SIGHUP reloading the configuration and
//! SIGTERM/SIGINT draining gracefully.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, bail};
use hermes_core::audio::AudioEngine;
use hermes_core::config::{Carrier, HermesConfig};
use hermes_core::vad::{EnergyVad, VadModel};
use hermes_io::call::admission::capacity_of_engines;
use hermes_io::call::{Admission, CallDeps, CarrierQueue, MediaCounters, MediaSettings};
use hermes_io::carriers::stream_auth::StreamSecret;
use hermes_io::carriers::telnyx::control::{
    self as telnyx_control, CallControl, RetryPolicy, StreamTarget,
};
use hermes_io::carriers::telnyx::events::{self as telnyx_events, TelephonyNotice};
use hermes_io::carriers::telnyx::webhook::WebhookVerifier;
use hermes_io::carriers::twilio::control as twilio_control;
use hermes_io::carriers::twilio::rest::TwilioRest;
use hermes_io::metrics::EngineMetrics;
use hermes_io::net::http::HttpClient;
use hermes_io::observe::dashboard::Dashboard;
use hermes_io::server::{
    self, AccessControl, Calls, ConfigStore, MediaHub, MetricsAccess, ServerState, TwilioHub,
};
use hermes_models::{SileroBackend, manifest, silero};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};

use crate::cli::ServeArgs;
use crate::commands::config::load;
use crate::commands::providers;

/// Reads the configuration: the file if it exists (or was named), else the embedded defaults.
fn read_config(args: &ServeArgs) -> anyhow::Result<HermesConfig> {
    let embedded = !args.config_named && !args.config.exists();
    let loaded = if embedded {
        eprintln!(
            "no {} here: serving the demo business on embedded defaults",
            args.config.display()
        );
        Ok(crate::commands::config::defaults())
    } else {
        load(&args.config)
    };
    match loaded? {
        Ok(config) => Ok(config),
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            let source = if embedded {
                "the HERMES__ environment overrides".to_string()
            } else {
                args.config.display().to_string()
            };
            bail!("{} problem(s) in {source}; `hermes check-config` explains each", problems.len())
        }
    }
}

fn env_secret(path: &str, name: &str, why: &str) -> anyhow::Result<String> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .with_context(|| format!("{path}: the environment variable {name} is not set; {why}"))
}

/// The carrier-facing parts of the server, as the configuration asks.
struct CarrierWiring {
    verifier: Option<WebhookVerifier>,
    twilio: Option<TwilioHub>,
    /// Telnyx Call Control and where its streams should connect.
    telnyx_control: Option<(CallControl, StreamTarget)>,
    /// Twilio's REST API, for transfers and hang-ups.
    twilio_rest: Option<TwilioRest>,
    /// What each answered call's stream token derives from (every carrier stream needs one).
    stream_secret: Option<Arc<StreamSecret>>,
}

/// The secret per-call stream tokens derive from: `telephony.telnyx.stream_token_env` when
/// set (the same on every node of a fleet), otherwise the carrier's own API secret, which a
/// fleet shares already.
fn stream_secret(config: &HermesConfig, carrier_secret: &str) -> Arc<StreamSecret> {
    let configured =
        std::env::var(&config.telephony.telnyx.stream_token_env).ok().filter(|v| !v.is_empty());
    Arc::new(StreamSecret::derived_from(configured.as_deref().unwrap_or(carrier_secret)))
}

fn carrier_wiring(config: &HermesConfig) -> anyhow::Result<CarrierWiring> {
    let t = &config.telephony;
    let public = t.public_url.trim_end_matches('/');
    let ws_base = server::websocket_base(public);
    Ok(match t.carrier {
        Carrier::None => CarrierWiring {
            verifier: None,
            twilio: None,
            telnyx_control: None,
            twilio_rest: None,
            stream_secret: None,
        },
        Carrier::Telnyx => {
            let key = env_secret(
                "telephony.telnyx.public_key_env",
                &t.telnyx.public_key_env,
                "webhooks cannot be verified",
            )?;
            let api_key = env_secret(
                "telephony.telnyx.api_key_env",
                &t.telnyx.api_key_env,
                "Call Control needs it",
            )?;
            let http = HttpClient::new(Duration::from_secs(10))?;
            let control =
                CallControl::new(http, &t.telnyx.api_base_url, &api_key, RetryPolicy::default());
            let secret = stream_secret(config, &api_key);
            let target = StreamTarget {
                url: format!("{ws_base}/telnyx/media"),
                auth_token: None,
                secret: Some(Arc::clone(&secret)),
            };
            CarrierWiring {
                verifier: Some(WebhookVerifier::new(&key, t.telnyx.webhook_tolerance_s)?),
                twilio: None,
                telnyx_control: Some((control, target)),
                twilio_rest: None,
                stream_secret: Some(secret),
            }
        }
        Carrier::Twilio => {
            let auth_token = env_secret(
                "telephony.twilio.auth_token_env",
                &t.twilio.auth_token_env,
                "request signatures cannot be checked, nor transfers and hang-ups made",
            )?;
            let http = HttpClient::new(Duration::from_secs(10))?;
            let rest = TwilioRest::new(
                http,
                &t.twilio.api_base_url,
                &t.twilio.account_sid,
                &auth_token,
                RetryPolicy::default(),
            )
            .context("telephony.twilio.account_sid")?;
            CarrierWiring {
                verifier: None,
                stream_secret: Some(stream_secret(config, &auth_token)),
                twilio: Some(TwilioHub { auth_token, public_url: public.to_string(), rest: true }),
                telnyx_control: None,
                twilio_rest: Some(rest),
            }
        }
    })
}

/// The audio engine calls join: Silero from the models folder, or (with a warning) the
/// level-threshold VAD when the model is not installed.
pub(crate) fn audio_engine(
    models_dir: &Path,
    config: &HermesConfig,
) -> anyhow::Result<AudioEngine> {
    let path = models_dir.join(manifest::SILERO_VAD.file_name);
    let model: Arc<dyn VadModel> = match silero::load(
        &path,
        SileroBackend::Native,
        config.audio.max_vad_batch,
    ) {
        Ok(m) => m,
        Err(e) => {
            eprintln!(
                "warning: {e}; using the level-threshold VAD (run `hermes models fetch` for Silero)"
            );
            Arc::new(EnergyVad::default())
        }
    };
    // With an end-of-turn model the VAD reports short pauses for it to judge.
    let judged = providers::smart_turn_files(config, models_dir).is_some();
    let mut audio = config.audio.clone();
    audio.vad.min_silence = config.vad_pause(judged);
    Ok(AudioEngine::start(audio, model)?)
}

pub fn serve(models_dir: &Path, args: &ServeArgs) -> anyhow::Result<()> {
    let config = read_config(args)?;
    let listen = args.listen.clone().unwrap_or_else(|| config.server.listen.clone());
    let grace = Duration::from_secs(config.server.shutdown_grace_s);
    let wiring = carrier_wiring(&config)?;
    let carrier = config.telephony.carrier;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("server.listen: cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;
        let store = Arc::new(ConfigStore::new(config.clone()));
        // Read at once by the carrier's arm below; a call never waits on it.
        let (carrier_queue, carrier_rx) = CarrierQueue::new(256);
        let carrier_counters = carrier_queue.counters();
        let mut records = None;
        let mut call_metrics: Vec<Arc<dyn hermes_io::metrics::MetricsSource>> = Vec::new();
        let mut dashboard = None;
        let mut admission = None;
        let media = if carrier == Carrier::None {
            None
        } else {
            let engine = Arc::new(audio_engine(models_dir, &config)?);
            let config_dir = args.config.parent().unwrap_or(Path::new("."));
            let deps = providers::call_deps(
                &config,
                config_dir,
                models_dir,
                Some(carrier_queue),
                &providers::env,
                providers::LocalVoiceKind::Natural,
            )
            .await?;
            records = deps.records.clone();
            call_metrics = deps.metric_sources();
            call_metrics.push(Arc::new(EngineMetrics {
                engine: Arc::clone(&engine),
                tick_budget: config.budgets.audio_tick,
            }));
            let seats = Admission::new(max_concurrent_calls(&config, &deps));
            call_metrics.push(seats.clone());
            admission = Some(seats);
            match providers::env(&config.server.dashboard_token_env).filter(|t| !t.is_empty()) {
                Some(token) => {
                    eprintln!(
                        "dashboard on http://{addr}/dashboard, browser phone on \
                         http://{addr}/phone (token from {}: open ?token=… once, the browser \
                         keeps a session cookie)",
                        config.server.dashboard_token_env
                    );
                    dashboard = Some(Dashboard {
                        token,
                        latency: deps.latency.clone(),
                        recent: deps.recent.clone(),
                        counters: deps.counters.clone(),
                    });
                }
                None => eprintln!(
                    "dashboard and browser phone off: set {} to a token to turn them on",
                    config.server.dashboard_token_env
                ),
            }
            if let Err(e) = deps.llm.warm_up().await {
                eprintln!("warning: could not pre-connect to the language model: {e}");
            }
            // Each call runs on the configuration current when it starts, and logs its end in
            // its own span (outcome, length, turns).
            let calls_store = Arc::clone(&store);
            let calls = Calls::new(
                move || {
                    let mut call_deps: CallDeps = deps.clone();
                    call_deps.config = calls_store.snapshot();
                    Arc::new(call_deps)
                },
                |_| {},
            );
            Some(MediaHub {
                engine,
                settings: MediaSettings {
                    stream_secret: wiring.stream_secret.clone(),
                    admission: admission.clone(),
                    ..MediaSettings::default()
                },
                counters: Arc::new(MediaCounters::default()),
                calls: Arc::new(calls),
            })
        };
        let (events_tx, mut events_rx) = mpsc::channel(1024);
        match wiring.telnyx_control {
            Some((control, target)) => {
                let control = Arc::new(control);
                tokio::spawn(telnyx_control::carry_out(
                    Arc::clone(&control),
                    carrier_rx,
                    carrier_counters,
                ));
                let (notices_tx, mut notices) = mpsc::channel(256);
                tokio::spawn(telnyx_events::run(events_rx, control, target, admission, notices_tx));
                tokio::spawn(async move {
                    while let Some(notice) = notices.recv().await {
                        if let TelephonyNotice::CommandFailed { action, error, .. } = notice {
                            eprintln!("call control {action} failed: {error}");
                        }
                    }
                });
            }
            None => {
                // Twilio: hang-ups and transfers through its REST API. No carrier: hang-ups
                // end with the call's stream, and transfers are counted as unsupported.
                let rest = wiring.twilio_rest.map(Arc::new);
                tokio::spawn(twilio_control::carry_out(rest, carrier_rx, carrier_counters));
                tokio::spawn(async move { while events_rx.recv().await.is_some() {} });
            }
        }
        let mut state = ServerState::new(Arc::clone(&store), wiring.verifier, events_tx);
        state.limits =
            server::ServerLimits::from_config(&config.server, server::raise_open_file_limit());
        eprintln!(
            "connections: at most {} open (server.max_connections); headers within {} ms, bodies within {} ms",
            state.limits.max_connections,
            state.limits.header_read_timeout.as_millis(),
            state.limits.body_read_timeout.as_millis()
        );
        state.media = media;
        // The database, for records and bookings: `/readyz` says "degraded: …" while it is
        // away (calls go on; their records wait in the outbox).
        state.readiness = records
            .iter()
            .map(|r| r.counters() as Arc<dyn server::Readiness>)
            .collect();
        state.twilio = wiring.twilio;
        state.metrics = call_metrics;
        state.dashboard = dashboard;
        let metrics_listener = match config.server.metrics_listen.as_str() {
            "" => None,
            at => Some(
                tokio::net::TcpListener::bind(at)
                    .await
                    .with_context(|| format!("server.metrics_listen: cannot listen on {at}"))?,
            ),
        };
        let metrics_at = metrics_listener.as_ref().map(|l| l.local_addr()).transpose()?;
        state.access = AccessControl::new(metrics_access(&config, metrics_at));
        let state = Arc::new(state);
        let (stop_tx, stop_rx) = watch::channel(false);
        if let Some(metrics_listener) = metrics_listener {
            let stop = stop_rx.clone();
            tokio::spawn(server::serve_metrics(metrics_listener, Arc::clone(&state), stop));
        }
        let server = tokio::spawn(server::serve(listener, Arc::clone(&state), stop_rx, grace));
        println!("listening on http://{addr}");
        std::io::stdout().flush()?;

        let mut hangup = signal(SignalKind::hangup())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        loop {
            tokio::select! {
                _ = hangup.recv() => reload(args, &store, &state),
                _ = terminate.recv() => break,
                _ = interrupt.recv() => break,
            }
        }
        eprintln!("shutting down: no new calls, {} s for live ones to finish", grace.as_secs());
        let _ = stop_tx.send(true);
        server.await??;
        if let Some(records) = records {
            // Every finished call's record is in the store or the outbox before we exit.
            records.flush().await;
        }
        Ok(())
    })
}

/// `server.max_concurrent_calls`, or (0) what the engines calls use were measured to carry:
/// the audio workers, and the local transcriber pool when there is no cloud transcriber.
fn max_concurrent_calls(config: &HermesConfig, deps: &CallDeps) -> usize {
    let configured = config.server.max_concurrent_calls as usize;
    let local_stt = deps
        .local_stt
        .as_ref()
        .filter(|_| deps.stt.is_none())
        .and_then(|l| l.running_now())
        .map(|l| l.workers());
    let measured = capacity_of_engines(config.audio.worker_count(), local_stt);
    let (calls, source) = match configured {
        0 => (measured, "what the engines carry; server.max_concurrent_calls overrides"),
        n => (n, "server.max_concurrent_calls"),
    };
    eprintln!("calls: at most {calls} at once ({source}); beyond it callers hear busy");
    calls
}

/// Who may read `/metrics` on the public listener (and says so): nobody when it has its own
/// listener, a bearer of the token when one is set, otherwise this machine only.
fn metrics_access(config: &HermesConfig, separate: Option<std::net::SocketAddr>) -> MetricsAccess {
    let server = &config.server;
    if let Some(at) = separate {
        eprintln!("metrics on http://{at}/metrics only (server.metrics_listen)");
        return MetricsAccess::Elsewhere;
    }
    match providers::env(&server.metrics_token_env) {
        Some(token) => {
            eprintln!(
                "/metrics needs Authorization: Bearer (token from {})",
                server.metrics_token_env
            );
            MetricsAccess::Bearer(token)
        }
        None => {
            let variable = match server.metrics_token_env.as_str() {
                "" => "the variable named by server.metrics_token_env".to_string(),
                name => name.to_string(),
            };
            eprintln!(
                "/metrics answers this machine only: set {variable} to a token, or \
                 server.metrics_listen, to scrape it from elsewhere"
            );
            MetricsAccess::LocalOnly
        }
    }
}

/// SIGHUP: re-read the file. A valid file replaces the configuration for new calls; calls in
/// progress keep the snapshot they started with. An invalid one is refused and reported.
fn reload(args: &ServeArgs, store: &ConfigStore, state: &ServerState) {
    let path: &Path = &args.config;
    match load(path) {
        Ok(Ok(config)) => {
            let previous = store.snapshot();
            let carrier_changed = config.telephony.carrier != previous.telephony.carrier;
            let engines_changed =
                config.providers != previous.providers || config.storage != previous.storage;
            let server_changed = config.server != previous.server;
            let generation = store.replace(config);
            state.counters.config_reloads.fetch_add(1, Ordering::Relaxed);
            eprintln!("reloaded {} (generation {generation})", path.display());
            if carrier_changed {
                eprintln!("telephony.carrier changed: takes effect after a restart");
            }
            if server_changed {
                eprintln!(
                    "[server] changed (listen, limits, max_concurrent_calls, metrics): takes \
                     effect after a restart"
                );
            }
            if engines_changed {
                eprintln!(
                    "providers or storage changed: calls keep their connections until a restart; \
                     the business profile, persona and conversation settings apply to new calls now"
                );
            }
        }
        Ok(Err(problems)) => {
            state.counters.config_reload_failures.fetch_add(1, Ordering::Relaxed);
            for p in &problems {
                eprintln!("{p}");
            }
            eprintln!(
                "reload refused: {} problem(s); still serving the previous configuration",
                problems.len()
            );
        }
        Err(e) => {
            state.counters.config_reload_failures.fetch_add(1, Ordering::Relaxed);
            eprintln!("reload refused: {e:#}");
        }
    }
}
