//! Isolation groups: which tenants share a worker process, and the workers' lifecycle.
//!
//! A tenant's group follows its policy rules ([`GroupKey::of`]): a named `group`, else its
//! `isolation` — every session alone (`tenant`), per Unix user (`uid`, the default), or all
//! together (`shared`). A group's worker is started for its first session and kept for later
//! ones; a worker whose context faulted or that died is replaced for the group's next session
//! (its own tenants keep it: their context is lost, as on a real GPU), and shut down when its
//! last tenant leaves. A `tenant` group's worker ends with its session.
//!
//! The kernel watchdog of a worker is the smallest non-zero `kernel_timeout` of its tenants.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use gpushare_client::proto::WorkerStatus;

use crate::device::{DResult, Device, WorkerConfig, WorkerState};
use crate::policy::{Isolation, Rules};

/// Which worker a tenant's device work runs in.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum GroupKey {
    /// A group the policy names.
    Named(String),
    /// The tenants of one Unix user.
    Uid(u32),
    /// One session alone.
    Session(u64),
    /// Everyone.
    Shared,
}

impl GroupKey {
    /// The group of session `session` of user `uid` under `rules`.
    pub fn of(rules: &Rules, uid: u32, session: u64) -> GroupKey {
        match (&rules.group, rules.isolation) {
            (Some(name), _) => GroupKey::Named(name.clone()),
            (None, Isolation::Tenant) => GroupKey::Session(session),
            (None, Isolation::Uid) => GroupKey::Uid(uid),
            (None, Isolation::Shared) => GroupKey::Shared,
        }
    }
}

impl fmt::Display for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupKey::Named(n) => write!(f, "{n}"),
            GroupKey::Uid(u) => write!(f, "uid:{u}"),
            GroupKey::Session(s) => write!(f, "session:{s}"),
            GroupKey::Shared => write!(f, "shared"),
        }
    }
}

/// One group: its current worker and the workers its tenants still hold.
#[derive(Default)]
struct Group {
    current: Option<Arc<Device>>,
    /// Every worker with tenants, with their timeouts (the current one included).
    workers: Vec<(Arc<Device>, Vec<Duration>)>,
    restarts: u64,
    faults: u64,
    last_fault: Option<String>,
}

impl Group {
    fn usable(&self) -> Option<Arc<Device>> {
        self.current
            .clone()
            .filter(|d| d.link().state() == WorkerState::Running)
    }

    fn entry(&mut self, dev: &Arc<Device>) -> &mut Vec<Duration> {
        if let Some(i) = self.workers.iter().position(|(d, _)| Arc::ptr_eq(d, dev)) {
            return &mut self.workers[i].1;
        }
        self.workers.push((Arc::clone(dev), Vec::new()));
        &mut self.workers.last_mut().expect("just pushed").1
    }
}

