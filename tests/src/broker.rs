//! Harness for the shim + broker end-to-end tests (`tests/tests/shim.rs`, `shim_outputs.rs`): a broker process on the
//! CPU device, and tenants run through `gpushare run` (or with the shim put in place by hand) as
//! background processes ([`crate::process`]) whose output can be watched while they run.
//!
//! * Everything is found in the same target directory as the CPU device library
//!   ([`crate::find_build_output`]): the `gpushare` executable (`$GPUSHARE_BIN` overrides) and the
//!   shim `libgpushare_shim.so` (`$GPUSHARE_SHIM_LIB` overrides). Build them with
//!   `cargo build --release -p gpushare-cpu -p gpushare-broker -p gpushare-shim`.
//! * Each [`Broker`] has a private directory under the system temporary directory (socket, log,
//!   and the `TMPDIR` of the `gpushare run` commands it starts, so concurrent tests never share
//!   `gpushare run`'s library directory). It is killed, with its process group, when dropped; its
//!   log (standard error, `GPUSHARE_LOG=info` unless `$GPUSHARE_E2E_BROKER_LOG` says otherwise) is
//!   printed when a test panics.
//! * Tenants get a clean environment: no inherited `LD_PRELOAD`, `LD_LIBRARY_PATH`, CPU-device
//!   variables or `GPUSHARE_LOG` (the shim must be silent without it). To see the shim's own log,
//!   set `$GPUSHARE_E2E_TENANT_LOG` (e.g. `debug`): tenants get it as `GPUSHARE_LOG`, and tests
//!   skip their "standard error is empty" checks.
//! * Every wait is bounded; every process is killed with its process group on timeout or drop.

use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use gpushare_client::proto::{Hello, Reply, Request, StatusReport};
use gpushare_client::{Client, ClientOptions, WaitPolicy};

pub use crate::compile_mlp;
use crate::process::kill_group;
pub use crate::process::{describe, run_command, Proc};
use crate::{cpu_lib, find_build_output, kernels_dir};
use crate::{work_dir, RunOutput};

/// File name of the shim library (`cargo build --release -p gpushare-shim`).
pub const SHIM_LIB_NAME: &str = "libgpushare_shim.so";

/// Environment variables a tenant never inherits from the test process.
const TENANT_CLEARED_ENV: &[&str] = &[
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "GPUSHARE_SOCKET",
    "GPUSHARE_TENANT_NAME",
    "GPUSHARE_SHIM_LIB",
    "GPUSHARE_LOG",
    "GPUSHARE_CPU_PROFILE",
    "GPUSHARE_CPU_MEMORY",
    "GPUSHARE_CPU_PACING",
    "GPUSHARE_CPU_THREADS",
    "GPUSHARE_CPU_LIB",
];

fn locate(env: &str, file: &str, build: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "{env}={} does not exist", p.display());
        return p.canonicalize().expect("canonicalize");
    }
    match find_build_output(file) {
        Ok(p) => p.canonicalize().expect("canonicalize"),
        Err(searched) => panic!(
            "{file} not found. Build it first:\n\n    {build}\n\n(or set {env}=/path/to/{file}). \
             Searched:\n{}",
            searched
                .iter()
                .map(|p| format!("  {}", p.display()))
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

/// The `gpushare` executable: `$GPUSHARE_BIN`, else next to the CPU device library.
pub fn gpushare_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        locate(
            "GPUSHARE_BIN",
            "gpushare",
            "cargo build --release -p gpushare-broker",
        )
    })
}

/// The shim: `$GPUSHARE_SHIM_LIB`, else `libgpushare_shim.so` next to the CPU device library.
pub fn shim_lib() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        locate(
            "GPUSHARE_SHIM_LIB",
            SHIM_LIB_NAME,
            "cargo build --release -p gpushare-shim",
        )
    })
}

/// A directory whose `libcuda.so.1` and `libcuda.so` are symlinks to the shim (what `gpushare run`
/// puts first on `LD_LIBRARY_PATH`), for tenants started without `gpushare run`.
pub fn shim_lib_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let shim = shim_lib();
        let dir = work_dir().join("shim-lib");
        std::fs::create_dir_all(&dir).expect("create shim lib dir");
        for name in ["libcuda.so", "libcuda.so.1"] {
            let link = dir.join(name);
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(shim, &link).unwrap_or_else(|e| {
                panic!("symlink {} -> {}: {e}", link.display(), shim.display())
            });
        }
        dir
    })
}

/// The tenant log level from `$GPUSHARE_E2E_TENANT_LOG`, if set.
pub fn tenant_log() -> Option<String> {
    std::env::var("GPUSHARE_E2E_TENANT_LOG")
        .ok()
        .filter(|s| !s.is_empty())
}

/// Prepares `cmd` to run as a tenant: cleared inherited variables, the kernel corpus, the given
/// environment, and `GPUSHARE_LOG` only when [`tenant_log`] asks for it.
pub fn tenant_env(cmd: &mut Command, env: &[(&str, &str)]) {
    for var in TENANT_CLEARED_ENV {
        cmd.env_remove(var);
    }
    cmd.env("GPUSHARE_KERNELS_DIR", kernels_dir());
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(level) = tenant_log() {
        cmd.env("GPUSHARE_LOG", level);
    }
}

