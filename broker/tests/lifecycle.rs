//! Session and broker lifecycles: a tenant killed mid-run has everything freed while others go
//! on; a killed broker is noticed by its tenants within 2 s; malformed, truncated and oversized
//! frames (and other protocol violations) close only the offending session, with a log line;
//! SIGTERM drains queued work, tells tenants, and exits 0; `gpushare run` explains what is
//! missing.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use gpushare_client::code;
use gpushare_client::handshake;
use gpushare_client::proto::{self, Hello, Reply, Request, RequestEnvelope};
use gpushare_client::ring::record::Call;
use gpushare_client::shm::SessionState;
use gpushare_client::{BrokerMessage, ClientMessage, Command as Cmd};

const CHILD_ENV: &str = "GPUSHARE_BROKER_TEST_CHILD_SOCKET";

/// Not a test of its own: the body of the tenant process `killed_tenant_is_cleaned_up`
/// starts (this test binary re-run with `CHILD_ENV` set). Without it, it does nothing.
#[test]
fn child_tenant_entry() {
    let Ok(socket) = std::env::var(CHILD_ENV) else {
        return;
    };
    let c = tenant_at(std::path::Path::new(&socket), "doomed");
    let module = load_module(&c, "vector_add");
    let (f, layout) = function(&c, module, "vector_add");
    let n = 4096;
    let (pa, pb) = (alloc(&c, 32 << 20), alloc(&c, 32 << 20));
    let params = pack(
        &layout,
        &[
            &pa.to_le_bytes(),
            &pa.to_le_bytes(),
            &pb.to_le_bytes(),
            &(n as i32).to_le_bytes(),
        ],
    );
    upload_f32(&c, pa, &data(n, 1));
    println!("child ready");
    // Launch until killed, never synchronising.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(120) {
        launch(&c, f, 0, [(n / 256) as u32, 1, 1], [256, 1, 1], 0, &params);
    }
}

