//! The broker process: the device, the scheduler and its dispatcher, the listening socket, the
//! registry of sessions, `Status`, and shutdown.
//!
//! [`Broker::start`] opens the device and binds the socket; [`Broker::run`] accepts connections
//! (a thread per connection, see [`crate::session`]) until [`StopHandle::stop`] — e.g. on
//! SIGTERM — and then shuts down: it stops accepting, lets every tenant's ring and calls drain
//! and its submitted work complete (bounded by the drain timeout), tells every session
//! (`Goodbye`, session state *closed by broker*), waits for the sessions to free their
//! resources, and stops the dispatcher.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gpushare_client::proto::{DeviceStatus, StatusReport, TenantStatus};
use gpushare_client::ShmConfig;

use crate::device::{Device, DeviceChoice, DeviceError};
use crate::policy::Policy;
use crate::scheduler::{self, Fifo, Scheduler};
use crate::session::{socket, SessionInfo, Tenant};

/// Errors of the broker process.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The device could not be opened.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// The socket could not be set up.
    #[error("socket {path}: {source}")]
    Socket {
        /// Path.
        path: String,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// Another broker is serving the socket.
    #[error("another broker is already listening on {0}")]
    InUse(String),
    /// A thread could not be started.
    #[error("cannot start a thread: {0}")]
    Thread(#[source] io::Error),
}

/// How to run the broker.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// Which driver.
    pub device: DeviceChoice,
    /// Socket path.
    pub socket: PathBuf,
    /// Policy.
    pub policy: Policy,
    /// Region sizes for tenants.
    pub shm: ShmConfig,
    /// How long shutdown waits for tenants' work.
    pub drain_timeout: Duration,
}

struct Entry {
    info: SessionInfo,
    tenant: Option<Arc<Tenant>>,
    socket: Option<UnixStream>,
}

/// Broker-wide state shared with every session.
pub struct Env {
    /// The device.
    pub dev: Arc<Device>,
    /// The scheduler.
    pub sched: Arc<dyn Scheduler>,
    /// Region sizes.
    pub shm: ShmConfig,
    /// Policy.
    pub policy: Policy,
    started: Instant,
    sessions: Mutex<HashMap<u64, Entry>>,
    next_session: AtomicU64,
    shutting_down: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Env {
    /// A fresh session id.
    pub fn next_session_id(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }

    /// True once shutdown began.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Adds an open session to the registry.
    pub fn register(
        &self,
        info: SessionInfo,
        tenant: Option<Arc<Tenant>>,
        socket: Option<UnixStream>,
    ) {
        lock(&self.sessions).insert(
            info.id,
            Entry {
                info,
                tenant,
                socket,
            },
        );
    }

    /// Removes a session from the registry (its resources are already freed).
    pub fn unregister(&self, id: u64) {
        lock(&self.sessions).remove(&id);
    }

    fn tenants(&self) -> Vec<Arc<Tenant>> {
        lock(&self.sessions)
            .values()
            .filter_map(|e| e.tenant.clone())
            .collect()
    }

    /// The broker's state for admin tools.
    pub fn status(&self) -> StatusReport {
        let entries: Vec<(SessionInfo, Option<Arc<Tenant>>)> = lock(&self.sessions)
            .values()
            .map(|e| (e.info.clone(), e.tenant.clone()))
            .collect();
        let mut tenants: Vec<TenantStatus> = entries
            .into_iter()
            .filter_map(|(info, t)| {
                let t = t?;
                let (memory_bytes, memory_quota, streams) = t.memory_figures();
                let (queued_ops, submitted_ops, completed_ops) = t.op_counts();
                Some(TenantStatus {
                    session_id: info.id,
                    name: info.name,
                    pid: info.pid,
                    uid: info.uid,
                    memory_bytes,
                    memory_quota,
                    streams,
                    queued_ops,
                    submitted_ops,
                    completed_ops,
                    gpu_time_ns: 0,
                    weight: info.weight,
                })
            })
            .collect();
        tenants.sort_by_key(|t| t.session_id);
        let info = self.dev.info();
        StatusReport {
            broker_version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_ms: self.started.elapsed().as_millis() as u64,
            devices: vec![DeviceStatus {
                ordinal: 0,
                name: info.name.clone(),
                total_mem: info.total_mem,
                used_mem: tenants.iter().map(|t| t.memory_bytes).sum(),
                busy_permille: 0,
            }],
            tenants,
        }
    }
}

/// Stops a running broker (from a signal handler thread or a test).
#[derive(Clone, Debug)]
pub struct StopHandle {
    inner: Arc<(Mutex<bool>, std::sync::Condvar)>,
    socket: PathBuf,
}

impl StopHandle {
    /// Asks the broker to shut down (idempotent).
    pub fn stop(&self) {
        let mut stopped = lock(&self.inner.0);
        if !*stopped {
            *stopped = true;
            self.inner.1.notify_all();
        }
    }

    /// True once stop was asked for.
    pub fn is_stopped(&self) -> bool {
        *lock(&self.inner.0)
    }

