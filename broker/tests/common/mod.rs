//! Test harness: starts the built `gpushare` binary as a broker on the CPU device, on a private
//! socket, and drives it with the client crate as tenants.
//!
//! The CPU device library is found like the conformance suite finds it
//! (`gpushare_tests::cpu_lib`: `$GPUSHARE_CPU_LIB` or `libgpushare_cpu.so` in the target
//! directory; build it with `cargo build --release -p gpushare-cpu`). Every wait is bounded:
//! clients use a wait policy with a timeout, brokers are killed when their handle drops.

#![allow(dead_code)]

use std::fs::File;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use gpushare_client::code;
use gpushare_client::proto::{
    HostSpan, ParamInfo, Reply, ReplyEnvelope, Request, StatusReport, STAGING_REGION,
};
use gpushare_client::ring::record::{CopyHost, Launch, COPY_RELEASE_STAGING};
use gpushare_client::wait::Cancel;
use gpushare_client::{Client, ClientOptions, Command as Cmd, Hello, WaitPolicy};

/// Bound on every wait of a test client.
pub const WAIT: Duration = Duration::from_secs(60);

/// A wait policy with the test bound.
pub fn policy() -> WaitPolicy {
    WaitPolicy::default().timeout(WAIT)
}

/// A broker process on a private socket; killed on drop.
pub struct BrokerProc {
    pub child: Child,
    pub socket: PathBuf,
    pub dir: PathBuf,
    pub log: PathBuf,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The kernel corpus directory.
pub fn kernels() -> PathBuf {
    gpushare_tests::kernels_dir()
}

impl BrokerProc {
    /// Starts `gpushare broker --device cpu` with extra environment.
    pub fn start_with(env: &[(&str, &str)]) -> BrokerProc {
        Self::start_args(&[], env)
    }

