//! What the broker shares with every session: the isolation groups (their workers), the device
//! snapshot, the scheduler, the region sizes, the policy, session ids and the shutdown flag. It knows nothing of sessions, so sessions can hold
//! it without an import cycle; the registry of live sessions is [`crate::session::registry`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gpushare_client::ShmConfig;

use gpushare_client::proto::DeviceInfo;

use crate::groups::Groups;
use crate::policy::Policy;
use crate::scheduler::Scheduler;

/// Broker-wide state shared with every session.
pub struct Env {
    /// The isolation groups and their workers.
    pub groups: Groups,
    /// The device as the first worker saw it (for status; each session gets its worker's).
    pub device: DeviceInfo,
    /// The library workers use.
    pub backend: String,
    /// The scheduler.
    pub sched: Arc<dyn Scheduler>,
    /// Region sizes.
    pub shm: ShmConfig,
    /// Policy.
    pub policy: Policy,
    started: Instant,
    next_session: AtomicU64,
    shutting_down: AtomicBool,
}

impl Env {
    /// The shared state of a broker starting now.
    pub fn new(
        groups: Groups,
        device: DeviceInfo,
        backend: String,
        sched: Arc<dyn Scheduler>,
        shm: ShmConfig,
        policy: Policy,
    ) -> Env {
        Env {
            groups,
            device,
            backend,
            sched,
            shm,
            policy,
            started: Instant::now(),
            next_session: AtomicU64::new(1),
            shutting_down: AtomicBool::new(false),
        }
    }

    /// A fresh session id.
    pub fn next_session_id(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }

    /// True once shutdown began.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Shutdown begins: no new session is accepted.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
    }

    /// How long the broker has been running.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }
}
