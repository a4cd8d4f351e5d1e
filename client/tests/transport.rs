//! Transport: handshake, descriptor passing (threads and processes), frames on a real socket,
//! and a tenant session talking to a miniature broker over both lanes.

mod common;

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use gpushare_client::frame::{self, FrameError};
use gpushare_client::handshake::{broker_handshake, client_handshake, HandshakeError};
use gpushare_client::os::{self, Mapping};
use gpushare_client::proto::*;
use gpushare_client::ring::record::{CopyHost, Launch};
use gpushare_client::ring::Command;
use gpushare_client::shm::{HostBuffer, SessionState};
use gpushare_client::{code, Client, ClientOptions, Region, ShmConfig};

fn welcome_for(region: Option<&Region>) -> Welcome {
    Welcome {
        protocol_version: PROTOCOL_VERSION,
        session_id: 1,
        shm: region.map(|r| *r.layout()),
        driver_version: 12090,
        devices: vec![device()],
        broker_version: "test".into(),
    }
}

/// A broker thread for one session: handshake, then socket requests until Goodbye/close, while
/// another thread serves the ring. Returns the accepted Hello and the ring counts.
fn spawn_broker(mut sock: UnixStream) -> std::thread::JoinHandle<(Hello, (u64, u64))> {
    std::thread::spawn(move || {
        let mut region = None;
        let hello = broker_handshake(&mut sock, |h| {
            if h.tenant_name == "banned" {
                return Err("tenant banned by policy".into());
            }
            if h.kind == SessionKind::Admin {
                return Ok((welcome_for(None), None));
            }
            let (r, fd) =
                Region::create(&ShmConfig::default(), false).map_err(|e| e.to_string())?;
            let w = welcome_for(Some(&r));
            region = Some(Arc::new(r));
            Ok((w, Some(fd)))
        })
        .unwrap();
        let ring = region.clone().map(|r| {
            let consumer = r.command_consumer().unwrap();
            std::thread::spawn(move || serve_ring(&r, consumer))
        });
        loop {
            let (payload, fds) = match frame::recv_frame_with_fds(&mut sock, 4) {
                Ok(x) => x,
                Err(FrameError::Closed) => break,
                Err(e) => panic!("broker: {e}"),
            };
            match decode::<ClientMessage>(&payload).unwrap() {
                ClientMessage::Request(env) => {
                    let reply = match &env.body {
                        Request::HostRegister { size, .. } => {
                            let fd = fds.into_iter().next().unwrap();
                            let buf = HostBuffer::open(fd, *size).unwrap();
                            let mut b = [0u8; 6];
                            buf.mapping().read(0, &mut b).unwrap();
                            assert_eq!(&b, b"pinned");
                            ReplyEnvelope::ok(env.id, Reply::HostRegion { device_ptr: 0xABC })
                        }
                        body => answer(env.id, body, None),
                    };
                    frame::send_message(&mut sock, &BrokerMessage::Reply(reply)).unwrap();
                }
                ClientMessage::Goodbye { .. } => break,
                ClientMessage::Hello(_) => panic!("second hello"),
            }
        }
        if let Some(r) = &region {
            r.close(SessionState::ClosedByBroker);
        }
        let counts = ring.map_or((0, 0), |t| t.join().unwrap());
        (hello, counts)
    })
}

/// Calls on the ring lane: 1000 allocations, then replies with error codes.
fn ring_lane_calls(client: &Client) {
    for i in 0..1000u64 {
        let r = client.call(Request::MemAlloc { size: i }).unwrap();
        assert_eq!(
            r.body,
            Reply::DevicePtr {
                ptr: 0x1_0000_0000 + i
            }
        );
    }
    let r = client.call(Request::StreamQuery { stream: 3 }).unwrap();
    assert_eq!(r.code, code::ERROR_NOT_READY);
    let r = client.call(Request::EventCreate { flags: 0 }).unwrap();
    assert_eq!(r.code, code::ERROR_NOT_SUPPORTED);
}

/// Bytes through staging: HtoD (the broker sums them), DtoH (the broker fills them).
fn bytes_through_staging(client: &Client) {
    let staging = client.staging().unwrap();
    let span = staging.try_alloc(300_000).unwrap().unwrap();
    staging.write(span.offset, &vec![3u8; 300_000]).unwrap();
    let src = HostSpan {
        region: STAGING_REGION,
        offset: span.offset,
        len: span.len,
    };
    let r = client.call(Request::MemcpyHtoD { dst: 0x10, src }).unwrap();
    assert_eq!(r.body, Reply::Value(900_000));
    let r = client
        .call(Request::MemcpyDtoH {
            dst: src,
            src: 0x42,
        })
        .unwrap();
    assert!(r.is_ok());
    let mut back = vec![0u8; 300_000];
    staging.read(span.offset, &mut back).unwrap();
    assert!(back.iter().all(|&b| b == 0x42));
    staging.free(span).unwrap();
}

