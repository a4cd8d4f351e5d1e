//! One tenant's deduplicable memory: its allocations cut into granules, what each holds.
//!
//! A granule is either the tenant's own physical memory ([`Granule::Private`]) — with the
//! pieces uploads wrote into it since it was allocated, or *dirty* once anything else wrote
//! into it — or mapped onto a copy in the device's [`super::ContentIndex`]
//! ([`Granule::Shared`]). States change when the broker *processes* a command (in the
//! tenant's command order); the device work a change needs (a remap, a copy-on-write) runs
//! later, in the same order, and checks the state again when it runs.

use std::collections::BTreeMap;

use super::index::EntryId;
use super::key::{granule_key, Hash, Key};

/// What uploads wrote into a private granule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fill {
    /// Pieces by offset: `(length, hash)`; never overlapping.
    Pieces(BTreeMap<u64, (u64, Hash)>),
    /// Covered exactly by uploads: its key and its pieces' `(offset, length)` (waiting to be
    /// shared).
    Complete(Key, Pieces),
    /// Covered exactly by uploads, some of them not hashed on the way ([`UNHASHED`]): the key
    /// is being computed from the device's bytes.
    Covered(Pieces),
    /// Written by something other than an upload, or by overlapping uploads: never shared
    /// until freed.
    Dirty,
}

/// One granule of a tenant's allocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Granule {
    /// The tenant's own physical allocation (driver handle).
    Private {
        /// Physical allocation handle in the worker.
        handle: u64,
        /// What uploads wrote.
        fill: Fill,
    },
    /// Mapped onto an index entry's copy (read-only once a second tenant maps it).
    Shared {
        /// The entry.
        entry: EntryId,
    },
}

/// The `(offset, length)` of the uploads that filled a granule, in order.
pub type Pieces = Vec<(u64, u64)>;

/// The hash of a piece not hashed on its way (its granule's key then comes from the device's
/// bytes once covered: [`Fill::Covered`]).
pub const UNHASHED: Hash = [0; 32];

/// A granule uploads just covered completely.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completed {
    /// Its address.
    pub addr: u64,
    /// The tenant's physical handle behind it.
    pub handle: u64,
    /// Its content key (`None`: some pieces were not hashed; the granule is
    /// [`Fill::Covered`] and its key must come from the device's bytes).
    pub key: Option<Key>,
    /// The pieces it was filled with.
    pub pieces: Pieces,
    /// Its prefix key ([`crate::dedup::prefix_key`]) when it is one upload's, known (set by
    /// whoever has the bytes at hand; `None`: unknown, or filled by several pieces).
    pub prefix: Option<Hash>,
}

/// Granules waiting for their keys from the device's bytes, and when the last arrived: keys
/// are computed once a tenant's uploads pause (so the hashing does not compete with the rest
/// of a model load).
#[derive(Debug, Default)]
pub struct KeyQueue {
    /// Waiting granules.
    pub pending: Vec<Completed>,
    /// When the last was queued.
    pub last: Option<std::time::Instant>,
    /// A thread is draining the queue.
    pub running: bool,
}

/// A tenant's deduplicable allocations (allocation base → its granules).
#[derive(Debug)]
pub struct TenantGranules {
    granule: u64,
    allocs: BTreeMap<u64, Vec<Granule>>,
    /// Each allocation's size as asked for (its last granule's bytes past it are no one's).
    sizes: BTreeMap<u64, u64>,
    /// The last large upload's end and whether it was keyed after its copy (the session's
    /// decision, reused for the chunk that continues it).
    pub probe: Option<(u64, bool)>,
    /// Whether the tenant shares with other isolation groups (`dedup = true`, not `"group"`):
    /// its copies may be exported, and it may import other groups' copies.
    pub across_groups: bool,
}

impl TenantGranules {
    /// No allocations; granules of `granule` bytes (a power of two).
    pub fn new(granule: u64) -> TenantGranules {
        TenantGranules {
            granule: granule.max(1),
            allocs: BTreeMap::new(),
            sizes: BTreeMap::new(),
            probe: None,
            across_groups: true,
        }
    }

    /// The granule size.
    pub fn granule(&self) -> u64 {
        self.granule
    }

