//! Deduplication's exclusive work: remaps on the worker in the tenant's command order, with
//! its device work quiesced ([`Op::Exclusive`]: the scheduler holds the tenant's later jobs;
//! this waits for the earlier ones, then changes mappings with the tenant's tables locked, so
//! what the ring thread decides next sees the result).
//!
//! - Joins map a resident copy read-only in place of the tenant's own granule: after the
//!   upload that completed it, or — for an upload of whole granules all resident — before it,
//!   all or nothing, and the copy is then skipped. A copy whose
//!   first user's claim was never checked is verified first: it is made read-only, then the
//!   worker hashes its bytes; a copy that does not hold its key is unlisted and the joining
//!   granule becomes the new copy of the key instead.
//! - Copy-on-write gives a shared granule back to the tenant: the copy itself when the tenant
//!   is its only user (made read-write again), else a private copy of its bytes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use gpushare_client::code::{self, CuCode};

use super::copies::{begin_any, verify};
use crate::dedup::{EntryId, Fill, Freed, Granule, Hash, Key};
use crate::device::{AccessFlags, DeviceError};
use crate::session::state::TenantState;
use crate::session::tenant::Tenant;
use crate::work::Op;

/// An exclusive operation running `work` with the tenant quiesced; a failure becomes the
/// tenant's asynchronous error for command `seq`.
fn exclusive(
    t: &Tenant,
    seq: u64,
    work: impl FnOnce(&Tenant) -> Result<(), CuCode> + Send + 'static,
) -> Op {
    let weak = t.weak();
    Op::Exclusive {
        run: Box::new(move || {
            let Some(t) = weak.upgrade() else {
                return;
            };
            let _exclusive = t.exclusive.lock().unwrap_or_else(|p| p.into_inner());
            if t.is_closing() {
                return;
            }
            let result = quiesce(&t).and_then(|()| work(&t));
            if let Err(code) = result {
                t.async_error(seq, code);
            }
        }),
    }
}

/// Waits for every stream of the tenant (its work submitted before the exclusive operation).
fn quiesce(t: &Tenant) -> Result<(), CuCode> {
    let streams = match t.state().as_ref() {
        Some(st) => st.all_streams(),
        None => return Err(code::ERROR_DEINITIALIZED),
    };
    for s in streams {
        t.dev.stream_synchronize(&s).map_err(|e| e.code())?;
    }
    Ok(())
}

/// After the tenant's earlier work (the copies that covered them), computes the keys of
/// `covered` granules from the device's bytes ([`super::key_from_device`]).
pub fn then_key(t: &Tenant, seq: u64, covered: Vec<crate::dedup::Completed>) -> Op {
    exclusive(t, seq, move |t| {
        super::key_from_device(t, covered);
        Ok(())
    })
}

/// One exclusive operation doing `ops` in order (`None` for none).
pub fn combine(mut ops: Vec<Op>) -> Option<Op> {
    if ops.len() <= 1 {
        return ops.pop();
    }
    let runs: Vec<Box<dyn FnOnce() + Send>> = ops
        .into_iter()
        .filter_map(|op| match op {
            Op::Exclusive { run } => Some(run),
            _ => None,
        })
        .collect();
    Some(Op::Exclusive {
        run: Box::new(move || runs.into_iter().for_each(|r| r())),
    })
}

/// Maps the resident copies of `joins` (`(granule, key)`, after the upload that completed
/// them) in place of the tenant's granules that still hold that content.
pub fn joins(t: &Tenant, seq: u64, joins: Vec<(u64, Key)>) -> Op {
    per_granule(t, seq, joins, "deduplication remap", join_uploaded)
}

/// An exclusive operation applying `each` to every `(granule, T)` of `items` with the tenant's
/// tables and the worker's remap lock held; a failure is logged (`what`) and the first one
/// becomes the tenant's asynchronous error.
fn per_granule<T: Send + 'static>(
    t: &Tenant,
    seq: u64,
    items: Vec<(u64, T)>,
    what: &'static str,
    each: fn(&Tenant, &mut TenantState, u64, T) -> Result<(), DeviceError>,
) -> Op {
    exclusive(t, seq, move |t| {
        let mut guard = t.state();
        let st = guard.as_mut().ok_or(code::ERROR_DEINITIALIZED)?;
        let _remap = t.dev.remap_lock();
        let mut first = Ok(());
        for (addr, item) in items {
            if let Err(e) = each(t, st, addr, item) {
                tracing::warn!(session = t.info.id, addr, "{what} failed: {e}");
                first = first.and(Err(e.code()));
            }
        }
        first
    })
}

