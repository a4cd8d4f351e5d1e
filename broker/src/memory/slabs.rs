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

impl Slab {
    /// A piece of `size` bytes, first fit: its offset.
    fn carve(&mut self, size: u64) -> Option<u64> {
        let (&offset, &len) = self.free.iter().find(|(_, &len)| len >= size)?;
        self.free.remove(&offset);
        if len > size {
            self.free.insert(offset + size, len - size);
        }
        self.live += 1;
        Some(offset)
    }
}

/// A tenant's slabs, by base address.
#[derive(Debug, Default)]
pub struct Slabs {
    slabs: BTreeMap<u64, Slab>,
    /// The empty slab kept, if any.
    idle: Option<u64>,
}

/// A piece handed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Taken {
    /// Its address.
    pub ptr: u64,
    /// Its slab's base address.
    pub slab: u64,
    /// It came from the kept empty slab, which is charged again from now on.
    pub from_idle: bool,
}

/// What giving a piece back did to its slab.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Returned {
    /// Other pieces remain.
    InUse,
    /// It is the kept empty slab now, of this many bytes: no longer charged.
    Kept(u64),
    /// It is gone: the caller frees it (and uncharges it).
    Freed(VmmAlloc),
}

/// `size` rounded up to [`ALIGN`] (`None` on overflow).
pub fn piece_size(size: u64) -> Option<u64> {
    size.checked_next_multiple_of(ALIGN)
}

impl Slabs {
    /// A piece of `size` bytes ([`piece_size`]d by the caller) from an existing slab, the kept
    /// empty one last; `None` when no slab has room (the caller adds one).
    pub fn take(&mut self, size: u64) -> Option<Taken> {
        let idle = self.idle;
        let in_use = self
            .slabs
            .iter_mut()
            .filter(|(&b, _)| Some(b) != idle)
            .find_map(|(&b, slab)| slab.carve(size).map(|offset| (b, offset)));
        if let Some((slab, offset)) = in_use {
            return Some(Taken {
                ptr: slab + offset,
                slab,
                from_idle: false,
            });
        }
        let base = idle?;
        let offset = self.slabs.get_mut(&base)?.carve(size)?;
        self.idle = None;
        Some(Taken {
            ptr: base + offset,
            slab: base,
            from_idle: true,
        })
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

    /// Gives back the piece of `size` bytes at `ptr` of slab `base`: what became of the slab.
    pub fn give_back(&mut self, base: u64, ptr: u64, size: u64) -> Returned {
        let Some(slab) = self.slabs.get_mut(&base) else {
            return Returned::InUse;
        };
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
            return Returned::InUse;
        }
        if self.idle.is_none() {
            self.idle = Some(base);
            return Returned::Kept(slab.alloc.size);
        }
        match self.slabs.remove(&base) {
            Some(s) => Returned::Freed(s.alloc),
            None => Returned::InUse,
        }
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

    fn at(s: &mut Slabs, size: u64) -> (u64, u64) {
        let t = s.take(piece_size(size).unwrap()).unwrap();
        (t.ptr, t.slab)
    }

    #[test]
    fn pieces_pack_into_one_slab_and_one_empty_slab_is_kept() {
        let mut s = Slabs::default();
        assert_eq!(s.take(ALIGN), None, "no slab yet");
        s.add(slab(0x100000));
        let a = at(&mut s, 4);
        let b = at(&mut s, 1000);
        let c = at(&mut s, 4096);
        assert_eq!(a, (0x100000, 0x100000));
        assert_eq!(b.0, 0x100000 + ALIGN, "aligned, packed");
        assert_eq!(c.0, 0x100000 + 3 * ALIGN);
        assert_eq!(s.give_back(0x100000, b.0, 2 * ALIGN), Returned::InUse);
        let d = at(&mut s, ALIGN);
        assert_eq!(d.0, b.0, "first fit reuses the hole");
        assert_eq!(s.give_back(0x100000, a.0, ALIGN), Returned::InUse);
        assert_eq!(s.give_back(0x100000, d.0, ALIGN), Returned::InUse);
        assert_eq!(
            s.give_back(0x100000, c.0, 4096),
            Returned::Kept(G),
            "the only empty slab is kept (and uncharged)"
        );
        let e = s.take(ALIGN).unwrap();
        assert_eq!((e.ptr, e.from_idle), (0x100000, true), "charged again");
        s.add(slab(0x300000));
        let f = s.take(G).unwrap();
        assert_eq!((f.slab, f.from_idle), (0x300000, false));
        assert_eq!(s.give_back(0x100000, e.ptr, ALIGN), Returned::Kept(G));
        assert_eq!(
            s.give_back(0x300000, f.ptr, G),
            Returned::Freed(slab(0x300000)),
            "a second empty slab is freed"
        );
        assert_eq!(s.drain(), vec![slab(0x100000)]);
    }

    #[test]
    fn the_kept_slab_is_used_last_and_a_full_slab_leaves_the_piece_to_the_next() {
        let mut s = Slabs::default();
        s.add(slab(0));
        let whole = s.take(G).unwrap();
        assert_eq!(s.take(ALIGN), None, "full");
        s.add(slab(G));
        let small = s.take(ALIGN).unwrap();
        assert_eq!(s.give_back(0, whole.ptr, G), Returned::Kept(G));
        let next = s.take(ALIGN).unwrap();
        assert_eq!(
            (next.slab, next.from_idle),
            (G, false),
            "a slab in use before the kept one"
        );
        assert_eq!(s.give_back(G, small.ptr, ALIGN), Returned::InUse);
        assert_eq!(s.drain().len(), 2);
    }
}
