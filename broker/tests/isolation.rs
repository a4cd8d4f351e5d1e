//! Tenants are isolated: naming another tenant's module, function, stream or event gets
//! `CUDA_ERROR_INVALID_HANDLE` (exactly like an unknown handle), touching its memory gets
//! `CUDA_ERROR_INVALID_VALUE`, asynchronous errors stay with the tenant that caused them, and
//! the victim's data is intact. Admin-only requests are refused to tenants; memory quotas from
//! the policy file hold.

mod common;

use common::*;
use gpushare_client::code;
use gpushare_client::proto::{HostSpan, ParamInfo, Reply, Request};
use gpushare_client::ring::record::{CopyDevice, EventRecord, Memset};
use gpushare_client::{Client, Command as Cmd};

/// What the victim owns: a module, its kernel, a stream, an event and memory holding a secret.
struct Victim {
    module: u64,
    function: u64,
    layout: Vec<ParamInfo>,
    stream: u64,
    event: u64,
    ptr: u64,
    secret: Vec<f32>,
}

const N: usize = 1024;

impl Victim {
    fn create(a: &Client) -> Victim {
        let module = load_module(a, "vector_add");
        let (function, layout) = function(a, module, "vector_add");
        let stream = match ok(
            a,
            Request::StreamCreate {
                flags: 1,
                priority: 0,
            },
        ) {
            Reply::Stream { stream, .. } => stream,
            other => panic!("{other:?}"),
        };
        let event = match ok(a, Request::EventCreate { flags: 0 }) {
            Reply::Event { event } => event,
            other => panic!("{other:?}"),
        };
        let secret = data(N, 42);
        let ptr = alloc(a, (N * 4) as u64);
        upload_f32(a, ptr, &secret);
        Victim {
            module,
            function,
            layout,
            stream,
            event,
            ptr,
            secret,
        }
    }

    /// Its data and handles are intact and still work.
    fn check_intact(&self, a: &Client) {
        assert_eq!(download_f32(a, self.ptr, N), self.secret);
        let stream = self.stream;
        assert_eq!(call(a, Request::StreamQuery { stream }).code, code::SUCCESS);
        let event = self.event;
        assert_eq!(call(a, Request::EventQuery { event }).code, code::SUCCESS);
        let (f2, _) = function(a, self.module, "vector_add");
        assert_eq!(f2, self.function, "the same kernel gets the same handle");
    }
}

/// Requests naming the victim's handles or memory, each with the error an intruder gets.
fn foreign_requests(v: &Victim, own: u64) -> Vec<(Request, u32)> {
    let (module, stream, event, pa) = (v.module, v.stream, v.event, v.ptr);
    let handle = code::ERROR_INVALID_HANDLE;
    let value = code::ERROR_INVALID_VALUE;
    vec![
        (
            Request::ModuleGetFunction {
                module,
                name: "vector_add".into(),
            },
            handle,
        ),
        (Request::ModuleUnload { module }, handle),
        (
            Request::FuncGetAttribute {
                function: v.function,
                attribute: 0,
            },
            handle,
        ),
        (Request::StreamSynchronize { stream }, handle),
        (Request::StreamQuery { stream }, handle),
        (Request::StreamDestroy { stream }, handle),
        (Request::EventQuery { event }, handle),
        (Request::EventDestroy { event }, handle),
        (
            Request::MemcpyDtoD {
                dst: own,
                src: pa,
                len: 64,
            },
            value,
        ),
        (
            Request::MemcpyDtoD {
                dst: pa,
                src: own,
                len: 64,
            },
            value,
        ),
        (
            Request::Memset {
                dst: pa,
                pitch: 0,
                value: 0,
                element_size: 1,
                width: 16,
                height: 1,
            },
            value,
        ),
        (Request::MemFree { ptr: pa }, value),
        (
            Request::MemGetAddressRange { ptr: pa },
            code::ERROR_NOT_FOUND,
        ),
        (
            Request::PointerGetAttribute {
                ptr: pa,
                attribute: 11,
            },
            value,
        ),
        // Running past the end of its own allocation is no better.
        (
            Request::MemcpyDtoD {
                dst: own,
                src: own + 1024,
                len: 4 << 20,
            },
            value,
        ),
        (Request::Status, code::ERROR_NOT_PERMITTED),
    ]
}

