//! Compressed fatbin entries: LZ4 (flag `0x2000`) and Zstandard (flag `0x8000`).
//!
//! nvcc compresses fatbin entries (`-Xfatbin -compress-all`, and by default for large images;
//! CUDA 12.8+ can pick Zstd with `--compress-mode`). The entry header is the usual 64 bytes (see
//! [`super::fatbin`]); for a compressed entry (public reverse-engineering notes: ZLUDA's
//! `dark_api::fatbin`, cricket's `fatbin-decompress`, nvopen-tools' format specification):
//!
//! - `8` u64: payload size in the container, the compressed size rounded up to 8 (zero padding
//!   follows the compressed bytes); the next entry starts after it, as for any entry.
//! - `16` u32: the exact compressed size. The compressed bytes start right after the header
//!   (`entry + header_size`) and are followed by padding up to the padded size.
//! - `40` u64 flags: `0x2000` LZ4, `0x8000` Zstd (`0x1000`/`0x4000` are other, unseen codecs).
//! - `56` u64: the size of the decompressed payload (for PTX: the text and its NUL).
//!
//! LZ4 payloads are one raw LZ4 *block* (no frame header; they decompress with
//! `LZ4_decompress_safe`), so the exact compressed size matters: padding would be read as another
//! sequence. Zstd payloads are one standard Zstandard frame; decoding stops at the end of the frame,
//! so padding is ignored.
//!
//! [`select_ptx`] is the hook [`super::image`] calls before the plain PTX selection of
//! [`super::fatbin::select_ptx`]: when the PTX entry that selection would pick is compressed, it
//! picks and decompresses it here (same rule, [`super::fatbin::choose_ptx_arch`], an uncompressed
//! entry winning a tie); otherwise it returns `None` and the plain path runs.

use std::io::Read;

use super::fatbin::{ENTRY_HEADER_SIZE, FLAG_LZ4, FLAG_ZSTD, HEADER_SIZE, KIND_PTX};
use crate::error::{CuError, CuResult};

/// All compression flag bits (zlib-like 0x1000, LZ4, LZ4 variant 0x4000, Zstd).
const COMPRESSION_MASK: u64 = 0x1000 | FLAG_LZ4 | 0x4000 | FLAG_ZSTD;

/// Largest decompressed entry accepted (a bound against corrupt size fields).
pub const MAX_DECOMPRESSED: usize = 1 << 30;

/// A codec of compressed fatbin entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// Raw LZ4 block, flag `0x2000`.
    Lz4,
    /// Zstandard frame, flag `0x8000`.
    Zstd,
}

impl Codec {
    /// The entry flag of this codec.
    pub fn flag(self) -> u64 {
        match self {
            Codec::Lz4 => FLAG_LZ4,
            Codec::Zstd => FLAG_ZSTD,
        }
    }
}

/// One entry with its whole header.
struct RawEntry<'a> {
    header: &'a [u8],
    payload: &'a [u8],
}

impl RawEntry<'_> {
    fn u16_at(&self, off: usize) -> u16 {
        u16::from_le_bytes([self.header[off], self.header[off + 1]])
    }

    fn u32_at(&self, off: usize) -> u32 {
        u32::from_le_bytes(self.header[off..off + 4].try_into().expect("4 bytes"))
    }

    fn u64_at(&self, off: usize) -> u64 {
        u64::from_le_bytes(self.header[off..off + 8].try_into().expect("8 bytes"))
    }

    fn kind(&self) -> u16 {
        self.u16_at(0)
    }

    fn arch(&self) -> u32 {
        self.u32_at(28)
    }

    fn flags(&self) -> u64 {
        self.u64_at(40)
    }

    fn compressed_size(&self) -> usize {
        self.u32_at(16) as usize
    }

    fn uncompressed_size(&self) -> u64 {
        self.u64_at(56)
    }

    fn compressed(&self) -> bool {
        self.flags() & COMPRESSION_MASK != 0
    }
}

/// The entries of a fatbin container, or `None` if it is malformed (the plain parser then reports
/// it).
fn entries(bytes: &[u8]) -> Option<Vec<RawEntry<'_>>> {
    let total = super::fatbin::container_size(bytes)?;
    let bytes = bytes.get(..total)?;
    let hsize = usize::from(u16::from_le_bytes(bytes.get(6..8)?.try_into().ok()?));
    let mut off = hsize.max(HEADER_SIZE);
    let mut out = Vec::new();
    while off + ENTRY_HEADER_SIZE <= total {
        let e = &bytes[off..];
        let header_size = u32::from_le_bytes(e.get(4..8)?.try_into().ok()?) as usize;
        let padded = usize::try_from(u64::from_le_bytes(e.get(8..16)?.try_into().ok()?)).ok()?;
        if header_size < ENTRY_HEADER_SIZE {
            return None;
        }
        let end = header_size
            .checked_add(padded)
            .filter(|&end| end <= e.len())?;
        out.push(RawEntry {
            header: &e[..header_size],
            payload: &e[header_size..end],
        });
        off += end;
    }
    Some(out)
}

