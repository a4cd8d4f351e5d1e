//! [`launch`]: configuration checks, per-launch register templates, and the
//! worker pool that hands out blocks.

use super::program::{Class, Counters, Env, Init, Program, Special, LANES};
use super::warp::{BlockRunner, LaunchCtx};
use super::{
    ExecOptions, GlobalMemory, LaunchConfig, LaunchStats, MAX_SHARED_BYTES_PER_BLOCK,
    MAX_THREADS_PER_BLOCK,
};
use crate::error::ExecError;
use crate::module::{Kernel, Module};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

fn check_config(
    module: &Module,
    k: &Kernel,
    cfg: &LaunchConfig,
    params: &[u8],
    addrs: &[u64],
) -> Result<(), ExecError> {
    let bad = |m: String| Err(ExecError::InvalidConfig(m));
    let [gx, gy, gz] = cfg.grid;
    let [bx, by, bz] = cfg.block;
    if gx == 0 || gy == 0 || gz == 0 {
        return bad(format!(
            "grid dimensions must be nonzero, got {:?}",
            cfg.grid
        ));
    }
    if gx > i32::MAX as u32 || gy > 65535 || gz > 65535 {
        return bad(format!(
            "grid dimensions {:?} exceed (2^31-1, 65535, 65535)",
            cfg.grid
        ));
    }
    if bx == 0 || by == 0 || bz == 0 {
        return bad(format!(
            "block dimensions must be nonzero, got {:?}",
            cfg.block
        ));
    }
    if bx > 1024 || by > 1024 || bz > 64 {
        return bad(format!(
            "block dimensions {:?} exceed (1024, 1024, 64)",
            cfg.block
        ));
    }
    let threads = bx as u64 * by as u64 * bz as u64;
    if threads > MAX_THREADS_PER_BLOCK as u64 || threads > k.max_threads as u64 {
        return bad(format!(
            "block of {threads} threads exceeds the limit of {} for kernel `{}`",
            k.max_threads.min(MAX_THREADS_PER_BLOCK),
            k.name
        ));
    }
    if let Some(r) = k.reqntid {
        if r != cfg.block {
            return bad(format!(
                "kernel `{}` requires block {:?} (.reqntid), got {:?}",
                k.name, r, cfg.block
            ));
        }
    }
    let shared = k.prog.static_shared.next_multiple_of(16) as u64 + cfg.dynamic_shared_bytes as u64;
    if shared > MAX_SHARED_BYTES_PER_BLOCK as u64 {
        return bad(format!(
            "shared memory {shared} bytes (static {} + dynamic {}) exceeds {MAX_SHARED_BYTES_PER_BLOCK}",
            k.prog.static_shared, cfg.dynamic_shared_bytes
        ));
    }
    if params.len() < k.param_bytes {
        return bad(format!(
            "parameter buffer is {} bytes, kernel `{}` needs {}",
            params.len(),
            k.name,
            k.param_bytes
        ));
    }
    for (_, init) in &k.prog.inits {
        if let Init::GlobalAddr(idx, _) = init {
            if *idx as usize >= addrs.len() {
                return bad(format!(
                    "kernel `{}` uses module global #{idx} (`{}`) but only {} global addresses were given",
                    k.name,
                    module.globals.get(*idx as usize).map(|g| g.name.as_str()).unwrap_or("?"),
                    addrs.len()
                ));
            }
        }
    }
    Ok(())
}

/// Registers with launch-uniform values, and registers holding block- or lane-dependent
/// specials.
type LaunchInits = (Vec<(u32, u64)>, Vec<(u32, Special)>);

