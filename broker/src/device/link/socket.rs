//! The link's control socket: requests that carry file descriptors (SCM_RIGHTS), answered in
//! order — attaching a tenant's region or host buffer, and exporting and importing a
//! deduplicated granule between workers (docs/dedup.md, "Across isolation groups").

use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::atomic::Ordering;

use gpushare_client::code;
use gpushare_client::frame;
use gpushare_client::proto as wire;

use super::super::{lock, DResult, DeviceError};
use super::Link;
use crate::worker::proto::{FromWorker, ToWorker};

impl Link {
    /// Attaches a region or host buffer (its memfd) to the worker; returns its id and, for a
    /// registration, its device address.
    pub(in crate::device) fn attach(
        &self,
        fd: BorrowedFd<'_>,
        len: u64,
        register: bool,
    ) -> DResult<(u32, Option<u64>)> {
        if !self.is_alive() {
            return Err(self.dead_error("attach"));
        }
        let id = self.next_region.fetch_add(1, Ordering::Relaxed);
        let msg = ToWorker::Attach { id, len, register };
        match self.socket_request(&msg, &[fd])? {
            FromWorker::Attached { device_ptr } => Ok((id, device_ptr)),
            FromWorker::Error { code } => Err(DeviceError::Cuda {
                call: "cuMemHostRegister",
                code,
            }),
            _ => Err(DeviceError::Invalid("unexpected worker answer")),
        }
    }

    /// Detaches a region (best effort: a dead worker has nothing to detach).
    pub(in crate::device) fn detach(&self, id: u32) {
        if self.is_alive() {
            if let Err(e) = self.socket_request(&ToWorker::Detach { id }, &[]) {
                tracing::debug!(group = %self.group, "detaching region {id}: {e}");
            }
        }
    }

    /// A POSIX file descriptor of the worker's physical granule `handle`.
    pub(in crate::device) fn export_granule(&self, handle: u64) -> DResult<OwnedFd> {
        if !self.is_alive() {
            return Err(self.dead_error("cuMemExportToShareableHandle"));
        }
        let call = "cuMemExportToShareableHandle";
        match self.socket_exchange(&ToWorker::ExportGranule { handle }, &[])? {
            (FromWorker::Exported, mut fds) if fds.len() == 1 => Ok(fds.remove(0)),
            (FromWorker::Error { code }, _) => Err(DeviceError::Cuda { call, code }),
            _ => Err(DeviceError::Invalid("unexpected worker answer")),
        }
    }

    /// The worker's handle for the physical memory behind `fd` (another worker's export).
    pub(in crate::device) fn import_granule(&self, fd: BorrowedFd<'_>) -> DResult<u64> {
        if !self.is_alive() {
            return Err(self.dead_error("cuMemImportFromShareableHandle"));
        }
        let call = "cuMemImportFromShareableHandle";
        match self.socket_request(&ToWorker::ImportGranule, &[fd])? {
            FromWorker::Imported { handle } => Ok(handle),
            FromWorker::Error { code } => Err(DeviceError::Cuda { call, code }),
            _ => Err(DeviceError::Invalid("unexpected worker answer")),
        }
    }

    fn socket_request(&self, msg: &ToWorker, fds: &[BorrowedFd<'_>]) -> DResult<FromWorker> {
        self.socket_exchange(msg, fds).map(|(reply, _)| reply)
    }

    /// Sends `msg` with `fds`; the reply with the descriptors that came with it (one at most).
    fn socket_exchange(
        &self,
        msg: &ToWorker,
        fds: &[BorrowedFd<'_>],
    ) -> DResult<(FromWorker, Vec<OwnedFd>)> {
        let lost = || DeviceError::Cuda {
            call: "worker link",
            code: code::ERROR_LAUNCH_FAILED,
        };
        let bytes = wire::encode(msg).map_err(|_| DeviceError::Invalid("socket message"))?;
        let mut s = lock(&self.socket);
        frame::send_frame_with_fds(&mut s, &bytes, fds).map_err(|_| lost())?;
        let (payload, fds) = frame::recv_frame_with_fds(&mut s, 1).map_err(|_| lost())?;
        let reply = wire::decode::<FromWorker>(&payload).map_err(|_| lost())?;
        Ok((reply, fds))
    }
}