/// Decompresses the PTX entry [`super::fatbin::select_ptx`] would pick for `sm`, if that entry is
/// compressed; `None` when it is not (or there is none, or the container is malformed), so the
/// plain selection runs and reports.
pub fn select_ptx(bytes: &[u8], sm: u32) -> Option<CuResult<String>> {
    let entries = entries(bytes)?;
    let ptx = entries.iter().filter(|e| e.kind() == KIND_PTX);
    let arch = super::fatbin::choose_ptx_arch(ptx.clone().map(|e| e.arch()), sm)?;
    let best = ptx
        .filter(|e| e.arch() == arch)
        .max_by_key(|e| !e.compressed())?;
    if !best.compressed() {
        return None;
    }
    super::fatbin::log_newer_ptx(arch, sm);
    Some(decompress_entry(best).and_then(|bytes| {
        let text = bytes.split(|&b| b == 0).next().unwrap_or_default();
        String::from_utf8(text.to_vec()).map_err(|_| {
            tracing::warn!(
                "decompressed fatbin PTX entry for sm_{} is not UTF-8 text",
                best.arch()
            );
            CuError::INVALID_PTX
        })
    }))
}

/// The decompressed payload of a compressed entry.
fn decompress_entry(e: &RawEntry<'_>) -> CuResult<Vec<u8>> {
    let flags = e.flags();
    let codec = match flags & COMPRESSION_MASK {
        FLAG_LZ4 => Codec::Lz4,
        FLAG_ZSTD => Codec::Zstd,
        other => {
            tracing::warn!(
                "fatbin entry for sm_{} uses an unknown compression (flags {flags:#x}, codec bits {other:#x})",
                e.arch()
            );
            return Err(CuError::NOT_SUPPORTED);
        }
    };
    let invalid = |what: String| {
        tracing::warn!(
            "compressed fatbin entry for sm_{} ({codec:?}): {what}",
            e.arch()
        );
        CuError::INVALID_IMAGE
    };
    // The exact compressed size; 0 (never written) means the whole padded payload.
    let compressed = match e.compressed_size() {
        0 => e.payload,
        n => e.payload.get(..n).ok_or_else(|| {
            invalid(format!(
                "compressed size {n} exceeds the payload ({} bytes)",
                e.payload.len()
            ))
        })?,
    };
    let expected = usize::try_from(e.uncompressed_size())
        .ok()
        .filter(|&n| n <= MAX_DECOMPRESSED)
        .ok_or_else(|| {
            invalid(format!(
                "uncompressed size {} is too large",
                e.uncompressed_size()
            ))
        })?;
    let out = match codec {
        Codec::Lz4 => decompress_lz4(compressed, expected),
        Codec::Zstd => decompress_zstd(compressed, expected),
    }
    .map_err(invalid)?;
    if expected != 0 && out.len() != expected {
        return Err(invalid(format!(
            "decompressed to {} bytes, header says {expected}",
            out.len()
        )));
    }
    tracing::debug!(
        "decompressed fatbin entry for sm_{} ({codec:?}): {} -> {} bytes",
        e.arch(),
        compressed.len(),
        out.len()
    );
    Ok(out)
}

