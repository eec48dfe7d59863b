//! `hermes say`: a sentence from a local voice into a WAV file, to listen to.

use std::time::Instant;

use anyhow::Context;
use hermes_core::codec::G711;
use hermes_models::piper::{Piper, PiperFiles};
use hermes_models::voice::{ESPEAK_RATE, LocalVoice, PHONE_RATE};

use crate::cli::SayArgs;

pub fn say(models_dir: &std::path::Path, args: &SayArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let (samples, rate): (Vec<i16>, u32) = if args.voice == "piper" {
        let files = PiperFiles::installed_in(models_dir);
        if let Some(missing) = files.missing() {
            anyhow::bail!(
                "--voice piper: {} is missing (run `hermes models fetch`, or use --voice espeak)",
                missing.display()
            );
        }
        let mut piper = Piper::load(&files).context("--voice piper")?;
        let loaded = started.elapsed();
        let spoken = Instant::now();
        let out = if args.phone {
            (decode(&piper.speak_ulaw(&args.text)?), PHONE_RATE)
        } else {
            let speech = piper.speak(&args.text)?;
            let pcm = speech.audio.iter().map(|s| (s * 32767.0) as i16).collect();
            (pcm, piper.sample_rate())
        };
        eprintln!(
            "Piper: loaded in {} ms, spoke in {} ms",
            loaded.as_millis(),
            spoken.elapsed().as_millis()
        );
        out
    } else {
        let voice = LocalVoice::new(&args.espeak_voice, 175).context("--espeak-voice")?;
        if args.phone {
            (decode(&voice.speak_ulaw(&args.text)?), PHONE_RATE)
        } else {
            (voice.speak_native(&args.text)?, ESPEAK_RATE)
        }
    };
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut wav = hound::WavWriter::create(&args.out, spec)
        .with_context(|| format!("--out: cannot write {}", args.out.display()))?;
    for s in &samples {
        wav.write_sample(*s)?;
    }
    wav.finalize()?;
    eprintln!(
        "wrote {} ({:.2} s at {rate} Hz, {})",
        args.out.display(),
        samples.len() as f64 / f64::from(rate),
        args.voice
    );
    Ok(())
}

fn decode(ulaw: &[u8]) -> Vec<i16> {
    ulaw.iter().map(|&b| G711::Mulaw.decode(b)).collect()
}
