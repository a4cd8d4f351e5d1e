//! Kernel slicing on the CPU device, through the driver API: every kernel of the corpus
//! (`examples/kernels`) and the hand-written slicing kernels (`ptx/tests/fixtures/slicing.ptx`:
//! a histogram with shared and global atomics, `%ctaid`/`%nctaid` in every operand position)
//! runs whole from the original module, whole through the sliced module's original entry, and
//! as 1, 2, 3 and 7 slices through its `__gs_slice` variant; every buffer and every module
//! variable must hold the same bytes afterwards. Slices pass their extra parameters through
//! `kernelParams` (1, 2 and 7 slices) and through a packed `extra` buffer (3 slices).

mod common;
mod cuda;

use std::ffi::{c_void, CString};
use std::ptr::null_mut;

use common::*;
use gpushare_cpu_device::sys::{CUfunction, CUmodule};
use gpushare_ptx::{plan_slices, slice_module, Module, Slice, SlicedEntry};

/// One kernel argument.
enum Arg {
    /// A device buffer with these initial contents (an output compared afterwards).
    Buf(Vec<u8>),
    /// A value passed by value (scalar or struct bytes).
    Val(Vec<u8>),
}

fn f32s(v: impl IntoIterator<Item = f32>) -> Arg {
    Arg::Buf(v.into_iter().flat_map(f32::to_le_bytes).collect())
}

fn zeros(n: usize) -> Arg {
    Arg::Buf(vec![0; n])
}

fn i32v(v: i32) -> Arg {
    Arg::Val(v.to_le_bytes().to_vec())
}

/// Deterministic inputs in [-1, 1).
fn noise(n: usize, seed: u32) -> impl Iterator<Item = f32> {
    (0..n as u32).map(move |i| {
        let h = (i ^ seed).wrapping_mul(2_654_435_761).rotate_left(13);
        (h % 20_000) as f32 / 10_000.0 - 1.0
    })
}

/// A launch to check: PTX text, kernel, shape and arguments.
struct Case {
    ptx: String,
    kernel: &'static str,
    grid: [u32; 3],
    block: [u32; 3],
    shared: u32,
    args: Vec<Arg>,
}

