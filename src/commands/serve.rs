//! `hermes serve`: the HTTP front door, with SIGHUP reloading the configuration and
//! SIGTERM/SIGINT draining gracefully.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, bail};
use hermes_core::config::{Carrier, HermesConfig};
use hermes_io::server::{self, ConfigStore, ServerState};
use hermes_io::telnyx::webhook::WebhookVerifier;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};

use crate::cli::ServeArgs;
use crate::commands::config::load;

/// Reads the configuration: the file if it exists (or was named), else the embedded defaults.
fn read_config(args: &ServeArgs) -> anyhow::Result<HermesConfig> {
    if !args.config_named && !args.config.exists() {
        eprintln!(
            "no {} here: serving the demo business on embedded defaults",
            args.config.display()
        );
        return Ok(HermesConfig::default());
    }
    match load(&args.config)? {
        Ok(config) => Ok(config),
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            bail!(
                "{} problem(s) in {}; `hermes check-config` explains each",
                problems.len(),
                args.config.display()
            )
        }
    }
}

fn telnyx_verifier(config: &HermesConfig) -> anyhow::Result<Option<WebhookVerifier>> {
    if config.telephony.carrier != Carrier::Telnyx {
        return Ok(None);
    }
    let t = &config.telephony.telnyx;
    let key = std::env::var(&t.public_key_env).with_context(|| {
        format!("telephony.telnyx.public_key_env: {} is not set", t.public_key_env)
    })?;
    Ok(Some(WebhookVerifier::new(&key, t.webhook_tolerance_s)?))
}

pub fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let config = read_config(args)?;
    let listen = args.listen.clone().unwrap_or_else(|| config.server.listen.clone());
    let grace = Duration::from_secs(config.server.shutdown_grace_s);
    let verifier = telnyx_verifier(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("server.listen: cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;
        let store = Arc::new(ConfigStore::new(config));
        // Until the call driver lands, webhook events are only counted here.
        let (events_tx, mut events_rx) = mpsc::channel(1024);
        tokio::spawn(async move { while events_rx.recv().await.is_some() {} });
        let state = Arc::new(ServerState::new(Arc::clone(&store), verifier, events_tx));
        let (stop_tx, stop_rx) = watch::channel(false);
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
        Ok(())
    })
}

/// SIGHUP: re-read the file. A valid file replaces the configuration for new calls; calls in
/// progress keep the snapshot they started with. An invalid one is refused and reported.
fn reload(args: &ServeArgs, store: &ConfigStore, state: &ServerState) {
    let path: &Path = &args.config;
    match load(path) {
        Ok(Ok(config)) => {
            let carrier_changed = config.telephony.carrier != store.snapshot().telephony.carrier;
            let generation = store.replace(config);
            state.counters.config_reloads.fetch_add(1, Ordering::Relaxed);
            eprintln!("reloaded {} (generation {generation})", path.display());
            if carrier_changed {
                eprintln!("telephony.carrier changed: takes effect after a restart");
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