/// Per-launch register initialisers of `prog`: the values uniform over the whole launch,
/// and the specials that depend on the block or lane (materialised at warp start).
#[inline]
fn launch_inits(
    prog: &Program,
    cfg: &LaunchConfig,
    global_addrs: &[u64],
    opts: &ExecOptions,
    nwarps: u32,
    static_sh: u32,
    shared_bytes: usize,
) -> LaunchInits {
    let mut uniform = Vec::new();
    let mut specials = Vec::new();
    for &(r, init) in &prog.inits {
        let v = match init {
            Init::Const(v) => v,
            Init::GlobalAddr(idx, add) => global_addrs[idx as usize].wrapping_add(add as u64),
            Init::Special(s) => match s {
                Special::Ntid(d) => cfg.block[d as usize] as u64,
                Special::Nctaid(d) => cfg.grid[d as usize] as u64,
                Special::NWarpId => nwarps as u64,
                Special::SmId => 0,
                Special::NSmId => opts.worker_threads.max(1) as u64,
                Special::GridId => 1,
                Special::DynSmem => cfg.dynamic_shared_bytes as u64,
                Special::TotalSmem => shared_bytes as u64,
                Special::DynSharedBase => static_sh as u64,
                Special::Zero => 0,
                Special::One => 1,
                _ => {
                    specials.push((r, s));
                    continue;
                }
            },
        };
        uniform.push((r, v));
    }
    (uniform, specials)
}

/// Run `kernel` over the grid described by `cfg`.
///
/// `params` is the packed parameter buffer (see [`Kernel::params`]);
/// `global_addrs[i]` is the device address of `module.globals()[i]`.
pub fn launch<M: GlobalMemory>(
    module: &Module,
    kernel: &Kernel,
    cfg: &LaunchConfig,
    params: &[u8],
    global_addrs: &[u64],
    mem: &M,
    opts: &ExecOptions,
) -> Result<LaunchStats, ExecError> {
    check_config(module, kernel, cfg, params, global_addrs)?;
    let prog = &kernel.prog;
    let threads = cfg.block.iter().product::<u32>();
    let nwarps = threads.div_ceil(LANES as u32);
    let static_sh = prog.static_shared.next_multiple_of(16);
    let shared_bytes = (static_sh + cfg.dynamic_shared_bytes) as usize;
    let (uniform, specials) = launch_inits(
        prog,
        cfg,
        global_addrs,
        opts,
        nwarps,
        static_sh,
        shared_bytes,
    );
    let lc = LaunchCtx {
        prog,
        kernel: &kernel.name,
        env: Env {
            mem,
            params,
            time: &opts.time_source,
            t0: std::time::Instant::now(),
            printf: opts.printf.clone(),
        },
        block: cfg.block,
        uniform,
        specials,
        shared_bytes,
        abort: AtomicBool::new(false),
        cancel: opts.cancel.as_deref(),
        limit: opts.instruction_limit.unwrap_or(u64::MAX),
        executed: AtomicU64::new(0),
    };
    let nblocks = cfg.grid.iter().map(|&g| g as u64).product::<u64>();
    let workers = opts.worker_threads.max(1).min(nblocks.min(1024) as usize);
    let results = run_workers(&lc, cfg.grid, nblocks, workers)?;
    Ok(tally_stats(results, nblocks, threads))
}

/// What one worker reports: its counters, longest sleep, and sum of per-block longest sleeps.
type WorkerResult = (Counters, u64, u64);

/// Run the grid's `nblocks` blocks on `workers` threads (the calling one included); the
/// first error any of them hits, or every worker's result.
fn run_workers(
    lc: &LaunchCtx<'_>,
    grid: [u32; 3],
    nblocks: u64,
    workers: usize,
) -> Result<Vec<WorkerResult>, ExecError> {
    let next = AtomicU64::new(0);
    let error: Mutex<Option<ExecError>> = Mutex::new(None);
    let worker = || run_worker(lc, grid, nblocks, &next, &error);
    let results: Vec<WorkerResult> = if workers <= 1 {
        vec![worker()]
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers - 1).map(|_| s.spawn(worker)).collect();
            let mut out = vec![worker()];
            for h in handles {
                match h.join() {
                    Ok(r) => out.push(r),
                    Err(_) => {
                        let mut slot = error.lock().unwrap_or_else(|p| p.into_inner());
                        if slot.is_none() {
                            *slot = Some(ExecError::Aborted {
                                kernel: lc.kernel.to_string(),
                                msg: "internal error: worker thread panicked".into(),
                            });
                        }
                    }
                }
            }
            out
        })
    };
    if let Some(e) = error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    Ok(results)
}

