//! The ring and wake-ups under concurrency: two threads, two processes over a memfd, futex
//! wake-ups across processes, spin-then-block correctness.

mod common;

use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use gpushare_client::handshake::{broker_handshake, client_handshake};
use gpushare_client::proto::{Hello, Welcome, PROTOCOL_VERSION};
use gpushare_client::ring::record::{CopyDevice, HostFnDone, Launch};
use gpushare_client::ring::{Command, Producer, RecordBuf};
use gpushare_client::wait::{SeqWord, WaitPolicy};
use gpushare_client::{Region, ShmConfig};

const END_TOKEN: u64 = 0xE0D0_E0D0;
/// Ping-pong rounds per phase across processes.
const ROUNDS: u64 = 300;

/// The i-th test record: launches with 0..200 parameter bytes and device copies, all derived
/// from `i` so the consumer can check every field.
fn record(i: u64, params: &mut Vec<u8>) -> Command<'_> {
    if i % 5 == 4 {
        return Command::MemcpyDtoD(CopyDevice {
            stream: i % 7,
            dst: i.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            src: !i,
            len: i << 3,
        });
    }
    params.clear();
    params.extend((0..(i % 200)).map(|k| (k ^ i) as u8));
    Command::Launch(Launch {
        function: i,
        stream: i % 7,
        grid: [i as u32, 1, 2],
        block: [32, (i >> 32) as u32, 1],
        shared_mem_bytes: (i % 4096) as u32,
        params,
    })
}

fn fnv(h: &mut u64, bytes: &[u8]) {
    for &b in bytes {
        *h = (*h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3);
    }
}

fn produce(p: &mut Producer, n: u64) -> u64 {
    let mut sum = 0xCBF2_9CE4_8422_2325u64;
    let mut params = Vec::new();
    for i in 0..n {
        let cmd = record(i, &mut params);
        fnv(&mut sum, &cmd.to_vec().unwrap());
        assert_eq!(p.push(&cmd).unwrap(), i + 1);
    }
    p.push(&Command::HostFnDone(HostFnDone { token: END_TOKEN }))
        .unwrap();
    sum
}

/// Consumes until the end marker, checking every record against `record(seq - 1)`.
fn consume(region: &Region) -> (u64, u64) {
    let mut c = region.command_consumer().unwrap();
    let mut buf = RecordBuf::new();
    let mut sum = 0xCBF2_9CE4_8422_2325u64;
    let mut params = Vec::new();
    let mut n = 0;
    loop {
        let got = c.pop(&mut buf).unwrap();
        if got.cmd == Command::HostFnDone(HostFnDone { token: END_TOKEN }) {
            return (n, sum);
        }
        let expected = record(got.seq - 1, &mut params);
        assert_eq!(got.cmd, expected, "record #{}", got.seq);
        fnv(&mut sum, &got.cmd.to_vec().unwrap());
        n += 1;
    }
}

#[test]
fn two_threads_one_million_records() {
    let (region, _fd) = Region::create(&ShmConfig::default(), true).unwrap();
    let region = Arc::new(region);
    let mut p = region.command_producer().unwrap();
    let r2 = Arc::clone(&region);
    let consumer = std::thread::spawn(move || consume(&r2));
    let sent = produce(&mut p, 1_000_000);
    let (n, got) = consumer.join().unwrap();
    assert_eq!(n, 1_000_000);
    assert_eq!(got, sent);
}

fn welcome(region: &Region) -> Welcome {
    Welcome {
        protocol_version: PROTOCOL_VERSION,
        session_id: 9,
        shm: Some(*region.layout()),
        driver_version: 12090,
        devices: vec![],
        broker_version: "test".into(),
    }
}

