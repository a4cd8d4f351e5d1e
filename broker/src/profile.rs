//! `gpushare profile --out FILE -- CMD...`: runs a command alone, as the only tenant of a private
//! broker, and writes what the scheduler's cost model learned from it (readable TOML; see
//! [`crate::scheduler::cost`]). A policy lists such files under `[scheduler] profiles` to seed
//! the model at start — Olympian's offline profiling, without changing the program.

use std::ffi::OsString;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gpushare_client::ShmConfig;

use crate::broker::{Broker, BrokerConfig, BrokerError};
use crate::device::DeviceChoice;
use crate::policy::Policy;
use crate::run::{tenant_command, RunError};

/// Errors of `gpushare profile`.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The private broker did not start.
    #[error("cannot start the profiling broker: {0}")]
    Broker(#[from] BrokerError),
    /// The command could not be prepared.
    #[error(transparent)]
    Run(#[from] RunError),
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ProfileError {
    let what = what.into();
    move |source| ProfileError::Io { what, source }
}

/// A fresh private directory (mode 0700) for the profiling broker's socket.
fn private_dir() -> Result<PathBuf, ProfileError> {
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    for attempt in 0..100u32 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = base.join(format!(
            "gpushare-profile-{}-{nanos:x}-{attempt}",
            std::process::id()
        ));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io(format!("creating {}", dir.display()))(e)),
        }
    }
    Err(io("creating a private directory")(std::io::Error::other(
        "no free name",
    )))
}

/// Runs `cmd` as the only tenant of a private broker on `device` and writes the learned
/// profile to `out`; returns the command's exit code (128 + signal when killed).
pub fn profile(
    device: DeviceChoice,
    out: &Path,
    name: Option<String>,
    cmd: &[OsString],
) -> Result<i32, ProfileError> {
    let dir = private_dir()?;
    let result = profile_in(&dir, device, out, name, cmd);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn profile_in(
    dir: &Path,
    device: DeviceChoice,
    out: &Path,
    name: Option<String>,
    cmd: &[OsString],
) -> Result<i32, ProfileError> {
    let socket = dir.join("broker.sock");
    let broker = Broker::start(BrokerConfig {
        device,
        socket: socket.clone(),
        policy: Policy::default(),
        policy_file: None,
        shm: ShmConfig::default(),
        drain_timeout: Duration::from_secs(10),
    })?;
    let env = std::sync::Arc::clone(broker.env());
    let stop = broker.stop_handle();
    let serving = std::thread::spawn(move || broker.run());
    let status = tenant_command(&socket, name, cmd).and_then(|mut c| {
        c.status().map_err(|source| RunError::Exec {
            cmd: c.get_program().to_string_lossy().into_owned(),
            source,
        })
    });
    // Stopping drains the tenant's last completions into the model.
    stop.stop();
    let _ = serving.join();
    let status = status?;
    let text = env.sched.profile().unwrap_or_default();
    std::fs::write(out, text).map_err(io(format!("writing {}", out.display())))?;
    use std::os::unix::process::ExitStatusExt;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}
