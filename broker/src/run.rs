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
use crate::private_dir::{self, DirError, Rule};

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
    /// No private directory for the library links.
    #[error("no private directory for the library links: {0}")]
    PrivateDir(#[from] DirError),
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

/// The directory of `libcuda.so.1`/`libcuda.so` links to `shim`, which comes first on the
/// tenant's `LD_LIBRARY_PATH`: `lib-<hash of the shim's path>` (so concurrent runs with
/// different shims never flip each other's links) in a directory nobody else can write to or
/// enter — [`private_base`] — so no other user can put a library there. A link is created under
/// a temporary name and renamed into place (atomic).
fn lib_dir(shim: &Path) -> Result<PathBuf, RunError> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    shim.hash(&mut h);
    let base = private_base()?;
    let dir = base.join(format!("lib-{:016x}", h.finish()));
    private_dir::ensure(&dir, Rule::Private)?;
    let err = |source| RunError::LibDir {
        path: dir.display().to_string(),
        source,
    };
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

/// A directory only this user can enter: `$XDG_RUNTIME_DIR/gpushare-run` when the runtime
/// directory is the user's own and private; else `$TMPDIR/gpushare-run-$UID` when that is (or
/// can be made) a private directory of the user; else — someone else made it, or opened it — a
/// fresh directory with an unpredictable name (`gpushare-run-$UID-XXXX`, left behind), with a
/// warning naming the cause.
fn private_base() -> Result<PathBuf, RunError> {
    if let Some(rt) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        let rt = PathBuf::from(rt);
        if private_dir::check(&rt, Rule::Private).is_ok() {
            let base = rt.join("gpushare-run");
            if private_dir::ensure(&base, Rule::Private).is_ok() {
                return Ok(base);
            }
        }
    }
    let tmp = std::env::temp_dir();
    let uid = private_dir::effective_uid();
    let base = tmp.join(format!("gpushare-run-{uid}"));
    match private_dir::ensure(&base, Rule::Private) {
        Ok(()) => Ok(base),
        Err(e) => {
            eprintln!(
                "gpushare run: not using {}: {e}; using a new private directory",
                base.display()
            );
            Ok(private_dir::fresh(&tmp, &format!("gpushare-run-{uid}-"))?)
        }
    }
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
