//! Shared test helpers: sample messages of every variant, a miniature broker, child processes.

#![allow(dead_code)]

use std::os::unix::net::UnixStream;
use std::process::Command as Process;

use gpushare_client::proto::*;
use gpushare_client::ring::{Command, Consumer, RecordBuf};
use gpushare_client::shm::{ReplySlots, Staging};
use gpushare_client::{code, Region};

/// One sample of every `Request` variant (checked exhaustively by `request_index`), in the
/// order of their indices.
pub fn all_requests() -> Vec<Request> {
    let span = HostSpan {
        region: STAGING_REGION,
        offset: 4096,
        len: 1234,
    };
    let mut all = context_requests();
    all.extend(memory_requests());
    all.extend(vmm_requests());
    all.extend(copy_and_module_requests(span));
    all.extend(stream_and_event_requests());
    all
}

/// Device and context requests.
fn context_requests() -> Vec<Request> {
    vec![
        Request::Ping,
        Request::GetDeviceInfo { device: 0 },
        Request::CtxCreate {
            device: 0,
            flags: 1,
        },
        Request::CtxDestroy { ctx: 0xC0 },
        Request::PrimaryCtxRetain { device: 0 },
        Request::PrimaryCtxRelease { device: 0 },
        Request::CtxSynchronize { ctx: 0xC0 },
        Request::CtxGetLimit { limit: 1 },
        Request::CtxSetLimit {
            limit: 1,
            value: 1 << 20,
        },
        Request::CtxGetStreamPriorityRange,
    ]
}

/// Allocation, pointer and host-registration requests.
fn memory_requests() -> Vec<Request> {
    vec![
        Request::MemAlloc { size: 1 << 30 },
        Request::MemAllocPitch {
            width: 1000,
            height: 10,
            element_size: 4,
        },
        Request::MemFree {
            ptr: 0x7f00_0000_0000,
        },
        Request::MemGetInfo,
        Request::MemGetAddressRange {
            ptr: 0x7f00_0000_0010,
        },
        Request::PointerGetAttribute {
            ptr: 1,
            attribute: 2,
        },
        Request::HostRegister {
            region: 3,
            size: 1 << 21,
            flags: 0,
        },
        Request::HostUnregister { region: 3 },
    ]
}

/// Virtual memory management requests.
fn vmm_requests() -> Vec<Request> {
    vec![
        Request::MemAddressReserve {
            size: 1 << 21,
            alignment: 0,
            addr: 0,
            flags: 0,
        },
        Request::MemAddressFree {
            ptr: 0x1000,
            size: 1 << 21,
        },
        Request::MemCreate {
            size: 1 << 21,
            device: 0,
            flags: 0,
        },
        Request::MemRelease { handle: 9 },
        Request::MemMap {
            ptr: 0x1000,
            size: 1 << 21,
            offset: 0,
            handle: 9,
            flags: 0,
        },
        Request::MemUnmap {
            ptr: 0x1000,
            size: 1 << 21,
        },
        Request::MemSetAccess {
            ptr: 0x1000,
            size: 1 << 21,
            access: vec![AccessDesc {
                location_type: 1,
                location_id: 0,
                flags: 3,
            }],
        },
        Request::MemGetAllocationGranularity {
            device: 0,
            option: 0,
        },
    ]
}

/// Copies, memsets, modules and functions (host data in `span`).
fn copy_and_module_requests(span: HostSpan) -> Vec<Request> {
    vec![
        Request::MemcpyHtoD {
            dst: 0x2000,
            src: span,
        },
        Request::MemcpyDtoH {
            dst: span,
            src: 0x2000,
        },
        Request::MemcpyDtoD {
            dst: 0x3000,
            src: 0x2000,
            len: 64,
        },
        Request::Memset {
            dst: 0x2000,
            pitch: 0,
            value: 7,
            element_size: 1,
            width: 64,
            height: 1,
        },
        Request::ModuleLoad { image: span },
        Request::ModuleUnload { module: 5 },
        Request::ModuleGetFunction {
            module: 5,
            name: "_Z6vecaddPfS_S_i".into(),
        },
        Request::ModuleGetGlobal {
            module: 5,
            name: "counter".into(),
        },
        Request::FuncGetAttribute {
            function: 6,
            attribute: 0,
        },
        Request::FuncSetAttribute {
            function: 6,
            attribute: 8,
            value: 65536,
        },
    ]
}

