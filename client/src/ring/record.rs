//! Ring records: fixed-layout `#[repr(C)]` structures behind an 8-byte [`RecordHeader`], and the
//! borrowed [`Command`] view the producer encodes from and the consumer decodes into.
//!
//! A record is `header | fixed part | variable bytes | padding to 8`. `header.len` is the whole
//! record including padding; it must equal `align8(8 + fixed size + variable length)`, so a
//! record's length is fully determined by its kind and its own length field — anything else is a
//! malformed record. All integers are little-endian.
//!
//! Every kind is declared once, in the `record_kinds!` table below ([`table`]): its name and value,
//! the ring that carries it, its `Command` variant, its fixed part, its variable part and what
//! decoding checks. The [`kind`] constants (whose documentation is the table of kinds),
//! [`Command`], its encoding and decoding, and [`KINDS`] are generated from it; `docs/protocol.md`
//! §6 holds [`kind_table`]'s rendering (a unit test compares them). Adding a kind is one
//! `fixed_layout!` struct and one row — then the broker's exhaustive match on [`Command`] asks
//! for its handling.
//!
//! A 64-byte launch record is the 8-byte header, the 48-byte launch header and 8 parameter bytes.

pub mod table;

use crate::fixed_layout;
use table::record_kinds;
pub use table::{kind_table, FixedInfo, KindInfo, VariableInfo};

/// Records start and end on this alignment.
pub const RECORD_ALIGN: usize = 8;
/// Largest kernel parameter block carried inline in a launch record (CUDA's classic limit).
pub const MAX_PARAM_BYTES: usize = 4096;
/// Largest fixed part plus header (buffer size the producer encodes the fixed part into).
pub const FIXED_MAX: usize = 64;

