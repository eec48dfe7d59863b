//! `hermes sim` and `hermes demo`: the command lines, the configuration they run on, and the
//! wiring the simulator starts Hermes with (the same as `serve`'s). The simulator itself —
//! callers, harness, checks and report — is `hermes_bench::sim`.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use anyhow::bail;
use hermes_bench::sim::{self, Hold, SimOptions, Wiring};
use hermes_core::audio::AudioEngine;
use hermes_core::config::{Env, HermesConfig};
use hermes_io::call::{CallDeps, CarrierQueue};
use hermes_io::carriers::stream_auth::StreamSecret;
use hermes_io::fakes::caller::LineEcho;

use crate::cli::{DemoArgs, SimArgs};
use crate::commands::{providers, serve};

/// This binary's wiring, handed to the simulator.
struct BinaryWiring {
    models_dir: PathBuf,
    local_voice: providers::LocalVoiceKind,
}

impl Wiring for BinaryWiring {
    fn call_deps<'a>(
        &'a self,
        config: &'a HermesConfig,
        config_dir: &'a Path,
        carrier: CarrierQueue,
        keys: Env<'a>,
    ) -> Pin<Box<dyn Future<Output = Result<CallDeps, String>> + 'a>> {
        Box::pin(async move {
            providers::call_deps(
                config,
                config_dir,
                &self.models_dir,
                Some(carrier),
                keys,
                self.local_voice,
            )
            .await
            .map_err(|e| format!("{e:#}"))
        })
    }

    fn audio_engine(&self, config: &HermesConfig) -> Result<AudioEngine, String> {
        serve::audio_engine(&self.models_dir, config).map_err(|e| format!("{e:#}"))
    }
}

/// What a remote Hermes lets streams in by, from this environment (as `hermes serve` reads
/// it with the default configuration's variable names); `None` when nothing is set.
fn remote_pass(args: &SimArgs, target: &str) -> Option<sim::StreamPass> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let twilio = args.carrier == "twilio";
    let carrier_secret = env(if twilio { "TWILIO_AUTH_TOKEN" } else { "TELNYX_API_KEY" });
    let secret = env("HERMES_STREAM_TOKEN").or_else(|| carrier_secret.clone())?;
    let pass = sim::StreamPass::new(Arc::new(StreamSecret::derived_from(&secret)));
    Some(match (twilio, carrier_secret) {
        (true, Some(auth_token)) => {
            let public = args.public_url.as_deref().unwrap_or(target).trim_end_matches('/');
            let ws = hermes_io::server::websocket_base(public);
            pass.signing_for_twilio(auth_token, format!("{ws}/twilio/media"))
        }
        _ => pass,
    })
}

pub fn run(models_dir: &Path, args: &SimArgs) -> anyhow::Result<()> {
    let mut scenarios = match args.matrix.as_deref() {
        None => sim::scenario::load(&args.scenarios)?,
        Some("full") => sim::matrix::full(args.seed),
        Some("sample") => sim::matrix::sample(args.seed),
        Some(other) => anyhow::bail!("--matrix: {other:?} is neither `full` nor `sample`"),
    };
    if !args.only.is_empty() {
        let all = scenarios.len();
        scenarios.retain(|s| args.only.iter().any(|only| s.name.contains(only.as_str())));
        if scenarios.is_empty() {
            bail!("--only: none of the {all} scenario names contains {:?}", args.only);
        }
    }
    let concurrency = args.concurrency.or(args.matrix.is_some().then_some(12));
    let (mut config, config_dir) = config(args.config.as_deref())?;
    if let Some(n) = args.max_concurrent_calls {
        if args.target.is_some() {
            bail!(
                "--max-concurrent-calls sets the in-process Hermes's capacity; a --target has its own (server.max_concurrent_calls)"
            );
        }
        config.server.max_concurrent_calls = n;
    }
    let options = SimOptions {
        calls: args.calls,
        profile: args.profile.clone(),
        target: args.target.clone(),
        feed_fakes: args.feed_fakes.clone(),
        carrier: args.carrier.clone(),
        json: args.json,
        quiet: args.quiet,
        seed: args.seed,
        ramp_ms: args.ramp_ms,
        settle_ms: args.settle_ms,
        linger_ms: args.linger_ms,
        echo: args.echo_ms.map(|ms| LineEcho {
            delay: std::time::Duration::from_millis(ms),
            loss_db: args.echo_db,
        }),
        hold: Hold::Seconds(args.hold_s),
        engines: args.engines.clone(),
        transcript: args.transcript,
        listen: args.listen.clone(),
        now: args.now.clone(),
        concurrency,
        stream_pass: args.target.as_deref().and_then(|target| remote_pass(args, target)),
    };
    // The simulator's many calls speak with espeak-ng: Piper could not carry them.
    let wiring = BinaryWiring {
        models_dir: models_dir.to_path_buf(),
        local_voice: providers::LocalVoiceKind::Espeak,
    };
    Ok(sim::run(&options, scenarios, config, &config_dir, &wiring)?)
}

/// `hermes demo`: one call on this machine's engines through the whole real path, its live
/// transcript and latency, then Hermes stays up with its dashboard and browser phone until
/// Ctrl-C.
pub fn demo(models_dir: &Path, args: &DemoArgs) -> anyhow::Result<()> {
    let (config, config_dir) = config(args.config.as_deref())?;
    let hold = if args.no_hold { Hold::Seconds(0) } else { Hold::UntilInterrupted };
    let options = sim::demo_options(args.listen.clone(), args.now.clone(), hold);
    // espeak-ng for now, as the simulator: with Piper synthesising in the same process on two
    // cores, the demo's first answer took 470–620 ms to its first audio (over Piper's 250 ms
    // target) and the simulated caller's timing of its turn went astray (its per-turn
    // voice-to-voice was lost). `serve` speaks with Piper when it is installed.
    let wiring = BinaryWiring {
        models_dir: models_dir.to_path_buf(),
        local_voice: providers::LocalVoiceKind::Espeak,
    };
    Ok(sim::run(&options, vec![sim::demo_scenario()?], config, &config_dir, &wiring)?)
}

/// The configuration a run uses: the named file, or the embedded defaults; and the folder its
/// relative paths are read from.
pub(crate) fn config(path: Option<&Path>) -> anyhow::Result<(HermesConfig, PathBuf)> {
    match path {
        Some(path) => match crate::commands::config::load(path)? {
            Ok(c) => Ok((c, path.parent().unwrap_or(Path::new(".")).to_path_buf())),
            Err(problems) => {
                for p in &problems {
                    eprintln!("{p}");
                }
                bail!(
                    "{} problem(s) in {}; `hermes check-config` explains each",
                    problems.len(),
                    path.display()
                )
            }
        },
        None => match crate::commands::config::defaults() {
            Ok(c) => Ok((c, PathBuf::from("."))),
            Err(problems) => {
                for p in &problems {
                    eprintln!("{p}");
                }
                bail!("{} problem(s) in the HERMES__ environment overrides", problems.len())
            }
        },
    }
}