fn watchdog(timeouts: &[Duration]) -> Duration {
    timeouts
        .iter()
        .copied()
        .filter(|t| !t.is_zero())
        .min()
        .unwrap_or(Duration::ZERO)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The groups and their workers.
pub struct Groups {
    cfg: WorkerConfig,
    groups: Mutex<HashMap<GroupKey, Arc<Mutex<Group>>>>,
}

impl Groups {
    /// No group yet; workers start with `cfg`.
    pub fn new(cfg: WorkerConfig) -> Groups {
        Groups {
            cfg,
            groups: Mutex::new(HashMap::new()),
        }
    }

    fn group(&self, key: &GroupKey) -> Arc<Mutex<Group>> {
        Arc::clone(lock(&self.groups).entry(key.clone()).or_default())
    }

    /// The worker a new tenant of `key` joins (started or replaced as needed), with the
    /// tenant's `kernel_timeout` counted in its watchdog.
    pub fn join(&self, key: &GroupKey, timeout: Duration) -> DResult<Arc<Device>> {
        let g = self.group(key);
        let mut g = lock(&g);
        let dev = match g.usable() {
            Some(d) => d,
            None => {
                if let Some(old) = g.current.take() {
                    g.restarts += 1;
                    if let WorkerState::Faulted(r) | WorkerState::Dead { reason: r, .. } =
                        old.link().state()
                    {
                        g.last_fault = Some(r);
                    }
                }
                let d = Device::spawn(&key.to_string(), &self.cfg)?;
                g.current = Some(Arc::clone(&d));
                d
            }
        };
        let timeouts = g.entry(&dev);
        timeouts.push(timeout);
        dev.link().set_timeout(watchdog(timeouts));
        Ok(dev)
    }

    /// A tenant of `key` on worker `dev` left: a worker without tenants that is not the
    /// group's current one (or whose group was one session's) is shut down.
    pub fn leave(&self, key: &GroupKey, dev: &Arc<Device>, timeout: Duration) {
        let g = self.group(key);
        let mut g = lock(&g);
        let Some(i) = g.workers.iter().position(|(d, _)| Arc::ptr_eq(d, dev)) else {
            return;
        };
        let timeouts = &mut g.workers[i].1;
        if let Some(j) = timeouts.iter().position(|t| *t == timeout) {
            timeouts.swap_remove(j);
        }
        dev.link().set_timeout(watchdog(timeouts));
        if !timeouts.is_empty() {
            return;
        }
        let (d, _) = g.workers.swap_remove(i);
        let current = g.current.as_ref().is_some_and(|c| Arc::ptr_eq(c, &d));
        let retire = !current
            || matches!(key, GroupKey::Session(_))
            || d.link().state() != WorkerState::Running;
        if retire {
            g.faults += d
                .link()
                .counters
                .faults
                .load(std::sync::atomic::Ordering::Relaxed);
            if current {
                g.current = None;
            }
            d.shut_down();
        }
        drop(g);
        if matches!(key, GroupKey::Session(_)) {
            lock(&self.groups).remove(key);
        }
    }

    /// Every worker, for status (memory is filled in by the caller).
    pub fn status(&self) -> Vec<WorkerStatus> {
        let groups: Vec<(GroupKey, Arc<Mutex<Group>>)> = lock(&self.groups)
            .iter()
            .map(|(k, g)| (k.clone(), Arc::clone(g)))
            .collect();
        let mut out = Vec::new();
        for (key, g) in groups {
            let g = lock(&g);
            let mut devs: Vec<(Arc<Device>, usize)> = g
                .workers
                .iter()
                .map(|(d, t)| (Arc::clone(d), t.len()))
                .collect();
            if let Some(c) = &g.current {
                if !devs.iter().any(|(d, _)| Arc::ptr_eq(d, c)) {
                    devs.push((Arc::clone(c), 0));
                }
            }
            for (d, tenants) in devs {
                let link = d.link();
                let faults = link
                    .counters
                    .faults
                    .load(std::sync::atomic::Ordering::Relaxed);
                let (state, reason) = match link.state() {
                    WorkerState::Running => ("running".to_string(), None),
                    WorkerState::Faulted(r) => ("faulted".to_string(), Some(r)),
                    WorkerState::Dead { reason, .. } => ("dead".to_string(), Some(reason)),
                };
                out.push(WorkerStatus {
                    group: key.to_string(),
                    pid: link.pid(),
                    state,
                    tenants: tenants as u32,
                    memory_bytes: 0,
                    faults: g.faults + faults,
                    restarts: g.restarts,
                    streamed: link.streamed().counts(),
                    last_fault: reason.or_else(|| g.last_fault.clone()).unwrap_or_default(),
                });
            }
        }
        out.sort_by(|a, b| a.group.cmp(&b.group).then(a.pid.cmp(&b.pid)));
        out
    }

    /// Deduplication's figures over every worker of the device ([`crate::dedup::summary`]).
    pub fn dedup_summary(&self) -> crate::dedup::Summary {
        self.cfg.peers.dedup_summary()
    }

    /// Deduplication in each group's workers, by group name, from the device's `summary`:
    /// bytes saved (mappings of copies another worker or tenant holds), and faults of tenants
    /// mapping read-only copies.
    pub fn dedup_figures(
        &self,
        summary: &crate::dedup::Summary,
    ) -> std::collections::HashMap<String, (u64, u64)> {
        let groups: Vec<(GroupKey, Arc<Mutex<Group>>)> = lock(&self.groups)
            .iter()
            .map(|(k, g)| (k.clone(), Arc::clone(g)))
            .collect();
        let mut out = std::collections::HashMap::new();
        for (key, g) in groups {
            let devs: Vec<Arc<Device>> = lock(&g)
                .workers
                .iter()
                .map(|(d, _)| Arc::clone(d))
                .collect();
            let mut figures = (0, 0);
            for d in &devs {
                let saved = summary.saved.get(&d.peer_id()).copied().unwrap_or(0);
                figures.0 += saved * d.granularity();
                figures.1 += d.dedup_index().faults();
            }
            out.insert(key.to_string(), figures);
        }
        out
    }

    /// Shuts every worker down (broker shutdown).
    pub fn shut_down(&self) {
        let groups: Vec<Arc<Mutex<Group>>> = lock(&self.groups).values().cloned().collect();
        for g in groups {
            let g = lock(&g);
            for (d, _) in &g.workers {
                d.shut_down();
            }
            if let Some(c) = &g.current {
                c.shut_down();
            }
        }
    }
}