/// Asynchronous commands naming the victim's handles or memory, from the intruder's `own`
/// memory: a launch of the victim's kernel, a copy, a memset, an event record, and then an
/// upload into its own memory on the victim's stream.
fn submit_foreign_commands(x: &Client, v: &Victim, own: u64) {
    let params = pack(
        &v.layout,
        &[
            &own.to_le_bytes(),
            &own.to_le_bytes(),
            &v.ptr.to_le_bytes(),
            &(N as i32).to_le_bytes(),
        ],
    );
    launch(x, v.function, 0, [4, 1, 1], [256, 1, 1], 0, &params);
    x.submit(&Cmd::MemcpyDtoD(CopyDevice {
        stream: 0,
        dst: v.ptr,
        src: own,
        len: 256,
    }))
    .unwrap();
    x.submit(&Cmd::Memset(Memset {
        stream: 0,
        dst: v.ptr,
        pitch: 0,
        width: 256,
        height: 1,
        value: 0,
        element_size: 4,
    }))
    .unwrap();
    x.submit(&Cmd::EventRecord(EventRecord {
        event: v.event,
        stream: 0,
        flags: 0,
        reserved: 0,
    }))
    .unwrap();
    upload_async(x, v.stream, own, &[1u8; 64]);
}

#[test]
fn foreign_handles_and_memory() {
    let b = BrokerProc::start();
    let a = b.tenant("victim");
    let x = b.tenant("intruder");
    let victim = Victim::create(&a);
    // The intruder's own memory, so that copies have a valid side.
    let px = alloc(&x, (N * 4) as u64);
    for (req, want) in foreign_requests(&victim, px) {
        let what = format!("{req:?}");
        assert_eq!(call(&x, req).code, want, "{what}");
    }
    // Synchronous copies into or out of the victim's memory.
    let value = code::ERROR_INVALID_VALUE;
    let mut buf = vec![0u8; 64];
    assert_eq!(x.copy_from_device(&mut buf, victim.ptr).unwrap(), value);
    assert_eq!(x.copy_to_device(victim.ptr, &[0u8; 64]).unwrap(), value);

    // Asynchronous commands naming the victim's handles or memory become the intruder's own
    // asynchronous errors; the victim sees none.
    submit_foreign_commands(&x, &victim, px);
    sync(&x);
    assert_eq!(
        sticky(&x),
        u64::from(code::ERROR_INVALID_HANDLE),
        "first async error is the launch's"
    );
    assert_eq!(sticky(&a), 0, "the victim has no error");
    victim.check_intact(&a);

    // Host spans outside shared memory are protocol violations: the intruder's session closes.
    let r = x.call(Request::MemcpyHtoD {
        dst: px,
        src: HostSpan {
            region: 0,
            offset: u64::MAX - 8,
            len: 64,
        },
    });
    assert!(
        r.is_err(),
        "a host span outside shared memory closes the session: {r:?}"
    );
    assert!(b.log_text().contains("protocol violation"));
    // ... and the victim goes on.
    vector_add_roundtrip(&a, 2048, 5);
}

#[test]
fn memory_quota_from_policy() {
    let dir = std::env::temp_dir().join(format!("gpushare-policy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let policy = dir.join("policy.toml");
    std::fs::write(
        &policy,
        "[default]\nweight = 1\n[tenants.small]\nweight = 3\nmemory_quota = \"8MiB\"\n",
    )
    .unwrap();
    let b = BrokerProc::start_args(&["--policy", policy.to_str().unwrap()], &[]);
    let small = b.tenant("small");
    let big = b.tenant("big");
    assert_eq!(small.welcome().devices[0].total_mem, 8 << 20);
    alloc(&small, 4 << 20);
    alloc(&small, 3 << 20);
    let r = call(&small, Request::MemAlloc { size: 1 << 20 });
    assert_eq!(r.code, code::ERROR_OUT_OF_MEMORY, "over the quota");
    match ok(&small, Request::MemGetInfo) {
        Reply::MemInfo { free, total } => assert_eq!((free, total), (0, 8 << 20)),
        other => panic!("{other:?}"),
    }
    alloc(&big, 64 << 20);
    let st = b.status();
    let s = st.tenants.iter().find(|t| t.name == "small").unwrap();
    assert_eq!(
        (s.weight, s.memory_quota, s.memory_bytes),
        (3, 8 << 20, 8 << 20)
    );
    let g = st.tenants.iter().find(|t| t.name == "big").unwrap();
    assert_eq!((g.weight, g.memory_quota, g.memory_bytes), (1, 0, 64 << 20));
    assert_eq!(st.devices[0].used_mem, 72 << 20);
    std::fs::remove_dir_all(&dir).ok();
}
