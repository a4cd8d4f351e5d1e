//! The worker: `gpushare worker`, one process per isolation group, spawned and supervised by the
//! broker (never started by hand). It owns the group's CUDA context ([`driver`]) and executes
//! what the broker submits over the link ([`proto`]): a shared-memory region whose command ring
//! carries the device operations and synchronous calls, and a socket for what carries file
//! descriptors. A device fault, a hung kernel or a crash inside the driver or the PTX interpreter
//! costs this process — the group's tenants — and never the broker or another group.
//!
//! Threads of a worker:
//! - **control** (the main thread): the handshake, then the socket — attaching and detaching
//!   tenants' regions and host buffers; the socket's end (the broker closed it or died) ends the
//!   process.
//! - **ring** ([`serve`]): consumes the command ring in order (bounded spin, then futex):
//!   asynchronous operations go to the driver at once, non-blocking calls are answered inline,
//!   blocking ones (synchronisation, module loads, frees) are handed to the executors.
//! - **executors** (a few): run blocking calls and answer them in their reply slots.
//! - **timing** (`timing`): waits, in submission order, for the end event of each timed
//!   operation (launch, copy, memset) and posts `OP_DONE{seq, device_ns}` on the notify ring.
//! - driver threads run completion markers, which post `HOST_FN_READY` on the notify ring.

pub mod driver;
mod gates;
mod globals;
pub mod image;
mod objects;
pub mod proto;
mod serve;
mod timing;

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use gpushare_client::frame::{self, FrameError};
use gpushare_client::os::Mapping;
use gpushare_client::proto as wire;
use gpushare_client::shm::{Region, ShmLayout};

use self::driver::{DeviceChoice, Driver};
use self::objects::Objects;
use self::proto::{DriverChoice, FromWorker, ToWorker, WORKER_PROTOCOL};

