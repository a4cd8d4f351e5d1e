//! The MLP inference example (`examples/mlp/mlp.c`) written with cudarc's driver API.
//!
//! Same layer sizes, same deterministic weights and inputs (mlp.c's LCG), same kernels
//! (`sgemm_tiled`, `bias_relu` and `softmax_rows` from the kernel directory's `.ptx` files), same
//! launch configurations, same CPU reference and checksum, same output format: for the same
//! arguments its stdout is byte-identical to mlp.c's on any device that computes correctly, so
//! tests can compare the two across devices and ways of running.
//!
//! Weights are uploaded once; then each batch runs x·W1 (`sgemm_tiled`), +b1 and ReLU
//! (`bias_relu`), ·W2 (`sgemm_tiled`) and a row softmax (`softmax_rows`) on one non-blocking
//! stream, copies the probabilities back and checks them against a CPU reference.
//!
//! usage: `gpushare-example-cudarc-mlp KERNELS_DIR [--name NAME] [--batches N]`
//!
//! Exit status: 0 when every batch matches the CPU reference, 1 on a CUDA error, an unreadable
//! kernel file or a mismatch, 2 on a usage error (as mlp.c). Errors go to stderr.
//!
//! cudarc dlopen()s the driver library at run time (`libcuda.so`, then `libcuda.so.1`, …), so
//! `LD_LIBRARY_PATH` pointing at symlinks to `libgpushare_cpu.so` runs this on the CPU device.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DriverError, LaunchConfig,
    PushKernelArg,
};
use cudarc::nvrtc::Ptx;

const BATCH: usize = 64;
const IN: usize = 256;
const HIDDEN: usize = 256;
const CLASSES: usize = 32;

/// mlp.c's generator: a 32-bit LCG, state starting at 12345, shared by weights and inputs.
struct Lcg(u32);

impl Lcg {
    /// `((float)(state >> 8) / (float)(1u << 24) - 0.5f) * scale`, in f32 as in C.
    fn next_weight(&mut self, scale: f32) -> f32 {
        self.0 = self.0.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        ((self.0 >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * scale
    }

    fn fill(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.next_weight(scale)).collect()
    }
}

/// `c = a · b` (row-major, a is m×k, b is k×n), accumulating in f32 in mlp.c's order.
fn cpu_sgemm(a: &[f32], b: &[f32], c: &mut [f32], m: usize, n: usize, k: usize) {
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0f32;
            for p in 0..k {
                acc += a[i * k + p] * b[p * n + j];
            }
            c[i * n + j] = acc;
        }
    }
}

/// C's `atoi` (glibc: `(int)strtol(s, NULL, 10)`): leading white space, an optional sign, then
/// digits up to the first non-digit; 0 if there are none; saturating at the `long` range, then
/// truncated to `int`.
fn atoi(s: &[u8]) -> i32 {
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
        i += 1;
    }
    let negative = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let mut v: i64 = 0;
    for &d in s[i..].iter().take_while(|d| d.is_ascii_digit()) {
        let d = i64::from(d - b'0');
        v = if negative {
            v.saturating_mul(10).saturating_sub(d)
        } else {
            v.saturating_mul(10).saturating_add(d)
        };
    }
    v as i32
}

/// glibc's `printf("%.3f", v)`. Rust's `{:.3}` rounds the exact binary value half-to-even like
/// glibc; only the non-finite spellings differ.
fn c_fixed3(v: f64) -> String {
    if v.is_nan() {
        if v.is_sign_negative() { "-nan" } else { "nan" }.to_string()
    } else if v.is_infinite() {
        if v < 0.0 { "-inf" } else { "inf" }.to_string()
    } else {
        format!("{v:.3}")
    }
}

/// A readable failure: what was being done and why it failed.
struct Failure(String);

/// Describes a driver error by its name and description (`CUDA_ERROR_…: …`).
fn describe(e: &DriverError) -> String {
    let name = e
        .error_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|_| format!("CUresult {}", e.0 as u32));
    match e.error_string() {
        Ok(s) => format!("{name} ({})", s.to_string_lossy()),
        Err(_) => name,
    }
}

/// Attaches `what` to a driver error.
trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, Failure>;
}

impl<T> Context<T> for Result<T, DriverError> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, Failure> {
        self.map_err(|e| Failure(format!("{} failed: {}", what(), describe(&e))))
    }
}

