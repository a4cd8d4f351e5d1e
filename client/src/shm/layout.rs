//! The layout of a tenant's shared-memory region: configuration, computed offsets, the header.
//!
//! ```text
//! offset                       size                      contents
//! 0                            4096                      header page:
//!   0                            16 + 136                  RegionHeader + ShmLayout (immutable)
//!   1024                         4 × 64                    control words (SeqWords, one per line):
//!                                                          session state, async error,
//!                                                          staging freed, retired
//!   2048                         128                       command ring control (head, tail)
//!   2304                         128                       notify ring control (head, tail)
//! stream_slots_offset          stream_slots × 64         completion SeqWord per stream slot
//! reply_offset                 reply_slots × (64 + size) reply slots (header line + payload)
//! chunk_state_offset           staging_chunks × 4        staging chunk owner words
//! cmd_ring_data                cmd_ring_capacity         command ring bytes (tenant → broker)
//! notify_ring_data             notify_ring_capacity      notify ring bytes (broker → tenant)
//! staging_offset               chunks × chunk            bulk staging area
//! ```
//!
//! Every area starts on a page. A layout is valid exactly when recomputing it from its own
//! configuration fields gives the same offsets ([`ShmLayout::validate`]), so a peer cannot hand us
//! overlapping or out-of-range areas.

use serde::{Deserialize, Serialize};

use crate::ring::MAX_RECORD;

/// Magic number at offset 0 of a region: `"GPUSHMEM"` little-endian.
pub const SHM_MAGIC: u64 = u64::from_le_bytes(*b"GPUSHMEM");
/// Version of this layout; bumped whenever any offset or record format in shared memory changes.
pub const SHM_LAYOUT_VERSION: u32 = 1;
/// Page size all areas are aligned to.
pub const PAGE: u64 = 4096;
/// Size of the header page.
pub const HEADER_SIZE: u64 = PAGE;
/// Spacing of shared words that different sides write (one cache line each, no false sharing).
pub const LINE: u64 = 64;

/// Offset of the control words (in the header page).
pub const CONTROL_OFFSET: u64 = 1024;
/// Control word: session state (a SeqWord; values in [`crate::shm::SessionState`]).
pub const CONTROL_SESSION_STATE: u64 = CONTROL_OFFSET;
/// Control word: first asynchronous (sticky) error code of the tenant, 0 if none.
pub const CONTROL_ASYNC_ERROR: u64 = CONTROL_OFFSET + LINE;
/// Control word: counter bumped whenever staging chunks are freed.
pub const CONTROL_STAGING_FREED: u64 = CONTROL_OFFSET + 2 * LINE;
/// Control word: every command with a sequence number at or below this value has completed.
pub const CONTROL_RETIRED: u64 = CONTROL_OFFSET + 3 * LINE;
/// Command ring control block (head SeqWord at +0, tail SeqWord at +64).
pub const CMD_RING_CTL: u64 = 2048;
/// Notify ring control block.
pub const NOTIFY_RING_CTL: u64 = 2304;

/// Errors of layout computation and validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// A configuration field is out of its allowed range.
    #[error("invalid shared-memory configuration: {field} = {value} ({rule})")]
    InvalidConfig {
        /// The field.
        field: &'static str,
        /// Its value.
        value: u64,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// A layout whose offsets differ from those its configuration gives.
    #[error("inconsistent shared-memory layout (offsets do not match the configuration)")]
    Inconsistent,
    /// Wrong magic number in the header.
    #[error("bad shared-memory magic {0:#x}")]
    BadMagic(u64),
    /// Layout version this build does not speak.
    #[error("shared-memory layout version {found} (this build speaks {SHM_LAYOUT_VERSION})")]
    Version {
        /// Version found in the header.
        found: u32,
    },
    /// The header does not describe the same layout as the handshake.
    #[error("shared-memory header disagrees with the handshake layout")]
    HeaderMismatch,
    /// The region is smaller than its layout.
    #[error("region of {actual} bytes is smaller than its layout ({expected} bytes)")]
    TooSmall {
        /// Layout size.
        expected: u64,
        /// Actual size.
        actual: u64,
    },
}

