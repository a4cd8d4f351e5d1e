//! Tenants run corpus kernels through a broker on the CPU device and get correct results: the
//! synchronous lane (CALL records, staged copies), the asynchronous lane (ring copies and
//! launches on streams, completion slots, `retired`), events, per-tenant legacy stream
//! semantics, and four tenants at once.

mod common;

use std::sync::Arc;

use common::*;
use gpushare_client::code;
use gpushare_client::proto::{Reply, ReplyEnvelope, Request};
use gpushare_client::ring::record::{CopyHost, EventRecord, StreamWait};
use gpushare_client::shm::LEGACY_STREAM_SLOT;
use gpushare_client::wait::Cancel;
use gpushare_client::{Client, Command as Cmd};

fn stream(c: &Client, flags: u32) -> (u64, u32) {
    match ok(c, Request::StreamCreate { flags, priority: 0 }) {
        Reply::Stream {
            stream,
            completion_slot,
        } => (stream, completion_slot),
        other => panic!("StreamCreate replied {other:?}"),
    }
}

fn event(c: &Client, flags: u32) -> u64 {
    match ok(c, Request::EventCreate { flags }) {
        Reply::Event { event } => event,
        other => panic!("EventCreate replied {other:?}"),
    }
}

/// sgemm of an m×k by k×n product on `stream`, entirely on the asynchronous lane: copies in
/// through staging (released by the broker), launch, copy out into staging, then wait on the
/// stream's completion slot.
fn sgemm_async(c: &Client, m: usize, n: usize, k: usize, seed: u32) {
    let module = load_module(c, "sgemm_tiled");
    let (f, layout) = function(c, module, "sgemm_tiled");
    let (s, slot) = stream(c, 1);
    let (a, b) = (data(m * k, seed), data(k * n, seed + 7));
    let da = alloc(c, (m * k * 4) as u64);
    let db = alloc(c, (k * n * 4) as u64);
    let dc = alloc(c, (m * n * 4) as u64);
    let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    upload_async(c, s, da, &bytes(&a));
    upload_async(c, s, db, &bytes(&b));
    let params = pack(
        &layout,
        &[
            &da.to_le_bytes(),
            &db.to_le_bytes(),
            &dc.to_le_bytes(),
            &(m as i32).to_le_bytes(),
            &(n as i32).to_le_bytes(),
            &(k as i32).to_le_bytes(),
        ],
    );
    let grid = [(n as u32).div_ceil(16), (m as u32).div_ceil(16), 1];
    launch(c, f, s, grid, [16, 16, 1], 0, &params);
    let staging = c.staging().unwrap();
    let out_len = (m * n * 4) as u64;
    let span = staging.alloc(out_len, &policy(), &Cancel::never()).unwrap();
    let last = c
        .submit(&Cmd::MemcpyDtoH(CopyHost {
            stream: s,
            device_ptr: dc,
            host_offset: span.offset,
            len: out_len,
            host_region: 0,
            flags: 0,
        }))
        .unwrap();
    let region = c.region().unwrap();
    let done = region.stream_slot(slot).unwrap();
    done.wait_until(|v| v >= last, &policy())
        .expect("stream completes");
    assert!(region.retired().load() >= last, "retired covers the stream");
    let mut out = vec![0u8; out_len as usize];
    staging.read(span.offset, &mut out).unwrap();
    staging.free(span).unwrap();
    let got: Vec<f32> = out
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert!(close(&got, &sgemm_ref(&a, &b, m, n, k)), "sgemm result");
    assert_eq!(sticky(c), 0, "no asynchronous error");
    ok(c, Request::StreamDestroy { stream: s });
    for p in [da, db, dc] {
        ok(c, Request::MemFree { ptr: p });
    }
    ok(c, Request::ModuleUnload { module });
}

#[test]
fn vector_add_sync_lane() {
    let b = BrokerProc::start();
    let c = b.tenant("vadd");
    assert!(matches!(ok(&c, Request::Ping), Reply::Pong));
    let info = &c.welcome().devices[0];
    assert!(info.name.contains("CPU device"), "{}", info.name);
    vector_add_roundtrip(&c, 5000, 1);
    // Everything freed: the broker charges nothing.
    assert_eq!(b.used_mem(), 0);
    c.goodbye("done").unwrap();
}

