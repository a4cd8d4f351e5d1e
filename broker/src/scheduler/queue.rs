//! The fair queue: which tenant's next operation goes to the device, and when — a pure state
//! machine over a caller-supplied clock, so its properties are tested over modelled time
//! (`sim.rs`) and the threaded [`super::fair::Fair`] only adds locking.
//!
//! **Fairness: start-time fair queueing over estimated device time.** Each tenant keeps its
//! operations in its own queue, in command order, and offers one of them at a time (its *head*,
//! see *stream priorities* below). The head of a tenant's queue gets the start tag `S = max(v, F)` where `F` is the finish tag of the
//! tenant's previous operation and `v` the system's virtual time (the start tag of the latest
//! dispatched operation); the head with the smallest `S` goes first, and its finish tag is
//! `S + cost / weight`. When the device measured the operation, the tenant's `F` moves by
//! `(measured − estimated) / weight`, so shares follow measured time, not guesses; an operation
//! that ran unmeasured keeps its estimate, one that never ran gets it back ([`Charge`]). A tenant
//! back from idle starts at `v`: it is served at once, with no credit for its idle time (no
//! burst).
//!
//! **Submitted ahead.** Per engine (compute, host-to-device, device-to-host), at most about one
//! quantum of estimated work waits in the device behind what runs (the oldest operation in
//! flight): an operation is dispatched when nothing waits behind the running one, or when its
//! estimate still fits the quantum. So a decision takes effect within what runs plus one
//! quantum (long kernels are sliced to half a quantum), completions reaching the broker late
//! never idle the engine, and copies never wait behind another tenant's compute.
//!
//! **Priorities.** Only tenants of the highest priority that is *active* (has queued or in-flight
//! work) are served; lower ones wait. While a higher-priority tenant is merely connected, lower
//! tenants keep at most a guard's worth (`quantum / 40`) waiting in each engine and their long kernels
//! are cut to half of it, so a high-priority arrival waits for little.
//!
//! **Limits.** A tenant with `max_share` draws on a token bucket of device time that fills at
//! `max_share` per nanosecond of clock time (capacity one quantum): it is dispatched only while
//! the bucket is positive, even when it is alone.
//!
//! **Stream priorities.** A tenant's head is the first queued operation of its most urgent
//! stream priority (CUDA's: lower numbers first) that no *barrier* precedes, so work on a
//! high-priority stream passes the tenant's queued work on lower-priority streams. Operations of
//! one stream share its priority, so the first of a priority is its stream's first: each
//! stream's order is kept. Barriers — operations that order several streams (event waits,
//! legacy-stream joins, stream memory writes) — pass nothing and nothing passes them. An event
//! record belongs to its stream: it keeps its place there, and other streams' work may pass it
//! (a wait on the event is a barrier, so it never passes the record).
//!
//! **Free operations** (markers, event records and waits, host functions) take no device time:
//! they go as soon as they reach the head of their tenant's queue.

use std::collections::{BTreeMap, HashMap, VecDeque};

use super::cost::{CostClass, CostModel, Engine, Nanos};
pub use super::ops::Lane;
use super::ops::{Ops, Queued};
use super::stats::{TenantReport, TenantStats};
use super::{TenantId, TenantParams};

mod completion;
mod slicing;

pub use completion::Charge;

/// Default quantum.
pub const DEFAULT_QUANTUM_NS: Nanos = 2_000_000;
/// Fewest bytes in a chunk a host copy is cut into (a chunk's fixed cost — a command, two
/// events, a completion — stays small beside its bytes).
pub const MIN_COPY_CHUNK: u64 = 256 << 10;
/// Shortest chunk, in estimated device time, a host copy is cut into: chunks are cut to the
/// slice target (half the window), but no shorter than this, so a fast engine's chunks stay
/// long enough to pay their fixed cost (on a GPU's 25 GB/s, about 1.2 MiB), and a
/// higher-priority copy waits behind at most about two of them.
pub const MIN_COPY_CHUNK_NS: Nanos = 50_000;
/// A dispatched operation whose completion has not come back after this long stops counting
/// against its engine's window (it still counts for fairness when it does complete).
const STALE_NS: Nanos = 30_000_000_000;

