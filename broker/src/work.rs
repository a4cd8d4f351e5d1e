//! Units of device work: what a tenant's asynchronous commands become once their handles are
//! resolved and their memory checked, and what the scheduler orders.
//!
//! An [`Op`] names only broker-side objects (worker handles, [`Stream`]s, [`HostMem`]), so it
//! can be submitted by any thread; it goes to the worker of its stream. Submitting never waits
//! for the device: every variant is a record on the worker's command ring.

use std::sync::Arc;

use gpushare_client::proto::ParamInfo;

use crate::device::{DResult, Event, FunctionRaw, HostMem, Origin, Stream, StreamedCopy};

/// Errors of work submission are [`crate::device::DeviceError`]s; this module defines no others.
pub type WorkResult = DResult<()>;

/// Bytes a memset touches from its start (`pitch`, `width` elements of `element_size` bytes,
/// `height` rows), if the shape is valid.
pub fn memset_extent(pitch: u64, width: u64, height: u64, element_size: u64) -> Option<u64> {
    let row = width.checked_mul(element_size)?;
    match height {
        0 => Some(0),
        1 => Some(row),
        _ if pitch < row => None,
        _ => pitch.checked_mul(height - 1)?.checked_add(row),
    }
}

/// A kernel's block-range variant (`NAME__gs_slice`, see `gpushare_ptx::slice`), found once
/// when the tenant looks the kernel up.
#[derive(Debug)]
pub struct SlicedFunction {
    /// The variant.
    pub function: FunctionRaw,
    /// Its name: the cost model keys slices apart from whole launches (their shapes differ in
    /// waves, not blocks).
    pub name: Arc<str>,
}