/// Loads `DIR/NAME.ptx` (the path spelled as mlp.c's `"%s/%s.ptx"`) and its kernel `NAME`.
fn load(
    ctx: &Arc<CudaContext>,
    dir: &OsStr,
    name: &str,
) -> Result<(Arc<CudaModule>, CudaFunction), Failure> {
    let mut path = dir.as_bytes().to_vec();
    path.extend_from_slice(format!("/{name}.ptx").as_bytes());
    let path = PathBuf::from(OsString::from_vec(path));
    let src = std::fs::read_to_string(&path)
        .map_err(|e| Failure(format!("cannot read {}: {e}", path.display())))?;
    let module = ctx
        .load_module(Ptx::from_src(src))
        .context(|| format!("loading module {}", path.display()))?;
    let func = module
        .load_function(name)
        .context(|| format!("getting kernel {name} from {}", path.display()))?;
    Ok((module, func))
}

/// Launches `sgemm_tiled(a, b, c, m, n, k)` with mlp.c's configuration: block 16×16, grid
/// ⌈n/16⌉×⌈m/16⌉.
#[allow(clippy::too_many_arguments)]
fn sgemm(
    stream: &Arc<CudaStream>,
    f: &CudaFunction,
    a: &CudaSlice<f32>,
    b: &CudaSlice<f32>,
    c: &mut CudaSlice<f32>,
    m: usize,
    n: usize,
    k: usize,
) -> Result<(), Failure> {
    if a.len() < m * k || b.len() < k * n || c.len() < m * n {
        return Err(Failure(format!(
            "sgemm {m}x{n}x{k}: buffers too small ({}, {}, {})",
            a.len(),
            b.len(),
            c.len()
        )));
    }
    let cfg = tiles_16x16(m, n);
    let (m, n, k) = (m as i32, n as i32, k as i32);
    let mut launch = stream.launch_builder(f);
    launch.arg(a).arg(b).arg(c).arg(&m).arg(&n).arg(&k);
    // SAFETY: the arguments match `sgemm_tiled(const float* A, const float* B, float* C, int M,
    // int N, int K)`; A holds m·k floats, B k·n and C m·n (checked above), and the kernel
    // bounds-checks every access against M, N and K. The block is the 16×16 it requires.
    unsafe { launch.launch(cfg) }.context(|| format!("launching sgemm_tiled {m}x{n}x{k}"))?;
    Ok(())
}

/// One 16×16 block per 16×16 tile of a `rows`×`cols` matrix (grid ⌈cols/16⌉×⌈rows/16⌉), as
/// mlp.c launches `sgemm_tiled` and `bias_relu`.
fn tiles_16x16(rows: usize, cols: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (cols.div_ceil(16) as u32, rows.div_ceil(16) as u32, 1),
        block_dim: (16, 16, 1),
        shared_mem_bytes: 0,
    }
}

/// An uninitialised device buffer of `len` floats, for activations that every batch fully writes
/// (the x upload, then each kernel's whole output) before anything reads them.
fn scratch(stream: &Arc<CudaStream>, len: usize, what: &str) -> Result<CudaSlice<f32>, Failure> {
    // SAFETY: the memory is uninitialised; all callers' buffers are written in full on this
    // stream before being read (see above), and f32 has no invalid bit patterns anyway.
    unsafe { stream.alloc::<f32>(len) }.context(|| format!("allocating {what}"))
}

/// `bias_relu` over the hidden layer: `out = max(h + bias, 0)`.
fn bias_relu(
    stream: &Arc<CudaStream>,
    f: &CudaFunction,
    h: &CudaSlice<f32>,
    bias: &CudaSlice<f32>,
    out: &mut CudaSlice<f32>,
) -> Result<(), cudarc::driver::DriverError> {
    let (rows, cols) = (BATCH as i32, HIDDEN as i32);
    let mut launch = stream.launch_builder(f);
    launch.arg(h).arg(bias).arg(out).arg(&rows).arg(&cols);
    let cfg = tiles_16x16(BATCH, HIDDEN);
    // SAFETY: the arguments match `bias_relu(const float* in, const float* bias, float* out,
    // int rows, int cols)`; in and out hold rows·cols floats and bias cols, and the kernel
    // bounds-checks r < rows and c < cols.
    unsafe { launch.launch(cfg) }.map(drop)
}

