//! An operation's completion: its engine's place given back, and its tenant charged what it
//! cost ([`Charge`]): the device's measurement, the estimate it was dispatched with, or nothing.

use super::super::cost::{CostClass, Nanos};
use super::{FairQueue, Work};

/// What a completed operation costs its tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Charge {
    /// The device measured it: the tenant's finish tag moves by the difference from the estimate,
    /// and the cost model learns from it.
    Measured(Nanos),
    /// It ran but was not timed (a streamed copy's run, whose completion a host function posts;
    /// an operation the worker's timing threads were too far behind to time): the estimate
    /// stands, and counts as the tenant's device time. Taking it back would let a tenant whose
    /// work is never timed use an engine for free, ahead of every tenant of equal priority.
    Estimate,
    /// It failed or never ran: the estimate is taken back.
    Refund,
}

impl<J: Work> FairQueue<J> {
    /// The operation `ticket` completed at `now`, costing `charge`. Unknown tickets (already
    /// completed) are ignored.
    pub fn complete(&mut self, ticket: u64, charge: Charge, now: Nanos) {
        let Some(tk) = self.tickets.remove(&ticket) else {
            return;
        };
        if let Some(e) = tk.class.engine() {
            let order = &mut self.order[e.index()];
            if order.front() == Some(&ticket) {
                order.pop_front();
            } else {
                order.retain(|&t| t != ticket);
            }
            // Completions out of order leave stale entries behind the front; drop them.
            while order.front().is_some_and(|t| !self.tickets.contains_key(t)) {
                order.pop_front();
            }
            if tk.counted {
                let w = &mut self.in_flight[e.index()];
                *w = w.saturating_sub(tk.counted_ns);
            }
        }
        let (actual, obs) = match charge {
            Charge::Measured(m) => {
                let o = self.model.observe(&tk.class, m);
                (o.measured, Some(o))
            }
            Charge::Estimate => (tk.estimate, None),
            Charge::Refund => (0, None),
        };
        let Some(t) = self.tenants.get_mut(&tk.tenant) else {
            return;
        };
        t.in_flight = t.in_flight.saturating_sub(1);
        let delta = actual as f64 - tk.estimate as f64;
        t.finish += delta / f64::from(t.params.weight.max(1));
        if t.params.max_share.is_some() {
            t.tokens -= delta;
        }
        let kernel = matches!(tk.class, CostClass::Kernel(_));
        match (charge, obs) {
            (_, Some(o)) => t.stats.completed(now, kernel, o),
            (Charge::Estimate, None) => t.stats.add_device_time(now, kernel, actual),
            (_, None) => {}
        }
    }
}
