//! Harness for the black-box conformance suite.
//!
//! The suite treats the CPU device (`libgpushare_cpu.so`, SONAME `libcuda.so.1`) exactly like
//! NVIDIA's driver: C programs in `tests/c/` are compiled with gcc against NVIDIA's official
//! `cuda.h` (from the pinned PyPI wheel installed by `scripts/setup-cuda-deps.sh`) and linked with
//! `-lcuda`; at run time `LD_LIBRARY_PATH` points at a directory whose `libcuda.so` /
//! `libcuda.so.1` are symlinks to the library under test.
//!
//! * The library is `$GPUSHARE_CPU_LIB` if set (it may even be a real `libcuda.so.1`), else
//!   `libgpushare_cpu.so` in the test binary's target profile directory (or its `deps/`), then in
//!   the other usual profile directories. Build it with `cargo build --release -p gpushare-cpu`.
//! * Every program runs with a timeout and in its own process group, which is killed on timeout:
//!   a hang fails the test instead of blocking CI.
//! * `GPUSHARE_CPU_PROFILE`, `GPUSHARE_CPU_MEMORY`, `GPUSHARE_CPU_PACING` and
//!   `GPUSHARE_CPU_THREADS` are removed from the inherited environment so each test sets exactly
//!   what it needs; `GPUSHARE_LOG` is passed through for debugging.
//! * Timing-sensitive tests run exclusively ([`exclusive`]); all others share ([`shared`]).
//! * The shim + broker end-to-end tests (`tests/shim.rs`) use the fixtures of [`broker`].

pub mod broker;
pub mod cudart;
pub mod process;

pub use cudart::Cudart;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fmt;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread;
use std::time::{Duration, Instant};

/// Environment variables of the CPU device that tests control explicitly.
const CONTROLLED_ENV: &[&str] = &[
    "GPUSHARE_CPU_PROFILE",
    "GPUSHARE_CPU_MEMORY",
    "GPUSHARE_CPU_PACING",
    "GPUSHARE_CPU_THREADS",
];

/// The h200 profile's own memory size, for tests that check it (more than 100 GiB): without it the
/// CPU device reports what the host can back (docs/cpu-device.md, "Device memory size").
pub const H200_MEMORY: (&str, &str) = ("GPUSHARE_CPU_MEMORY", "143771MiB");

/// File name of the CPU device library built by `cargo build -p gpushare-cpu`.
pub const CPU_LIB_NAME: &str = "libgpushare_cpu.so";

/// The repository root (the parent of this package's directory).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent directory")
        .to_path_buf()
}

/// `examples/kernels`, the PTX corpus.
pub fn kernels_dir() -> PathBuf {
    repo_root().join("examples").join("kernels")
}

/// Runs the setup script `scripts/<name>` (which installs what it needs, idempotently) and
/// returns its standard output; panics with its output when it fails.
pub fn run_setup_script(name: &str) -> String {
    let root = repo_root();
    let script = root.join("scripts").join(name);
    let out = Command::new("bash")
        .arg(&script)
        .current_dir(&root)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed ({}):\n{}{}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `scripts/setup-cuda-deps.sh` once per process and returns the directory holding
/// NVIDIA's `cuda.h`.
pub fn cuda_include_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        run_setup_script("setup-cuda-deps.sh");
        let script = "scripts/setup-cuda-deps.sh";
        let root = repo_root();
        let inc = root.join(".deps/cuda/nvidia/cuda_runtime/include");
        assert!(
            inc.join("cuda.h").is_file(),
            "{} has no cuda.h after running {script}",
            inc.display(),
        );
        inc
    })
}

/// The target profile directory of the running test binary (`target/<profile>`), found by
/// walking up from `current_exe()` (test binaries live in `target/<profile>/deps/`).
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    for dir in exe.ancestors().skip(1) {
        if dir.file_name() == Some(OsStr::new("deps")) {
            if let Some(parent) = dir.parent() {
                return parent.to_path_buf();
            }
        }
    }
    exe.parent().expect("exe has a parent").to_path_buf()
}

/// Where to look for a build output named `file`: the test's own profile directory (and its
/// `deps/`) first, then the `release` and `debug` siblings.
fn candidate_paths(file: &str) -> Vec<PathBuf> {
    let own = profile_dir();
    let mut dirs = vec![own.clone(), own.join("deps")];
    if let Some(target) = own.parent() {
        for profile in ["release", "debug"] {
            let d = target.join(profile);
            if d != own {
                dirs.push(d.clone());
                dirs.push(d.join("deps"));
            }
        }
    }
    dirs.into_iter().map(|d| d.join(file)).collect()
}