/// What the queue needs from a unit of work.
pub trait Work: Sized {
    /// What the cost model needs to know about it.
    fn class(&self) -> CostClass;
    /// Its place among the tenant's streams (default: all on one stream, in order).
    fn lane(&self) -> Lane {
        Lane::Stream(0)
    }
    /// Its stream, for letting other streams' work pass a head that waits for its engine (0:
    /// unknown, passes nothing and nothing passes it; the default).
    fn stream_key(&self) -> u64 {
        0
    }
    /// Splits a kernel into `parts` block-range slices, or a host copy into `parts` chunks, in
    /// order, if it can be cut (`Err(self)` otherwise).
    fn split(self, parts: u32) -> Result<Vec<Self>, Self> {
        let _ = parts;
        Err(self)
    }
    /// The cost class of the first of `parts` slices (`None`: it cannot be sliced).
    fn slice_class(&self, parts: u32) -> Option<CostClass> {
        let _ = parts;
        None
    }
    /// Whether dispatching it holds the tenant's later work until
    /// [`FairQueue::release`] (work that needs the tenant quiesced).
    fn holds(&self) -> bool {
        false
    }
}

/// Configuration of the queue.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QueueConfig {
    /// The quantum: the device time a decision commits, and the slice target.
    pub quantum: Nanos,
    /// Long kernels are cut into block-range slices, long host copies into chunks.
    pub slicing: bool,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            quantum: DEFAULT_QUANTUM_NS,
            slicing: true,
        }
    }
}

struct TenantQueue<J> {
    params: TenantParams,
    ops: Ops<J>,
    /// Finish tag of the latest dispatched operation (virtual ns).
    finish: f64,
    /// Tickets in flight.
    in_flight: usize,
    /// Dispatched a job that [`Work::holds`] and not yet released.
    held: bool,
    /// Device-time tokens (`max_share` tenants), and when they were last filled.
    tokens: f64,
    filled: Nanos,
    stats: TenantStats,
}

struct Ticket {
    tenant: TenantId,
    class: CostClass,
    estimate: Nanos,
    /// What it adds to its engine's in-flight estimate.
    counted_ns: Nanos,
    dispatched: Nanos,
    /// Still counted in its engine's window.
    counted: bool,
}

fn queued<J: Work>(job: J, at: Nanos) -> Queued<J> {
    Queued {
        class: job.class(),
        lane: job.lane(),
        stream: job.stream_key(),
        job,
        at,
    }
}

/// A dispatch decision.
pub enum Pick<J> {
    /// Submit `job`; report its completion with `ticket` when it has one.
    Job {
        /// Owner.
        tenant: TenantId,
        /// The work.
        job: J,
        /// Timed operations' ticket (free operations have none).
        ticket: Option<u64>,
    },
    /// Nothing can go now; something may at this time (a capped tenant's bucket refills).
    WaitUntil(Nanos),
    /// Nothing can go until work arrives or completes.
    Wait,
}

/// The fair queue (see the module documentation).
pub struct FairQueue<J> {
    cfg: QueueConfig,
    tenants: BTreeMap<TenantId, TenantQueue<J>>,
    vtime: f64,
    in_flight: [Nanos; 3],
    /// Per engine, the tickets in flight in dispatch order: the first is taken as running.
    order: [VecDeque<u64>; 3],
    tickets: HashMap<u64, Ticket>,
    next_ticket: u64,
    model: CostModel,
}

impl<J: Work> FairQueue<J> {
    /// An empty queue using `model` (seeded from profiles, or empty).
    pub fn new(cfg: QueueConfig, model: CostModel) -> FairQueue<J> {
        FairQueue {
            cfg,
            tenants: BTreeMap::new(),
            vtime: 0.0,
            in_flight: [0; 3],
            order: Default::default(),
            tickets: HashMap::new(),
            next_ticket: 1,
            model,
        }
    }

