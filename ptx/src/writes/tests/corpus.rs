//! The NVRTC-compiled example kernels (`examples/kernels`): expected answers from the CUDA
//! sources, and a check against the interpreter that no write lands in a buffer reported
//! `false`.

use crate::writes::{param_writes, ParamWrites};
use crate::{launch, ExecOptions, GlobalMemory, LaunchConfig, MemFault, Module};
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

fn corpus() -> Vec<(String, String)> {
    let dir = format!("{}/../examples/kernels", env!("CARGO_MANIFEST_DIR"));
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "ptx"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    out.sort();
    assert!(out.len() >= 10, "corpus not found in {dir}");
    out
}

fn find<'a>(all: &'a [ParamWrites], kernel: &str) -> &'a [bool] {
    let k = all.iter().find(|w| w.kernel == kernel);
    &k.unwrap_or_else(|| panic!("no kernel {kernel}")).may_write
}

/// Per kernel: the parameters its source writes through, and its read-only pointers.
const EXPECTED: &[(&str, &[usize], &[usize])] = &[
    ("vector_add", &[2], &[0, 1]),
    ("saxpy", &[2], &[1]),
    ("bias_relu", &[2], &[0, 1]),
    ("sgemm_tiled", &[2], &[0, 1]),
    ("softmax_rows", &[1], &[0]),
    ("reduce_sum", &[1], &[0]),
    ("grid3d", &[0, 1], &[]),
    ("struct_param", &[2], &[1]),
    ("daxpy_f64", &[2], &[1]),
    ("busy_sleep", &[0], &[]),
    ("empty_kernel", &[], &[]),
    ("oob_write", &[0], &[]),
    ("read_table", &[0], &[]),
    ("bump_counter", &[], &[]),
];

