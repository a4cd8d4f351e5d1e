//! The benchmark programs of `tests/c` (`bench_shim.c`, `bench_pipeline.c`, `bench_tenants.c`,
//! `bench_first_touch.c`, `bench_sched.c`'s periodic requests with `--phases`, and directly only
//! `bench_streamed_floor.c`) run, small, directly on the CPU device and through shim + broker,
//! and print every figure they promise as a finite number. Their figures are printed, never
//! asserted (docs/benchmarks.md records them); only a relation that holds by construction is
//! (a request's device-side span lies within its wall-clock latency).
//!
//! Prerequisites: `cargo build --release -p gpushare-cpu -p gpushare-broker -p gpushare-shim`.

use std::time::Duration;

use gpushare_tests::broker::Broker;
use gpushare_tests::{compile_c, run_program, shared, RunOutput};

/// Bound on one program run (direct or through the shim).
const RUN: Duration = Duration::from_secs(60);

const BENCH_SHIM_KEYS: &[&str] = &[
    "launch_async_ns",
    "stream_query_p50_us",
    "stream_query_p99_us",
    "call_p50_us",
    "call_p99_us",
    "device_call_p50_us",
    "device_call_p99_us",
    "h2d_pageable_gbps",
    "d2h_pageable_gbps",
    "h2d_pinned_gbps",
    "d2h_pinned_gbps",
    "launches_per_s",
    "alloc_free_small_us",
    "alloc_free_large_us",
];

const BENCH_SHIM_TINY: &[&str] = &[
    "--launches",
    "50",
    "--batches",
    "3",
    "--queries",
    "200",
    "--copy-mib",
    "1",
    "--copy-reps",
    "2",
    "--rate-launches",
    "200",
    "--rate-reps",
    "2",
];

const BENCH_STREAMED_FLOOR_KEYS: &[&str] = &[
    "h2d_pageable_gbps",
    "h2d_streamed_gbps",
    "submit_us",
    "first_piece_us",
];

const BENCH_STREAMED_FLOOR_TINY: &[&str] = &["--copy-mib", "9", "--copy-reps", "2"];

const BENCH_FIRST_TOUCH_KEYS: &[&str] = &["pinned_alloc_ms", "first_upload_ms", "again_upload_ms"];

const BENCH_FIRST_TOUCH_TINY: &[&str] = &["--mib", "4", "--reps", "2"];

const BENCH_PIPELINE_KEYS: &[&str] = &["serial_ms", "pipelined_ms", "speedup"];

const BENCH_PIPELINE_TINY: &[&str] = &["--batches", "4", "--mib", "1", "--kernel-us", "200"];

const BENCH_TENANTS_KEYS: &[&str] = &["batches", "elapsed_s", "batches_per_s", "batch_p50_ms"];

const BENCH_TENANTS_TINY: &[&str] = &["--seconds", "0.3", "--mib", "1", "--kernel-us", "200"];

const BENCH_TENANTS_WAKE_KEYS: &[&str] = &[
    "tiny_event_sync_p50_us",
    "tiny_event_sync_p99_us",
    "tiny_stream_sync_p50_us",
    "tiny_stream_sync_p99_us",
    "tiny_launch_wake_p50_us",
    "tiny_launch_wake_p99_us",
    "long_overhead_p50_us",
    "long_overhead_p99_us",
];

const BENCH_TENANTS_WAKE_TINY: &[&str] = &["--wake", "40", "--gap-us", "100", "--long-us", "100"];

const BENCH_SCHED_PHASES_KEYS: &[&str] = &[
    "launches",
    "elapsed_s",
    "lat_p50_us",
    "lat_p99_us",
    "dev_p50_us",
    "dev_p99_us",
];

/// bench-sched.sh f's latency tenant, short: a 64 KiB upload, a 100 µs kernel and a 64 KiB
/// download every 5 ms, with events between them.
const BENCH_SCHED_PHASES_TINY: &[&str] = &[
    "--seconds",
    "0.3",
    "--ns",
    "100000",
    "--period-us",
    "5000",
    "--copy-kib",
    "64",
    "--phases",
    "1",
];

/// With pacing a request completes only once the device's clock has passed its last event.
const PACING: &[(&str, &str)] = &[("GPUSHARE_CPU_PACING", "1")];

