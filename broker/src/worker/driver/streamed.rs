//! Streamed copies on the worker's driver: a run of a channel's pieces
//! (`gpushare_client::shm::channel`), all queued at once on the stream, each piece behind a
//! `cuStreamWaitValue32` on the tenant's count and followed by a `cuStreamWriteValue32` of the
//! device's count. The device and the tenant then hand the pieces over through the two words of
//! the (registered, device-mapped) channel with no host thread of the worker in between; a
//! tenant that stops handing pieces over holds this stream until the broker aborts the channel
//! (which releases every wait).

use gpushare_client::shm::channel::{device_waits_for, slot, DEVICE_WORD, PIECE, TENANT_WORD};

use std::sync::Arc;

use gpushare_client::os::Mapping;

use super::{check, DResult, DeviceError, Driver, HostMem, Stream};

/// `CU_STREAM_WAIT_VALUE_GEQ`.
const WAIT_GEQ: u32 = 0;

/// One run of a streamed copy's pieces.
pub struct StreamedRun {
    /// Host to device (else device to host).
    pub htod: bool,
    /// Device address of the run's first byte.
    pub dev: u64,
    /// The whole channel (header and slots) in the worker's mapping.
    pub channel: HostMem,
    /// The channel's device address (its registration's).
    pub channel_dptr: u64,
    /// Index of the run's first piece in the copy.
    pub first: u64,
    /// Bytes of the run.
    pub len: u64,
}

impl Driver {
    /// Whether the driver runs the stream memory operations a streamed copy is made of, on
    /// registered host memory: tried once, with a wait that is already satisfied (a driver may
    /// export `cuStreamWaitValue32` and refuse it, e.g. a GPU without stream memory
    /// operations).
    pub fn has_streamed_copies(self: &Arc<Self>) -> bool {
        match self.try_stream_wait() {
            Ok(()) => true,
            Err(e) => {
                tracing::info!("no streamed copies: {e}");
                false
            }
        }
    }

    fn try_stream_wait(self: &Arc<Self>) -> DResult<()> {
        let wait = self.api.stream_wait_value32.ok_or(DeviceError::Invalid(
            "the driver has no cuStreamWaitValue32",
        ))?;
        let map = Mapping::anonymous(4096)
            .map_err(|_| DeviceError::Invalid("no memory for the stream-wait probe"))?;
        let reg = self.host_register(Arc::new(map), 0, 4096)?;
        let stream = self.stream_create(1, 0);
        let result = stream.and_then(|s| {
            // SAFETY: plain values; the word is the registered page's first (zero), so the wait
            // is satisfied at once.
            let rc = unsafe { wait(s.raw as _, reg.device_ptr(), 0, WAIT_GEQ) };
            check("cuStreamWaitValue32", rc)?;
            self.write_value32(reg.device_ptr(), 1, 0, &s)?;
            self.stream_synchronize(&s)
        });
        let unregistered = self.host_unregister(reg);
        result.and(unregistered)
    }

    /// `cuStreamWaitValue32(stream, addr, value, GEQ)`: `stream`'s later work waits until the
    /// word at device address `addr` reaches `value` (modulo 2³²).
    pub fn stream_wait_value32(&self, stream: &Stream, addr: u64, value: u32) -> DResult<()> {
        let wait = self.api.stream_wait_value32.ok_or(DeviceError::Invalid(
            "the driver has no cuStreamWaitValue32",
        ))?;
        self.bind()?;
        // SAFETY: plain values; `addr` is a word of a registration its owner keeps alive while
        // waits on it may be pending (a streamed copy's channel: its stream keeps the span;
        // a gate's page: the worker's gates, for the worker's life).
        check("cuStreamWaitValue32", unsafe {
            wait(stream.raw as _, addr, value, WAIT_GEQ)
        })
    }

    /// Queues `run` on `stream` (see the module documentation).
    pub fn streamed_copy(&self, run: StreamedRun, stream: &Stream) -> DResult<()> {
        let mut off = 0;
        let mut k = run.first;
        while off < run.len {
            let n = (run.len - off).min(PIECE);
            if let Some(target) = device_waits_for(run.htod, k) {
                self.stream_wait_value32(stream, run.channel_dptr + TENANT_WORD, target)?;
            }
            let piece = run.channel.sub(slot(k), n)?;
            if run.htod {
                self.memcpy_htod_async(run.dev + off, piece, stream)?;
            } else {
                self.memcpy_dtoh_async(piece, run.dev + off, stream)?;
            }
            self.write_value32(run.channel_dptr + DEVICE_WORD, (k + 1) as u32, 0, stream)?;
            off += n;
            k += 1;
        }
        Ok(())
    }
}

impl HostMem {
    /// `[offset, offset + len)` of this span.
    fn sub(&self, offset: u64, len: u64) -> DResult<HostMem> {
        let (Ok(offset), Ok(len)) = (usize::try_from(offset), usize::try_from(len)) else {
            return Err(DeviceError::Invalid("channel slot does not fit"));
        };
        offset
            .checked_add(len)
            .filter(|&end| end <= self.len)
            .ok_or(DeviceError::Invalid("channel slot outside the channel"))?;
        HostMem::new(self.map.clone(), self.offset + offset, len)
            .ok_or(DeviceError::Invalid("channel slot outside its region"))
    }
}
