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

use crate::dedup::index::Entry;
use crate::dedup::{EntryId, Hash, Key};
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

/// Whether another worker may import a copy: its first tenant shares across groups.
fn exportable(e: &Entry) -> bool {
    e.exportable
}

/// Whether a tenant sharing within its group only may join a copy: one of its worker's own
/// (not an import) that no other worker imported, so what it holds is never seen outside.
fn group_only(e: &Entry) -> bool {
    e.origin.is_none() && e.exports == 0
}

/// What a tenant sharing `across` groups (or not) may join in its own worker.
fn joinable(across: bool) -> fn(&Entry) -> bool {
    if across {
        |_| true
    } else {
        group_only
    }
}

/// Whether content `key` has a listed copy the tenant may join: in `dev`'s worker or, for a
/// tenant sharing `across` groups, an exportable one in another worker of the device. Takes one
/// index lock at a time.
pub fn resident(dev: &Device, key: &Key, across: bool) -> bool {
    let found = |d: &Device, ok: fn(&Entry) -> bool| {
        d.dedup_index().lookup(key).is_some_and(|(_, e)| ok(e))
    };
    found(dev, joinable(across))
        || (across && running_peers(dev).iter().any(|p| found(p, exportable)))
}

/// Whether content whose prefix key is `prefix` may be [`resident`] for a tenant sharing
/// `across` groups (or not): `false` means it is not, without the whole key.
pub fn may_be_resident(dev: &Device, prefix: &Hash, across: bool) -> bool {
    dev.dedup_index().may_hold(prefix)
        || (across
            && running_peers(dev)
                .iter()
                .any(|p| p.dedup_index().may_hold(prefix)))
}

/// Begins the join of tenant `t`'s granule to the copy of `key` (the device's remap lock
/// held): the listed copy in its worker's index, else, for a tenant sharing `across` groups,
/// another worker's exportable copy, imported — `(entry in the tenant's worker's index,
/// verified)`; `None` if there is none to join. A copy a tenant sharing within its group only
/// joins is never exported from then on.
pub(super) fn begin_any(t: &Tenant, key: &Key, across: bool) -> Option<(EntryId, bool)> {
    if let Some(found) = begin(t.dev.dedup_index(), key, joinable(across)) {
        if !across {
            if let Some(e) = t.dev.dedup_index().get_mut(found.0) {
                e.exportable = false;
            }
        }
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
    let (entry, verified) = begin(peer.dedup_index(), key, exportable)?;
    let give_up = || {
        // The index guard goes before the release (a link call, maybe another index).
        let freed = peer.dedup_index().join_failed(entry);
        if let Some(f) = freed {
            peer.release_copy(f);
        }
    };
    if !verified && !verify(peer, t.info.id, entry, key) {
        give_up();
        return None;
    }
    let Some((handle, pieces, prefix, copy)) = peer
        .dedup_index()
        .get(entry)
        .map(|e| (e.handle, e.pieces.clone(), e.prefix, e.copy))
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
    let id = t.dev.dedup_index().register_import(
        (*key, pieces, prefix),
        mine,
        (origin, copy.unwrap_or(origin)),
    );
    tracing::debug!(
        session = t.info.id,
        from = %peer.link().group(),
        "imported a deduplicated copy from another isolation group"
    );
    Some(id)
}

/// Begins a join of the listed copy of `key` in `index` if `ok` accepts it (checked under the
/// same lock): `(entry, verified)`.
fn begin(
    mut index: MutexGuard<'_, crate::dedup::ContentIndex>,
    key: &Key,
    ok: fn(&Entry) -> bool,
) -> Option<(EntryId, bool)> {
    let (id, verified) = index
        .lookup(key)
        .filter(|(_, e)| ok(e))
        .map(|(id, e)| (id, e.verified))?;
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
    let ok = protected && dev.handle_key(handle, pieces).is_ok_and(|(k, _)| k == *key);
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
