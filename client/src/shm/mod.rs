//! The per-tenant shared-memory region and host buffers.
//!
//! The broker creates a tenant's [`Region`] (a sealed memfd: the tenant cannot shrink it under
//! the broker's mapping), writes the header, and sends the descriptor with the handshake's
//! `Welcome`. The tenant maps it and checks the header against the layout it was told. From then
//! on both sides reach every area through the region: the command ring (tenant → broker), the
//! notify ring (broker → tenant), the control words, the stream completion slots, the reply slots
//! and the staging area. The broker never reads layout information back from shared memory after
//! creating it: it keeps its own copy, so a tenant scribbling on the header harms only itself.
//!
//! [`HostBuffer`] is a separate memfd for pinned host memory the application asks for
//! (`cuMemHostAlloc`): the tenant creates and seals it, sends it with `HostRegister`, and the
//! broker maps it with [`HostBuffer::open`], which refuses unsealed files.

pub mod channel;
pub mod layout;
pub mod reply;
pub mod staging;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::os::{self, Mapping, OsError};
use crate::ring::{Consumer, Producer, RingError, RingGeometry};
use crate::wait::{Cancel, SeqWord, WaitError};
pub use layout::{LayoutError, ShmConfig, ShmLayout};
pub use reply::{ReplyError, ReplySlots};
pub use staging::{Staging, StagingError, StagingSpan};