/// Finds a build output; `None` with the searched paths if absent.
pub fn find_build_output(file: &str) -> Result<PathBuf, Vec<PathBuf>> {
    let candidates = candidate_paths(file);
    match candidates.iter().find(|p| p.is_file()) {
        Some(p) => {
            let own = profile_dir();
            if !p.starts_with(&own) {
                eprintln!(
                    "note: using {} (not built in this test's profile {})",
                    p.display(),
                    own.display()
                );
            }
            Ok(p.clone())
        }
        None => Err(candidates),
    }
}

/// The library under test: `$GPUSHARE_CPU_LIB`, else `libgpushare_cpu.so` from the target dir.
pub fn cpu_lib() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        if let Some(p) = std::env::var_os("GPUSHARE_CPU_LIB") {
            let p = PathBuf::from(p);
            assert!(p.is_file(), "GPUSHARE_CPU_LIB={} does not exist", p.display());
            return p.canonicalize().expect("canonicalize GPUSHARE_CPU_LIB");
        }
        match find_build_output(CPU_LIB_NAME) {
            Ok(p) => p.canonicalize().expect("canonicalize library path"),
            Err(searched) => panic!(
                "{CPU_LIB_NAME} not found. Build the CPU device first:\n\n    \
                 cargo build --release -p gpushare-cpu\n\n(or set GPUSHARE_CPU_LIB=/path/to/lib). Searched:\n{}",
                searched
                    .iter()
                    .map(|p| format!("  {}", p.display()))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        }
    })
}

fn pid_alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// A per-process scratch directory under `target/<profile>/gpushare-tests/`. Directories of
/// processes that no longer exist are removed.
pub fn work_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = profile_dir().join("gpushare-tests");
        std::fs::create_dir_all(&base).expect("create gpushare-tests dir");
        if let Ok(entries) = std::fs::read_dir(&base) {
            for e in entries.flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                if let Some(pid) = name
                    .strip_prefix("run-")
                    .and_then(|p| p.parse::<u32>().ok())
                {
                    if pid != std::process::id() && !pid_alive(pid) {
                        let _ = std::fs::remove_dir_all(e.path());
                    }
                }
            }
        }
        let dir = base.join(format!("run-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bin")).expect("create work dir");
        dir
    })
}

/// A directory holding `libcuda.so` and `libcuda.so.1` symlinks to [`cpu_lib`]; put it on
/// `LD_LIBRARY_PATH` (and `-L` when linking). `libcuda.so` is also the first name cudarc's
/// dynamic loader tries.
pub fn lib_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let lib = cpu_lib();
        let dir = work_dir().join("lib");
        std::fs::create_dir_all(&dir).expect("create lib dir");
        for name in ["libcuda.so", "libcuda.so.1"] {
            let link = dir.join(name);
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(lib, &link)
                .unwrap_or_else(|e| panic!("symlink {} -> {}: {e}", link.display(), lib.display()));
        }
        dir
    })
}

/// Compiles `tests/c/<name>.c` once per process (gcc, `-Wall -Werror`, NVIDIA's `cuda.h`,
/// `-lcuda` from [`lib_dir`]) and returns the executable.
pub fn compile_c(name: &str) -> PathBuf {
    compile_c_program(name, None)
}

/// Compiles `tests/c/<name>.c` once per process as a CUDA runtime program against libcudart 12.9
/// ([`compile_cudart_c_for`]).
pub fn compile_cudart_c(name: &str) -> PathBuf {
    compile_c_program(name, Some(Cudart::V12_9))
}

/// Compiles `tests/c/<name>.c` once per process and runtime as a CUDA runtime program: the
/// runtime's own `cuda_runtime_api.h` and `crt/` headers, linked against its real
/// `libcudart.so.<major>` with an rpath to it (so [`run_program`]'s `LD_LIBRARY_PATH` only has to
/// provide `libcuda.so.1`).
pub fn compile_cudart_c_for(name: &str, rt: Cudart) -> PathBuf {
    compile_c_program(name, Some(rt))
}

