//! `hermes bench …`

use std::path::Path;

use anyhow::Context;
use hermes_bench::capacity::{self, CapacityOptions};
use hermes_bench::speech;
use hermes_core::audio::{AllocationProbe, AudioConfig};
use hermes_core::codec::G711;
use hermes_models::{manifest, silero};

use crate::cli::BenchAudioArgs;

pub fn audio(
    models_dir: &Path,
    args: &BenchAudioArgs,
    probe: &AllocationProbe,
) -> anyhow::Result<()> {
    let wav = match &args.wav {
        Some(path) => path.clone(),
        None => {
            let path = models_dir.join(manifest::SPEECH_SAMPLE_8K.file_name);
            anyhow::ensure!(
                path.exists(),
                "the default speech recording is not installed at {}: run `hermes models fetch`, or pass --wav FILE",
                path.display()
            );
            path
        }
    };
    let samples = speech::read_wav_8k(&wav)?;
    let ulaw = speech::encode(&samples, G711::Mulaw);
    let model =
        silero::load(&models_dir.join(manifest::SILERO_VAD.file_name), args.vad, args.batch)
            .context("loading the VAD model")?;
    let options = CapacityOptions {
        calls: args.calls,
        seconds: args.seconds,
        audio: AudioConfig {
            workers: args.workers,
            pin_workers: !args.no_pin,
            realtime_priority: args.realtime_priority,
            max_vad_batch: args.batch,
            max_calls_per_worker: args.calls.max(1),
            ..AudioConfig::default()
        },
        ..CapacityOptions::default()
    };
    if !args.json {
        eprintln!(
            "running {} calls of {} ({:.0} s recording) for {} s on {} worker(s)…",
            args.calls,
            wav.display(),
            samples.len() as f64 / 8000.0,
            args.seconds,
            options.audio.worker_count()
        );
    }
    let json = args.json;
    let allocations_before = probe.worker_allocations();
    let mut report = capacity::run(&options, model, &ulaw, |elapsed, total| {
        if !json {
            eprint!("\r  {:>3.0} / {} s", elapsed.as_secs_f64(), total.as_secs());
        }
    })?;
    report.worker_allocations = Some(probe.worker_allocations() - allocations_before);
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        eprint!("\r\x1b[2K");
        println!("{}", report.to_text());
    }
    Ok(())
}
