//! A tenant's bounds on the driver objects it holds at once ([`crate::policy::Limits`]) as its
//! session enforces them: [`Limiter::check`] before an object is created (the counts come from
//! the tenant's tables, under their lock), and the count of host functions in flight, kept here
//! because they are counted on the ring thread and uncounted on driver threads
//! ([`Limiter::host_fn`], [`HostFnSlot`]).
//!
//! A refusal is `CUDA_ERROR_OUT_OF_MEMORY` — what CUDA returns when it has no room for a
//! stream, an event, a module or a host function, or cannot pin host memory — and the session
//! goes on. The first refusal of each bound in a session is logged at `warn` (naming the tenant,
//! the bound and its value), later ones at `debug`, so a tenant looping on a full table cannot
//! flood the log. Everything here is atomics: no lock, so it sits outside the tenant's lock
//! order.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use gpushare_client::code::{self, CuCode};

use crate::policy::Limits;

/// One of the bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// `max_streams`.
    Streams = 0,
    /// `max_events`.
    Events = 1,
    /// `max_modules`.
    Modules = 2,
    /// `max_module_bytes`.
    ModuleBytes = 3,
    /// `max_host_fns`.
    HostFns = 4,
    /// `max_pinned_bytes`.
    PinnedBytes = 5,
}

const ALL: [Limit; 6] = [
    Limit::Streams,
    Limit::Events,
    Limit::Modules,
    Limit::ModuleBytes,
    Limit::HostFns,
    Limit::PinnedBytes,
];

impl Limit {
    /// The policy key.
    pub fn key(self) -> &'static str {
        match self {
            Limit::Streams => "max_streams",
            Limit::Events => "max_events",
            Limit::Modules => "max_modules",
            Limit::ModuleBytes => "max_module_bytes",
            Limit::HostFns => "max_host_fns",
            Limit::PinnedBytes => "max_pinned_bytes",
        }
    }

    fn of(self, l: &Limits) -> u64 {
        match self {
            Limit::Streams => u64::from(l.streams),
            Limit::Events => u64::from(l.events),
            Limit::Modules => u64::from(l.modules),
            Limit::ModuleBytes => l.module_bytes,
            Limit::HostFns => u64::from(l.host_fns),
            Limit::PinnedBytes => l.pinned_bytes,
        }
    }
}

/// A bound the tenant reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} of {max} reached", .limit.key())]
pub struct LimitError {
    /// Which bound.
    pub limit: Limit,
    /// Its value.
    pub max: u64,
}

impl LimitError {
    /// The `CUresult` to report: `CUDA_ERROR_OUT_OF_MEMORY`.
    pub fn code(&self) -> CuCode {
        code::ERROR_OUT_OF_MEMORY
    }
}

/// The bounds of one session and its host functions in flight.
#[derive(Debug)]
pub struct Limiter {
    session: u64,
    tenant: String,
    max: [AtomicU64; 6],
    warned: [AtomicBool; 6],
    host_fns: Arc<AtomicU64>,
}

impl Limiter {
    /// The bounds `limits` for session `session` of tenant `tenant` (named in log lines).
    pub fn new(session: u64, tenant: &str, limits: &Limits) -> Limiter {
        Limiter {
            session,
            tenant: tenant.to_string(),
            max: ALL.map(|l| AtomicU64::new(l.of(limits))),
            warned: Default::default(),
            host_fns: Arc::default(),
        }
    }

    /// New bounds (a policy reload): what the tenant holds stays, new objects are checked.
    pub fn set(&self, limits: &Limits) {
        for l in ALL {
            self.max[l as usize].store(l.of(limits), Ordering::Relaxed);
        }
    }

    /// The value of bound `limit` (0: none).
    pub fn max(&self, limit: Limit) -> u64 {
        self.max[limit as usize].load(Ordering::Relaxed)
    }

    /// Checks that `adding` more fit beside the `used` the tenant holds of `limit`.
    pub fn check(&self, limit: Limit, used: u64, adding: u64) -> Result<(), LimitError> {
        let max = self.max(limit);
        if max == 0 || used.saturating_add(adding) <= max {
            return Ok(());
        }
        let first = !self.warned[limit as usize].swap(true, Ordering::Relaxed);
        let key = limit.key();
        if first {
            tracing::warn!(
                session = self.session,
                tenant = %self.tenant.escape_debug(),
                "tenant reached {key} = {max}: refused with CUDA_ERROR_OUT_OF_MEMORY (logged \
                 once per session)"
            );
        } else {
            tracing::debug!(session = self.session, "{key} = {max} reached again");
        }
        Err(LimitError { limit, max })
    }

    /// Counts one more host function in flight, or refuses it past `max_host_fns`. The slot
    /// uncounts it when dropped (the function ran, or its operation was dropped).
    pub fn host_fn(&self) -> Result<HostFnSlot, LimitError> {
        let n = self.host_fns.fetch_add(1, Ordering::AcqRel);
        let slot = HostFnSlot(Arc::clone(&self.host_fns));
        self.check(Limit::HostFns, n, 1)?;
        Ok(slot)
    }

    /// Host functions in flight.
    pub fn host_fns_in_flight(&self) -> u64 {
        self.host_fns.load(Ordering::Acquire)
    }
}

/// One host function in flight; dropping it uncounts it.
#[derive(Debug)]
pub struct HostFnSlot(Arc<AtomicU64>);

impl Drop for HostFnSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(n: u32) -> Limits {
        Limits {
            streams: n,
            events: n,
            modules: n,
            module_bytes: u64::from(n) * 100,
            host_fns: n,
            pinned_bytes: u64::from(n) << 20,
        }
    }

    #[test]
    fn bounds_refuse_past_their_value_and_zero_means_none() {
        let l = Limiter::new(1, "t", &limits(2));
        assert!(l.check(Limit::Streams, 1, 1).is_ok());
        let e = l.check(Limit::Streams, 2, 1).unwrap_err();
        assert_eq!(
            (e.limit, e.max, e.code()),
            (Limit::Streams, 2, code::ERROR_OUT_OF_MEMORY)
        );
        assert!(l.check(Limit::ModuleBytes, 150, 50).is_ok());
        assert!(l.check(Limit::ModuleBytes, 150, 51).is_err());
        assert!(l.check(Limit::PinnedBytes, 1 << 20, 1 << 20).is_ok());
        assert!(l.check(Limit::PinnedBytes, 1 << 20, (1 << 20) + 1).is_err());
        l.set(&limits(0));
        assert!(l.check(Limit::Streams, u64::MAX, 1).is_ok(), "0: no bound");
    }

    #[test]
    fn host_functions_in_flight_are_counted_until_their_slot_drops() {
        let l = Limiter::new(1, "t", &limits(2));
        let a = l.host_fn().unwrap();
        let b = l.host_fn().unwrap();
        assert!(l.host_fn().is_err(), "a third is refused");
        assert_eq!(l.host_fns_in_flight(), 2, "a refusal holds nothing");
        drop(a);
        let c = l.host_fn().unwrap();
        drop((b, c));
        assert_eq!(l.host_fns_in_flight(), 0);
    }
}