/// Sizes of a region's areas, chosen by the broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShmConfig {
    /// Command ring bytes (power of two, 64 KiB ..= 1 GiB).
    pub cmd_ring_capacity: u64,
    /// Notify ring bytes (power of two, 64 KiB ..= 1 GiB).
    pub notify_ring_capacity: u64,
    /// Stream completion slots (1 ..= 65536).
    pub stream_slots: u32,
    /// Reply slots, i.e. synchronous calls in flight at once (1 ..= 4096).
    pub reply_slots: u32,
    /// Payload bytes per reply slot (multiple of 64, 1 KiB ..= 1 MiB).
    pub reply_slot_size: u32,
    /// Staging chunk bytes (power of two, 4 KiB ..= 64 MiB).
    pub staging_chunk: u64,
    /// Staging chunks (1 ..= 65536).
    pub staging_chunks: u32,
}

impl Default for ShmConfig {
    /// 1 MiB command ring, 64 KiB notify ring, 256 stream slots, 32 reply slots of 16 KiB, and
    /// 64 MiB of staging in 256 KiB chunks (about 66 MiB in all, sparse until touched).
    fn default() -> Self {
        ShmConfig {
            cmd_ring_capacity: 1 << 20,
            notify_ring_capacity: 64 << 10,
            stream_slots: 256,
            reply_slots: 32,
            reply_slot_size: 16 << 10,
            staging_chunk: 256 << 10,
            staging_chunks: 256,
        }
    }
}

crate::fixed_layout! {
    /// Offsets and sizes of every area of a region (all in bytes from the region start). Stored
    /// in the header right after [`RegionHeader`] and sent in the handshake's `Welcome`.
    #[derive(Serialize, Deserialize)]
    pub struct ShmLayout {
        /// Size of the whole region.
        pub total_size: u64,
        /// Command ring control block.
        pub cmd_ring_ctl: u64,
        /// Command ring data.
        pub cmd_ring_data: u64,
        /// Command ring capacity.
        pub cmd_ring_capacity: u64,
        /// Notify ring control block.
        pub notify_ring_ctl: u64,
        /// Notify ring data.
        pub notify_ring_data: u64,
        /// Notify ring capacity.
        pub notify_ring_capacity: u64,
        /// Stream completion slot table.
        pub stream_slots_offset: u64,
        /// Number of stream completion slots.
        pub stream_slots: u64,
        /// Reply slot table.
        pub reply_offset: u64,
        /// Number of reply slots.
        pub reply_slots: u64,
        /// Payload bytes per reply slot.
        pub reply_slot_size: u64,
        /// Staging chunk owner words.
        pub chunk_state_offset: u64,
        /// Staging area.
        pub staging_offset: u64,
        /// Bytes per staging chunk.
        pub staging_chunk: u64,
        /// Number of staging chunks.
        pub staging_chunks: u64,
    }
}

crate::fixed_layout! {
    /// The first bytes of a region; followed by the [`ShmLayout`] at offset 16.
    pub struct RegionHeader {
        /// [`SHM_MAGIC`].
        pub magic: u64,
        /// [`SHM_LAYOUT_VERSION`].
        pub layout_version: u32,
        /// [`HEADER_SIZE`].
        pub header_size: u32,
    }
}

/// Offset of the [`ShmLayout`] copy in the header.
pub const LAYOUT_IN_HEADER: u64 = RegionHeader::SIZE as u64;

fn page_up(x: u64) -> u64 {
    x.div_ceil(PAGE) * PAGE
}

fn check(field: &'static str, value: u64, ok: bool, rule: &'static str) -> Result<(), LayoutError> {
    if ok {
        Ok(())
    } else {
        Err(LayoutError::InvalidConfig { field, value, rule })
    }
}

