//! The NVIDIA CUDA runtimes (`libcudart`) the libcudart programs `tests/c/cudart_*.c` are built
//! against: 12.9 (`nvidia-cuda-runtime-cu12`), 13.0 and the newest 13.x (`nvidia-cuda-runtime`,
//! whose wheels install into `nvidia/cu13/`), all from PyPI via `scripts/setup-cuda-deps.sh`.
//! Each program is compiled once per runtime against that runtime's own headers and linked to its
//! `libcudart.so.<major>` with an rpath, so the same source runs on every runtime unmodified.

use std::path::PathBuf;

use crate::{cuda_include_dir, repo_root};

/// One pinned libcudart (see `scripts/setup-cuda-deps.sh`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cudart {
    /// 12.9.79 (`.deps/cuda`, crt headers from `.deps/cuda-nvcc`).
    V12_9,
    /// 13.0.96 (`.deps/cuda-13.0`: runtime, crt and nvcc wheels).
    V13_0,
    /// 13.5.37, the newest 13.x when pinned (`.deps/cuda-13.5`).
    V13_5,
}

impl Cudart {
    /// Every runtime, oldest first.
    pub const ALL: [Cudart; 3] = [Cudart::V12_9, Cudart::V13_0, Cudart::V13_5];

    /// "12.9", "13.0", "13.5": names executables and test labels.
    pub fn label(self) -> &'static str {
        match self {
            Cudart::V12_9 => "12.9",
            Cudart::V13_0 => "13.0",
            Cudart::V13_5 => "13.5",
        }
    }

    /// `CUDART_VERSION` of its headers (what `cudaRuntimeGetVersion` reports).
    pub fn version(self) -> i32 {
        match self {
            Cudart::V12_9 => 12090,
            Cudart::V13_0 => 13000,
            Cudart::V13_5 => 13050,
        }
    }

    /// The library's file name (and SONAME).
    pub fn soname(self) -> &'static str {
        match self {
            Cudart::V12_9 => "libcudart.so.12",
            _ => "libcudart.so.13",
        }
    }

    /// The wheel directory `nvidia/cu13` of a 13.x runtime.
    fn cu13_root(self) -> PathBuf {
        repo_root()
            .join(".deps")
            .join(format!("cuda-{}", self.label()))
            .join("nvidia/cu13")
    }

    /// The include directories, in order: `cuda_runtime_api.h`, then the `crt/` headers (and
    /// `fatbinary_section.h`): 12.9's come from two wheel directories, a 13.x runtime's from one.
    pub fn include_dirs(self) -> Vec<PathBuf> {
        let runtime = cuda_include_dir().to_path_buf(); // runs scripts/setup-cuda-deps.sh
        match self {
            Cudart::V12_9 => {
                let nvcc = repo_root().join(".deps/cuda-nvcc/nvidia/cuda_nvcc/include");
                vec![runtime, checked(nvcc, "crt/host_defines.h")]
            }
            _ => vec![checked(
                self.cu13_root().join("include"),
                "crt/host_defines.h",
            )],
        }
    }

    /// The directory holding the runtime's `libcudart.so.<major>`.
    pub fn lib_dir(self) -> PathBuf {
        let dir = match self {
            Cudart::V12_9 => cuda_include_dir()
                .parent()
                .expect("include dir has a parent")
                .join("lib"),
            _ => {
                let _ = cuda_include_dir(); // runs scripts/setup-cuda-deps.sh
                self.cu13_root().join("lib")
            }
        };
        checked(dir, self.soname())
    }
}

/// `dir`, after checking it holds `file` (else: run the setup script).
fn checked(dir: PathBuf, file: &str) -> PathBuf {
    assert!(
        dir.join(file).is_file(),
        "{} has no {file} (scripts/setup-cuda-deps.sh)",
        dir.display()
    );
    dir
}
