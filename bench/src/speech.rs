//! Loading speech recordings as a carrier would send them: 8 kHz G.711.

use std::path::{Path, PathBuf};

use hermes_core::codec::G711;
use hermes_core::dsp::Downsampler2x;

/// Why a recording could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SpeechFileError {
    #[error("{path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error(
        "{path}: {channels} channels; a phone line is mono, please mix down (e.g. `sox in.wav -c 1 out.wav`)"
    )]
    NotMono { path: PathBuf, channels: u16 },
    #[error(
        "{path}: {rate} Hz; use an 8 kHz or 16 kHz recording (e.g. `sox in.wav -r 8000 out.wav`)"
    )]
    Rate { path: PathBuf, rate: u32 },
    #[error("{path}: no audio in the file")]
    Empty { path: PathBuf },
}

/// Reads a mono WAV file at 8 or 16 kHz (16-bit integer or 32-bit float) as 8 kHz samples in
/// [-1, 1).
pub fn read_wav_8k(path: &Path) -> Result<Vec<f32>, SpeechFileError> {
    let unreadable =
        |reason: String| SpeechFileError::Unreadable { path: path.to_path_buf(), reason };
    let reader = hound::WavReader::open(path).map_err(|e| unreadable(e.to_string()))?;
    let spec = reader.spec();
    if spec.channels != 1 {
        return Err(SpeechFileError::NotMono { path: path.to_path_buf(), channels: spec.channels });
    }
    let samples: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Int => {
            let scale = (1u32 << (spec.bits_per_sample.saturating_sub(1))) as f32;
            reader
                .into_samples::<i32>()
                .map(|s| s.map(|v| v as f32 / scale))
                .collect::<Result<_, _>>()
                .map_err(|e| unreadable(e.to_string()))?
        }
        hound::SampleFormat::Float => reader
            .into_samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(|e| unreadable(e.to_string()))?,
    };
    if samples.is_empty() {
        return Err(SpeechFileError::Empty { path: path.to_path_buf() });
    }
    match spec.sample_rate {
        8000 => Ok(samples),
        16000 => {
            let mut down = Downsampler2x::new();
            let mut out = vec![0.0; down.output_len(samples.len())];
            let n = down.process(&samples, &mut out);
            out.truncate(n);
            Ok(out)
        }
        rate => Err(SpeechFileError::Rate { path: path.to_path_buf(), rate }),
    }
}

/// Encodes 8 kHz samples in [-1, 1) as G.711.
pub fn encode(samples: &[f32], law: G711) -> Vec<u8> {
    samples.iter().map(|&s| law.encode((s.clamp(-1.0, 1.0) * 32767.0) as i16)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_wav(path: &Path, rate: u32, channels: u16, samples: &[i16]) {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).expect("create");
        for &s in samples {
            w.write_sample(s).expect("write");
        }
        w.finalize().expect("finalize");
    }

    #[test]
    fn a_16_khz_recording_is_resampled_to_8_khz() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.wav");
        write_wav(&path, 16000, 1, &vec![1000; 1600]);
        assert_eq!(read_wav_8k(&path).expect("read").len(), 800);
    }

    #[test]
    fn unsupported_recordings_are_refused_with_how_to_convert_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let stereo = dir.path().join("stereo.wav");
        write_wav(&stereo, 8000, 2, &[0; 100]);
        assert!(read_wav_8k(&stereo).expect_err("stereo").to_string().contains("sox in.wav -c 1"));
        let cd = dir.path().join("cd.wav");
        write_wav(&cd, 44100, 1, &[0; 100]);
        assert!(read_wav_8k(&cd).expect_err("44.1k").to_string().contains("44100 Hz"));
        let missing = read_wav_8k(Path::new("/nonexistent.wav")).expect_err("missing");
        assert!(missing.to_string().starts_with("/nonexistent.wav:"));
    }

    #[test]
    fn encoding_clamps_out_of_range_samples() {
        assert_eq!(
            encode(&[2.0, -2.0], G711::Mulaw),
            vec![G711::Mulaw.encode(32767), G711::Mulaw.encode(-32767)]
        );
    }
}
