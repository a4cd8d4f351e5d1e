//! Block and warp execution: the SIMT interpreter loop with per-lane PCs
//! (min-PC scheduling, converged fast path) and block-wide barriers.

use super::program::{
    lanes, Counters, Ctl, Cx, Env, Fault, Inst, Program, Reg, Special, WarpMisc, FULL, LANES, NONE,
    NO_GUARD,
};
use crate::error::ExecError;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// Launch-wide data every block runner needs.
pub(crate) struct LaunchCtx<'a> {
    pub prog: &'a Program,
    pub kernel: &'a str,
    pub env: Env<'a>,
    pub block: [u32; 3],
    /// Registers with the same value in every warp of the launch.
    pub uniform: Vec<(u32, u64)>,
    /// Registers that depend on the block / lane.
    pub specials: Vec<(u32, Special)>,
    pub shared_bytes: usize,
    /// Set when any worker fails; everybody stops.
    pub abort: AtomicBool,
    pub cancel: Option<&'a AtomicBool>,
    pub limit: u64,
    pub executed: AtomicU64,
}

#[derive(Clone, Copy, Default)]
struct Bar {
    arrived: u32,
    expected: Option<u32>,
    popc: u32,
    and_all: bool,
    or_any: bool,
    used: bool,
}

struct Warp {
    regs: Vec<Reg>,
    preds: Vec<u32>,
    pc: u32,
    converged: bool,
    lane_pc: [u32; LANES],
    lane_bar: [u8; LANES],
    live: u32,
    blocked: u32,
    misc: WarpMisc,
}

/// Per-worker reusable block state.
pub(crate) struct BlockRunner<'a> {
    lc: &'a LaunchCtx<'a>,
    warps: Vec<Warp>,
    shared: Vec<u8>,
    local: Vec<u8>,
    lstride: usize,
    bars: [Bar; 16],
    pub cnt: Counters,
    pub sleep_max: u64,
    pub sleep_block_sum: u64,
    steps: u64,
}

const CHECK_EVERY: u64 = 1 << 12;

/// `n` copies of `v`, or `None` when the host refuses the memory. A `try_reserve` probe makes
/// the allocation fallible; `vec!` then allocates for real, which for zeros takes lazily zeroed
/// pages (`calloc`) instead of writing every byte of a possibly large, mostly unused buffer.
fn try_filled<T: Clone>(n: usize, v: T) -> Option<Vec<T>> {
    Vec::<T>::new().try_reserve_exact(n).ok()?;
    Some(vec![v; n])
}

impl<'a> BlockRunner<'a> {
    /// Register files, local and shared memory for one block. Their sizes come from the kernel
    /// and the launch: an allocation the host refuses is an error, not an abort.
    pub fn new(lc: &'a LaunchCtx<'a>) -> Result<Self, ExecError> {
        let threads = lc.block.iter().map(|&d| d as usize).product::<usize>();
        let nw = threads.div_ceil(LANES);
        let lstride = (lc.prog.local_bytes as usize).next_multiple_of(16);
        let no_memory = |what: &str| {
            ExecError::InvalidConfig(format!(
                "cannot allocate host memory for the {what} of a block of `{}`",
                lc.kernel
            ))
        };
        let mut warps = Vec::new();
        warps
            .try_reserve_exact(nw)
            .map_err(|_| no_memory("warps"))?;
        for _ in 0..nw {
            warps.push(Warp {
                regs: try_filled(lc.prog.nregs as usize, [0u64; LANES])
                    .ok_or_else(|| no_memory("registers"))?,
                preds: try_filled(lc.prog.npreds as usize, 0u32)
                    .ok_or_else(|| no_memory("predicates"))?,
                pc: 0,
                converged: true,
                lane_pc: [0; LANES],
                lane_bar: [0; LANES],
                live: 0,
                blocked: 0,
                misc: WarpMisc {
                    sleep_ns: [0; LANES],
                    clock: 0,
                },
            });
        }
        let local = nw
            .checked_mul(LANES * lstride)
            .and_then(|n| try_filled(n, 0u8))
            .ok_or_else(|| no_memory("local memory"))?;
        Ok(BlockRunner {
            lc,
            warps,
            shared: try_filled(lc.shared_bytes, 0u8).ok_or_else(|| no_memory("shared memory"))?,
            local,
            lstride,
            bars: [Bar::default(); 16],
            cnt: Counters::default(),
            sleep_max: 0,
            sleep_block_sum: 0,
            steps: 0,
        })
    }

