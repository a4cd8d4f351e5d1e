//! INTEGRITY_CHECK: the keyed hash libcudart checks the driver with (HMAC over MD2, here
//! from the public notes cited in the parent module), and its table.

#[allow(unused_imports)]
use super::*;

// ---------------------------------------------------------------------------------------------
// INTEGRITY_CHECK

/// What [`integrity_hash`] mixes in besides the call's own arguments.
#[derive(Clone, Debug, Default)]
pub struct IntegrityInputs {
    /// `cuDriverGetVersion`
    pub driver_version: u32,
    /// `getpid()`
    pub process: u32,
    /// `pthread_self()`, truncated to 32 bits.
    pub thread: u32,
    /// Address of the CUDART_INTERFACE table handed out.
    pub cudart_table: u64,
    /// Address of the INTEGRITY_CHECK table handed out.
    pub integrity_table: u64,
    /// Its slot 1 (the function called).
    pub integrity_fn: u64,
    /// Per device: UUID, PCI domain, bus and device ids.
    pub devices: Vec<([u8; 16], i32, i32, i32)>,
}

/// The keyed hash libcudart checks, for its `version` and `unix_seconds` arguments.
///
/// Versions ending in 0 and 1 get fixed values. Others get HMAC-MD2 (RFC 2104 over RFC 1319,
/// block size 16) with a fixed 16-byte key over, little-endian: u32 driver version, u32 `version`,
/// u32 process id, u32 thread, u64 CUDART_INTERFACE table address, u64 INTEGRITY_CHECK table address,
/// u64 address of its slot-1 function, u64 `unix_seconds`; then per device the 16-byte UUID and the
/// i32 PCI domain, bus and device ids. (Facts from ZLUDA's notes; libcudart 12.9.79 calls it with
/// versions 12090, 12091 and 12092 and rejects a wrong 12092 answer with "integrity checks failed".)
pub fn integrity_hash(version: u32, unix_seconds: u64, inputs: &IntegrityInputs) -> [u64; 2] {
    match version % 10 {
        0 => return [0x3341_181C_03CB_675C, 0x8ED3_83AA_1F4C_D1E8],
        1 => return [0x1841_181C_03CB_675C, 0x8ED3_83AA_1F4C_D1E8],
        _ => {}
    }
    const KEY: [u8; 16] = [
        0x14, 0x6A, 0xDD, 0xAE, 0x53, 0xA9, 0xA7, 0x52, 0xAA, 0x08, 0x41, 0x36, 0x0B, 0xF5, 0x5A,
        0x9F,
    ];
    let mut msg = Vec::with_capacity(48 + 28 * inputs.devices.len());
    for v in [
        inputs.driver_version,
        version,
        inputs.process,
        inputs.thread,
    ] {
        msg.extend_from_slice(&v.to_le_bytes());
    }
    for v in [
        inputs.cudart_table,
        inputs.integrity_table,
        inputs.integrity_fn,
        unix_seconds,
    ] {
        msg.extend_from_slice(&v.to_le_bytes());
    }
    for (uuid, domain, bus, device) in &inputs.devices {
        msg.extend_from_slice(uuid);
        for v in [domain, bus, device] {
            msg.extend_from_slice(&v.to_le_bytes());
        }
    }
    let digest = md2::hmac(&KEY, &msg);
    [
        u64::from_le_bytes(digest[0..8].try_into().expect("8 bytes")),
        u64::from_le_bytes(digest[8..16].try_into().expect("8 bytes")),
    ]
}

/// Gathers [`IntegrityInputs`] through the entry points, as libcudart sees them.
fn integrity_inputs(eps: &DriverEntryPoints) -> Result<IntegrityInputs, CUresult> {
    let check = |r: CUresult| if r == SUCCESS { Ok(()) } else { Err(r) };
    let mut driver_version = 0;
    // SAFETY: all calls: valid out-pointers.
    check(unsafe { (eps.driver_get_version)(&mut driver_version) })?;
    let mut count = 0;
    // SAFETY: as above.
    check(unsafe { (eps.device_get_count)(&mut count) })?;
    let mut devices = Vec::new();
    for dev in 0..count {
        let mut uuid = crate::cuda_h::CUuuid { bytes: [0; 16] };
        // SAFETY: as above.
        check(unsafe { (eps.device_get_uuid)(&mut uuid, dev) })?;
        let uuid = uuid.bytes;
        let mut ids = [0i32; 3];
        for (slot, attr) in
            ids.iter_mut()
                .zip([ATTR_PCI_DOMAIN_ID, ATTR_PCI_BUS_ID, ATTR_PCI_DEVICE_ID])
        {
            // SAFETY: as above.
            check(unsafe { (eps.device_get_attribute)(slot, attr, dev) })?;
        }
        devices.push((uuid, ids[0], ids[1], ids[2]));
    }
    // SAFETY: getpid and pthread_self have no preconditions.
    let (process, thread) = unsafe { (libc::getpid() as u32, libc::pthread_self() as u32) };
    Ok(IntegrityInputs {
        driver_version: driver_version as u32,
        process,
        thread,
        cudart_table: CUDART_INTERFACE_TABLE.as_ptr() as u64,
        integrity_table: INTEGRITY_CHECK_TABLE.as_ptr() as u64,
        integrity_fn: INTEGRITY_CHECK_TABLE.0[1] as u64,
        devices,
    })
}

