//! Recognising module images handed to `cuModuleLoadData*`/`cuLibraryLoadData`/`cuModuleLoad`:
//! fatbin wrapper, fatbin container, ELF cubin, or NUL-terminated PTX text. The result is the PTX
//! text to parse.

use std::ffi::{c_void, CStr};

use super::fatbin;
use crate::error::{CuError, CuResult};

/// Largest fatbin accepted from a bare pointer (a sanity bound against garbage that happens to
/// start with the magic).
const MAX_FATBIN: usize = 1 << 32;

/// What the first bytes of an image say it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Wrapper,
    Fatbin,
    Elf,
    Text,
}

fn kind_of(head: &[u8]) -> Kind {
    let magic = head
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes);
    match magic {
        Some(fatbin::WRAPPER_MAGIC) => Kind::Wrapper,
        Some(fatbin::FATBIN_MAGIC) => Kind::Fatbin,
        _ if head.starts_with(b"\x7fELF") => Kind::Elf,
        _ => Kind::Text,
    }
}

fn no_cubin() -> CuError {
    tracing::warn!("module image is an ELF cubin (SASS); the CPU device runs PTX only");
    CuError::NO_BINARY_FOR_GPU
}

/// Checks that `bytes` (without the NUL) looks like PTX source: UTF-8 without control characters
/// other than whitespace.
fn text(bytes: &[u8]) -> CuResult<String> {
    let s = std::str::from_utf8(bytes).map_err(|_| {
        tracing::warn!("module image is neither a fatbin nor PTX text (not UTF-8)");
        CuError::INVALID_IMAGE
    })?;
    if s.trim().is_empty() || s.chars().any(|c| c.is_control() && !c.is_whitespace()) {
        tracing::warn!("module image is neither a fatbin nor PTX text");
        return Err(CuError::INVALID_IMAGE);
    }
    Ok(s.to_owned())
}

/// [`fatbin::select_ptx`], except that a compressed PTX entry it would pick is decompressed
/// ([`super::decompress`]).
fn select_ptx(bytes: &[u8], sm: u32) -> CuResult<String> {
    super::decompress::select_ptx(bytes, sm).unwrap_or_else(|| fatbin::select_ptx(bytes, sm))
}

/// The PTX text in an image of known length (a file's contents).
pub fn ptx_from_bytes(bytes: &[u8], sm: u32) -> CuResult<String> {
    match kind_of(bytes) {
        Kind::Fatbin => select_ptx(bytes, sm),
        Kind::Elf => Err(no_cubin()),
        Kind::Wrapper => {
            tracing::warn!("a fatbin wrapper is not a file image");
            Err(CuError::INVALID_IMAGE)
        }
        Kind::Text => {
            let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
            text(&bytes[..end])
        }
    }
}

/// Reads up to 4 leading bytes of a C image, stopping after a NUL (so a short string is never
/// over-read).
///
/// # Safety
/// `ptr` must point to a readable image.
unsafe fn head(ptr: *const u8) -> Vec<u8> {
    let mut head = Vec::with_capacity(4);
    for i in 0..4 {
        // SAFETY: the image is readable up to its NUL or its header, whichever comes first.
        let b = unsafe { ptr.add(i).read() };
        head.push(b);
        if b == 0 {
            break;
        }
    }
    head
}

/// The fatbin container at `ptr`, as a slice of its declared length.
///
/// # Safety
/// `ptr` must point to a fatbin container that is readable for its declared size and outlives `'a`.
unsafe fn container<'a>(ptr: *const u8) -> CuResult<&'a [u8]> {
    // SAFETY: a fatbin starts with a 16-byte header.
    let header = unsafe { std::slice::from_raw_parts(ptr, fatbin::HEADER_SIZE) };
    let size = fatbin::container_size(header)
        .filter(|&s| s <= MAX_FATBIN)
        .ok_or_else(|| {
            tracing::warn!("fatbin header is malformed");
            CuError::INVALID_IMAGE
        })?;
    // SAFETY: the caller guarantees the container is readable for its declared size.
    Ok(unsafe { std::slice::from_raw_parts(ptr, size) })
}

