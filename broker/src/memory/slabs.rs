//! Small allocations packed into slabs: one VMM allocation of a granule serves many
//! `MemAlloc`s of a tenant, so a 4-byte buffer does not cost a granule (2 MiB) of device memory
//! and of the tenant's quota.
//!
//! A slab is one granule-sized [`VmmAlloc`] of the tenant's; its free bytes are spans kept by
//! offset and merged with their neighbours when given back (first fit). Every piece is
//! [`ALIGN`]-aligned, as CUDA's allocations are. A slab is freed with its last piece, except
//! that one empty slab is kept for the next small allocation (a loop allocating and freeing a
//! small buffer then costs no worker call). Only the bookkeeping lives here; the caller makes
//! and frees the slabs on the worker (`session::exec::memory`).

use std::collections::BTreeMap;

use crate::device::VmmAlloc;

/// Alignment (and size unit) of every piece: what `cuMemAlloc` guarantees and more.
pub const ALIGN: u64 = 512;

/// Allocations of at most this fraction of a granule are packed into slabs; larger ones get
/// granules of their own (and can be deduplicated: docs/dedup.md).
pub const SMALL_DIVISOR: u64 = 8;

/// One slab: its allocation, its free spans (`offset → length`) and its live pieces.
#[derive(Debug)]
struct Slab {
    alloc: VmmAlloc,
    free: BTreeMap<u64, u64>,
    live: u32,
}

/// A tenant's slabs, by base address.
#[derive(Debug, Default)]
pub struct Slabs {
    slabs: BTreeMap<u64, Slab>,
    /// The empty slab kept, if any.
    idle: Option<u64>,
}

/// `size` rounded up to [`ALIGN`] (`None` on overflow).
pub fn piece_size(size: u64) -> Option<u64> {
    size.checked_next_multiple_of(ALIGN)
}

impl Slabs {
    /// A piece of `size` bytes ([`piece_size`]d by the caller) from an existing slab: `(address,
    /// slab base)`; `None` when no slab has room (the caller adds one).
    pub fn take(&mut self, size: u64) -> Option<(u64, u64)> {
        for (&base, slab) in self.slabs.iter_mut() {
            let Some((&offset, &len)) = slab.free.iter().find(|(_, &len)| len >= size) else {
                continue;
            };
            slab.free.remove(&offset);
            if len > size {
                slab.free.insert(offset + size, len - size);
            }
            slab.live += 1;
            if self.idle == Some(base) {
                self.idle = None;
            }
            return Some((base + offset, base));
        }
        None
    }

    /// A new empty slab over `alloc`.
    pub fn add(&mut self, alloc: VmmAlloc) {
        let free = BTreeMap::from([(0, alloc.size)]);
        self.slabs.insert(
            alloc.ptr,
            Slab {
                alloc,
                free,
                live: 0,
            },
        );
    }

    /// Gives back the piece of `size` bytes at `ptr` of slab `base`; returns the slab's
    /// allocation when that was its last piece and an empty slab is kept already (the slab is
    /// gone: the caller frees it).
    pub fn give_back(&mut self, base: u64, ptr: u64, size: u64) -> Option<VmmAlloc> {
        let slab = self.slabs.get_mut(&base)?;
        let mut offset = ptr - base;
        let mut len = size;
        if let Some((&after, &after_len)) = slab.free.range(offset + len..).next() {
            if after == offset + len {
                slab.free.remove(&after);
                len += after_len;
            }
        }
        if let Some((&before, &before_len)) = slab.free.range(..offset).next_back() {
            if before + before_len == offset {
                slab.free.remove(&before);
                offset = before;
                len += before_len;
            }
        }
        slab.free.insert(offset, len);
        slab.live = slab.live.saturating_sub(1);
        if slab.live > 0 {
            return None;
        }
        if self.idle.is_none() {
            self.idle = Some(base);
            return None;
        }
        self.slabs.remove(&base).map(|s| s.alloc)
    }

    /// Every slab's allocation, forgetting them (teardown).
    pub fn drain(&mut self) -> Vec<VmmAlloc> {
        self.idle = None;
        std::mem::take(&mut self.slabs)
            .into_values()
            .map(|s| s.alloc)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: u64 = 2 << 20;

    fn slab(ptr: u64) -> VmmAlloc {
        VmmAlloc {
            ptr,
            size: G,
            handle: 7,
        }
    }

    #[test]
    fn pieces_pack_into_one_slab_and_one_empty_slab_is_kept() {
        let mut s = Slabs::default();
        assert_eq!(s.take(ALIGN), None, "no slab yet");
        s.add(slab(0x100000));
        let a = s.take(piece_size(4).unwrap()).unwrap();
        let b = s.take(piece_size(1000).unwrap()).unwrap();
        let c = s.take(piece_size(4096).unwrap()).unwrap();
        assert_eq!(a, (0x100000, 0x100000));
        assert_eq!(b.0, 0x100000 + ALIGN, "aligned, packed");
        assert_eq!(c.0, 0x100000 + 3 * ALIGN);
        assert_eq!(s.give_back(0x100000, b.0, 2 * ALIGN), None);
        let d = s.take(ALIGN).unwrap();
        assert_eq!(d.0, b.0, "first fit reuses the hole");
        assert_eq!(s.give_back(0x100000, a.0, ALIGN), None);
        assert_eq!(s.give_back(0x100000, d.0, ALIGN), None);
        assert_eq!(
            s.give_back(0x100000, c.0, 4096),
            None,
            "the only empty slab is kept"
        );
        let e = s.take(ALIGN).unwrap();
        assert_eq!(e.0, 0x100000, "whole again: first fit from its start");
        s.add(slab(0x300000));
        let f = s.take(G).unwrap();
        assert_eq!(f.1, 0x300000, "a full piece needs the new slab");
        assert_eq!(
            s.give_back(0x100000, e.0, ALIGN),
            None,
            "kept: no empty slab yet"
        );
        assert_eq!(
            s.give_back(0x300000, f.0, G),
            Some(slab(0x300000)),
            "a second empty slab is freed"
        );
        assert_eq!(s.drain(), vec![slab(0x100000)]);
    }

    #[test]
    fn a_full_slab_leaves_the_piece_to_the_next() {
        let mut s = Slabs::default();
        s.add(slab(0));
        assert!(s.take(G).is_some());
        assert_eq!(s.take(ALIGN), None, "full");
        s.add(slab(G));
        assert_eq!(s.take(ALIGN), Some((G, G)));
        assert_eq!(s.drain().len(), 2);
    }
}
