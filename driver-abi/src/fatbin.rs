//! Module images: NUL-terminated PTX text, fatbins and the fatbin wrapper nvcc emits.
//!
//! Layouts (little-endian; from public reverse-engineering notes of the format, e.g. ZLUDA's fatbin
//! structs and cuobjdump-derived format descriptions):
//!
//! - wrapper (`__fatBinC_Wrapper_t`, 24 bytes): u32 magic `0x466243B1`, u32 version, u64 pointer to
//!   the fatbin, u64 filename/prelinked-fatbins pointer (ignored).
//! - fatbin header (16 bytes): u32 magic `0xBA55ED50`, u16 version (1), u16 header size (16), u64 size
//!   of the entries that follow the header.
//! - entry header (64 bytes or more, `header_size`), followed by its payload; the next entry starts at
//!   `entry + header_size + padded_payload_size`:
//!   `0` u16 kind (1 PTX, 2 ELF), `2` u16 version (0x0101), `4` u32 header size,
//!   `8` u64 padded payload size, `16` u32 (compressed) payload size, `20` u32 options offset,
//!   `24` u16 minor / `26` u16 major code version, `28` u32 SM architecture (90 = sm_90),
//!   `32` u32 identifier offset, `36` u32 identifier length, `40` u64 flags (0x1 64-bit, 0x10 Linux,
//!   0x2000 LZ4, 0x8000 Zstd), `48` u64 reserved, `56` u64 uncompressed size.
//!
//! PTX entries hold NUL-terminated text. Compressed entries are not supported yet.

use crate::error::{CuError, CuResult};

/// Magic of the fatbin wrapper.
pub const WRAPPER_MAGIC: u32 = 0x466243B1;
/// Magic of a fatbin container.
pub const FATBIN_MAGIC: u32 = 0xBA55ED50;
/// Entry kind: PTX text.
pub const KIND_PTX: u16 = 1;
/// Entry kind: ELF cubin.
pub const KIND_ELF: u16 = 2;
/// Entry flag: 64-bit code.
pub const FLAG_64BIT: u64 = 0x1;
/// Entry flag: built on Linux.
pub const FLAG_LINUX: u64 = 0x10;
/// Entry flag: LZ4-compressed payload.
pub const FLAG_LZ4: u64 = 0x2000;
/// Entry flag: Zstd-compressed payload.
pub const FLAG_ZSTD: u64 = 0x8000;
/// Size of the fatbin container header.
pub const HEADER_SIZE: usize = 16;
/// Size of the fixed part of an entry header.
pub const ENTRY_HEADER_SIZE: usize = 64;
/// All compression flag bits (zlib, LZ4, LZ4 variant, Zstd).
const COMPRESSION_MASK: u64 = 0x1000 | 0x2000 | 0x4000 | 0x8000;

/// One entry of a fatbin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// 1 = PTX, 2 = ELF, others unknown.
    pub kind: u16,
    /// SM architecture (e.g. 90).
    pub arch: u32,
    /// Flags word.
    pub flags: u64,
    /// The payload bytes (padded size, possibly compressed).
    pub payload: &'a [u8],
}

impl Entry<'_> {
    /// True when the payload is compressed.
    pub fn compressed(&self) -> bool {
        self.flags & COMPRESSION_MASK != 0
    }
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

/// Total size of the fatbin container whose first 16 bytes are `header`, if it is one.
pub fn container_size(header: &[u8]) -> Option<usize> {
    if u32_at(header, 0)? != FATBIN_MAGIC {
        return None;
    }
    let hsize = usize::from(u16_at(header, 6)?);
    let body = usize::try_from(u64_at(header, 8)?).ok()?;
    hsize.max(HEADER_SIZE).checked_add(body)
}