    /// The configuration.
    pub fn config(&self) -> QueueConfig {
        self.cfg
    }

    /// Replaces the configuration (a policy reload).
    pub fn set_config(&mut self, cfg: QueueConfig) {
        self.cfg = cfg;
    }

    /// The cost model.
    pub fn model(&self) -> &CostModel {
        &self.model
    }

    /// A tenant joins at `now`.
    pub fn add_tenant(&mut self, id: TenantId, params: TenantParams, now: Nanos) {
        let tq = TenantQueue {
            params,
            ops: Ops::new(),
            finish: self.vtime,
            in_flight: 0,
            held: false,
            tokens: 0.0,
            filled: now,
            stats: TenantStats::new(now),
        };
        self.tenants.insert(id, tq);
    }

    /// A tenant's parameters change.
    pub fn set_params(&mut self, id: TenantId, params: TenantParams) {
        if let Some(t) = self.tenants.get_mut(&id) {
            t.params = params;
        }
    }

    /// A tenant leaves; its queued jobs are returned. Its operations in flight still complete.
    pub fn remove_tenant(&mut self, id: TenantId) -> Vec<J> {
        self.tenants
            .remove(&id)
            .map(|t| t.ops.into_jobs().collect())
            .unwrap_or_default()
    }

    /// True if the tenant is known.
    pub fn has_tenant(&self, id: TenantId) -> bool {
        self.tenants.contains_key(&id)
    }

    /// Jobs of tenant `id` waiting.
    pub fn queued(&self, id: TenantId) -> usize {
        self.tenants.get(&id).map_or(0, |t| t.ops.len())
    }

    /// Queues a job of tenant `id` at `now` (false: unknown tenant).
    pub fn push(&mut self, id: TenantId, job: J, now: Nanos) -> Result<(), J> {
        let Some(t) = self.tenants.get_mut(&id) else {
            return Err(job);
        };
        if t.ops.is_empty() && t.in_flight == 0 {
            // Back from idle: no credit for the time away.
            t.finish = t.finish.max(self.vtime);
        }
        t.ops.push(queued(job, now));
        Ok(())
    }

    /// The scheduling report of tenant `id` at `now`.
    pub fn report(&mut self, id: TenantId, now: Nanos) -> Option<TenantReport> {
        self.tenants.get_mut(&id).map(|t| t.stats.report(now))
    }

    /// True while tenant `id` is held by a dispatched [`Work::holds`] job.
    pub fn is_held(&self, id: TenantId) -> bool {
        self.tenants.get(&id).is_some_and(|t| t.held)
    }

    /// Ends the hold a dispatched [`Work::holds`] job put on tenant `id`.
    pub fn release(&mut self, id: TenantId) {
        if let Some(t) = self.tenants.get_mut(&id) {
            t.held = false;
        }
    }

    /// Decides what to submit at `now`.
    pub fn pick(&mut self, now: Nanos) -> Pick<J> {
        self.release_stale(now);
        if let Some(id) = self.free_head() {
            return self.dispatch(id, now, None);
        }
        let Some(active) = self.active_priority() else {
            return Pick::Wait;
        };
        // The fair choice per engine (smallest start tag); a choice that does not fit its
        // engine's window holds that engine (smaller work of others must not overtake it).
        let mut best: [Option<(f64, TenantId)>; 3] = [None; 3];
        let mut wake: Option<Nanos> = None;
        let ids: Vec<TenantId> = self.tenants.keys().copied().collect();
        for id in ids {
            match self.eligibility(id, active, now) {
                Eligible::Now(start, engine) => {
                    let slot = &mut best[engine.index()];
                    if slot.is_none_or(|(s, _)| start < s) {
                        *slot = Some((start, id));
                    }
                }
                Eligible::At(t) => wake = Some(wake.map_or(t, |w: Nanos| w.min(t))),
                Eligible::No => {}
            }
        }
        let mut order: Vec<(f64, TenantId)> = best.iter().flatten().copied().collect();
        order.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (_, id) in order {
            if self.fits(id) {
                return self.dispatch(id, now, None);
            }
            if let Some(i) = self.alternative(id, &best) {
                return self.dispatch(id, now, Some(i));
            }
        }
        match wake {
            Some(t) => Pick::WaitUntil(t),
            None => Pick::Wait,
        }
    }