/// One worker: take blocks from `next` until the grid is done or the launch aborts.
fn run_worker(
    lc: &LaunchCtx<'_>,
    grid: [u32; 3],
    nblocks: u64,
    next: &AtomicU64,
    error: &Mutex<Option<ExecError>>,
) -> WorkerResult {
    let mut runner = match BlockRunner::new(lc) {
        Ok(r) => r,
        Err(e) => {
            record_failure(lc, error, e);
            return (Counters::default(), 0, 0);
        }
    };
    loop {
        if lc.abort.load(Relaxed) {
            break;
        }
        let b = next.fetch_add(1, Relaxed);
        if b >= nblocks {
            break;
        }
        let [gx, gy, _] = grid;
        let ctaid = [
            (b % gx as u64) as u32,
            ((b / gx as u64) % gy as u64) as u32,
            (b / (gx as u64 * gy as u64)) as u32,
        ];
        if let Err(e) = run_block_caught(&mut runner, ctaid, lc.kernel) {
            record_failure(lc, error, e);
            break;
        }
    }
    (runner.cnt.clone(), runner.sleep_max, runner.sleep_block_sum)
}

/// Run block `ctaid`, turning an interpreter panic into [`ExecError::Aborted`].
#[inline]
fn run_block_caught(
    runner: &mut BlockRunner<'_>,
    ctaid: [u32; 3],
    kernel: &str,
) -> Result<(), ExecError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runner.run_block(ctaid)))
        .unwrap_or_else(|p| {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(ExecError::Aborted {
                kernel: kernel.to_string(),
                msg: format!("internal interpreter error: {what}"),
            })
        })
}

/// Abort the launch and keep `e` as its error, unless one is already kept (a real error
/// replaces an abort, not the other way round).
fn record_failure(lc: &LaunchCtx<'_>, error: &Mutex<Option<ExecError>>, e: ExecError) {
    lc.abort.store(true, Relaxed);
    let mut slot = error.lock().unwrap_or_else(|p| p.into_inner());
    let replace = match &*slot {
        None => true,
        Some(ExecError::Aborted { .. }) => !matches!(e, ExecError::Aborted { .. }),
        Some(_) => false,
    };
    if replace {
        *slot = Some(e);
    }
}

/// Launch statistics: the grid's shape plus the workers' summed counters.
fn tally_stats(results: Vec<WorkerResult>, nblocks: u64, threads: u32) -> LaunchStats {
    let mut st = LaunchStats {
        blocks: nblocks,
        threads: nblocks * threads as u64,
        ..Default::default()
    };
    for (c, smax, ssum) in results {
        let cl = |k: Class| c.class[k as usize];
        st.warp_instructions += c.warp_insts;
        st.int_alu += cl(Class::Int);
        st.fp32 += cl(Class::Fp32);
        st.fp64 += cl(Class::Fp64);
        st.sfu += cl(Class::Sfu);
        st.global_loads += cl(Class::GlobalLd);
        st.global_stores += cl(Class::GlobalSt);
        st.shared_accesses += cl(Class::Shared);
        st.local_accesses += cl(Class::Local);
        st.atomics += cl(Class::Atomic);
        st.control += cl(Class::Control);
        st.other += cl(Class::Misc);
        st.thread_instructions += c.class.iter().sum::<u64>();
        st.global_load_bytes += c.ld_bytes;
        st.global_store_bytes += c.st_bytes;
        st.sleep_ns_max = st.sleep_ns_max.max(smax);
        st.sleep_ns_block_max_sum += ssum;
    }
    st
}