fn check_ring(field: &'static str, cap: u64) -> Result<(), LayoutError> {
    check(
        field,
        cap,
        cap.is_power_of_two() && cap >= 4 * MAX_RECORD as u64 && cap <= 1 << 30,
        "power of two, 64 KiB ..= 1 GiB",
    )
}

impl ShmConfig {
    /// Checks every field against its documented range.
    pub fn validate(&self) -> Result<(), LayoutError> {
        check_ring("cmd_ring_capacity", self.cmd_ring_capacity)?;
        check_ring("notify_ring_capacity", self.notify_ring_capacity)?;
        let s = u64::from(self.stream_slots);
        check("stream_slots", s, (1..=65536).contains(&s), "1 ..= 65536")?;
        let r = u64::from(self.reply_slots);
        check("reply_slots", r, (1..=4096).contains(&r), "1 ..= 4096")?;
        let rs = u64::from(self.reply_slot_size);
        check(
            "reply_slot_size",
            rs,
            rs % LINE == 0 && (1024..=1 << 20).contains(&rs),
            "multiple of 64, 1 KiB ..= 1 MiB",
        )?;
        let c = self.staging_chunk;
        check(
            "staging_chunk",
            c,
            c.is_power_of_two() && (PAGE..=64 << 20).contains(&c),
            "power of two, 4 KiB ..= 64 MiB",
        )?;
        let n = u64::from(self.staging_chunks);
        check("staging_chunks", n, (1..=65536).contains(&n), "1 ..= 65536")?;
        Ok(())
    }
}

impl ShmLayout {
    /// Computes the layout for `cfg` (validated first).
    pub fn compute(cfg: &ShmConfig) -> Result<ShmLayout, LayoutError> {
        cfg.validate()?;
        let stream_slots_offset = HEADER_SIZE;
        let reply_offset = page_up(stream_slots_offset + u64::from(cfg.stream_slots) * LINE);
        let reply_stride = LINE + u64::from(cfg.reply_slot_size);
        let chunk_state_offset = page_up(reply_offset + u64::from(cfg.reply_slots) * reply_stride);
        let cmd_ring_data = page_up(chunk_state_offset + u64::from(cfg.staging_chunks) * 4);
        let notify_ring_data = cmd_ring_data + cfg.cmd_ring_capacity;
        let staging_offset = notify_ring_data + cfg.notify_ring_capacity;
        let total_size = staging_offset + cfg.staging_chunk * u64::from(cfg.staging_chunks);
        Ok(ShmLayout {
            total_size,
            cmd_ring_ctl: CMD_RING_CTL,
            cmd_ring_data,
            cmd_ring_capacity: cfg.cmd_ring_capacity,
            notify_ring_ctl: NOTIFY_RING_CTL,
            notify_ring_data,
            notify_ring_capacity: cfg.notify_ring_capacity,
            stream_slots_offset,
            stream_slots: u64::from(cfg.stream_slots),
            reply_offset,
            reply_slots: u64::from(cfg.reply_slots),
            reply_slot_size: u64::from(cfg.reply_slot_size),
            chunk_state_offset,
            staging_offset,
            staging_chunk: cfg.staging_chunk,
            staging_chunks: u64::from(cfg.staging_chunks),
        })
    }

    /// The configuration this layout claims to follow (fields that do not fit give an invalid
    /// configuration, which [`ShmConfig::validate`] then rejects).
    pub fn config(&self) -> ShmConfig {
        let narrow = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        ShmConfig {
            cmd_ring_capacity: self.cmd_ring_capacity,
            notify_ring_capacity: self.notify_ring_capacity,
            stream_slots: narrow(self.stream_slots),
            reply_slots: narrow(self.reply_slots),
            reply_slot_size: narrow(self.reply_slot_size),
            staging_chunk: self.staging_chunk,
            staging_chunks: narrow(self.staging_chunks),
        }
    }