/// Before an upload of whole granules whose content is all resident: maps the resident
/// copies (verified first where needed) in place of every one of them and sets `skip`, so the
/// copy is not made — all or nothing: if any granule cannot be joined, none is, and the copy
/// runs (the joins after it try again).
pub fn prejoin(t: &Tenant, seq: u64, joins: Vec<(u64, Key)>, skip: Arc<AtomicBool>) -> Op {
    exclusive(t, seq, move |t| {
        let mut guard = t.state();
        let st = guard.as_mut().ok_or(code::ERROR_DEINITIALIZED)?;
        let _remap = t.dev.remap_lock();
        let Some(planned) = begin_all(t, st, &joins) else {
            return Ok(());
        };
        let mut done = Vec::with_capacity(planned.len());
        for (i, &(addr, handle, entry, shared)) in planned.iter().enumerate() {
            if let Err(e) = t.dev.granule_join(addr, handle, shared) {
                tracing::warn!(session = t.info.id, addr, "deduplication remap failed: {e}");
                for &(_, _, entry, _) in &planned[i..] {
                    let unused = t.dev.dedup_index().join_failed(entry);
                    release(t, unused);
                }
                // The copy runs after all: what was joined becomes private again.
                for (addr, entry) in done {
                    privatize_one(t, st, addr, entry).map_err(|e| e.code())?;
                }
                return Ok(());
            }
            t.dev.dedup_index().joined(entry, t.info.id, addr);
            set_shared(st, addr, entry);
            done.push((addr, entry));
        }
        skip.store(true, Ordering::Release);
        t.skipped_upload(planned.len() as u64 * t.dev.granularity());
        Ok(())
    })
}

/// Begins the join of every granule of `joins` to its key's listed copy, verified: `(addr,
/// own handle, entry, shared handle)` each; `None` (nothing begun) if any granule no longer
/// holds its content or has no usable copy.
fn begin_all(
    t: &Tenant,
    st: &mut TenantState,
    joins: &[(u64, Key)],
) -> Option<Vec<(u64, u64, EntryId, u64)>> {
    let granules = st.granules.as_mut()?;
    let mut planned = Vec::with_capacity(joins.len());
    let mut ok = true;
    for &(addr, key) in joins {
        let handle = match granules.granule_at(addr) {
            Some((
                a,
                Granule::Private {
                    handle,
                    fill: Fill::Complete(k, _),
                },
            )) if a == addr && *k == key => *handle,
            _ => {
                ok = false;
                break;
            }
        };
        let Some((entry, verified)) = begin_any(t, &key, granules.across_groups) else {
            ok = false;
            break;
        };
        let shared = t.dev.dedup_index().get(entry).map(|e| e.handle);
        planned.push((addr, handle, entry, shared.unwrap_or(0)));
        if (!verified && !verify(&t.dev, t.info.id, entry, &key)) || shared.is_none() {
            ok = false;
            break;
        }
    }
    if !ok {
        for (_, _, entry, _) in planned {
            let unused = t.dev.dedup_index().join_failed(entry);
            release(t, unused);
        }
        return None;
    }
    Some(planned)
}

fn set_shared(st: &mut TenantState, addr: u64, entry: EntryId) {
    if let Some((_, g)) = st.granules.as_mut().and_then(|g| g.granule_at(addr)) {
        *g = Granule::Shared { entry };
    }
}

