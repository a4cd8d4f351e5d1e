//! The calling thread's CPU priority: background work (content hashing for deduplication) runs
//! at a lower priority than the threads on tenants' request paths, so on a busy host a model
//! load's hashing takes the CPU time those threads leave, not the time they need.

use rustix::process::{getpriority_process, setpriority_process};
use rustix::thread::gettid;

use crate::OsError;

/// The least priority Linux gives a thread (the highest nice value).
pub const NICE_MAX: i32 = 19;

/// The calling thread's nice value (`getpriority(PRIO_PROCESS, gettid())`: on Linux a nice value
/// belongs to a thread).
pub fn thread_nice() -> Result<i32, OsError> {
    getpriority_process(Some(gettid())).map_err(|e| OsError::sys("getpriority", e))
}

/// Lowers the calling thread's priority by `by` nice levels (at most to [`NICE_MAX`]); returns
/// the nice value now in force. Lowering needs no privilege; a thread already at the bottom
/// stays there.
pub fn lower_thread_priority(by: i32) -> Result<i32, OsError> {
    let now = thread_nice()?;
    let want = now.saturating_add(by.max(0)).min(NICE_MAX);
    if want != now {
        setpriority_process(Some(gettid()), want).map_err(|e| OsError::sys("setpriority", e))?;
    }
    thread_nice()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_lowers_its_own_priority_only() {
        let before = thread_nice().expect("getpriority");
        let lowered = std::thread::spawn(|| lower_thread_priority(5).expect("setpriority"))
            .join()
            .expect("thread");
        assert_eq!(lowered, (before + 5).min(NICE_MAX));
        // The spawning thread keeps its own.
        assert_eq!(thread_nice().expect("getpriority"), before);
        let bottom = std::thread::spawn(|| lower_thread_priority(100).expect("setpriority"))
            .join()
            .expect("thread");
        assert_eq!(bottom, NICE_MAX);
    }
}