/// Slot 1: `(unsigned version, unsigned long long unix_seconds, unsigned long long result[2])`.
unsafe extern "C" fn integrity_check(
    version: u32,
    unix_seconds: u64,
    result: *mut [u64; 2],
) -> CUresult {
    guard("INTEGRITY_CHECK[1]", || {
        if result.is_null() {
            return INVALID_VALUE;
        }
        let hash = if version % 10 < 2 {
            integrity_hash(version, unix_seconds, &IntegrityInputs::default())
        } else {
            let Some(eps) = entry_points() else {
                return NOT_SUPPORTED;
            };
            match integrity_inputs(eps) {
                Ok(inputs) => integrity_hash(version, unix_seconds, &inputs),
                Err(e) => return e,
            }
        };
        log!(
            debug,
            "INTEGRITY_CHECK[1]({version}, {unix_seconds}) = {hash:#x?}"
        );
        // SAFETY: checked non-null out-pointer from libcudart.
        unsafe { result.write_unaligned(hash) };
        SUCCESS
    })
}

/// INTEGRITY_CHECK: 3 slots (slot 2 unknown).
pub static INTEGRITY_CHECK_TABLE: Table<3> = Table([
    size_slot(3),
    integrity_check as *const c_void,
    integrity_2 as *const c_void,
]);

unknown_slots!("INTEGRITY_CHECK": integrity_2 = 2);

/// MD2 (RFC 1319) and HMAC-MD2 (RFC 2104 with a 16-byte block).
pub(super) mod md2 {
    /// The RFC 1319 substitution table (a permutation of 0..=255 built from the digits of pi).
    const S: [u8; 256] = [
        41, 46, 67, 201, 162, 216, 124, 1, 61, 54, 84, 161, 236, 240, 6, 19, 98, 167, 5, 243, 192,
        199, 115, 140, 152, 147, 43, 217, 188, 76, 130, 202, 30, 155, 87, 60, 253, 212, 224, 22,
        103, 66, 111, 24, 138, 23, 229, 18, 190, 78, 196, 214, 218, 158, 222, 73, 160, 251, 245,
        142, 187, 47, 238, 122, 169, 104, 121, 145, 21, 178, 7, 63, 148, 194, 16, 137, 11, 34, 95,
        33, 128, 127, 93, 154, 90, 144, 50, 39, 53, 62, 204, 231, 191, 247, 151, 3, 255, 25, 48,
        179, 72, 165, 181, 209, 215, 94, 146, 42, 172, 86, 170, 198, 79, 184, 56, 210, 150, 164,
        125, 182, 118, 252, 107, 226, 156, 116, 4, 241, 69, 157, 112, 89, 100, 113, 135, 32, 134,
        91, 207, 101, 230, 45, 168, 2, 27, 96, 37, 173, 174, 176, 185, 246, 28, 70, 97, 105, 52,
        64, 126, 15, 85, 71, 163, 35, 221, 81, 175, 58, 195, 92, 249, 206, 186, 197, 234, 38, 44,
        83, 13, 110, 133, 40, 132, 9, 211, 223, 205, 244, 65, 129, 77, 82, 106, 220, 55, 200, 108,
        193, 171, 250, 36, 225, 123, 8, 12, 189, 177, 74, 120, 136, 149, 139, 227, 99, 232, 109,
        233, 203, 213, 254, 59, 0, 29, 57, 242, 239, 183, 14, 102, 88, 208, 228, 166, 119, 114,
        248, 235, 117, 75, 10, 49, 68, 80, 180, 143, 237, 31, 26, 219, 153, 141, 51, 159, 17, 131,
        20,
    ];

    #[cfg(test)]
    pub const S_FOR_TESTS: [u8; 256] = S;

    /// Incremental MD2.
    pub struct Md2 {
        x: [u8; 48],
        checksum: [u8; 16],
        block: [u8; 16],
        len: usize,
    }

    impl Md2 {
        pub fn new() -> Md2 {
            Md2 {
                x: [0; 48],
                checksum: [0; 16],
                block: [0; 16],
                len: 0,
            }
        }

        fn compress(&mut self) {
            let block = self.block;
            for (j, &b) in block.iter().enumerate() {
                self.x[16 + j] = b;
                self.x[32 + j] = b ^ self.x[j];
            }
            let mut t = 0u8;
            for round in 0..18u8 {
                for k in 0..48 {
                    self.x[k] ^= S[usize::from(t)];
                    t = self.x[k];
                }
                t = t.wrapping_add(round);
            }
            let mut l = self.checksum[15];
            for (c, &b) in self.checksum.iter_mut().zip(&block) {
                *c ^= S[usize::from(b ^ l)];
                l = *c;
            }
        }

        pub fn update(&mut self, data: &[u8]) {
            for &b in data {
                self.block[self.len] = b;
                self.len += 1;
                if self.len == 16 {
                    self.compress();
                    self.len = 0;
                }
            }
        }

        pub fn finish(mut self) -> [u8; 16] {
            let pad = (16 - self.len) as u8;
            self.update(&vec![pad; usize::from(pad)]);
            let checksum = self.checksum;
            self.update(&checksum);
            let mut out = [0u8; 16];
            out.copy_from_slice(&self.x[..16]);
            out
        }
    }

    /// MD2 of `data`.
    #[cfg(test)]
    pub fn digest(data: &[u8]) -> [u8; 16] {
        let mut h = Md2::new();
        h.update(data);
        h.finish()
    }

    /// HMAC-MD2 with a key of exactly one block.
    pub fn hmac(key: &[u8; 16], msg: &[u8]) -> [u8; 16] {
        let mut inner = Md2::new();
        inner.update(&key.map(|b| b ^ 0x36));
        inner.update(msg);
        let inner = inner.finish();
        let mut outer = Md2::new();
        outer.update(&key.map(|b| b ^ 0x5c));
        outer.update(&inner);
        outer.finish()
    }
}
