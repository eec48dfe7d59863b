//! Placing audio workers on cores, and knowing (cheaply, from anywhere) whether the current
//! thread is one.

use std::cell::Cell;

thread_local! {
    static ON_AUDIO_WORKER: Cell<bool> = const { Cell::new(false) };
}

/// Whether the calling thread is an audio worker inside its real-time loop.
///
/// Reads a const-initialised thread-local with no destructor, so it never allocates: a global
/// allocator may call it to count or forbid allocations on audio threads (the project's tests
/// do exactly that).
pub fn on_audio_worker() -> bool {
    ON_AUDIO_WORKER.try_with(Cell::get).unwrap_or(false)
}

pub(crate) fn set_on_audio_worker(value: bool) {
    ON_AUDIO_WORKER.with(|flag| flag.set(value));
}

/// What a worker got when it asked for its core and priority.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Placement {
    /// The core the worker is pinned to, if pinning was asked for and succeeded.
    pub core: Option<usize>,
    /// Whether `SCHED_FIFO` was asked for and granted.
    pub realtime: bool,
}

/// The cores workers should use: all but the first (left to the network runtime and the OS)
/// when there is more than one, each worker on its own core while there are enough.
pub(crate) fn worker_core(
    worker: usize,
    cores: &[core_affinity::CoreId],
) -> Option<core_affinity::CoreId> {
    match cores.len() {
        0 => None,
        1 => Some(cores[0]),
        n => Some(cores[1 + worker % (n - 1)]),
    }
}

/// Pins the current thread and raises its priority as configured. Failures are reported in the
/// returned placement (and by the engine's stats), never fatal: a worker on an unpinned,
/// normal-priority thread still works, only with more jitter.
pub(crate) fn place_current(worker: usize, pin: bool, realtime_priority: Option<u8>) -> Placement {
    let mut placement = Placement::default();
    if pin {
        let cores = core_affinity::get_core_ids().unwrap_or_default();
        if let Some(core) = worker_core(worker, &cores)
            && core_affinity::set_for_current(core)
        {
            placement.core = Some(core.id);
        }
    }
    if let Some(priority) = realtime_priority {
        placement.realtime = set_realtime(priority);
    }
    placement
}

#[cfg(unix)]
fn set_realtime(priority: u8) -> bool {
    use thread_priority::unix::{
        RealtimeThreadSchedulePolicy, ThreadSchedulePolicy, set_thread_priority_and_policy,
        thread_native_id,
    };
    use thread_priority::{ThreadPriority, ThreadPriorityValue};
    let Ok(value) = ThreadPriorityValue::try_from(priority.min(99)) else { return false };
    set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Crossplatform(value),
        ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::Fifo),
    )
    .is_ok()
}

#[cfg(not(unix))]
fn set_realtime(_priority: u8) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use core_affinity::CoreId;

    #[test]
    fn workers_leave_the_first_core_to_the_network_runtime() {
        let cores: Vec<CoreId> = (0..4).map(|id| CoreId { id }).collect();
        let ids: Vec<usize> = (0..4).map(|w| worker_core(w, &cores).map_or(99, |c| c.id)).collect();
        assert_eq!(ids, vec![1, 2, 3, 1]);
    }

    #[test]
    fn a_single_core_machine_still_places_workers() {
        assert_eq!(worker_core(3, &[CoreId { id: 0 }]).map(|c| c.id), Some(0));
        assert_eq!(worker_core(0, &[]), None);
    }

    #[test]
    fn ordinary_threads_are_not_audio_workers() {
        assert!(!on_audio_worker());
    }
}