/// 10 000 launches and a copy as asynchronous commands, then 500 calls from each of four
/// threads at once.
fn commands_then_concurrent_calls(client: &Client) {
    let params = [0u8; 8];
    for i in 0..10_000u64 {
        let seq = client
            .submit(&Command::Launch(Launch {
                function: i,
                stream: 0,
                grid: [1, 1, 1],
                block: [1, 1, 1],
                shared_mem_bytes: 0,
                params: &params,
            }))
            .unwrap();
        assert!(seq > i);
    }
    client
        .submit(&Command::MemcpyHtoD(CopyHost::default()))
        .unwrap();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            s.spawn(move || {
                for i in 0..500 {
                    let r = client
                        .call(Request::MemAlloc { size: t * 1000 + i })
                        .unwrap();
                    assert_eq!(
                        r.body,
                        Reply::DevicePtr {
                            ptr: 0x1_0000_0000 + t * 1000 + i
                        }
                    );
                }
            });
        }
    });
}

/// The socket lane: plain, oversized for the ring, and with a descriptor.
fn socket_lane_calls(client: &Client) {
    let r = client.call_socket(Request::Ping, &[]).unwrap();
    assert_eq!(r.body, Reply::Pong);
    let long = Request::ModuleGetFunction {
        module: 1,
        name: "k".repeat(40_000),
    };
    let r = client.call(long).unwrap();
    assert_eq!(r.code, code::ERROR_NOT_SUPPORTED);
    let host = HostBuffer::create(1 << 16, false).unwrap();
    host.mapping().write(0, b"pinned").unwrap();
    let r = client
        .call_socket(
            Request::HostRegister {
                region: 1,
                size: 1 << 16,
                flags: 0,
            },
            &[host.fd()],
        )
        .unwrap();
    assert_eq!(r.body, Reply::HostRegion { device_ptr: 0xABC });
}

#[test]
fn tenant_session_over_both_lanes() {
    let (a, b) = UnixStream::pair().unwrap();
    let broker = spawn_broker(b);
    let client = Client::from_stream(a, &Hello::tenant("llama"), ClientOptions::default()).unwrap();
    assert_eq!(client.welcome().devices[0].name, "NVIDIA H200");
    assert!(client.region().is_some());
    ring_lane_calls(&client);
    bytes_through_staging(&client);
    commands_then_concurrent_calls(&client);
    socket_lane_calls(&client);

    client.goodbye("done").unwrap();
    let (hello, (calls, others)) = broker.join().unwrap();
    assert_eq!(hello.tenant_name, "llama");
    assert_eq!(calls, 1000 + 2 + 2 + 2000);
    assert!(!hello.tenant_name.is_empty());
    assert_eq!(others, 10_001);
}

#[test]
fn admin_session_gets_status_without_region() {
    let (a, b) = UnixStream::pair().unwrap();
    let broker = spawn_broker(b);
    let client = Client::from_stream(a, &Hello::admin("ctl"), ClientOptions::default()).unwrap();
    assert!(client.region().is_none());
    let r = client.call(Request::Status).unwrap();
    assert_eq!(r.body, Reply::Status(status()));
    assert!(matches!(
        client.submit(&Command::MemcpyHtoD(CopyHost::default())),
        Err(gpushare_client::ClientError::NoRegion)
    ));
    drop(client);
    broker.join().unwrap();
}

