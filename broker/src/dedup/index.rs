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

use super::key::Key;
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
}

impl Entry {
    /// Users, joins under way included.
    pub fn users(&self) -> usize {
        self.mappings.len() + self.joining as usize
    }
}

/// The index's figures (status).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IndexFigures {
    /// Entries (physical copies).
    pub entries: u64,
    /// Entries mapped by two or more tenants.
    pub shared: u64,
    /// Granules saved: mappings beyond the first of each entry.
    pub saved_granules: u64,
    /// Illegal-address faults of tenants that mapped read-only copies.
    pub faults: u64,
}

/// One worker's entries.
#[derive(Debug, Default)]
pub struct ContentIndex {
    by_key: HashMap<Key, EntryId>,
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
        (key, pieces): (Key, Vec<(u64, u64)>),
        handle: u64,
        tenant: TenantId,
        addr: u64,
    ) -> EntryId {
        self.next += 1;
        let id = self.next;
        if let Some(old) = self.by_key.insert(key, id) {
            if let Some(e) = self.entries.get_mut(&old) {
                e.listed = false;
            }
        }
        self.entries.insert(
            id,
            Entry {
                key,
                pieces,
                handle,
                mappings: vec![(tenant, addr)],
                joining: 0,
                verified: false,
                protected: false,
                listed: true,
            },
        );
        id
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

    /// A join did not happen; returns the handle to release if that left the entry unused.
    pub fn join_failed(&mut self, id: EntryId) -> Option<u64> {
        let e = self.entries.get_mut(&id)?;
        e.joining = e.joining.saturating_sub(1);
        self.drop_if_unused(id)
    }

    /// Stops finding entry `id` by its key (its content is not what the key says, or its
    /// copy is leaving).
    pub fn unlist(&mut self, id: EntryId) {
        if let Some(e) = self.entries.get_mut(&id) {
            e.listed = false;
            if self.by_key.get(&e.key) == Some(&id) {
                self.by_key.remove(&e.key);
            }
        }
    }

    /// `tenant`'s mapping at `addr` leaves entry `id`; returns the handle to release when it
    /// was the last user.
    pub fn leave(&mut self, id: EntryId, tenant: TenantId, addr: u64) -> Option<u64> {
        let e = self.entries.get_mut(&id)?;
        if let Some(i) = e.mappings.iter().position(|&m| m == (tenant, addr)) {
            e.mappings.swap_remove(i);
        }
        self.drop_if_unused(id)
    }

    /// The only user of entry `id` takes its copy back as private memory: the entry goes;
    /// returns its handle and whether it was mapped read-only. `None` if others use it.
    pub fn take_back(&mut self, id: EntryId) -> Option<(u64, bool)> {
        let e = self.entries.get(&id)?;
        if e.users() != 1 || e.joining != 0 {
            return None;
        }
        self.unlist(id);
        self.entries.remove(&id).map(|e| (e.handle, e.protected))
    }

    fn drop_if_unused(&mut self, id: EntryId) -> Option<u64> {
        if self.entries.get(&id)?.users() > 0 {
            return None;
        }
        self.unlist(id);
        self.entries.remove(&id).map(|e| e.handle)
    }

    /// Granules `tenant` maps through the index: `(all, those another tenant maps too)`.
    pub fn mapped_by(&self, tenant: TenantId) -> (u64, u64) {
        let mut mapped = (0, 0);
        for e in self.entries.values() {
            let mine = e.mappings.iter().filter(|m| m.0 == tenant).count() as u64;
            mapped.0 += mine;
            if e.mappings.iter().any(|m| m.0 != tenant) {
                mapped.1 += mine;
            }
        }
        mapped
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

    /// Counts (status).
    pub fn figures(&self) -> IndexFigures {
        let mut f = IndexFigures {
            faults: self.faults,
            ..IndexFigures::default()
        };
        for e in self.entries.values() {
            f.entries += 1;
            if e.mappings.iter().any(|m| m.0 != e.mappings[0].0) {
                f.shared += 1;
            }
            f.saved_granules += e.mappings.len().saturating_sub(1) as u64;
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_live_while_used_and_are_found_while_listed() {
        let mut ix = ContentIndex::new();
        let k = [1u8; 32];
        let id = ix.register((k, vec![(0, 16)]), 100, 1, 0x1000);
        assert_eq!(ix.lookup(&k).map(|(i, _)| i), Some(id));
        assert!(ix.begin_join(id));
        assert!(ix.take_back(id).is_none(), "a join is under way");
        ix.joined(id, 2, 0x2000);
        assert_eq!(ix.figures().saved_granules, 1);
        assert_eq!(ix.mapped_by(2), (1, 1));
        assert!(ix.take_back(id).is_none(), "two users");
        assert_eq!(ix.leave(id, 1, 0x1000), None, "tenant 2 still maps it");
        assert_eq!(ix.take_back(id), Some((100, false)));
        assert!(ix.lookup(&k).is_none() && ix.get(id).is_none());
    }

    #[test]
    fn failed_joins_unlisting_and_reregistering() {
        let mut ix = ContentIndex::new();
        let k = [2u8; 32];
        let a = ix.register((k, vec![(0, 16)]), 1, 1, 0x10);
        assert!(ix.begin_join(a));
        assert_eq!(ix.leave(a, 1, 0x10), None, "the join keeps it");
        assert_eq!(ix.join_failed(a), Some(1), "now unused: release its handle");
        let b = ix.register((k, vec![(0, 16)]), 2, 1, 0x20);
        ix.unlist(b);
        assert!(ix.lookup(&k).is_none());
        let c = ix.register((k, vec![(0, 16)]), 3, 3, 0x30);
        assert_eq!(ix.lookup(&k).map(|(i, _)| i), Some(c));
        assert_eq!(ix.leave(b, 1, 0x20), Some(2));
        assert_eq!(ix.figures().entries, 1);
        assert!(!ix.begin_join(b), "gone");
    }
}
