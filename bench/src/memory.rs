//! Resident memory of this process, for per-call memory figures.

/// Resident set size in KiB (Linux `/proc/self/statm`); `None` elsewhere.
pub fn rss_kib() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let resident_pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(resident_pages * 4)
}
