//! Small allocations packed into slabs: one VMM allocation of a granule serves many
//! `MemAlloc`s of a tenant, so a 4-byte buffer does not cost a granule (2 MiB) of device memory
//! and of the tenant's quota.
//!
//! A slab is one granule-sized [`VmmAlloc`] of the tenant's; its free bytes are spans kept by
//! offset and merged with their neighbours when given back (first fit). Every piece is
//! [`ALIGN`]-aligned, as CUDA's allocations are. A slab is freed with its last piece. Only the
//! bookkeeping lives here; the caller makes and frees the slabs on the worker
//! (`session::exec::memory`).

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
    /// allocation when that was its last piece (the slab is gone: the caller frees it).
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
        self.slabs.remove(&base).map(|s| s.alloc)
    }

    /// Every slab's allocation, forgetting them (teardown).
    pub fn drain(&mut self) -> Vec<VmmAlloc> {
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
    fn pieces_pack_into_one_slab_and_the_slab_goes_with_the_last() {
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
            Some(slab(0x100000)),
            "the last piece frees the slab"
        );
        assert_eq!(s.take(ALIGN), None);
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