    fn wait(&self) {
        let mut stopped = lock(&self.inner.0);
        while !*stopped {
            stopped = self
                .inner
                .1
                .wait(stopped)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Wakes an acceptor blocked in `accept` (best effort).
    fn wake_acceptor(&self) {
        let _ = UnixStream::connect(&self.socket);
    }
}

fn accept_loop(env: Arc<Env>, listener: UnixListener, threads: Arc<Mutex<Vec<JoinHandle<()>>>>) {
    for conn in listener.incoming() {
        if env.is_shutting_down() {
            break;
        }
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("accept: {e}");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let env2 = Arc::clone(&env);
        match std::thread::Builder::new()
            .name("gpushare-session".into())
            .spawn(move || socket::serve(env2, stream))
        {
            Ok(h) => {
                let mut t = lock(&threads);
                t.retain(|h| !h.is_finished());
                t.push(h);
            }
            Err(e) => tracing::error!("cannot start a session thread: {e}"),
        }
    }
}

/// A started broker.
pub struct Broker {
    env: Arc<Env>,
    listener: UnixListener,
    socket: PathBuf,
    dispatcher: JoinHandle<()>,
    stop: StopHandle,
    drain_timeout: Duration,
}

fn bind(path: &Path) -> Result<UnixListener, BrokerError> {
    let err = |source| BrokerError::Socket {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(err)?;
        }
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "exists and is not a socket",
            )));
        }
        if UnixStream::connect(path).is_ok() {
            return Err(BrokerError::InUse(path.display().to_string()));
        }
        // A stale socket of a broker that is gone.
        std::fs::remove_file(path).map_err(err)?;
    }
    UnixListener::bind(path).map_err(err)
}

impl Broker {
    /// Opens the device, starts the dispatcher and binds the socket.
    pub fn start(cfg: BrokerConfig) -> Result<Broker, BrokerError> {
        let dev = Arc::new(Device::open(cfg.device)?);
        let listener = bind(&cfg.socket)?;
        let sched: Arc<dyn Scheduler> = Arc::new(Fifo::new());
        let dispatcher = scheduler::spawn_dispatcher(Arc::clone(&sched), Arc::clone(&dev))
            .map_err(BrokerError::Thread)?;
        let env = Arc::new(Env {
            dev,
            sched,
            shm: cfg.shm,
            policy: cfg.policy,
            started: Instant::now(),
            sessions: Mutex::new(HashMap::new()),
            next_session: AtomicU64::new(1),
            shutting_down: AtomicBool::new(false),
        });
        tracing::info!(socket = %cfg.socket.display(), device = %env.dev.backend(), "broker listening");
        Ok(Broker {
            env,
            listener,
            stop: StopHandle {
                inner: Arc::new((Mutex::new(false), std::sync::Condvar::new())),
                socket: cfg.socket.clone(),
            },
            socket: cfg.socket,
            dispatcher,
            drain_timeout: cfg.drain_timeout,
        })
    }

    /// A handle that stops [`Broker::run`].
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// The shared state.
    pub fn env(&self) -> &Arc<Env> {
        &self.env
    }

    /// Accepts connections until stopped, then shuts down (see the module documentation). The
    /// acceptor runs on its own thread, so shutdown never depends on `accept` returning.
    pub fn run(self) -> Result<(), BrokerError> {
        let threads: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let listener = self
            .listener
            .try_clone()
            .map_err(|source| BrokerError::Socket {
                path: self.socket.display().to_string(),
                source,
            })?;
        let acceptor = {
            let env = Arc::clone(&self.env);
            let threads = Arc::clone(&threads);
            std::thread::Builder::new()
                .name("gpushare-accept".into())
                .spawn(move || accept_loop(env, listener, threads))
                .map_err(BrokerError::Thread)?
        };
        self.stop.wait();
        self.env.shutting_down.store(true, Ordering::Release);
        self.stop.wake_acceptor();
        let deadline = Instant::now() + Duration::from_secs(1);
        while !acceptor.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let threads = std::mem::take(&mut *lock(&threads));
        self.shutdown(threads);
        Ok(())
    }

    fn shutdown(self, threads: Vec<JoinHandle<()>>) {
        let env = self.env;
        drop(self.listener);
        let _ = std::fs::remove_file(&self.socket);
        let deadline = Instant::now() + self.drain_timeout;
        let tenants = env.tenants();
        tracing::info!(sessions = tenants.len(), "shutting down: draining tenants");
        for t in &tenants {
            t.begin_drain();
        }
        for t in &tenants {
            if !t.wait_drained(deadline) {
                tracing::warn!(session = t.info.id, "tenant did not drain in time");
            }
        }
        let reason = "the broker is shutting down";
        for t in &tenants {
            t.hang_up(reason);
        }
        for e in lock(&env.sessions).values_mut() {
            if e.tenant.is_none() {
                if let Some(s) = e.socket.as_mut() {
                    let _ = gpushare_client::frame::send_message(
                        s,
                        &gpushare_client::BrokerMessage::Goodbye {
                            reason: reason.to_string(),
                        },
                    );
                    let _ = s.shutdown(std::net::Shutdown::Both);
                }
            }
        }
        drop(tenants);
        let end = Instant::now() + self.drain_timeout;
        for h in threads {
            while !h.is_finished() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(5));
            }
            if h.is_finished() {
                let _ = h.join();
            } else {
                tracing::warn!("a session did not finish in time");
            }
        }
        env.sched.close();
        let _ = self.dispatcher.join();
        tracing::info!("broker stopped");
    }
}
