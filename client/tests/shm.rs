//! The shared-memory region: opening checks, single ring ends, staging allocator, reply slots,
//! host buffers.

use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use gpushare_client::os;
use gpushare_client::shm::{
    HostBuffer, ReplyError, SessionState, ShmError, StagingError, StagingSpan,
};
use gpushare_client::wait::{Cancel, WaitError, WaitPolicy};
use gpushare_client::{Region, ShmConfig, ShmLayout};

fn small() -> ShmConfig {
    ShmConfig {
        staging_chunk: 4096,
        staging_chunks: 8,
        reply_slots: 2,
        ..ShmConfig::default()
    }
}

#[test]
fn open_checks_size_seal_and_header() {
    let (region, fd) = Region::create(&small(), false).unwrap();
    let layout = *region.layout();
    let tenant = Region::open(fd.as_fd(), &layout, true).unwrap();
    assert!(tenant.is_open());
    // A layout that differs from the header.
    let other = ShmLayout::compute(&ShmConfig::default()).unwrap();
    assert!(matches!(
        Region::open(fd.as_fd(), &other, false),
        Err(ShmError::SizeMismatch { .. })
    ));
    let mut tampered = layout;
    tampered.staging_offset += 4096;
    assert!(matches!(
        Region::open(fd.as_fd(), &tampered, false),
        Err(ShmError::Layout(_))
    ));
    // A header scribbled on by someone.
    region.mapping().write(0, b"garbage!").unwrap();
    assert!(matches!(
        Region::open(fd.as_fd(), &layout, false),
        Err(ShmError::Layout(_))
    ));
    // An unsealed file of the right size.
    let unsealed = os::memfd_create("x", layout.total_size, false).unwrap();
    assert!(matches!(
        Region::open(unsealed.as_fd(), &layout, false),
        Err(ShmError::NotSealed)
    ));
}

#[test]
fn ring_ends_are_handed_out_once() {
    let (region, _fd) = Region::create(&small(), false).unwrap();
    let _p = region.command_producer().unwrap();
    assert!(matches!(
        region.command_producer(),
        Err(ShmError::AlreadyTaken(_))
    ));
    let _c = region.command_consumer().unwrap();
    let _np = region.notify_producer().unwrap();
    let _nc = region.notify_consumer().unwrap();
    assert!(matches!(
        region.notify_consumer(),
        Err(ShmError::AlreadyTaken(_))
    ));
    assert!(region.stream_slot(255).is_ok());
    assert!(matches!(
        region.stream_slot(256),
        Err(ShmError::BadSlot(256))
    ));
}

#[test]
fn staging_allocates_contiguous_runs() {
    let (region, fd) = Region::create(&small(), false).unwrap();
    let tenant = Region::open(fd.as_fd(), region.layout(), false).unwrap();
    let st = tenant.staging();
    assert_eq!(
        (st.size(), st.chunk_size(), st.chunk_count()),
        (32768, 4096, 8)
    );
    assert!(matches!(st.try_alloc(0), Err(StagingError::ZeroLength)));
    assert!(matches!(
        st.try_alloc(32769),
        Err(StagingError::TooLarge { .. })
    ));
    let a = st.try_alloc(5000).unwrap().unwrap(); // 2 chunks
    let b = st.try_alloc(4096).unwrap().unwrap(); // 1 chunk
    let c = st.try_alloc(4 * 4096).unwrap().unwrap(); // 4 chunks
    assert_eq!(st.chunks_in_use(), 7);
    assert!(st.try_alloc(2 * 4096).unwrap().is_none());
    // Free the middle chunk: a 2-chunk run still does not fit, a 1-chunk one does.
    st.free(b).unwrap();
    assert!(st.try_alloc(2 * 4096).unwrap().is_none());
    let d = st.try_alloc(10).unwrap().unwrap();
    // Bytes written by the tenant are visible to the broker's mapping at the same offset.
    st.write(a.offset, b"staged bytes").unwrap();
    let mut out = [0u8; 12];
    region.staging().read(a.offset, &mut out).unwrap();
    assert_eq!(&out, b"staged bytes");
    assert!(region.staging().check(c.offset, c.len).is_ok());
    assert!(region.staging().check(30000, 4096).is_err());
    assert!(region.staging().ptr(0, 32768).is_ok());
    // Broker-side free of a released span; misaligned and out-of-range spans are refused.
    region.staging().free(c).unwrap();
    assert!(matches!(
        region.staging().free(StagingSpan {
            offset: 100,
            len: 10
        }),
        Err(StagingError::BadSpan { .. })
    ));
    assert!(matches!(
        region.staging().free(StagingSpan {
            offset: 28672,
            len: 8192
        }),
        Err(StagingError::BadSpan { .. })
    ));
    st.free(a).unwrap();
    st.free(d).unwrap();
    assert_eq!(st.chunks_in_use(), 0);
    assert!(st.try_alloc(32768).unwrap().is_some());
}

