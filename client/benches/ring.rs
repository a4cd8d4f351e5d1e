//! Ring and wake-up figures (prints them; no harness).
//!
//! `cargo bench -p gpushare-client --bench ring`
//!
//! - producer append cost per 64-byte launch record (median over batches of 1000): alone (the
//!   consumer drains between batches) and with a consumer thread draining concurrently;
//! - one-way wake-up latency between two threads, spin hit and futex path (p50/p99);
//! - round trip between two threads (ping-pong of two words), spin and futex (p50/p99);
//! - a synchronous call through `Client::call` (CALL record + reply slot) to a broker thread,
//!   spin and futex (p50/p99).

use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gpushare_client::handshake::broker_handshake;
use gpushare_client::proto::{
    self, Hello, Reply, ReplyEnvelope, Request, RequestEnvelope, Welcome,
};
use gpushare_client::ring::record::{HostFnDone, Launch};
use gpushare_client::ring::{Command, RecordBuf};
use gpushare_client::wait::{SeqWord, WaitPolicy};
use gpushare_client::{Client, ClientOptions, Region, ShmConfig, PROTOCOL_VERSION};

const PARAMS: [u8; 8] = [0; 8];

fn launch(i: u64) -> Command<'static> {
    Command::Launch(Launch {
        function: i,
        stream: 0,
        grid: [64, 1, 1],
        block: [256, 1, 1],
        shared_mem_bytes: 0,
        params: &PARAMS,
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(label: &str, mut samples: Vec<f64>, unit: &str) {
    samples.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{label:<52} p50 {:>8.2} {unit}  p99 {:>8.2} {unit}  (n={})",
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        samples.len()
    );
}

fn append_cost() {
    assert_eq!(launch(0).encoded_len(), 64);
    const BATCH: u64 = 1000;
    // Alone: time a batch, drain it untimed in the same thread.
    let (region, _fd) = Region::create(&ShmConfig::default(), true).unwrap();
    let mut p = region.command_producer().unwrap();
    let mut c = region.command_consumer().unwrap();
    let mut buf = RecordBuf::new();
    let mut samples = Vec::new();
    for b in 0..3000u64 {
        let t = Instant::now();
        for i in 0..BATCH {
            p.push(&launch(b * BATCH + i)).unwrap();
        }
        samples.push(t.elapsed().as_nanos() as f64 / BATCH as f64);
        while c.try_pop(&mut buf).unwrap().is_some() {}
    }
    report(
        "append 64-byte launch, consumer idle (ns/record)",
        samples,
        "ns",
    );

    // With a consumer thread draining concurrently (spinning, then sleeping when empty).
    let (region, _fd) = Region::create(&ShmConfig::default(), true).unwrap();
    let region = Arc::new(region);
    let mut p = region.command_producer().unwrap();
    let r2 = Arc::clone(&region);
    let consumer = std::thread::spawn(move || {
        let mut c = r2.command_consumer().unwrap();
        let mut buf = RecordBuf::new();
        let mut n = 0u64;
        loop {
            match c.pop(&mut buf).unwrap().cmd {
                Command::HostFnDone(HostFnDone { token: u64::MAX }) => return n,
                _ => n += 1,
            }
        }
    });
    let mut samples = Vec::new();
    for b in 0..3000u64 {
        let t = Instant::now();
        for i in 0..BATCH {
            p.push(&launch(b * BATCH + i)).unwrap();
        }
        samples.push(t.elapsed().as_nanos() as f64 / BATCH as f64);
    }
    // An end marker stops the consumer once it has drained everything.
    p.push(&Command::HostFnDone(HostFnDone { token: u64::MAX }))
        .unwrap();
    let n = consumer.join().unwrap();
    assert_eq!(n, 3000 * BATCH);
    report(
        "append 64-byte launch, consumer draining (ns/record)",
        samples,
        "ns",
    );
}

/// One-way latency: the publisher stores a timestamp; the waiter records "now - timestamp" when
/// it wakes, then acknowledges (untimed) so every publish is measured exactly once.
fn one_way(label: &str, spin: Duration) {
    let word = SeqWord::standalone().unwrap();
    let ack = SeqWord::standalone().unwrap();
    let base = Instant::now();
    const N: u64 = 3000;
    let (w2, a2) = (word.clone(), ack.clone());
    let waiter = std::thread::spawn(move || {
        let policy = WaitPolicy::with_spin(spin);
        let mut last = 0;
        let mut lat = Vec::new();
        for i in 1..=N {
            let v = w2.wait_until(|v| v != last, &policy).unwrap();
            let now = base.elapsed().as_nanos() as u64;
            lat.push(now.saturating_sub(v) as f64 / 1000.0);
            last = v;
            a2.publish(i);
        }
        lat
    });
    let ack_policy = WaitPolicy::with_spin(Duration::from_millis(1));
    for i in 1..=N {
        if spin.is_zero() {
            // Make sure the waiter is asleep in the kernel before publishing.
            while !word.has_waiters() {
                std::thread::yield_now();
            }
            std::thread::sleep(Duration::from_micros(20));
        } else {
            // Publish while the waiter is inside its spin budget.
            let t = Instant::now();
            while t.elapsed() < Duration::from_micros(2) {
                std::hint::spin_loop();
            }
        }
        word.publish(base.elapsed().as_nanos() as u64);
        ack.wait_until(|v| v >= i, &ack_policy).unwrap();
    }
    report(label, waiter.join().unwrap(), "µs");
}

fn round_trip(label: &str, spin: Duration) {
    let ping = SeqWord::standalone().unwrap();
    let pong = SeqWord::standalone().unwrap();
    let (p2, q2) = (ping.clone(), pong.clone());
    const N: u64 = 3000;
    let policy = WaitPolicy::with_spin(spin);
    let echo = std::thread::spawn(move || {
        for i in 1..=N {
            p2.wait_until(|v| v >= i, &policy).unwrap();
            q2.publish(i);
        }
    });
    let mut samples = Vec::new();
    for i in 1..=N {
        let t = Instant::now();
        ping.publish(i);
        pong.wait_until(|v| v >= i, &policy).unwrap();
        samples.push(t.elapsed().as_nanos() as f64 / 1000.0);
    }
    echo.join().unwrap();
    report(label, samples, "µs");
}

fn sync_call(label: &str, spin: Duration) {
    let (a, b) = UnixStream::pair().unwrap();
    let broker = std::thread::spawn(move || {
        let mut b = b;
        let mut region = None;
        broker_handshake(&mut b, |_| {
            let (r, fd) =
                Region::create(&ShmConfig::default(), false).map_err(|e| e.to_string())?;
            let w = Welcome {
                protocol_version: PROTOCOL_VERSION,
                session_id: 1,
                shm: Some(*r.layout()),
                driver_version: 12090,
                devices: vec![],
                broker_version: "bench".into(),
            };
            region = Some(r);
            Ok((w, Some(fd)))
        })
        .unwrap();
        let region = region.unwrap();
        let mut c = region.command_consumer().unwrap();
        c.set_wait(WaitPolicy::with_spin(spin), region.cancel());
        let replies = region.replies();
        let mut buf = RecordBuf::new();
        while let Ok(p) = c.pop(&mut buf) {
            if let Command::Call(call) = p.cmd {
                let env: RequestEnvelope = proto::decode(call.payload).unwrap();
                let reply = proto::encode(&ReplyEnvelope::ok(env.id, Reply::Pong)).unwrap();
                replies.complete(call.slot, call.ticket, &reply).unwrap();
            }
        }
    });
    let options = ClientOptions {
        wait: WaitPolicy::with_spin(spin),
        ..ClientOptions::default()
    };
    let client = Client::from_stream(a, &Hello::tenant("bench"), options).unwrap();
    let mut samples = Vec::new();
    for i in 0..3000 {
        let t = Instant::now();
        let r = client.call(Request::Ping).unwrap();
        let dt = t.elapsed();
        assert_eq!(r.body, Reply::Pong);
        if i >= 100 {
            samples.push(dt.as_nanos() as f64 / 1000.0);
        }
    }
    client.goodbye("done").unwrap();
    broker.join().unwrap();
    report(label, samples, "µs");
}

fn main() {
    // `cargo bench` passes `--bench`; under `cargo test --benches` (no flag) do nothing.
    if !std::env::args().any(|a| a == "--bench") {
        println!("run with `cargo bench -p gpushare-client --bench ring`");
        return;
    }
    println!(
        "gpushare-client ring benchmark ({} CPUs)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    append_cost();
    one_way(
        "one-way wake-up, spin hit (200 µs budget)",
        Duration::from_micros(200),
    );
    one_way("one-way wake-up, futex (waiter asleep)", Duration::ZERO);
    round_trip(
        "round trip, both spinning (20 µs budget)",
        Duration::from_micros(20),
    );
    round_trip("round trip, futex only (spin 0)", Duration::ZERO);
    sync_call(
        "Client::call(Ping) via ring + reply slot, spin 20 µs",
        Duration::from_micros(20),
    );
    sync_call(
        "Client::call(Ping) via ring + reply slot, spin 0",
        Duration::ZERO,
    );
}
