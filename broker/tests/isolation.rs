//! Tenants are isolated: naming another tenant's module, function, stream or event gets
//! `CUDA_ERROR_INVALID_HANDLE` (exactly like an unknown handle), touching its memory gets
//! `CUDA_ERROR_INVALID_VALUE`, asynchronous errors stay with the tenant that caused them, and
//! the victim's data is intact. Admin-only requests are refused to tenants; memory quotas from
//! the policy file hold.

mod common;

use common::*;
use gpushare_client::code;
use gpushare_client::proto::{HostSpan, Reply, Request};
use gpushare_client::ring::record::{CopyDevice, EventRecord, Memset};
use gpushare_client::Command as Cmd;

#[test]
fn foreign_handles_and_memory() {
    let b = BrokerProc::start();
    let a = b.tenant("victim");
    let x = b.tenant("intruder");
    // The victim's resources.
    let module = load_module(&a, "vector_add");
    let (f, layout) = function(&a, module, "vector_add");
    let stream = match ok(
        &a,
        Request::StreamCreate {
            flags: 1,
            priority: 0,
        },
    ) {
        Reply::Stream { stream, .. } => stream,
        other => panic!("{other:?}"),
    };
    let event = match ok(&a, Request::EventCreate { flags: 0 }) {
        Reply::Event { event } => event,
        other => panic!("{other:?}"),
    };
    let n = 1024usize;
    let secret = data(n, 42);
    let pa = alloc(&a, (n * 4) as u64);
    upload_f32(&a, pa, &secret);

    // The intruder's own memory, so that copies have a valid side.
    let px = alloc(&x, (n * 4) as u64);
    let handle = code::ERROR_INVALID_HANDLE;
    let value = code::ERROR_INVALID_VALUE;
    let checks: Vec<(Request, u32)> = vec![
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
                function: f,
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
                dst: px,
                src: pa,
                len: 64,
            },
            value,
        ),
        (
            Request::MemcpyDtoD {
                dst: pa,
                src: px,
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
                dst: px,
                src: px + 1024,
                len: 4 << 20,
            },
            value,
        ),
        (Request::Status, code::ERROR_NOT_PERMITTED),
    ];
    for (req, want) in checks {
        let what = format!("{req:?}");
        assert_eq!(call(&x, req).code, want, "{what}");
    }
    // Synchronous copies into or out of the victim's memory.
    let mut buf = vec![0u8; 64];
    assert_eq!(x.copy_from_device(&mut buf, pa).unwrap(), value);
    assert_eq!(x.copy_to_device(pa, &[0u8; 64]).unwrap(), value);

    // Asynchronous commands naming the victim's handles or memory become the intruder's own
    // asynchronous errors; the victim sees none.
    let params = pack(
        &layout,
        &[
            &px.to_le_bytes(),
            &px.to_le_bytes(),
            &pa.to_le_bytes(),
            &(n as i32).to_le_bytes(),
        ],
    );
    launch(&x, f, 0, [4, 1, 1], [256, 1, 1], 0, &params);
    x.submit(&Cmd::MemcpyDtoD(CopyDevice {
        stream: 0,
        dst: pa,
        src: px,
        len: 256,
    }))
    .unwrap();
    x.submit(&Cmd::Memset(Memset {
        stream: 0,
        dst: pa,
        pitch: 0,
        width: 256,
        height: 1,
        value: 0,
        element_size: 4,
    }))
    .unwrap();
    x.submit(&Cmd::EventRecord(EventRecord {
        event,
        stream: 0,
        flags: 0,
        reserved: 0,
    }))
    .unwrap();
    upload_async(&x, stream, px, &[1u8; 64]);
    sync(&x);
    assert_eq!(
        sticky(&x),
        u64::from(handle),
        "first async error is the launch's"
    );
    assert_eq!(sticky(&a), 0, "the victim has no error");

    // The victim's data and handles are intact and still work.
    assert_eq!(download_f32(&a, pa, n), secret);
    assert_eq!(
        call(&a, Request::StreamQuery { stream }).code,
        code::SUCCESS
    );
    assert_eq!(call(&a, Request::EventQuery { event }).code, code::SUCCESS);
    let (f2, _) = function(&a, module, "vector_add");
    assert_eq!(f2, f, "the same kernel gets the same handle");

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