fn join_uploaded(t: &Tenant, st: &mut TenantState, addr: u64, key: Key) -> Result<(), DeviceError> {
    let dev = &t.dev;
    let Some(granules) = st.granules.as_mut() else {
        return Ok(());
    };
    let handle = match granules.granule_at(addr) {
        Some((
            a,
            Granule::Private {
                handle,
                fill: Fill::Complete(k, _),
            },
        )) if a == addr && *k == key => *handle,
        // Written since, or freed: nothing to share.
        _ => return Ok(()),
    };
    // The tenant's own bytes may have changed since its key was taken (a store the broker
    // cannot see, before this join): join only if the granule still holds its key.
    let pieces = match granules.granule_at(addr) {
        Some((
            _,
            Granule::Private {
                fill: Fill::Complete(_, p),
                ..
            },
        )) => p.clone(),
        _ => return Ok(()),
    };
    let prefix = match dev.handle_key(handle, pieces) {
        Ok((k, prefix)) if k == key => prefix,
        _ => {
            if let Some((_, Granule::Private { fill, .. })) = granules.granule_at(addr) {
                *fill = Fill::Dirty;
            }
            return Ok(());
        }
    };
    let Some((entry, verified)) = begin_any(t, &key, granules.across_groups) else {
        return register(t, st, addr, (key, prefix));
    };
    if !verified && !verify(dev, t.info.id, entry, &key) {
        let unused = dev.dedup_index().join_failed(entry);
        release(t, unused);
        return register(t, st, addr, (key, prefix));
    }
    let shared = dev.dedup_index().get(entry).map(|e| e.handle);
    let joined = match shared {
        Some(shared) => dev.granule_join(addr, handle, shared),
        None => Err(DeviceError::Invalid("deduplicated copy vanished")),
    };
    if let Err(e) = joined {
        let unused = dev.dedup_index().join_failed(entry);
        release(t, unused);
        return Err(e);
    }
    dev.dedup_index().joined(entry, t.info.id, addr);
    set_shared(st, addr, entry);
    Ok(())
}

/// The granule at `addr` becomes the listed copy of `key` (its prefix key `prefix`).
fn register(
    t: &Tenant,
    st: &mut TenantState,
    addr: u64,
    (key, prefix): (Key, Option<Hash>),
) -> Result<(), DeviceError> {
    let Some(granules) = st.granules.as_mut() else {
        return Ok(());
    };
    let (handle, pieces) = match granules.granule_at(addr) {
        Some((
            _,
            Granule::Private {
                handle,
                fill: Fill::Complete(k, pieces),
            },
        )) if *k == key => (*handle, pieces.clone()),
        _ => return Ok(()),
    };
    let entry = super::register(t, granules, (key, pieces, prefix), handle, addr);
    if let Some((_, g)) = granules.granule_at(addr) {
        *g = Granule::Shared { entry };
    }
    Ok(())
}

pub(super) fn release(t: &Tenant, freed: Option<Freed>) {
    if let Some(f) = freed {
        t.dev.release_copy(f);
    }
}

/// Copy-on-write of the shared granules `(addr, entry)` (before a write).
pub fn privatize(t: &Tenant, seq: u64, granules: Vec<(u64, EntryId)>) -> Op {
    per_granule(t, seq, granules, "copy-on-write", privatize_one)
}

fn privatize_one(
    t: &Tenant,
    st: &mut TenantState,
    addr: u64,
    entry: EntryId,
) -> Result<(), DeviceError> {
    let dev = &t.dev;
    let Some((_, g)) = st.granules.as_mut().and_then(|g| g.granule_at(addr)) else {
        return Ok(());
    };
    if *g != (Granule::Shared { entry }) {
        return Ok(());
    }
    let taken = dev.dedup_index().take_back(entry);
    let handle = match taken {
        Some((handle, protected)) => {
            // The copy is the tenant's own from now on, whatever happens below.
            *g = Granule::Private {
                handle,
                fill: Fill::Dirty,
            };
            if protected {
                dev.mem_set_access(addr, dev.granularity(), AccessFlags::ReadWrite)?;
            }
            handle
        }
        None => {
            let handle = dev.granule_privatize(addr)?;
            let unused = dev.dedup_index().leave(entry, t.info.id, addr);
            release(t, unused);
            handle
        }
    };
    *g = Granule::Private {
        handle,
        fill: Fill::Dirty,
    };
    Ok(())
}
