//! The broker process: the isolation groups (worker processes that own the device contexts),
//! the scheduler and its dispatcher, the listening socket, the registry of sessions, `Status`,
//! and shutdown.
//!
//! The broker-wide state sessions share is [`crate::env::Env`]; the live sessions are in a
//! [`Registry`]. [`Broker::start`] opens the device and binds the socket; [`Broker::run`] accepts connections
//! (a thread per connection, see [`crate::session`]) until [`StopHandle::stop`] — e.g. on
//! SIGTERM — and then shuts down: it stops accepting, lets every tenant's ring and calls drain
//! and its submitted work complete (bounded by the drain timeout), tells every session
//! (`Goodbye`, session state *closed by broker*), waits for the sessions to free their
//! resources, and stops the dispatcher. [`Broker::reload_handle`] re-reads the policy file while
//! it runs (SIGHUP; [`crate::reload`]).

use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gpushare_client::ShmConfig;

use crate::device::{worker_exe, Device, DeviceChoice, DeviceError, WorkerConfig};
use crate::env::{BrokerFiles, Env};
use crate::groups::Groups;
use crate::policy::Policy;
use crate::reload::ReloadHandle;
use crate::scheduler;
use crate::session::admission::{self, Admission, AdmissionLimits};
use crate::session::registry::Registry;
use crate::session::socket;
use crate::worker::proto::DriverChoice;

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
    /// The socket's directory could be tampered with by another user.
    #[error("socket directory refused: {0}")]
    SocketDir(#[from] crate::private_dir::DirError),
    /// Another broker is serving the socket.
    #[error("another broker is already listening on {0}")]
    InUse(String),
    /// A cost-profile file named by the policy could not be read.
    #[error(transparent)]
    Profile(#[from] scheduler::cost::CostError),
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
    /// The file `policy` came from: what SIGHUP and `gpushare policy reload` re-read (`None`:
    /// reloads report that there is nothing to reload).
    pub policy_file: Option<PathBuf>,
    /// Region sizes for tenants.
    pub shm: ShmConfig,
    /// How long shutdown waits for tenants' work.
    pub drain_timeout: Duration,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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

fn accept_loop(
    env: Arc<Env>,
    registry: Arc<Registry>,
    adm: Arc<Admission>,
    listener: UnixListener,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
) {
    let mut last_refusal_logged: Option<Instant> = None;
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
        let uid = gpushare_client::os::peer_credentials(&stream)
            .ok()
            .map(|c| c.uid);
        let pending = match adm.arrive(&stream, uid, Instant::now()) {
            Ok(p) => p,
            Err(refusal) => {
                // Closed at once, with no thread and nothing read; logged at most once a second.
                if last_refusal_logged.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    tracing::warn!("refused a connection: {refusal}");
                    last_refusal_logged = Some(Instant::now());
                }
                continue;
            }
        };
        let (env2, registry2) = (Arc::clone(&env), Arc::clone(&registry));
        match std::thread::Builder::new()
            .name("gpushare-session".into())
            .spawn(move || socket::serve(env2, registry2, stream, pending))
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

/// Cuts off connections whose handshake outlived its deadline, until shutdown.
fn handshake_watchdog(env: &Env, adm: &Admission) {
    while !env.is_shutting_down() {
        std::thread::sleep(admission::SWEEP);
        let n = adm.sweep(Instant::now());
        if n > 0 {
            tracing::info!(
                "closed {n} connection(s) that did not finish the handshake within {:?}",
                adm.limits().handshake
            );
        }
    }
}

/// A started broker.
pub struct Broker {
    env: Arc<Env>,
    registry: Arc<Registry>,
    admission: Arc<Admission>,
    listener: UnixListener,
    socket: PathBuf,
    dispatcher: JoinHandle<()>,
    stop: StopHandle,
    drain_timeout: Duration,
}

/// Starts a first worker for the driver `choice` names (`auto`: the real driver if a worker
/// can open it, else the CPU device); returns it and how later workers start.
fn probe_device(choice: DeviceChoice) -> Result<(Arc<Device>, WorkerConfig), BrokerError> {
    let exe = worker_exe().ok_or_else(|| {
        DeviceError::Load(
            "cannot find the gpushare executable for workers (set GPUSHARE_WORKER_EXE)".into(),
        )
    })?;
    let peers = crate::device::Peers::new();
    let cfg = |driver| WorkerConfig {
        exe: exe.clone(),
        driver,
        peers: Arc::clone(&peers),
    };
    let first = match choice {
        DeviceChoice::Cpu => DriverChoice::Cpu,
        DeviceChoice::Cuda | DeviceChoice::Auto => DriverChoice::Cuda,
    };
    match Device::spawn("probe", &cfg(first)) {
        Ok(d) => Ok((d, cfg(first))),
        Err(e) if choice == DeviceChoice::Auto => {
            tracing::info!("no usable CUDA driver ({e}); using the CPU device");
            let d = Device::spawn("probe", &cfg(DriverChoice::Cpu))?;
            Ok((d, cfg(DriverChoice::Cpu)))
        }
        Err(e) => Err(e.into()),
    }
}

/// Binds the socket at `path`. Its directory is created if missing (mode 0711: others may pass
/// through to the socket, not list or change the directory) and must be one no other user can
/// tamper with ([`Rule::NoTamper`]): owned by the broker's user or root, writable by others only
/// if sticky. The socket gets `mode` whatever the umask (see [`AccessRules::socket_mode`]).
///
/// [`AccessRules::socket_mode`]: crate::access::AccessRules::socket_mode
fn bind(path: &Path, mode: u32) -> Result<UnixListener, BrokerError> {
    use crate::private_dir::{self, Rule};
    use std::os::unix::fs::PermissionsExt;
    let err = |source| BrokerError::Socket {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o711)
                .create(dir)
                .map_err(err)?;
        }
        private_dir::check(dir, Rule::NoTamper)?;
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
    let listener = UnixListener::bind(path).map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(err)?;
    Ok(listener)
}

impl Broker {
    /// Probes the device (a first worker, which resolves `auto`), starts the dispatcher and
    /// binds the socket.
    pub fn start(cfg: BrokerConfig) -> Result<Broker, BrokerError> {
        let (probe, workers) = probe_device(cfg.device)?;
        let listener = bind(&cfg.socket, cfg.policy.access().socket_mode())?;
        let descriptors = gpushare_client::os::raise_descriptor_limit().unwrap_or_else(|e| {
            tracing::warn!("cannot raise the descriptor limit: {e}");
            1024
        });
        let limits = AdmissionLimits::for_descriptors(descriptors);
        tracing::info!(
            descriptors,
            connections = limits.sessions,
            pending = limits.pending,
            per_uid = limits.per_uid,
            "admission limits"
        );
        let sched = scheduler::from_config(cfg.policy.scheduler())?;
        let dispatcher =
            scheduler::spawn_dispatcher(Arc::clone(&sched)).map_err(BrokerError::Thread)?;
        let (device, backend) = (probe.info().clone(), probe.backend().to_string());
        probe.shut_down();
        let env = Arc::new(Env::new(
            Groups::new(workers),
            device,
            backend,
            sched,
            cfg.shm,
            cfg.policy,
            BrokerFiles {
                socket: cfg.socket.clone(),
                policy: cfg.policy_file,
            },
        ));
        tracing::info!(socket = %cfg.socket.display(), device = %env.backend, "broker listening");
        Ok(Broker {
            env,
            registry: Arc::default(),
            admission: Admission::new(limits),
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

    /// A handle that reloads the policy file while the broker runs (SIGHUP).
    pub fn reload_handle(&self) -> ReloadHandle {
        ReloadHandle::new(Arc::clone(&self.env), Arc::clone(&self.registry))
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
            let registry = Arc::clone(&self.registry);
            let adm = Arc::clone(&self.admission);
            let threads = Arc::clone(&threads);
            std::thread::Builder::new()
                .name("gpushare-accept".into())
                .spawn(move || accept_loop(env, registry, adm, listener, threads))
                .map_err(BrokerError::Thread)?
        };
        let watchdog = {
            let env = Arc::clone(&self.env);
            let adm = Arc::clone(&self.admission);
            std::thread::Builder::new()
                .name("gpushare-handshakes".into())
                .spawn(move || handshake_watchdog(&env, &adm))
                .map_err(BrokerError::Thread)?
        };
        lock(&threads).push(watchdog);
        self.stop.wait();
        self.env.begin_shutdown();
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
        let tenants = self.registry.tenants();
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
        self.registry.goodbye_admins(reason);
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
        env.groups.shut_down();
        tracing::info!("broker stopped");
    }
}
