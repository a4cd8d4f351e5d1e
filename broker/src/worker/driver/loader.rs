//! Picking and loading the driver library: the real CUDA driver or the CPU device.
//!
//! # Why the broker resolves symbols itself
//!
//! cudarc 0.19 (`dynamic-loading`) dlopen()s the first loadable name of a fixed candidate list
//! that starts with `libcuda.so` and ends with `libcuda.so.1`; it honours no environment variable
//! naming the library. glibc's `dlopen("libcuda.so.1")` returns an already loaded library whose
//! SONAME is `libcuda.so.1` (the CPU device's), but `dlopen("libcuda.so")` matches no SONAME and
//! searches the disk — on a GPU host that finds the real driver's development symlink. So
//! loading the CPU device first is not enough to make cudarc's loader pick it, and
//! `LD_LIBRARY_PATH` cannot be changed for a running process. The broker therefore uses cudarc
//! for the driver API's types and constants only, and resolves the entry points from the library
//! it chose itself ([`super::api::Api`]):
//!
//! - `cpu`: `libgpushare_cpu.so` opened **by path** with `RTLD_NOW | RTLD_GLOBAL` (so any later
//!   `dlopen("libcuda.so.1")` in the process returns it too). Found at `$GPUSHARE_CPU_LIB`, else
//!   next to the running executable, else in the parent of a `deps/` directory (test
//!   binaries), else in the sibling `release`/`debug` target directories.
//! - `cuda`: `libcuda.so.1`, the name the driver is installed under (as libcudart uses it).
//! - `auto`: the real driver if it loads, initialises and has a device; otherwise the CPU device.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use libloading::os::unix::{Library as UnixLibrary, RTLD_GLOBAL, RTLD_LOCAL, RTLD_NOW};
use libloading::Library;

use super::api::Api;
use super::DeviceError;

/// File name of the CPU device library (`cargo build --release -p gpushare-cpu`).
pub const CPU_LIB_NAME: &str = "libgpushare_cpu.so";
/// Environment variable naming the CPU device library explicitly.
pub const CPU_LIB_ENV: &str = "GPUSHARE_CPU_LIB";
/// Name the real driver is loaded under.
pub const CUDA_LIB_NAME: &str = "libcuda.so.1";

/// Which driver the broker executes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceChoice {
    /// The CPU device (`libgpushare_cpu.so`).
    Cpu,
    /// The real CUDA driver (`libcuda.so.1`).
    Cuda,
    /// The real driver if one loads and has a device, else the CPU device.
    Auto,
}

/// Which library was loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The CPU device, from this path.
    Cpu(PathBuf),
    /// The real driver.
    Cuda,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Cpu(p) => write!(f, "CPU device ({})", p.display()),
            Backend::Cuda => write!(f, "CUDA driver ({CUDA_LIB_NAME})"),
        }
    }
}

/// Directories searched for the CPU device library after `$GPUSHARE_CPU_LIB`.
pub fn cpu_lib_candidates() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        dirs.push(dir.clone());
        let profile = if dir.file_name() == Some(OsStr::new("deps")) {
            dir.parent().map(Path::to_path_buf)
        } else {
            Some(dir.clone())
        };
        if let Some(profile) = profile {
            if profile != dir {
                dirs.push(profile.clone());
            }
            if let Some(target) = profile.parent() {
                for name in ["release", "debug"] {
                    let d = target.join(name);
                    if d != profile {
                        dirs.push(d);
                    }
                }
            }
        }
    }
    dirs.into_iter().map(|d| d.join(CPU_LIB_NAME)).collect()
}

/// The CPU device library: `$GPUSHARE_CPU_LIB`, else the first of [`cpu_lib_candidates`] that
/// exists.
pub fn find_cpu_lib() -> Result<PathBuf, DeviceError> {
    if let Some(p) = std::env::var_os(CPU_LIB_ENV) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(DeviceError::Load(format!(
                "{CPU_LIB_ENV}={} does not name a file",
                p.display()
            )))
        };
    }
    let candidates = cpu_lib_candidates();
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| {
            DeviceError::Load(format!(
                "{CPU_LIB_NAME} not found; build it with `cargo build --release -p gpushare-cpu` \
                 or set {CPU_LIB_ENV}. Searched: {}",
                candidates
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

/// A loading error with its causes (libloading's `Display` omits `dlerror()`'s text).
fn describe(e: &libloading::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        s += &format!(": {c}");
        src = c.source();
    }
    s
}

fn resolve(lib: Library, what: &str) -> Result<Api, DeviceError> {
    Api::resolve(lib).map_err(|missing| {
        DeviceError::Load(format!(
            "{what} lacks driver entry points: {}",
            missing.join(", ")
        ))
    })
}

/// Loads the CPU device by path.
pub fn load_cpu() -> Result<(Api, Backend), DeviceError> {
    let path = find_cpu_lib()?;
    // SAFETY: loading runs the library's initialisers; the CPU device's are Rust statics with no
    // preconditions on the caller. The library stays loaded for the life of the `Api`.
    let lib = unsafe { UnixLibrary::open(Some(&path), RTLD_NOW | RTLD_GLOBAL) }.map_err(|e| {
        DeviceError::Load(format!("cannot load {}: {}", path.display(), describe(&e)))
    })?;
    let api = resolve(lib.into(), &path.display().to_string())?;
    Ok((api, Backend::Cpu(path)))
}

/// Loads the real driver by its installed name.
pub fn load_cuda() -> Result<(Api, Backend), DeviceError> {
    // SAFETY: loading the system's CUDA driver runs its initialisers, which have no
    // preconditions on the caller; the library stays loaded for the life of the `Api`.
    let lib = unsafe { UnixLibrary::open(Some(CUDA_LIB_NAME), RTLD_NOW | RTLD_LOCAL) }
        .map_err(|e| DeviceError::Load(format!("cannot load {CUDA_LIB_NAME}: {}", describe(&e))))?;
    let api = resolve(lib.into(), CUDA_LIB_NAME)?;
    Ok((api, Backend::Cuda))
}