#[test]
fn every_entry_is_analysed() {
    for (name, text) in corpus() {
        let all = param_writes(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let module = Module::load(&text).unwrap();
        let entries: Vec<&str> = module.kernels().map(|k| k.name()).collect();
        let got: Vec<&str> = all.iter().map(|w| w.kernel.as_str()).collect();
        assert_eq!(got, entries, "{name}");
        for w in &all {
            let k = module.kernel(&w.kernel).unwrap();
            assert_eq!(w.may_write.len(), k.params().len(), "{}", w.kernel);
            let (_, written, read_only) = EXPECTED
                .iter()
                .find(|e| e.0 == w.kernel)
                .unwrap_or_else(|| panic!("{}: add it to EXPECTED", w.kernel));
            for &p in written.iter() {
                assert!(w.may_write[p], "{}: parameter {p} is written", w.kernel);
            }
            for &p in read_only.iter() {
                assert!(!w.may_write[p], "{}: parameter {p} is read-only", w.kernel);
            }
        }
    }
}

#[test]
fn exact_answers() {
    let text = |n: &str| corpus().into_iter().find(|c| c.0 == n).unwrap().1;
    let all = param_writes(&text("vector_add")).unwrap();
    assert_eq!(find(&all, "vector_add"), [false, false, true, false]);
    let all = param_writes(&text("sgemm_tiled")).unwrap();
    // N (parameter 4) is part of C's index.
    assert_eq!(
        find(&all, "sgemm_tiled"),
        [false, false, true, false, true, false]
    );
    let all = param_writes(&text("reduce_sum")).unwrap();
    assert_eq!(find(&all, "reduce_sum"), [false, true, false]);
    let all = param_writes(&text("softmax_rows")).unwrap();
    assert_eq!(find(&all, "softmax_rows"), [false, true, false, true]);
    let all = param_writes(&text("device_global")).unwrap();
    assert_eq!(find(&all, "read_table"), [true, false]);
    // `delta` is stored as data (an escape): harmless for an integer.
    assert_eq!(find(&all, "bump_counter"), [true]);
}

/// Device memory in one host buffer, bump-allocated; records every range translated for
/// writing.
struct RecMem {
    words: Vec<AtomicU64>,
    allocs: Vec<(u64, u64)>,
    writes: Mutex<Vec<(u64, u64)>>,
}

const BASE: u64 = 0x7000_0000_0000;
const BUF: u64 = 4 << 20;

impl RecMem {
    fn new(buffers: usize) -> Self {
        let words = (0..buffers as u64 * BUF / 8)
            .map(|_| AtomicU64::new(0))
            .collect();
        RecMem {
            words,
            allocs: Vec::new(),
            writes: Mutex::new(Vec::new()),
        }
    }

    fn alloc(&mut self, init: &[u8]) -> u64 {
        let addr = BASE + self.allocs.len() as u64 * BUF;
        self.allocs.push((addr, BUF));
        for (k, b) in init.iter().enumerate() {
            let w = self.words[(addr - BASE) as usize / 8 + k / 8].get_mut();
            *w |= (*b as u64) << ((k % 8) * 8);
        }
        addr
    }

    /// The allocation holding `addr`.
    fn owner(&self, addr: u64) -> Option<usize> {
        self.allocs
            .iter()
            .position(|&(a, l)| addr >= a && addr < a + l)
    }
}

impl GlobalMemory for RecMem {
    fn translate(&self, addr: u64, len: u64, write: bool) -> Result<*mut u8, MemFault> {
        let end = addr.checked_add(len);
        let inside = |&(a, l): &(u64, u64)| addr >= a && end.is_some_and(|e| e <= a + l);
        if !self.allocs.iter().any(inside) {
            return Err(MemFault { addr, len, write });
        }
        if write {
            self.writes.lock().unwrap().push((addr, len));
        }
        let base = self.words.as_ptr() as *mut u8;
        Ok(base.wrapping_add((addr - BASE) as usize))
    }
}

fn config(kernel: &str) -> LaunchConfig {
    let (grid, block) = match kernel {
        "sgemm_tiled" => ([4, 4, 1], [16, 16, 1]),
        _ => ([2, 2, 2], [32, 4, 2]),
    };
    LaunchConfig {
        grid,
        block,
        dynamic_shared_bytes: 4096,
    }
}

/// Runs every corpus kernel (but `oob_write`, whose write is out of bounds by design) with a
/// buffer behind each 8-byte parameter and small sizes elsewhere; every write must land in a
/// module variable or in the buffer of a parameter reported `true`.
#[test]
fn interpreter_writes_only_reported_buffers() {
    for (name, text) in corpus() {
        let module = Module::load(&text).unwrap();
        let all = param_writes(&text).unwrap();
        for k in module.kernels().filter(|k| k.name() != "oob_write") {
            let flags = find(&all, k.name());
            let mut mem = RecMem::new(module.globals().len() + k.params().len());
            let n = module.globals().len() as u64;
            let globals: Vec<u64> = (0..n).map(|i| BASE + i * BUF).collect();
            for g in module.globals() {
                mem.alloc(&g.resolved_init(&globals));
            }
            let mut params = vec![0u8; k.param_bytes()];
            let mut owners = vec![None; module.globals().len()];
            for (i, p) in k.params().iter().enumerate() {
                let bytes: Vec<u8> = match p.size {
                    8 => {
                        owners.push(Some(i));
                        mem.alloc(&[]).to_le_bytes().to_vec()
                    }
                    4 => 64u32.to_le_bytes().to_vec(),
                    n => vec![0; n],
                };
                params[p.offset..p.offset + p.size].copy_from_slice(&bytes);
            }
            let cfg = config(k.name());
            let opts = ExecOptions::default();
            launch(&module, k, &cfg, &params, &globals, &mem, &opts)
                .unwrap_or_else(|e| panic!("{name}/{}: {e}", k.name()));
            let writes = mem.writes.lock().unwrap().clone();
            let mut seen = vec![false; flags.len()];
            for (addr, _) in writes {
                let owner = mem.owner(addr).map(|b| owners[b]);
                match owner {
                    Some(None) => {}
                    Some(Some(p)) => {
                        assert!(flags[p], "{}: wrote parameter {p}", k.name());
                        seen[p] = true;
                    }
                    None => panic!("{}: write outside every buffer", k.name()),
                }
            }
            // The harness sees the writes the sources make.
            let expected = EXPECTED.iter().find(|e| e.0 == k.name()).unwrap().1;
            for &p in expected {
                assert!(seen[p], "{}: no write through parameter {p} seen", k.name());
            }
        }
    }
}

/// The interpreter's test fixtures (more NVRTC output, and hand-written forms).
#[test]
fn fixtures() {
    let read = |f: &str| {
        let p = format!("{}/tests/fixtures/{f}", env!("CARGO_MANIFEST_DIR"));
        param_writes(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    let basic = read("basic.ptx");
    assert_eq!(find(&basic, "vec_add"), [false, false, true, false]);
    assert_eq!(find(&basic, "bias_relu"), [true, false, false, false, true]);
    let misc = read("misc.ptx");
    // `out[i] = device_fn(a[i], ...)`: a non-inlined device function returning a value.
    assert_eq!(find(&misc, "call_kernel"), [false, true, false]);
    assert_eq!(find(&read("softmax.ptx"), "atomic_mix"), [true; 4]);
    // Data-dependent atomics go to shared memory (through a device function); the global
    // writes are `bins[tid]`.
    assert_eq!(
        find(&read("slicing.ptx"), "histogram"),
        [false, true, false]
    );
    for f in [
        "coverage.ptx",
        "forms.ptx",
        "half_math.ptx",
        "grid_constant.ptx",
        "spin.ptx",
    ] {
        assert!(!read(f).is_empty(), "{f}");
    }
}