/// Errors of regions and host buffers.
#[derive(Debug, thiserror::Error)]
pub enum ShmError {
    /// Bad layout or header.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// A system call or bounds check failed.
    #[error(transparent)]
    Os(#[from] OsError),
    /// Setting up a ring failed.
    #[error(transparent)]
    Ring(#[from] RingError),
    /// Placing a wait word failed.
    #[error(transparent)]
    Wait(#[from] WaitError),
    /// A ring end was asked for twice (rings are single-producer, single-consumer).
    #[error("the {0} was already taken from this region")]
    AlreadyTaken(&'static str),
    /// A host buffer whose size is not sealed: the peer could shrink it and crash us.
    #[error("host buffer is not a size-sealed memfd")]
    NotSealed,
    /// The file's size differs from what was announced.
    #[error("shared file is {actual} bytes, {expected} expected")]
    SizeMismatch {
        /// Announced size.
        expected: u64,
        /// Actual size.
        actual: u64,
    },
    /// A stream completion slot index outside the table.
    #[error("stream slot {0} does not exist")]
    BadSlot(u32),
}

/// Stream completion slot of the tenant's legacy default stream (stream handle 0). The broker
/// assigns the other slots in `StreamCreate` replies, starting at 1.
pub const LEGACY_STREAM_SLOT: u32 = 0;

/// Values of the session state control word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum SessionState {
    /// The session is live (set by the broker at creation).
    Open = 1,
    /// The tenant said goodbye (or is exiting).
    ClosedByTenant = 2,
    /// The broker closed the session (shutdown, eviction, protocol violation, tenant death).
    ClosedByBroker = 3,
}

const ENDS: [&str; 4] = [
    "command ring producer",
    "command ring consumer",
    "notify ring producer",
    "notify ring consumer",
];

/// A mapped tenant region; see the module documentation.
#[derive(Debug)]
pub struct Region {
    map: Arc<Mapping>,
    layout: ShmLayout,
    taken: [AtomicBool; 4],
    state: SeqWord,
    async_error: SeqWord,
    retired: SeqWord,
    staging_freed: SeqWord,
}

impl Region {
    /// Broker side: creates, sizes, seals and initialises a region for `cfg`. Returns the region
    /// and the descriptor to send to the tenant. `populate` pre-faults every page (do it when
    /// the region will carry bulk copies: first touch is ~1.8 GB/s).
    pub fn create(cfg: &ShmConfig, populate: bool) -> Result<(Region, OwnedFd), ShmError> {
        let layout = ShmLayout::compute(cfg)?;
        let fd = os::memfd_create("gpushare-tenant", layout.total_size, true)?;
        let map = Arc::new(Mapping::map_fd(
            fd.as_fd(),
            layout.total_size as usize,
            populate,
        )?);
        map.write(0, &layout.header_bytes())?;
        let region = Region::from_map(map, layout)?;
        region.state.publish(SessionState::Open as u64);
        Ok((region, fd))
    }

    /// Tenant side: maps the region behind `fd`, which must be exactly `expected.total_size`
    /// bytes and whose header must describe `expected` (the layout from `Welcome`).
    pub fn open(
        fd: BorrowedFd<'_>,
        expected: &ShmLayout,
        populate: bool,
    ) -> Result<Region, ShmError> {
        expected.validate()?;
        let actual = os::fd_size(fd)?;
        if actual != expected.total_size {
            return Err(ShmError::SizeMismatch {
                expected: expected.total_size,
                actual,
            });
        }
        if !os::is_shrink_sealed(fd) {
            return Err(ShmError::NotSealed);
        }
        let map = Arc::new(Mapping::map_fd(fd, actual as usize, populate)?);
        let mut header = [0u8; layout::RegionHeader::SIZE + ShmLayout::SIZE];
        map.read(0, &mut header)?;
        let found = ShmLayout::from_header_bytes(&header)?;
        if found != *expected {
            return Err(LayoutError::HeaderMismatch.into());
        }
        Region::from_map(map, found)
    }

    fn from_map(map: Arc<Mapping>, layout: ShmLayout) -> Result<Region, ShmError> {
        if (map.len() as u64) < layout.total_size {
            return Err(LayoutError::TooSmall {
                expected: layout.total_size,
                actual: map.len() as u64,
            }
            .into());
        }
        let word = |off: u64| SeqWord::at(&map, off as usize);
        Ok(Region {
            state: word(layout::CONTROL_SESSION_STATE)?,
            async_error: word(layout::CONTROL_ASYNC_ERROR)?,
            retired: word(layout::CONTROL_RETIRED)?,
            staging_freed: word(layout::CONTROL_STAGING_FREED)?,
            map,
            layout,
            taken: Default::default(),
        })
    }

    /// The layout.
    pub fn layout(&self) -> &ShmLayout {
        &self.layout
    }

    /// The mapping (for raw addresses: the broker registers areas with the driver).
    pub fn mapping(&self) -> &Arc<Mapping> {
        &self.map
    }

    fn take(&self, end: usize) -> Result<(), ShmError> {
        if self.taken[end].swap(true, Ordering::AcqRel) {
            Err(ShmError::AlreadyTaken(ENDS[end]))
        } else {
            Ok(())
        }
    }

    fn cmd_geometry(&self) -> RingGeometry {
        RingGeometry {
            ctl: self.layout.cmd_ring_ctl as usize,
            data: self.layout.cmd_ring_data as usize,
            capacity: self.layout.cmd_ring_capacity,
        }
    }

    fn notify_geometry(&self) -> RingGeometry {
        RingGeometry {
            ctl: self.layout.notify_ring_ctl as usize,
            data: self.layout.notify_ring_data as usize,
            capacity: self.layout.notify_ring_capacity,
        }
    }

    /// Tenant: the command ring's producer (once per region object). Its waits are cancelled
    /// when the session closes.
    pub fn command_producer(&self) -> Result<Producer, ShmError> {
        self.take(0)?;
        let mut p = Producer::new(Arc::clone(&self.map), self.cmd_geometry())?;
        p.set_wait(Default::default(), self.cancel());
        Ok(p)
    }

    /// Broker: the command ring's consumer (once per region object).
    pub fn command_consumer(&self) -> Result<Consumer, ShmError> {
        self.take(1)?;
        let mut c = Consumer::new(Arc::clone(&self.map), self.cmd_geometry())?;
        c.set_wait(Default::default(), self.cancel());
        Ok(c)
    }

    /// Broker: the notify ring's producer (once per region object).
    pub fn notify_producer(&self) -> Result<Producer, ShmError> {
        self.take(2)?;
        let mut p = Producer::new(Arc::clone(&self.map), self.notify_geometry())?;
        p.set_wait(Default::default(), self.cancel());
        Ok(p)
    }

    /// Tenant: the notify ring's consumer (once per region object).
    pub fn notify_consumer(&self) -> Result<Consumer, ShmError> {
        self.take(3)?;
        let mut c = Consumer::new(Arc::clone(&self.map), self.notify_geometry())?;
        c.set_wait(Default::default(), self.cancel());
        Ok(c)
    }

    /// The session state word (values: [`SessionState`]).
    pub fn session_state(&self) -> SeqWord {
        self.state.clone()
    }

    /// True while the session state is [`SessionState::Open`].
    pub fn is_open(&self) -> bool {
        self.state.load() == SessionState::Open as u64
    }

    /// Marks the session closed and wakes every sleeper on the rings and control words.
    pub fn close(&self, by: SessionState) {
        self.state.publish(by as u64);
        self.state.wake_all();
        for g in [self.cmd_geometry(), self.notify_geometry()] {
            for off in [g.ctl, g.ctl + 64] {
                if let Ok(w) = SeqWord::at(&self.map, off) {
                    w.wake_all();
                }
            }
        }
        self.staging_freed.wake_all();
        self.retired.wake_all();
        // Stream and reply slots: only those with sleepers (a cheap check each).
        let slots = (0..self.layout.stream_slots as u32).filter_map(|i| self.stream_slot(i).ok());
        let replies = self.replies();
        let reply_words = (0..replies.count()).filter_map(|i| replies.done_word(i).ok());
        for w in slots.chain(reply_words) {
            if w.has_waiters() {
                w.wake_all();
            }
        }
    }

    /// A cancellation condition that fires once the session is no longer open.
    pub fn cancel(&self) -> Cancel {
        Cancel::unless(self.state.clone(), SessionState::Open as u64)
    }

    /// First asynchronous (sticky) error code, 0 if none. The broker sets it with
    /// `compare_publish(0, code)`, so later errors do not overwrite the first.
    pub fn async_error(&self) -> SeqWord {
        self.async_error.clone()
    }

    /// Every command with a sequence number at or below this value has completed.
    pub fn retired(&self) -> SeqWord {
        self.retired.clone()
    }

    /// Completion word of stream slot `slot`: the sequence number of the last completed command
    /// on the stream bound to that slot (the broker assigns slots in `StreamCreate` replies).
    pub fn stream_slot(&self, slot: u32) -> Result<SeqWord, ShmError> {
        if u64::from(slot) >= self.layout.stream_slots {
            return Err(ShmError::BadSlot(slot));
        }
        let off = self.layout.stream_slots_offset + u64::from(slot) * layout::LINE;
        Ok(SeqWord::at(&self.map, off as usize)?)
    }

    /// The staging area.
    pub fn staging(&self) -> Staging {
        Staging::new(
            Arc::clone(&self.map),
            self.layout.staging_offset,
            self.layout.chunk_state_offset,
            self.layout.staging_chunk,
            self.layout.staging_chunks as u32,
            self.staging_freed.clone(),
        )
    }

    /// The reply slots.
    pub fn replies(&self) -> ReplySlots {
        ReplySlots::new(
            Arc::clone(&self.map),
            self.layout.reply_offset as usize,
            self.layout.reply_slot_size as usize,
            self.layout.reply_slots as u32,
        )
    }
}

/// A shared host buffer (pinned host memory of the application), mapped on both sides.
#[derive(Debug)]
pub struct HostBuffer {
    map: Arc<Mapping>,
    fd: OwnedFd,
}

impl HostBuffer {
    /// Tenant side: creates a sealed memfd of `len` bytes and maps it.
    pub fn create(len: u64, populate: bool) -> Result<HostBuffer, ShmError> {
        let fd = os::memfd_create("gpushare-host", len, true)?;
        let map = Arc::new(Mapping::map_fd(fd.as_fd(), len as usize, populate)?);
        Ok(HostBuffer { map, fd })
    }

    /// Broker side: maps a buffer received from a tenant, refusing files whose size is not
    /// sealed or differs from `expected_len`.
    pub fn open(fd: OwnedFd, expected_len: u64) -> Result<HostBuffer, ShmError> {
        let actual = os::fd_size(fd.as_fd())?;
        if actual != expected_len || actual == 0 {
            return Err(ShmError::SizeMismatch {
                expected: expected_len,
                actual,
            });
        }
        if !os::is_shrink_sealed(fd.as_fd()) {
            return Err(ShmError::NotSealed);
        }
        let map = Arc::new(Mapping::map_fd(fd.as_fd(), actual as usize, false)?);
        Ok(HostBuffer { map, fd })
    }

    /// The descriptor (to send with `HostRegister`).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The mapping.
    pub fn mapping(&self) -> &Arc<Mapping> {
        &self.map
    }

    /// Size in bytes.
    pub fn len(&self) -> u64 {
        self.map.len() as u64
    }

    /// Always false.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}