fn compile_c_program(name: &str, cudart: Option<Cudart>) -> PathBuf {
    type Slot = Arc<OnceLock<Result<PathBuf, String>>>;
    static BUILT: OnceLock<Mutex<HashMap<String, Slot>>> = OnceLock::new();
    let slot: Slot = {
        let mut map = BUILT
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        map.entry(exe_name(name, cudart)).or_default().clone()
    };
    let result = slot.get_or_init(|| {
        let src_dir = repo_root().join("tests").join("c");
        let src = src_dir.join(format!("{name}.c"));
        let out = work_dir().join("bin").join(exe_name(name, cudart));
        let mut cmd = Command::new("gcc");
        cmd.args(["-std=gnu11", "-O1", "-g", "-Wall", "-Werror"]);
        match cudart {
            Some(rt) => rt.include_dirs().into_iter().for_each(|d| {
                cmd.arg("-I").arg(d);
            }),
            None => {
                cmd.arg("-I").arg(cuda_include_dir());
            }
        }
        cmd.arg("-I").arg(&src_dir).arg(&src).arg("-o").arg(&out);
        if let Some(rt) = cudart {
            let dir = rt.lib_dir();
            cmd.arg("-L")
                .arg(&dir)
                .arg(format!("-Wl,-rpath,{}", dir.display()))
                .arg(format!("-l:{}", rt.soname()));
        } else {
            cmd.arg("-L").arg(lib_dir()).arg("-lcuda");
        }
        let output = cmd
            .args(["-lpthread", "-ldl", "-lm"])
            .output()
            .map_err(|e| format!("cannot run gcc: {e}"))?;
        if output.status.success() {
            Ok(out)
        } else {
            Err(format!(
                "gcc failed for {} ({}):\n{}{}",
                src.display(),
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    });
    match result {
        Ok(p) => p.clone(),
        Err(msg) => panic!("{msg}"),
    }
}

/// The executable's name: `<name>` (driver API, libcudart 12.9) or `<name>-cudart<label>`.
fn exe_name(name: &str, cudart: Option<Cudart>) -> String {
    match cudart {
        Some(rt) if rt != Cudart::V12_9 => format!("{name}-cudart{}", rt.label()),
        _ => name.to_string(),
    }
}

/// The result of running a program.
#[derive(Debug)]
pub struct RunOutput {
    pub command: String,
    /// Exit code, if it exited normally.
    pub code: Option<i32>,
    /// Signal that killed it, if any.
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub elapsed: Duration,
    pub stdout: String,
    pub stderr: String,
}

impl RunOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0) && !self.timed_out
    }
}

impl fmt::Display for RunOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "command: {}", self.command)?;
        if self.timed_out {
            writeln!(
                f,
                "result: TIMED OUT after {:.1?} (process group killed)",
                self.elapsed
            )?;
        } else if let Some(sig) = self.signal {
            writeln!(
                f,
                "result: killed by signal {sig} after {:.1?}",
                self.elapsed
            )?;
        } else {
            writeln!(
                f,
                "result: exit code {:?} after {:.1?}",
                self.code, self.elapsed
            )?;
        }
        writeln!(f, "--- stdout ---\n{}", self.stdout.trim_end())?;
        write!(f, "--- stderr ---\n{}", self.stderr.trim_end())
    }
}

fn drain<R: Read + Send + 'static>(r: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut r) = r {
            let _ = r.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

fn kill_group(child: &Child) {
    let pid = child.id() as libc::pid_t;
    // SAFETY: kill(2) with a negative pid signals the process group we created for the child
    // (process_group(0) makes the child its leader); it has no memory-safety preconditions.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
}

/// Runs `program` with `LD_LIBRARY_PATH` = [`lib_dir`], `GPUSHARE_KERNELS_DIR` = the corpus,
/// the given extra environment, and a timeout after which its whole process group is killed.
pub fn run_program(
    program: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    timeout: Duration,
) -> RunOutput {
    let mut cmd = Command::new(program);
    cmd.args(args);
    for var in CONTROLLED_ENV {
        cmd.env_remove(var);
    }
    let mut ld = lib_dir().as_os_str().to_os_string();
    if let Some(old) = std::env::var_os("LD_LIBRARY_PATH") {
        if !old.is_empty() {
            ld.push(":");
            ld.push(old);
        }
    }
    cmd.env("LD_LIBRARY_PATH", &ld);
    cmd.env("GPUSHARE_KERNELS_DIR", kernels_dir());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let described = format!(
        "{}{} {}",
        env.iter()
            .map(|(k, v)| format!("{k}={v} "))
            .collect::<String>(),
        program.display(),
        args.join(" ")
    );
    run_with_timeout(cmd, described, timeout)
}