    fn init_block(&mut self, ctaid: [u32; 3]) {
        let lc = self.lc;
        let [bx, by, bz] = lc.block;
        let threads = bx * by * bz;
        let nw = self.warps.len() as u32;
        self.local.fill(0);
        self.bars = [Bar::default(); 16];
        for (w, warp) in self.warps.iter_mut().enumerate() {
            let first = w as u32 * 32;
            let n = (threads - first).min(32);
            warp.live = if n == 32 { FULL } else { (1u32 << n) - 1 };
            warp.blocked = 0;
            warp.pc = 0;
            warp.converged = true;
            warp.misc.sleep_ns = [0; LANES];
            warp.preds.fill(0);
            for &(r, v) in &lc.uniform {
                warp.regs[r as usize] = [v; LANES];
            }
            for &(r, s) in &lc.specials {
                let reg = &mut warp.regs[r as usize];
                for (l, slot) in reg.iter_mut().enumerate() {
                    let t = first + l as u32;
                    let lane = l as u32;
                    *slot = match s {
                        Special::Tid(0) => (t % bx) as u64,
                        Special::Tid(1) => ((t / bx) % by) as u64,
                        Special::Tid(_) => (t / (bx * by)) as u64,
                        Special::Ctaid(d) => ctaid[d as usize] as u64,
                        Special::WarpId => w as u64,
                        Special::NWarpId => nw as u64,
                        Special::LaneId => lane as u64,
                        Special::LaneMaskEq => 1u64 << lane,
                        Special::LaneMaskLt => (1u64 << lane) - 1,
                        Special::LaneMaskLe => (1u64 << (lane + 1)) - 1,
                        Special::LaneMaskGt => (!((1u64 << (lane + 1)) - 1)) & 0xffff_ffff,
                        Special::LaneMaskGe => (!((1u64 << lane) - 1)) & 0xffff_ffff,
                        _ => 0,
                    };
                }
            }
        }
    }

