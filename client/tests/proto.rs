//! Control protocol: round trips of every message, robustness of every decoder against arbitrary
//! bytes, frame errors.

mod common;

use common::*;
use gpushare_client::frame::{self, decode_frame, encode_frame, split_frame, FrameError};
use gpushare_client::proto::*;
use gpushare_client::ring::Command;
use gpushare_client::shm::{ShmConfig, ShmLayout};
use proptest::prelude::*;

fn round_trip<T>(msg: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let bytes = encode(msg).unwrap();
    let back: T = decode(&bytes).unwrap();
    assert_eq!(&back, msg);
    // Through a frame as well.
    let framed = encode_frame(&bytes).unwrap();
    let back: T = decode_frame(&framed).unwrap();
    assert_eq!(&back, msg);
    // Every strict prefix fails to decode (no panic, an error).
    for cut in 0..bytes.len() {
        assert!(
            decode::<T>(&bytes[..cut]).is_err(),
            "prefix {cut} of {msg:?}"
        );
    }
    // Trailing bytes are an error.
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(
        decode::<T>(&longer),
        Err(ProtoError::TrailingBytes(1))
    ));
}

fn welcome() -> Welcome {
    Welcome {
        protocol_version: PROTOCOL_VERSION,
        session_id: 77,
        shm: Some(ShmLayout::compute(&ShmConfig::default()).unwrap()),
        driver_version: 12090,
        devices: vec![device()],
        broker_version: "0.1.0".into(),
    }
}

#[test]
fn every_request_round_trips() {
    let reqs = all_requests();
    let mut seen = [false; REQUEST_VARIANTS];
    for (i, body) in reqs.into_iter().enumerate() {
        seen[request_index(&body)] = true;
        let env = RequestEnvelope {
            id: i as u64 + 1,
            fence: 1000 + i as u64,
            body,
        };
        round_trip(&env);
        let msg = ClientMessage::Request(env.clone());
        round_trip(&msg);
        assert_eq!(peek_request_id(&encode(&msg).unwrap()), Some(env.id));
        assert_eq!(peek_envelope_id(&encode(&env).unwrap()), Some(env.id));
    }
    assert!(seen.iter().all(|&s| s), "a Request variant has no sample");
}

#[test]
fn every_reply_round_trips() {
    let mut seen = [false; REPLY_VARIANTS];
    for (i, body) in all_replies().into_iter().enumerate() {
        seen[reply_index(&body)] = true;
        let env = ReplyEnvelope::ok(i as u64, body);
        round_trip(&env);
        round_trip(&BrokerMessage::Reply(env));
    }
    assert!(seen.iter().all(|&s| s), "a Reply variant has no sample");
    let err = ReplyEnvelope::error(9, gpushare_client::code::ERROR_OUT_OF_MEMORY);
    assert!(!err.is_ok());
    assert_eq!(err.clone().into_result(), Err(2));
    round_trip(&err);
}

#[test]
fn handshake_and_session_messages_round_trip() {
    round_trip(&ClientMessage::Hello(Hello::tenant("llama")));
    round_trip(&ClientMessage::Hello(Hello::admin("gpusharectl")));
    round_trip(&ClientMessage::Goodbye {
        reason: "exit".into(),
    });
    round_trip(&BrokerMessage::Welcome(welcome()));
    round_trip(&BrokerMessage::Welcome(Welcome {
        shm: None,
        ..welcome()
    }));
    round_trip(&BrokerMessage::Rejected {
        reason: "no".into(),
    });
    round_trip(&BrokerMessage::Goodbye {
        reason: "shutdown".into(),
    });
    let hello = encode(&ClientMessage::Hello(Hello::tenant("x"))).unwrap();
    assert_eq!(peek_hello_version(&hello), Some(PROTOCOL_VERSION));
    assert_eq!(peek_request_id(&hello), None);
    assert_eq!(device().attribute(75), Some(75));
    assert_eq!(device().attribute(-1), None);
    assert_eq!(device().attribute(1000), None);
}

#[test]
fn version_check_is_readable() {
    assert!(check_version(PROTOCOL_VERSION).is_ok());
    let reason = check_version(PROTOCOL_VERSION + 1).unwrap_err();
    assert!(reason.contains("protocol version mismatch"), "{reason}");
    assert!(reason.contains(&(PROTOCOL_VERSION + 1).to_string()));
    assert!(check_version(0).is_err());
}

