//! Device time of timed operations, through a real worker on the CPU device (`small` profile):
//! every timed launch, copy and memset dispatched with a `Timing` is told exactly once, with the
//! time the CPU device's events give for it (its timing model); failed operations and a killed
//! worker's operations are told `None`.
//!
//! The tests drive a [`Device`] directly (no broker, no tenant). Each first puts a long kernel
//! on its stream (seconds of modelled time, microseconds of wall time): the operations after it
//! then start, in the model, exactly when the one before them ends, so their times do not depend
//! on when the test thread got to submit them.

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::sync::{mpsc, Arc, Condvar, Mutex, Once};
use std::time::{Duration, Instant};

use gpushare_broker::device::{
    worker_exe, Attachment, CompletionSink, Device, FailureSink, FunctionRaw, HostMem, Origin,
    Stream, Timing, WorkerConfig,
};
use gpushare_broker::worker::proto::DriverChoice;
use gpushare_client::code;
use gpushare_client::os::{memfd_create, Mapping};
use gpushare_client::ring::record::UNMEASURED_DEVICE_TIME;

const WAIT: Duration = Duration::from_secs(60);
const MIB: u64 = 1 << 20;
/// The `small` profile (`cpu-device/src/profile.rs`): pinned copies, device copies and memsets
/// (bytes/s), launch and copy latency (ns).
const H2D: f64 = 2e9;
const D2H: f64 = 2e9;
const D2D: f64 = 50e9;
const LAUNCH_LATENCY: u64 = 5_000;

fn setup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::env::set_var("GPUSHARE_WORKER_EXE", env!("CARGO_BIN_EXE_gpushare"));
        std::env::set_var("GPUSHARE_CPU_LIB", gpushare_tests::cpu_lib());
        std::env::set_var("GPUSHARE_CPU_PROFILE", "small");
        std::env::set_var("GPUSHARE_CPU_THREADS", "1");
        std::env::remove_var("GPUSHARE_CPU_MEMORY");
        std::env::remove_var("GPUSHARE_CPU_PACING");
        if std::env::var_os("GPUSHARE_LOG").is_none() {
            std::env::set_var("GPUSHARE_LOG", "warn");
        }
    });
}

/// Every completion and failure, in arrival order.
#[derive(Default)]
struct Recorder {
    done: Mutex<Vec<(u64, Option<u64>)>>,
    failed: Mutex<Vec<(u64, u32)>>,
    changed: Condvar,
}

impl CompletionSink for Recorder {
    fn completed(&self, ticket: u64, device_ns: Option<u64>) {
        self.done.lock().unwrap().push((ticket, device_ns));
        self.changed.notify_all();
    }

    /// Recorded as [`UNMEASURED_DEVICE_TIME`].
    fn completed_unmeasured(&self, ticket: u64) {
        self.completed(ticket, Some(UNMEASURED_DEVICE_TIME));
    }
}

impl FailureSink for Recorder {
    fn failed(&self, seq: u64, _: &'static str, code: u32) {
        self.failed.lock().unwrap().push((seq, code));
    }
    fn owner(&self) -> String {
        "the timing test".into()
    }
}

impl Recorder {
    /// Waits until every ticket of `tickets` was told, then a little longer; each must have
    /// been told exactly once. Returns ticket → device time.
    fn wait(&self, tickets: &[u64]) -> HashMap<u64, Option<u64>> {
        let deadline = Instant::now() + WAIT;
        let mut done = self.done.lock().unwrap();
        while !tickets.iter().all(|t| done.iter().any(|(d, _)| d == t)) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "tickets not completed: {done:?}");
            done = self.changed.wait_timeout(done, left).unwrap().0;
        }
        drop(done);
        std::thread::sleep(Duration::from_millis(100));
        let done = self.done.lock().unwrap();
        let mut out = HashMap::new();
        for &(t, ns) in done.iter() {
            assert!(
                out.insert(t, ns).is_none(),
                "ticket {t} told twice: {done:?}"
            );
        }
        out
    }

    fn told(&self, ticket: u64) -> bool {
        self.done.lock().unwrap().iter().any(|(t, _)| *t == ticket)
    }
}