/// One raw LZ4 block. `expected` is the decompressed size from the header; when it is 0 the output
/// buffer grows until the block fits (up to [`MAX_DECOMPRESSED`]).
pub fn decompress_lz4(compressed: &[u8], expected: usize) -> Result<Vec<u8>, String> {
    if expected != 0 {
        return lz4_flex::block::decompress(compressed, expected).map_err(|e| e.to_string());
    }
    let mut capacity = compressed.len().saturating_mul(4).max(4096);
    loop {
        let mut out = vec![0u8; capacity];
        match lz4_flex::block::decompress_into(compressed, &mut out) {
            Ok(n) => {
                out.truncate(n);
                return Ok(out);
            }
            Err(e) if capacity < MAX_DECOMPRESSED => {
                tracing::trace!("LZ4 block does not fit {capacity} bytes ({e}); growing");
                capacity = capacity.saturating_mul(2).min(MAX_DECOMPRESSED);
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// One Zstandard frame (bytes after it are ignored). `expected` (0 = unknown) bounds the output.
pub fn decompress_zstd(compressed: &[u8], expected: usize) -> Result<Vec<u8>, String> {
    let mut input = compressed;
    let decoder = ruzstd::decoding::StreamingDecoder::new(&mut input).map_err(|e| e.to_string())?;
    let limit = if expected == 0 {
        MAX_DECOMPRESSED
    } else {
        expected
    };
    let mut out = Vec::with_capacity(expected);
    // One byte past the limit tells "too large" from "exactly the limit".
    decoder
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    if out.len() > limit {
        return Err(format!("decompresses to more than {limit} bytes"));
    }
    Ok(out)
}

/// Compresses `data` as a fatbin entry payload of `codec` would be.
pub fn compress(codec: Codec, data: &[u8]) -> Vec<u8> {
    match codec {
        Codec::Lz4 => lz4_flex::block::compress(data),
        Codec::Zstd => {
            ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
        }
    }
}

/// Builds a fatbin holding `ptx` (its NUL added when missing) as one sm_90 PTX entry compressed
/// with `codec`, laid out as nvcc does (see the module documentation). For tests.
pub fn build_compressed_fatbin(ptx: &[u8], codec: Codec) -> Vec<u8> {
    let mut text = ptx.to_vec();
    if text.last() != Some(&0) {
        text.push(0);
    }
    let packed = compress(codec, &text);
    let padded = packed.len().div_ceil(8) * 8;
    let mut h = [0u8; ENTRY_HEADER_SIZE];
    h[0..2].copy_from_slice(&KIND_PTX.to_le_bytes());
    h[2..4].copy_from_slice(&0x0101u16.to_le_bytes());
    h[4..8].copy_from_slice(&(ENTRY_HEADER_SIZE as u32).to_le_bytes());
    h[8..16].copy_from_slice(&(padded as u64).to_le_bytes());
    h[16..20].copy_from_slice(&(packed.len() as u32).to_le_bytes());
    h[24..26].copy_from_slice(&8u16.to_le_bytes()); // PTX ISA 8.8
    h[26..28].copy_from_slice(&8u16.to_le_bytes());
    h[28..32].copy_from_slice(&90u32.to_le_bytes());
    let flags = super::fatbin::FLAG_64BIT | super::fatbin::FLAG_LINUX | codec.flag();
    h[40..48].copy_from_slice(&flags.to_le_bytes());
    h[56..64].copy_from_slice(&(text.len() as u64).to_le_bytes());
    let body = ENTRY_HEADER_SIZE + padded;
    let mut out = Vec::with_capacity(HEADER_SIZE + body);
    out.extend_from_slice(&super::fatbin::FATBIN_MAGIC.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&(HEADER_SIZE as u16).to_le_bytes());
    out.extend_from_slice(&(body as u64).to_le_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(&packed);
    out.resize(HEADER_SIZE + body, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::fatbin;

    const PTX: &str = ".version 8.0\n.target sm_90\n.address_size 64\n// some text to compress, \
                       some text to compress, some text to compress\n";

    fn corpus(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples/kernels")
            .join(format!("{name}.ptx"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn both_codecs_round_trip_through_select() {
        for codec in [Codec::Lz4, Codec::Zstd] {
            for text in [PTX.to_string(), corpus("sgemm_tiled")] {
                let fat = build_compressed_fatbin(text.as_bytes(), codec);
                assert_eq!(fat.len() % 8, 0);
                // The plain parser walks it (and refuses the compressed payload itself).
                let parsed = fatbin::parse(&fat).unwrap();
                assert_eq!(parsed.len(), 1);
                assert!(parsed[0].compressed());
                assert!(
                    fat.len() < text.len() || text.len() < 200,
                    "{codec:?} did not compress"
                );
                let got = select_ptx(&fat, 90)
                    .expect("compressed entry picked")
                    .unwrap();
                assert_eq!(got, text, "{codec:?}");
            }
        }
    }

    #[test]
    fn uncompressed_entries_are_left_to_the_plain_path() {
        let fat = fatbin::build_fatbin(PTX.as_bytes());
        assert!(select_ptx(&fat, 90).is_none());
        // An uncompressed entry of the same architecture wins over a compressed one.
        let packed = compress(Codec::Zstd, b"zz\0");
        let both = fatbin::build_fatbin_entries(&[
            (KIND_PTX, 90, FLAG_ZSTD, &packed),
            (KIND_PTX, 90, 0, b"plain\0"),
        ]);
        assert!(select_ptx(&both, 90).is_none());
        // A compressed sm_90 entry beats an uncompressed sm_80 one.
        let mut e = build_compressed_fatbin(b"// sm_90", Codec::Lz4)[HEADER_SIZE..].to_vec();
        let old = fatbin::build_fatbin_entries(&[(KIND_PTX, 80, 0, b"// sm_80\0")]);
        e.extend_from_slice(&old[HEADER_SIZE..]);
        let mut fat = Vec::new();
        fat.extend_from_slice(&fatbin::FATBIN_MAGIC.to_le_bytes());
        fat.extend_from_slice(&1u16.to_le_bytes());
        fat.extend_from_slice(&16u16.to_le_bytes());
        fat.extend_from_slice(&(e.len() as u64).to_le_bytes());
        fat.extend_from_slice(&e);
        assert_eq!(fatbin::parse(&fat).unwrap().len(), 2);
        assert_eq!(select_ptx(&fat, 90).unwrap().unwrap(), "// sm_90");
        assert_eq!(select_ptx(&fat, 89), None);
        // Nothing usable, or garbage: the plain path reports.
        assert!(select_ptx(&fat, 70).is_none());
        assert!(select_ptx(b"not a fatbin", 90).is_none());
    }

    #[test]
    fn corrupt_payloads_and_sizes_are_invalid_images() {
        for codec in [Codec::Lz4, Codec::Zstd] {
            let good = build_compressed_fatbin(PTX.as_bytes(), codec);
            // Wrong uncompressed size.
            let mut fat = good.clone();
            fat[HEADER_SIZE + 56] ^= 0x01;
            assert_eq!(
                select_ptx(&fat, 90),
                Some(Err(CuError::INVALID_IMAGE)),
                "{codec:?}"
            );
            // Compressed size beyond the payload.
            let mut fat = good.clone();
            fat[HEADER_SIZE + 16..HEADER_SIZE + 20].copy_from_slice(&100_000u32.to_le_bytes());
            assert_eq!(
                select_ptx(&fat, 90),
                Some(Err(CuError::INVALID_IMAGE)),
                "{codec:?}"
            );
            // Garbage payload.
            let mut fat = good.clone();
            for b in &mut fat[HEADER_SIZE + ENTRY_HEADER_SIZE..HEADER_SIZE + ENTRY_HEADER_SIZE + 8]
            {
                *b = 0xff;
            }
            assert_eq!(
                select_ptx(&fat, 90),
                Some(Err(CuError::INVALID_IMAGE)),
                "{codec:?}"
            );
        }
        // Unknown codec bits.
        let mut fat = build_compressed_fatbin(PTX.as_bytes(), Codec::Lz4);
        let flags = fatbin::FLAG_64BIT | 0x4000;
        fat[HEADER_SIZE + 40..HEADER_SIZE + 48].copy_from_slice(&flags.to_le_bytes());
        assert_eq!(select_ptx(&fat, 90), Some(Err(CuError::NOT_SUPPORTED)));
    }

    #[test]
    fn sizes_left_zero_are_tolerated() {
        // Uncompressed size 0: LZ4 grows its buffer, Zstd reads the frame to its end.
        for codec in [Codec::Lz4, Codec::Zstd] {
            let mut fat = build_compressed_fatbin(corpus("vector_add").as_bytes(), codec);
            fat[HEADER_SIZE + 56..HEADER_SIZE + 64].fill(0);
            assert_eq!(select_ptx(&fat, 90).unwrap().unwrap(), corpus("vector_add"));
        }
        // Compressed size 0 with Zstd: the padding after the frame is ignored.
        let mut fat = build_compressed_fatbin(corpus("vector_add").as_bytes(), Codec::Zstd);
        fat[HEADER_SIZE + 16..HEADER_SIZE + 20].fill(0);
        assert_eq!(select_ptx(&fat, 90).unwrap().unwrap(), corpus("vector_add"));
    }

    /// Runs vector_add (a kernel of `f`) on 1000 elements and checks c = a + b.
    fn run_vector_add(f: crate::sys::CUfunction) {
        use crate::cuda;
        use std::ffi::c_void;
        let n = 1000usize;
        let a: Vec<f32> = (0..n).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..n).map(|i| 3.0 - i as f32).collect();
        let bytes = n * 4;
        let (mut da, mut db, mut dc) = (0u64, 0u64, 0u64);
        let mut c = vec![0f32; n];
        // SAFETY: all calls: valid out-pointers, host buffers of `bytes` bytes, device buffers
        // allocated just before, kernelParams pointing at live values of the kernel's types.
        unsafe {
            for d in [&mut da, &mut db, &mut dc] {
                assert_eq!(cuda::cuMemAlloc_v2(d, bytes), 0);
            }
            assert_eq!(cuda::cuMemcpyHtoD_v2(da, a.as_ptr().cast(), bytes), 0);
            assert_eq!(cuda::cuMemcpyHtoD_v2(db, b.as_ptr().cast(), bytes), 0);
            let mut count = n as i32;
            let mut params: [*mut c_void; 4] = [
                (&mut da as *mut u64).cast(),
                (&mut db as *mut u64).cast(),
                (&mut dc as *mut u64).cast(),
                (&mut count as *mut i32).cast(),
            ];
            let r = cuda::cuLaunchKernel(
                f,
                4,
                1,
                1,
                256,
                1,
                1,
                0,
                std::ptr::null_mut(),
                params.as_mut_ptr(),
                std::ptr::null_mut(),
            );
            assert_eq!(r, 0);
            assert_eq!(cuda::cuMemcpyDtoH_v2(c.as_mut_ptr().cast(), dc, bytes), 0);
            for d in [da, db, dc] {
                assert_eq!(cuda::cuMemFree_v2(d), 0);
            }
        }
        for i in 0..n {
            assert_eq!(c[i], a[i] + b[i], "c[{i}]");
        }
    }

    /// Compresses the corpus vector_add PTX with each codec, wraps it (fatbin, and the nvcc
    /// wrapper around it), loads it with cuModuleLoadData and cuLibraryLoadData, launches it
    /// and checks the results.
    #[test]
    fn compressed_fatbins_load_and_launch() {
        use crate::cuda;
        use crate::sys::{CUcontext, CUfunction, CUkernel, CUlibrary, CUmodule};
        use std::ptr::null_mut as null;
        let mut ctx: CUcontext = null();
        // SAFETY: plain driver calls with valid out-pointers.
        unsafe {
            assert_eq!(cuda::cuInit(0), 0);
            assert_eq!(cuda::cuDevicePrimaryCtxRetain(&mut ctx, 0), 0);
            assert_eq!(cuda::cuCtxSetCurrent(ctx), 0);
        }
        let name = c"vector_add";
        for codec in [Codec::Lz4, Codec::Zstd] {
            let fat = build_compressed_fatbin(corpus("vector_add").as_bytes(), codec);
            let wrapper = fatbin::build_wrapper(fat.as_ptr());
            for image in [fat.as_ptr(), wrapper.as_ptr()] {
                let (mut m, mut f): (CUmodule, CUfunction) = (null(), null());
                // SAFETY: a complete fatbin (or a wrapper pointing at the live one), valid
                // out-pointers, NUL-terminated name.
                unsafe {
                    assert_eq!(cuda::cuModuleLoadData(&mut m, image.cast()), 0, "{codec:?}");
                    assert_eq!(cuda::cuModuleGetFunction(&mut f, m, name.as_ptr()), 0);
                }
                run_vector_add(f);
                // SAFETY: the module loaded above.
                assert_eq!(unsafe { cuda::cuModuleUnload(m) }, 0);
            }
            let (mut lib, mut k): (CUlibrary, CUkernel) = (null(), null());
            // SAFETY: a complete fatbin, valid out-pointers, no options.
            unsafe {
                let r = cuda::cuLibraryLoadData(
                    &mut lib,
                    fat.as_ptr().cast(),
                    null(),
                    null(),
                    0,
                    null(),
                    null(),
                    0,
                );
                assert_eq!(r, 0, "{codec:?}");
                assert_eq!(cuda::cuLibraryGetKernel(&mut k, lib, name.as_ptr()), 0);
            }
            // A CUkernel is accepted where a CUfunction is.
            run_vector_add(k.cast());
            // SAFETY: the library loaded above.
            assert_eq!(unsafe { cuda::cuLibraryUnload(lib) }, 0);
        }
        // SAFETY: balances the retain above.
        unsafe {
            assert_eq!(cuda::cuCtxSetCurrent(null()), 0);
            assert_eq!(cuda::cuDevicePrimaryCtxRelease_v2(0), 0);
        }
    }

    #[test]
    fn decoders_bound_their_output() {
        let data = vec![b'x'; 10_000];
        let lz = compress(Codec::Lz4, &data);
        assert!(decompress_lz4(&lz, 100).is_err());
        assert_eq!(decompress_lz4(&lz, 10_000).unwrap(), data);
        let zs = compress(Codec::Zstd, &data);
        assert!(decompress_zstd(&zs, 100).is_err());
        assert_eq!(decompress_zstd(&zs, 10_000).unwrap(), data);
        assert_eq!(decompress_zstd(&zs, 0).unwrap(), data);
    }
}