#[test]
fn frame_errors_are_distinct() {
    let payload = encode(&ClientMessage::Hello(Hello::tenant("t"))).unwrap();
    let framed = encode_frame(&payload).unwrap();
    // Truncated anywhere: prefix or payload.
    for cut in 0..framed.len() {
        match decode_frame::<ClientMessage>(&framed[..cut]) {
            Err(FrameError::Truncated { expected, got }) => {
                assert_eq!(got, cut);
                assert!(expected > cut);
            }
            other => panic!("cut {cut}: {other:?}"),
        }
        assert!(split_frame(&framed[..cut]).unwrap().is_none());
    }
    // Oversized prefix: rejected before reading a payload.
    let mut big = ((MAX_FRAME + 1) as u32).to_le_bytes().to_vec();
    big.extend_from_slice(&[0; 16]);
    assert!(matches!(
        decode_frame::<ClientMessage>(&big),
        Err(FrameError::Oversized { len, .. }) if len == MAX_FRAME + 1
    ));
    assert!(matches!(
        encode_frame(&vec![0; MAX_FRAME + 1]),
        Err(FrameError::Oversized { .. })
    ));
    // Malformed payload in a complete frame.
    let bad = encode_frame(&[0xFF, 0xFF, 0xFF]).unwrap();
    assert!(matches!(
        decode_frame::<ClientMessage>(&bad),
        Err(FrameError::Malformed(_))
    ));
    // Two frames back to back split incrementally.
    let mut two = framed.clone();
    two.extend_from_slice(&framed);
    let (p, used) = split_frame(&two).unwrap().unwrap();
    assert_eq!(p, &payload[..]);
    assert_eq!(used, framed.len());
    assert!(matches!(
        decode_frame::<ClientMessage>(&two),
        Err(FrameError::Malformed(ProtoError::TrailingBytes(_)))
    ));
    // An oversized message refuses to encode.
    let huge = ClientMessage::Goodbye {
        reason: "x".repeat(MAX_FRAME),
    };
    assert!(matches!(encode(&huge), Err(ProtoError::TooLarge { .. })));
    assert!(frame::encode_message_frame(&huge).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        // Each decoder returns an error or a valid message; a valid message re-encodes to bytes
        // that decode to the same message.
        if let Ok(m) = decode::<ClientMessage>(&bytes) {
            prop_assert_eq!(decode::<ClientMessage>(&encode(&m).unwrap()).unwrap(), m);
        }
        if let Ok(m) = decode::<BrokerMessage>(&bytes) {
            let again = decode::<BrokerMessage>(&encode(&m).unwrap()).unwrap();
            // NaN elapsed times are not equal to themselves; compare encodings instead.
            prop_assert_eq!(encode(&again).unwrap(), encode(&m).unwrap());
        }
        let _ = decode::<RequestEnvelope>(&bytes);
        let _ = decode::<ReplyEnvelope>(&bytes);
        let _ = decode::<Welcome>(&bytes);
        let _ = peek_hello_version(&bytes);
        let _ = peek_request_id(&bytes);
        let _ = decode_frame::<ClientMessage>(&bytes);
        let _ = split_frame(&bytes);
        if let Ok(cmd) = Command::decode(&bytes) {
            prop_assert_eq!(cmd.to_vec().unwrap().len(), bytes.len());
        }
        let _ = ShmLayout::from_header_bytes(&bytes);
    }

    #[test]
    fn mutated_valid_messages_never_panic(
        which in 0usize..46,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
    ) {
        let reqs = all_requests();
        let env = RequestEnvelope { id: 1, fence: 2, body: reqs[which % reqs.len()].clone() };
        let mut bytes = encode(&ClientMessage::Request(env)).unwrap();
        for (pos, val) in flips {
            let n = bytes.len();
            bytes[pos % n] = val;
        }
        let _ = decode::<ClientMessage>(&bytes);
        let _ = peek_request_id(&bytes);
    }

    #[test]
    fn mutated_records_never_panic(
        which in 0usize..12,
        nparams in 0usize..64,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
    ) {
        let params = vec![0x5A; nparams];
        let cmds = sample_commands(&params);
        let mut bytes = cmds[which % cmds.len()].to_vec().unwrap();
        for (pos, val) in flips {
            let n = bytes.len();
            bytes[pos % n] = val;
        }
        if let Ok(cmd) = Command::decode(&bytes) {
            prop_assert_eq!(cmd.encoded_len(), bytes.len());
        }
    }
}

fn sample_commands(params: &[u8]) -> Vec<Command<'_>> {
    use gpushare_client::ring::record::*;
    vec![
        Command::Launch(Launch {
            function: 1,
            stream: 2,
            grid: [1, 1, 1],
            block: [1, 1, 1],
            shared_mem_bytes: 0,
            params,
        }),
        Command::MemcpyHtoD(CopyHost::default()),
        Command::MemcpyDtoH(CopyHost::default()),
        Command::MemcpyDtoD(CopyDevice::default()),
        Command::Memset(Memset {
            element_size: 2,
            ..Memset::default()
        }),
        Command::EventRecord(EventRecord::default()),
        Command::StreamWaitEvent(StreamWait::default()),
        Command::HostFn(HostFn::default()),
        Command::HostFnDone(HostFnDone::default()),
        Command::Call(Call {
            ticket: 1,
            slot: 0,
            payload: params,
        }),
        Command::HostFnReady(HostFnReady::default()),
        Command::AsyncError(AsyncError::default()),
        Command::OpDone(OpDone::default()),
    ]
}
