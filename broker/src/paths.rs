//! Where things are: the broker's socket and the shim library.

use std::path::{Path, PathBuf};

pub use gpushare_client::paths::{
    broker_socket, default_socket, uid, SOCKET_ENV, SYSTEM_POLICY, SYSTEM_SOCKET, TENANT_NAME_ENV,
};
/// Environment variable naming the shim library explicitly.
pub const SHIM_LIB_ENV: &str = "GPUSHARE_SHIM_LIB";
/// File name of the shim library (`cargo build --release -p gpushare-shim`).
pub const SHIM_LIB_NAME: &str = "libgpushare_shim.so";

/// Errors of path lookups.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    /// The shim library is not where it should be.
    #[error(
        "{SHIM_LIB_NAME} not found (looked at {searched}); build the shim first \
         (`cargo build --release -p gpushare-shim`, which puts it next to the `gpushare` \
         executable) or set {SHIM_LIB_ENV}"
    )]
    ShimMissing {
        /// Paths looked at.
        searched: String,
    },
}

/// The shim library: `$GPUSHARE_SHIM_LIB`, else next to the running executable.
pub fn find_shim() -> Result<PathBuf, PathError> {
    let mut searched = Vec::new();
    if let Some(p) = std::env::var_os(SHIM_LIB_ENV).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        searched.push(p);
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        let p = dir.join(SHIM_LIB_NAME);
        if p.is_file() {
            return Ok(p);
        }
        searched.push(p);
    }
    Err(PathError::ShimMissing {
        searched: searched
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    })
}