#[test]
fn killed_tenant_is_cleaned_up() {
    let b = BrokerProc::start();
    let survivor = b.tenant("survivor");
    let keep = alloc(&survivor, 4 << 20);
    let baseline = b.used_mem();
    assert_eq!(baseline, 4 << 20);
    let device_free = || match ok(&survivor, Request::MemGetInfo) {
        Reply::MemInfo { free, .. } => free,
        other => panic!("{other:?}"),
    };
    let free_before = device_free();
    let mut child = spawn_doomed_child(&b);
    assert!(
        device_free() <= free_before - (64 << 20),
        "the child's memory shows on the device"
    );
    // The survivor computes while the child dies.
    let stop = Arc::new(AtomicBool::new(false));
    let bystander = spawn_bystander(&b, &stop);
    child.kill().expect("SIGKILL the child tenant");
    let _ = child.wait();
    let start = Instant::now();
    loop {
        let st = b.status();
        if !st.tenants.iter().any(|t| t.name == "doomed") && st.devices[0].used_mem == baseline {
            break;
        }
        assert!(
            start.elapsed() < WAIT,
            "memory did not return to baseline: {st:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let rounds = bystander.join().expect("the bystander computed correctly");
    assert!(rounds >= 2);
    // The device itself (not only the broker's accounting) is back where it was.
    let start = Instant::now();
    while device_free() != free_before {
        assert!(start.elapsed() < WAIT, "device memory not released");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The survivor's own memory and session are untouched.
    ok(&survivor, Request::MemFree { ptr: keep });
    assert_eq!(b.used_mem(), 0);
    assert!(b.log_text().contains("session resources freed"));
}

/// Starts the child tenant "doomed" (`child_tenant_entry`) and waits until it holds 64 MiB and
/// is launching.
fn spawn_doomed_child(b: &BrokerProc) -> std::process::Child {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_tenant_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &b.socket)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the child tenant");
    // Wait until the child holds memory and is launching.
    let start = Instant::now();
    loop {
        let st = b.status();
        if st
            .tenants
            .iter()
            .any(|t| t.name == "doomed" && t.memory_bytes >= 64 << 20 && t.submitted_ops > 0)
        {
            break;
        }
        if let Ok(Some(s)) = child.try_wait() {
            panic!("child tenant exited early: {s}");
        }
        assert!(start.elapsed() < WAIT, "child tenant never got going");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// A tenant "bystander" computing vector additions (checked) until `stop`, at least two;
/// returns how many it ran.
fn spawn_bystander(b: &BrokerProc, stop: &Arc<AtomicBool>) -> std::thread::JoinHandle<u32> {
    let stop = Arc::clone(stop);
    let socket = b.socket.clone();
    std::thread::spawn(move || {
        let c = tenant_at(&socket, "bystander");
        let mut rounds = 0;
        while !stop.load(Ordering::Relaxed) || rounds < 2 {
            vector_add_roundtrip(&c, 4096, rounds);
            rounds += 1;
        }
        c.goodbye("done").unwrap();
        rounds
    })
}

#[test]
fn killed_broker_is_noticed_within_two_seconds() {
    let mut b = BrokerProc::start();
    let c = Arc::new(b.tenant("orphan"));
    let watcher = {
        let c = Arc::clone(&c);
        std::thread::spawn(move || c.watch_broker(Some(Duration::from_secs(30))))
    };
    alloc(&c, 1 << 20);
    b.signal(libc::SIGKILL);
    b.wait_exit(Duration::from_secs(10)).expect("broker dies");
    let start = Instant::now();
    let r = c.call(Request::Ping);
    assert!(r.is_err(), "a call to a dead broker fails: {r:?}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "noticed after {:?}",
        start.elapsed()
    );
    assert!(
        watcher.join().unwrap().unwrap(),
        "watch_broker saw the hang-up"
    );
    assert!(c.call_socket(Request::Ping, &[]).is_err());
}

/// A raw tenant connection after a successful handshake.
fn raw_tenant(b: &BrokerProc) -> UnixStream {
    let mut s = UnixStream::connect(&b.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (w, fd) = handshake::client_handshake(&mut s, &Hello::tenant("raw")).unwrap();
    assert!(w.shm.is_some() && fd.is_some());
    s
}

/// Reads until the broker closes the connection; returns what it sent.
fn read_to_close(mut s: UnixStream) -> Vec<u8> {
    let mut out = Vec::new();
    s.read_to_end(&mut out)
        .expect("the broker closes the session (no timeout)");
    out
}

fn goodbye_in(bytes: &[u8]) -> bool {
    matches!(
        gpushare_client::frame::split_frame(bytes),
        Ok(Some((payload, _))) if matches!(
            proto::decode::<BrokerMessage>(payload),
            Ok(BrokerMessage::Goodbye { .. })
        )
    )
}

/// Malformed, truncated and oversized frames and a second Hello each close their session.
fn bad_frames_each_close_their_session(b: &BrokerProc) {
    // Malformed: a complete frame whose payload is no message.
    let mut s = raw_tenant(b);
    s.write_all(&[5, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff])
        .unwrap();
    assert!(goodbye_in(&read_to_close(s)), "Goodbye before closing");

    // Truncated: the stream ends inside a frame.
    let mut s = raw_tenant(b);
    s.write_all(&[100, 0, 0, 0, 1, 2, 3]).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    read_to_close(s);

    // Oversized: a length prefix above 1 MiB.
    let mut s = raw_tenant(b);
    s.write_all(&(4u32 << 20).to_le_bytes()).unwrap();
    assert!(goodbye_in(&read_to_close(s)));

    // A second Hello.
    let mut s = raw_tenant(b);
    gpushare_client::frame::send_message(&mut s, &ClientMessage::Hello(Hello::tenant("again")))
        .unwrap();
    read_to_close(s);
}

/// A request of a newer protocol (unknown variant, readable id) is answered, not fatal: the
/// session goes on.
fn newer_request_is_answered(b: &BrokerProc) {
    let mut s = raw_tenant(b);
    let mut payload = proto::encode(&ClientMessage::Request(RequestEnvelope {
        id: 77,
        fence: 0,
        body: Request::Ping,
    }))
    .unwrap();
    payload.truncate(3); // variant 1, id 77, fence 0 ...
    payload.extend_from_slice(&[0xc8, 0x01]); // ... then request variant 200, unknown
    gpushare_client::frame::send_frame(&mut s, &payload).unwrap();
    match gpushare_client::frame::recv_message::<BrokerMessage>(&mut s).unwrap() {
        BrokerMessage::Reply(r) => assert_eq!((r.id, r.code), (77, code::ERROR_NOT_SUPPORTED)),
        other => panic!("{other:?}"),
    }
    gpushare_client::frame::send_message(
        &mut s,
        &ClientMessage::Request(RequestEnvelope {
            id: 78,
            fence: 0,
            body: Request::Ping,
        }),
    )
    .unwrap();
    match gpushare_client::frame::recv_message::<BrokerMessage>(&mut s).unwrap() {
        BrokerMessage::Reply(r) => assert_eq!((r.id, r.body), (78, Reply::Pong)),
        other => panic!("{other:?}"),
    }
}

/// A CALL record naming a reply slot that does not exist (ring lane) closes the session.
fn bad_reply_slot_closes_the_session(b: &BrokerProc) {
    let bad = b.tenant("bad-call");
    let payload = proto::encode(&RequestEnvelope {
        id: 1,
        fence: 0,
        body: Request::Ping,
    })
    .unwrap();
    bad.submit(&Cmd::Call(Call {
        ticket: 1,
        slot: 100_000,
        payload: &payload,
    }))
    .unwrap();
    let state = bad.region().unwrap().session_state();
    state
        .wait_until(|v| v == SessionState::ClosedByBroker as u64, &policy())
        .expect("the session is closed by the broker");
}

#[test]
fn bad_frames_close_only_that_session() {
    let b = BrokerProc::start();
    let good = b.tenant("good");
    let p = alloc(&good, 1 << 20);
    bad_frames_each_close_their_session(&b);
    newer_request_is_answered(&b);
    bad_reply_slot_closes_the_session(&b);

    // The well-behaved tenant is unaffected.
    assert!(matches!(ok(&good, Request::Ping), Reply::Pong));
    vector_add_roundtrip(&good, 1000, 9);
    ok(&good, Request::MemFree { ptr: p });
    let log = b.log_text();
    for what in [
        "malformed",
        "truncated",
        "oversized",
        "second Hello",
        "reply slot",
    ] {
        assert!(log.contains(what), "log mentions {what}:\n{log}");
    }
    assert!(log.matches("protocol violation").count() >= 5, "{log}");
}

#[test]
fn sigterm_drains_and_exits_zero() {
    // Pacing makes each kernel take its modelled time: queued work is still running when the
    // signal arrives.
    let mut b = BrokerProc::start_with(&[("GPUSHARE_CPU_PACING", "1")]);
    let c = b.tenant("drained");
    let module = load_module(&c, "busy_sleep");
    let (f, layout) = function(&c, module, "busy_sleep");
    let out = alloc(&c, 4096);
    let params = pack(
        &layout,
        &[
            &out.to_le_bytes(),
            &2_000_000u32.to_le_bytes(),
            &25i32.to_le_bytes(),
            &32i32.to_le_bytes(),
        ],
    );
    let mut last = 0;
    // 16 launches of 50 ms modelled time each.
    for _ in 0..16 {
        last = launch(&c, f, 0, [1, 1, 1], [32, 1, 1], 0, &params);
    }
    let region = c.region().unwrap();
    assert!(
        region.retired().load() < last,
        "work still queued before SIGTERM"
    );
    b.signal(libc::SIGTERM);
    let status = b
        .wait_exit(Duration::from_secs(40))
        .expect("the broker exits after draining");
    assert!(status.success(), "exit status {status}\n{}", b.log_text());
    assert!(
        region.retired().load() >= last,
        "every queued command completed before the broker closed the session"
    );
    assert_eq!(
        region.session_state().load(),
        SessionState::ClosedByBroker as u64
    );
    assert_eq!(sticky(&c), 0);
    match c.call_socket(Request::Ping, &[]) {
        Err(gpushare_client::ClientError::Closed(reason)) => {
            assert!(reason.contains("shutting down"), "{reason}")
        }
        other => assert!(other.is_err(), "{other:?}"),
    }
    assert!(b.log_text().contains("broker stopped"));
}

#[test]
fn run_explains_what_is_missing() {
    let out = Command::new(env!("CARGO_BIN_EXE_gpushare"))
        .args([
            "run",
            "--socket",
            "/nonexistent/gpushare.sock",
            "--",
            "true",
        ])
        .env_remove("GPUSHARE_SHIM_LIB")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("libgpushare_shim.so") || err.contains("no broker socket"),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_gpushare"))
        .args(["status", "--socket", "/nonexistent/gpushare.sock"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach a broker"));
}