    /// True when no allocation is tracked.
    pub fn is_empty(&self) -> bool {
        self.allocs.is_empty()
    }

    /// Tracks an allocation of `size` bytes at `base` whose granules are the physical
    /// `handles`, in order.
    pub fn add_alloc(&mut self, base: u64, size: u64, handles: &[u64]) {
        self.sizes.insert(base, size);
        let granules = handles
            .iter()
            .map(|&handle| Granule::Private {
                handle,
                fill: Fill::Pieces(BTreeMap::new()),
            })
            .collect();
        self.allocs.insert(base, granules);
    }

    /// Stops tracking the allocation at `base`: its granules, for the caller to release.
    pub fn remove_alloc(&mut self, base: u64) -> Option<Vec<Granule>> {
        self.sizes.remove(&base);
        self.allocs.remove(&base)
    }

    /// Every allocation, by base.
    pub fn allocs(&self) -> impl Iterator<Item = (u64, &[Granule])> {
        self.allocs.iter().map(|(&b, g)| (b, g.as_slice()))
    }

    /// The tracked allocation containing `ptr`: `(base, bytes)`.
    pub fn alloc_of(&self, ptr: u64) -> Option<(u64, u64)> {
        let (&base, g) = self.allocs.range(..=ptr).next_back()?;
        let len = g.len() as u64 * self.granule;
        (ptr < base + len).then_some((base, len))
    }

    /// The granule at `addr` (granule-aligned or not).
    pub fn granule_at(&mut self, addr: u64) -> Option<(u64, &mut Granule)> {
        let (&base, g) = self.allocs.range_mut(..=addr).next_back()?;
        let i = usize::try_from((addr - base) / self.granule).ok()?;
        let start = base + i as u64 * self.granule;
        g.get_mut(i).map(|g| (start, g))
    }

    /// Granules of tracked allocations overlapping `[addr, addr + len)`: `(start, granule)`.
    fn overlapping(&mut self, addr: u64, len: u64) -> Vec<(u64, &mut Granule)> {
        overlapping(&mut self.allocs, self.granule, addr, len)
    }

    /// Granules in `[addr, addr + len)` that are shared: `(start, entry)`.
    pub fn shared_in(&mut self, addr: u64, len: u64) -> Vec<(u64, EntryId)> {
        self.overlapping(addr, len)
            .into_iter()
            .filter_map(|(start, g)| match g {
                Granule::Shared { entry } => Some((start, *entry)),
                Granule::Private { .. } => None,
            })
            .collect()
    }

    /// Something other than an upload writes `[addr, addr + len)`: private granules there
    /// become dirty; returns the shared ones (they need a private copy first).
    pub fn written(&mut self, addr: u64, len: u64) -> Vec<(u64, EntryId)> {
        let mut shared = Vec::new();
        for (start, g) in self.overlapping(addr, len) {
            match g {
                Granule::Private { fill, .. } => *fill = Fill::Dirty,
                Granule::Shared { entry } => shared.push((start, *entry)),
            }
        }
        shared
    }

    /// An upload writes `[addr, addr + len)`; `hash(offset, len)` hashes the uploaded bytes at
    /// `offset` from `addr`. Records the pieces that land in private granules and returns
    /// those the upload completed. Shared granules are left alone (the caller makes them
    /// private first, which leaves them dirty).
    pub fn uploaded(
        &mut self,
        addr: u64,
        len: u64,
        mut hash: impl FnMut(u64, u64) -> Hash,
    ) -> Vec<Completed> {
        let granule = self.granule;
        let end = addr.saturating_add(len);
        let mut done = Vec::new();
        let sizes = &self.sizes;
        for (start, g) in overlapping(&mut self.allocs, granule, addr, len) {
            let owned = owned(sizes, granule, start);
            let Granule::Private { handle, fill } = g else {
                continue;
            };
            let from = addr.max(start);
            let to = end.min(start + granule);
            let (offset, piece) = (from - start, to - from);
            let Fill::Pieces(pieces) = fill else {
                // A complete granule written again, or a dirty one: dirty.
                *fill = Fill::Dirty;
                continue;
            };
            if overlaps(pieces, offset, piece) {
                *fill = Fill::Dirty;
                continue;
            }
            pieces.insert(offset, (piece, hash(from - addr, piece)));
            if let Some(key) = complete_key(pieces, owned) {
                let hashed = pieces.values().all(|(_, h)| *h != UNHASHED);
                let pieces: Pieces = pieces.iter().map(|(&o, &(l, _))| (o, l)).collect();
                *fill = if hashed {
                    Fill::Complete(key, pieces.clone())
                } else {
                    Fill::Covered(pieces.clone())
                };
                done.push(Completed {
                    addr: start,
                    handle: *handle,
                    key: hashed.then_some(key),
                    pieces,
                    prefix: None,
                });
            }
        }
        done
    }
}