#[test]
fn staging_hands_out_the_lowest_free_run() {
    let (region, fd) = Region::create(&small(), false).unwrap();
    let tenant = Region::open(fd.as_fd(), region.layout(), false).unwrap();
    let st = tenant.staging();
    // A pipeline of two 2-chunk pieces: each piece freed is the next one handed out, so the
    // pipeline cycles through the same 4 chunks (a next-fit allocator walks all 8).
    let mut spans = [
        st.try_alloc(8192).unwrap().unwrap(),
        st.try_alloc(8192).unwrap().unwrap(),
    ];
    assert_eq!((spans[0].offset, spans[1].offset), (0, 8192));
    for k in 0..6 {
        region.staging().free(spans[k % 2]).unwrap();
        spans[k % 2] = st.try_alloc(8192).unwrap().unwrap();
        assert_eq!(spans[k % 2].offset, 8192 * (k as u64 % 2), "piece {k}");
    }
    // A run that does not fit below a taken chunk is looked for above it.
    st.free(spans[0]).unwrap();
    let one = st.try_alloc(10).unwrap().unwrap();
    let three = st.try_alloc(3 * 4096).unwrap().unwrap();
    assert_eq!((one.offset, three.offset), (0, 4 * 4096));
    assert_eq!(st.chunks_in_use(), 6);
}

#[test]
fn staging_alloc_waits_for_frees() {
    let (region, _fd) = Region::create(&small(), false).unwrap();
    let region = Arc::new(region);
    let st = region.staging();
    let all = st.try_alloc(32768).unwrap().unwrap();
    let st2 = region.staging();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        st2.free(all).unwrap();
    });
    let got = st
        .alloc(
            8192,
            &WaitPolicy::with_spin(Duration::ZERO),
            &Cancel::never(),
        )
        .unwrap();
    assert_eq!(got.len, 8192);
    t.join().unwrap();
    // Cancelled when the session closes.
    let _rest = st.try_alloc(24576).unwrap().unwrap();
    let r2 = Arc::clone(&region);
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        r2.close(SessionState::ClosedByBroker);
    });
    assert!(matches!(
        st.alloc(4096, &WaitPolicy::default(), &region.cancel()),
        Err(StagingError::Wait(WaitError::Cancelled))
    ));
    t.join().unwrap();
}

#[test]
fn reply_slots_claim_complete_wait() {
    let (region, fd) = Region::create(&small(), false).unwrap();
    let tenant = Region::open(fd.as_fd(), region.layout(), false).unwrap();
    let (t, b) = (tenant.replies(), region.replies());
    let s0 = t.try_claim().unwrap();
    let s1 = t.try_claim().unwrap();
    assert_ne!(s0, s1);
    assert!(t.try_claim().is_none());
    assert!(matches!(
        t.claim(Duration::from_millis(5), &Cancel::never()),
        Err(ReplyError::NoFreeSlot)
    ));
    // The broker answers slot 1 from another thread while the tenant sleeps on it.
    let answer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(10));
        b.complete(s1, 77, b"reply bytes").unwrap();
        assert!(matches!(
            b.complete(9, 1, b"x"),
            Err(ReplyError::BadSlot(9))
        ));
        let big = vec![0u8; b.slot_size() + 1];
        assert!(matches!(
            b.complete(s0, 1, &big),
            Err(ReplyError::TooLarge { .. })
        ));
    });
    let mut out = Vec::new();
    t.wait(
        s1,
        77,
        &WaitPolicy::with_spin(Duration::ZERO),
        &Cancel::never(),
        &mut out,
    )
    .unwrap();
    assert_eq!(out, b"reply bytes");
    assert!(t.is_ready(s1, 77));
    answer.join().unwrap();
    // A wait for a ticket that never comes times out.
    let p = WaitPolicy::with_spin(Duration::ZERO).timeout(Duration::from_millis(5));
    assert!(matches!(
        t.wait(s0, 78, &p, &Cancel::never(), &mut out),
        Err(ReplyError::Wait(WaitError::TimedOut))
    ));
    t.release(s0).unwrap();
    t.release(s1).unwrap();
    assert!(t.try_claim().is_some());
}

#[test]
fn host_buffers_must_be_sealed() {
    let buf = HostBuffer::create(1 << 16, false).unwrap();
    assert_eq!(buf.len(), 1 << 16);
    let dup = buf.fd().try_clone_to_owned().unwrap();
    let opened = HostBuffer::open(dup, 1 << 16).unwrap();
    buf.mapping().write(10, b"abc").unwrap();
    let mut out = [0u8; 3];
    opened.mapping().read(10, &mut out).unwrap();
    assert_eq!(&out, b"abc");
    let dup = buf.fd().try_clone_to_owned().unwrap();
    assert!(matches!(
        HostBuffer::open(dup, 1 << 17),
        Err(ShmError::SizeMismatch { .. })
    ));
    let unsealed = os::memfd_create("x", 1 << 16, false).unwrap();
    assert!(matches!(
        HostBuffer::open(unsealed, 1 << 16),
        Err(ShmError::NotSealed)
    ));
}

#[test]
fn close_wakes_sleepers_promptly() {
    let (region, _fd) = Region::create(&small(), false).unwrap();
    let region = Arc::new(region);
    let slot = region.stream_slot(4).unwrap();
    let cancel = region.cancel();
    let r2 = Arc::clone(&region);
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(10));
        r2.close(SessionState::ClosedByTenant);
    });
    let policy = WaitPolicy {
        spin: Duration::ZERO,
        timeout: None,
        slice: Duration::from_secs(3600),
    };
    let start = std::time::Instant::now();
    assert!(matches!(
        slot.wait_until_or(|v| v == 1, &policy, || cancel.is_cancelled()),
        Err(WaitError::Cancelled)
    ));
    assert!(start.elapsed() < Duration::from_secs(60));
    t.join().unwrap();
    assert_eq!(
        region.session_state().load(),
        SessionState::ClosedByTenant as u64
    );
    assert_eq!(region.async_error().compare_publish(0, 700), Ok(()));
    assert_eq!(region.async_error().compare_publish(0, 719), Err(700));
}