#[test]
fn sgemm_async_lane() {
    let b = BrokerProc::start();
    let c = b.tenant("sgemm");
    sgemm_async(&c, 72, 80, 40, 3);
    // Released staging chunks come back (the broker frees them after the copies).
    let staging = c.staging().unwrap();
    let start = std::time::Instant::now();
    while staging.chunks_in_use() != 0 {
        assert!(start.elapsed() < WAIT, "staging chunks not released");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn events_streams_and_legacy_semantics() {
    let b = BrokerProc::start();
    let c = b.tenant("events");
    let n = 4096usize;
    let module = load_module(&c, "vector_add");
    let (f, layout) = function(&c, module, "vector_add");
    let bytes = (n * 4) as u64;
    let (da, db, dc, dd) = (
        alloc(&c, bytes),
        alloc(&c, bytes),
        alloc(&c, bytes),
        alloc(&c, bytes),
    );
    let a = data(n, 11);
    upload_f32(&c, da, &a);
    upload_f32(&c, db, &a);
    let p = |x: u64, y: u64, z: u64| {
        pack(
            &layout,
            &[
                &x.to_le_bytes(),
                &y.to_le_bytes(),
                &z.to_le_bytes(),
                &(n as i32).to_le_bytes(),
            ],
        )
    };
    let grid = [(n as u32).div_ceil(256), 1, 1];
    // A blocking stream: c = a + b there, then on the legacy stream d = c + c must see it
    // without any explicit synchronisation (legacy semantics, per tenant).
    let (s1, slot1) = stream(&c, 0);
    let (s2, _) = stream(&c, 1);
    let (e0, e1) = (event(&c, 0), event(&c, 0));
    record(&c, e0, s1);
    launch(&c, f, s1, grid, [256, 1, 1], 0, &p(da, db, dc));
    let s1_last = record(&c, e1, s1);
    let seq = launch(&c, f, 0, grid, [256, 1, 1], 0, &p(dc, dc, dd));
    // A non-blocking stream ordered by an explicit wait on e1: a = c + d.
    c.submit(&Cmd::StreamWaitEvent(StreamWait {
        stream: s2,
        event: e1,
        flags: 0,
        reserved: 0,
    }))
    .unwrap();
    launch(&c, f, s2, grid, [256, 1, 1], 0, &p(dc, dd, da));
    let legacy = c.region().unwrap().stream_slot(LEGACY_STREAM_SLOT).unwrap();
    legacy.wait_until(|v| v >= seq, &policy()).unwrap();
    ok(&c, Request::EventSynchronize { event: e1 });
    ok(&c, Request::StreamSynchronize { stream: s2 });
    assert_eq!(
        call(&c, Request::EventQuery { event: e1 }).code,
        code::SUCCESS
    );
    let s1_done = c.region().unwrap().stream_slot(slot1).unwrap();
    s1_done.wait_until(|v| v >= s1_last, &policy()).unwrap();
    match ok(&c, Request::EventElapsedTime { start: e0, end: e1 }) {
        Reply::ElapsedMs(ms) => assert!(ms >= 0.0, "elapsed {ms}"),
        other => panic!("EventElapsedTime replied {other:?}"),
    }
    let d = download_f32(&c, dd, n);
    let a2 = download_f32(&c, da, n);
    for i in 0..n {
        let cv = a[i] + a[i];
        assert_eq!(
            d[i],
            cv + cv,
            "legacy stream saw the blocking stream's work ({i})"
        );
        assert_eq!(a2[i], cv + d[i], "the waiting stream saw the event ({i})");
    }
    assert_eq!(sticky(&c), 0);
    memset_then_copy_on_the_sync_lane(&c, dd, dc, n);
    // Status sees the tenant's streams and memory.
    let st = b.status();
    let me = st.tenants.iter().find(|t| t.name == "events").unwrap();
    assert_eq!(me.streams, 2);
    assert!(me.memory_bytes >= 4 * bytes);
    assert!(me.completed_ops >= 3, "{me:?}");
}

/// Records `event` on `stream` (ring lane); the record's sequence number.
fn record(c: &Client, event: u64, stream: u64) -> u64 {
    c.submit(&Cmd::EventRecord(EventRecord {
        event,
        stream,
        flags: 0,
        reserved: 0,
    }))
    .unwrap()
}

/// Memset (1.0 into `dd`) and device-to-device copy (`dd` to `dc`) on the synchronous lane.
fn memset_then_copy_on_the_sync_lane(c: &Client, dd: u64, dc: u64, n: usize) {
    ok(
        c,
        Request::Memset {
            dst: dd,
            pitch: 0,
            value: 0x3f80_0000,
            element_size: 4,
            width: n as u64,
            height: 1,
        },
    );
    ok(
        c,
        Request::MemcpyDtoD {
            dst: dc,
            src: dd,
            len: (n * 4) as u64,
        },
    );
    assert!(download_f32(c, dc, n).iter().all(|&x| x == 1.0));
}

#[test]
fn four_tenants_at_once() {
    let b = Arc::new(BrokerProc::start());
    let threads: Vec<_> = (0..4u32)
        .map(|i| {
            let b = Arc::clone(&b);
            std::thread::spawn(move || {
                let c = b.tenant(&format!("t{i}"));
                for round in 0..3 {
                    vector_add_roundtrip(&c, 3000 + 100 * i as usize, i * 10 + round);
                    sgemm_async(&c, 48, 40 + 8 * i as usize, 24, i + round);
                }
                c.goodbye("done").unwrap();
            })
        })
        .collect();
    let mut seen = 0;
    for _ in 0..50 {
        seen = seen.max(b.status().tenants.len());
        if threads.iter().all(|t| t.is_finished()) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    for t in threads {
        t.join().expect("tenant thread");
    }
    assert!(seen >= 2, "status saw {seen} tenants at once");
    let start = std::time::Instant::now();
    while !b.status().tenants.is_empty() {
        assert!(start.elapsed() < WAIT, "sessions did not end");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(b.used_mem(), 0);
}

/// Many synchronous calls in a row all get their replies (a reply lost to a wake-up race would hang
/// and hit the client's timeout). Prints the latency figures recorded in docs/benchmarks.md; speed
/// is not asserted here.
#[test]
fn repeated_synchronous_calls_are_answered() {
    let b = BrokerProc::start();
    let c = b.tenant("latency");
    let mut ring = Vec::new();
    let mut executor = Vec::new();
    for _ in 0..200 {
        let t = std::time::Instant::now();
        ok(&c, Request::Ping);
        ring.push(t.elapsed());
        let t = std::time::Instant::now();
        ok(&c, Request::CtxSynchronize { ctx: 0 });
        executor.push(t.elapsed());
    }
    ring.sort();
    executor.sort();
    println!(
        "Ping (ring thread): p50 {:?} p99 {:?}; CtxSynchronize (executor): p50 {:?} p99 {:?}",
        ring[100], ring[198], executor[100], executor[198]
    );
}

#[test]
fn host_functions_and_async_errors() {
    use gpushare_client::ring::record::{HostFn, HostFnDone};
    use gpushare_client::RecordBuf;
    let b = BrokerProc::start();
    let c = b.tenant("hostfn");
    let region = c.region().unwrap();
    let mut notify = region.notify_consumer().unwrap();
    notify.set_wait(policy(), Cancel::never());
    let (s, slot) = stream(&c, 1);
    let p = alloc(&c, 4096);
    let fill = |v: u32| {
        c.submit(&Cmd::Memset(gpushare_client::ring::record::Memset {
            stream: s,
            dst: p,
            pitch: 0,
            width: 1024,
            height: 1,
            value: v,
            element_size: 4,
        }))
        .unwrap()
    };
    fill(1);
    let hf = c
        .submit(&Cmd::HostFn(HostFn {
            stream: s,
            token: 0xabc,
        }))
        .unwrap();
    let last = fill(2);
    let mut buf = RecordBuf::new();
    let popped = notify.pop(&mut buf).expect("HOST_FN_READY arrives");
    match popped.cmd {
        Cmd::HostFnReady(r) => assert_eq!((r.stream, r.token, r.seq), (s, 0xabc, hf)),
        other => panic!("{other:?}"),
    }
    // The stream is held at the host function until the tenant says it ran.
    std::thread::sleep(std::time::Duration::from_millis(50));
    let done = region.stream_slot(slot).unwrap();
    assert!(done.load() < last, "the stream waits for HOST_FN_DONE");
    c.submit(&Cmd::HostFnDone(HostFnDone { token: 0xabc }))
        .unwrap();
    done.wait_until(|v| v >= last, &policy()).unwrap();
    let mut word = [0u8; 4];
    assert_eq!(c.copy_from_device(&mut word, p).unwrap(), code::SUCCESS);
    assert_eq!(u32::from_le_bytes(word), 2);

    // An asynchronous error: reported on the notify ring with its sequence number, and sticky.
    let bad = launch(&c, 0x1234, s, [1, 1, 1], [1, 1, 1], 0, &[]);
    let popped = notify.pop(&mut buf).expect("ASYNC_ERROR arrives");
    match popped.cmd {
        Cmd::AsyncError(e) => assert_eq!((e.seq, e.code), (bad, code::ERROR_INVALID_HANDLE)),
        other => panic!("{other:?}"),
    }
    assert_eq!(sticky(&c), u64::from(code::ERROR_INVALID_HANDLE));
    // The stream still completes past the failed command.
    done.wait_until(|v| v >= bad, &policy()).unwrap();
}

#[test]
fn registered_host_buffers() {
    use gpushare_client::HostBuffer;
    let b = BrokerProc::start();
    let c = b.tenant("pinned");
    let len = 1u64 << 20;
    let buf = HostBuffer::create(len, false).unwrap();
    let pattern: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    buf.mapping().write(0, &pattern).unwrap();
    let r = host_register(&c, 1, len, &buf).unwrap();
    let device_ptr = match r.into_result() {
        Ok(Reply::HostRegion { device_ptr }) => device_ptr,
        other => panic!("HostRegister replied {other:?}"),
    };
    assert_ne!(device_ptr, 0);
    // The same id twice is refused; so is HostRegister without a descriptor (ring lane).
    let again = host_register(&c, 1, len, &buf).unwrap();
    assert_eq!(again.code, code::ERROR_HOST_MEMORY_ALREADY_REGISTERED);
    let no_fd = call(
        &c,
        Request::HostRegister {
            region: 2,
            size: len,
            flags: 0,
        },
    );
    assert_eq!(no_fd.code, code::ERROR_INVALID_VALUE);
    // Zero-copy in both directions through the registered buffer.
    let (s, slot) = stream(&c, 1);
    let d = alloc(&c, len);
    c.submit(&Cmd::MemcpyHtoD(CopyHost {
        stream: s,
        device_ptr: d,
        host_offset: 0,
        len: len / 2,
        host_region: 1,
        flags: 0,
    }))
    .unwrap();
    let last = c
        .submit(&Cmd::MemcpyDtoH(CopyHost {
            stream: s,
            device_ptr: d,
            host_offset: len / 2,
            len: len / 2,
            host_region: 1,
            flags: 0,
        }))
        .unwrap();
    let done = c.region().unwrap().stream_slot(slot).unwrap();
    done.wait_until(|v| v >= last, &policy()).unwrap();
    let mut back = vec![0u8; len as usize];
    buf.mapping().read(0, &mut back).unwrap();
    assert_eq!(back[len as usize / 2..], pattern[..len as usize / 2]);
    // The buffer's device address is the tenant's to copy from.
    ok(
        &c,
        Request::MemcpyDtoD {
            dst: d,
            src: device_ptr,
            len: 4096,
        },
    );
    ok(&c, Request::HostUnregister { region: 1 });
    assert_eq!(
        call(&c, Request::HostUnregister { region: 1 }).code,
        code::ERROR_HOST_MEMORY_NOT_REGISTERED
    );
    assert_eq!(sticky(&c), 0);
    // A descriptor of the wrong size is a protocol violation.
    let small = HostBuffer::create(4096, false).unwrap();
    let r = host_register(&c, 3, 8192, &small);
    assert!(r.is_err(), "{r:?}");
}

/// `HostRegister` of `buf` as region `region` of `size` bytes, on the socket lane.
fn host_register(
    c: &Client,
    region: u32,
    size: u64,
    buf: &gpushare_client::HostBuffer,
) -> Result<ReplyEnvelope, gpushare_client::ClientError> {
    c.call_socket(
        Request::HostRegister {
            region,
            size,
            flags: 0,
        },
        &[buf.fd()],
    )
}

#[test]
fn socket_lane_is_fenced_after_the_ring() {
    let b = BrokerProc::start();
    let c = b.tenant("fenced");
    let p = alloc(&c, 1 << 20);
    let staging = c.staging().unwrap();
    for round in 0..20u32 {
        c.submit(&Cmd::Memset(gpushare_client::ring::record::Memset {
            stream: 0,
            dst: p,
            pitch: 0,
            width: 1 << 18,
            height: 1,
            value: round,
            element_size: 4,
        }))
        .unwrap();
        // A socket-lane copy right behind it sees the memset (fence = last ring command).
        let span = staging.alloc(4, &policy(), &Cancel::never()).unwrap();
        let r = c
            .call_socket(
                Request::MemcpyDtoH {
                    dst: gpushare_client::proto::HostSpan {
                        region: 0,
                        offset: span.offset,
                        len: 4,
                    },
                    src: p + (1 << 20) - 4,
                },
                &[],
            )
            .unwrap();
        assert_eq!(r.code, code::SUCCESS);
        let mut w = [0u8; 4];
        staging.read(span.offset, &mut w).unwrap();
        staging.free(span).unwrap();
        assert_eq!(u32::from_le_bytes(w), round);
    }
}
