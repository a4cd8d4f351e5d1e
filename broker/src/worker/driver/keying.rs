//! The content key of what the device holds (deduplication's keys from the device's bytes, and
//! its check of a copy before a second user joins it: `crate::dedup`): a granule read back into
//! pinned host memory and hashed.
//!
//! A key read uses the device's download engine, which tenants' downloads share and which no
//! scheduler orders for it. So it reads a granule in pieces of [`READ_PIECE`]: a tenant's
//! download waits behind at most one piece, not a whole granule. The host side is pinned
//! (registered with the driver once, then reused: [`ReadBuffer`]), so a piece moves at the
//! engine's full rate. A whole 2 MiB granule read into pageable memory kept a latency tenant's
//! 64 KiB downloads waiting for milliseconds beside a model load (docs/benchmarks-latency.md).
//!
//! Reads are synchronous copies on the context's legacy stream, after the zeroing of an
//! allocation's last granule, which is also on it ([`Driver::vmm_alloc_granules`]). No broker
//! stream waits for that stream: the broker's are all non-blocking.

use std::sync::Arc;

use gpushare_client::os::Mapping;

use super::memory::usize_of;
use super::{check, lock, AccessFlags, DResult, DeviceError, Driver, HostRegistration};
use crate::dedup::{granule_key, hash_bytes, prefix_key, Hash, Key};

/// How much of a granule one copy of a key read moves.
pub(super) const READ_PIECE: u64 = 256 << 10;

/// One granule of pinned host memory that key reads copy into, and a private buffer its bytes
/// are copied out to for hashing.
pub(super) struct ReadBuffer {
    reg: HostRegistration,
    bytes: Vec<u8>,
}

impl Driver {
    /// The content key ([`crate::dedup::granule_key`]) of the granule mapped at `addr` cut into
    /// `pieces` (`(offset, length)`, contiguous, in order, from 0), from the device's bytes.
    /// Pieces that stop short of the granule's end (an allocation's last granule) leave a tail
    /// no upload wrote: when it is not all zeros it is keyed as one more piece, so the key
    /// matches no upload's and the granule is never shared (docs/dedup.md, "What is shared").
    /// Only through this worker's own mapping ([`Driver::handle_key`]): an address a tenant
    /// holds may be unmapped by its free meanwhile, and reading it would fault the context.
    /// With the key comes the granule's prefix key ([`prefix_key`]) when `pieces` are one
    /// piece, the whole granule (what a probe compares an upload's first granule with).
    fn granule_key(&self, addr: u64, pieces: &[(u64, u64)]) -> DResult<(Key, Option<Hash>)> {
        let g = self.granularity().max(1);
        let mut buf = self.read_buffer(g)?;
        let key = self
            .read_granule(&mut buf, addr, g)
            .and_then(|()| key_of(&buf.bytes, pieces, g))
            .map(|key| (key, (pieces == [(0, g)]).then(|| prefix_key(&buf.bytes))));
        lock(&self.read_buffers).push(buf);
        key
    }

    /// The content key of physical granule `handle` cut into `pieces`, read through a mapping
    /// of its own (read-only, at an address no tenant has), so no tenant's mapping — or free —
    /// changes what is read; the mapping keeps the granule alive while it is read.
    pub fn handle_key(&self, handle: u64, pieces: &[(u64, u64)]) -> DResult<(Key, Option<Hash>)> {
        let g = self.granularity().max(1);
        let temp = self.address_reserve(g, 0, 0, 0)?;
        let keyed = self.mem_map(temp, g, 0, handle).and_then(|()| {
            let k = self
                .mem_set_access(temp, g, AccessFlags::Read)
                .and_then(|()| self.granule_key(temp, pieces));
            let _ = self.mem_unmap(temp, g);
            k
        });
        let _ = self.address_free(temp, g);
        keyed
    }

    /// A read buffer of `g` bytes: a free one, or a new one registered with the driver.
    fn read_buffer(&self, g: u64) -> DResult<ReadBuffer> {
        if let Some(b) = lock(&self.read_buffers).pop() {
            return Ok(b);
        }
        let len = usize_of(g)?;
        let map = Mapping::anonymous(len).map_err(|e| DeviceError::Host(e.to_string()))?;
        let reg = self.host_register(Arc::new(map), 0, len)?;
        Ok(ReadBuffer {
            reg,
            bytes: vec![0; len],
        })
    }

    /// Copies the `g` bytes at `addr` into `buf` (pinned), [`READ_PIECE`] at a time, then out to
    /// its private bytes.
    fn read_granule(&self, buf: &mut ReadBuffer, addr: u64, g: u64) -> DResult<()> {
        self.bind()?;
        let map = buf.reg.mapping();
        let mut at = 0;
        while at < g {
            let n = READ_PIECE.min(g - at);
            let (offset, len) = (usize_of(at)?, usize_of(n)?);
            let dst = map
                .ptr_at(offset, len)
                .map_err(|_| DeviceError::Invalid("key read outside its buffer"))?;
            // SAFETY: `dst..dst + len` lies inside the buffer's mapping, which `buf.reg` keeps
            // alive and registered; the buffer is this call's alone (taken from the pool), and
            // the copy is synchronous, so nothing else writes or reads it meanwhile.
            check("cuMemcpyDtoH", unsafe {
                (self.api.memcpy_dtoh)(dst.cast(), addr + at, len)
            })?;
            at += n;
        }
        map.read(0, &mut buf.bytes)
            .map_err(|_| DeviceError::Invalid("key read outside its buffer"))
    }
}

/// The key of granule bytes `bytes` (`g` long) cut into `pieces` ([`Driver::granule_key`]).
fn key_of(bytes: &[u8], pieces: &[(u64, u64)], g: u64) -> DResult<Key> {
    let mut list = Vec::with_capacity(pieces.len() + 1);
    let mut covered = 0;
    for &(offset, len) in pieces {
        covered = offset.saturating_add(len);
        let range = usize_of(offset)?..usize_of(covered)?;
        let piece = bytes
            .get(range)
            .ok_or(DeviceError::Invalid("piece outside the granule"))?;
        list.push((offset, len, hash_bytes(piece)));
    }
    let tail = bytes.get(usize_of(covered)?..).unwrap_or_default();
    if tail.iter().any(|&b| b != 0) {
        list.push((covered, g - covered, hash_bytes(tail)));
    }
    Ok(granule_key(&list))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_zero_tail_is_a_piece_of_its_own() {
        let g = 8u64;
        let mut bytes = vec![7u8; 4];
        bytes.extend([0u8; 4]);
        let clean = key_of(&bytes, &[(0, 4)], g).unwrap();
        assert_eq!(clean, granule_key(&[(0, 4, hash_bytes(&bytes[..4]))]));
        bytes[7] = 1;
        let dirty = key_of(&bytes, &[(0, 4)], g).unwrap();
        assert_ne!(
            dirty, clean,
            "a tail no upload wrote makes the key match nothing"
        );
        assert!(
            key_of(&bytes, &[(4, 8)], g).is_err(),
            "a piece past the granule"
        );
    }
}
