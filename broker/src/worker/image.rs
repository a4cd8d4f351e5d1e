//! Module images as a worker receives them: copied out of a tenant's shared memory, then
//! checked against their own length before the driver sees them (the driver's
//! `cuModuleLoadData` takes no length). The copy is the worker's own, so a tenant changing the
//! bytes meanwhile changes nothing.
//!
//! A PTX image whose kernels can be sliced is loaded with their block-range variants added
//! ([`with_slices`], see `gpushare_ptx::slice` and docs/scheduling.md): the scheduler launches a
//! long kernel as slices of its grid through `NAME__gs_slice`.

use gpushare_client::code;

/// Why an image is refused.
#[derive(Debug, PartialEq, Eq)]
pub struct BadImage;

impl BadImage {
    /// `CUDA_ERROR_INVALID_IMAGE`.
    pub fn code(&self) -> u32 {
        code::ERROR_INVALID_IMAGE
    }
}

/// ELF magic.
const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
/// Fatbin wrapper magic (`__fatBinC_Wrapper_t`): holds a pointer into the tenant's process.
const FATBIN_WRAPPER_MAGIC: u32 = 0x4662_43B1;
/// Fatbin magic.
const FATBIN_MAGIC: u32 = 0xBA55_ED50;

fn u16_at(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 2)
        .map(|s| u64::from(u16::from_le_bytes([s[0], s[1]])))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at + 8)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_le_bytes(a))
}

/// Checks a module image against its own length before the driver sees it (the driver's
/// `cuModuleLoadData` takes no length): cubin headers and tables must lie inside the buffer, a
/// fatbin's payload too; a fatbin *wrapper* is refused (it points into the tenant's memory: the
/// shim must send the fatbin itself); PTX text gets a terminating NUL.
pub fn prepare_image(mut image: Vec<u8>) -> Result<Vec<u8>, BadImage> {
    let invalid = BadImage;
    let len = image.len() as u64;
    let magic = image
        .get(..4)
        .map(|m| u32::from_le_bytes([m[0], m[1], m[2], m[3]]));
    if image.starts_with(ELF_MAGIC) {
        let table_end = |off: usize, num: usize, size: usize| -> Option<u64> {
            u64_at(&image, off)?
                .checked_add(u16_at(&image, num)?.checked_mul(u16_at(&image, size)?)?)
        };
        let ok = image.len() >= 64
            && table_end(0x28, 0x3c, 0x3a).is_some_and(|e| e <= len)
            && table_end(0x20, 0x38, 0x36).is_some_and(|e| e <= len);
        return if ok { Ok(image) } else { Err(invalid) };
    }
    match magic {
        Some(FATBIN_WRAPPER_MAGIC) => Err(invalid),
        Some(FATBIN_MAGIC) => {
            let header = u16_at(&image, 6).ok_or(BadImage)?;
            let payload = u64_at(&image, 8).ok_or(BadImage)?;
            match header.checked_add(payload) {
                Some(end) if end <= len => Ok(image),
                _ => Err(invalid),
            }
        }
        _ => {
            if !image.contains(&0) {
                image.push(0);
            }
            Ok(image)
        }
    }
}

/// The image with block-range slice variants of its kernels added (NUL-terminated), when it is
/// PTX text with at least one sliceable kernel; `None` otherwise (load it as given).
pub fn with_slices(image: &[u8]) -> Option<Vec<u8>> {
    let text = image.strip_suffix(&[0]).unwrap_or(image);
    if text.starts_with(ELF_MAGIC) || text.contains(&0) {
        return None;
    }
    let text = std::str::from_utf8(text).ok()?;
    let sliced = gpushare_ptx::slice_module(text).ok()?;
    let any = sliced.entries.iter().any(|e| e.sliced_name().is_some());
    any.then(|| {
        let mut v = sliced.ptx.into_bytes();
        v.push(0);
        v
    })
}

/// Per kernel, which parameters it may store through, when the image is PTX text the analysis
/// understands (`gpushare_ptx::writes`); `None` otherwise (every pointer may be written).
pub fn param_writes(image: &[u8]) -> Option<std::collections::HashMap<String, Vec<bool>>> {
    let text = image.strip_suffix(&[0]).unwrap_or(image);
    if text.starts_with(ELF_MAGIC) || text.contains(&0) {
        return None;
    }
    let text = std::str::from_utf8(text).ok()?;
    let kernels = gpushare_ptx::param_writes(text).ok()?;
    Some(
        kernels
            .into_iter()
            .map(|k| (k.kernel, k.may_write))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_checked_against_their_length() {
        assert_eq!(
            prepare_image(b".version 8.0".to_vec()).unwrap().last(),
            Some(&0)
        );
        let mut fat = vec![0u8; 32];
        fat[..4].copy_from_slice(&FATBIN_MAGIC.to_le_bytes());
        fat[6] = 16;
        fat[8] = 16;
        assert!(prepare_image(fat.clone()).is_ok());
        fat[8] = 17;
        assert!(prepare_image(fat).is_err());
        assert!(prepare_image(FATBIN_WRAPPER_MAGIC.to_le_bytes().to_vec()).is_err());
        let mut elf = vec![0u8; 64];
        elf[..4].copy_from_slice(ELF_MAGIC);
        assert!(prepare_image(elf.clone()).is_ok());
        elf[0x28] = 60;
        elf[0x3c] = 1;
        elf[0x3a] = 64;
        assert!(prepare_image(elf).is_err());
    }
}
