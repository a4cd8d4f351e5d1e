//! The content index of one worker: which physical copies hold which content, who maps them.
//!
//! An entry is one physical allocation (granule) in the worker, with the key of what it holds.
//! It is *listed* (found by its key) from when its first tenant's uploads completed it until
//! it is freed or found not to hold its key; *verified* once the worker hashed the device's
//! bytes and got its key (a tenant can race its own uploads, so the first uploader's claim is
//! not trusted before another tenant maps the copy); *protected* once mapped read-only (from
//! its second user on; it stays so). The index owns the entry's handle: the session releases
//! it when [`ContentIndex::leave`] says the last user left.

use std::collections::HashMap;

use super::key::{Hash, Key};
/// A tenant (its session id).
pub type TenantId = u64;

/// Identifies an entry for its lifetime (never reused).
pub type EntryId = u64;

/// One physical copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// What it holds.
    pub key: Key,
    /// The pieces its key was computed over (`(offset, length)`), for verification.
    pub pieces: Vec<(u64, u64)>,
    /// The worker's physical allocation handle.
    pub handle: u64,
    /// Where it is mapped: `(tenant, address)`, one per user.
    pub mappings: Vec<(TenantId, u64)>,
    /// Users being added (a join under way), counted as users so the entry stays.
    pub joining: u32,
    /// The worker hashed its bytes and found its key.
    pub verified: bool,
    /// Mapped read-only everywhere.
    pub protected: bool,
    /// Found by its key.
    pub listed: bool,
    /// Its prefix key ([`super::key::prefix_key`]) when it holds one upload's bytes and that
    /// is known; counted in [`ContentIndex::may_hold`] while it is listed.
    pub prefix: Option<Hash>,
    /// For a copy imported from another worker: that worker's id and its entry (told when
    /// this one goes, [`ContentIndex::unexport`]).
    pub origin: Option<(u64, EntryId)>,
    /// For an import: the `(worker, entry)` the physical copy was first registered in (the
    /// origin's own origin, and so on), which names the copy device-wide ([`CopyUse`]).
    pub copy: Option<(u64, EntryId)>,
    /// Other workers' entries imported from this one (each counts as a user).
    pub exports: u32,
    /// Other workers may import it (its first tenant shares across isolation groups).
    pub exportable: bool,
}

impl Entry {
    /// Users, joins under way and other workers' imports included.
    pub fn users(&self) -> usize {
        self.mappings.len() + self.joining as usize + self.exports as usize
    }
}

/// An entry that went ([`ContentIndex::leave`] and the like): its handle to release in this
/// worker and, for an import, the exporting worker's entry to tell ([`ContentIndex::unexport`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Freed {
    /// This worker's handle.
    pub handle: u64,
    /// `(worker, entry)` it was imported from.
    pub origin: Option<(u64, EntryId)>,
}

/// One physical copy as one worker's index sees it (status): which copy (the worker and
/// entry it was first registered in: an import names its origin) and the tenants mapping it
/// here, one per mapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyUse {
    /// `(worker, entry)` of the original.
    pub copy: (u64, EntryId),
    /// The tenant of each mapping in this worker.
    pub tenants: Vec<TenantId>,
}

/// What a copy holds: its key, the pieces the key was computed over, and its prefix key.
pub type Content = (Key, Vec<(u64, u64)>, Option<Hash>);

/// One worker's entries.
#[derive(Debug, Default)]
pub struct ContentIndex {
    by_key: HashMap<Key, EntryId>,
    /// Listed entries per prefix key.
    by_prefix: HashMap<Hash, u32>,
    entries: HashMap<EntryId, Entry>,
    next: EntryId,
    faults: u64,
}

impl ContentIndex {
    /// An empty index.
    pub fn new() -> ContentIndex {
        ContentIndex::default()
    }

    /// The listed entry holding `key`.
    pub fn lookup(&self, key: &Key) -> Option<(EntryId, &Entry)> {
        let id = *self.by_key.get(key)?;
        self.entries.get(&id).map(|e| (id, e))
    }

    /// Whether a listed entry may hold content whose prefix key is `prefix`: `false` means
    /// none does (the content is not resident here), `true` only that the whole key must be
    /// looked up. Entries whose prefix key is not known are not counted: content that only
    /// they hold looks new (a copy not skipped, never a wrong share).
    pub fn may_hold(&self, prefix: &Hash) -> bool {
        self.by_prefix.contains_key(prefix)
    }