record_kinds! {
    /// Padding: fills the rest of the data area (`len` reaches its end); the consumer skips it.
    PAD = 1, both ring;

    /// Kernel launch.
    LAUNCH = 2, command ring, Launch(Launch<'a>)
        = LaunchHeader { function, stream, grid, block, shared_mem_bytes }
        + params[param_len] <= MAX_PARAM_BYTES else ParamsTooLarge: "kernel parameters";
    /// Asynchronous host-to-device copy.
    MEMCPY_HTOD = 3, command ring, MemcpyHtoD(CopyHost);
    /// Asynchronous device-to-host copy.
    MEMCPY_DTOH = 4, command ring, MemcpyDtoH(CopyHost);
    /// Asynchronous device-to-device copy.
    MEMCPY_DTOD = 5, command ring, MemcpyDtoD(CopyDevice);
    /// Asynchronous memset.
    MEMSET = 6, command ring, Memset(Memset),
        check memset_element_size: "`element_size` ∈ {1, 2, 4}";
    /// Event record.
    EVENT_RECORD = 7, command ring, EventRecord(EventRecord);
    /// Stream wait on an event.
    STREAM_WAIT_EVENT = 8, command ring, StreamWaitEvent(StreamWait);
    /// Host function (callback) enqueued on a stream.
    HOST_FN = 9, command ring, HostFn(HostFn);
    /// The tenant finished running a host function.
    HOST_FN_DONE = 10, command ring, HostFnDone(HostFnDone);
    /// Synchronous call: a request whose reply goes to a reply slot.
    CALL = 11, command ring, Call(Call<'a>)
        = CallHeader { ticket, slot } + payload[payload_len]: "postcard `RequestEnvelope`";
    /// Stream memory operation: a 32-bit write in stream order (`cuStreamWriteValue32`).
    WRITE_VALUE = 12, command ring, WriteValue(WriteValue),
        check write_value_size: "`size` = 4";
    /// A synchronous pageable copy streamed through a channel in staging (`shm::channel`).
    STREAMED_COPY = 13, command ring, StreamedCopy(StreamedCopy),
        check streamed_copy_flags: "`flags` ⊆ `STREAMED_*`, `len` > 0";
    /// A stream reached a host function; the tenant must run it.
    HOST_FN_READY = 32, notify ring, HostFnReady(HostFnReady);
    /// An asynchronous error.
    ASYNC_ERROR = 33, notify ring, AsyncError(AsyncError);
    /// Timed operation done (worker links): device ns, `u64::MAX` failed, `u64::MAX − 1` untimed.
    OP_DONE = 34, notify ring, OpDone(OpDone);
}

/// Errors of record encoding and decoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Fewer bytes than a header.
    #[error("record of {0} bytes is shorter than its header")]
    Short(usize),
    /// `header.len` disagrees with the record's kind and variable length.
    #[error("record length {found} does not match its contents ({expected} expected)")]
    LengthMismatch {
        /// Length in the header (or bytes available).
        found: usize,
        /// Length the contents call for.
        expected: usize,
    },
    /// A kind this build does not know.
    #[error("unknown record kind {0}")]
    UnknownKind(u16),
    /// Kernel parameters larger than [`MAX_PARAM_BYTES`].
    #[error("kernel parameter block of {0} bytes exceeds {MAX_PARAM_BYTES}")]
    ParamsTooLarge(usize),
    /// A memset element size other than 1, 2 or 4, or a write-value size other than 4.
    #[error("element size {0} not allowed for this record")]
    BadElementSize(u32),
    /// A streamed copy with unknown flags or nothing to copy.
    #[error("streamed copy with flags {0:#x} or no bytes")]
    BadStreamedCopy(u32),
    /// The record would exceed the ring's largest record.
    #[error("record of {len} bytes exceeds the largest record ({max})")]
    TooLarge {
        /// Encoded length.
        len: usize,
        /// Limit.
        max: usize,
    },
}

fixed_layout! {
    /// Every record starts with this.
    pub struct RecordHeader {
        /// Whole record length in bytes, a multiple of 8.
        pub len: u32,
        /// One of [`kind`].
        pub kind: u16,
        /// Reserved, 0.
        pub flags: u16,
    }
}

fixed_layout! {
    /// Fixed part of a kernel launch; `param_len` parameter bytes follow.
    pub struct LaunchHeader {
        /// Function handle (from `ModuleGetFunction`).
        pub function: u64,
        /// Stream handle (0 = the tenant's legacy default stream).
        pub stream: u64,
        /// Grid dimensions.
        pub grid: [u32; 3],
        /// Block dimensions.
        pub block: [u32; 3],
        /// Dynamic shared memory bytes.
        pub shared_mem_bytes: u32,
        /// Parameter bytes that follow (laid out per the function's parameter layout).
        pub param_len: u32,
    }
}

/// [`CopyHost::flags`]: the broker frees the staging chunks covering the host span once the
/// copy no longer needs them (only for `host_region` 0, the staging area).
pub const COPY_RELEASE_STAGING: u32 = 1;
/// [`CopyHost::flags`]: the broker ends the stream's batch right after this copy, so the stream's
/// completion slot reaches the copy's sequence number as soon as it is done (a pipelined copy
/// waits for its pieces one at a time).
pub const COPY_MARK: u32 = 2;
/// Every [`CopyHost::flags`] bit a tenant may set.
pub const COPY_FLAGS: u32 = COPY_RELEASE_STAGING | COPY_MARK;

fixed_layout! {
    /// Asynchronous copy between device memory and shared host memory (staging or a registered
    /// host region).
    pub struct CopyHost {
        /// Stream handle.
        pub stream: u64,
        /// Device address (destination of HtoD, source of DtoH).
        pub device_ptr: u64,
        /// Offset in the host region (for region 0: from the start of the staging area).
        pub host_offset: u64,
        /// Bytes to copy.
        pub len: u64,
        /// Host region id (0 = this region's staging area).
        pub host_region: u32,
        /// [`COPY_RELEASE_STAGING`] or 0.
        pub flags: u32,
    }
}

/// [`StreamedCopy::flags`]: host to device (else device to host).
pub const STREAMED_HTOD: u32 = 1;
/// Every [`StreamedCopy::flags`] bit.
pub const STREAMED_FLAGS: u32 = STREAMED_HTOD;

fixed_layout! {
    /// A copy between device memory and pageable host memory, streamed piece by piece through
    /// a channel in staging (`crate::shm::channel`): the tenant and the device hand the pieces
    /// over through the channel's two counters; the broker frees the channel once the copy is
    /// done. To a worker, the same record names a run of the copy's pieces.
    pub struct StreamedCopy {
        /// Stream handle.
        pub stream: u64,
        /// Device address of the copy's first byte (of piece `first_piece`, to a worker).
        pub device_ptr: u64,
        /// Offset of the channel in the host region.
        pub channel: u64,
        /// Bytes (the whole copy; to a worker, its run of pieces).
        pub len: u64,
        /// Index of the record's first piece (0 from a tenant).
        pub first_piece: u64,
        /// Host region id (0 = the staging area, the only one a tenant may name).
        pub host_region: u32,
        /// [`STREAMED_HTOD`] or 0.
        pub flags: u32,
    }
}

fixed_layout! {
    /// Asynchronous device-to-device copy.
    pub struct CopyDevice {
        /// Stream handle.
        pub stream: u64,
        /// Destination device address.
        pub dst: u64,
        /// Source device address.
        pub src: u64,
        /// Bytes to copy.
        pub len: u64,
    }
}

fixed_layout! {
    /// Asynchronous memset (`cuMemsetD8/16/32Async` and the 2D forms; 1D: `height` 1).
    pub struct Memset {
        /// Stream handle.
        pub stream: u64,
        /// Destination device address.
        pub dst: u64,
        /// Row pitch in bytes (ignored when `height` is 1).
        pub pitch: u64,
        /// Elements per row.
        pub width: u64,
        /// Rows.
        pub height: u64,
        /// Value (low `element_size` bytes used).
        pub value: u32,
        /// 1, 2 or 4.
        pub element_size: u32,
    }
}

fixed_layout! {
    /// `cuStreamWriteValue32(stream, addr, value, flags)`.
    pub struct WriteValue {
        /// Stream handle.
        pub stream: u64,
        /// Device address (aligned to `size`).
        pub addr: u64,
        /// Value (low `size` bytes used).
        pub value: u64,
        /// Bytes written: 4.
        pub size: u32,
        /// `CU_STREAM_WRITE_VALUE_*` flags.
        pub flags: u32,
    }
}

fixed_layout! {
    /// `cuEventRecord(event, stream)` / `cuEventRecordWithFlags`.
    pub struct EventRecord {
        /// Event handle.
        pub event: u64,
        /// Stream handle.
        pub stream: u64,
        /// Record flags.
        pub flags: u32,
        /// Reserved, 0.
        pub reserved: u32,
    }
}

fixed_layout! {
    /// `cuStreamWaitEvent(stream, event, flags)`.
    pub struct StreamWait {
        /// Stream that waits.
        pub stream: u64,
        /// Event waited for.
        pub event: u64,
        /// Wait flags.
        pub flags: u32,
        /// Reserved, 0.
        pub reserved: u32,
    }
}

fixed_layout! {
    /// `cuLaunchHostFunc(stream, fn, data)`: the function stays in the tenant; the token names it.
    pub struct HostFn {
        /// Stream handle.
        pub stream: u64,
        /// Tenant-chosen token identifying the callback.
        pub token: u64,
    }
}

fixed_layout! {
    /// The tenant ran the host function with this token; the stream may proceed.
    pub struct HostFnDone {
        /// Token from [`HostFn`].
        pub token: u64,
    }
}

fixed_layout! {
    /// Fixed part of a synchronous call; `payload_len` bytes of postcard request follow.
    pub struct CallHeader {
        /// Ticket the reply slot will carry (the request id).
        pub ticket: u64,
        /// Reply slot index.
        pub slot: u32,
        /// Payload bytes that follow.
        pub payload_len: u32,
    }
}

fixed_layout! {
    /// Notify ring: `stream` reached the host function `token`.
    pub struct HostFnReady {
        /// Stream handle.
        pub stream: u64,
        /// Token from [`HostFn`].
        pub token: u64,
        /// Sequence number of the `HOST_FN` command.
        pub seq: u64,
    }
}

fixed_layout! {
    /// Notify ring: the command with sequence number `seq` failed asynchronously.
    pub struct AsyncError {
        /// Sequence number of the failed command.
        pub seq: u64,
        /// `CUresult` code.
        pub code: u32,
        /// Reserved, 0.
        pub reserved: u32,
    }
}

/// [`OpDone::device_ns`] of an operation that has no device time (it failed, or its events did).
pub const NO_DEVICE_TIME: u64 = u64::MAX;
/// [`OpDone::device_ns`] of an operation that ran but was not timed (its completion was posted
/// by a host function after it: a streamed copy's run, or any operation while the timing
/// threads are far behind): the scheduler keeps charging it what it estimated.
pub const UNMEASURED_DEVICE_TIME: u64 = u64::MAX - 1;

fixed_layout! {
    /// Notify ring of a worker link: the timed operation (a launch, copy or memset) with command
    /// sequence number `seq` completed on the device.
    pub struct OpDone {
        /// Sequence number of the operation's command.
        pub seq: u64,
        /// Its device time in nanoseconds (from events around it), [`NO_DEVICE_TIME`] or
        /// [`UNMEASURED_DEVICE_TIME`].
        pub device_ns: u64,
    }
}

/// A kernel launch with its parameter bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Launch<'a> {
    /// Function handle.
    pub function: u64,
    /// Stream handle.
    pub stream: u64,
    /// Grid dimensions.
    pub grid: [u32; 3],
    /// Block dimensions.
    pub block: [u32; 3],
    /// Dynamic shared memory bytes.
    pub shared_mem_bytes: u32,
    /// Packed parameter bytes (≤ [`MAX_PARAM_BYTES`]).
    pub params: &'a [u8],
}

