//! Starting a worker and watching it: the process (`gpushare worker`, its standard input one
//! end of a socket pair), the handshake, the events thread (the notify ring: completion
//! markers, late failures and timed operations' completions) and the supervisor (the process's
//! exit, and the kernel watchdog).

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::sync::Arc;
use std::time::Duration;

use gpushare_client::code;
use gpushare_client::frame;
use gpushare_client::proto as wire;
use gpushare_client::ring::{Command, RecordBuf};
use gpushare_client::shm::{Region, ShmConfig};
use gpushare_client::wait::{AdaptiveSpin, SeqWord, WaitError, WaitPolicy};

use super::{DResult, Device, DeviceError, Link};
use crate::worker::proto::{DriverChoice, FromWorker, ToWorker, WORKER_PROTOCOL};

/// How long a worker may take to open its driver.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the supervisor looks at its worker.
const SUPERVISE_EVERY: Duration = Duration::from_millis(20);

/// How workers are started.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// The `gpushare` executable (it runs `gpushare worker`).
    pub exe: PathBuf,
    /// The driver workers open.
    pub driver: DriverChoice,
    /// The device's workers, which every worker started with this configuration joins.
    pub peers: Arc<super::Peers>,
}

/// The `gpushare` executable workers run: `$GPUSHARE_WORKER_EXE`, else this executable when it
/// is `gpushare`, else a `gpushare` next to it or in the parent of its directory (test binaries
/// live in `target/<profile>/deps/`).
pub fn worker_exe() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("GPUSHARE_WORKER_EXE") {
        return Some(PathBuf::from(p));
    }
    let me = std::env::current_exe().ok()?;
    if me.file_name().is_some_and(|n| n == "gpushare") {
        return Some(me);
    }
    let dir = me.parent()?;
    [dir.join("gpushare"), dir.parent()?.join("gpushare")]
        .into_iter()
        .find(|p| p.is_file())
}

/// Sizes of a worker link: a large command ring (many tenants), a notify ring for markers,
/// reply slots for concurrent calls, no staging.
fn link_config() -> ShmConfig {
    ShmConfig {
        cmd_ring_capacity: 4 << 20,
        notify_ring_capacity: 1 << 20,
        stream_slots: 1,
        reply_slots: 128,
        reply_slot_size: 16 << 10,
        staging_chunk: 4 << 10,
        staging_chunks: 1,
    }
}

fn load_err(what: impl std::fmt::Display) -> DeviceError {
    DeviceError::Load(format!("cannot start a worker: {what}"))
}

impl Device {
    /// Starts a worker for `group` and waits until its driver is open.
    pub fn spawn(group: &str, cfg: &WorkerConfig) -> DResult<Arc<Device>> {
        let (region, fd) = Region::create(&link_config(), true).map_err(load_err)?;
        let (ours, theirs) = UnixStream::pair().map_err(load_err)?;
        let child = spawn_process(&cfg.exe, group, theirs)?;
        let pid = child.id();
        let mut socket = ours;
        let hello = ToWorker::Hello {
            protocol: WORKER_PROTOCOL,
            group: group.to_string(),
            driver: cfg.driver,
            layout: *region.layout(),
        };
        let ready = handshake(&mut socket, &hello, fd);
        let ready = match ready {
            Ok(r) => r,
            Err(e) => {
                reap(child);
                return Err(e);
            }
        };
        let link = Arc::new(Link::new(group.to_string(), pid, region, socket)?);
        let dev = Arc::new(Device::new(
            Arc::clone(&link),
            ready,
            Arc::clone(&cfg.peers),
        ));
        cfg.peers.add(&dev);
        let events = Arc::clone(&link);
        std::thread::Builder::new()
            .name(format!("gpushare-wev-{pid}"))
            .spawn(move || events_loop(&events))
            .map_err(load_err)?;
        let watched = Arc::clone(&link);
        std::thread::Builder::new()
            .name(format!("gpushare-wsup-{pid}"))
            .spawn(move || supervise(&watched, child))
            .map_err(load_err)?;
        tracing::info!(group, pid, backend = %dev.backend(), "worker started");
        Ok(dev)
    }

    /// Ends the worker (it exits when the link's socket closes).
    pub fn shut_down(&self) {
        self.link().shut_down();
    }
}

fn spawn_process(exe: &Path, group: &str, socket: UnixStream) -> DResult<Child> {
    let stdin: OwnedFd = socket.into();
    Process::new(exe)
        .arg("worker")
        .env("GPUSHARE_WORKER_GROUP", group)
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| load_err(format!("{}: {e}", exe.display())))
}