    /// Execute one block to completion.
    pub fn run_block(&mut self, ctaid: [u32; 3]) -> Result<(), ExecError> {
        self.init_block(ctaid);
        let total_threads: u32 = self.warps.iter().map(|w| w.live.count_ones()).sum();
        loop {
            // Round-robin time slices, so warps spinning on a flag set by another warp of
            // the block still let that warp run.
            let mut more = false;
            for w in 0..self.warps.len() {
                if self.warps[w].live & !self.warps[w].blocked != 0 && !self.run_slice(w)? {
                    self.check_abort()?;
                    more = true;
                }
            }
            if more {
                continue;
            }
            let live: u32 = self.warps.iter().map(|w| w.live.count_ones()).sum();
            if live == 0 {
                break;
            }
            if !self.release_barriers(total_threads - live, total_threads) {
                let waiting: Vec<String> = self
                    .bars
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| b.used)
                    .map(|(id, b)| format!("barrier {id}: {} arrived", b.arrived))
                    .collect();
                return Err(ExecError::Deadlock {
                    kernel: self.lc.kernel.to_string(),
                    block: ctaid,
                    msg: format!(
                        "{live} of {total_threads} threads are waiting at barriers that can never complete ({})",
                        waiting.join(", ")
                    ),
                });
            }
        }
        let mut bmax = 0;
        for w in &self.warps {
            for &s in &w.misc.sleep_ns {
                bmax = bmax.max(s);
            }
        }
        self.sleep_max = self.sleep_max.max(bmax);
        self.sleep_block_sum += bmax;
        Ok(())
    }

    /// Release every barrier whose arrival condition holds. Returns whether any was released.
    fn release_barriers(&mut self, exited: u32, total: u32) -> bool {
        let mut any = false;
        for id in 0..16usize {
            let b = self.bars[id];
            if !b.used {
                continue;
            }
            let ok = match b.expected {
                Some(n) => b.arrived >= n,
                None => b.arrived + exited >= total,
            };
            if !ok {
                continue;
            }
            any = true;
            for warp in self.warps.iter_mut() {
                let mut rel = 0u32;
                for l in lanes(warp.blocked) {
                    if warp.lane_bar[l] as usize == id {
                        rel |= 1 << l;
                    }
                }
                if rel == 0 {
                    continue;
                }
                for l in lanes(rel) {
                    let pc = warp.lane_pc[l] as usize;
                    let inst = &self.lc.prog.code[pc];
                    write_bar_result(inst, warp, l, &b);
                    warp.lane_pc[l] += 1;
                }
                warp.blocked &= !rel;
                warp.converged = false;
            }
            self.bars[id] = Bar::default();
        }
        any
    }

    fn fault(&self, pc: u32, f: Fault) -> ExecError {
        let (line, text) = self
            .lc
            .prog
            .text
            .get(pc as usize)
            .map(|(line, text)| (*line, text.to_string()))
            .unwrap_or_default();
        let kernel = self.lc.kernel.to_string();
        match f {
            Fault::Illegal(addr) => ExecError::IllegalAddress {
                addr,
                kernel,
                instruction: text,
                line,
            },
            Fault::Misaligned(addr) => ExecError::MisalignedAddress {
                addr,
                kernel,
                instruction: text,
                line,
            },
            Fault::Trap => ExecError::Trap {
                kernel,
                instruction: text,
                line,
            },
            Fault::IllegalInst(code) => ExecError::IllegalInstruction {
                kernel,
                instruction: text,
                line,
                msg: super::program::ILLEGAL_MSG
                    .get(code as usize)
                    .copied()
                    .unwrap_or("illegal instruction")
                    .to_string(),
            },
        }
    }

    fn check_abort(&self) -> Result<(), ExecError> {
        let lc = self.lc;
        let total = lc.executed.fetch_add(CHECK_EVERY, Relaxed) + CHECK_EVERY;
        let msg = if lc.abort.load(Relaxed) {
            "another block failed"
        } else if lc.cancel.is_some_and(|c| c.load(Relaxed)) {
            "cancelled"
        } else if total > lc.limit {
            "instruction limit exceeded"
        } else {
            return Ok(());
        };
        Err(ExecError::Aborted {
            kernel: lc.kernel.to_string(),
            msg: msg.to_string(),
        })
    }

    /// Run warp `w` for at most `CHECK_EVERY` steps; `Ok(true)` when it cannot progress.
    fn run_slice(&mut self, w: usize) -> Result<bool, ExecError> {
        super::raw::with_simd(
            #[inline(always)]
            || self.run_slice_impl(w),
        )
    }

    /// The interpreter's inner loop, kept in one piece on purpose (it is the one function past
    /// the project's 80-line guide): the warp's pc, convergence and lane masks live in locals
    /// for the whole slice, where helpers would pass them through memory on every step.
    #[inline(always)]
    fn run_slice_impl(&mut self, w: usize) -> Result<bool, ExecError> {
        let code: &[Inst] = &self.lc.prog.code;
        let lstride = self.lstride;
        let mut steps = self.steps;
        // the first step of a slice is always allowed (the abort check just ran)
        let mut budget_ok = true;
        let result;
        let (mut pc, mut converged, mut live, mut blocked);
        {
            let BlockRunner {
                warps,
                shared,
                local,
                cnt,
                lc,
                bars,
                ..
            } = self;
            let warp = &mut warps[w];
            pc = warp.pc;
            converged = warp.converged;
            live = warp.live;
            blocked = warp.blocked;
            let lane_pc = &mut warp.lane_pc;
            let lane_bar = &mut warp.lane_bar;
            let lbytes = LANES * lstride;
            let mut cx = Cx {
                regs: &mut warp.regs,
                preds: &mut warp.preds,
                shared,
                local: &mut local[w * lbytes..(w + 1) * lbytes],
                lstride,
                env: &lc.env,
                misc: &mut warp.misc,
                cnt,
            };
            let mut runnable = live & !blocked;
            let mut rcount = runnable.count_ones() as u64;
            result = loop {
                if runnable == 0 {
                    break Ok(());
                }
                if steps % CHECK_EVERY == CHECK_EVERY - 1 && !budget_ok {
                    break Err((NONE, None));
                }
                budget_ok = false;
                steps += 1;
                let group;
                let gcount;
                if converged {
                    group = runnable;
                    gcount = rcount;
                } else {
                    let (mn, g, same) = select(lane_pc, runnable);
                    pc = mn;
                    if same {
                        converged = true;
                        group = runnable;
                        gcount = rcount;
                    } else {
                        group = g;
                        gcount = g.count_ones() as u64;
                    }
                }
                let Some(inst) = code.get(pc as usize) else {
                    break Err((pc, Some(Fault::IllegalInst(0))));
                };
                let exec = if inst.guard == NO_GUARD {
                    group
                } else {
                    group & cx.pred(inst.guard)
                };
                cx.cnt.class[inst.class as usize] += gcount;
                // Next pc for lanes that do not branch.
                let next = pc + 1;
                match inst.ctl {
                    Ctl::Op => {
                        if exec != 0 {
                            if let Err(f) = (inst.f)(inst, &mut cx, exec) {
                                break Err((pc, Some(f)));
                            }
                        }
                        if converged {
                            pc = next;
                        } else {
                            set_pcs(lane_pc, group, next);
                        }
                    }
                    Ctl::Bra => {
                        let target = inst.imm as u32;
                        if converged {
                            if exec == group {
                                pc = target;
                            } else if exec == 0 {
                                pc = next;
                            } else {
                                set_pcs(lane_pc, exec, target);
                                set_pcs(lane_pc, group & !exec, next);
                                converged = false;
                            }
                        } else {
                            set_pcs(lane_pc, exec, target);
                            set_pcs(lane_pc, group & !exec, next);
                        }
                    }
                    Ctl::Brx => {
                        let table = &lc.prog.tables[inst.aux as usize];
                        let idx = &cx.regs[inst.r[1] as usize];
                        let mut bad = None;
                        if converged {
                            set_pcs(lane_pc, group, next);
                            converged = false;
                        } else {
                            set_pcs(lane_pc, group & !exec, next);
                        }
                        for l in lanes(exec) {
                            match table.get(idx[l] as u32 as usize) {
                                Some(&t) => lane_pc[l] = t,
                                None => bad = Some(l),
                            }
                        }
                        if bad.is_some() {
                            break Err((pc, Some(Fault::IllegalInst(1))));
                        }
                    }
                    Ctl::Exit => {
                        live &= !exec;
                        if converged {
                            pc = next;
                        } else {
                            set_pcs(lane_pc, group & !exec, next);
                        }
                        runnable = live & !blocked;
                        rcount = runnable.count_ones() as u64;
                    }
                    Ctl::Trap => {
                        if exec != 0 {
                            break Err((pc, Some(Fault::Trap)));
                        }
                        if converged {
                            pc = next;
                        } else {
                            set_pcs(lane_pc, group, next);
                        }
                    }
                    Ctl::Bar => {
                        if converged {
                            set_pcs(lane_pc, group, pc);
                            converged = false;
                        }
                        set_pcs(lane_pc, group & !exec, next);
                        if exec != 0 {
                            let first = exec.trailing_zeros() as usize;
                            let id = cx.regs[inst.r[1] as usize][first] as usize;
                            if id >= 16 {
                                break Err((pc, Some(Fault::IllegalInst(2))));
                            }
                            let count = if inst.r[2] != NONE {
                                Some(cx.regs[inst.r[2] as usize][first] as u32)
                            } else {
                                None
                            };
                            let b = &mut bars[id];
                            if !b.used {
                                *b = Bar {
                                    and_all: true,
                                    used: true,
                                    ..Bar::default()
                                };
                            }
                            b.arrived += exec.count_ones();
                            if count.is_some() {
                                b.expected = count;
                            }
                            if inst.aux == 1 {
                                // bar.arrive: no wait
                                set_pcs(lane_pc, exec, next);
                            } else {
                                if inst.aux >= 2 {
                                    let p = cx.pred(inst.x[0]) & exec;
                                    b.popc += p.count_ones();
                                    b.and_all &= p == exec;
                                    b.or_any |= p != 0;
                                }
                                for l in lanes(exec) {
                                    lane_bar[l] = id as u8;
                                }
                                blocked |= exec;
                                runnable = live & !blocked;
                                rcount = runnable.count_ones() as u64;
                            }
                        }
                    }
                }
            };
            let warp = &mut warps[w];
            warp.pc = pc;
            warp.converged = converged;
            warp.live = live;
            warp.blocked = blocked;
        }
        self.steps = steps;
        self.cnt.warp_insts = steps;
        match result {
            Ok(()) => Ok(true),
            Err((_, None)) => Ok(false),
            Err((pc, Some(f))) => Err(self.fault(pc, f)),
        }
    }
}

