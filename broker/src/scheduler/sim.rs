//! Tests of the fair queue over modelled time: a discrete-event model of a device (one compute
//! engine and two copy engines, each running its operations in dispatch order) and tenants that
//! generate work, so shares, latencies and delays are exact figures, never wall-clock times.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use super::cost::{CostClass, CostModel, Engine, Nanos, Shape};
use super::queue::{Charge, FairQueue, Pick, QueueConfig, Work};
use super::{TenantId, TenantParams};
use crate::policy::Priority;

pub(super) const MS: Nanos = 1_000_000;
pub(super) const US: Nanos = 1_000;

/// A unit of modelled work: a kernel of `blocks` blocks taking `ns` in all, or a copy.
#[derive(Clone, Debug)]
pub(super) struct SimJob {
    pub(super) tenant: TenantId,
    pub(super) kernel: Option<(Arc<str>, u32)>,
    pub(super) engine: Engine,
    pub(super) ns: Nanos,
    pub(super) sliceable: bool,
    /// Submission time of the request this job belongs to, and whether it is its last part.
    pub(super) submitted: Nanos,
    pub(super) last: bool,
    /// Its stream (0: the tenant's work is one line).
    pub(super) stream: u64,
}

impl Work for SimJob {
    fn stream_key(&self) -> u64 {
        self.stream
    }

    fn class(&self) -> CostClass {
        match &self.kernel {
            Some((name, blocks)) => CostClass::Kernel(Shape {
                kernel: Arc::clone(name),
                grid: [*blocks, 1, 1],
                block: [128, 1, 1],
                shared: 0,
            }),
            None => CostClass::Transfer {
                engine: self.engine,
                bytes: self.ns * 10,
            },
        }
    }

    fn slice_class(&self, parts: u32) -> Option<CostClass> {
        let (_, blocks) = self.kernel.as_ref()?;
        (self.sliceable && parts >= 2 && *blocks >= parts)
            .then(|| self.clone().split(parts).ok())
            .flatten()
            .and_then(|v| v.first().map(Work::class))
    }

    fn split(self, parts: u32) -> Result<Vec<Self>, Self> {
        let Some((name, blocks)) = self.kernel.clone() else {
            return self.split_copy(parts);
        };
        if !self.sliceable || parts < 2 || blocks < parts {
            return Err(self);
        }
        let per = blocks / parts;
        Ok((0..parts)
            .map(|i| {
                let b = if i == parts - 1 {
                    blocks - per * (parts - 1)
                } else {
                    per
                };
                SimJob {
                    kernel: Some((Arc::clone(&name), b)),
                    ns: self.ns * Nanos::from(b) / Nanos::from(blocks),
                    last: self.last && i == parts - 1,
                    ..self.clone()
                }
            })
            .collect())
    }
}

impl SimJob {
    /// A copy cut into `parts` equal chunks (when `sliceable`); only the last ends the request.
    fn split_copy(self, parts: u32) -> Result<Vec<Self>, Self> {
        if !self.sliceable || parts < 2 {
            return Err(self);
        }
        let n = Nanos::from(parts);
        Ok((0..n)
            .map(|i| SimJob {
                ns: self.ns / n + if i == n - 1 { self.ns % n } else { 0 },
                last: self.last && i == n - 1,
                ..self.clone()
            })
            .collect())
    }
}

/// How a modelled tenant generates work.
#[derive(Clone)]
pub(super) enum Load {
    /// Keeps `depth` kernels of `ns` (and `blocks` blocks) queued or running.
    Saturate {
        ns: Nanos,
        blocks: u32,
        depth: usize,
        sliceable: bool,
    },
    /// One kernel of `ns` every `period`, each waited for before the next (from `start`).
    Periodic {
        ns: Nanos,
        period: Nanos,
        start: Nanos,
    },
    /// `count` kernels of `ns` submitted at `at`, not sliceable.
    Burst { ns: Nanos, count: usize, at: Nanos },
    /// Active in `[from, to)` only, saturating with kernels of `ns`.
    Window { ns: Nanos, from: Nanos, to: Nanos },
}

pub(super) struct Tenant {
    id: TenantId,
    load: Load,
    pub(super) outstanding: usize,
    next_at: Nanos,
    busy_ns: Nanos,
    /// (completion time, device ns) of each completed job.
    done: Vec<(Nanos, Nanos)>,
    pub(super) latencies: Vec<Nanos>,
    /// Its completions carry no device time ([`Charge::Estimate`]: a streamed copy's runs).
    pub(super) unmeasured: bool,
}