/// A synchronous call with its encoded request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Call<'a> {
    /// Ticket (request id) the reply slot will carry.
    pub ticket: u64,
    /// Reply slot index.
    pub slot: u32,
    /// Postcard-encoded `RequestEnvelope`.
    pub payload: &'a [u8],
}

/// STREAMED_COPY's check: known flags, something to copy.
fn streamed_copy_flags(c: &StreamedCopy) -> Result<(), RecordError> {
    if c.flags & !STREAMED_FLAGS != 0 || c.len == 0 {
        return Err(RecordError::BadStreamedCopy(c.flags));
    }
    Ok(())
}

/// WRITE_VALUE's check: 32-bit writes only.
fn write_value_size(w: &WriteValue) -> Result<(), RecordError> {
    if w.size == 4 {
        Ok(())
    } else {
        Err(RecordError::BadElementSize(w.size))
    }
}

/// MEMSET's check: the element size is 1, 2 or 4.
fn memset_element_size(m: &Memset) -> Result<(), RecordError> {
    if matches!(m.element_size, 1 | 2 | 4) {
        Ok(())
    } else {
        Err(RecordError::BadElementSize(m.element_size))
    }
}

/// Rounds up to [`RECORD_ALIGN`].
#[inline]
pub const fn align_record(n: usize) -> usize {
    (n + RECORD_ALIGN - 1) & !(RECORD_ALIGN - 1)
}

