//! The timing model: pure functions from a device profile and a sequence of operations to each
//! operation's modelled start and end (nanoseconds on the driver clock, `crate::clock::Clock`).
//!
//! The executor feeds every operation, in submission order, to [`Timeline::schedule`] once it knows
//! the operation's cost (for a kernel: after running it, from the interpreter's statistics). The
//! model is documented in docs/cpu-device.md ("Timing model"); in short:
//!
//! - start = max(submission time, end of the previous op on the same stream, end of everything it
//!   waits on (events, legacy-stream barriers), the busy-until time of the engine it uses);
//! - end = start + duration; the engine is then busy until `end`.
//! - Engines: one compute engine (kernels, device-to-device copies, memsets), one H2D and one D2H
//!   copy engine. Pageable copies occupy both copy engines. Markers (event records, waits) and host
//!   functions use no engine and take no time.

use std::collections::HashMap;

use crate::profile::{DeviceProfile, EngineRates};

/// Nanoseconds on the driver clock.
pub type Nanos = u64;

/// Which engine(s) an operation occupies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineUse {
    /// No engine: markers, event records and waits, host functions.
    None,
    /// The compute engine: kernels, device-to-device copies, memsets.
    Compute,
    /// The host-to-device copy engine (pinned source).
    H2D,
    /// The device-to-host copy engine (pinned destination).
    D2H,
    /// Both copy engines: pageable (staged) copies serialise with every other copy.
    BothCopy,
}

/// How a stream synchronises with the context's legacy default stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamClass {
    /// The legacy default stream: waits for all prior work on the context's blocking streams.
    Legacy,
    /// A blocking stream (created with `CU_STREAM_DEFAULT`, or a per-thread default stream): waits
    /// for prior legacy-stream work.
    Blocking,
    /// A `CU_STREAM_NON_BLOCKING` stream: no implicit synchronisation.
    NonBlocking,
}

/// One operation as the model sees it.
#[derive(Clone, Copy, Debug)]
pub struct ModelOp {
    /// Owning context.
    pub ctx: u64,
    /// Stream key (unique per stream object).
    pub stream: u64,
    /// The stream's class.
    pub class: StreamClass,
    /// Submission time.
    pub submit: Nanos,
    /// Engine(s) used.
    pub engine: EngineUse,
    /// Modelled duration.
    pub duration: Nanos,
    /// Explicit dependencies (event waits): the op starts no earlier than this.
    pub after: Nanos,
}

/// A modelled interval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    /// Modelled start.
    pub start: Nanos,
    /// Modelled end.
    pub end: Nanos,
}

#[derive(Clone, Copy, Debug, Default)]
struct CtxClock {
    /// End of the last legacy-stream op.
    legacy_end: Nanos,
    /// Latest end of any op on a blocking stream.
    blocking_end: Nanos,
    /// Latest end of any op of the context (what a context synchronisation waits for).
    horizon: Nanos,
}

/// Engine and stream timelines.
#[derive(Debug, Default)]
pub struct Timeline {
    compute: Nanos,
    h2d: Nanos,
    d2h: Nanos,
    streams: HashMap<u64, Nanos>,
    contexts: HashMap<u64, CtxClock>,
}

impl Timeline {
    /// An idle device.
    pub fn new() -> Self {
        Self::default()
    }

    /// When `op` would start if scheduled now (its duration does not matter).
    pub fn peek_start(&self, op: &ModelOp) -> Nanos {
        let clock = self.contexts.get(&op.ctx).copied().unwrap_or_default();
        let stream_end = self.streams.get(&op.stream).copied().unwrap_or(0);
        let barrier = match op.class {
            StreamClass::Legacy => clock.blocking_end.max(clock.legacy_end),
            StreamClass::Blocking => clock.legacy_end,
            StreamClass::NonBlocking => 0,
        };
        let engine_free = match op.engine {
            EngineUse::None => 0,
            EngineUse::Compute => self.compute,
            EngineUse::H2D => self.h2d,
            EngineUse::D2H => self.d2h,
            EngineUse::BothCopy => self.h2d.max(self.d2h),
        };
        op.submit
            .max(stream_end)
            .max(barrier)
            .max(op.after)
            .max(engine_free)
    }