    /// An entry.
    pub fn get(&self, id: EntryId) -> Option<&Entry> {
        self.entries.get(&id)
    }

    /// An entry, to change its flags.
    pub fn get_mut(&mut self, id: EntryId) -> Option<&mut Entry> {
        self.entries.get_mut(&id)
    }

    /// A new listed entry for `key`, held by the physical `handle` mapped by `tenant` at
    /// `addr` (read-write, unverified). Unlists an older entry of the same key.
    pub fn register(
        &mut self,
        (key, pieces, prefix): Content,
        handle: u64,
        tenant: TenantId,
        addr: u64,
    ) -> EntryId {
        self.list(Entry {
            key,
            pieces,
            handle,
            mappings: vec![(tenant, addr)],
            joining: 0,
            verified: false,
            protected: false,
            listed: true,
            prefix,
            origin: None,
            copy: None,
            exports: 0,
            exportable: true,
        })
    }

    /// A listed entry for `key` held by `handle`, this worker's import of entry `origin.1` of
    /// worker `origin.0` (verified and read-only there), of the physical copy named `copy`:
    /// verified, read-only, with a join under way ([`ContentIndex::joined`] or
    /// [`ContentIndex::join_failed`] follows). Unlists an older entry of the same key.
    pub fn register_import(
        &mut self,
        (key, pieces, prefix): Content,
        handle: u64,
        (origin, copy): ((u64, EntryId), (u64, EntryId)),
    ) -> EntryId {
        self.list(Entry {
            key,
            pieces,
            handle,
            mappings: Vec::new(),
            joining: 1,
            verified: true,
            protected: true,
            listed: true,
            prefix,
            origin: Some(origin),
            copy: Some(copy),
            exports: 0,
            exportable: true,
        })
    }

    /// Adds `entry` as the listed one of its key (an older entry of the key is unlisted).
    fn list(&mut self, entry: Entry) -> EntryId {
        self.next += 1;
        let id = self.next;
        if let Some(old) = self.by_key.insert(entry.key, id) {
            if let Some(e) = self.entries.get_mut(&old) {
                if std::mem::replace(&mut e.listed, false) {
                    forget_prefix(&mut self.by_prefix, e.prefix);
                }
            }
        }
        if let Some(p) = entry.prefix {
            *self.by_prefix.entry(p).or_insert(0) += 1;
        }
        self.entries.insert(id, entry);
        id
    }

    /// A join of entry `id` begun by another worker became its import.
    pub fn exported(&mut self, id: EntryId) {
        if let Some(e) = self.entries.get_mut(&id) {
            e.joining = e.joining.saturating_sub(1);
            e.exports += 1;
        }
    }

    /// Another worker's import of entry `id` went; what to release if that left it unused.
    pub fn unexport(&mut self, id: EntryId) -> Option<Freed> {
        let e = self.entries.get_mut(&id)?;
        e.exports = e.exports.saturating_sub(1);
        self.drop_if_unused(id)
    }

    /// A join of entry `id` begins (it cannot go away until [`ContentIndex::joined`] or
    /// [`ContentIndex::join_failed`]).
    pub fn begin_join(&mut self, id: EntryId) -> bool {
        match self.entries.get_mut(&id) {
            Some(e) => {
                e.joining += 1;
                true
            }
            None => false,
        }
    }

    /// `tenant` maps entry `id` at `addr` from now on (a remap already queued).
    pub fn add_mapping(&mut self, id: EntryId, tenant: TenantId, addr: u64) {
        if let Some(e) = self.entries.get_mut(&id) {
            e.mappings.push((tenant, addr));
        }
    }

    /// The join of `tenant` at `addr` completed.
    pub fn joined(&mut self, id: EntryId, tenant: TenantId, addr: u64) {
        if let Some(e) = self.entries.get_mut(&id) {
            e.joining = e.joining.saturating_sub(1);
            e.mappings.push((tenant, addr));
        }
    }

    /// A join did not happen; what to release if that left the entry unused.
    pub fn join_failed(&mut self, id: EntryId) -> Option<Freed> {
        let e = self.entries.get_mut(&id)?;
        e.joining = e.joining.saturating_sub(1);
        self.drop_if_unused(id)
    }