    /// Checks that the layout is exactly what its configuration computes to.
    pub fn validate(&self) -> Result<(), LayoutError> {
        if ShmLayout::compute(&self.config())? == *self {
            Ok(())
        } else {
            Err(LayoutError::Inconsistent)
        }
    }

    /// Size of the staging area in bytes.
    pub fn staging_size(&self) -> u64 {
        self.staging_chunk * self.staging_chunks
    }

    /// Distance between two reply slots.
    pub fn reply_stride(&self) -> u64 {
        LINE + self.reply_slot_size
    }

    /// Encodes the header page prefix (header + layout).
    pub fn header_bytes(&self) -> [u8; RegionHeader::SIZE + ShmLayout::SIZE] {
        let mut out = [0u8; RegionHeader::SIZE + ShmLayout::SIZE];
        let header = RegionHeader {
            magic: SHM_MAGIC,
            layout_version: SHM_LAYOUT_VERSION,
            header_size: HEADER_SIZE as u32,
        };
        let (h, l) = out.split_at_mut(RegionHeader::SIZE);
        header.write_to(h);
        self.write_to(l);
        out
    }

    /// Decodes and checks a header page prefix: magic, version, layout consistency.
    pub fn from_header_bytes(bytes: &[u8]) -> Result<ShmLayout, LayoutError> {
        let header = RegionHeader::read_from(bytes).ok_or(LayoutError::BadMagic(0))?;
        if header.magic != SHM_MAGIC {
            return Err(LayoutError::BadMagic(header.magic));
        }
        if header.layout_version != SHM_LAYOUT_VERSION
            || u64::from(header.header_size) != HEADER_SIZE
        {
            return Err(LayoutError::Version {
                found: header.layout_version,
            });
        }
        let layout = bytes
            .get(RegionHeader::SIZE..)
            .and_then(ShmLayout::read_from)
            .ok_or(LayoutError::Inconsistent)?;
        layout.validate()?;
        Ok(layout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_layout_is_valid_and_page_aligned() {
        let l = ShmLayout::compute(&ShmConfig::default()).unwrap();
        l.validate().unwrap();
        for off in [
            l.stream_slots_offset,
            l.reply_offset,
            l.chunk_state_offset,
            l.cmd_ring_data,
            l.notify_ring_data,
            l.staging_offset,
            l.total_size,
        ] {
            assert_eq!(off % PAGE, 0, "{off:#x}");
        }
        assert_eq!(l.staging_size(), 64 << 20);
        assert!(l.total_size < 70 << 20);
        let bytes = l.header_bytes();
        assert_eq!(ShmLayout::from_header_bytes(&bytes).unwrap(), l);
        assert_eq!(ShmLayout::SIZE, 16 * 8);
        assert!(RegionHeader::SIZE + ShmLayout::SIZE <= CONTROL_OFFSET as usize);
    }

    #[test]
    fn bad_configs_and_tampered_layouts_are_rejected() {
        let bad = ShmConfig {
            cmd_ring_capacity: 3 << 20,
            ..ShmConfig::default()
        };
        assert!(matches!(
            ShmLayout::compute(&bad),
            Err(LayoutError::InvalidConfig {
                field: "cmd_ring_capacity",
                ..
            })
        ));
        let mut l = ShmLayout::compute(&ShmConfig::default()).unwrap();
        l.staging_offset += PAGE;
        assert_eq!(l.validate(), Err(LayoutError::Inconsistent));
        let mut l = ShmLayout::compute(&ShmConfig::default()).unwrap();
        l.stream_slots = u64::MAX;
        assert!(l.validate().is_err());
        let mut bytes = ShmLayout::compute(&ShmConfig::default())
            .unwrap()
            .header_bytes();
        bytes[0] ^= 1;
        assert!(matches!(
            ShmLayout::from_header_bytes(&bytes),
            Err(LayoutError::BadMagic(_))
        ));
    }
}
