//! The copy a granule joins: found in the tenant's worker's index (its join begun, the copy
//! verified before a second user maps it), or — deduplication across isolation groups
//! (docs/dedup.md, "Across isolation groups") — when the tenant's worker holds no copy of a
//! content that another worker of the device holds, that copy is imported — verified and made read-only where it lives, its physical memory exported
//! once as a POSIX file descriptor (`cuMemExportToShareableHandle`), imported by the tenant's
//! worker (`cuMemImportFromShareableHandle`) and listed in its index, so the group's later
//! tenants join it there. The exporting entry counts the import as a user: it keeps its
//! memory, and copy-on-write never hands it back in place, while the import lives.

use std::os::fd::AsFd;
use std::sync::Arc;

use std::sync::MutexGuard;

use crate::dedup::{EntryId, Key};
use crate::device::{AccessFlags, Device, WorkerState};
use crate::session::tenant::Tenant;

/// The device's other workers that are serving (a faulted worker's copies are left alone).
fn running_peers(dev: &Device) -> Vec<Arc<Device>> {
    dev.peers()
        .others(dev.peer_id())
        .into_iter()
        .filter(|p| p.link().state() == WorkerState::Running)
        .collect()
}

/// Whether another worker may import its listed copy of `key`.
fn exportable(peer: &Device, key: &Key) -> bool {
    peer.dedup_index()
        .lookup(key)
        .is_some_and(|(_, e)| e.exportable)
}

/// Whether content `key` has a listed copy in `dev`'s worker or, for a tenant sharing
/// `across` groups, an exportable one in another worker of the device. Takes one index lock at
/// a time.
pub fn resident(dev: &Device, key: &Key, across: bool) -> bool {
    dev.dedup_index().lookup(key).is_some()
        || (across && running_peers(dev).iter().any(|p| exportable(p, key)))
}

/// Begins the join of tenant `t`'s granule to the copy of `key` (the device's remap lock
/// held): the listed copy in its worker's index, else, for a tenant sharing `across` groups,
/// another worker's exportable copy, imported — `(entry in the tenant's worker's index,
/// verified)`; `None` if there is none to join.
pub(super) fn begin_any(t: &Tenant, key: &Key, across: bool) -> Option<(EntryId, bool)> {
    if let Some(found) = begin(t.dev.dedup_index(), key) {
        return Some(found);
    }
    if !across {
        return None;
    }
    running_peers(&t.dev)
        .iter()
        .find_map(|peer| import(t, peer, key))
        .map(|entry| (entry, true))
}

/// Imports `peer`'s copy of `key` into the tenant's worker: its new entry, with a join under
/// way. `None` (and nothing changed) when the peer has no usable copy or the export or the
/// import fails.
fn import(t: &Tenant, peer: &Arc<Device>, key: &Key) -> Option<EntryId> {
    if !exportable(peer, key) {
        return None;
    }
    let (entry, verified) = begin(peer.dedup_index(), key)?;
    let give_up = || {
        if let Some(f) = peer.dedup_index().join_failed(entry) {
            peer.release_copy(f);
        }
    };
    if !verified && !verify(peer, t.info.id, entry, key) {
        give_up();
        return None;
    }
    let Some((handle, pieces, copy)) = peer
        .dedup_index()
        .get(entry)
        .map(|e| (e.handle, e.pieces.clone(), e.copy))
    else {
        give_up();
        return None;
    };
    let imported = peer
        .granule_export(handle)
        .and_then(|fd| t.dev.granule_import(fd.as_fd()));
    let mine = match imported {
        Ok(h) => h,
        Err(e) => {
            tracing::debug!(
                session = t.info.id,
                from = %peer.link().group(),
                "a deduplicated copy of another group could not be imported: {e}"
            );
            give_up();
            return None;
        }
    };
    peer.dedup_index().exported(entry);
    let origin = (peer.peer_id(), entry);
    let id =
        t.dev
            .dedup_index()
            .register_import((*key, pieces), mine, (origin, copy.unwrap_or(origin)));
    tracing::debug!(
        session = t.info.id,
        from = %peer.link().group(),
        "imported a deduplicated copy from another isolation group"
    );
    Some(id)
}

/// Begins a join of the listed copy of `key` in `index`: `(entry, verified)`.
fn begin(
    mut index: MutexGuard<'_, crate::dedup::ContentIndex>,
    key: &Key,
) -> Option<(EntryId, bool)> {
    let (id, verified) = index.lookup(key).map(|(id, e)| (id, e.verified))?;
    index.begin_join(id).then_some((id, verified))
}

/// Verifies a copy (the caller holds the device's remap lock, so no mapping of it changes
/// meanwhile): makes it read-only wherever it is mapped, then the worker hashes the physical
/// granule through a private mapping. A copy that does not hold its key is unlisted, and made
/// read-write again if this made its only mapping read-only.
pub(super) fn verify(dev: &Device, session: u64, entry: EntryId, key: &Key) -> bool {
    let g = dev.granularity();
    let (handle, pieces, mappings, was_protected) = {
        let index = dev.dedup_index();
        let Some(e) = index.get(entry) else {
            return false;
        };
        if e.verified {
            return true;
        }
        let at: Vec<u64> = e.mappings.iter().map(|m| m.1).collect();
        (e.handle, e.pieces.clone(), at, e.protected)
    };
    let protected = was_protected
        || mappings
            .iter()
            .all(|&at| dev.mem_set_access(at, g, AccessFlags::Read).is_ok());
    if protected {
        if let Some(e) = dev.dedup_index().get_mut(entry) {
            e.protected = true;
        }
    }
    let ok = protected && dev.handle_key(handle, pieces).is_ok_and(|k| k == *key);
    let mut index = dev.dedup_index();
    if ok {
        if let Some(e) = index.get_mut(entry) {
            e.verified = true;
        }
        return true;
    }
    tracing::warn!(
        session,
        entry,
        "a deduplicated copy does not hold the content its uploads claimed: no longer shared"
    );
    index.unlist(entry);
    if !was_protected && mappings.len() == 1 {
        if let Some(e) = index.get_mut(entry) {
            e.protected = false;
        }
        drop(index);
        let _ = dev.mem_set_access(mappings[0], g, AccessFlags::ReadWrite);
    }
    false
}