/// Errors that end a worker.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The socket to the broker failed.
    #[error("link to the broker: {0}")]
    Frame(#[from] FrameError),
    /// The handshake was not what the broker sends.
    #[error("bad handshake: {0}")]
    Handshake(String),
    /// The link region could not be mapped.
    #[error("link region: {0}")]
    Region(String),
    /// A thread could not start.
    #[error("cannot start a thread: {0}")]
    Thread(#[from] io::Error),
}

/// Runs a worker on the socket `link` (its standard input when spawned by the broker) until the
/// broker closes it.
pub fn run(mut link: UnixStream) -> Result<(), WorkerError> {
    let (payload, mut fds) = frame::recv_frame_with_fds(&mut link, 1)?;
    let hello: ToWorker =
        wire::decode(&payload).map_err(|e| WorkerError::Handshake(e.to_string()))?;
    let ToWorker::Hello {
        protocol,
        group,
        driver,
        layout,
    } = hello
    else {
        return Err(WorkerError::Handshake(
            "the first message is not Hello".into(),
        ));
    };
    if protocol != WORKER_PROTOCOL {
        return Err(WorkerError::Handshake(format!(
            "protocol {protocol}, expected {WORKER_PROTOCOL}"
        )));
    }
    let fd = fds
        .pop()
        .ok_or_else(|| WorkerError::Handshake("no region descriptor".into()))?;
    let region = open_region(fd, &layout)?;
    tracing::info!(group, pid = std::process::id(), "worker starting");
    let choice = match driver {
        DriverChoice::Cpu => DeviceChoice::Cpu,
        DriverChoice::Cuda => DeviceChoice::Cuda,
    };
    let drv = match Driver::open(choice) {
        Ok(d) => Arc::new(d),
        Err(e) => {
            let reason = e.to_string();
            frame::send_message(
                &mut link,
                &FromWorker::Failed {
                    code: e.code(),
                    reason,
                },
            )?;
            return Ok(());
        }
    };
    let ready = FromWorker::Ready {
        protocol: WORKER_PROTOCOL,
        driver_version: drv.driver_version(),
        info: drv.info().clone(),
        granularity: drv.granularity(),
        backend: drv.backend().to_string(),
        priorities: drv.stream_priority_range().unwrap_or((0, 0)),
        streamed_copies: drv.has_streamed_copies(),
    };
    frame::send_message(&mut link, &ready)?;
    let objects = Arc::new(Objects::new(Arc::clone(&drv)));
    let region = Arc::new(region);
    serve::spawn(Arc::clone(&objects), Arc::clone(&region))?;
    control(&mut link, &objects);
    tracing::info!(group, "broker closed the link; worker exiting");
    region.close(gpushare_client::shm::SessionState::ClosedByBroker);
    Ok(())
}

fn open_region(fd: OwnedFd, layout: &ShmLayout) -> Result<Region, WorkerError> {
    Region::open(fd.as_fd(), layout, false).map_err(|e| WorkerError::Region(e.to_string()))
}

/// The socket: attach and detach regions until the broker hangs up.
fn control(link: &mut UnixStream, objects: &Objects) {
    loop {
        let (payload, fds) = match frame::recv_frame_with_fds(link, 1) {
            Ok(f) => f,
            Err(FrameError::Closed) => return,
            Err(e) => {
                tracing::error!("worker link: {e}");
                return;
            }
        };
        let mut exported = None;
        let reply = match wire::decode::<ToWorker>(&payload) {
            Ok(ToWorker::Attach { id, len, register }) => attach(objects, id, len, register, fds),
            Ok(ToWorker::Detach { id }) => {
                objects.detach(id);
                FromWorker::Attached { device_ptr: None }
            }
            Ok(ToWorker::ExportGranule { handle }) => match objects.drv.granule_export(handle) {
                Ok(fd) => {
                    exported = Some(fd);
                    FromWorker::Exported
                }
                Err(e) => FromWorker::Error { code: e.code() },
            },
            Ok(ToWorker::ImportGranule) => match fds.first() {
                Some(fd) => match objects.drv.granule_import(fd.as_fd()) {
                    Ok(handle) => FromWorker::Imported { handle },
                    Err(e) => FromWorker::Error { code: e.code() },
                },
                None => FromWorker::Error {
                    code: gpushare_client::code::ERROR_INVALID_VALUE,
                },
            },
            Ok(ToWorker::Hello { .. }) | Err(_) => {
                tracing::error!("worker link: unexpected message");
                return;
            }
        };
        if send_reply(link, &reply, exported).is_err() {
            return;
        }
    }
}

/// Sends a socket reply, with `fd` when there is one.
fn send_reply(
    link: &mut UnixStream,
    reply: &FromWorker,
    fd: Option<OwnedFd>,
) -> Result<(), FrameError> {
    let bytes = wire::encode(reply)?;
    let fds: Vec<std::os::fd::BorrowedFd<'_>> = fd.iter().map(|f| f.as_fd()).collect();
    frame::send_frame_with_fds(link, &bytes, &fds)
}

fn attach(
    objects: &Objects,
    id: u32,
    len: u64,
    register: bool,
    mut fds: Vec<OwnedFd>,
) -> FromWorker {
    let failed = |code: u32| FromWorker::Error { code };
    let Some(fd) = fds.pop() else {
        return failed(gpushare_client::code::ERROR_INVALID_VALUE);
    };
    let Ok(size) = usize::try_from(len) else {
        return failed(gpushare_client::code::ERROR_INVALID_VALUE);
    };
    let map = match Mapping::map_fd(fd.as_fd(), size, false) {
        Ok(m) => Arc::new(m),
        Err(e) => {
            tracing::warn!("attaching region {id}: {e}");
            return failed(gpushare_client::code::ERROR_OPERATING_SYSTEM);
        }
    };
    match objects.attach(id, map, register) {
        Ok(device_ptr) => FromWorker::Attached { device_ptr },
        Err(e) => failed(e.code()),
    }
}