/// Parses a benchmark's output ("KEY VALUE UNIT" lines, the unit optional): exactly `keys`, in
/// order, each a finite non-negative number.
fn parse_figures(out: &RunOutput, keys: &[&str]) -> Result<Vec<(String, f64)>, String> {
    if !out.success() {
        return Err(format!("the benchmark failed\n{out}"));
    }
    let mut figures = Vec::new();
    for line in out.stdout.lines() {
        let mut words = line.split_whitespace();
        let (Some(key), Some(value), _unit, None) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            return Err(format!("unexpected line {line:?}\n{out}"));
        };
        let v: f64 = value.parse().map_err(|e| format!("{line:?}: {e}\n{out}"))?;
        if !v.is_finite() || v < 0.0 {
            return Err(format!("{line:?}: not a finite non-negative figure\n{out}"));
        }
        figures.push((key.to_string(), v));
    }
    let got: Vec<&str> = figures.iter().map(|(k, _)| k.as_str()).collect();
    if got != keys {
        return Err(format!("keys {got:?}, expected {keys:?}\n{out}"));
    }
    Ok(figures)
}

/// Runs `program` with `args` directly and through a broker; prints both columns.
fn both_ways(program: &str, args: &[&str], keys: &[&str]) {
    let _g = shared();
    let exe = compile_c(program);
    let direct = parse_figures(&run_program(&exe, args, &[], RUN), keys)
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let broker = Broker::start(&[]);
    let shim = parse_figures(&broker.run_tenant(program, &exe, args, &[], RUN), keys)
        .unwrap_or_else(|e| panic!("{program} through the shim: {e}"));
    for ((k, d), (_, s)) in direct.iter().zip(&shim) {
        println!("{k:<22} direct {d:>12.3}   through the shim {s:>12.3}");
    }
}

#[test]
fn bench_shim_runs_directly_and_through_the_shim() {
    both_ways("bench_shim", BENCH_SHIM_TINY, BENCH_SHIM_KEYS);
}

/// Directly only (a tenant's own stream waits are not forwarded); it checks the device's bytes
/// itself.
#[test]
fn bench_streamed_floor_runs_directly() {
    let _g = shared();
    let exe = compile_c("bench_streamed_floor");
    let out = run_program(&exe, BENCH_STREAMED_FLOOR_TINY, &[], RUN);
    let figures = parse_figures(&out, BENCH_STREAMED_FLOOR_KEYS)
        .unwrap_or_else(|e| panic!("bench_streamed_floor: {e}"));
    for (k, v) in figures {
        println!("{k:<22} direct {v:>12.3}");
    }
}

/// It checks the device's last byte each round itself.
#[test]
fn bench_first_touch_runs_directly_and_through_the_shim() {
    both_ways(
        "bench_first_touch",
        BENCH_FIRST_TOUCH_TINY,
        BENCH_FIRST_TOUCH_KEYS,
    );
}

/// It checks every batch's bytes itself.
#[test]
fn bench_pipeline_runs_directly_and_through_the_shim() {
    both_ways("bench_pipeline", BENCH_PIPELINE_TINY, BENCH_PIPELINE_KEYS);
}

/// Batch mode: it checks every batch's bytes itself.
#[test]
fn bench_tenants_runs_directly_and_through_the_shim() {
    both_ways("bench_tenants", BENCH_TENANTS_TINY, BENCH_TENANTS_KEYS);
}

#[test]
fn bench_tenants_wake_runs_directly_and_through_the_shim() {
    both_ways(
        "bench_tenants",
        BENCH_TENANTS_WAKE_TINY,
        BENCH_TENANTS_WAKE_KEYS,
    );
}

/// `bench_sched` periodic with `--phases` (it checks its request's bytes itself): the
/// device-side spans' percentiles lie within the wall-clock latencies' (each request's span,
/// first event to last, lies within its latency), directly and through the shim.
#[test]
fn bench_sched_phases_run_directly_and_through_the_shim() {
    let _g = shared();
    let exe = compile_c("bench_sched");
    let args = BENCH_SCHED_PHASES_TINY;
    let keys = BENCH_SCHED_PHASES_KEYS;
    let direct = parse_figures(&run_program(&exe, args, PACING, RUN), keys)
        .unwrap_or_else(|e| panic!("bench_sched: {e}"));
    let broker = Broker::start(PACING);
    let shim = parse_figures(&broker.run_tenant("lat", &exe, args, &[], RUN), keys)
        .unwrap_or_else(|e| panic!("bench_sched through the shim: {e}"));
    for (how, figures) in [("direct", &direct), ("through the shim", &shim)] {
        let f = |k: &str| {
            figures
                .iter()
                .find(|(key, _)| key == k)
                .map_or(0.0, |p| p.1)
        };
        println!("{how}: {figures:?}");
        // The printed figures are rounded to 0.1 µs.
        for (dev, lat) in [("dev_p50_us", "lat_p50_us"), ("dev_p99_us", "lat_p99_us")] {
            assert!(
                f(dev) > 0.0 && f(dev) <= f(lat) + 0.1,
                "{how}: {dev} {} against {lat} {}",
                f(dev),
                f(lat)
            );
        }
    }
}