struct Running {
    ticket: u64,
    job: SimJob,
    end: Nanos,
}

/// The modelled device plus its tenants.
pub(super) struct Sim {
    pub(super) q: FairQueue<SimJob>,
    pub(super) tenants: BTreeMap<TenantId, Tenant>,
    engines: [VecDeque<(u64, SimJob)>; 3],
    running: [Option<Running>; 3],
    pub(super) now: Nanos,
    wake: Option<Nanos>,
}

impl Sim {
    pub(super) fn new(cfg: QueueConfig) -> Sim {
        Sim {
            q: FairQueue::new(cfg, CostModel::new()),
            tenants: BTreeMap::new(),
            engines: Default::default(),
            running: Default::default(),
            now: 0,
            wake: None,
        }
    }

    pub(super) fn tenant(&mut self, id: TenantId, params: TenantParams, load: Load) {
        self.q.add_tenant(id, params, 0);
        let next_at = match &load {
            Load::Periodic { start, .. } => *start,
            Load::Burst { at, .. } => *at,
            Load::Window { from, .. } => *from,
            Load::Saturate { .. } => 0,
        };
        self.tenants.insert(
            id,
            Tenant {
                id,
                load,
                outstanding: 0,
                next_at,
                busy_ns: 0,
                done: Vec::new(),
                latencies: Vec::new(),
                unmeasured: false,
            },
        );
    }

    pub(super) fn kernel(
        t: TenantId,
        name: &str,
        ns: Nanos,
        blocks: u32,
        sliceable: bool,
        at: Nanos,
    ) -> SimJob {
        SimJob {
            tenant: t,
            kernel: Some((format!("{name}{t}").into(), blocks)),
            engine: Engine::Compute,
            ns,
            sliceable,
            submitted: at,
            last: true,
            stream: 0,
        }
    }

    /// Lets every tenant submit what its load wants at `now`.
    fn generate(&mut self) {
        let now = self.now;
        for t in self.tenants.values_mut() {
            let mut jobs = Vec::new();
            match t.load.clone() {
                Load::Saturate {
                    ns,
                    blocks,
                    depth,
                    sliceable,
                } => {
                    while t.outstanding < depth {
                        jobs.push(Sim::kernel(t.id, "sat", ns, blocks, sliceable, now));
                        t.outstanding += 1;
                    }
                }
                Load::Periodic { ns, period, .. } => {
                    if t.outstanding == 0 && now >= t.next_at {
                        jobs.push(Sim::kernel(t.id, "lat", ns, 8, false, now));
                        t.outstanding = 1;
                        t.next_at += period;
                        t.next_at = t.next_at.max(now);
                    }
                }
                Load::Burst { ns, count, at } => {
                    if now >= at && t.next_at != Nanos::MAX {
                        for _ in 0..count {
                            jobs.push(Sim::kernel(t.id, "burst", ns, 1, false, now));
                        }
                        t.outstanding += count;
                        t.next_at = Nanos::MAX;
                    }
                }
                Load::Window { ns, from, to } => {
                    while now >= from && now < to && t.outstanding < 4 {
                        jobs.push(Sim::kernel(t.id, "win", ns, 64, true, now));
                        t.outstanding += 1;
                    }
                }
            }
            for j in jobs {
                assert!(self.q.push(t.id, j, now).is_ok());
            }
        }
    }

    fn dispatch(&mut self) {
        self.wake = None;
        loop {
            match self.q.pick(self.now) {
                Pick::Job { job, ticket, .. } => {
                    let ticket = ticket.expect("sim jobs are all timed");
                    self.engines[job.engine.index()].push_back((ticket, job));
                }
                Pick::WaitUntil(t) => {
                    self.wake = Some(t);
                    break;
                }
                Pick::Wait => break,
            }
        }
        for e in 0..3 {
            if self.running[e].is_none() {
                if let Some((ticket, job)) = self.engines[e].pop_front() {
                    let end = self.now + job.ns;
                    self.running[e] = Some(Running { ticket, job, end });
                }
            }
        }
    }

    fn next_event(&self) -> Nanos {
        let mut t = Nanos::MAX;
        for r in self.running.iter().flatten() {
            t = t.min(r.end);
        }
        for x in self.tenants.values() {
            let pending = match &x.load {
                Load::Periodic { .. } | Load::Burst { .. } => x.next_at,
                Load::Window { from, to, .. } if x.outstanding < 4 && self.now < *to => {
                    (*from).max(self.now + 1)
                }
                _ => Nanos::MAX,
            };
            if pending > self.now {
                t = t.min(pending);
            }
        }
        if let Some(w) = self.wake {
            t = t.min(w.max(self.now + 1));
        }
        t
    }

