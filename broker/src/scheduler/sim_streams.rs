//! Stream priorities within one tenant, over modelled time: a device with one compute engine
//! that runs what the [`FairQueue`] dispatches in order, and a tenant whose low-priority stream
//! keeps the queue full while its high-priority stream submits one kernel now and then.

use std::collections::VecDeque;
use std::sync::Arc;

use super::cost::{CostClass, CostModel, Nanos, Shape};
use super::queue::{Charge, FairQueue, Lane, Pick, QueueConfig, Work};
use super::TenantParams;
use crate::policy::Priority;

const MS: Nanos = 1_000_000;

/// A kernel of `ns` on a stream of `priority`, or a barrier (an event record) when `barrier`.
#[derive(Clone, Debug)]
struct Kernel {
    name: u32,
    priority: i32,
    barrier: bool,
    ns: Nanos,
}

impl Work for Kernel {
    fn class(&self) -> CostClass {
        if self.barrier {
            return CostClass::Free;
        }
        CostClass::Kernel(Shape {
            kernel: Arc::from(format!("k{}", self.priority)),
            grid: [1, 1, 1],
            block: [32, 1, 1],
            shared: 0,
        })
    }

    fn lane(&self) -> Lane {
        if self.barrier {
            Lane::Barrier
        } else {
            Lane::Stream(self.priority)
        }
    }
}

/// Runs `jobs` (submission time, kernel) for one tenant; returns each kernel's (name,
/// completion time) in completion order.
fn run(jobs: Vec<(Nanos, Kernel)>) -> Vec<(u32, Nanos)> {
    let mut q = FairQueue::new(QueueConfig::default(), CostModel::new());
    let params = TenantParams {
        weight: 1,
        priority: Priority::Normal,
        max_share: None,
    };
    q.add_tenant(1, params, 0);
    let mut arrivals: VecDeque<(Nanos, Kernel)> = jobs.into();
    let mut engine: VecDeque<(Option<u64>, Kernel)> = VecDeque::new();
    let mut running: Option<(Option<u64>, Kernel, Nanos)> = None;
    let mut done = Vec::new();
    let mut now = 0;
    loop {
        while arrivals.front().is_some_and(|(at, _)| *at <= now) {
            let (_, k) = arrivals.pop_front().expect("front");
            assert!(q.push(1, k, now).is_ok());
        }
        while let Pick::Job { job, ticket, .. } = q.pick(now) {
            engine.push_back((ticket, job));
        }
        if running.is_none() {
            if let Some((ticket, k)) = engine.pop_front() {
                let end = now + k.ns;
                running = Some((ticket, k, end));
            }
        }
        let next = [running.as_ref().map(|r| r.2), arrivals.front().map(|a| a.0)]
            .into_iter()
            .flatten()
            .min();
        let Some(next) = next else {
            return done;
        };
        now = next.max(now);
        if let Some((ticket, k, end)) = running.take_if(|r| r.2 <= now) {
            if let Some(t) = ticket {
                q.complete(t, Charge::Measured(k.ns), end);
            }
            done.push((k.name, end));
        }
    }
}

/// 200 kernels of 1 ms on a stream of priority 0 at time 0, then one kernel of 1 ms on a stream
/// of `urgent` at 50 ms; a barrier first at 20 ms when `barrier`.
fn load(urgent: i32, barrier: bool) -> Vec<(Nanos, Kernel)> {
    let k = |name, priority, barrier| Kernel {
        name,
        priority,
        barrier,
        ns: if barrier { 0 } else { MS },
    };
    let mut jobs: Vec<(Nanos, Kernel)> = (0..200).map(|n| (0, k(n, 0, false))).collect();
    if barrier {
        jobs.push((20 * MS, k(1000, 0, true)));
    }
    jobs.push((50 * MS, k(999, urgent, false)));
    jobs
}

fn latency(done: &[(u32, Nanos)]) -> Nanos {
    let end = done.iter().find(|(n, _)| *n == 999).expect("ran").1;
    end - 50 * MS
}

#[test]
fn a_high_priority_stream_passes_the_tenants_queued_low_priority_work() {
    let done = run(load(-1, false));
    let waited = latency(&done);
    eprintln!("sim: high-priority stream kernel behind 200 ms of low-priority work: {waited} ns");
    // What runs plus the quantum of work waiting behind it, then its own millisecond.
    let bound = MS + QueueConfig::default().quantum + MS;
    assert!(waited <= bound, "waited {waited} ns > {bound}");
    // The low-priority stream kept its own order.
    let low: Vec<u32> = done.iter().map(|d| d.0).filter(|n| *n < 200).collect();
    assert_eq!(low, (0..200).collect::<Vec<_>>());
}

#[test]
fn equal_priorities_keep_command_order() {
    let done = run(load(0, false));
    let order: Vec<u32> = done.iter().map(|d| d.0).collect();
    let mut want: Vec<u32> = (0..200).collect();
    want.push(999);
    assert_eq!(order, want);
    assert!(latency(&done) > 100 * MS);
}

#[test]
fn a_barrier_holds_back_the_high_priority_stream() {
    // The event record queued at 20 ms orders everything before it first.
    let done = run(load(-1, true));
    let at = |name| done.iter().position(|d| d.0 == name).expect("ran");
    assert!(at(999) > at(1000), "the urgent kernel passed the barrier");
    assert!(at(1000) > at(199), "the barrier passed earlier work");
}
