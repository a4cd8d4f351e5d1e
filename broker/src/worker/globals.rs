//! The device memory a module image declares for its variables — what the driver allocates
//! when it loads the image — worked out from the worker's own copy of the image before the
//! driver sees it, so that a module whose variables do not fit the tenant's quota is refused
//! without allocating anything.
//!
//! - PTX text: the `.global` and `.const` variables ([`gpushare_ptx::declared_global_bytes`]).
//! - ELF cubin: the sizes of its `.nv.global*` sections (`.global` variables, zero-initialised
//!   or not). `__constant__` banks are not counted (64 KiB at most).
//! - Fatbin: the largest figure among its uncompressed PTX and cubin entries (the driver loads
//!   one of them). Compressed entries are not inflated here and count as nothing.
//!
//! An image this cannot read counts as nothing: the driver refuses it anyway, or (PTX our parser
//! rejects but a real driver's JIT accepts) its variables go uncharged.

use gpushare_driver_abi::image::FATBIN_MAGIC;

/// ELF magic.
const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
/// Fatbin entry kinds.
const KIND_PTX: u16 = 1;
const KIND_ELF: u16 = 2;
/// Fatbin entry flags that mean a compressed payload (zlib, LZ4, LZ4 variant, Zstd).
const COMPRESSED: u64 = 0x1000 | 0x2000 | 0x4000 | 0x8000;
/// Size of a fatbin container's header and of an entry's fixed header.
const FATBIN_HEADER: usize = 16;
const ENTRY_HEADER: usize = 64;

fn bytes<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}
fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    bytes(b, at).map(u16::from_le_bytes)
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    bytes(b, at).map(u32::from_le_bytes)
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    bytes(b, at).map(u64::from_le_bytes)
}

/// The bytes image `image` (as `prepare_image` left it) declares for module variables.
pub fn declared_bytes(image: &[u8]) -> u64 {
    if image.starts_with(ELF_MAGIC) {
        elf_globals(image).unwrap_or(0)
    } else if u32_at(image, 0) == Some(FATBIN_MAGIC) {
        fatbin_globals(image).unwrap_or(0)
    } else {
        ptx_globals(image)
    }
}

fn ptx_globals(text: &[u8]) -> u64 {
    let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
    std::str::from_utf8(&text[..end])
        .ok()
        .and_then(|t| gpushare_ptx::declared_global_bytes(t).ok())
        .unwrap_or(0)
}

/// The sizes of a 64-bit ELF's `.nv.global*` sections, added up.
fn elf_globals(elf: &[u8]) -> Option<u64> {
    let shoff = usize::try_from(u64_at(elf, 0x28)?).ok()?;
    let shentsize = usize::from(u16_at(elf, 0x3a)?);
    let shnum = usize::from(u16_at(elf, 0x3c)?);
    let shstrndx = usize::from(u16_at(elf, 0x3e)?);
    if shentsize < 64 {
        return None;
    }
    let header = |i: usize| shoff.checked_add(i.checked_mul(shentsize)?);
    let strtab = usize::try_from(u64_at(elf, header(shstrndx)? + 24)?).ok()?;
    let mut total = 0u64;
    for i in 0..shnum {
        let h = header(i)?;
        let name_at = strtab.checked_add(u32_at(elf, h)? as usize)?;
        let name = elf.get(name_at..)?;
        let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
        if name.starts_with(b".nv.global") {
            total = total.checked_add(u64_at(elf, h + 32)?)?;
        }
    }
    Some(total)
}

/// The largest figure among a fatbin's uncompressed PTX and cubin entries.
fn fatbin_globals(fatbin: &[u8]) -> Option<u64> {
    let header = usize::from(u16_at(fatbin, 6)?).max(FATBIN_HEADER);
    let body = usize::try_from(u64_at(fatbin, 8)?).ok()?;
    let end = header.checked_add(body)?.min(fatbin.len());
    let mut at = header;
    let mut most = 0u64;
    while at.checked_add(ENTRY_HEADER)? <= end {
        let e = &fatbin[at..end];
        let (kind, size, padded, flags) = (
            u16_at(e, 0)?,
            u32_at(e, 4)? as usize,
            usize::try_from(u64_at(e, 8)?).ok()?,
            u64_at(e, 40)?,
        );
        let next = size.max(ENTRY_HEADER).checked_add(padded)?;
        let payload = e.get(size..next)?;
        let figure = match kind {
            _ if flags & COMPRESSED != 0 => 0,
            KIND_PTX => ptx_globals(payload),
            KIND_ELF => elf_globals(payload).unwrap_or(0),
            _ => 0,
        };
        most = most.max(figure);
        at = at.checked_add(next)?;
    }
    Some(most)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PTX: &str = ".version 8.0\n.target sm_80\n.address_size 64\n\
                       .global .align 8 .b8 big[1048576];\n.const .u32 c[4];\n";

    #[test]
    fn ptx_variables_are_counted() {
        assert_eq!(declared_bytes(format!("{PTX}\0").as_bytes()), 1_048_592);
        assert_eq!(declared_bytes(b"garbage {\0"), 0);
    }

    #[test]
    fn fatbin_entries_count_the_largest_uncompressed_one() {
        let mut fat = vec![0u8; FATBIN_HEADER];
        fat[..4].copy_from_slice(&FATBIN_MAGIC.to_le_bytes());
        fat[6] = FATBIN_HEADER as u8;
        for (flags, text) in [(0u64, PTX), (0x2000, PTX)] {
            let mut payload = format!("{text}\0").into_bytes();
            payload.resize(payload.len().next_multiple_of(8), 0);
            let mut e = vec![0u8; ENTRY_HEADER];
            e[0..2].copy_from_slice(&KIND_PTX.to_le_bytes());
            e[4..8].copy_from_slice(&(ENTRY_HEADER as u32).to_le_bytes());
            e[8..16].copy_from_slice(&(payload.len() as u64).to_le_bytes());
            e[40..48].copy_from_slice(&flags.to_le_bytes());
            fat.extend_from_slice(&e);
            fat.extend_from_slice(&payload);
        }
        let body = (fat.len() - FATBIN_HEADER) as u64;
        fat[8..16].copy_from_slice(&body.to_le_bytes());
        assert_eq!(declared_bytes(&fat), 1_048_592);
    }

    #[test]
    fn cubin_global_sections_are_counted() {
        // Three sections: null, .shstrtab, .nv.global (NOBITS, 4096 bytes).
        let names = b"\0.shstrtab\0.nv.global\0";
        let shoff = 64 + names.len();
        let mut elf = vec![0u8; shoff + 3 * 64];
        elf[..4].copy_from_slice(ELF_MAGIC);
        elf[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        elf[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        elf[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
        elf[0x3e..0x40].copy_from_slice(&1u16.to_le_bytes());
        elf[64..64 + names.len()].copy_from_slice(names);
        let sh = |i: usize| shoff + i * 64;
        elf[sh(1)..sh(1) + 4].copy_from_slice(&1u32.to_le_bytes());
        elf[sh(1) + 24..sh(1) + 32].copy_from_slice(&64u64.to_le_bytes());
        elf[sh(2)..sh(2) + 4].copy_from_slice(&11u32.to_le_bytes());
        elf[sh(2) + 32..sh(2) + 40].copy_from_slice(&4096u64.to_le_bytes());
        assert_eq!(declared_bytes(&elf), 4096);
        elf[0x3c] = 200;
        assert_eq!(
            declared_bytes(&elf),
            0,
            "section headers past the end: unreadable"
        );
    }
}