/// Granules of `allocs` overlapping `[addr, addr + len)`: `(start, granule)`.
fn overlapping(
    allocs: &mut BTreeMap<u64, Vec<Granule>>,
    granule: u64,
    addr: u64,
    len: u64,
) -> Vec<(u64, &mut Granule)> {
    let end = addr.saturating_add(len);
    let first = allocs.range(..=addr).next_back().map_or(addr, |(&b, _)| b);
    let mut out = Vec::new();
    for (&base, gs) in allocs.range_mut(first..end) {
        for (i, g) in gs.iter_mut().enumerate() {
            let start = base + i as u64 * granule;
            if start < end && start + granule > addr {
                out.push((start, g));
            }
        }
    }
    out
}

/// The bytes of the granule at `start` that belong to its allocation (`sizes`: each
/// allocation's size as asked for, by base): all of it but in an allocation's last granule,
/// whose tail past that size is no one's.
fn owned(sizes: &BTreeMap<u64, u64>, granule: u64, start: u64) -> u64 {
    sizes
        .range(..=start)
        .next_back()
        .map_or(granule, |(&base, &size)| {
            (base + size).saturating_sub(start).min(granule)
        })
}

/// True if `[offset, offset + len)` overlaps a recorded piece.
fn overlaps(pieces: &BTreeMap<u64, (u64, Hash)>, offset: u64, len: u64) -> bool {
    let before = pieces
        .range(..=offset)
        .next_back()
        .is_some_and(|(&o, &(l, _))| o + l > offset);
    let after = pieces.range(offset..offset + len).next().is_some();
    before || after
}

