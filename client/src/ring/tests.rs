//! Unit tests of the ring: wraparound, backpressure, corruption handling, record round trips.

use super::record::*;
use super::*;

const CAP: u64 = 64 << 10;

fn ring(cap: u64) -> (Arc<Mapping>, RingGeometry) {
    let map = Arc::new(Mapping::anonymous(4096 + cap as usize).unwrap());
    let g = RingGeometry {
        ctl: 0,
        data: 4096,
        capacity: cap,
    };
    (map, g)
}

fn launch(params: &[u8], tag: u64) -> Command<'_> {
    Command::Launch(Launch {
        function: tag,
        stream: tag ^ 0xFF,
        grid: [1, 2, 3],
        block: [32, 1, 1],
        shared_mem_bytes: 128,
        params,
    })
}

pub(crate) fn all_kinds(params: &[u8]) -> Vec<Command<'_>> {
    let host = CopyHost {
        stream: 7,
        device_ptr: 0x7000_0000,
        host_offset: 4096,
        len: 1 << 20,
        host_region: 0,
        flags: COPY_RELEASE_STAGING,
    };
    vec![
        launch(params, 1),
        Command::MemcpyHtoD(host),
        Command::MemcpyDtoH(CopyHost {
            host_region: 3,
            ..host
        }),
        Command::MemcpyDtoD(CopyDevice {
            stream: 1,
            dst: 2,
            src: 3,
            len: 4,
        }),
        Command::Memset(Memset {
            stream: 0,
            dst: 0x1000,
            pitch: 0,
            width: 100,
            height: 1,
            value: 0xDEAD_BEEF,
            element_size: 4,
        }),
        Command::WriteValue(WriteValue {
            stream: 5,
            addr: 0x2000,
            value: 0xFEED,
            size: 4,
            flags: 1,
        }),
        Command::StreamedCopy(StreamedCopy {
            stream: 6,
            device_ptr: 0x7000_0000,
            channel: 8192,
            len: 64 << 20,
            first_piece: 3,
            host_region: 0,
            flags: STREAMED_HTOD,
        }),
        Command::EventRecord(EventRecord {
            event: 9,
            stream: 8,
            flags: 0,
            reserved: 0,
        }),
        Command::StreamWaitEvent(StreamWait {
            stream: 8,
            event: 9,
            flags: 0,
            reserved: 0,
        }),
        Command::HostFn(HostFn {
            stream: 8,
            token: 77,
        }),
        Command::HostFnDone(HostFnDone { token: 77 }),
        Command::Call(Call {
            ticket: 5,
            slot: 2,
            payload: params,
        }),
    ]
    .into_iter()
    .chain(notify_kinds())
    .collect()
}

/// One record of each notify-ring kind.
fn notify_kinds() -> [Command<'static>; 3] {
    [
        Command::HostFnReady(HostFnReady {
            stream: 8,
            token: 77,
            seq: 12,
        }),
        Command::AsyncError(AsyncError {
            seq: 13,
            code: 700,
            reserved: 0,
        }),
        Command::OpDone(OpDone {
            seq: 14,
            device_ns: 123_456,
        }),
    ]
}

#[test]
fn every_record_kind_round_trips() {
    for params in [&[][..], &[1u8, 2, 3][..], &[0xAB; 4096][..]] {
        for cmd in all_kinds(params) {
            let bytes = cmd.to_vec().unwrap();
            assert_eq!(bytes.len(), cmd.encoded_len());
            assert_eq!(bytes.len() % RECORD_ALIGN, 0);
            assert_eq!(Command::decode(&bytes).unwrap(), cmd);
            // Any truncation or extension is rejected.
            assert!(Command::decode(&bytes[..bytes.len() - 8]).is_err());
            let mut longer = bytes.clone();
            longer.extend_from_slice(&[0; 8]);
            assert!(Command::decode(&longer).is_err());
        }
    }
    // A 64-byte launch record: header 8 + launch header 48 + 8 parameter bytes.
    assert_eq!(launch(&[0; 8], 0).encoded_len(), 64);
}

#[test]
fn every_declared_kind_has_a_sample_that_round_trips() {
    let params = [1u8, 2, 3, 4, 5];
    let samples = all_kinds(&params);
    assert_eq!(
        samples.len(),
        KINDS.len() - 1,
        "one sample per declared kind (PAD aside)"
    );
    for k in KINDS.iter().filter(|k| k.value != kind::PAD) {
        let cmd = samples
            .iter()
            .find(|c| c.kind() == k.value)
            .unwrap_or_else(|| panic!("no sample of {} in all_kinds(): add one", k.name));
        let fixed = k.fixed.expect("every command kind has a fixed part");
        let var = if k.variable.is_some() {
            params.len()
        } else {
            0
        };
        let bytes = cmd.to_vec().unwrap();
        assert_eq!(
            bytes.len(),
            align_record(8 + fixed.size + var),
            "{}",
            k.name
        );
        assert_eq!(RecordHeader::read_from(&bytes).unwrap().kind, k.value);
        assert_eq!(Command::decode(&bytes).unwrap(), *cmd, "{}", k.name);
    }
}