/// Lowest PC among `runnable` lanes, the lanes at it, and whether all share it.
#[inline]
fn select(lane_pc: &[u32; LANES], runnable: u32) -> (u32, u32, bool) {
    let mut mn = u32::MAX;
    let mut mx = 0u32;
    for l in 0..LANES {
        let on = (runnable >> l) & 1 != 0;
        mn = mn.min(if on { lane_pc[l] } else { u32::MAX });
        mx = mx.max(if on { lane_pc[l] } else { 0 });
    }
    let mut g = 0u32;
    for l in 0..LANES {
        g |= ((lane_pc[l] == mn) as u32) << l;
    }
    (mn, g & runnable, mn == mx)
}

#[inline(always)]
fn set_pcs(lane_pc: &mut [u32; LANES], m: u32, v: u32) {
    for l in 0..LANES {
        if (m >> l) & 1 != 0 {
            lane_pc[l] = v;
        }
    }
}

/// Write the `bar.red` result for lane `l` of `warp` on release.
fn write_bar_result(inst: &Inst, warp: &mut Warp, l: usize, b: &Bar) {
    match inst.aux {
        2 if inst.r[0] != NONE => warp.regs[inst.r[0] as usize][l] = b.popc as u64,
        3 | 4 if inst.r[0] != NONE => {
            let v = if inst.aux == 3 { b.and_all } else { b.or_any };
            let p = &mut warp.preds[inst.r[0] as usize];
            *p = (*p & !(1 << l)) | ((v as u32) << l);
        }
        _ => {}
    }
}