/// The key of the pieces if they cover `[0, owned)` exactly (the granule's bytes that belong
/// to its allocation).
fn complete_key(pieces: &BTreeMap<u64, (u64, Hash)>, owned: u64) -> Option<Key> {
    let mut next = 0;
    for (&o, &(l, _)) in pieces {
        if o != next {
            return None;
        }
        next = o + l;
    }
    if next != owned {
        return None;
    }
    let list: Vec<(u64, u64, Hash)> = pieces.iter().map(|(&o, &(l, h))| (o, l, h)).collect();
    Some(granule_key(&list))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedup::key::hash_bytes;

    const G: u64 = 4096;

    fn upload(t: &mut TenantGranules, addr: u64, bytes: &[u8]) -> Vec<Completed> {
        t.uploaded(addr, bytes.len() as u64, |o, l| {
            hash_bytes(&bytes[o as usize..(o + l) as usize])
        })
    }

    #[test]
    fn whole_and_pieced_uploads_complete_granules() {
        let mut t = TenantGranules::new(G);
        t.add_alloc(0x10000, 3 * G, &[11, 12, 13]);
        let data: Vec<u8> = (0..2 * G).map(|i| (i % 251) as u8).collect();
        // Two whole granules in one upload.
        let done = upload(&mut t, 0x10000, &data);
        assert_eq!(done.len(), 2);
        assert_eq!(done[0].key, Some(hash_bytes(&data[..G as usize])));
        assert_eq!((done[1].addr, done[1].handle), (0x10000 + G, 12));
        // The third granule in two pieces, out of order: complete after the second.
        let third = 0x10000 + 2 * G;
        assert!(upload(&mut t, third + G / 2, &data[..G as usize / 2]).is_empty());
        let done = upload(&mut t, third, &data[..G as usize / 2]);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].handle, 13);
    }

    #[test]
    fn unhashed_pieces_leave_the_key_to_the_device() {
        let mut t = TenantGranules::new(G);
        t.add_alloc(0, G, &[1]);
        let data = vec![9u8; G as usize / 2];
        assert!(upload(&mut t, 0, &data).is_empty());
        let done = t.uploaded(G / 2, G / 2, |_, _| UNHASHED);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].key, None);
        assert_eq!(done[0].pieces, vec![(0, G / 2), (G / 2, G / 2)]);
        assert!(matches!(
            t.granule_at(0),
            Some((
                0,
                Granule::Private {
                    fill: Fill::Covered(_),
                    ..
                }
            ))
        ));
        t.written(0, 1);
        assert!(matches!(
            t.granule_at(0),
            Some((
                0,
                Granule::Private {
                    fill: Fill::Dirty,
                    ..
                }
            ))
        ));
    }

    #[test]
    fn an_allocations_last_granule_completes_at_its_size() {
        // 1.25 granules asked for: the second granule's first quarter is the allocation's.
        let mut t = TenantGranules::new(G);
        let size = G + G / 4;
        t.add_alloc(0, size, &[1, 2]);
        let data = vec![5u8; size as usize];
        assert!(
            upload(&mut t, G, &data[..G as usize / 8]).is_empty(),
            "half of it"
        );
        let done = upload(&mut t, G + G / 8, &data[..G as usize / 8]);
        assert_eq!(done.len(), 1, "the allocation's bytes of it are covered");
        assert_eq!(done[0].pieces, vec![(0, G / 8), (G / 8, G / 8)]);
        let other = {
            let mut u = TenantGranules::new(G);
            u.add_alloc(0, G / 2, &[3]);
            upload(&mut u, 0, &data[..G as usize / 4])
        };
        assert!(
            other.is_empty(),
            "half of a smaller allocation: not complete"
        );
        let mut one = TenantGranules::new(G);
        one.add_alloc(0, G / 4, &[4]);
        let k = upload(&mut one, 0, &data[..G as usize / 4])[0].key;
        assert_ne!(k, done[0].key, "different pieces, different keys");
    }

    #[test]
    fn partial_overlapping_and_written_granules_never_complete() {
        let mut t = TenantGranules::new(G);
        t.add_alloc(0, 2 * G, &[1, 2]);
        let data = vec![7u8; G as usize];
        // Half of granule 0 and half of granule 1: neither complete.
        assert!(upload(&mut t, G / 2, &data).is_empty());
        // Overlapping the first piece: granule 0 dirty, so completing it does nothing.
        assert!(upload(&mut t, 0, &data[..G as usize / 2 + 1]).is_empty());
        assert!(upload(&mut t, 0, &data[..G as usize / 2]).is_empty());
        assert!(matches!(
            t.granule_at(0),
            Some((
                0,
                Granule::Private {
                    fill: Fill::Dirty,
                    ..
                }
            ))
        ));
        // A memset into granule 1, then the rest of it uploaded: dirty, not complete.
        assert!(t.written(G + 10, 4).is_empty());
        assert!(upload(&mut t, G + G / 2, &data[..G as usize / 2]).is_empty());
        // Outside any allocation: nothing.
        assert!(upload(&mut t, 10 * G, &data).is_empty());
    }

    #[test]
    fn shared_granules_are_reported_to_writers_and_skipped_by_uploads() {
        let mut t = TenantGranules::new(G);
        t.add_alloc(0, 2 * G, &[1, 2]);
        *t.granule_at(G).unwrap().1 = Granule::Shared { entry: 5 };
        assert_eq!(t.shared_in(0, 2 * G), vec![(G, 5)]);
        assert_eq!(t.written(G - 1, 2), vec![(G, 5)]);
        let data = vec![1u8; 2 * G as usize];
        let done = upload(&mut t, 0, &data);
        assert!(
            done.is_empty(),
            "granule 0 was written (dirty); granule 1 is shared"
        );
        assert_eq!(t.alloc_of(G + 5), Some((0, 2 * G)));
        assert_eq!(t.alloc_of(2 * G), None);
        assert_eq!(t.remove_alloc(0).map(|g| g.len()), Some(2));
        assert!(t.is_empty());
    }
}