/// Child side: a tenant that maps the region it gets in the handshake.
#[test]
fn child_main() {
    let Some((role, sock)) = child_role() else {
        return;
    };
    let mut s = connect_retry(&sock);
    let (w, fd) = client_handshake(&mut s, &Hello::tenant(role.clone())).unwrap();
    let region = Region::open(fd.unwrap().as_fd(), &w.shm.unwrap(), false).unwrap();
    match role.as_str() {
        "producer" => {
            let mut p = region.command_producer().unwrap();
            let sum = produce(&mut p, 200_000);
            // Wait (futex only) for the parent's verdict: the checksum it computed.
            let verdict = region.stream_slot(1).unwrap();
            let got = verdict
                .wait_until(|v| v != 0, &WaitPolicy::with_spin(Duration::ZERO))
                .unwrap();
            assert_eq!(got, sum);
        }
        "pingpong" => {
            let (ping, pong) = (
                region.stream_slot(2).unwrap(),
                region.stream_slot(3).unwrap(),
            );
            for (phase, spin) in [(0u64, Duration::ZERO), (1, Duration::from_micros(20))] {
                let policy = WaitPolicy::with_spin(spin);
                let (rounds, base) = (ROUNDS, phase * ROUNDS);
                for i in 1..=rounds {
                    ping.wait_until(|v| v >= base + i, &policy).unwrap();
                    pong.publish(base + i);
                }
            }
        }
        other => panic!("unknown role {other}"),
    }
}

fn spawn_tenant(role: &str) -> (Arc<Region>, std::process::Child, std::path::PathBuf) {
    let path = socket_path(role);
    let listener = UnixListener::bind(&path).unwrap();
    let child = spawn_child("child_main", role, &path);
    let (mut s, _) = listener.accept().unwrap();
    let mut region = None;
    broker_handshake(&mut s, |_| {
        let (r, fd) = Region::create(&ShmConfig::default(), false).map_err(|e| e.to_string())?;
        let w = welcome(&r);
        region = Some(r);
        Ok((w, Some(fd)))
    })
    .unwrap();
    (Arc::new(region.unwrap()), child, path)
}

#[test]
fn two_processes_over_a_memfd() {
    let (region, mut child, path) = spawn_tenant("producer");
    let (n, sum) = consume(&region);
    assert_eq!(n, 200_000);
    region.stream_slot(1).unwrap().publish(sum);
    assert!(child.wait().unwrap().success(), "child failed");
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn futex_wakeup_across_processes() {
    let (region, mut child, path) = spawn_tenant("pingpong");
    let (ping, pong) = (
        region.stream_slot(2).unwrap(),
        region.stream_slot(3).unwrap(),
    );
    for (phase, spin) in [(0u64, Duration::ZERO), (1, Duration::from_micros(20))] {
        let policy = WaitPolicy::with_spin(spin).timeout(Duration::from_secs(30));
        let (rounds, base) = (ROUNDS, phase * ROUNDS);
        for i in 1..=rounds {
            ping.publish(base + i);
            assert_eq!(
                pong.wait_until(|v| v >= base + i, &policy).unwrap(),
                base + i
            );
        }
    }
    assert!(child.wait().unwrap().success(), "child failed");
    assert!(!ping.has_waiters() && !pong.has_waiters());
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

/// Round trips through the spin path and the futex path; prints timings, asserts only values.
#[test]
fn spin_then_block_sanity() {
    let ping = SeqWord::standalone().unwrap();
    let pong = SeqWord::standalone().unwrap();
    for (label, spin, pause) in [
        ("spin", Duration::from_micros(200), Duration::ZERO),
        ("futex", Duration::ZERO, Duration::ZERO),
        (
            "spin-then-block",
            Duration::from_micros(20),
            Duration::from_micros(300),
        ),
    ] {
        let (p2, q2) = (ping.clone(), pong.clone());
        let policy = WaitPolicy::with_spin(spin);
        let rounds = 2000u64;
        let echo = std::thread::spawn(move || {
            for i in 1..=rounds {
                let v = p2.wait_until(|v| v >= i, &policy).unwrap();
                assert_eq!(v, i);
                q2.publish(i);
            }
        });
        let start = Instant::now();
        for i in 1..=rounds {
            if !pause.is_zero() && i % 100 == 0 {
                std::thread::sleep(pause);
            }
            ping.publish(i);
            assert_eq!(pong.wait_until(|v| v >= i, &policy).unwrap(), i);
        }
        echo.join().unwrap();
        eprintln!(
            "{label}: {:.1} µs per round trip (mean, debug/release as built)",
            start.elapsed().as_secs_f64() * 1e6 / rounds as f64
        );
        ping.publish(0);
        pong.publish(0);
    }
    assert!(!ping.has_waiters() && !pong.has_waiters());
}