    fn complete_at(&mut self, now: Nanos) {
        for e in 0..3 {
            let Some(r) = self.running[e].take_if(|r| r.end <= now) else {
                continue;
            };
            let t = self.tenants.get_mut(&r.job.tenant).expect("tenant");
            let charge = if t.unmeasured {
                Charge::Estimate
            } else {
                Charge::Measured(r.job.ns)
            };
            self.q.complete(r.ticket, charge, r.end);
            t.busy_ns += r.job.ns;
            t.done.push((r.end, r.job.ns));
            if r.job.last {
                t.outstanding -= 1;
                t.latencies.push(r.end - r.job.submitted);
            }
        }
    }

    pub(super) fn run(&mut self, until: Nanos) {
        while self.now < until {
            self.generate();
            self.dispatch();
            let t = self.next_event();
            if t == Nanos::MAX {
                break;
            }
            self.now = t.min(until);
            self.complete_at(self.now);
        }
    }

    /// Device time tenant `id` got in `[from, to)` (by completion time).
    fn busy_in(&self, id: TenantId, from: Nanos, to: Nanos) -> Nanos {
        self.tenants[&id]
            .done
            .iter()
            .filter(|(end, _)| *end >= from && *end < to)
            .map(|(_, ns)| ns)
            .sum()
    }

    pub(super) fn p99(&self, id: TenantId) -> Nanos {
        let mut l = self.tenants[&id].latencies.clone();
        assert!(l.len() >= 50, "too few samples: {}", l.len());
        l.sort_unstable();
        l[(l.len() - 1) * 99 / 100]
    }
}

pub(super) fn params(weight: u32, priority: Priority, max_share: Option<f64>) -> TenantParams {
    TenantParams {
        weight,
        priority,
        max_share,
    }
}

fn jain(x: &[f64]) -> f64 {
    let s: f64 = x.iter().sum();
    let s2: f64 = x.iter().map(|v| v * v).sum();
    s * s / (x.len() as f64 * s2)
}

/// A tenant that submits only what the test pushes.
pub(super) fn idle() -> Load {
    Load::Burst {
        ns: 0,
        count: 0,
        at: 0,
    }
}

pub(super) fn saturate(ns: Nanos, blocks: u32, sliceable: bool) -> Load {
    Load::Saturate {
        ns,
        blocks,
        depth: 16,
        sliceable,
    }
}

#[test]
fn equal_weights_share_equally_despite_10x_kernels() {
    let mut sim = Sim::new(QueueConfig::default());
    let n = Priority::Normal;
    sim.tenant(1, params(1, n, None), saturate(100 * US, 1, false));
    sim.tenant(2, params(1, n, None), saturate(1000 * US, 1, false));
    sim.run(10_000 * MS);
    let (a, b) = (
        sim.busy_in(1, 0, 10_000 * MS),
        sim.busy_in(2, 0, 10_000 * MS),
    );
    let j = jain(&[a as f64, b as f64]);
    eprintln!("sim: kernels 10x apart, equal weights: Jain {j:.4}");
    assert!(j >= 0.99, "Jain {j}: {a} vs {b}");
    assert!(
        a + b >= 9_950 * MS,
        "work-conserving: device busy {} ms",
        (a + b) / MS
    );
}

#[test]
fn weights_3_to_1_give_3_to_1() {
    let mut sim = Sim::new(QueueConfig::default());
    let n = Priority::Normal;
    sim.tenant(1, params(3, n, None), saturate(1000 * US, 1, false));
    sim.tenant(2, params(1, n, None), saturate(100 * US, 1, false));
    sim.run(10_000 * MS);
    let ratio = sim.busy_in(1, 0, 10_000 * MS) as f64 / sim.busy_in(2, 0, 10_000 * MS) as f64;
    eprintln!("sim: weights 3:1 give {ratio:.3}:1");
    assert!((ratio / 3.0 - 1.0).abs() <= 0.05, "ratio {ratio}");
}

