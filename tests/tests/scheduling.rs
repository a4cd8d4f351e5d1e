//! Fair scheduling end to end (shim → broker → worker on the CPU device): the cost model learns
//! each kernel's modelled device time from the worker's events, `gpushare status` reports it
//! per tenant, and `gpushare profile` writes it for a policy to seed the model with. Shares,
//! priorities and caps are asserted over modelled time in broker/src/scheduler/sim.rs; the
//! figures through real processes are benchmarks (scripts/bench-sched.sh), never asserted here.

use std::process::Command;
use std::time::Duration;

use gpushare_tests::broker::{gpushare_bin, tenant_env, Broker};
use gpushare_tests::process::run_command;
use gpushare_tests::{compile_c, cpu_lib};

/// busy_sleep of 100 µs, 1 block: the `small` profile models 5 µs launch latency + the sleep.
const KERNEL_NS: u64 = 105_000;
const SMALL: &[(&str, &str)] = &[("GPUSHARE_CPU_PROFILE", "small")];
/// How much longer than modelled a tenant's kernels may be on average. The worker times a
/// kernel from its start event, so a worker descheduled between recording that event and
/// submitting the launch adds its pause to that kernel (0.3–5 ms each, about one kernel in 250,
/// with two busy loops beside this test on two cores). Charging a kernel for its wait behind
/// the other tenant's, the error this test guards against, added 33–240 % in seven runs.
const HOST_PAUSE_SLACK: u64 = KERNEL_NS / 10;

#[test]
fn status_reports_device_time_share_and_prediction_error() {
    let broker = Broker::start_with_policy(
        Some("[default]\nisolation = \"shared\"\n[tenants.heavy]\nweight = 3\n"),
        SMALL,
    );
    let bench = compile_c("bench_sched");
    let args = ["--seconds", "3", "--ns", "100000", "--depth", "20"];
    let tenants: Vec<_> = ["heavy", "light"]
        .iter()
        .map(|n| broker.spawn_tenant(n, &bench, &args, SMALL))
        .collect();
    let status = broker
        .wait_status("both tenants measured", Duration::from_secs(20), |s| {
            s.tenants.len() == 2 && s.tenants.iter().all(|t| t.kernels >= 500)
        })
        .expect("both tenants' kernels are measured");
    let shares: u64 = status.tenants.iter().map(|t| u64::from(t.share_ppm)).sum();
    assert_eq!(
        u64::from(status.devices[0].busy_permille),
        (shares / 1000).min(1000),
        "the device's busy time is its tenants' shares"
    );
    assert!(status.devices[0].busy_permille > 0, "{status:?}");
    for t in &status.tenants {
        let per_kernel = t.gpu_time_ns / t.kernels;
        let modelled = KERNEL_NS - KERNEL_NS / 50..=KERNEL_NS + HOST_PAUSE_SLACK;
        assert!(
            modelled.contains(&per_kernel),
            "{}: {per_kernel} ns per kernel, modelled {KERNEL_NS}",
            t.name
        );
        let err = t
            .prediction_error_ppm
            .expect("a prediction error once measured");
        assert!(err < 500_000, "{}: prediction error {err} ppm", t.name);
        assert!(t.share_ppm > 0 && t.share_ppm <= 1_000_000, "{t:?}");
        assert!(t.queue_p99_ns >= t.queue_p50_ns, "{t:?}");
    }
    for t in tenants {
        let out = t.wait(Duration::from_secs(30));
        assert_eq!(out.code, Some(0), "{out:?}");
    }
}

#[test]
fn profile_writes_what_a_program_ran() {
    let bench = compile_c("bench_sched");
    let out = std::env::temp_dir().join(format!("gpushare-profile-{}.toml", std::process::id()));
    let mut cmd = Command::new(gpushare_bin());
    cmd.args(["profile", "--device", "cpu", "--out"])
        .arg(&out)
        .arg("--")
        .arg(&bench)
        .args(["--seconds", "0.5", "--ns", "100000", "--depth", "10"]);
    tenant_env(&mut cmd, SMALL);
    cmd.env("GPUSHARE_CPU_LIB", cpu_lib())
        .env("GPUSHARE_SHIM_LIB", gpushare_tests::broker::shim_lib());
    let run = run_command(cmd, Duration::from_secs(60));
    assert_eq!(run.code, Some(0), "{run:?}");
    let text = std::fs::read_to_string(&out).expect("the profile was written");
    let _ = std::fs::remove_file(&out);
    let value: toml_like::Profile = toml_like::parse(&text);
    let k = value
        .kernels
        .iter()
        .find(|k| k.kernel == "busy_sleep" && k.grid == [1, 1, 1])
        .unwrap_or_else(|| panic!("busy_sleep is in the profile:\n{text}"));
    assert!(
        k.ns.abs_diff(KERNEL_NS) <= KERNEL_NS / 50 && k.samples >= 10,
        "learned {} ns from {} samples, modelled {KERNEL_NS}:\n{text}",
        k.ns,
        k.samples
    );
}

/// Just enough of the profile format to check it (the broker's own parser is tested in its
/// crate): `[[kernels]]` tables with `kernel`, `grid`, `ns`, `samples`.
mod toml_like {
    pub struct Kernel {
        pub kernel: String,
        pub grid: [u32; 3],
        pub ns: u64,
        pub samples: u64,
    }

    pub struct Profile {
        pub kernels: Vec<Kernel>,
    }

