//! [`Device`]'s asynchronous operations: records on the link's command ring, no reply (their
//! late failures go to their [`Origin`]).

use std::sync::Arc;

use gpushare_client::ring::record::{
    CopyDevice, CopyHost, EventRecord, Launch, Memset, StreamWait, WriteValue,
};
use gpushare_client::ring::Command;

use super::{DResult, Device, Event, FunctionRaw, HostMem, Origin, Stream};

/// Asynchronous operations: ring records, no reply.
impl Device {
    /// `cuLaunchKernel` with the packed parameter bytes.
    #[allow(clippy::too_many_arguments)]
    pub fn launch(
        &self,
        f: FunctionRaw,
        grid: [u32; 3],
        block: [u32; 3],
        shared: u32,
        s: &Stream,
        params: &[u8],
        origin: &Origin,
    ) -> DResult<()> {
        let l = Launch {
            function: f.0,
            stream: s.id,
            grid,
            block,
            shared_mem_bytes: shared,
            params,
        };
        self.link
            .push(&Command::Launch(l), Some(origin), "cuLaunchKernel")
    }

    fn copy_host(
        &self,
        htod: bool,
        device_ptr: u64,
        m: HostMem,
        s: &Stream,
        origin: &Origin,
    ) -> DResult<()> {
        let c = CopyHost {
            stream: s.id,
            device_ptr,
            host_offset: m.offset,
            len: m.len,
            host_region: m.att.id,
            flags: 0,
        };
        let (cmd, call) = if htod {
            (Command::MemcpyHtoD(c), "cuMemcpyHtoDAsync")
        } else {
            (Command::MemcpyDtoH(c), "cuMemcpyDtoHAsync")
        };
        self.link.push(&cmd, Some(origin), call)?;
        s.keep(m);
        Ok(())
    }

    /// Asynchronous host-to-device copy from shared host memory.
    pub fn memcpy_htod_async(
        &self,
        dst: u64,
        src: HostMem,
        s: &Stream,
        origin: &Origin,
    ) -> DResult<()> {
        self.copy_host(true, dst, src, s, origin)
    }

    /// Asynchronous device-to-host copy into shared host memory.
    pub fn memcpy_dtoh_async(
        &self,
        dst: HostMem,
        src: u64,
        s: &Stream,
        origin: &Origin,
    ) -> DResult<()> {
        self.copy_host(false, src, dst, s, origin)
    }

    /// Asynchronous device-to-device copy.
    pub fn memcpy_dtod_async(
        &self,
        dst: u64,
        src: u64,
        len: u64,
        s: &Stream,
        origin: &Origin,
    ) -> DResult<()> {
        let c = CopyDevice {
            stream: s.id,
            dst,
            src,
            len,
        };
        self.link
            .push(&Command::MemcpyDtoD(c), Some(origin), "cuMemcpyDtoDAsync")
    }

    /// Asynchronous memset of `height` rows of `width` elements of `element_size` bytes.
    #[allow(clippy::too_many_arguments)]
    pub fn memset_async(
        &self,
        dst: u64,
        pitch: u64,
        value: u32,
        element_size: u32,
        width: u64,
        height: u64,
        s: &Stream,
        origin: &Origin,
    ) -> DResult<()> {
        let m = Memset {
            stream: s.id,
            dst,
            pitch,
            width,
            height,
            value,
            element_size,
        };
        self.link
            .push(&Command::Memset(m), Some(origin), "cuMemsetAsync")
    }

    /// `cuStreamWriteValue32`.
    pub fn write_value32(
        &self,
        addr: u64,
        value: u32,
        flags: u32,
        s: &Stream,
        origin: &Origin,
    ) -> DResult<()> {
        let w = WriteValue {
            stream: s.id,
            addr,
            value: u64::from(value),
            size: 4,
            flags,
        };
        self.link.push(
            &Command::WriteValue(w),
            Some(origin),
            "cuStreamWriteValue32",
        )
    }

    /// `cuEventRecordWithFlags`.
    pub fn event_record(&self, e: &Event, s: &Stream, flags: u32, origin: &Origin) -> DResult<()> {
        let r = EventRecord {
            event: e.id,
            stream: s.id,
            flags,
            reserved: 0,
        };
        self.link
            .push(&Command::EventRecord(r), Some(origin), "cuEventRecord")
    }

    /// `cuStreamWaitEvent`.
    pub fn stream_wait_event(
        &self,
        s: &Stream,
        e: &Event,
        flags: u32,
        origin: &Origin,
    ) -> DResult<()> {
        let w = StreamWait {
            stream: s.id,
            event: e.id,
            flags,
            reserved: 0,
        };
        self.link.push(
            &Command::StreamWaitEvent(w),
            Some(origin),
            "cuStreamWaitEvent",
        )
    }

    /// Runs `f` on the broker once all earlier work on `s` has completed (a completion marker);
    /// it also releases the host memory the stream's earlier copies kept. If the worker could
    /// not run it (a poisoned context, a dead worker), the stream's failure is set first. With
    /// `gate`, the stream's later work waits until `f` has returned (a tenant's host function).
    pub fn launch_host_fn(
        &self,
        s: &Stream,
        f: Box<dyn FnOnce() + Send>,
        gate: bool,
        origin: &Origin,
    ) -> DResult<()> {
        let kept = s.take_kept();
        self.link
            .marker(s.id, Arc::clone(&s.failed), kept, f, gate, Some(origin))
    }
}