impl<'a> Command<'a> {
    /// Whole encoded record length (header, fixed part, variable part, padding).
    #[inline]
    pub fn encoded_len(&self) -> usize {
        let fixed = Self::fixed_size(self.kind()).unwrap_or(0);
        align_record(RecordHeader::SIZE + fixed + self.variable().len())
    }

    /// Encodes the header and fixed part into `out`; returns their length. The variable part
    /// ([`Command::variable`]) goes right after, then padding up to [`Command::encoded_len`].
    pub fn encode_fixed(&self, out: &mut [u8; FIXED_MAX]) -> Result<usize, RecordError> {
        let len = self.encoded_len();
        self.check_variable()?;
        let len32 = u32::try_from(len).map_err(|_| RecordError::TooLarge {
            len,
            max: u32::MAX as usize,
        })?;
        RecordHeader {
            len: len32,
            kind: self.kind(),
            flags: 0,
        }
        .write_to(out);
        let var_len = self.variable().len() as u32;
        self.write_fixed(&mut out[RecordHeader::SIZE..], var_len);
        Ok(RecordHeader::SIZE + Self::fixed_size(self.kind()).unwrap_or(0))
    }

    /// Encodes the whole record (with zero padding) into a new vector.
    pub fn to_vec(&self) -> Result<Vec<u8>, RecordError> {
        let mut fixed = [0u8; FIXED_MAX];
        let n = self.encode_fixed(&mut fixed)?;
        let mut v = Vec::with_capacity(self.encoded_len());
        v.extend_from_slice(&fixed[..n]);
        v.extend_from_slice(self.variable());
        v.resize(self.encoded_len(), 0);
        Ok(v)
    }

    /// Decodes one whole record (`bytes.len()` must equal the header's `len`). PAD records are
    /// not commands: the ring skips them before decoding.
    pub fn decode(bytes: &'a [u8]) -> Result<Command<'a>, RecordError> {
        let header = RecordHeader::read_from(bytes).ok_or(RecordError::Short(bytes.len()))?;
        let fixed = Self::fixed_size(header.kind).ok_or(RecordError::UnknownKind(header.kind))?;
        let body = &bytes[RecordHeader::SIZE..];
        let short = || RecordError::LengthMismatch {
            found: bytes.len(),
            expected: align_record(RecordHeader::SIZE + fixed),
        };
        let var_len = Self::variable_len(header.kind, body, &short)?;
        let expected = align_record(RecordHeader::SIZE + fixed + var_len);
        if header.len as usize != expected || bytes.len() != expected {
            return Err(RecordError::LengthMismatch {
                found: (header.len as usize).min(bytes.len()),
                expected,
            });
        }
        // Lengths are checked above, so the fixed part and the variable bytes are all there.
        Self::from_parts(header.kind, body, &body[fixed..fixed + var_len], &short)
    }
}