    /// True if tenant `id`'s head fits its engine's window now.
    fn fits(&self, id: TenantId) -> bool {
        let Some(t) = self.tenants.get(&id) else {
            return false;
        };
        t.ops
            .head()
            .is_some_and(|head| self.fits_class(t, &head.class))
    }

    /// When tenant `id`'s head waits for its engine: the index of another stream's operation
    /// that may go now: free, or for *another* engine that no other tenant is the fair choice
    /// for, fitting its window (on the head's own engine the tenant's streams keep command
    /// order, so equal-priority streams take turns as submitted).
    fn alternative(&self, id: TenantId, best: &[Option<(f64, TenantId)>; 3]) -> Option<usize> {
        let t = self.tenants.get(&id).filter(|t| !t.held)?;
        // Engines whose turn is taken: the head's, and each one's first alternative (later
        // operations for that engine keep command order behind it).
        let mut taken = [false; 3];
        if let Some(e) = t.ops.head()?.class.engine() {
            taken[e.index()] = true;
        }
        t.ops
            .alternatives()
            .find(|(_, q)| match q.class.engine() {
                None => q.class == CostClass::Free,
                Some(e) => {
                    let first = !std::mem::replace(&mut taken[e.index()], true);
                    first
                        && best[e.index()].is_none_or(|(_, b)| b == id)
                        && self.fits_class(t, &q.class)
                }
            })
            .map(|(i, _)| i)
    }

    /// True if an operation of `class` of tenant `t` fits its engine's window now.
    fn fits_class(&self, t: &TenantQueue<J>, class: &CostClass) -> bool {
        let engine = class.engine().unwrap_or(Engine::Compute);
        let in_flight = self.in_flight[engine.index()];
        let window = self.window(t);
        if !self.model.is_known(class) {
            // Never measured: it goes alone, and holds its engine until it is (see `dispatch`).
            return in_flight == 0;
        }
        // What runs does not count: at most a window of work waits behind it (or one
        // operation, so the engine never idles between long ones).
        let ahead = in_flight.saturating_sub(self.running(engine));
        ahead == 0 || ahead + self.model.estimate(class) <= window
    }

    /// A tenant whose head is free (takes no device time), if any.
    fn free_head(&self) -> Option<TenantId> {
        self.tenants
            .iter()
            .find(|(_, t)| !t.held && t.ops.head().is_some_and(|q| q.class == CostClass::Free))
            .map(|(&id, _)| id)
    }

    /// The highest priority with queued or in-flight work.
    fn active_priority(&self) -> Option<crate::policy::Priority> {
        self.tenants
            .values()
            .filter(|t| (!t.ops.is_empty() && !t.held) || t.in_flight > 0)
            .map(|t| t.params.priority)
            .max()
    }

    /// The window of tenant `t`'s engine work: a guard while a higher-priority tenant is
    /// connected, else the quantum.
    fn window(&self, t: &TenantQueue<J>) -> Nanos {
        if self.outranked(t) {
            self.cfg.quantum / 40
        } else {
            self.cfg.quantum
        }
    }

    fn outranked(&self, t: &TenantQueue<J>) -> bool {
        self.tenants
            .values()
            .any(|o| o.params.priority > t.params.priority)
    }