/// `softmax_rows` over the logits, one warp per row.
fn softmax(
    stream: &Arc<CudaStream>,
    f: &CudaFunction,
    logits: &CudaSlice<f32>,
    probs: &mut CudaSlice<f32>,
) -> Result<(), cudarc::driver::DriverError> {
    let (rows, classes) = (BATCH as i32, CLASSES as i32);
    let mut launch = stream.launch_builder(f);
    launch.arg(logits).arg(probs).arg(&rows).arg(&classes);
    let cfg = LaunchConfig {
        grid_dim: ((BATCH / 4) as u32, 1, 1),
        block_dim: (128, 1, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: the arguments match `softmax_rows(const float* in, float* out, int rows, int
    // cols)`; both buffers hold rows·cols floats. 128 threads are 4 warps, one row each, and
    // BATCH/4 blocks cover exactly the BATCH rows (the kernel also checks row < rows).
    unsafe { launch.launch(cfg) }.map(drop)
}

/// One batch checked against the CPU reference.
struct Checked {
    ok: bool,
    checksum: f64,
    first_classes: [usize; 4],
}

/// Computes the batch on the CPU (`h` and `logits` are scratch) and compares the device's
/// probabilities with it: within 1e-4, as mlp.c; the checksum and first rows' classes as it
/// prints them.
fn check(
    x: &[f32],
    (w1, b1, w2): (&[f32], &[f32], &[f32]),
    probs: &[f32],
    (h, logits): (&mut [f32], &mut [f32]),
) -> Checked {
    cpu_sgemm(x, w1, h, BATCH, HIDDEN, IN);
    for (i, v) in h.iter_mut().enumerate() {
        let s = *v + b1[i % HIDDEN];
        *v = if s > 0.0 { s } else { 0.0 };
    }
    cpu_sgemm(h, w2, logits, BATCH, CLASSES, HIDDEN);
    let mut checksum = 0.0f64;
    let mut max_err = 0.0f64;
    let mut first_classes = [0usize; 4];
    for r in 0..BATCH {
        let row = &logits[r * CLASSES..(r + 1) * CLASSES];
        let got_row = &probs[r * CLASSES..(r + 1) * CLASSES];
        let mx = row.iter().fold(f32::NEG_INFINITY, |m, &l| m.max(l));
        let mut sum = 0.0f32;
        for &l in row {
            sum += (l - mx).exp();
        }
        let mut arg = 0;
        for (c, (&l, &got)) in row.iter().zip(got_row).enumerate() {
            let reference = (l - mx).exp() / sum;
            let err = (f64::from(reference) - f64::from(got)).abs();
            if err > max_err {
                max_err = err;
            }
            if got > got_row[arg] {
                arg = c;
            }
            // C: `checksum += got * (c + 1);` multiplies in float, then adds in double.
            checksum += f64::from(got * (c + 1) as f32);
        }
        if r < 4 {
            first_classes[r] = arg;
        }
    }
    Checked {
        ok: max_err < 1e-4,
        checksum,
        first_classes,
    }
}

/// Prints batch `b`'s line as mlp.c does, the tenant's name as raw bytes.
fn report(out: &mut impl Write, name: &OsStr, b: i32, checked: &Checked) -> Result<(), Failure> {
    let mut line = Vec::new();
    line.extend_from_slice(b"[");
    line.extend_from_slice(name.as_bytes());
    let [c0, c1, c2, c3] = checked.first_classes;
    line.extend_from_slice(
        format!(
            "] batch {b}: classes {c0} {c1} {c2} {c3}  checksum {}  {}\n",
            c_fixed3(checked.checksum),
            if checked.ok {
                "matches CPU reference"
            } else {
                "MISMATCH"
            }
        )
        .as_bytes(),
    );
    out.write_all(&line)
        .and_then(|()| out.flush())
        .map_err(|e| Failure(format!("writing to stdout: {e}")))
}

/// Device 0's primary context, with a clear error when the driver library cannot be loaded.
fn open_device() -> Result<Arc<CudaContext>, Failure> {
    // SAFETY: checking for the library only dlopen()s the candidate names (and closes them).
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(Failure(
            "cannot load the CUDA driver library (libcuda.so / libcuda.so.1): \
             is LD_LIBRARY_PATH set?"
                .into(),
        ));
    }
    let ctx = CudaContext::new(0).context(|| "initialising device 0".into())?;
    Ok(ctx)
}

fn run(dir: &OsStr, name: &OsStr, batches: i32) -> Result<bool, Failure> {
    let mut lcg = Lcg(12345);
    let w1 = lcg.fill(IN * HIDDEN, 0.2);
    let b1 = lcg.fill(HIDDEN, 0.1);
    let w2 = lcg.fill(HIDDEN * CLASSES, 0.3);
    let mut h = vec![0.0f32; BATCH * HIDDEN];
    let mut logits = vec![0.0f32; BATCH * CLASSES];
    let mut probs = vec![0.0f32; BATCH * CLASSES];

    let ctx = open_device()?;
    let (m_gemm, f_gemm) = load(&ctx, dir, "sgemm_tiled")?;
    let (m_bias, f_bias) = load(&ctx, dir, "bias_relu")?;
    let (m_soft, f_soft) = load(&ctx, dir, "softmax_rows")?;
    // SAFETY: everything runs on the one stream created below and every buffer is allocated,
    // used and freed on it, so cudarc's cross-stream event tracking has nothing to order. Turning
    // it off before any allocation keeps the driver calls to mlp.c's: allocations, copies and
    // launches on one non-blocking stream.
    unsafe { ctx.disable_event_tracking() };
    let stream = ctx
        .new_stream()
        .context(|| "creating a non-blocking stream".into())?;

    // Weights: uploaded once.
    let d_w1 = stream.clone_htod(&w1).context(|| "uploading W1".into())?;
    let d_b1 = stream.clone_htod(&b1).context(|| "uploading b1".into())?;
    let d_w2 = stream.clone_htod(&w2).context(|| "uploading W2".into())?;
    // Activations: allocated once, uninitialised as with mlp.c's cuMemAlloc.
    let mut d_x = scratch(&stream, BATCH * IN, "x")?;
    let mut d_h = scratch(&stream, BATCH * HIDDEN, "h")?;
    let mut d_hr = scratch(&stream, BATCH * HIDDEN, "relu(h)")?;
    let mut d_logits = scratch(&stream, BATCH * CLASSES, "logits")?;
    let mut d_probs = scratch(&stream, BATCH * CLASSES, "probs")?;

    let mut out = std::io::stdout();
    let mut failures = 0;
    for b in 0..batches {
        let x = lcg.fill(BATCH * IN, 2.0);
        stream
            .memcpy_htod(&x, &mut d_x)
            .context(|| format!("batch {b}: uploading x"))?;
        sgemm(&stream, &f_gemm, &d_x, &d_w1, &mut d_h, BATCH, HIDDEN, IN)?;
        bias_relu(&stream, &f_bias, &d_h, &d_b1, &mut d_hr)
            .context(|| format!("batch {b}: launching bias_relu"))?;
        sgemm(
            &stream,
            &f_gemm,
            &d_hr,
            &d_w2,
            &mut d_logits,
            BATCH,
            CLASSES,
            HIDDEN,
        )?;
        softmax(&stream, &f_soft, &d_logits, &mut d_probs)
            .context(|| format!("batch {b}: launching softmax_rows"))?;
        stream
            .memcpy_dtoh(&d_probs, &mut probs)
            .context(|| format!("batch {b}: downloading probabilities"))?;
        stream
            .synchronize()
            .context(|| format!("batch {b}: synchronising the stream"))?;
        let checked = check(&x, (&w1, &b1, &w2), &probs, (&mut h, &mut logits));
        if !checked.ok {
            failures += 1;
        }
        report(&mut out, name, b, &checked)?;
    }

    // Free, destroy and unload explicitly (cudarc does it on drop and records any error in the
    // context), then report what was recorded.
    drop((d_w1, d_b1, d_w2, d_x, d_h, d_hr, d_logits, d_probs));
    stream
        .synchronize()
        .context(|| "freeing device memory".into())?;
    drop(stream);
    drop((f_gemm, f_bias, f_soft, m_gemm, m_bias, m_soft));
    ctx.check_err().context(|| "releasing resources".into())?;
    Ok(failures == 0)
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.len() < 2 {
        let argv0 = args
            .first()
            .map(|a| a.to_string_lossy().into_owned())
            .unwrap_or_else(|| "gpushare-example-cudarc-mlp".into());
        eprintln!("usage: {argv0} KERNELS_DIR [--name NAME] [--batches N]");
        return ExitCode::from(2);
    }
    // As mlp.c: options come in (flag, value) pairs after KERNELS_DIR; unknown flags and a
    // trailing unpaired argument are ignored; the last occurrence wins.
    let dir = args[1].as_os_str();
    let mut name = OsStr::new("mlp");
    let mut batches = 4;
    for pair in args[2..].chunks_exact(2) {
        match pair[0].as_bytes() {
            b"--name" => name = &pair[1],
            b"--batches" => batches = atoi(pair[1].as_bytes()),
            _ => {}
        }
    }
    match run(dir, name, batches) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(Failure(msg)) => {
            eprintln!("gpushare-example-cudarc-mlp: {msg}");
            ExitCode::FAILURE
        }
    }
}