    /// Starts `gpushare broker --device cpu` with extra arguments and environment.
    pub fn start_args(args: &[&str], env: &[(&str, &str)]) -> BrokerProc {
        let cpu = gpushare_tests::cpu_lib();
        let dir = std::env::temp_dir().join(format!(
            "gpushare-bt-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create test dir");
        let socket = dir.join("b.sock");
        let log = dir.join("broker.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gpushare"));
        cmd.args([
            "broker",
            "--device",
            "cpu",
            "--drain-timeout",
            "20",
            "--socket",
        ])
        .arg(&socket)
        .args(args)
        .env("GPUSHARE_CPU_LIB", cpu)
        .env("GPUSHARE_CPU_THREADS", "1")
        .env_remove("GPUSHARE_CPU_PACING")
        .env_remove("GPUSHARE_CPU_PROFILE")
        .env_remove("GPUSHARE_CPU_MEMORY")
        .env(
            "GPUSHARE_LOG",
            std::env::var("GPUSHARE_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdin(Stdio::null())
        .stdout(File::create(dir.join("broker.out")).expect("stdout file"))
        .stderr(File::create(&log).expect("log file"))
        .process_group(0);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn the gpushare broker");
        let mut b = BrokerProc {
            child,
            socket,
            dir,
            log,
        };
        let start = Instant::now();
        while UnixStream::connect(&b.socket).is_err() {
            if let Ok(Some(st)) = b.child.try_wait() {
                panic!("broker exited early ({st}):\n{}", b.log_text());
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "broker did not start listening:\n{}",
                b.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        b
    }

    /// Starts a broker with the default environment.
    pub fn start() -> BrokerProc {
        Self::start_with(&[])
    }

    /// The broker's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `sig` to the broker.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Waits for the broker to exit (bounded).
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            if start.elapsed() > limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A tenant client.
    pub fn tenant(&self, name: &str) -> Client {
        tenant_at(&self.socket, name)
    }

    /// The broker's status (admin session).
    pub fn status(&self) -> StatusReport {
        gpushare_broker::admin::query_status(&self.socket, Duration::from_secs(20))
            .expect("status query")
    }

    /// Device memory in use, as the broker reports it.
    pub fn used_mem(&self) -> u64 {
        self.status().devices[0].used_mem
    }
}

impl Drop for BrokerProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill(2) on the process group we created for the child.
            unsafe {
                libc::kill(-(self.child.id() as i32), libc::SIGKILL);
            }
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- broker log ---\n{}", self.log_text());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Connects a tenant to the broker at `socket`.
pub fn tenant_at(socket: &Path, name: &str) -> Client {
    let options = ClientOptions {
        wait: policy(),
        slot_timeout: WAIT,
        ..ClientOptions::default()
    };
    Client::connect(socket, &Hello::tenant(name), options).expect("tenant connects")
}

/// Makes a call and returns the reply (any code).
pub fn call(c: &Client, req: Request) -> ReplyEnvelope {
    c.call(req).expect("call transport")
}

/// Makes a call that must succeed.
pub fn ok(c: &Client, req: Request) -> Reply {
    let what = format!("{req:?}");
    let r = call(c, req);
    assert_eq!(
        r.code,
        code::SUCCESS,
        "{what} failed with {} ({})",
        r.code,
        code::name(r.code).unwrap_or("?")
    );
    r.body
}

/// `MemAlloc`.
pub fn alloc(c: &Client, size: u64) -> u64 {
    match ok(c, Request::MemAlloc { size }) {
        Reply::DevicePtr { ptr } => ptr,
        other => panic!("MemAlloc replied {other:?}"),
    }
}

/// Loads `examples/kernels/<name>.ptx` through the staging area.
pub fn load_module(c: &Client, name: &str) -> u64 {
    let path = kernels().join(format!("{name}.ptx"));
    let ptx = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let staging = c.staging().expect("tenant has staging");
    let span = staging
        .alloc(ptx.len() as u64, &policy(), &Cancel::never())
        .expect("staging for the module");
    staging.write(span.offset, &ptx).expect("write module");
    let r = ok(
        c,
        Request::ModuleLoad {
            image: HostSpan {
                region: STAGING_REGION,
                offset: span.offset,
                len: ptx.len() as u64,
            },
        },
    );
    staging.free(span).expect("free staging");
    match r {
        Reply::Module { module } => module,
        other => panic!("ModuleLoad replied {other:?}"),
    }
}

/// `ModuleGetFunction`: handle and parameter layout.
pub fn function(c: &Client, module: u64, name: &str) -> (u64, Vec<ParamInfo>) {
    match ok(
        c,
        Request::ModuleGetFunction {
            module,
            name: name.into(),
        },
    ) {
        Reply::Function { function, params } => (function, params),
        other => panic!("ModuleGetFunction replied {other:?}"),
    }
}

/// Packs parameter values at the layout's offsets.
pub fn pack(layout: &[ParamInfo], values: &[&[u8]]) -> Vec<u8> {
    assert_eq!(layout.len(), values.len(), "parameter count");
    let len = layout
        .iter()
        .map(|p| (p.offset + p.size) as usize)
        .max()
        .unwrap_or(0);
    let mut out = vec![0u8; len];
    for (p, v) in layout.iter().zip(values) {
        assert_eq!(p.size as usize, v.len(), "parameter size");
        out[p.offset as usize..][..v.len()].copy_from_slice(v);
    }
    out
}

/// Pushes a launch record; returns its sequence number.
pub fn launch(
    c: &Client,
    function: u64,
    stream: u64,
    grid: [u32; 3],
    block: [u32; 3],
    shared: u32,
    params: &[u8],
) -> u64 {
    c.submit(&Cmd::Launch(Launch {
        function,
        stream,
        grid,
        block,
        shared_mem_bytes: shared,
        params,
    }))
    .expect("submit launch")
}

/// Pushes an asynchronous host-to-device copy through staging (released by the broker).
pub fn upload_async(c: &Client, stream: u64, dst: u64, bytes: &[u8]) -> u64 {
    let staging = c.staging().expect("staging");
    let span = staging
        .alloc(bytes.len() as u64, &policy(), &Cancel::never())
        .expect("staging alloc");
    staging.write(span.offset, bytes).expect("staging write");
    c.submit(&Cmd::MemcpyHtoD(CopyHost {
        stream,
        device_ptr: dst,
        host_offset: span.offset,
        len: bytes.len() as u64,
        host_region: STAGING_REGION,
        flags: COPY_RELEASE_STAGING,
    }))
    .expect("submit copy")
}

/// Synchronous upload of floats.
pub fn upload_f32(c: &Client, dst: u64, v: &[f32]) {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    assert_eq!(
        c.copy_to_device(dst, &bytes).expect("upload"),
        code::SUCCESS
    );
}

/// Synchronous download of `n` floats.
pub fn download_f32(c: &Client, src: u64, n: usize) -> Vec<f32> {
    let mut bytes = vec![0u8; n * 4];
    assert_eq!(
        c.copy_from_device(&mut bytes, src).expect("download"),
        code::SUCCESS
    );
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// `CtxSynchronize` (all of the tenant's streams).
pub fn sync(c: &Client) {
    ok(c, Request::CtxSynchronize { ctx: 0 });
}

/// The sticky asynchronous error word of a tenant.
pub fn sticky(c: &Client) -> u64 {
    c.region().expect("region").async_error().load()
}

/// Deterministic test data.
pub fn data(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 1000) as f32 / 250.0 - 2.0
        })
        .collect()
}

/// Runs vector_add (n elements) for a tenant end to end and checks the result.
pub fn vector_add_roundtrip(c: &Client, n: usize, seed: u32) {
    let module = load_module(c, "vector_add");
    let (f, layout) = function(c, module, "vector_add");
    let (a, b) = (data(n, seed), data(n, seed + 1));
    let bytes = (n * 4) as u64;
    let (da, db, dc) = (alloc(c, bytes), alloc(c, bytes), alloc(c, bytes));
    upload_f32(c, da, &a);
    upload_f32(c, db, &b);
    let params = pack(
        &layout,
        &[
            &da.to_le_bytes(),
            &db.to_le_bytes(),
            &dc.to_le_bytes(),
            &(n as i32).to_le_bytes(),
        ],
    );
    let block = 128u32;
    let grid = (n as u32).div_ceil(block);
    launch(c, f, 0, [grid, 1, 1], [block, 1, 1], 0, &params);
    let out = download_f32(c, dc, n);
    for i in 0..n {
        assert_eq!(out[i], a[i] + b[i], "vector_add element {i}");
    }
    for p in [da, db, dc] {
        ok(c, Request::MemFree { ptr: p });
    }
    ok(c, Request::ModuleUnload { module });
}

/// CPU reference of sgemm (row-major).
pub fn sgemm_ref(a: &[f32], b: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
    let mut c = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = 0f32;
            for p in 0..k {
                s += a[i * k + p] * b[p * n + j];
            }
            c[i * n + j] = s;
        }
    }
    c
}

/// True when `got` matches `want` within a relative tolerance.
pub fn close(got: &[f32], want: &[f32]) -> bool {
    got.len() == want.len()
        && got
            .iter()
            .zip(want)
            .all(|(g, w)| (g - w).abs() <= 1e-3 * (1.0 + w.abs()))
}