/// Streams, events and the admin requests.
fn stream_and_event_requests() -> Vec<Request> {
    vec![
        Request::StreamCreate {
            flags: 1,
            priority: -1,
        },
        Request::StreamDestroy { stream: 10 },
        Request::StreamQuery { stream: 10 },
        Request::StreamSynchronize { stream: 10 },
        Request::EventCreate { flags: 2 },
        Request::EventDestroy { event: 11 },
        Request::EventQuery { event: 11 },
        Request::EventSynchronize { event: 11 },
        Request::EventElapsedTime { start: 11, end: 12 },
        Request::Status,
        Request::PolicyReload,
    ]
}

/// Index of a request variant; exhaustive, so a new variant fails to compile until it gets a
/// sample above.
pub fn request_index(r: &Request) -> usize {
    use Request::*;
    match r {
        Ping => 0,
        GetDeviceInfo { .. } => 1,
        CtxCreate { .. } => 2,
        CtxDestroy { .. } => 3,
        PrimaryCtxRetain { .. } => 4,
        PrimaryCtxRelease { .. } => 5,
        CtxSynchronize { .. } => 6,
        CtxGetLimit { .. } => 7,
        CtxSetLimit { .. } => 8,
        CtxGetStreamPriorityRange => 9,
        MemAlloc { .. } => 10,
        MemAllocPitch { .. } => 11,
        MemFree { .. } => 12,
        MemGetInfo => 13,
        MemGetAddressRange { .. } => 14,
        PointerGetAttribute { .. } => 15,
        HostRegister { .. } => 16,
        HostUnregister { .. } => 17,
        MemAddressReserve { .. } => 18,
        MemAddressFree { .. } => 19,
        MemCreate { .. } => 20,
        MemRelease { .. } => 21,
        MemMap { .. } => 22,
        MemUnmap { .. } => 23,
        MemSetAccess { .. } => 24,
        MemGetAllocationGranularity { .. } => 25,
        MemcpyHtoD { .. } => 26,
        MemcpyDtoH { .. } => 27,
        MemcpyDtoD { .. } => 28,
        Memset { .. } => 29,
        ModuleLoad { .. } => 30,
        ModuleUnload { .. } => 31,
        ModuleGetFunction { .. } => 32,
        ModuleGetGlobal { .. } => 33,
        FuncGetAttribute { .. } => 34,
        FuncSetAttribute { .. } => 35,
        StreamCreate { .. } => 36,
        StreamDestroy { .. } => 37,
        StreamQuery { .. } => 38,
        StreamSynchronize { .. } => 39,
        EventCreate { .. } => 40,
        EventDestroy { .. } => 41,
        EventQuery { .. } => 42,
        EventSynchronize { .. } => 43,
        EventElapsedTime { .. } => 44,
        Status => 45,
        PolicyReload => 46,
    }
}

/// Number of request variants.
pub const REQUEST_VARIANTS: usize = 47;

/// A sample device.
pub fn device() -> DeviceInfo {
    DeviceInfo {
        ordinal: 0,
        name: "NVIDIA H200".into(),
        uuid: [7; 16],
        total_mem: 141 << 30,
        cc_major: 9,
        cc_minor: 0,
        pci_bus_id: "0000:19:00.0".into(),
        attributes: (0..140).collect(),
    }
}

