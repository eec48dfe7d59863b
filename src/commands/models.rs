//! `hermes models …`

use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::Context;
use hermes_io::registry::{FetchOutcome, Fetcher, Progress};
use hermes_models::manifest;

use crate::cli::FetchArgs;

pub fn fetch(models_dir: &Path, args: &FetchArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let fetcher =
        Fetcher::new(models_dir, args.index.clone()).context("setting up the HTTP client")?;
    let tty = std::io::stderr().is_terminal();
    let mut failures = Vec::new();
    for artifact in manifest::ALL {
        let mut last_percent = None;
        let outcome = runtime.block_on(fetcher.fetch(artifact, |progress| {
            if let Progress::Downloading { received, total: Some(total) } = progress {
                let percent = received * 100 / total.max(1);
                if tty && last_percent != Some(percent) {
                    last_percent = Some(percent);
                    eprint!(
                        "\r  {} … {percent:3}% of {:.1} MB",
                        artifact.title,
                        total as f64 / 1e6
                    );
                    let _ = std::io::stderr().flush();
                }
            }
        }));
        if tty && last_percent.is_some() {
            eprint!("\r\x1b[2K");
        }
        match outcome {
            Ok(FetchOutcome::AlreadyPresent) => {
                eprintln!(
                    "✓ {} already installed ({})",
                    artifact.title,
                    fetcher.path_of(artifact).display()
                );
            }
            Ok(FetchOutcome::Installed { downloaded_bytes: 0 }) => eprintln!(
                "✓ {} installed at {} (from {}, already downloaded; sha256 verified)",
                artifact.title,
                fetcher.path_of(artifact).display(),
                artifact.requirement()
            ),
            Ok(FetchOutcome::Installed { downloaded_bytes }) => eprintln!(
                "✓ {} installed at {} ({:.1} MB downloaded from {}, sha256 verified)",
                artifact.title,
                fetcher.path_of(artifact).display(),
                downloaded_bytes as f64 / 1e6,
                artifact.requirement()
            ),
            Err(e) => {
                eprintln!("✗ {}: {e}", artifact.title);
                failures.push(artifact.title);
            }
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "{} of {} model files could not be installed",
            failures.len(),
            manifest::ALL.len()
        )
    }
}

pub fn list(models_dir: &Path) -> anyhow::Result<()> {
    for artifact in manifest::ALL {
        let path = models_dir.join(artifact.file_name);
        let status = match hermes_models::sha256_file(&path) {
            Ok(sha) if sha == artifact.sha256 => "installed",
            Ok(_) => "CHECKSUM MISMATCH (run `hermes models fetch`)",
            Err(_) => "missing (run `hermes models fetch`)",
        };
        println!(
            "{:<44} {:<10} {}\n  {}",
            artifact.title,
            artifact.requirement(),
            status,
            path.display()
        );
    }
    Ok(())
}