#[test]
fn rejections_are_readable() {
    // Policy rejection.
    let (mut a, b) = UnixStream::pair().unwrap();
    let broker = std::thread::spawn(move || {
        let mut b = b;
        broker_handshake(&mut b, |_| Err("tenant banned by policy".into()))
    });
    match client_handshake(&mut a, &Hello::tenant("banned")) {
        Err(HandshakeError::Rejected(r)) => assert!(r.contains("banned")),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        broker.join().unwrap(),
        Err(HandshakeError::Rejected(_))
    ));

    // A future client whose Hello has an unknown shape: the broker reads the version prefix.
    let (mut a, b) = UnixStream::pair().unwrap();
    let broker = std::thread::spawn(move || {
        let mut b = b;
        broker_handshake(&mut b, |_| unreachable!())
    });
    let future = (
        0u32,
        PROTOCOL_VERSION + 7,
        [1u8, 2, 3],
        "new fields",
        1.5f64,
    );
    frame::send_message(&mut a, &future).unwrap();
    match frame::recv_message::<BrokerMessage>(&mut a).unwrap() {
        BrokerMessage::Rejected { reason } => {
            assert!(reason.contains("protocol version mismatch"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        broker.join().unwrap(),
        Err(HandshakeError::Version(_))
    ));

    // Garbage instead of a Hello.
    let (mut a, b) = UnixStream::pair().unwrap();
    let broker = std::thread::spawn(move || {
        let mut b = b;
        broker_handshake(&mut b, |_| unreachable!())
    });
    frame::send_frame(&mut a, &[9, 9, 9]).unwrap();
    assert!(matches!(
        frame::recv_message::<BrokerMessage>(&mut a).unwrap(),
        BrokerMessage::Rejected { .. }
    ));
    assert!(matches!(
        broker.join().unwrap(),
        Err(HandshakeError::Frame(_))
    ));
}

#[test]
fn socket_frame_errors() {
    // Oversized prefix.
    let (mut a, mut b) = UnixStream::pair().unwrap();
    a.write_all(&((MAX_FRAME as u32) + 1).to_le_bytes())
        .unwrap();
    assert!(matches!(
        frame::recv_frame(&mut b),
        Err(FrameError::Oversized { .. })
    ));
    // Truncated payload, then truncated prefix, then clean close.
    let (mut a, mut b) = UnixStream::pair().unwrap();
    a.write_all(&10u32.to_le_bytes()).unwrap();
    a.write_all(&[1, 2, 3]).unwrap();
    drop(a);
    assert!(matches!(
        frame::recv_frame(&mut b),
        Err(FrameError::Truncated {
            expected: 14,
            got: 7
        })
    ));
    let (mut a, mut b) = UnixStream::pair().unwrap();
    a.write_all(&[1, 0]).unwrap();
    drop(a);
    assert!(matches!(
        frame::recv_frame_with_fds(&mut b, 1),
        Err(FrameError::Truncated {
            expected: 4,
            got: 2
        })
    ));
    let (a, mut b) = UnixStream::pair().unwrap();
    drop(a);
    assert!(matches!(frame::recv_frame(&mut b), Err(FrameError::Closed)));
    // Frames with and without descriptors interleave correctly.
    let (mut a, mut b) = UnixStream::pair().unwrap();
    let f = os::memfd_create("t", 4096, false).unwrap();
    frame::send_frame(&mut a, b"one").unwrap();
    frame::send_frame_with_fds(&mut a, b"two", &[f.as_fd()]).unwrap();
    frame::send_frame(&mut a, b"three").unwrap();
    let (p, fds) = frame::recv_frame_with_fds(&mut b, 2).unwrap();
    assert_eq!((&p[..], fds.len()), (&b"one"[..], 0));
    let (p, fds) = frame::recv_frame_with_fds(&mut b, 2).unwrap();
    assert_eq!((&p[..], fds.len()), (&b"two"[..], 1));
    let (p, fds) = frame::recv_frame_with_fds(&mut b, 2).unwrap();
    assert_eq!((&p[..], fds.len()), (&b"three"[..], 0));
}

#[test]
fn memfd_passes_between_threads() {
    let (mut a, mut b) = UnixStream::pair().unwrap();
    let t = std::thread::spawn(move || {
        let (payload, fds) = frame::recv_frame_with_fds(&mut b, 1).unwrap();
        assert_eq!(payload, b"region");
        let fd = fds.into_iter().next().unwrap();
        let map = Mapping::map_fd(fd.as_fd(), 8192, false).unwrap();
        let mut buf = [0u8; 5];
        map.read(4096, &mut buf).unwrap();
        map.write(0, b"reply").unwrap();
        buf
    });
    let fd = os::memfd_create("t", 8192, true).unwrap();
    let map = Mapping::map_fd(fd.as_fd(), 8192, false).unwrap();
    map.write(4096, b"hello").unwrap();
    frame::send_frame_with_fds(&mut a, b"region", &[fd.as_fd()]).unwrap();
    assert_eq!(&t.join().unwrap(), b"hello");
    let mut buf = [0u8; 5];
    map.read(0, &mut buf).unwrap();
    assert_eq!(&buf, b"reply");
}

/// Child side of `memfd_passes_between_processes` and `session_across_processes`.
#[test]
fn child_main() {
    let Some((role, sock)) = child_role() else {
        return;
    };
    let mut s = connect_retry(&sock);
    match role.as_str() {
        "memfd" => {
            let (_, fds) = frame::recv_frame_with_fds(&mut s, 1).unwrap();
            let fd = fds.into_iter().next().unwrap();
            assert!(os::is_shrink_sealed(fd.as_fd()));
            let map = Mapping::map_fd(fd.as_fd(), 4096, false).unwrap();
            let mut buf = [0u8; 11];
            map.read(0, &mut buf).unwrap();
            assert_eq!(&buf, b"from parent");
            map.write(100, b"from child").unwrap();
            frame::send_frame(&mut s, b"done").unwrap();
        }
        "tenant" => {
            let client =
                Client::from_stream(s, &Hello::tenant("child"), ClientOptions::default()).unwrap();
            for i in 0..2000 {
                let r = client.call(Request::MemAlloc { size: i }).unwrap();
                assert_eq!(
                    r.body,
                    Reply::DevicePtr {
                        ptr: 0x1_0000_0000 + i
                    }
                );
            }
            client.goodbye("bye").unwrap();
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn memfd_passes_between_processes() {
    let path = socket_path("memfd");
    let listener = UnixListener::bind(&path).unwrap();
    let mut child = spawn_child("child_main", "memfd", &path);
    let (mut s, _) = listener.accept().unwrap();
    let cred = os::peer_credentials(&s).unwrap();
    assert_eq!(cred.pid as u32, child.id());
    let fd = os::memfd_create("t", 4096, true).unwrap();
    let map = Mapping::map_fd(fd.as_fd(), 4096, false).unwrap();
    map.write(0, b"from parent").unwrap();
    frame::send_frame_with_fds(&mut s, b"fd", &[fd.as_fd()]).unwrap();
    assert_eq!(frame::recv_frame(&mut s).unwrap(), b"done");
    let mut buf = [0u8; 10];
    map.read(100, &mut buf).unwrap();
    assert_eq!(&buf, b"from child");
    assert!(child.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn session_across_processes() {
    let path = socket_path("session");
    let listener = UnixListener::bind(&path).unwrap();
    let mut child = spawn_child("child_main", "tenant", &path);
    let (s, _) = listener.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let (hello, (calls, _)) = spawn_broker(s).join().unwrap();
    assert_eq!(hello.tenant_name, "child");
    assert_eq!(calls, 2000);
    assert!(child.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn broker_hangup_cancels_waits() {
    let (a, b) = UnixStream::pair().unwrap();
    let (region_tx, region_rx) = std::sync::mpsc::channel();
    let broker = std::thread::spawn(move || {
        let mut b = b;
        broker_handshake(&mut b, |_| {
            let (r, fd) = Region::create(&ShmConfig::default(), false).unwrap();
            let w = welcome_for(Some(&r));
            region_tx.send(r).unwrap();
            Ok((w, Some(fd)))
        })
        .unwrap();
        // Never answers; hangs up after a while.
        std::thread::sleep(Duration::from_millis(50));
        drop(b);
    });
    let client = Client::from_stream(a, &Hello::tenant("t"), ClientOptions::default()).unwrap();
    let _region = region_rx.recv().unwrap();
    std::thread::scope(|s| {
        s.spawn(|| assert!(client.watch_broker(None).unwrap()));
        let err = client.call(Request::Ping).unwrap_err();
        assert!(err.to_string().contains("closed"), "{err}");
    });
    assert!(!client.region().unwrap().is_open());
    broker.join().unwrap();
}

#[test]
fn staged_copies_split_into_pieces() {
    let (a, b) = UnixStream::pair().unwrap();
    let broker = spawn_broker(b);
    let client =
        Client::from_stream(a, &Hello::tenant("copier"), ClientOptions::default()).unwrap();
    let staging = client.staging().unwrap().clone();
    // 40 MiB through a 64 MiB staging area: pieces of 32 MiB and 8 MiB.
    let data = vec![1u8; 40 << 20];
    assert_eq!(client.copy_to_device(0x1000, &data).unwrap(), code::SUCCESS);
    let mut back = vec![0u8; 40 << 20];
    assert_eq!(
        client.copy_from_device(&mut back, 0x42).unwrap(),
        code::SUCCESS
    );
    assert!(back.iter().all(|&b| b == 0x42));
    assert_eq!(client.copy_to_device(0x1000, &[]).unwrap(), code::SUCCESS);
    assert_eq!(staging.chunks_in_use(), 0, "every piece was freed");
    client.goodbye("done").unwrap();
    let (_, (calls, _)) = broker.join().unwrap();
    assert_eq!(calls, 4);
}