    /// Stops finding entry `id` by its key (its content is not what the key says, or its
    /// copy is leaving).
    pub fn unlist(&mut self, id: EntryId) {
        if let Some(e) = self.entries.get_mut(&id) {
            if std::mem::replace(&mut e.listed, false) {
                forget_prefix(&mut self.by_prefix, e.prefix);
            }
            if self.by_key.get(&e.key) == Some(&id) {
                self.by_key.remove(&e.key);
            }
        }
    }

    /// `tenant`'s mapping at `addr` leaves entry `id`; what to release when it was the last
    /// user.
    pub fn leave(&mut self, id: EntryId, tenant: TenantId, addr: u64) -> Option<Freed> {
        let e = self.entries.get_mut(&id)?;
        if let Some(i) = e.mappings.iter().position(|&m| m == (tenant, addr)) {
            e.mappings.swap_remove(i);
        }
        self.drop_if_unused(id)
    }

    /// The only user of entry `id` takes its copy back as private memory: the entry goes;
    /// returns its handle and whether it was mapped read-only. `None` if others use it, and
    /// for an import (the exporting worker keeps the memory).
    pub fn take_back(&mut self, id: EntryId) -> Option<(u64, bool)> {
        let e = self.entries.get(&id)?;
        if e.users() != 1 || e.joining != 0 || e.origin.is_some() {
            return None;
        }
        self.unlist(id);
        self.entries.remove(&id).map(|e| (e.handle, e.protected))
    }

    fn drop_if_unused(&mut self, id: EntryId) -> Option<Freed> {
        if self.entries.get(&id)?.users() > 0 {
            return None;
        }
        self.unlist(id);
        self.entries.remove(&id).map(|e| Freed {
            handle: e.handle,
            origin: e.origin,
        })
    }

    /// Where `tenant` maps read-only copies (granule addresses, in address order).
    pub fn read_only_mappings(&self, tenant: TenantId) -> Vec<u64> {
        let mut at: Vec<u64> = self
            .entries
            .values()
            .filter(|e| e.protected)
            .flat_map(|e| e.mappings.iter().filter(|m| m.0 == tenant).map(|m| m.1))
            .collect();
        at.sort_unstable();
        at
    }

    /// Counts a fault of a tenant that maps read-only copies.
    pub fn note_fault(&mut self) {
        self.faults += 1;
    }

    /// Faults counted by [`ContentIndex::note_fault`].
    pub fn faults(&self) -> u64 {
        self.faults
    }

    /// Every entry as a [`CopyUse`]; `me` is this worker's id.
    pub fn uses(&self, me: u64) -> Vec<CopyUse> {
        self.entries
            .iter()
            .map(|(&id, e)| CopyUse {
                copy: e.copy.unwrap_or((me, id)),
                tenants: e.mappings.iter().map(|m| m.0).collect(),
            })
            .collect()
    }
}

