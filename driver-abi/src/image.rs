//! Module images as the C API passes them (`cuModuleLoadData`, `cuLibraryLoadData`): a bare
//! pointer whose length the driver must work out from the contents. [`image_bytes`] finds the
//! extent of a fatbin wrapper's container, a fatbin container, an ELF cubin or NUL-terminated PTX
//! text, so a forwarding driver can copy exactly the image and nothing past it.

use std::ffi::{c_void, CStr};

use crate::error::{CuError, CuResult};

/// Magic of the fatbin wrapper nvcc emits (`__fatBinC_Wrapper_t`).
pub const WRAPPER_MAGIC: u32 = 0x466243B1;
/// Magic of a fatbin container.
pub const FATBIN_MAGIC: u32 = 0xBA55ED50;
/// Size of a fatbin container header: u32 magic, u16 version, u16 header size, u64 body size.
pub const FATBIN_HEADER_SIZE: usize = 16;
/// Largest image accepted from a bare pointer (a sanity bound against garbage that happens to
/// start with a magic number).
pub const MAX_IMAGE: usize = 1 << 32;

/// What an image is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageKind {
    /// A fatbin container (a wrapper resolves to its container).
    Fatbin,
    /// An ELF cubin.
    Elf,
    /// PTX text (the bytes include the terminating NUL).
    Ptx,
}

/// Reads up to 4 leading bytes, stopping after a NUL (a short string is never over-read).
///
/// # Safety
/// `ptr` must point to a readable image.
unsafe fn head(ptr: *const u8) -> [u8; 4] {
    let mut out = [0u8; 4];
    for (i, b) in out.iter_mut().enumerate() {
        // SAFETY: the image is readable up to its NUL or its header, whichever comes first.
        *b = unsafe { ptr.add(i).read() };
        if *b == 0 {
            break;
        }
    }
    out
}

fn bad(msg: &str) -> CuError {
    crate::export::log_quietly(|| tracing::warn!(target: "gpushare::api", "module image: {msg}"));
    CuError::INVALID_IMAGE
}

/// The bytes of the fatbin container at `ptr`.
///
/// # Safety
/// `ptr` must point to a fatbin container readable for its declared size that outlives `'a`.
unsafe fn container<'a>(ptr: *const u8) -> CuResult<&'a [u8]> {
    // SAFETY: a fatbin starts with a 16-byte header.
    let h = unsafe { std::slice::from_raw_parts(ptr, FATBIN_HEADER_SIZE) };
    let header_size = u16::from_le_bytes([h[6], h[7]]) as usize;
    let body = u64::from_le_bytes(h[8..16].try_into().unwrap_or_default()) as usize;
    let size = header_size
        .checked_add(body)
        .filter(|s| (FATBIN_HEADER_SIZE..=MAX_IMAGE).contains(s))
        .ok_or_else(|| bad("fatbin header is malformed"))?;
    // SAFETY: the caller guarantees the container is readable for its declared size.
    Ok(unsafe { std::slice::from_raw_parts(ptr, size) })
}

/// The bytes of the ELF64 image at `ptr`: up to the end of its section or program headers,
/// whichever is last (a cubin keeps its section header table at the end).
///
/// # Safety
/// `ptr` must point to an ELF image readable for that extent that outlives `'a`.
unsafe fn elf<'a>(ptr: *const u8) -> CuResult<&'a [u8]> {
    // SAFETY: an ELF64 header is 64 bytes.
    let h = unsafe { std::slice::from_raw_parts(ptr, 64) };
    if h[4] != 2 {
        return Err(bad("32-bit ELF image"));
    }
    let u64_at = |o: usize| u64::from_le_bytes(h[o..o + 8].try_into().unwrap_or_default());
    let u16_at = |o: usize| u16::from_le_bytes([h[o], h[o + 1]]) as u64;
    let (phoff, shoff) = (u64_at(32), u64_at(40));
    let (phentsize, phnum, shentsize, shnum) = (u16_at(54), u16_at(56), u16_at(58), u16_at(60));
    let end = (phoff + phentsize * phnum)
        .max(shoff + shentsize * shnum)
        .max(64) as usize;
    if end > MAX_IMAGE {
        return Err(bad("ELF headers out of range"));
    }
    // SAFETY: the caller guarantees the image is readable up to its last header.
    Ok(unsafe { std::slice::from_raw_parts(ptr, end) })
}