/// A sample status report.
pub fn status() -> StatusReport {
    StatusReport {
        broker_version: "0.1.0".into(),
        uptime_ms: 12345,
        devices: vec![DeviceStatus {
            ordinal: 0,
            name: "NVIDIA H200".into(),
            total_mem: 141 << 30,
            used_mem: 3 << 30,
            saved_mem: 1 << 30,
            dedup_faults: 0,
            busy_permille: 420,
        }],
        tenants: vec![TenantStatus {
            session_id: 1,
            name: "llama".into(),
            pid: 42,
            uid: 1000,
            memory_bytes: 3 << 30,
            shared_bytes: 1 << 30,
            skipped_upload_bytes: 1 << 30,
            memory_quota: 0,
            streams: 3,
            queued_ops: 5,
            submitted_ops: 100,
            completed_ops: 95,
            gpu_time_ns: 1_000_000,
            weight: 1,
            group: "uid:1000".into(),
            priority: "normal".into(),
            share_ppm: 250_000,
            queue_p50_ns: 12_000,
            queue_p99_ns: 900_000,
            kernels: 80,
            prediction_error_ppm: Some(31_000),
        }],
        workers: vec![WorkerStatus {
            group: "uid:1000".into(),
            pid: 77,
            state: "running".into(),
            tenants: 1,
            memory_bytes: 3 << 30,
            faults: 0,
            restarts: 1,
            streamed: [5, 1, 0],
            last_fault: "worker killed by signal 9".into(),
        }],
    }
}

/// One sample of every `Reply` variant (checked exhaustively by `reply_index`).
pub fn all_replies() -> Vec<Reply> {
    vec![
        Reply::Empty,
        Reply::Pong,
        Reply::Device(device()),
        Reply::Context { ctx: 1 },
        Reply::Value(u64::MAX),
        Reply::Int(-5),
        Reply::PriorityRange {
            least: 0,
            greatest: -5,
        },
        Reply::DevicePtr {
            ptr: 0x7f00_0000_0000,
        },
        Reply::Pitched {
            ptr: 0x7f00_0000_0000,
            pitch: 1024,
        },
        Reply::MemInfo { free: 1, total: 2 },
        Reply::AddressRange {
            base: 0x1000,
            size: 0x2000,
        },
        Reply::HostRegion { device_ptr: 0x5000 },
        Reply::MemHandle { handle: 3 },
        Reply::Module { module: 4 },
        Reply::Function {
            function: 5,
            params: vec![
                ParamInfo { offset: 0, size: 8 },
                ParamInfo {
                    offset: 16,
                    size: 240,
                },
            ],
        },
        Reply::Global {
            ptr: 0x6000,
            size: 4,
        },
        Reply::Stream {
            stream: 6,
            completion_slot: 3,
        },
        Reply::Event { event: 7 },
        Reply::ElapsedMs(1.25),
        Reply::Status(status()),
        Reply::PolicyReload(PolicyReloadReport {
            applied: false,
            path: "/etc/gpushare/policy.toml".into(),
            message: "invalid policy file /etc/gpushare/policy.toml: line 2, column 10: \
                      [default]: weight must be at least 1"
                .into(),
            tenants: 0,
        }),
    ]
}

/// Index of a reply variant (exhaustive).
pub fn reply_index(r: &Reply) -> usize {
    use Reply::*;
    match r {
        Empty => 0,
        Pong => 1,
        Device(_) => 2,
        Context { .. } => 3,
        Value(_) => 4,
        Int(_) => 5,
        PriorityRange { .. } => 6,
        DevicePtr { .. } => 7,
        Pitched { .. } => 8,
        MemInfo { .. } => 9,
        AddressRange { .. } => 10,
        HostRegion { .. } => 11,
        MemHandle { .. } => 12,
        Module { .. } => 13,
        Function { .. } => 14,
        Global { .. } => 15,
        Stream { .. } => 16,
        Event { .. } => 17,
        ElapsedMs(_) => 18,
        Status(_) => 19,
        PolicyReload(_) => 20,
    }
}

/// Number of reply variants.
pub const REPLY_VARIANTS: usize = 21;

