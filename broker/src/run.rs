//! `gpushare run -- CMD...`: runs a command as a tenant of the broker.
//!
//! The command gets `GPUSHARE_SOCKET` and `GPUSHARE_TENANT_NAME`, the shim in `LD_PRELOAD`, and a
//! directory whose `libcuda.so.1` and `libcuda.so` are symlinks to the shim first on
//! `LD_LIBRARY_PATH` — `LD_PRELOAD` covers `DT_NEEDED libcuda.so.1` and `dlopen("libcuda.so.1")`
//! (the shim's SONAME), the directory covers `dlopen("libcuda.so")` (cudarc's first candidate).
//! Then `gpushare` replaces itself with the command (`exec`), so signals and the exit status
//! are the command's own.

use std::ffi::{OsStr, OsString};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::paths::{self, PathError, SOCKET_ENV, TENANT_NAME_ENV};

/// Errors of `gpushare run`.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No command given.
    #[error("no command to run (usage: gpushare run [--name NAME] -- CMD [ARGS...])")]
    NoCommand,
    /// The shim is missing.
    #[error(transparent)]
    Shim(#[from] PathError),
    /// No broker socket.
    #[error("no broker socket at {0} (start one with `gpushare broker`, or pass --socket)")]
    NoBroker(String),
    /// Preparing the library directory failed.
    #[error("cannot prepare {path}: {source}")]
    LibDir {
        /// Path.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// `exec` failed.
    #[error("cannot run {cmd}: {source}")]
    Exec {
        /// Command.
        cmd: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// The directory of `libcuda.so.1`/`libcuda.so` links to `shim`: one per user and shim path
/// (named by a hash of the path), so concurrent runs with different shims never flip each
/// other's links. A link is created under a temporary name and renamed into place (atomic).
fn lib_dir(shim: &Path) -> Result<PathBuf, RunError> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    shim.hash(&mut h);
    let dir = std::env::temp_dir()
        .join(format!("gpushare-run-{}", paths::uid()))
        .join(format!("lib-{:016x}", h.finish()));
    let err = |source| RunError::LibDir {
        path: dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(err)?;
    for name in ["libcuda.so.1", "libcuda.so"] {
        let link = dir.join(name);
        let current = std::fs::read_link(&link).ok();
        if current.as_deref() != Some(shim) {
            let tmp = dir.join(format!(".{name}.{}", std::process::id()));
            let _ = std::fs::remove_file(&tmp);
            std::os::unix::fs::symlink(shim, &tmp).map_err(err)?;
            std::fs::rename(&tmp, &link).map_err(err)?;
        }
    }
    Ok(dir)
}

fn prepend(var: &str, first: &OsStr, sep: &str) -> OsString {
    let mut v = first.to_os_string();
    if let Some(old) = std::env::var_os(var).filter(|o| !o.is_empty()) {
        v.push(sep);
        v.push(old);
    }
    v
}

/// `cmd` prepared to run as a tenant of the broker at `socket` (named `name`, or after the
/// program's file name).
pub fn tenant_command(
    socket: &Path,
    name: Option<String>,
    cmd: &[OsString],
) -> Result<Command, RunError> {
    let (program, args) = cmd.split_first().ok_or(RunError::NoCommand)?;
    let shim = paths::find_shim()?;
    let shim = shim.canonicalize().unwrap_or(shim);
    if !socket.exists() {
        return Err(RunError::NoBroker(socket.display().to_string()));
    }
    let socket = socket
        .canonicalize()
        .unwrap_or_else(|_| socket.to_path_buf());
    let dir = lib_dir(&shim)?;
    let name = name.unwrap_or_else(|| {
        Path::new(program)
            .file_name()
            .map_or_else(|| "tenant".into(), |n| n.to_string_lossy().into_owned())
    });
    let mut c = Command::new(program);
    c.args(args)
        .env(SOCKET_ENV, &socket)
        .env(TENANT_NAME_ENV, &name)
        .env("LD_PRELOAD", prepend("LD_PRELOAD", shim.as_os_str(), " "))
        .env(
            "LD_LIBRARY_PATH",
            prepend("LD_LIBRARY_PATH", dir.as_os_str(), ":"),
        );
    Ok(c)
}

/// Replaces this process with `cmd` running as a tenant; returns only on failure.
pub fn run(socket: &Path, name: Option<String>, cmd: &[OsString]) -> RunError {
    let mut c = match tenant_command(socket, name, cmd) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let err = c.exec();
    RunError::Exec {
        cmd: c.get_program().to_string_lossy().into_owned(),
        source: err,
    }
}