    /// Places `op` on the timelines and returns its modelled interval.
    pub fn schedule(&mut self, op: &ModelOp) -> Span {
        let start = self.peek_start(op);
        let end = start.saturating_add(op.duration);
        match op.engine {
            EngineUse::None => {}
            EngineUse::Compute => self.compute = end,
            EngineUse::H2D => self.h2d = end,
            EngineUse::D2H => self.d2h = end,
            EngineUse::BothCopy => {
                self.h2d = end;
                self.d2h = end;
            }
        }
        self.streams.insert(op.stream, end);
        let clock = self.contexts.entry(op.ctx).or_default();
        match op.class {
            StreamClass::Legacy => clock.legacy_end = clock.legacy_end.max(end),
            StreamClass::Blocking => clock.blocking_end = clock.blocking_end.max(end),
            StreamClass::NonBlocking => {}
        }
        clock.horizon = clock.horizon.max(end);
        Span { start, end }
    }

    /// Latest modelled end of any op of context `ctx` scheduled so far.
    pub fn context_horizon(&self, ctx: u64) -> Nanos {
        self.contexts.get(&ctx).map_or(0, |c| c.horizon)
    }

    /// Drops the state of a destroyed stream.
    pub fn forget_stream(&mut self, stream: u64) {
        self.streams.remove(&stream);
    }

    /// Drops the state of a released context.
    pub fn forget_context(&mut self, ctx: u64) {
        self.contexts.remove(&ctx);
    }
}

/// Direction of a copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyKind {
    /// Host to device.
    H2D,
    /// Device to host.
    D2H,
    /// Device to device.
    D2D,
    /// Host to host (through `cuMemcpy` with two host pointers).
    H2H,
}

fn transfer_ns(bytes: u64, rate: f64) -> Nanos {
    if rate <= 0.0 {
        return 0;
    }
    (bytes as f64 * 1e9 / rate).ceil() as Nanos
}

/// Engine and duration of a copy of `bytes`; `pinned` says whether the host side is page-locked.
pub fn copy_cost(
    rates: &EngineRates,
    kind: CopyKind,
    bytes: u64,
    pinned: bool,
) -> (EngineUse, Nanos) {
    let (engine, rate) = match (kind, pinned) {
        (CopyKind::D2D, _) => (EngineUse::Compute, rates.d2d),
        (CopyKind::H2D, true) => (EngineUse::H2D, rates.h2d_pinned),
        (CopyKind::D2H, true) => (EngineUse::D2H, rates.d2h_pinned),
        (CopyKind::H2D | CopyKind::D2H | CopyKind::H2H, _) => (EngineUse::BothCopy, rates.pageable),
    };
    (engine, rates.copy_latency_ns + transfer_ns(bytes, rate))
}

/// Duration of a memset of `bytes` (compute engine).
pub fn memset_cost(rates: &EngineRates, bytes: u64) -> Nanos {
    rates.copy_latency_ns + transfer_ns(bytes, rates.d2d)
}

/// What the model charges a kernel for: instruction counts by class, global memory traffic and
/// sleeping, plus the launch shape.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct KernelCost {
    /// fp32 thread-instructions.
    pub fp32: u64,
    /// fp64 thread-instructions.
    pub fp64: u64,
    /// Special-function thread-instructions.
    pub sfu: u64,
    /// All other thread-instructions.
    pub other: u64,
    /// Bytes of global memory read and written.
    pub global_bytes: u64,
    /// The largest total of `nanosleep` time requested by any one block, ns.
    pub max_block_sleep_ns: u64,
    /// Blocks in the grid.
    pub blocks: u64,
    /// Threads per block.
    pub threads_per_block: u32,
    /// Shared memory per block (static + dynamic), bytes.
    pub shared_per_block: u32,
}

/// How many blocks of this shape fit on one SM at once (at least 1).
pub fn resident_blocks_per_sm(
    profile: &DeviceProfile,
    threads_per_block: u32,
    shared_per_block: u32,
) -> u32 {
    let by_threads = profile.max_threads_per_sm / threads_per_block.max(1);
    let by_shared = profile
        .shared_per_sm
        .checked_div(shared_per_block)
        .unwrap_or(u32::MAX);
    by_threads
        .min(by_shared)
        .min(profile.max_blocks_per_sm)
        .max(1)
}

