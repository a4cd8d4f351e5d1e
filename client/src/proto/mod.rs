//! The control protocol: serde types encoded with postcard, carried in frames on the Unix socket
//! (see [`crate::frame`]) or, for requests, in CALL records of the command ring.
//!
//! - [`ClientMessage`] (tenant/admin → broker): `Hello`, `Request`, `Goodbye`.
//! - [`BrokerMessage`] (broker → tenant/admin): `Rejected`, `Welcome`, `Reply`, `Goodbye`.
//!
//! [`encode`] and [`decode`] are pure. Decoding never panics on arbitrary input: it returns
//! [`ProtoError`]; trailing bytes after a message are an error too. [`peek_hello_version`] and
//! [`peek_request_id`] read the frozen prefixes of messages a peer of another version sends.

pub mod admin;
pub mod handshake;
pub mod reply;
pub mod request;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use admin::{DeviceStatus, PolicyReloadReport, StatusReport, TenantStatus, WorkerStatus};
pub use handshake::{check_version, DeviceInfo, Hello, SessionKind, Welcome};
pub use reply::{ParamInfo, Reply, ReplyEnvelope};
pub use request::{
    AccessDesc, Family, HostSpan, Request, RequestEnvelope, Routed, REQUESTS, STAGING_REGION,
};

/// Version of the control protocol and of the shared-memory formats it negotiates (3: the
/// `STREAMED_COPY` record and its channel, and the workers' streamed-copy counts in status; 4:
/// the channel's `DONE` state and `release` word, and uploads probed from two pieces).
pub const PROTOCOL_VERSION: u32 = 4;
/// Oldest client version this build accepts.
pub const MIN_PROTOCOL_VERSION: u32 = 4;
/// Largest encoded message (and frame payload): 1 MiB.
pub const MAX_FRAME: usize = 1 << 20;

/// Errors of message encoding and decoding.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    /// The message does not serialise (should not happen for protocol types).
    #[error("cannot encode message: {0}")]
    Encode(#[source] postcard::Error),
    /// The bytes are not a valid message.
    #[error("malformed message: {0}")]
    Decode(#[source] postcard::Error),
    /// A valid message followed by extra bytes.
    #[error("{0} trailing bytes after the message")]
    TrailingBytes(usize),
    /// The encoded message is larger than [`MAX_FRAME`].
    #[error("message of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Encoded size.
        len: usize,
        /// Limit.
        max: usize,
    },
}

/// Messages a tenant or admin tool sends. Variant order is frozen: `Hello` is variant 0 and
/// `Request` variant 1 forever.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientMessage {
    /// Opens the session (first message).
    Hello(Hello),
    /// A synchronous call on the socket lane.
    Request(RequestEnvelope),
    /// Closes the session.
    Goodbye {
        /// Why (for logs).
        reason: String,
    },
}

/// Messages the broker sends. Variant order is frozen: `Rejected` is variant 0 forever.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum BrokerMessage {
    /// The session was refused; the broker closes the socket after this.
    Rejected {
        /// A readable sentence (e.g. the version mismatch).
        reason: String,
    },
    /// The session is open.
    Welcome(Welcome),
    /// Reply to a socket-lane request.
    Reply(ReplyEnvelope),
    /// The broker is closing the session (shutdown, eviction, protocol violation).
    Goodbye {
        /// Why.
        reason: String,
    },
}

/// Encodes a message (at most [`MAX_FRAME`] bytes).
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, ProtoError> {
    let bytes = postcard::to_allocvec(msg).map_err(ProtoError::Encode)?;
    if bytes.len() > MAX_FRAME {
        return Err(ProtoError::TooLarge {
            len: bytes.len(),
            max: MAX_FRAME,
        });
    }
    Ok(bytes)
}

/// Decodes exactly one message from `bytes` (no trailing bytes allowed).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ProtoError> {
    if bytes.len() > MAX_FRAME {
        return Err(ProtoError::TooLarge {
            len: bytes.len(),
            max: MAX_FRAME,
        });
    }
    let (msg, rest) = postcard::take_from_bytes::<T>(bytes).map_err(ProtoError::Decode)?;
    if !rest.is_empty() {
        return Err(ProtoError::TrailingBytes(rest.len()));
    }
    Ok(msg)
}

/// The protocol version of an encoded `ClientMessage::Hello`, read from its frozen prefix even
/// when the rest does not decode (a peer of another version). `None` if it is not a Hello.
pub fn peek_hello_version(bytes: &[u8]) -> Option<u32> {
    let (variant, rest) = postcard::take_from_bytes::<u32>(bytes).ok()?;
    if variant != 0 {
        return None;
    }
    postcard::take_from_bytes::<u32>(rest).ok().map(|(v, _)| v)
}

/// The id of an encoded `ClientMessage::Request`, read from its frozen prefix even when the body
/// does not decode (e.g. a request variant this broker does not know: it can still answer
/// `ERROR_NOT_SUPPORTED`). `None` if it is not a Request.
pub fn peek_request_id(bytes: &[u8]) -> Option<u64> {
    let (variant, rest) = postcard::take_from_bytes::<u32>(bytes).ok()?;
    if variant != 1 {
        return None;
    }
    postcard::take_from_bytes::<u64>(rest).ok().map(|(v, _)| v)
}

/// The id of an encoded bare [`RequestEnvelope`] (the payload of a CALL record).
pub fn peek_envelope_id(bytes: &[u8]) -> Option<u64> {
    postcard::take_from_bytes::<u64>(bytes).ok().map(|(v, _)| v)
}