/// Spawns `cmd` in its own process group with piped output; kills the group after `timeout`
/// (and, once the child is gone, any leftover members of its group).
pub fn run_with_timeout(mut cmd: Command, described: String, timeout: Duration) -> RunOutput {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.process_group(0);
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{described}`: {e}"));
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let mut timed_out = false;
    let status = loop {
        match child.try_wait().expect("try_wait") {
            Some(status) => break status,
            None if start.elapsed() >= timeout => {
                timed_out = true;
                kill_group(&child);
                break child.wait().expect("wait");
            }
            None => thread::sleep(Duration::from_millis(10)),
        }
    };
    let elapsed = start.elapsed();
    // Grandchildren (vmm_two_process) may hold the pipes open; they are in the same group.
    kill_group(&child);
    RunOutput {
        command: described,
        code: status.code(),
        signal: status.signal(),
        timed_out,
        elapsed,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// Compiles and runs `tests/c/<name>.c`, panicking with its output unless it exits 0.
pub fn run_c_test(name: &str, args: &[&str], env: &[(&str, &str)], timeout: Duration) -> RunOutput {
    let exe = compile_c(name);
    let out = run_program(&exe, args, env, timeout);
    assert!(out.success(), "conformance program `{name}` failed\n{out}");
    // Visible with `cargo test -- --nocapture`.
    println!("{out}");
    out
}

/// Compiles `tests/c/<name>.c` as a CUDA runtime program for `rt` ([`compile_cudart_c_for`]) and
/// runs it directly on the library under test, panicking with its output unless it exits 0.
pub fn run_cudart_test(
    rt: Cudart,
    name: &str,
    args: &[&str],
    env: &[(&str, &str)],
    timeout: Duration,
) -> RunOutput {
    let exe = compile_cudart_c_for(name, rt);
    let out = run_program(&exe, args, env, timeout);
    let label = rt.label();
    assert!(
        out.success(),
        "CUDA runtime program `{name}` (libcudart {label}) failed\n{out}"
    );
    println!("{out}");
    out
}

static TIMING_LOCK: RwLock<()> = RwLock::new(());

/// Held by ordinary tests: they may run concurrently with each other.
pub fn shared() -> RwLockReadGuard<'static, ()> {
    TIMING_LOCK.read().unwrap_or_else(|e| e.into_inner())
}

/// Held by timing-sensitive tests: nothing else in this process runs meanwhile.
pub fn exclusive() -> RwLockWriteGuard<'static, ()> {
    TIMING_LOCK.write().unwrap_or_else(|e| e.into_inner())
}

/// Compiles `examples/mlp/mlp.c` once per process (gcc, NVIDIA's `cuda.h`, `-lcuda` from
/// [`lib_dir`]); tests running concurrently share the executable.
pub fn compile_mlp() -> &'static Path {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| {
        let exe = work_dir().join("bin").join("example-mlp");
        std::fs::create_dir_all(exe.parent().expect("bin dir")).expect("create bin dir");
        let out = Command::new("gcc")
            .args(["-O2", "-Wall", "-Wextra", "-Werror", "-I"])
            .arg(cuda_include_dir())
            .arg(repo_root().join("examples/mlp/mlp.c"))
            .arg("-L")
            .arg(lib_dir())
            .args(["-lcuda", "-lm", "-o"])
            .arg(&exe)
            .output()
            .expect("run gcc");
        assert!(
            out.status.success(),
            "gcc failed for examples/mlp/mlp.c:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        exe
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hang_is_killed_with_its_process_group() {
        let mut cmd = Command::new("/bin/sh");
        // A background grandchild keeps the pipes open: it must be killed too.
        cmd.args(["-c", "echo started; sleep 30 & sleep 30"]);
        let out = run_with_timeout(cmd, "sh".into(), Duration::from_millis(500));
        assert!(out.timed_out, "{out}");
        assert!(!out.success());
        assert!(out.elapsed < Duration::from_secs(10), "{out}");
        assert_eq!(out.stdout.trim(), "started");
    }

    #[test]
    fn exit_codes_and_output_are_reported() {
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "echo out; echo err >&2; exit 3"]);
        let out = run_with_timeout(cmd, "sh".into(), Duration::from_secs(30));
        assert!(!out.timed_out);
        assert_eq!(out.code, Some(3));
        assert_eq!(out.stdout.trim(), "out");
        assert_eq!(out.stderr.trim(), "err");
    }
}
