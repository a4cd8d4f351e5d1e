//! What the broker shares with every session: the isolation groups (their workers), the device
//! snapshot, the scheduler, the region sizes, the policy, session ids and the shutdown flag. It knows nothing of sessions, so sessions can hold
//! it without an import cycle; the registry of live sessions is [`crate::session::registry`].
//!
//! The policy is replaceable while the broker runs ([`Env::replace_policy`], from
//! [`crate::reload`]): readers take a snapshot ([`Env::policy`]) and keep it for as long as they
//! need one consistent view; whoever applies a policy to a running tenant does it under
//! [`Env::under_policy`], so a reload never overtakes another.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use gpushare_client::ShmConfig;

use gpushare_client::proto::DeviceInfo;

use crate::groups::Groups;
use crate::policy::Policy;
use crate::scheduler::Scheduler;

/// The files a broker serves and reads: its socket and its policy file.
#[derive(Clone, Debug)]
pub struct BrokerFiles {
    /// The listening socket.
    pub socket: PathBuf,
    /// The policy file (what a reload re-reads), if any.
    pub policy: Option<PathBuf>,
}

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
    /// The policy in force (replaced by a reload).
    policy: RwLock<Arc<Policy>>,
    /// The socket and the policy file.
    files: BrokerFiles,
    /// Held while a policy is applied to running tenants.
    applying: Mutex<()>,
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
        files: BrokerFiles,
    ) -> Env {
        Env {
            groups,
            device,
            backend,
            sched,
            shm,
            policy: RwLock::new(Arc::new(policy)),
            files,
            applying: Mutex::new(()),
            started: Instant::now(),
            next_session: AtomicU64::new(1),
            shutting_down: AtomicBool::new(false),
        }
    }

    /// The policy in force now.
    pub fn policy(&self) -> Arc<Policy> {
        Arc::clone(&self.policy.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Runs `f` with the policy in force; no reload puts another in force until `f` returns.
    pub fn under_policy<R>(&self, f: impl FnOnce(&Arc<Policy>) -> R) -> R {
        let _applying = self.applying.lock().unwrap_or_else(|p| p.into_inner());
        f(&self.policy())
    }

    /// Puts `policy` in force (sessions opened from now on get it) and runs `apply` with it
    /// (which updates the running tenants) before any other reload or [`Env::under_policy`].
    pub fn replace_policy<R>(&self, policy: Policy, apply: impl FnOnce(&Arc<Policy>) -> R) -> R {
        let _applying = self.applying.lock().unwrap_or_else(|p| p.into_inner());
        let policy = Arc::new(policy);
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) = Arc::clone(&policy);
        apply(&policy)
    }

    /// The policy file the broker was started with, if any.
    pub fn policy_file(&self) -> Option<&Path> {
        self.files.policy.as_deref()
    }

    /// The broker's socket.
    pub fn socket(&self) -> &Path {
        &self.files.socket
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