/// Parses the entries of one fatbin container. Malformed containers give `INVALID_IMAGE`.
pub fn parse(bytes: &[u8]) -> CuResult<Vec<Entry<'_>>> {
    let invalid = |what: &str| {
        tracing::warn!("invalid fatbin image: {what}");
        CuError::INVALID_IMAGE
    };
    let total = container_size(bytes).ok_or_else(|| invalid("bad header"))?;
    if total > bytes.len() {
        return Err(invalid("truncated container"));
    }
    let mut off = usize::from(u16_at(bytes, 6).unwrap_or(16)).max(HEADER_SIZE);
    let mut entries = Vec::new();
    while off + ENTRY_HEADER_SIZE <= total {
        let e = &bytes[off..total];
        let (Some(kind), Some(hsize), Some(padded), Some(arch), Some(flags)) = (
            u16_at(e, 0),
            u32_at(e, 4),
            u64_at(e, 8),
            u32_at(e, 28),
            u64_at(e, 40),
        ) else {
            return Err(invalid("short entry header"));
        };
        let hsize = hsize as usize;
        if hsize < ENTRY_HEADER_SIZE {
            return Err(invalid("entry header smaller than 64 bytes"));
        }
        let end = usize::try_from(padded)
            .ok()
            .and_then(|p| hsize.checked_add(p))
            .filter(|&end| end <= e.len())
            .ok_or_else(|| invalid("entry payload runs past the container"))?;
        entries.push(Entry {
            kind,
            arch,
            flags,
            payload: &e[hsize..end],
        });
        off += end;
    }
    Ok(entries)
}

/// The architecture of the PTX entry to load for a device of SM version `sm`, among the PTX
/// entries' architectures `archs`: the highest one `<= sm`; when there is none, the lowest one
/// above `sm` (the interpreter runs PTX of any architecture: libraries that ship only newer PTX,
/// such as CuPy's CUB/Thrust kernels for compute_100, still load).
pub fn choose_ptx_arch(archs: impl Iterator<Item = u32> + Clone, sm: u32) -> Option<u32> {
    archs
        .clone()
        .filter(|&a| a <= sm)
        .max()
        .or_else(|| archs.filter(|&a| a > sm).min())
}

/// Logs (once per module load: the one call that returns the entry) that PTX of a newer
/// architecture than the device's was taken.
pub fn log_newer_ptx(arch: u32, sm: u32) {
    if arch > sm {
        tracing::info!(
            "fatbin has no PTX for sm_{sm} or older; loading its PTX for compute_{arch}, the lowest newer architecture (the CPU device interprets any PTX)"
        );
    }
}

/// Picks the PTX text to load from a fatbin for a device of SM version `sm` (e.g. 90): the
/// uncompressed PTX entry of the architecture [`choose_ptx_arch`] picks (an uncompressed entry
/// winning a tie).
///
/// Errors: no PTX entry at all (only cubins) → `NO_BINARY_FOR_GPU`; the chosen entry is
/// compressed → `NOT_SUPPORTED`; malformed → `INVALID_IMAGE`.
pub fn select_ptx(bytes: &[u8], sm: u32) -> CuResult<String> {
    let entries = parse(bytes)?;
    let ptx = entries.iter().filter(|e| e.kind == KIND_PTX);
    let arch = choose_ptx_arch(ptx.clone().map(|e| e.arch), sm);
    let best = ptx
        .filter(|e| Some(e.arch) == arch)
        .max_by_key(|e| !e.compressed());
    let Some(best) = best else {
        let kinds: Vec<String> = entries
            .iter()
            .map(|e| format!("kind {} sm_{}", e.kind, e.arch))
            .collect();
        tracing::warn!(
            "fatbin has no PTX entry for sm_{sm} (entries: {}); cubins cannot run on the CPU device",
            if kinds.is_empty() { "none".to_string() } else { kinds.join(", ") }
        );
        return Err(CuError::NO_BINARY_FOR_GPU);
    };
    if best.compressed() {
        tracing::warn!(
            "fatbin PTX entry for sm_{} is compressed (flags {:#x}); compressed fatbins are not supported yet",
            best.arch,
            best.flags
        );
        return Err(CuError::NOT_SUPPORTED);
    }
    log_newer_ptx(best.arch, sm);
    let text = best.payload.split(|&b| b == 0).next().unwrap_or_default();
    std::str::from_utf8(text).map(str::to_owned).map_err(|_| {
        tracing::warn!("fatbin PTX entry for sm_{} is not UTF-8 text", best.arch);
        CuError::INVALID_PTX
    })
}