/// Size of a fixed-layout field type as `FIELDS` names it.
fn field_size(ty: &str) -> usize {
    match ty {
        "u16" => 2,
        "u32" | "i32" => 4,
        "u64" | "i64" => 8,
        "[u32; 3]" => 12,
        other => panic!("field type {other} unknown to this test"),
    }
}

#[test]
fn every_declared_kind_decodes_arbitrary_fixed_parts_and_encodes_them_back() {
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for k in KINDS.iter().filter(|k| k.value != kind::PAD) {
        let fixed = k.fixed.unwrap();
        for round in 0..64 {
            let var_len = if k.variable.is_some() { round * 3 } else { 0 };
            let len = align_record(8 + fixed.size + var_len);
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            RecordHeader {
                len: len as u32,
                kind: k.value,
                flags: 0,
            }
            .write_to(&mut bytes);
            if let Some(v) = k.variable {
                let mut at = 8;
                for (name, ty) in fixed.fields {
                    if *name == v.len_field {
                        bytes[at..at + 4].copy_from_slice(&(var_len as u32).to_le_bytes());
                    }
                    at += field_size(ty);
                }
            }
            bytes[8 + fixed.size + var_len..].fill(0);
            match Command::decode(&bytes) {
                Ok(cmd) => {
                    assert_eq!(cmd.kind(), k.value);
                    assert_eq!(cmd.variable().len(), var_len);
                    assert_eq!(cmd.to_vec().unwrap(), bytes, "{} re-encodes", k.name);
                }
                Err(e) => assert!(
                    k.check.is_some()
                        && matches!(
                            e,
                            RecordError::BadElementSize(_) | RecordError::BadStreamedCopy(_)
                        ),
                    "{}: {e}",
                    k.name
                ),
            }
        }
    }
}

#[test]
fn protocol_md_has_the_declared_record_kinds() {
    crate::doc_tables::check(
        "record-kinds",
        &kind_table(KINDS),
        "client/src/ring/record.rs",
    );
}

#[test]
fn malformed_records_are_errors() {
    assert_eq!(Command::decode(&[0; 4]), Err(RecordError::Short(4)));
    let mut unknown = launch(&[], 1).to_vec().unwrap();
    unknown[4] = 200;
    assert_eq!(
        Command::decode(&unknown),
        Err(RecordError::UnknownKind(200))
    );
    let mut big = launch(&[], 1).to_vec().unwrap();
    // param_len is the last u32 of the launch header.
    big[8 + 44..8 + 48].copy_from_slice(&5000u32.to_le_bytes());
    assert_eq!(
        Command::decode(&big),
        Err(RecordError::ParamsTooLarge(5000))
    );
    let mut memset = all_kinds(&[])[4].to_vec().unwrap();
    memset[8 + 44..8 + 48].copy_from_slice(&3u32.to_le_bytes());
    assert_eq!(
        Command::decode(&memset),
        Err(RecordError::BadElementSize(3))
    );
    let too_many = [0u8; MAX_PARAM_BYTES + 1];
    assert!(matches!(
        launch(&too_many, 1).to_vec(),
        Err(RecordError::ParamsTooLarge(_))
    ));
}

#[test]
fn wraparound_with_variable_sizes() {
    let (map, g) = ring(CAP);
    let mut p = Producer::new(Arc::clone(&map), g).unwrap();
    let mut c = Consumer::new(map, g).unwrap();
    let mut buf = RecordBuf::new();
    let mut rng = 0x1234_5678_9ABC_DEF0u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut pushed = std::collections::VecDeque::new();
    let mut total = 0u64;
    for i in 0..20_000u64 {
        let n = (next() % 600) as usize;
        let params: Vec<u8> = (0..n).map(|k| (k as u64 ^ i) as u8).collect();
        match p.try_push(&launch(&params, i)).unwrap() {
            Some(seq) => {
                total += launch(&params, i).encoded_len() as u64;
                pushed.push_back((seq, i, params));
            }
            None => {
                // Full: drain a few and retry later.
                for _ in 0..(next() % 8 + 1) {
                    let Some(got) = c.try_pop(&mut buf).unwrap() else {
                        break;
                    };
                    let (seq, tag, params) = pushed.pop_front().unwrap();
                    assert_eq!(got.seq, seq);
                    assert_eq!(got.cmd, launch(&params, tag));
                }
            }
        }
        if next() % 3 == 0 {
            if let Some(got) = c.try_pop(&mut buf).unwrap() {
                let (seq, tag, params) = pushed.pop_front().unwrap();
                assert_eq!(got.seq, seq);
                assert_eq!(got.cmd, launch(&params, tag));
            }
        }
    }
    while let Some(got) = c.try_pop(&mut buf).unwrap() {
        let (seq, tag, params) = pushed.pop_front().unwrap();
        assert_eq!((got.seq, got.cmd), (seq, launch(&params, tag)));
    }
    assert!(pushed.is_empty());
    assert!(total > 10 * CAP, "the ring wrapped many times");
    assert_eq!(p.seq(), c.seq());
}