/// A worker on the CPU device, a stream, a registered 4 MiB host region (a PTX module at 0),
/// and 32 MiB of device memory.
struct Rig {
    dev: Arc<Device>,
    stream: Arc<Stream>,
    region: Arc<Attachment>,
    mem: u64,
    rec: Arc<Recorder>,
}

impl Rig {
    fn new(group: &str) -> Rig {
        setup();
        let cfg = WorkerConfig {
            exe: worker_exe().expect("the gpushare executable"),
            driver: DriverChoice::Cpu,
            peers: gpushare_broker::device::Peers::new(),
        };
        let dev = Device::spawn(group, &cfg).expect("worker starts");
        let fd = memfd_create("timing-test", 4 * MIB, true).unwrap();
        let map = Arc::new(Mapping::map_fd(fd.as_fd(), (4 * MIB) as usize, true).unwrap());
        let region = dev.attach(fd.as_fd(), map).expect("region attached");
        let stream = dev.stream_create(0, 0).expect("stream");
        let mem = dev.vmm_alloc(32 * MIB).expect("device memory").ptr;
        Rig {
            dev,
            stream,
            region,
            mem,
            rec: Arc::default(),
        }
    }

    /// Loads corpus kernel `name` and returns it with its parameter offsets.
    fn kernel(&self, name: &str) -> (FunctionRaw, Vec<u32>) {
        let path = gpushare_tests::kernels_dir().join(format!("{name}.ptx"));
        let mut image = std::fs::read(path).unwrap();
        image.push(0);
        self.region.mapping().write(0, &image).unwrap();
        let (m, _globals) = self
            .dev
            .module_load(&self.region, (0, image.len() as u64), u64::MAX)
            .expect("module loads");
        let cname = std::ffi::CString::new(name).unwrap();
        let (f, params, _) = self.dev.module_get_function(m, &cname).unwrap();
        let offsets = params
            .expect("parameter layout")
            .iter()
            .map(|p| p.offset)
            .collect();
        (f, offsets)
    }

    fn origin(&self, ticket: Option<u64>) -> Origin {
        Origin {
            sink: Arc::clone(&self.rec) as Arc<dyn FailureSink>,
            seq: ticket.unwrap_or(1000),
            op: "test",
            timing: ticket.map(|ticket| Timing {
                sink: Arc::clone(&self.rec) as Arc<dyn CompletionSink>,
                ticket,
            }),
        }
    }

    /// `busy_sleep(out, ns, iters, 1)` on one thread: `ns × iters` of modelled sleep.
    fn busy_sleep(&self, k: &(FunctionRaw, Vec<u32>), ns: u32, iters: i32, ticket: Option<u64>) {
        let mut params = vec![0u8; 20];
        let fields: [&[u8]; 4] = [
            &self.mem.to_le_bytes(),
            &ns.to_le_bytes(),
            &iters.to_le_bytes(),
            &1i32.to_le_bytes(),
        ];
        for (off, bytes) in k.1.iter().zip(fields) {
            params[*off as usize..*off as usize + bytes.len()].copy_from_slice(bytes);
        }
        let o = self.origin(ticket);
        self.dev
            .launch(k.0, [1, 1, 1], [1, 1, 1], 0, &self.stream, &params, &o)
            .expect("launch pushed");
    }

    fn host(&self, offset: u64, len: u64) -> HostMem {
        HostMem::new(Arc::clone(&self.region), offset as usize, len as usize).unwrap()
    }
}

fn near(got: u64, want: f64, tolerance: f64) -> bool {
    (got as f64 - want).abs() <= want * tolerance
}