    pub fn parse(text: &str) -> Profile {
        let mut kernels = Vec::new();
        let mut cur: Option<Kernel> = None;
        for line in text.lines().map(str::trim) {
            if line == "[[kernels]]" {
                kernels.extend(cur.take());
                cur = Some(Kernel {
                    kernel: String::new(),
                    grid: [0; 3],
                    ns: 0,
                    samples: 0,
                });
                continue;
            }
            let (Some(k), Some((key, value))) = (cur.as_mut(), line.split_once('=')) else {
                continue;
            };
            let value = value.trim();
            match key.trim() {
                "kernel" => k.kernel = value.trim_matches('"').to_string(),
                "ns" => k.ns = value.parse::<f64>().unwrap_or(0.0) as u64,
                "samples" => k.samples = value.parse().unwrap_or(0),
                "grid" => {
                    let v: Vec<u32> = value
                        .trim_matches(|c| c == '[' || c == ']')
                        .split(',')
                        .filter_map(|x| x.trim().parse().ok())
                        .collect();
                    if v.len() == 3 {
                        k.grid = [v[0], v[1], v[2]];
                    }
                }
                _ => {}
            }
        }
        kernels.extend(cur);
        Profile { kernels }
    }
}

/// Runs tests/c/stream_priority.c through the broker; returns how many of the 200 kernels
/// queued on its low-priority stream ran before the kernel of its second stream.
fn bumps_before(broker: &Broker, args: &[&str]) -> i64 {
    let program = compile_c("stream_priority");
    let out = broker
        .spawn_tenant("streams", &program, args, SMALL)
        .wait(Duration::from_secs(60));
    assert_eq!(out.code, Some(0), "{out:?}");
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix("bumps_before "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no figure in {out:?}"))
}

#[test]
fn a_tenants_stream_priorities_order_its_streams() {
    let broker = Broker::start_with_policy(Some("[default]\nisolation = \"shared\"\n"), SMALL);
    // 200 ms of queued low-priority work: a kernel on the high-priority stream passes it (the
    // figure is an order of dispatch, with a margin of 100 ms over what runs meanwhile) …
    let passed = bumps_before(&broker, &[]);
    assert!(
        passed < 100,
        "{passed} of 200 low-priority kernels ran first"
    );
    // … and on a stream of equal priority it waits its turn (at most the work already
    // submitted to the device, a quantum, runs after it).
    let waited = bumps_before(&broker, &["--same"]);
    eprintln!("stream priorities: {passed} of 200 ran before (high), {waited} (equal)");
    assert!(waited >= 190, "only {waited} of 200 ran first");
}

/// Runs tests/c/copy_priority.c through `broker`: when its small high-priority copy completed, as
/// a fraction of its bulk upload's modelled duration.
fn small_copy_done_at(broker: &Broker, args: &[&str]) -> f64 {
    let program = compile_c("copy_priority");
    let env = [
        ("GPUSHARE_CPU_PROFILE", "small"),
        ("GPUSHARE_CPU_PACING", "1"),
    ];
    let out = broker
        .spawn_tenant("copies", &program, args, &env)
        .wait(Duration::from_secs(90));
    assert_eq!(out.code, Some(0), "{out:?}");
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix("small_done_at "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no figure in {out:?}"))
}

/// Issue 12: a small copy on a high-priority stream, submitted right after a 256 MiB upload on a
/// low-priority stream of the same tenant, completes between the upload's chunks (measured:
/// after 1–3 % of the upload); on a stream of the same priority it completes with the upload
/// (one copy engine, command order). Paced, so the figure is an order of completion with a wide
/// margin, not a timing threshold.
#[test]
fn a_high_priority_copy_overtakes_a_bulk_upload_between_chunks() {
    let env = [
        ("GPUSHARE_CPU_PROFILE", "small"),
        ("GPUSHARE_CPU_PACING", "1"),
    ];
    let broker = Broker::start_with_policy(Some("[default]\nisolation = \"shared\"\n"), &env);
    let urgent = small_copy_done_at(&broker, &[]);
    let same = small_copy_done_at(&broker, &["--same"]);
    eprintln!("small copy done at {urgent:.3} (high priority), {same:.3} (same) of the upload");
    assert!(
        urgent < 0.2,
        "the high-priority copy completed at {urgent:.3} of the upload"
    );
    assert!(
        same > 0.9,
        "the equal-priority copy completed at {same:.3} of the upload"
    );
}

/// Issue 12, item 4: a download on one stream beside a 400 ms kernel on another completes while
/// the kernel runs (measured: after 4–6 % of it). Each engine's completions are reported on their
/// own (the worker's timing thread per engine): reported in submission order for all engines,
/// the download's later chunks waited for the kernel's completion and it ended after it.
/// Paced, so the figure is an order of completion with a wide margin, not a timing threshold.
#[test]
fn a_download_beside_a_long_kernel_completes_while_it_runs() {
    let env = [
        ("GPUSHARE_CPU_PROFILE", "small"),
        ("GPUSHARE_CPU_PACING", "1"),
    ];
    let broker = Broker::start_with_policy(Some("[default]\nisolation = \"shared\"\n"), &env);
    let program = compile_c("engine_overlap");
    let out = broker
        .spawn_tenant("overlap", &program, &[] as &[&str], &env)
        .wait(Duration::from_secs(90));
    assert_eq!(out.code, Some(0), "{out:?}");
    let done: f64 = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("copy_done_at "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no figure in {out:?}"));
    eprintln!("download done at {done:.3} of the kernel");
    assert!(
        done < 0.5,
        "the download completed at {done:.3} of the kernel"
    );
}