/// Builds a fatbin with one entry per `(kind, arch, flags, payload)`. Payloads are stored as given
/// (PTX should include its NUL) and zero-padded to a multiple of 8.
pub fn build_fatbin_entries(entries: &[(u16, u32, u64, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for &(kind, arch, flags, payload) in entries {
        let padded = payload.len().div_ceil(8) * 8;
        let mut h = [0u8; ENTRY_HEADER_SIZE];
        h[0..2].copy_from_slice(&kind.to_le_bytes());
        h[2..4].copy_from_slice(&0x0101u16.to_le_bytes());
        h[4..8].copy_from_slice(&(ENTRY_HEADER_SIZE as u32).to_le_bytes());
        h[8..16].copy_from_slice(&(padded as u64).to_le_bytes());
        h[16..20].copy_from_slice(&(padded as u32).to_le_bytes());
        h[28..32].copy_from_slice(&arch.to_le_bytes());
        h[40..48].copy_from_slice(&flags.to_le_bytes());
        body.extend_from_slice(&h);
        body.extend_from_slice(payload);
        body.resize(body.len() + padded - payload.len(), 0);
    }
    let mut out = Vec::with_capacity(HEADER_SIZE + body.len());
    out.extend_from_slice(&FATBIN_MAGIC.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&(HEADER_SIZE as u16).to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// Builds a fatbin holding `ptx` (text, with or without a trailing NUL) as one uncompressed sm_90
/// PTX entry.
pub fn build_fatbin(ptx: &[u8]) -> Vec<u8> {
    let mut text = ptx.to_vec();
    if text.last() != Some(&0) {
        text.push(0);
    }
    build_fatbin_entries(&[(KIND_PTX, 90, FLAG_64BIT | FLAG_LINUX, &text)])
}

/// Builds the 24-byte fatbin wrapper pointing at `fatbin` (which must outlive every use).
pub fn build_wrapper(fatbin: *const u8) -> [u8; 24] {
    let mut w = [0u8; 24];
    w[0..4].copy_from_slice(&WRAPPER_MAGIC.to_le_bytes());
    w[4..8].copy_from_slice(&1u32.to_le_bytes());
    w[8..16].copy_from_slice(&(fatbin as u64).to_le_bytes());
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    const PTX: &[u8] = b".version 8.0\n.target sm_90\n.address_size 64\n";

    #[test]
    fn builder_round_trips() {
        let fat = build_fatbin(PTX);
        assert_eq!(container_size(&fat), Some(fat.len()));
        assert_eq!(fat.len() % 8, 0);
        let entries = parse(&fat).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].kind, KIND_PTX);
        assert_eq!(entries[0].arch, 90);
        assert!(!entries[0].compressed());
        assert_eq!(select_ptx(&fat, 90).unwrap().as_bytes(), PTX);
    }

    #[test]
    fn picks_the_highest_usable_ptx() {
        let old = b"// sm_52\0";
        let mid = b"// sm_80\0";
        let new = b"// sm_100\0";
        let fat = build_fatbin_entries(&[
            (KIND_ELF, 90, FLAG_64BIT, b"\x7fELF...."),
            (KIND_PTX, 52, FLAG_64BIT, old),
            (KIND_PTX, 100, FLAG_64BIT, new),
            (KIND_PTX, 80, FLAG_64BIT, mid),
        ]);
        assert_eq!(parse(&fat).unwrap().len(), 4);
        assert_eq!(select_ptx(&fat, 90).unwrap(), "// sm_80");
        assert_eq!(select_ptx(&fat, 60).unwrap(), "// sm_52");
        assert_eq!(select_ptx(&fat, 120).unwrap(), "// sm_100");
    }

    #[test]
    fn cubin_only_and_compressed_entries_are_rejected() {
        let elf = build_fatbin_entries(&[(KIND_ELF, 90, FLAG_64BIT, b"\x7fELF....")]);
        assert_eq!(select_ptx(&elf, 90), Err(CuError::NO_BINARY_FOR_GPU));
        let zstd = build_fatbin_entries(&[(KIND_PTX, 90, FLAG_ZSTD, b"\x28\xb5\x2f\xfd")]);
        assert_eq!(select_ptx(&zstd, 90), Err(CuError::NOT_SUPPORTED));
        let lz4 = build_fatbin_entries(&[(KIND_PTX, 90, FLAG_LZ4, b"1234")]);
        assert_eq!(select_ptx(&lz4, 90), Err(CuError::NOT_SUPPORTED));
        // An uncompressed entry of the same architecture wins over a compressed one.
        let both = build_fatbin_entries(&[
            (KIND_PTX, 90, FLAG_ZSTD, b"zz"),
            (KIND_PTX, 90, 0, b"plain\0"),
        ]);
        assert_eq!(select_ptx(&both, 90).unwrap(), "plain");
    }

    #[test]
    fn newer_ptx_only_is_taken() {
        // CuPy's CUB/Thrust modules: PTX for compute_100 (and cubins) only.
        let fat = build_fatbin_entries(&[
            (KIND_ELF, 100, FLAG_64BIT, b"\x7fELF...."),
            (KIND_PTX, 120, FLAG_64BIT, b"// sm_120\0"),
            (KIND_PTX, 100, FLAG_64BIT, b"// sm_100\0"),
        ]);
        assert_eq!(select_ptx(&fat, 90).unwrap(), "// sm_100");
        assert_eq!(select_ptx(&fat, 110).unwrap(), "// sm_100");
        assert_eq!(select_ptx(&fat, 120).unwrap(), "// sm_120");
        assert_eq!(choose_ptx_arch([100u32, 52, 120].into_iter(), 90), Some(52));
        assert_eq!(choose_ptx_arch([100u32, 120].into_iter(), 90), Some(100));
        assert_eq!(choose_ptx_arch(std::iter::empty(), 90), None);
        // A compressed newer entry is picked by the same rule.
        let z = build_fatbin_entries(&[(KIND_PTX, 100, FLAG_ZSTD, b"zz")]);
        assert_eq!(select_ptx(&z, 90), Err(CuError::NOT_SUPPORTED));
    }

    #[test]
    fn malformed_containers() {
        let mut fat = build_fatbin(PTX);
        assert_eq!(parse(&fat[..20]), Err(CuError::INVALID_IMAGE));
        // An entry whose payload runs past the container.
        fat[HEADER_SIZE + 8] = 0xff;
        assert_eq!(parse(&fat), Err(CuError::INVALID_IMAGE));
        assert_eq!(parse(b"not a fatbin at all!"), Err(CuError::INVALID_IMAGE));
        let empty = build_fatbin_entries(&[]);
        assert_eq!(parse(&empty).unwrap(), vec![]);
        assert_eq!(select_ptx(&empty, 90), Err(CuError::NO_BINARY_FOR_GPU));
    }

    #[test]
    fn wrapper_points_at_the_fatbin() {
        let fat = build_fatbin(PTX);
        let w = build_wrapper(fat.as_ptr());
        assert_eq!(u32_at(&w, 0), Some(WRAPPER_MAGIC));
        assert_eq!(u64_at(&w, 8), Some(fat.as_ptr() as u64));
    }
}