#[test]
fn timed_operations_report_their_device_time() {
    let rig = Rig::new("timing-times");
    let busy = rig.kernel("busy_sleep");
    let dev = &rig.dev;
    let s = &rig.stream;
    // 2 s of modelled time ahead of everything below.
    rig.busy_sleep(&busy, 1_000_000, 2_000, Some(1));
    // The CPU device's own events around the same kernel.
    let (a, b) = (dev.event_create(0).unwrap(), dev.event_create(0).unwrap());
    dev.event_record(&a, s, 0, &rig.origin(None)).unwrap();
    rig.busy_sleep(&busy, 1_000, 1_000, Some(2));
    dev.event_record(&b, s, 0, &rig.origin(None)).unwrap();
    rig.busy_sleep(&busy, 1_000, 10_000, Some(3));
    // Copies and a memset: 1 MiB each way through the registered region, 16 MiB on the device.
    dev.memcpy_htod_async(rig.mem, rig.host(MIB, MIB), s, &rig.origin(Some(4)))
        .unwrap();
    dev.memcpy_dtoh_async(rig.host(2 * MIB, MIB), rig.mem, s, &rig.origin(Some(5)))
        .unwrap();
    dev.memcpy_dtod_async(
        rig.mem + 16 * MIB,
        rig.mem,
        16 * MIB,
        s,
        &rig.origin(Some(6)),
    )
    .unwrap();
    dev.memset_async(rig.mem, 0, 7, 4, 4 * MIB, 1, s, &rig.origin(Some(7)))
        .unwrap();
    // Untimed: no timing asked (never told), and a kind that is not timed (told `None` at once).
    rig.busy_sleep(&busy, 1_000, 10, None);
    let c = dev.event_create(0).unwrap();
    dev.event_record(&c, s, 0, &rig.origin(Some(8))).unwrap();
    assert!(
        rig.rec.told(8),
        "an untimed kind's timing is told right after the push"
    );

    dev.stream_synchronize(s).expect("stream completes");
    let t = rig.rec.wait(&[1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(t.len(), 8, "only the timings given are told: {t:?}");
    let ns = |k: u64| t[&k].unwrap_or_else(|| panic!("ticket {k} has no time: {t:?}"));
    assert_eq!(t[&8], None);
    assert!(ns(1) >= 2_000_000_000, "the long kernel: {}", ns(1));

    // The same kernel, timed by the CPU device's events directly.
    let ms = dev.event_elapsed(&a, &b).unwrap();
    let direct = (f64::from(ms) * 1e6).round() as u64;
    assert!(
        ns(2).abs_diff(direct) <= 1_000,
        "OP_DONE {} ns, the device's events {direct} ns",
        ns(2)
    );
    assert!(
        ns(2) >= 1_000_000 + LAUNCH_LATENCY,
        "1 ms of sleep: {}",
        ns(2)
    );
    assert!(ns(3) >= 5 * ns(2), "10× the work: {} vs {}", ns(3), ns(2));

    let copy = |bytes: u64, rate: f64| bytes as f64 * 1e9 / rate;
    assert!(near(ns(4), copy(MIB, H2D), 0.1), "htod {}", ns(4));
    assert!(near(ns(5), copy(MIB, D2H), 0.1), "dtoh {}", ns(5));
    assert!(near(ns(6), copy(16 * MIB, D2D), 0.1), "dtod {}", ns(6));
    assert!(near(ns(7), copy(16 * MIB, D2D), 0.1), "memset {}", ns(7));
    assert_eq!(dev.link().timed_in_flight(), 0);
    assert!(rig.rec.failed.lock().unwrap().is_empty());
}

#[test]
fn failed_operations_have_no_time() {
    let rig = Rig::new("timing-failures");
    let busy = rig.kernel("busy_sleep");
    let dev = &rig.dev;
    let s = &rig.stream;
    rig.busy_sleep(&busy, 1_000_000, 100, Some(1));
    // Outside every allocation: refused at submission (not sticky).
    dev.memcpy_dtod_async(0x1000, rig.mem, MIB, s, &rig.origin(Some(2)))
        .unwrap();
    dev.memset_async(0x1000, 0, 0, 1, MIB, 1, s, &rig.origin(Some(3)))
        .unwrap();
    rig.busy_sleep(&busy, 1_000, 10, Some(4));
    let t = rig.rec.wait(&[1, 2, 3, 4]);
    assert!(t[&1].is_some() && t[&4].is_some(), "{t:?}");
    assert_eq!((t[&2], t[&3]), (None, None));
    let failed = rig.rec.failed.lock().unwrap().clone();
    let codes: Vec<u32> = failed.iter().map(|f| f.1).collect();
    assert_eq!(codes, [code::ERROR_INVALID_VALUE; 2], "{failed:?}");

    // A kernel that faults poisons the context: it and everything after it have no time.
    let oob = rig.kernel("oob_write");
    let mut params = vec![0u8; 24];
    let fields: [&[u8]; 3] = [
        &rig.mem.to_le_bytes(),
        &(1i64 << 40).to_le_bytes(),
        &1f32.to_le_bytes(),
    ];
    for (off, bytes) in oob.1.iter().zip(fields) {
        params[*off as usize..*off as usize + bytes.len()].copy_from_slice(bytes);
    }
    dev.launch(
        oob.0,
        [1, 1, 1],
        [1, 1, 1],
        0,
        s,
        &params,
        &rig.origin(Some(5)),
    )
    .unwrap();
    rig.busy_sleep(&busy, 1_000, 10, Some(6));
    let t = rig.rec.wait(&[5, 6]);
    assert_eq!((t[&5], t[&6]), (None, None), "{t:?}");
    assert_eq!(dev.link().timed_in_flight(), 0);
}

#[test]
fn a_killed_worker_completes_everything_in_flight() {
    let rig = Rig::new("timing-death");
    let busy = rig.kernel("busy_sleep");
    let dev = &rig.dev;
    let s = &rig.stream;
    rig.busy_sleep(&busy, 1_000, 10, Some(1));
    // A gate the test holds closed: the CPU device's executor waits at it.
    let (release, held) = mpsc::channel::<()>();
    let gate = Box::new(move || {
        let _ = held.recv_timeout(WAIT);
    });
    dev.launch_host_fn(s, gate, true, &rig.origin(None))
        .unwrap();
    let behind: Vec<u64> = (2..8).collect();
    for &t in &behind[..3] {
        rig.busy_sleep(&busy, 1_000, 10, Some(t));
    }
    dev.memcpy_htod_async(rig.mem, rig.host(MIB, MIB), s, &rig.origin(Some(5)))
        .unwrap();
    dev.memcpy_dtod_async(rig.mem + MIB, rig.mem, MIB, s, &rig.origin(Some(6)))
        .unwrap();
    dev.memset_async(rig.mem, 0, 0, 1, MIB, 1, s, &rig.origin(Some(7)))
        .unwrap();
    let first = rig.rec.wait(&[1]);
    assert!(first[&1].is_some());
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        behind.iter().all(|&t| !rig.rec.told(t)),
        "nothing behind the gate completes"
    );
    assert_eq!(dev.link().timed_in_flight(), behind.len());

    // SAFETY: signals the worker process this test started.
    let killed = unsafe { libc::kill(dev.link().pid() as i32, libc::SIGKILL) };
    assert_eq!(killed, 0);
    let t = rig.rec.wait(&behind);
    assert!(behind.iter().all(|k| t[k].is_none()), "{t:?}");
    assert_eq!(dev.link().timed_in_flight(), 0);

    // Later submissions fail at once, and their timing is still told (once).
    let pushed = dev.memset_async(rig.mem, 0, 0, 1, 4, 1, s, &rig.origin(Some(8)));
    assert!(pushed.is_err());
    let t = rig.rec.wait(&[8]);
    assert_eq!(t[&8], None);
    drop(release);
}