/// One asynchronous driver operation.
pub enum Op {
    /// `cuLaunchKernel`.
    Launch {
        /// Kernel.
        function: FunctionRaw,
        /// The kernel's name (the cost model's key).
        kernel: Arc<str>,
        /// Its block-range variant (kernel slicing), if its module has one.
        sliced: Option<Arc<SlicedFunction>>,
        /// Grid.
        grid: [u32; 3],
        /// Block.
        block: [u32; 3],
        /// Dynamic shared memory.
        shared: u32,
        /// Stream.
        stream: Arc<Stream>,
        /// Packed parameter bytes.
        params: Vec<u8>,
        /// Parameter layout (empty: pass `params` through `extra`).
        layout: Arc<[ParamInfo]>,
    },
    /// Host-to-device copy from shared memory.
    CopyHtoD {
        /// Destination.
        dst: u64,
        /// Source.
        src: HostMem,
        /// Stream.
        stream: Arc<Stream>,
        /// Set by an earlier operation of the tenant when the bytes are already in place (an
        /// upload deduplication satisfied by mapping resident copies): the copy is not made.
        skip: Option<Arc<std::sync::atomic::AtomicBool>>,
    },
    /// Device-to-host copy into shared memory.
    CopyDtoH {
        /// Destination.
        dst: HostMem,
        /// Source.
        src: u64,
        /// Stream.
        stream: Arc<Stream>,
    },
    /// A run of a streamed copy's pieces (`STREAMED_COPY`): `len` bytes from piece `first`.
    Streamed {
        /// The copy.
        copy: Arc<StreamedCopy>,
        /// Its first piece.
        first: u64,
        /// Bytes.
        len: u64,
        /// Stream.
        stream: Arc<Stream>,
    },
    /// Device-to-device copy.
    CopyDtoD {
        /// Destination.
        dst: u64,
        /// Source.
        src: u64,
        /// Bytes.
        len: u64,
        /// Stream.
        stream: Arc<Stream>,
    },
    /// Memset (1-D when `height` is 1).
    Memset {
        /// Destination.
        dst: u64,
        /// Row pitch.
        pitch: u64,
        /// Value.
        value: u32,
        /// 1, 2 or 4.
        element_size: u32,
        /// Elements per row.
        width: u64,
        /// Rows.
        height: u64,
        /// Stream.
        stream: Arc<Stream>,
    },
    /// `cuStreamWriteValue32`.
    WriteValue {
        /// Destination (4-byte aligned).
        addr: u64,
        /// Value.
        value: u32,
        /// `CU_STREAM_WRITE_VALUE_*` flags.
        flags: u32,
        /// Stream.
        stream: Arc<Stream>,
    },
    /// `cuEventRecordWithFlags`.
    EventRecord {
        /// Event.
        event: Arc<Event>,
        /// Stream.
        stream: Arc<Stream>,
        /// Flags.
        flags: u32,
    },
    /// `cuStreamWaitEvent`.
    StreamWait {
        /// Waiting stream.
        stream: Arc<Stream>,
        /// Event.
        event: Arc<Event>,
        /// Flags.
        flags: u32,
    },
    /// Orders `waiter` after the work submitted so far to `from` (record `event` on `from`,
    /// make `waiter` wait for it): the per-tenant legacy default stream semantics.
    Join {
        /// Stream that waits.
        waiter: Arc<Stream>,
        /// Stream waited for.
        from: Arc<Stream>,
        /// The join event of `from`.
        event: Arc<Event>,
    },
    /// A host function: runs once the stream's earlier work completed (must not call the
    /// driver). Completion markers and tenant host functions.
    HostFn {
        /// Stream.
        stream: Arc<Stream>,
        /// The function.
        f: Box<dyn FnOnce() + Send>,
        /// The stream waits for `f` to return (a tenant's host function), rather than going on
        /// once `f` is due (a completion marker).
        gate: bool,
    },
    /// Broker work that needs the tenant's device work quiesced (deduplication's remaps: see
    /// `crate::dedup`). The scheduler holds the tenant's later jobs from when it hands this out
    /// until [`crate::scheduler::Scheduler::release`]; the dispatcher runs `run` on a thread
    /// of its own (it may wait for the tenant's earlier work), never on the dispatcher.
    Exclusive {
        /// The work; it waits for the tenant's earlier operations itself.
        run: Box<dyn FnOnce() + Send>,
    },
    /// Nothing (scheduler tests).
    Nop,
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Op {
    /// Short name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Launch { .. } => "launch",
            Op::CopyHtoD { .. } => "memcpy_htod",
            Op::CopyDtoH { .. } => "memcpy_dtoh",
            Op::Streamed { .. } => "streamed_copy",
            Op::CopyDtoD { .. } => "memcpy_dtod",
            Op::Memset { .. } => "memset",
            Op::WriteValue { .. } => "write_value",
            Op::EventRecord { .. } => "event_record",
            Op::StreamWait { .. } => "stream_wait_event",
            Op::Join { .. } => "join",
            Op::HostFn { .. } => "host_fn",
            Op::Exclusive { .. } => "exclusive",
            Op::Nop => "nop",
        }
    }

    /// True for operations a tenant counts as commands (not broker bookkeeping).
    pub fn is_tenant_op(&self) -> bool {
        !matches!(
            self,
            Op::Join { .. } | Op::HostFn { .. } | Op::Exclusive { .. } | Op::Nop
        )
    }

    /// Submits the operation to its stream's worker; a failure the worker finds later goes to
    /// `origin`.
    pub fn execute(self, origin: &Origin) -> WorkResult {
        match self {
            Op::Launch {
                function,
                kernel: _,
                sliced: _,
                grid,
                block,
                shared,
                stream,
                params,
                layout: _,
            } => stream
                .device()
                .launch(function, grid, block, shared, &stream, &params, origin),
            Op::CopyHtoD { .. }
            | Op::CopyDtoH { .. }
            | Op::Streamed { .. }
            | Op::CopyDtoD { .. }
            | Op::Memset { .. } => self.execute_transfer(origin),
            Op::WriteValue {
                addr,
                value,
                flags,
                stream,
            } => stream
                .device()
                .write_value32(addr, value, flags, &stream, origin),
            Op::EventRecord {
                event,
                stream,
                flags,
            } => stream.device().event_record(&event, &stream, flags, origin),
            Op::StreamWait {
                stream,
                event,
                flags,
            } => stream
                .device()
                .stream_wait_event(&stream, &event, flags, origin),
            Op::Join {
                waiter,
                from,
                event,
            } => from
                .device()
                .event_record(&event, &from, 0, origin)
                .and_then(|()| {
                    waiter
                        .device()
                        .stream_wait_event(&waiter, &event, 0, origin)
                }),
            Op::HostFn { stream, f, gate } => {
                stream.device().launch_host_fn(&stream, f, gate, origin)
            }
            Op::Exclusive { run } => {
                // The dispatcher runs these itself (`scheduler::spawn_dispatcher`); run inline
                // only if someone submits one directly.
                run();
                Ok(())
            }
            Op::Nop => Ok(()),
        }
    }

    /// [`Op::execute`] of a copy or memset; an upload deduplication satisfied (its `skip` set)
    /// is not made, and its timing is told it took no time.
    fn execute_transfer(self, origin: &Origin) -> WorkResult {
        match self {
            Op::CopyHtoD {
                skip: Some(skip), ..
            } if skip.load(std::sync::atomic::Ordering::Acquire) => {
                if let Some(t) = &origin.timing {
                    t.sink.completed(t.ticket, None);
                }
                Ok(())
            }
            Op::CopyHtoD {
                dst, src, stream, ..
            } => stream.device().memcpy_htod_async(dst, src, &stream, origin),
            Op::CopyDtoH { dst, src, stream } => {
                stream.device().memcpy_dtoh_async(dst, src, &stream, origin)
            }
            Op::Streamed {
                copy,
                first,
                len,
                stream,
            } => stream
                .device()
                .streamed_copy(&copy, first, len, &stream, origin),
            Op::CopyDtoD {
                dst,
                src,
                len,
                stream,
            } => stream
                .device()
                .memcpy_dtod_async(dst, src, len, &stream, origin),
            Op::Memset {
                dst,
                pitch,
                value,
                element_size,
                width,
                height,
                stream,
            } => stream.device().memset_async(
                dst,
                pitch,
                value,
                element_size,
                width,
                height,
                &stream,
                origin,
            ),
            // `execute` routes only transfers here.
            _ => Ok(()),
        }
    }
}
