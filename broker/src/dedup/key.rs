//! Content keys: BLAKE3 (256-bit) hashes of what uploads wrote into a granule.
//!
//! A granule filled by one upload has the key `BLAKE3(content)`. One filled by several uploads
//! (pieces) has `BLAKE3("gpushare granule pieces" ‖ (offset, length, BLAKE3(piece))…)` over its
//! pieces in address order: computable from the pieces as they pass, without the whole granule
//! at hand; the worker computes the same function over the device's bytes to verify a copy
//! (`worker::serve`'s `GranuleKey`). Equal keys mean equal content as long as BLAKE3 is
//! collision resistant (128-bit security): the reasoning is in docs/dedup.md. Two tenants that
//! upload the same bytes cut into different pieces get different keys: a missed share, never a
//! wrong one.

/// A 256-bit BLAKE3 hash.
pub type Hash = [u8; 32];

/// A granule's content key.
pub type Key = [u8; 32];

/// How much of a granule its *prefix key* covers ([`prefix_key`]).
pub const PREFIX_LEN: usize = 64 << 10;

/// The prefix key of a granule filled by one upload: the BLAKE3 of its first [`PREFIX_LEN`]
/// bytes (all of them in a smaller granule). The index counts the prefix keys of its listed
/// copies, so that the probe of a large upload (is its first granule resident?) can tell from
/// 64 KiB, not the whole granule, that the content is new, which is what a model's first load
/// is (docs/dedup.md, "Costs and limits"). Equal prefix keys say nothing about the rest: a match
/// is followed by the whole key.
pub fn prefix_key(granule: &[u8]) -> Hash {
    *blake3::hash(&granule[..granule.len().min(PREFIX_LEN)]).as_bytes()
}

/// Pieces below this size are hashed on the calling thread; larger ones with BLAKE3's
/// multi-threaded mode (worth it from about a MiB).
const PARALLEL_FROM: usize = 1 << 20;

/// BLAKE3 of `bytes`.
pub fn hash_bytes(bytes: &[u8]) -> Hash {
    if bytes.len() >= PARALLEL_FROM {
        let mut h = blake3::Hasher::new();
        h.update_rayon(bytes);
        *h.finalize().as_bytes()
    } else {
        *blake3::hash(bytes).as_bytes()
    }
}

/// The key of a granule covered exactly by `pieces` — `(offset, length, hash)` in address
/// order, contiguous from 0 to the granule's end.
pub fn granule_key(pieces: &[(u64, u64, Hash)]) -> Key {
    if let [(0, _, hash)] = pieces {
        return *hash;
    }
    let mut h = blake3::Hasher::new();
    h.update(b"gpushare granule pieces");
    for (offset, len, hash) in pieces {
        h.update(&offset.to_le_bytes());
        h.update(&len.to_le_bytes());
        h.update(hash);
    }
    *h.finalize().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_piece_is_the_content_hash_and_splits_differ() {
        let bytes: Vec<u8> = (0..4096u32).map(|i| (i * 7) as u8).collect();
        let whole = hash_bytes(&bytes);
        assert_eq!(whole, *blake3::hash(&bytes).as_bytes());
        assert_eq!(granule_key(&[(0, 4096, whole)]), whole);
        let halves = [
            (0, 2048, hash_bytes(&bytes[..2048])),
            (2048, 2048, hash_bytes(&bytes[2048..])),
        ];
        let split = granule_key(&halves);
        assert_ne!(split, whole, "a split granule has a key of its own");
        assert_eq!(split, granule_key(&halves), "deterministic");
        let mut other = halves;
        other[1].2[0] ^= 1;
        assert_ne!(granule_key(&other), split);
        let big = vec![3u8; 3 << 20];
        assert_eq!(
            hash_bytes(&big),
            *blake3::hash(&big).as_bytes(),
            "rayon mode agrees"
        );
    }
}