/// The canned answer of the miniature broker.
pub fn answer(id: u64, req: &Request, staging: Option<&Staging>) -> ReplyEnvelope {
    match req {
        Request::Ping => ReplyEnvelope::ok(id, Reply::Pong),
        Request::MemAlloc { size } => ReplyEnvelope::ok(
            id,
            Reply::DevicePtr {
                ptr: 0x1_0000_0000 + size,
            },
        ),
        Request::Status => ReplyEnvelope::ok(id, Reply::Status(status())),
        Request::StreamQuery { .. } => ReplyEnvelope::error(id, code::ERROR_NOT_READY),
        // "Device" memory of the fake: a DtoH fills the span with the low byte of `src`.
        Request::MemcpyDtoH { dst, src } => {
            if let Some(st) = staging {
                let bytes = vec![*src as u8; dst.len as usize];
                if st.write(dst.offset, &bytes).is_err() {
                    return ReplyEnvelope::error(id, code::ERROR_INVALID_VALUE);
                }
            }
            ReplyEnvelope::ok(id, Reply::Empty)
        }
        // HtoD: reply with the byte sum of the staged bytes (proves the broker saw them).
        Request::MemcpyHtoD { src, .. } => {
            let mut bytes = vec![0u8; src.len as usize];
            match staging.map(|st| st.read(src.offset, &mut bytes)) {
                Some(Ok(())) => {
                    ReplyEnvelope::ok(id, Reply::Value(bytes.iter().map(|&b| u64::from(b)).sum()))
                }
                _ => ReplyEnvelope::error(id, code::ERROR_INVALID_VALUE),
            }
        }
        _ => ReplyEnvelope::error(id, code::ERROR_NOT_SUPPORTED),
    }
}

/// Serves the command ring of `region` until the session closes: answers CALL records, counts
/// everything else. Returns (calls answered, other commands).
pub fn serve_ring(region: &Region, mut consumer: Consumer) -> (u64, u64) {
    let replies: ReplySlots = region.replies();
    let staging = region.staging();
    let mut buf = RecordBuf::new();
    let (mut calls, mut others) = (0, 0);
    loop {
        let popped = match consumer.pop(&mut buf) {
            Ok(p) => p,
            Err(_) => return (calls, others),
        };
        match popped.cmd {
            Command::Call(c) => {
                let reply = match decode::<RequestEnvelope>(c.payload) {
                    Ok(env) => answer(env.id, &env.body, Some(&staging)),
                    Err(_) => ReplyEnvelope::error(c.ticket, code::ERROR_NOT_SUPPORTED),
                };
                let bytes = encode(&reply).unwrap();
                replies.complete(c.slot, c.ticket, &bytes).unwrap();
                calls += 1;
            }
            _ => others += 1,
        }
    }
}

/// Runs the test binary again as a child process running only `test_name`, with the role and
/// socket path in the environment.
pub fn spawn_child(test_name: &str, role: &str, socket: &std::path::Path) -> std::process::Child {
    Process::new(std::env::current_exe().unwrap())
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env("GPUSHARE_TEST_CHILD", role)
        .env("GPUSHARE_TEST_SOCKET", socket)
        .spawn()
        .unwrap()
}

/// In a child: its role, if this process is one.
pub fn child_role() -> Option<(String, std::path::PathBuf)> {
    let role = std::env::var("GPUSHARE_TEST_CHILD").ok()?;
    let sock = std::env::var_os("GPUSHARE_TEST_SOCKET")?;
    Some((role, sock.into()))
}

/// A fresh socket path in a fresh temporary directory.
pub fn socket_path(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "gpushare-test-{}-{}-{}",
        tag,
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("broker.sock")
}

/// Connects, retrying while the parent has not bound yet.
pub fn connect_retry(path: &std::path::Path) -> UnixStream {
    for _ in 0..500 {
        if let Ok(s) = UnixStream::connect(path) {
            return s;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("cannot connect to {}", path.display());
}