/// Waves: how many rounds of fully occupied SMs the grid needs.
pub fn waves(profile: &DeviceProfile, cost: &KernelCost) -> u64 {
    let per_wave = u64::from(profile.sm_count.max(1))
        * u64::from(resident_blocks_per_sm(
            profile,
            cost.threads_per_block,
            cost.shared_per_block,
        ));
    cost.blocks.div_ceil(per_wave).max(1)
}

/// Modelled duration of a kernel:
/// `launch_latency + max(instr_time, mem_time) + waves * max_block_sleep`.
pub fn kernel_duration(profile: &DeviceProfile, cost: &KernelCost) -> Nanos {
    let r = &profile.rates;
    let instr = |count: u64, rate: f64| {
        if rate > 0.0 {
            count as f64 * 1e9 / rate
        } else {
            0.0
        }
    };
    let instr_time = instr(cost.fp32, r.fp32)
        + instr(cost.fp64, r.fp64)
        + instr(cost.sfu, r.sfu)
        + instr(cost.other, r.issue);
    let mem_time = if r.memory_bandwidth > 0.0 {
        cost.global_bytes as f64 * 1e9 / r.memory_bandwidth
    } else {
        0.0
    };
    let sleep = waves(profile, cost).saturating_mul(cost.max_block_sleep_ns);
    r.launch_latency_ns
        .saturating_add(instr_time.max(mem_time).ceil() as Nanos)
        .saturating_add(sleep)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(
        stream: u64,
        class: StreamClass,
        submit: Nanos,
        engine: EngineUse,
        duration: Nanos,
    ) -> ModelOp {
        ModelOp {
            ctx: 1,
            stream,
            class,
            submit,
            engine,
            duration,
            after: 0,
        }
    }

    #[test]
    fn h2d_overlaps_compute_on_other_streams() {
        let mut t = Timeline::new();
        let k = t.schedule(&op(
            10,
            StreamClass::NonBlocking,
            0,
            EngineUse::Compute,
            1000,
        ));
        let c = t.schedule(&op(11, StreamClass::NonBlocking, 5, EngineUse::H2D, 800));
        assert_eq!(
            k,
            Span {
                start: 0,
                end: 1000
            }
        );
        assert_eq!(c, Span { start: 5, end: 805 }, "copy overlaps the kernel");
    }

    #[test]
    fn two_h2d_copies_serialise_on_the_engine() {
        let mut t = Timeline::new();
        let a = t.schedule(&op(10, StreamClass::NonBlocking, 0, EngineUse::H2D, 500));
        let b = t.schedule(&op(11, StreamClass::NonBlocking, 0, EngineUse::H2D, 500));
        assert_eq!(b.start, a.end);
        // A D2H copy uses its own engine.
        let c = t.schedule(&op(12, StreamClass::NonBlocking, 0, EngineUse::D2H, 500));
        assert_eq!(c.start, 0);
    }

    #[test]
    fn pageable_copies_block_both_copy_engines() {
        let mut t = Timeline::new();
        let d2h = t.schedule(&op(10, StreamClass::NonBlocking, 0, EngineUse::D2H, 300));
        let pageable = t.schedule(&op(
            11,
            StreamClass::NonBlocking,
            0,
            EngineUse::BothCopy,
            100,
        ));
        assert_eq!(pageable.start, d2h.end);
        let h2d = t.schedule(&op(12, StreamClass::NonBlocking, 0, EngineUse::H2D, 100));
        assert_eq!(h2d.start, pageable.end);
    }

    #[test]
    fn stream_order_and_event_waits() {
        let mut t = Timeline::new();
        let a = t.schedule(&op(
            10,
            StreamClass::NonBlocking,
            0,
            EngineUse::Compute,
            100,
        ));
        // Same stream, other engine: still after the previous op.
        let b = t.schedule(&op(10, StreamClass::NonBlocking, 0, EngineUse::D2H, 50));
        assert_eq!(b.start, a.end);
        let mut w = op(11, StreamClass::NonBlocking, 0, EngineUse::H2D, 10);
        w.after = 400;
        assert_eq!(t.schedule(&w).start, 400);
        assert_eq!(t.context_horizon(1), 410);
    }

    #[test]
    fn legacy_stream_barriers() {
        let mut t = Timeline::new();
        let blocking = t.schedule(&op(10, StreamClass::Blocking, 0, EngineUse::H2D, 1000));
        let nb = t.schedule(&op(11, StreamClass::NonBlocking, 0, EngineUse::D2H, 2000));
        // The legacy op waits for the blocking stream but not for the non-blocking one.
        let legacy = t.schedule(&op(1, StreamClass::Legacy, 0, EngineUse::Compute, 100));
        assert_eq!(legacy.start, blocking.end);
        assert!(legacy.end < nb.end);
        // A later op on another blocking stream waits for the legacy op.
        let after = t.schedule(&op(12, StreamClass::Blocking, 0, EngineUse::D2H, 10));
        assert_eq!(
            after.start,
            nb.end.max(legacy.end),
            "engine busy until the D2H copy ends"
        );
        let after2 = t.schedule(&op(13, StreamClass::Blocking, 0, EngineUse::None, 0));
        assert_eq!(after2.start, legacy.end);
        // Non-blocking streams ignore legacy work.
        let free = t.schedule(&op(14, StreamClass::NonBlocking, 0, EngineUse::None, 0));
        assert_eq!(free.start, 0);
        // Another context has its own legacy stream.
        let mut other = op(20, StreamClass::Legacy, 0, EngineUse::None, 0);
        other.ctx = 2;
        assert_eq!(t.schedule(&other).start, 0);
    }

    #[test]
    fn pinned_copies_are_faster_than_pageable() {
        let rates = DeviceProfile::small().rates;
        let (e1, pinned) = copy_cost(&rates, CopyKind::H2D, 1 << 20, true);
        let (e2, pageable) = copy_cost(&rates, CopyKind::H2D, 1 << 20, false);
        assert_eq!(e1, EngineUse::H2D);
        assert_eq!(e2, EngineUse::BothCopy);
        // 1 MiB at 2 GB/s = 524288 ns (+5 µs latency); at 0.5 GB/s four times that.
        assert_eq!(pinned, 5_000 + 524_288);
        assert_eq!(pageable, 5_000 + 4 * 524_288);
        assert_eq!(
            copy_cost(&rates, CopyKind::D2D, 0, false),
            (EngineUse::Compute, 5_000)
        );
        assert_eq!(copy_cost(&rates, CopyKind::D2H, 0, true).0, EngineUse::D2H);
    }

    #[test]
    fn kernel_time_is_max_of_instructions_and_memory() {
        let p = DeviceProfile::small();
        // 512e9 fp32/s: 512_000 fp32 instructions take 1 µs.
        let compute = KernelCost {
            fp32: 512_000,
            blocks: 1,
            threads_per_block: 32,
            ..Default::default()
        };
        assert_eq!(kernel_duration(&p, &compute), 5_000 + 1_000);
        // 50 GB/s: 100_000 bytes take 2 µs, more than the instructions.
        let memory = KernelCost {
            global_bytes: 100_000,
            ..compute
        };
        assert_eq!(kernel_duration(&p, &memory), 5_000 + 2_000);
        let fp64 = KernelCost {
            fp64: 256_000,
            blocks: 1,
            threads_per_block: 32,
            ..Default::default()
        };
        assert_eq!(kernel_duration(&p, &fp64), 5_000 + 1_000);
    }

    #[test]
    fn sleep_time_is_waves_times_the_longest_block() {
        let p = DeviceProfile::small(); // 4 SMs, 2048 threads and 32 blocks per SM
        assert_eq!(resident_blocks_per_sm(&p, 1024, 0), 2);
        assert_eq!(resident_blocks_per_sm(&p, 32, 0), 32);
        assert_eq!(resident_blocks_per_sm(&p, 256, 100 * 1024), 2);
        let one_wave = KernelCost {
            blocks: 8,
            threads_per_block: 1024,
            max_block_sleep_ns: 1_000_000,
            ..Default::default()
        };
        assert_eq!(waves(&p, &one_wave), 1);
        assert_eq!(kernel_duration(&p, &one_wave), 5_000 + 1_000_000);
        let three_waves = KernelCost {
            blocks: 17,
            ..one_wave
        };
        assert_eq!(waves(&p, &three_waves), 3);
        assert_eq!(kernel_duration(&p, &three_waves), 5_000 + 3_000_000);
    }
}