/// The PTX text in a C image pointer: wrapper, fatbin, cubin or NUL-terminated PTX.
///
/// # Safety
/// `image` must be NULL or point to a valid image of one of those kinds.
pub unsafe fn ptx_from_ptr(image: *const c_void, sm: u32) -> CuResult<String> {
    if image.is_null() {
        return Err(CuError::INVALID_VALUE);
    }
    let p = image.cast::<u8>();
    // SAFETY: the caller passes a readable image.
    let head = unsafe { head(p) };
    match kind_of(&head) {
        Kind::Wrapper => {
            // SAFETY: a wrapper is 24 bytes: magic, version, fatbin pointer, filename pointer.
            let data = unsafe { p.add(8).cast::<u64>().read_unaligned() } as *const u8;
            if data.is_null() {
                tracing::warn!("fatbin wrapper has a NULL data pointer");
                return Err(CuError::INVALID_IMAGE);
            }
            // SAFETY: the wrapper's data pointer names the fatbin container.
            let head = unsafe { self::head(data) };
            if kind_of(&head) != Kind::Fatbin {
                tracing::warn!("fatbin wrapper does not point at a fatbin");
                return Err(CuError::INVALID_IMAGE);
            }
            // SAFETY: as above; the container outlives this call.
            select_ptx(unsafe { container(data) }?, sm)
        }
        // SAFETY: the image is a fatbin container.
        Kind::Fatbin => select_ptx(unsafe { container(p) }?, sm),
        Kind::Elf => Err(no_cubin()),
        Kind::Text => {
            // SAFETY: not a binary image, so the C API promises NUL-terminated text.
            let s = unsafe { CStr::from_ptr(image.cast()) };
            text(s.to_bytes())
        }
    }
}

/// The SM number of a `.target` such as `sm_90` or `sm_90a` (90 when unparsable).
pub fn sm_number(target: &str) -> u32 {
    let digits: String = target
        .trim()
        .strip_prefix("sm_")
        .unwrap_or_default()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap_or(90)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_every_image_kind() {
        let ptx = ".version 8.0\n.target sm_90\n";
        let mut text = ptx.as_bytes().to_vec();
        text.push(0);
        let fat = fatbin::build_fatbin(ptx.as_bytes());
        let w = fatbin::build_wrapper(fat.as_ptr());
        let elf = b"\x7fELF\x02\x01\x01\0";
        let garbage = [0x01u8, 0x02, 0x03, 0xff, 0xfe, 0x80, 0x7f, 0x10, 0x00];
        let load = |p: *const u8| {
            // SAFETY: every image below is readable, NUL-terminated or complete (the wrapper
            // points at the live `fat`), or NULL.
            unsafe { ptx_from_ptr(p.cast(), 90) }
        };
        assert_eq!(load(text.as_ptr()).unwrap(), ptx);
        assert_eq!(load(fat.as_ptr()).unwrap(), ptx);
        assert_eq!(load(w.as_ptr()).unwrap(), ptx);
        assert_eq!(ptx_from_bytes(&fat, 90).unwrap(), ptx);
        assert_eq!(ptx_from_bytes(ptx.as_bytes(), 90).unwrap(), ptx);
        assert_eq!(load(elf.as_ptr()), Err(CuError::NO_BINARY_FOR_GPU));
        assert_eq!(load(garbage.as_ptr()), Err(CuError::INVALID_IMAGE));
        assert_eq!(load(c"".as_ptr().cast()), Err(CuError::INVALID_IMAGE));
        assert_eq!(load(std::ptr::null()), Err(CuError::INVALID_VALUE));
    }

    #[test]
    fn target_parsing() {
        assert_eq!(sm_number("sm_90"), 90);
        assert_eq!(sm_number("sm_80"), 80);
        assert_eq!(sm_number("sm_90a"), 90);
        assert_eq!(sm_number("nothing"), 90);
    }
}
