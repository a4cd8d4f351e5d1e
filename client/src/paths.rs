//! Where tenants find the broker: the socket path and the environment variables the shim reads.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

/// Environment variable naming the broker socket (read by the broker, the CLI and the shim).
pub const SOCKET_ENV: &str = "GPUSHARE_SOCKET";
/// Environment variable carrying the tenant name to the shim.
pub const TENANT_NAME_ENV: &str = "GPUSHARE_TENANT_NAME";

/// Environment variable naming one more uid a client trusts as its broker, besides root and
/// its own (a system broker run under a service account).
pub const BROKER_UID_ENV: &str = "GPUSHARE_BROKER_UID";
/// The system broker's socket: where a broker run as root listens by default, and where a
/// client looks when its user runs no broker of its own.
pub const SYSTEM_SOCKET: &str = "/run/gpushare/broker.sock";
/// The system broker's policy file: read by a broker run as root without `--policy`, when it
/// exists.
pub const SYSTEM_POLICY: &str = "/etc/gpushare/policy.toml";

/// The effective user id of this process.
pub fn uid() -> u32 {
    crate::os::effective_uid()
}

fn from_env() -> Option<PathBuf> {
    std::env::var_os(SOCKET_ENV)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
}

/// This user's own broker socket: root's is [`SYSTEM_SOCKET`]; another user's is
/// `$XDG_RUNTIME_DIR/gpushare/broker.sock`, else `/tmp/gpushare-$UID/broker.sock`.
pub fn user_socket() -> PathBuf {
    socket_of(uid(), std::env::var_os("XDG_RUNTIME_DIR").as_deref())
}

/// The own socket of user `uid` whose runtime directory is `runtime` (see [`user_socket`]).
fn socket_of(uid: u32, runtime: Option<&std::ffi::OsStr>) -> PathBuf {
    if uid == 0 {
        return PathBuf::from(SYSTEM_SOCKET);
    }
    if let Some(dir) = runtime.filter(|p| !p.is_empty()) {
        return Path::new(dir).join("gpushare").join("broker.sock");
    }
    PathBuf::from(format!("/tmp/gpushare-{uid}")).join("broker.sock")
}

/// Where a broker listens by default: `$GPUSHARE_SOCKET`, else [`user_socket`].
pub fn broker_socket() -> PathBuf {
    from_env().unwrap_or_else(user_socket)
}

/// Where a client (the shim, the CLI) looks for the broker: `$GPUSHARE_SOCKET`; else the user's
/// own socket ([`user_socket`]) when a socket is there; else [`SYSTEM_SOCKET`] when a socket is
/// there; else the user's own (for the error message).
pub fn default_socket() -> PathBuf {
    if let Some(p) = from_env() {
        return p;
    }
    let own = user_socket();
    let is_socket = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.file_type().is_socket());
    if !is_socket(&own) && is_socket(Path::new(SYSTEM_SOCKET)) {
        return PathBuf::from(SYSTEM_SOCKET);
    }
    own
}

/// The uid [`BROKER_UID_ENV`] names, if it is set to a number.
pub fn extra_broker_uid() -> Option<u32> {
    std::env::var(BROKER_UID_ENV).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn root_uses_the_system_socket_and_users_their_own() {
        let rt = Some(OsStr::new("/run/user/1000"));
        assert_eq!(socket_of(0, rt), PathBuf::from(SYSTEM_SOCKET));
        assert_eq!(
            socket_of(0, None),
            PathBuf::from("/run/gpushare/broker.sock")
        );
        assert_eq!(
            socket_of(1000, rt),
            PathBuf::from("/run/user/1000/gpushare/broker.sock")
        );
        assert_eq!(
            socket_of(1000, Some(OsStr::new(""))),
            PathBuf::from("/tmp/gpushare-1000/broker.sock")
        );
        assert_eq!(SYSTEM_POLICY, "/etc/gpushare/policy.toml");
    }
}
