//! Where tenants find the broker: the socket path and the environment variables the shim reads.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Environment variable naming the broker socket (read by the broker, the CLI and the shim).
pub const SOCKET_ENV: &str = "GPUSHARE_SOCKET";
/// Environment variable carrying the tenant name to the shim.
pub const TENANT_NAME_ENV: &str = "GPUSHARE_TENANT_NAME";

/// The effective user id of this process.
pub fn uid() -> u32 {
    std::fs::metadata("/proc/self").map_or(0, |m| m.uid())
}

/// The default socket: `$GPUSHARE_SOCKET`, else `$XDG_RUNTIME_DIR/gpushare/broker.sock`, else
/// `/tmp/gpushare-$UID/broker.sock`.
pub fn default_socket() -> PathBuf {
    if let Some(p) = std::env::var_os(SOCKET_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
        return Path::new(&dir).join("gpushare").join("broker.sock");
    }
    PathBuf::from(format!("/tmp/gpushare-{}", uid())).join("broker.sock")
}
