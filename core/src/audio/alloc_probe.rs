//! A global allocator that counts heap allocations made inside audio worker loops.
//!
//! The worker loop's contract is "no allocation after call setup". Installing this probe as the
//! process's `#[global_allocator]` makes that contract observable: tests assert the count stays
//! zero under real load, and the `hermes` binary installs it so `bench audio` reports it too.
//! Cost on every allocation: one const thread-local read; on worker threads, one relaxed add.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use super::thread::on_audio_worker;

/// Counts allocations (including reallocations) made while [`on_audio_worker`] is true, and
/// forwards everything to the system allocator.
#[derive(Debug)]
pub struct AllocationProbe {
    worker_allocations: AtomicU64,
}

impl AllocationProbe {
    pub const fn new() -> Self {
        AllocationProbe { worker_allocations: AtomicU64::new(0) }
    }

    /// Allocations made inside audio worker loops since the process started.
    pub fn worker_allocations(&self) -> u64 {
        self.worker_allocations.load(Ordering::Relaxed)
    }

    #[inline]
    fn note(&self) {
        if on_audio_worker() {
            self.worker_allocations.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Default for AllocationProbe {
    fn default() -> Self {
        Self::new()
    }
}

#[allow(unsafe_code)]
// SAFETY: every method forwards to the system allocator with its arguments unchanged, so the
// `GlobalAlloc` contract holds exactly as it does for `System`; counting neither allocates nor
// touches the memory handed out.
unsafe impl GlobalAlloc for AllocationProbe {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.note();
        // SAFETY: our caller upholds `GlobalAlloc::alloc`'s contract; we pass it on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.note();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.note();
        // SAFETY: `ptr` came from this allocator, i.e. from `System`; contract passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, i.e. from `System`; contract passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}