#[test]
fn full_ring_applies_backpressure() {
    let (map, g) = ring(CAP);
    let mut p = Producer::new(Arc::clone(&map), g).unwrap();
    let mut c = Consumer::new(Arc::clone(&map), g).unwrap();
    let params = [7u8; 4000];
    let mut n = 0;
    while p.try_push(&launch(&params, n)).unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, CAP / 4056);
    // A blocking push waits until the consumer (another thread) frees room.
    let t = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut buf = RecordBuf::new();
        let mut seen = 0;
        while seen < n + 1 {
            let got = c.pop(&mut buf).unwrap();
            assert_eq!(got.cmd, launch(&params, seen));
            seen += 1;
        }
    });
    let seq = p.push(&launch(&params, n)).unwrap();
    assert_eq!(seq, n + 1);
    t.join().unwrap();
}

#[test]
fn blocking_push_is_cancelled() {
    let (map, g) = ring(CAP);
    let mut p = Producer::new(map, g).unwrap();
    let params = [0u8; 4000];
    while p.try_push(&launch(&params, 0)).unwrap().is_some() {}
    let state = SeqWord::standalone().unwrap();
    state.publish(1);
    p.set_wait(
        WaitPolicy::with_spin(std::time::Duration::ZERO),
        Cancel::unless(state.clone(), 1),
    );
    let s2 = state.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(10));
        s2.publish(2);
    });
    assert!(matches!(
        p.push(&launch(&params, 0)),
        Err(RingError::Wait(WaitError::Cancelled))
    ));
    t.join().unwrap();
}

#[test]
fn corrupt_positions_and_records_are_detected() {
    let (map, g) = ring(CAP);
    let mut p = Producer::new(Arc::clone(&map), g).unwrap();
    let mut c = Consumer::new(Arc::clone(&map), g).unwrap();
    let mut buf = RecordBuf::new();
    p.push(&launch(&[1, 2, 3], 1)).unwrap();
    // Corrupt the kind of the record in place: consumed, reported with its sequence number.
    map.write(4096 + 4, &99u16.to_le_bytes()).unwrap();
    match c.try_pop(&mut buf) {
        Err(RingError::Record { seq: 1, source }) => {
            assert_eq!(source, RecordError::UnknownKind(99))
        }
        other => panic!("unexpected {other:?}"),
    }
    // A bad length field.
    p.push(&launch(&[1, 2, 3], 2)).unwrap();
    let off = 4096 + (c.pos & (CAP - 1)) as usize;
    map.write(off, &12u32.to_le_bytes()).unwrap();
    assert!(matches!(
        c.try_pop(&mut buf),
        Err(RingError::Corrupt { .. })
    ));
    // A head far beyond the tail.
    let head = SeqWord::at(&map, 0).unwrap();
    head.publish(u64::MAX / 2);
    assert!(matches!(
        c.try_pop(&mut buf),
        Err(RingError::Corrupt { .. })
    ));
    // A tail ahead of the head, seen by the producer.
    let tail = SeqWord::at(&map, 64).unwrap();
    tail.publish(u64::MAX / 2);
    let params = [0u8; 4000];
    let mut res = Ok(Some(0));
    for _ in 0..100 {
        res = p.try_push(&launch(&params, 0));
        if res.is_err() {
            break;
        }
    }
    assert!(matches!(res, Err(RingError::Corrupt { .. })));
}

#[test]
fn bad_geometry_is_rejected() {
    let (map, g) = ring(CAP);
    for bad in [
        RingGeometry {
            capacity: CAP / 2,
            ..g
        },
        RingGeometry {
            capacity: CAP * 2,
            ..g
        },
        RingGeometry { ctl: 8, ..g },
        RingGeometry {
            capacity: CAP + 8,
            ..g
        },
    ] {
        assert!(matches!(
            Producer::new(Arc::clone(&map), bad),
            Err(RingError::Geometry(_))
        ));
    }
}