/// What a worker's `Ready` says about its driver and device.
pub(super) struct WorkerReady {
    pub info: gpushare_client::proto::DeviceInfo,
    pub driver_version: i32,
    pub granularity: u64,
    pub backend: String,
    pub priorities: (i32, i32),
    pub streamed_copies: bool,
}

fn handshake(socket: &mut UnixStream, hello: &ToWorker, fd: OwnedFd) -> DResult<WorkerReady> {
    let bytes = wire::encode(hello).map_err(load_err)?;
    frame::send_frame_with_fds(socket, &bytes, &[fd.as_fd()]).map_err(load_err)?;
    let _ = socket.set_read_timeout(Some(START_TIMEOUT));
    let reply = frame::recv_message::<FromWorker>(socket).map_err(load_err)?;
    let _ = socket.set_read_timeout(None);
    match reply {
        FromWorker::Ready {
            protocol,
            driver_version,
            info,
            granularity,
            backend,
            priorities,
            streamed_copies,
        } if protocol == WORKER_PROTOCOL => Ok(WorkerReady {
            info,
            driver_version,
            granularity,
            backend,
            priorities,
            streamed_copies,
        }),
        FromWorker::Failed { code, reason } => {
            tracing::warn!("worker could not open the driver: {reason}");
            Err(match code {
                code::ERROR_NO_DEVICE => DeviceError::NoDevice,
                _ => DeviceError::Load(reason),
            })
        }
        other => Err(load_err(format!("unexpected answer {other:?}"))),
    }
}

fn reap(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// The notify ring: completion markers, late failures and timed operations' completions
/// (`OP_DONE`), until the link closes.
fn events_loop(link: &Arc<Link>) {
    let region = link.region();
    let Ok(mut consumer) = region.notify_consumer() else {
        tracing::error!(group = link.group(), "cannot open the worker's notify ring");
        return;
    };
    let Ok(head) = SeqWord::at(region.mapping(), region.layout().notify_ring_ctl as usize) else {
        return;
    };
    let mut spin = AdaptiveSpin::new(WaitPolicy::default());
    let mut buf = RecordBuf::new();
    loop {
        match consumer.try_pop(&mut buf) {
            Ok(Some(p)) => match p.cmd {
                Command::HostFnReady(r) => link.marker_reached(r.token, r.seq as u32),
                Command::AsyncError(e) => link.failed(e.seq, e.code),
                Command::OpDone(d) => link.op_done(d.seq, d.device_ns),
                _ => tracing::error!(
                    group = link.group(),
                    "unexpected record on a worker's notify ring"
                ),
            },
            Ok(None) => {
                match head.wait_adaptive(|_| !consumer.is_empty(), &mut spin, || !region.is_open())
                {
                    Ok(_) | Err(WaitError::TimedOut) => {}
                    Err(_) => return,
                }
            }
            Err(e) => {
                tracing::error!(group = link.group(), "worker notify ring: {e}");
                return;
            }
        }
    }
}

/// Waits for the worker's exit, killing it when the watchdog fires; aborts stalled streamed
/// copies on the way.
fn supervise(link: &Link, mut child: Child) {
    let mut timed_out = None;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) => {}
            Err(e) => {
                tracing::error!(group = link.group(), "waiting for the worker: {e}");
                break None;
            }
        }
        link.streamed().check();
        if timed_out.is_none() {
            if let Some(idle) = link.overdue() {
                tracing::error!(group = link.group(), pid = link.pid(),
                    "kernel_timeout: no progress for {idle:?} with work outstanding; killing the worker");
                timed_out = Some(idle);
                let _ = child.kill();
            }
        }
        std::thread::sleep(SUPERVISE_EVERY);
    };
    let (code, reason) = match (timed_out, status) {
        (Some(idle), _) => (
            code::ERROR_LAUNCH_TIMEOUT,
            format!(
                "killed by the kernel watchdog after {} ms without progress",
                idle.as_millis()
            ),
        ),
        (None, Some(s)) => match s.signal() {
            Some(sig) => (
                code::ERROR_LAUNCH_FAILED,
                format!("worker killed by signal {sig}"),
            ),
            None => (code::ERROR_LAUNCH_FAILED, format!("worker exited with {s}")),
        },
        (None, None) => (code::ERROR_LAUNCH_FAILED, "worker lost".to_string()),
    };
    link.die(code, reason);
}
