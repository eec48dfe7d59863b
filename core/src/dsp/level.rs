//! Frame loudness, for echo and noise decisions on the async side and for dashboards.

/// The level reported for digital silence.
pub const SILENCE_DBFS: f32 = -96.0;

/// RMS level of a block of 16-bit samples in dBFS (0 dB = full-scale sine's peak squared).
pub fn rms_dbfs(samples: &[i16]) -> f32 {
    if samples.is_empty() {
        return SILENCE_DBFS;
    }
    let energy: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    let mean = energy / samples.len() as f64;
    if mean <= 0.0 {
        return SILENCE_DBFS;
    }
    let db = 10.0 * (mean / (32768.0 * 32768.0)).log10();
    (db as f32).max(SILENCE_DBFS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_is_the_floor_and_full_scale_square_is_zero_db() {
        assert_eq!(rms_dbfs(&[0; 160]), SILENCE_DBFS);
        assert_eq!(rms_dbfs(&[]), SILENCE_DBFS);
        let square: Vec<i16> = (0..160).map(|i| if i % 2 == 0 { 32767 } else { -32767 }).collect();
        assert!(rms_dbfs(&square).abs() < 0.01);
    }

    #[test]
    fn halving_amplitude_lowers_level_by_six_db() {
        let a: Vec<i16> = (0..160).map(|i| if i % 2 == 0 { 8000 } else { -8000 }).collect();
        let b: Vec<i16> = a.iter().map(|s| s / 2).collect();
        assert!((rms_dbfs(&a) - rms_dbfs(&b) - 6.02).abs() < 0.05);
    }
}