#[test]
fn a_tenant_back_from_idle_gets_no_burst() {
    let mut sim = Sim::new(QueueConfig::default());
    let n = Priority::Normal;
    sim.tenant(1, params(1, n, None), saturate(500 * US, 1, false));
    sim.tenant(
        2,
        params(1, n, None),
        Load::Window {
            ns: 500 * US,
            from: 5_000 * MS,
            to: 6_000 * MS,
        },
    );
    sim.run(6_000 * MS);
    // Alone, tenant 1 had the whole device.
    assert!(sim.busy_in(1, 0, 5_000 * MS) >= 4_990 * MS);
    // Back after 5 s idle, tenant 2 gets its half from the start, not a catch-up burst.
    let first = sim.busy_in(2, 5_000 * MS, 5_100 * MS);
    let quantum = QueueConfig::default().quantum;
    assert!(
        first <= 50 * MS + quantum,
        "burst: {} ms in 100 ms",
        first / MS
    );
    assert!(
        first >= 50 * MS - quantum,
        "starved: {} ms in 100 ms",
        first / MS
    );
}

#[test]
fn high_priority_latency_beside_a_saturating_tenant() {
    let hi = Load::Periodic {
        ns: MS,
        period: 20 * MS,
        start: 0,
    };
    let mut alone = Sim::new(QueueConfig::default());
    alone.tenant(1, params(1, Priority::High, None), hi.clone());
    alone.run(10_000 * MS);
    let mut shared = Sim::new(QueueConfig::default());
    shared.tenant(1, params(1, Priority::High, None), hi);
    shared.tenant(
        2,
        params(1, Priority::Normal, None),
        saturate(2 * MS, 1024, true),
    );
    shared.run(10_000 * MS);
    let (a, s) = (alone.p99(1), shared.p99(1));
    eprintln!("sim: high-priority p99 alone {a} ns, beside a saturating tenant {s} ns");
    assert!(
        s as f64 <= 1.2 * a as f64,
        "p99 alone {a} ns, shared {s} ns"
    );
    // The normal tenant still gets the rest of the device.
    let rest = shared.busy_in(2, 0, 10_000 * MS);
    assert!(rest >= 9_300 * MS, "normal tenant got {} ms", rest / MS);
}

#[test]
fn a_flood_delays_another_call_by_at_most_two_of_its_kernels_plus_its_own_work() {
    let q = QueueConfig::default();
    let mut sim = Sim::new(q);
    let n = Priority::Normal;
    sim.tenant(
        1,
        params(1, n, None),
        Load::Burst {
            ns: 5 * MS,
            count: 1000,
            at: 0,
        },
    );
    sim.tenant(
        2,
        params(1, n, None),
        Load::Burst {
            ns: 100 * US,
            count: 1,
            at: 50 * MS + 123,
        },
    );
    sim.run(200 * MS);
    let delay = sim.tenants[&2].latencies[0];
    // Unsliceable 5 ms kernels: in the device when the call arrives are at most the running
    // kernel and one more waiting behind it (a quantum is less than one); then its own 100 µs.
    assert!(delay <= 2 * 5 * MS + 100 * US, "delay {} µs", delay / US);
    eprintln!(
        "sim: flood of unsliceable 5 ms kernels delays a 0.1 ms call by {} µs",
        delay / US
    );
}

#[test]
fn a_flood_of_sliceable_kernels_yields_within_one_and_a_half_quanta() {
    let q = QueueConfig::default();
    let mut sim = Sim::new(q);
    let n = Priority::Normal;
    sim.tenant(1, params(1, n, None), saturate(20 * MS, 4096, true));
    sim.tenant(
        2,
        params(1, n, None),
        Load::Burst {
            ns: 100 * US,
            count: 1,
            at: 500 * MS + 7,
        },
    );
    sim.run(1_000 * MS);
    let delay = sim.tenants[&2].latencies[0];
    // The running slice (at most half a quantum), a quantum waiting behind it, its own work.
    assert!(
        delay <= q.quantum + q.quantum / 2 + 100 * US,
        "delay {} µs",
        delay / US
    );
    eprintln!(
        "sim: flood of sliceable 20 ms kernels delays a 0.1 ms call by {} µs",
        delay / US
    );
}

#[test]
fn max_share_holds_alone() {
    let mut sim = Sim::new(QueueConfig::default());
    sim.tenant(
        1,
        params(1, Priority::Normal, Some(0.3)),
        saturate(700 * US, 1, false),
    );
    sim.run(10_000 * MS);
    let share = sim.busy_in(1, 0, 10_000 * MS) as f64 / (10_000 * MS) as f64;
    eprintln!("sim: max_share 0.3 alone: {share:.4}");
    assert!((share - 0.3).abs() <= 0.015, "share {share}");
    let r = sim.q.report(1, 10_000 * MS).expect("report");
    assert!((r.share - 0.3).abs() <= 0.015, "reported share {}", r.share);
    assert!(
        r.prediction_error.expect("measured") < 0.01,
        "one shape: learned exactly"
    );
}