    fn eligibility(
        &mut self,
        id: TenantId,
        active: crate::policy::Priority,
        now: Nanos,
    ) -> Eligible {
        let vtime = self.vtime;
        let Some(t) = self.tenants.get(&id) else {
            return Eligible::No;
        };
        let Some(head) = t.ops.head() else {
            return Eligible::No;
        };
        if t.held || t.params.priority < active {
            return Eligible::No;
        }
        let engine = head.class.engine().unwrap_or(Engine::Compute);
        if let Some(cap) = t.params.max_share {
            let t = self.tenants.get_mut(&id).expect("present");
            refill(t, cap, self.cfg.quantum, now);
            if t.tokens <= 0.0 {
                let wait = (-t.tokens / cap).ceil() as Nanos;
                return Eligible::At(now + wait.max(1));
            }
        }
        let t = &self.tenants[&id];
        Eligible::Now(t.finish.max(vtime), engine)
    }

    /// Hands out tenant `id`'s head (cut first when long), or its operation at `alternative`.
    fn dispatch(&mut self, id: TenantId, now: Nanos, alternative: Option<usize>) -> Pick<J> {
        if alternative.is_none() {
            self.slice_head(id);
        }
        let Some(t) = self.tenants.get_mut(&id) else {
            return Pick::Wait;
        };
        let taken = match alternative {
            Some(i) => t.ops.take_at(i),
            None => t.ops.take(),
        };
        let Some(q) = taken else {
            return Pick::Wait;
        };
        t.held = q.job.holds();
        t.stats.queued(now.saturating_sub(q.at));
        let Some(engine) = q.class.engine() else {
            return Pick::Job {
                tenant: id,
                job: q.job,
                ticket: None,
            };
        };
        let estimate = self.model.estimate(&q.class);
        // An operation the model cannot estimate counts as a whole quantum until measured.
        let counted = if self.model.is_known(&q.class) {
            estimate
        } else {
            estimate.max(self.cfg.quantum)
        };
        let start = t.finish.max(self.vtime);
        t.finish = start + estimate as f64 / f64::from(t.params.weight.max(1));
        t.in_flight += 1;
        if t.params.max_share.is_some() {
            t.tokens -= estimate as f64;
        }
        self.vtime = start;
        self.in_flight[engine.index()] += counted;
        self.order[engine.index()].push_back(self.next_ticket);
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.tickets.insert(
            ticket,
            Ticket {
                tenant: id,
                class: q.class,
                estimate,
                counted_ns: counted,
                dispatched: now,
                counted: true,
            },
        );
        Pick::Job {
            tenant: id,
            job: q.job,
            ticket: Some(ticket),
        }
    }

    fn release_stale(&mut self, now: Nanos) {
        for tk in self.tickets.values_mut() {
            if tk.counted && now.saturating_sub(tk.dispatched) > STALE_NS {
                tk.counted = false;
                if let Some(e) = tk.class.engine() {
                    let w = &mut self.in_flight[e.index()];
                    *w = w.saturating_sub(tk.counted_ns);
                }
                tracing::warn!(
                    tenant = tk.tenant,
                    "an operation has not completed after {} s; it no longer holds back others",
                    STALE_NS / 1_000_000_000
                );
            }
        }
    }

    /// The counted estimate of the operation taken as running on `engine` (the oldest in
    /// flight).
    fn running(&self, engine: Engine) -> Nanos {
        self.order[engine.index()]
            .iter()
            .find_map(|t| self.tickets.get(t).filter(|t| t.counted))
            .map_or(0, |t| t.counted_ns)
    }

    /// Estimated device time in flight per engine.
    pub fn in_flight(&self) -> [Nanos; 3] {
        self.in_flight
    }
}

enum Eligible {
    /// Can go now with this start tag, on this engine.
    Now(f64, Engine),
    /// Can go at this time (its bucket refills).
    At(Nanos),
    /// Cannot go.
    No,
}

/// Fills a capped tenant's bucket for the time since it was last filled.
fn refill<J>(t: &mut TenantQueue<J>, cap: f64, quantum: Nanos, now: Nanos) {
    let elapsed = now.saturating_sub(t.filled);
    t.filled = now;
    t.tokens = (t.tokens + elapsed as f64 * cap).min(quantum as f64 * cap);
}