fn corpus_text(name: &str) -> String {
    let p = format!(
        "{}/../examples/kernels/{name}.ptx",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn fixture_text() -> String {
    let p = format!(
        "{}/../ptx/tests/fixtures/slicing.ptx",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn case(file: &str, kernel: &'static str, grid: [u32; 3], block: [u32; 3], args: Vec<Arg>) -> Case {
    Case {
        ptx: corpus_text(file),
        kernel,
        grid,
        block,
        shared: 0,
        args,
    }
}

/// Every corpus kernel, with inputs that make its output independent of block order (the
/// float atomics of `reduce_sum` add small integers: exact in any order).
fn corpus_cases() -> Vec<Case> {
    let mut cases = math_cases();
    cases.extend(parameter_cases());
    cases.extend(control_cases());
    cases
}

/// The corpus's element-wise, matrix and reduction kernels.
fn math_cases() -> Vec<Case> {
    let mut reduce = case(
        "reduce_sum",
        "reduce_sum",
        [19, 1, 1],
        [128, 1, 1],
        vec![
            f32s((0..20_000).map(|i| (i % 7) as f32)),
            zeros(4),
            i32v(20_000),
        ],
    );
    reduce.shared = 128 * 4;
    vec![
        case(
            "vector_add",
            "vector_add",
            [16, 1, 1],
            [64, 1, 1],
            vec![
                f32s(noise(1000, 1)),
                f32s(noise(1000, 2)),
                zeros(4000),
                i32v(1000),
            ],
        ),
        case(
            "saxpy",
            "saxpy",
            [9, 1, 1],
            [64, 1, 1],
            vec![
                Arg::Val(0.5f32.to_le_bytes().to_vec()),
                f32s(noise(5000, 3)),
                f32s(noise(5000, 4)),
                i32v(5000),
            ],
        ),
        case(
            "bias_relu",
            "bias_relu",
            [3, 5, 1],
            [16, 8, 1],
            vec![
                f32s(noise(37 * 45, 5)),
                f32s(noise(45, 6)),
                zeros(37 * 45 * 4),
                i32v(37),
                i32v(45),
            ],
        ),
        case(
            "sgemm_tiled",
            "sgemm_tiled",
            [4, 3, 1],
            [16, 16, 1],
            vec![
                f32s(noise(40 * 20, 7)),
                f32s(noise(20 * 50, 8)),
                zeros(40 * 50 * 4),
                i32v(40),
                i32v(50),
                i32v(20),
            ],
        ),
        case(
            "softmax_rows",
            "softmax_rows",
            [25, 1, 1],
            [64, 1, 1],
            vec![
                f32s(noise(50 * 70, 9)),
                zeros(50 * 70 * 4),
                i32v(50),
                i32v(70),
            ],
        ),
        reduce,
    ]
}

/// The corpus's kernels about grids and parameters.
fn parameter_cases() -> Vec<Case> {
    let struct_p: Vec<u8> = [1.5f32.to_le_bytes(), 3i32.to_le_bytes()]
        .into_iter()
        .chain([0.25f32, -0.5, 0.75, 1.0].map(f32::to_le_bytes))
        .flatten()
        .collect();
    let daxpy_y: Vec<u8> = (0..700)
        .flat_map(|i| f64::from(i % 13).to_le_bytes())
        .collect();
    let daxpy_x: Vec<u8> = noise(700, 5)
        .flat_map(|v| f64::from(v).to_le_bytes())
        .collect();
    vec![
        case(
            "grid3d",
            "grid3d",
            [3, 3, 4],
            [4, 3, 2],
            vec![zeros(630 * 4), zeros(630 * 4), i32v(10), i32v(9), i32v(7)],
        ),
        case(
            "struct_param",
            "struct_param",
            [10, 1, 1],
            [32, 1, 1],
            vec![
                Arg::Val(struct_p),
                f32s(noise(300, 10)),
                zeros(1200),
                i32v(300),
            ],
        ),
        case(
            "daxpy_f64",
            "daxpy_f64",
            [11, 1, 1],
            [64, 1, 1],
            vec![
                Arg::Val(2.5f64.to_le_bytes().to_vec()),
                Arg::Buf(daxpy_x),
                Arg::Buf(daxpy_y),
                i32v(700),
            ],
        ),
    ]
}

/// The corpus's kernels about sleeping, empty blocks, faults and module globals.
fn control_cases() -> Vec<Case> {
    vec![
        case(
            "busy_sleep",
            "busy_sleep",
            [16, 1, 1],
            [32, 1, 1],
            vec![zeros(2000), i32v(1), i32v(2), i32v(500)],
        ),
        case(
            "empty_kernel",
            "empty_kernel",
            [9, 1, 1],
            [32, 1, 1],
            vec![],
        ),
        case(
            "oob_write",
            "oob_write",
            [8, 1, 1],
            [32, 1, 1],
            vec![
                zeros(256),
                Arg::Val(5i64.to_le_bytes().to_vec()),
                Arg::Val(4.5f32.to_le_bytes().to_vec()),
            ],
        ),
        case(
            "device_global",
            "read_table",
            [8, 1, 1],
            [8, 1, 1],
            vec![zeros(64), i32v(16)],
        ),
        case(
            "device_global",
            "bump_counter",
            [9, 1, 1],
            [32, 1, 1],
            vec![i32v(5)],
        ),
    ]
}

/// The hand-written kernels of `ptx/tests/fixtures/slicing.ptx`.
fn fixture_cases() -> Vec<Case> {
    let input: Vec<u8> = (0..3000u32)
        .flat_map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes())
        .collect();
    vec![
        Case {
            ptx: fixture_text(),
            kernel: "where_am_i",
            grid: [5, 3, 4],
            block: [32, 1, 1],
            shared: 0,
            args: vec![zeros(60 * 32 * 32)],
        },
        Case {
            ptx: fixture_text(),
            kernel: "histogram",
            grid: [11, 1, 1],
            block: [64, 1, 1],
            shared: 0,
            args: vec![
                Arg::Buf(input),
                zeros(64),
                Arg::Val(3000u32.to_le_bytes().to_vec()),
            ],
        },
    ]
}

/// A module loaded in the current context, with its variables' initial contents.
struct Loaded {
    module: CUmodule,
    globals: Vec<(u64, Vec<u8>)>,
}

fn load_text(text: &str, globals: &[String]) -> Loaded {
    let image = CString::new(text).unwrap();
    let mut module: CUmodule = null_mut();
    // SAFETY: NUL-terminated PTX text, valid out-pointer.
    ok(unsafe { cuda::cuModuleLoadData(&mut module, image.as_ptr().cast()) });
    let globals = globals
        .iter()
        .map(|name| {
            let (mut dptr, mut size) = (0u64, 0usize);
            let cname = CString::new(name.as_str()).unwrap();
            // SAFETY: live module, NUL-terminated name, valid out-pointers.
            ok(unsafe { cuda::cuModuleGetGlobal_v2(&mut dptr, &mut size, module, cname.as_ptr()) });
            (dptr, read(dptr, size))
        })
        .collect();
    Loaded { module, globals }
}

fn read(dptr: u64, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    // SAFETY: `v` holds `n` bytes; `dptr` is a device range of at least `n` bytes.
    ok(unsafe { cuda::cuMemcpyDtoH_v2(v.as_mut_ptr().cast(), dptr, n) });
    v
}

fn write(dptr: u64, bytes: &[u8]) {
    // SAFETY: `bytes` is a live host buffer; `dptr` a device range of the same size.
    ok(unsafe { cuda::cuMemcpyHtoD_v2(dptr, bytes.as_ptr().cast(), bytes.len()) });
}

/// How the launches of one run are made.
#[derive(Clone, Copy)]
enum Mode {
    /// The whole grid through `kernel`.
    Whole,
    /// `n` slices through the sliced variant, extra parameters in `kernelParams`.
    Pointers(u32),
    /// `n` slices through the sliced variant, parameters packed into an `extra` buffer.
    Buffer(u32),
}

/// Runs `c` on `l` in `mode` on fresh buffers and variables; returns every buffer's and
/// every variable's bytes afterwards.
fn run(
    c: &Case,
    l: &Loaded,
    entry: &SlicedEntry,
    layout: &[(usize, usize)],
    mode: Mode,
) -> Vec<Vec<u8>> {
    for (dptr, init) in &l.globals {
        write(*dptr, init);
    }
    let bufs: Vec<(u64, usize)> = c
        .args
        .iter()
        .filter_map(|a| match a {
            Arg::Buf(b) => {
                let d = alloc(b.len().max(1));
                write(d, b);
                Some((d, b.len()))
            }
            Arg::Val(_) => None,
        })
        .collect();
    let mut next = bufs.iter();
    let values: Vec<Vec<u8>> = c
        .args
        .iter()
        .map(|a| match a {
            Arg::Buf(_) => next.next().unwrap().0.to_le_bytes().to_vec(),
            Arg::Val(v) => v.clone(),
        })
        .collect();
    let name = |sliced: bool| match sliced {
        true => entry.sliced_name().unwrap(),
        false => entry.name.as_str(),
    };
    match mode {
        Mode::Whole => launch(c, function(l.module, name(false)), c.grid, values.clone()),
        Mode::Pointers(n) => {
            for s in slices(c.grid, n) {
                let mut v = values.clone();
                v.extend(s.params(c.grid).map(|x| x.to_le_bytes().to_vec()));
                launch(c, function(l.module, name(true)), s.grid, v);
            }
        }
        Mode::Buffer(n) => {
            let mut packed = vec![0u8; entry.param_bytes];
            for ((off, size), v) in layout.iter().zip(&values) {
                assert_eq!(*size, v.len());
                packed[*off..off + size].copy_from_slice(v);
            }
            for s in slices(c.grid, n) {
                let buf = entry.slice_param_buffer(&packed, &s, c.grid).unwrap();
                launch_packed(c, function(l.module, name(true)), s.grid, buf);
            }
        }
    }
    // SAFETY: plain driver call.
    ok(unsafe { cuda::cuCtxSynchronize() });
    let mut out: Vec<Vec<u8>> = bufs.iter().map(|&(d, n)| read(d, n)).collect();
    out.extend(l.globals.iter().map(|(d, init)| read(*d, init.len())));
    for (d, _) in bufs {
        // SAFETY: an allocation made above, freed once.
        ok(unsafe { cuda::cuMemFree_v2(d) });
    }
    out
}

fn slices(grid: [u32; 3], n: u32) -> Vec<Slice> {
    let plan = plan_slices(grid, n);
    assert_eq!(
        plan.len(),
        n as usize,
        "grid {grid:?} has too few blocks for {n} slices"
    );
    plan
}

fn launch(c: &Case, f: CUfunction, grid: [u32; 3], mut values: Vec<Vec<u8>>) {
    let mut params: Vec<*mut c_void> = values.iter_mut().map(|v| v.as_mut_ptr().cast()).collect();
    // SAFETY: one pointer per kernel parameter, each to a live value of the parameter's size.
    ok(unsafe {
        cuda::cuLaunchKernel(
            f,
            grid[0],
            grid[1],
            grid[2],
            c.block[0],
            c.block[1],
            c.block[2],
            c.shared,
            null_mut(),
            params.as_mut_ptr(),
            null_mut(),
        )
    });
}

fn launch_packed(c: &Case, f: CUfunction, grid: [u32; 3], mut buf: Vec<u8>) {
    let mut size = buf.len();
    let mut extra: [*mut c_void; 5] = [
        1 as _,
        buf.as_mut_ptr().cast(),
        2 as _,
        arg(&mut size),
        null_mut(),
    ];
    // SAFETY: `extra` is a valid END-terminated list pointing at live values.
    ok(unsafe {
        cuda::cuLaunchKernel(
            f,
            grid[0],
            grid[1],
            grid[2],
            c.block[0],
            c.block[1],
            c.block[2],
            c.shared,
            null_mut(),
            null_mut(),
            extra.as_mut_ptr(),
        )
    });
}

/// Runs `c` whole and in slices; every result must equal the whole run's.
fn check(c: &Case) {
    let parsed = Module::load(&c.ptx).unwrap();
    let globals: Vec<String> = parsed.globals().iter().map(|g| g.name.clone()).collect();
    let layout: Vec<(usize, usize)> = parsed
        .kernel(c.kernel)
        .unwrap()
        .params()
        .iter()
        .map(|p| (p.offset, p.size))
        .collect();
    let sliced = slice_module(&c.ptx).unwrap();
    let entry = sliced.entry(c.kernel).unwrap();
    assert!(
        entry.sliced_name().is_some(),
        "{}: {:?}",
        c.kernel,
        entry.slicing
    );
    let original = load_text(&c.ptx, &globals);
    let rewritten = load_text(&sliced.ptx, &globals);
    let whole = run(c, &original, entry, &layout, Mode::Whole);
    let modes = [
        Mode::Whole,
        Mode::Pointers(1),
        Mode::Pointers(2),
        Mode::Buffer(3),
        Mode::Pointers(7),
    ];
    for (i, mode) in modes.into_iter().enumerate() {
        let got = run(c, &rewritten, entry, &layout, mode);
        for (k, (a, b)) in whole.iter().zip(&got).enumerate() {
            assert!(a == b, "{}: mode {i}: output {k} differs", c.kernel);
        }
    }
    for m in [original.module, rewritten.module] {
        // SAFETY: modules loaded above, unloaded once.
        ok(unsafe { cuda::cuModuleUnload(m) });
    }
}

#[test]
fn corpus_kernels_sliced_match_whole_launches() {
    setup();
    let cases = corpus_cases();
    let mut names: Vec<&str> = cases.iter().map(|c| c.kernel).collect();
    names.sort();
    for c in &cases {
        check(c);
    }
    // Every kernel of the corpus is covered.
    let mut all = Vec::new();
    let dir = format!("{}/../examples/kernels", env!("CARGO_MANIFEST_DIR"));
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().extension().is_some_and(|x| x == "ptx") {
            let text = std::fs::read_to_string(e.path()).unwrap();
            let m = Module::load(&text).unwrap();
            all.extend(m.kernels().map(|k| k.name().to_string()));
        }
    }
    all.sort();
    assert_eq!(names, all);
}

#[test]
fn hand_written_kernels_sliced_match_whole_launches() {
    setup();
    for c in &fixture_cases() {
        check(c);
    }
}