/// A command that runs `exe` directly on the CPU device (as [`crate::run_program`] does), for
/// background processes.
pub fn direct_command(exe: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(exe);
    cmd.args(args);
    tenant_env(&mut cmd, &[]);
    cmd.env("LD_LIBRARY_PATH", crate::lib_dir());
    cmd
}

/// One tenant session as the broker logged it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoggedSession {
    /// The `session opened` line was logged.
    pub opened: bool,
    /// `freed_bytes` of the `session resources freed` line, once logged.
    pub freed_bytes: Option<u64>,
}

/// `key=value` of a log line's fields.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A `gpushare broker --device cpu` process on a private socket; killed on drop.
pub struct Broker {
    child: Child,
    dir: PathBuf,
    socket: PathBuf,
    log: PathBuf,
    killed: bool,
}

impl Broker {
    /// Starts a broker on the CPU device with extra environment (e.g. `GPUSHARE_CPU_PROFILE`) and
    /// waits (bounded) until it accepts connections.
    pub fn start(env: &[(&str, &str)]) -> Broker {
        Broker::start_with_policy(None, env)
    }

    /// As [`Broker::start`], with a policy file of the given TOML text.
    pub fn start_with_policy(policy: Option<&str>, env: &[(&str, &str)]) -> Broker {
        let dir = std::env::temp_dir().join(format!(
            "gpushare-e2e-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("tmp")).expect("create broker dir");
        let socket = dir.join("sock");
        let log = dir.join("broker.log");
        let mut cmd = Command::new(gpushare_bin());
        cmd.args(["broker", "--device", "cpu", "--socket"])
            .arg(&socket);
        if let Some(text) = policy {
            let path = dir.join("policy.toml");
            std::fs::write(&path, text).expect("write the policy file");
            cmd.arg("--policy").arg(path);
        }
        cmd.env("GPUSHARE_CPU_LIB", cpu_lib())
            .env_remove("GPUSHARE_CPU_PROFILE")
            .env_remove("GPUSHARE_CPU_MEMORY")
            .env_remove("GPUSHARE_CPU_PACING")
            .env_remove("GPUSHARE_CPU_THREADS")
            .env_remove("GPUSHARE_SOCKET")
            .env(
                "GPUSHARE_LOG",
                std::env::var("GPUSHARE_E2E_BROKER_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(File::create(dir.join("broker.out")).expect("stdout file"))
            .stderr(File::create(&log).expect("log file"))
            .process_group(0);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn the gpushare broker");
        let mut b = Broker {
            child,
            dir,
            socket,
            log,
            killed: false,
        };
        let start = Instant::now();
        while UnixStream::connect(&b.socket).is_err() {
            if let Ok(Some(st)) = b.child.try_wait() {
                panic!("broker exited early ({st}):\n{}", b.log_text());
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "broker did not start listening within 30 s:\n{}",
                b.log_text()
            );
            thread::sleep(Duration::from_millis(10));
        }
        b
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The broker's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The policy file [`Broker::start_with_policy`] wrote (rewrite it, then reload).
    pub fn policy_file(&self) -> PathBuf {
        self.dir.join("policy.toml")
    }

    /// Sends `sig` to the broker process alone (not to its workers, which share its group).
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) of our own child's pid (not yet reaped: the child is waited for only
        // in `kill` and on drop); it touches no memory of ours.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, sig);
        }
    }

    /// `gpushare ARGS --socket S` (an admin command such as `policy reload`) to completion.
    pub fn admin_command(&self, args: &[&str], timeout: Duration) -> RunOutput {
        let mut cmd = Command::new(gpushare_bin());
        cmd.args(args).arg("--socket").arg(&self.socket);
        cmd.env_remove("GPUSHARE_SOCKET").env_remove("GPUSHARE_LOG");
        run_command(cmd, timeout)
    }

    /// The broker's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// SIGKILLs the broker (its whole process group) and reaps it.
    pub fn kill(&mut self) {
        kill_group(self.child.id(), libc::SIGKILL);
        let _ = self.child.wait();
        self.killed = true;
    }

    /// True while the broker has not exited.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The broker's status through an admin session (every wait bounded by 10 s).
    pub fn status(&self) -> Result<StatusReport, String> {
        query_status(&self.socket, Duration::from_secs(10))
    }

    /// Polls the status until `pred` holds; the last report, or an error naming `what`.
    pub fn wait_status(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&StatusReport) -> bool,
    ) -> Result<StatusReport, String> {
        let start = Instant::now();
        loop {
            let last = match self.status() {
                Ok(s) if pred(&s) => return Ok(s),
                Ok(s) => format!("{s:#?}"),
                Err(e) => e,
            };
            if start.elapsed() > timeout {
                return Err(format!(
                    "broker status: {what} did not happen within {timeout:?}; last status:\n{last}"
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the log says about the tenant sessions named `name`, in order.
    pub fn logged_sessions(&self, name: &str) -> Vec<LoggedSession> {
        let mut ids: Vec<(String, LoggedSession)> = Vec::new();
        for line in self.log_text().lines() {
            if field(line, "tenant") != Some(name) {
                continue;
            }
            let Some(id) = field(line, "session") else {
                continue;
            };
            let pos = match ids.iter().position(|(i, _)| i == id) {
                Some(p) => p,
                None => {
                    ids.push((id.to_string(), LoggedSession::default()));
                    ids.len() - 1
                }
            };
            if line.contains("session opened") {
                ids[pos].1.opened = true;
            }
            if line.contains("session resources freed") {
                ids[pos].1.freed_bytes = field(line, "freed_bytes").and_then(|v| v.parse().ok());
            }
        }
        ids.into_iter().map(|(_, s)| s).collect()
    }

    /// Waits (bounded) until the log shows a session of `name` whose resources were freed;
    /// returns its `freed_bytes`.
    pub fn wait_session_freed(&self, name: &str, timeout: Duration) -> Result<u64, String> {
        let start = Instant::now();
        loop {
            if let Some(b) = self
                .logged_sessions(name)
                .iter()
                .find_map(|s| s.freed_bytes.filter(|_| s.opened))
            {
                return Ok(b);
            }
            if start.elapsed() > timeout {
                return Err(format!(
                    "the broker logged no opened-and-freed session of tenant {name:?} within \
                     {timeout:?}"
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// `gpushare run --socket S --name NAME -- PROGRAM ARGS` with a tenant environment
    /// ([`tenant_env`]), the shim named explicitly and a private `TMPDIR`.
    pub fn tenant_command<S: AsRef<OsStr>>(
        &self,
        name: &str,
        program: &Path,
        args: &[S],
        env: &[(&str, &str)],
    ) -> Command {
        let mut cmd = Command::new(gpushare_bin());
        cmd.arg("run")
            .arg("--socket")
            .arg(&self.socket)
            .arg("--name")
            .arg(name)
            .arg("--")
            .arg(program)
            .args(args);
        tenant_env(&mut cmd, env);
        cmd.env("GPUSHARE_SHIM_LIB", shim_lib())
            .env("TMPDIR", self.dir.join("tmp"));
        cmd
    }

    /// Runs a tenant through `gpushare run` to completion (bounded).
    pub fn run_tenant<S: AsRef<OsStr>>(
        &self,
        name: &str,
        program: &Path,
        args: &[S],
        env: &[(&str, &str)],
        timeout: Duration,
    ) -> RunOutput {
        run_command(self.tenant_command(name, program, args, env), timeout)
    }

    /// Starts a tenant through `gpushare run` in the background.
    pub fn spawn_tenant<S: AsRef<OsStr>>(
        &self,
        name: &str,
        program: &Path,
        args: &[S],
        env: &[(&str, &str)],
    ) -> Proc {
        Proc::spawn(self.tenant_command(name, program, args, env))
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if !self.killed {
            kill_group(self.child.id(), libc::SIGKILL);
            let _ = self.child.wait();
        }
        if thread::panicking() {
            eprintln!(
                "--- broker log ({}) ---\n{}",
                self.log.display(),
                self.log_text()
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Asks the broker at `socket` for its status through an admin session (what `gpushare status`
/// prints), every wait bounded by `timeout`.
pub fn query_status(socket: &Path, timeout: Duration) -> Result<StatusReport, String> {
    let stream = UnixStream::connect(socket)
        .map_err(|e| format!("cannot connect to {}: {e}", socket.display()))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    let options = ClientOptions {
        wait: WaitPolicy::default().timeout(timeout),
        ..ClientOptions::default()
    };
    let client = Client::from_stream(stream, &Hello::admin("gpushare-e2e-status"), options)
        .map_err(|e| format!("admin handshake: {e}"))?;
    let reply = client
        .call(Request::Status)
        .map_err(|e| format!("Status: {e}"))?;
    let _ = client.goodbye("done");
    match reply.into_result() {
        Ok(Reply::Status(s)) => Ok(s),
        other => Err(format!("Status answered {other:?}")),
    }
}

/// The first differing line of two outputs, for messages.
pub fn first_difference(want: &str, got: &str) -> String {
    let (w, g): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
    for i in 0..w.len().max(g.len()) {
        let (a, b) = (w.get(i), g.get(i));
        if a != b {
            return format!(
                "line {}: direct {:?}, through the shim {:?}",
                i + 1,
                a.copied().unwrap_or("<none>"),
                b.copied().unwrap_or("<none>")
            );
        }
    }
    "none".into()
}

pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// True when a tenant's standard error must be empty: `GPUSHARE_LOG` is not given to tenants.
pub fn stderr_must_be_silent() -> bool {
    tenant_log().is_none()
}

/// Fails with every collected problem (the broker's log follows: `Broker` prints it on drop
/// during a panic).
pub fn fail_all(failures: &[String]) {
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