/// One listed entry of prefix key `prefix` (if any) is no longer listed.
fn forget_prefix(by_prefix: &mut HashMap<Hash, u32>, prefix: Option<Hash>) {
    let Some(p) = prefix else {
        return;
    };
    if let std::collections::hash_map::Entry::Occupied(mut n) = by_prefix.entry(p) {
        *n.get_mut() -= 1;
        if *n.get() == 0 {
            n.remove();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn freed(handle: u64) -> Freed {
        Freed {
            handle,
            origin: None,
        }
    }

    #[test]
    fn an_export_keeps_the_copy_and_an_import_is_never_taken_back() {
        // Worker A: tenant 1's copy; worker B imports it for tenant 2.
        let (mut a, mut b) = (ContentIndex::new(), ContentIndex::new());
        let k = [3u8; 32];
        let ea = a.register((k, vec![(0, 16)], None), 10, 1, 0x1000);
        assert!(a.begin_join(ea));
        a.exported(ea);
        let eb = b.register_import((k, vec![(0, 16)], None), 20, ((7, ea), (7, ea)));
        b.joined(eb, 2, 0x2000);
        assert_eq!(
            b.lookup(&k).map(|(i, _)| i),
            Some(eb),
            "listed for B's next tenants"
        );
        assert_eq!(a.uses(7)[0].copy, (7, ea));
        assert_eq!(b.uses(8)[0].copy, (7, ea), "an import names its original");
        assert!(a.take_back(ea).is_none(), "B maps it");
        assert!(
            b.take_back(eb).is_none(),
            "A's memory: copy-on-write, never in place"
        );
        assert_eq!(a.leave(ea, 1, 0x1000), None, "B's import keeps A's handle");
        let gone = b.leave(eb, 2, 0x2000);
        assert_eq!(
            gone,
            Some(Freed {
                handle: 20,
                origin: Some((7, ea))
            })
        );
        assert_eq!(
            a.unexport(ea),
            Some(freed(10)),
            "the last user of the memory left"
        );
        assert!(a.uses(7).is_empty() && b.uses(8).is_empty());
    }

    #[test]
    fn entries_live_while_used_and_are_found_while_listed() {
        let mut ix = ContentIndex::new();
        let k = [1u8; 32];
        let id = ix.register((k, vec![(0, 16)], None), 100, 1, 0x1000);
        assert_eq!(ix.lookup(&k).map(|(i, _)| i), Some(id));
        assert!(ix.begin_join(id));
        assert!(ix.take_back(id).is_none(), "a join is under way");
        ix.joined(id, 2, 0x2000);
        assert_eq!(ix.uses(9)[0].tenants, vec![1, 2]);
        assert!(ix.take_back(id).is_none(), "two users");
        assert_eq!(ix.leave(id, 1, 0x1000), None, "tenant 2 still maps it");
        assert_eq!(ix.take_back(id), Some((100, false)));
        assert!(ix.lookup(&k).is_none() && ix.get(id).is_none());
    }

    #[test]
    fn failed_joins_unlisting_and_reregistering() {
        let mut ix = ContentIndex::new();
        let k = [2u8; 32];
        let a = ix.register((k, vec![(0, 16)], None), 1, 1, 0x10);
        assert!(ix.begin_join(a));
        assert_eq!(ix.leave(a, 1, 0x10), None, "the join keeps it");
        assert_eq!(
            ix.join_failed(a),
            Some(freed(1)),
            "now unused: release its handle"
        );
        let b = ix.register((k, vec![(0, 16)], None), 2, 1, 0x20);
        ix.unlist(b);
        assert!(ix.lookup(&k).is_none());
        let c = ix.register((k, vec![(0, 16)], None), 3, 3, 0x30);
        assert_eq!(ix.lookup(&k).map(|(i, _)| i), Some(c));
        assert_eq!(ix.leave(b, 1, 0x20), Some(freed(2)));
        assert_eq!(ix.uses(9).len(), 1);
        assert!(!ix.begin_join(b), "gone");
    }

    #[test]
    fn prefix_keys_are_counted_while_their_entries_are_listed() {
        let mut ix = ContentIndex::new();
        let (p, q) = ([7u8; 32], [8u8; 32]);
        assert!(!ix.may_hold(&p), "empty");
        // Two contents with one prefix key, one without a known prefix.
        let a = ix.register(([1; 32], vec![(0, 16)], Some(p)), 1, 1, 0x10);
        let b = ix.register(([2; 32], vec![(0, 16)], Some(p)), 2, 1, 0x20);
        ix.register(([3; 32], vec![(0, 8), (8, 8)], None), 3, 1, 0x30);
        assert!(ix.may_hold(&p) && !ix.may_hold(&q));
        ix.unlist(a);
        ix.unlist(a);
        assert!(
            ix.may_hold(&p),
            "b is still listed; unlisting twice counts once"
        );
        assert_eq!(ix.leave(b, 1, 0x20), Some(freed(2)));
        assert!(!ix.may_hold(&p), "its last listed entry left");
        // A newer entry of the same key unlists the older: counted once.
        let c = ix.register(([4; 32], vec![(0, 16)], Some(q)), 4, 1, 0x40);
        let d = ix.register(([4; 32], vec![(0, 16)], Some(q)), 5, 2, 0x50);
        assert_eq!(ix.lookup(&[4; 32]).map(|(i, _)| i), Some(d));
        assert_eq!(ix.take_back(d), Some((5, false)));
        assert!(!ix.may_hold(&q), "c was unlisted when d was registered");
        assert_eq!(ix.leave(c, 1, 0x40), Some(freed(4)));
    }
}