/// The image at `image` as a byte slice of its own extent, and its kind. A fatbin wrapper
/// resolves to the container it points at.
///
/// # Safety
/// `image` must be NULL or point to a valid image of one of those kinds that outlives `'a`.
pub unsafe fn image_bytes<'a>(image: *const c_void) -> CuResult<(ImageKind, &'a [u8])> {
    if image.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    let p = image.cast::<u8>();
    // SAFETY: the caller passes a readable image.
    let h = unsafe { head(p) };
    match u32::from_le_bytes(h) {
        WRAPPER_MAGIC => {
            // SAFETY: a wrapper is 24 bytes: magic, version, fatbin pointer, filename pointer.
            let data = unsafe { p.add(8).cast::<u64>().read_unaligned() } as usize as *const u8;
            if data.is_null() {
                return Err(bad("fatbin wrapper has a NULL data pointer"));
            }
            // SAFETY: the wrapper's data pointer names the container.
            if u32::from_le_bytes(unsafe { head(data) }) != FATBIN_MAGIC {
                return Err(bad("fatbin wrapper does not point at a fatbin"));
            }
            // SAFETY: as above; the container outlives the wrapper's use.
            Ok((ImageKind::Fatbin, unsafe { container(data) }?))
        }
        // SAFETY: the image is a fatbin container.
        FATBIN_MAGIC => Ok((ImageKind::Fatbin, unsafe { container(p) }?)),
        // SAFETY: the image is an ELF file.
        _ if h == *b"\x7fELF" => Ok((ImageKind::Elf, unsafe { elf(p) }?)),
        _ => {
            // SAFETY: not a binary image, so the C API promises NUL-terminated text.
            let s = unsafe { CStr::from_ptr(image.cast()) };
            Ok((ImageKind::Ptx, s.to_bytes_with_nul()))
        }
    }
}

/// The kind of an image read from a file (`cuModuleLoad`); a wrapper is not a file image.
pub fn file_kind(bytes: &[u8]) -> CuResult<ImageKind> {
    let magic = bytes
        .get(..4)
        .map(|b| u32::from_le_bytes(b.try_into().unwrap_or_default()));
    match magic {
        Some(FATBIN_MAGIC) => Ok(ImageKind::Fatbin),
        Some(WRAPPER_MAGIC) => Err(bad("a fatbin wrapper is not a file image")),
        _ if bytes.starts_with(b"\x7fELF") => Ok(ImageKind::Elf),
        _ => Ok(ImageKind::Ptx),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ptx_text_includes_its_nul() {
        let text = b".version 8.0\n.target sm_90\0garbage";
        // SAFETY: NUL-terminated bytes that outlive the call.
        let (kind, bytes) = unsafe { image_bytes(text.as_ptr().cast()) }.unwrap();
        assert_eq!(kind, ImageKind::Ptx);
        assert_eq!(bytes, b".version 8.0\n.target sm_90\0");
    }

    #[test]
    fn fatbin_and_wrapper_resolve_to_the_container() {
        let mut fat = Vec::new();
        fat.extend_from_slice(&FATBIN_MAGIC.to_le_bytes());
        fat.extend_from_slice(&1u16.to_le_bytes());
        fat.extend_from_slice(&16u16.to_le_bytes());
        fat.extend_from_slice(&8u64.to_le_bytes());
        fat.extend_from_slice(&[7u8; 8]);
        fat.extend_from_slice(&[9u8; 32]); // past the container: must not be included
                                           // SAFETY: a complete container.
        let (kind, bytes) = unsafe { image_bytes(fat.as_ptr().cast()) }.unwrap();
        assert_eq!((kind, bytes.len()), (ImageKind::Fatbin, 24));
        let mut wrapper = Vec::new();
        wrapper.extend_from_slice(&WRAPPER_MAGIC.to_le_bytes());
        wrapper.extend_from_slice(&1u32.to_le_bytes());
        wrapper.extend_from_slice(&(fat.as_ptr() as u64).to_le_bytes());
        wrapper.extend_from_slice(&0u64.to_le_bytes());
        // SAFETY: a wrapper pointing at the container above.
        let (kind, bytes) = unsafe { image_bytes(wrapper.as_ptr().cast()) }.unwrap();
        assert_eq!(
            (kind, bytes.as_ptr(), bytes.len()),
            (ImageKind::Fatbin, fat.as_ptr(), 24)
        );
    }

    #[test]
    fn null_and_malformed_images_are_errors() {
        // SAFETY: NULL is handled before any read.
        let null = unsafe { image_bytes(std::ptr::null()) };
        assert_eq!(null.unwrap_err(), CuError::INVALID_VALUE);
        let mut fat = Vec::new();
        fat.extend_from_slice(&FATBIN_MAGIC.to_le_bytes());
        fat.extend_from_slice(&[1, 0, 0, 0]); // header size 0
        fat.extend_from_slice(&u64::MAX.to_le_bytes());
        // SAFETY: 16 readable bytes; the size is rejected before the body is touched.
        let bad = unsafe { image_bytes(fat.as_ptr().cast()) };
        assert_eq!(bad.unwrap_err(), CuError::INVALID_IMAGE);
        assert_eq!(
            file_kind(&WRAPPER_MAGIC.to_le_bytes()).unwrap_err(),
            CuError::INVALID_IMAGE
        );
    }
}
