//! Shared helpers for the integration tests and benchmarks: a simple
//! Vec-backed [`GlobalMemory`] and parameter packing.
#![allow(dead_code)]

use gpushare_ptx::{
    launch, ExecError, ExecOptions, GlobalMemory, Kernel, LaunchConfig, LaunchStats, MemFault,
    Module,
};
use std::sync::atomic::{AtomicU64, Ordering};

/// Device memory: one host buffer; allocations are bump-allocated at `BASE`.
pub struct VecMem {
    words: Vec<AtomicU64>,
    allocs: Vec<(u64, u64)>,
    next: u64,
}

pub const BASE: u64 = 0x7f00_0000_0000;

impl VecMem {
    pub fn new(capacity: usize) -> Self {
        VecMem {
            words: (0..capacity.div_ceil(8))
                .map(|_| AtomicU64::new(0))
                .collect(),
            allocs: Vec::new(),
            next: 0,
        }
    }

    /// Allocate `len` bytes (256-byte aligned), zeroed.
    pub fn alloc(&mut self, len: usize) -> u64 {
        let off = self.next.next_multiple_of(256);
        assert!(
            off as usize + len <= self.words.len() * 8,
            "VecMem out of capacity"
        );
        self.next = off + len as u64;
        self.allocs.push((BASE + off, len as u64));
        BASE + off
    }

    fn off(&self, addr: u64) -> usize {
        (addr - BASE) as usize
    }

    pub fn write(&mut self, addr: u64, data: &[u8]) {
        let o = self.off(addr);
        for (k, b) in data.iter().enumerate() {
            let w = &mut self.words[(o + k) / 8];
            let sh = ((o + k) % 8) * 8;
            let v = w.get_mut();
            *v = (*v & !(0xffu64 << sh)) | ((*b as u64) << sh);
        }
    }

    pub fn read(&self, addr: u64, len: usize) -> Vec<u8> {
        let o = self.off(addr);
        (0..len)
            .map(|k| (self.words[(o + k) / 8].load(Ordering::Relaxed) >> (((o + k) % 8) * 8)) as u8)
            .collect()
    }

    pub fn alloc_f32(&mut self, v: &[f32]) -> u64 {
        let a = self.alloc(v.len() * 4);
        let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.write(a, &b);
        a
    }
    pub fn alloc_f64(&mut self, v: &[f64]) -> u64 {
        let a = self.alloc(v.len() * 8);
        let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.write(a, &b);
        a
    }
    pub fn alloc_i32(&mut self, v: &[i32]) -> u64 {
        let a = self.alloc(v.len() * 4);
        let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.write(a, &b);
        a
    }
    pub fn read_f32(&self, a: u64, n: usize) -> Vec<f32> {
        self.read(a, n * 4)
            .chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }
    pub fn read_f64(&self, a: u64, n: usize) -> Vec<f64> {
        self.read(a, n * 8)
            .chunks(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }
    pub fn read_i32(&self, a: u64, n: usize) -> Vec<i32> {
        self.read(a, n * 4)
            .chunks(4)
            .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }
    pub fn read_u32(&self, a: u64, n: usize) -> Vec<u32> {
        self.read(a, n * 4)
            .chunks(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }
    pub fn read_u64(&self, a: u64, n: usize) -> Vec<u64> {
        self.read(a, n * 8)
            .chunks(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }
}

impl GlobalMemory for VecMem {
    fn translate(&self, addr: u64, len: u64, write: bool) -> Result<*mut u8, MemFault> {
        let fault = MemFault { addr, len, write };
        let ok = self
            .allocs
            .iter()
            .any(|&(a, l)| addr >= a && addr.checked_add(len).is_some_and(|e| e <= a + l));
        if !ok {
            return Err(fault);
        }
        let base = self.words.as_ptr() as *mut u8;
        Ok(base.wrapping_add(self.off(addr)))
    }
}

/// One kernel argument.
#[derive(Clone, Debug)]
pub enum Arg {
    U32(u32),
    I32(i32),
    U64(u64),
    F32(f32),
    F64(f64),
    Bytes(Vec<u8>),
}

/// Pack arguments according to the kernel's parameter layout.
pub fn pack(k: &Kernel, args: &[Arg]) -> Vec<u8> {
    assert_eq!(
        k.params().len(),
        args.len(),
        "argument count for {}",
        k.name()
    );
    let mut buf = vec![0u8; k.param_bytes()];
    for (p, a) in k.params().iter().zip(args) {
        let b: Vec<u8> = match a {
            Arg::U32(v) => v.to_le_bytes().to_vec(),
            Arg::I32(v) => v.to_le_bytes().to_vec(),
            Arg::U64(v) => v.to_le_bytes().to_vec(),
            Arg::F32(v) => v.to_le_bytes().to_vec(),
            Arg::F64(v) => v.to_le_bytes().to_vec(),
            Arg::Bytes(v) => v.clone(),
        };
        assert_eq!(b.len(), p.size, "argument size for {}", k.name());
        buf[p.offset..p.offset + p.size].copy_from_slice(&b);
    }
    buf
}

pub fn fixture(name: &str) -> String {
    let p = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

pub fn cfg(grid: [u32; 3], block: [u32; 3]) -> LaunchConfig {
    LaunchConfig {
        grid,
        block,
        dynamic_shared_bytes: 0,
    }
}

/// Launch `name` from `m` with `workers` host threads (module without globals).
pub fn run(
    m: &Module,
    name: &str,
    c: LaunchConfig,
    args: &[Arg],
    mem: &VecMem,
    workers: usize,
) -> Result<LaunchStats, ExecError> {
    run_g(m, name, c, args, mem, workers, &[])
}

/// Allocate and initialise every module global; returns their addresses.
pub fn load_globals(m: &Module, mem: &mut VecMem) -> Vec<u64> {
    let addrs: Vec<u64> = m
        .globals()
        .iter()
        .map(|g| mem.alloc(g.size.max(1)))
        .collect();
    for (g, &a) in m.globals().iter().zip(&addrs) {
        let init = g.resolved_init(&addrs);
        mem.write(a, &init);
    }
    addrs
}

/// Launch with module global addresses.
pub fn run_g(
    m: &Module,
    name: &str,
    c: LaunchConfig,
    args: &[Arg],
    mem: &VecMem,
    workers: usize,
    globals: &[u64],
) -> Result<LaunchStats, ExecError> {
    let k = m
        .kernel(name)
        .unwrap_or_else(|| panic!("kernel {name} not found"));
    let params = pack(k, args);
    let opts = ExecOptions {
        worker_threads: workers,
        instruction_limit: Some(1 << 36),
        ..Default::default()
    };
    launch(m, k, &c, &params, globals, mem, &opts)
}

/// Small deterministic PRNG for test data.
pub struct Rng(pub u64);
impl Rng {
    pub fn next_u32(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 16) as u32
    }
    pub fn f32(&mut self) -> f32 {
        (self.next_u32() % 20000) as f32 / 10000.0 - 1.0
    }
}
