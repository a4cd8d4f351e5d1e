//! The tenant-side session: what the shim holds for the life of the process.
//!
//! [`Client::connect`] performs the handshake and maps the region. Then:
//! - [`Client::submit`] appends an asynchronous command to the ring (no system call, no reply);
//! - [`Client::call`] makes a synchronous call: on the ring lane (a CALL record plus a reply
//!   slot, spin-then-futex: ~µs) when the request fits in a record, else on the socket lane;
//! - [`Client::call_socket`] forces the socket lane, e.g. to pass descriptors (`HostRegister`);
//! - [`Client::copy_to_device`] / [`Client::copy_from_device`] are synchronous copies staged
//!   through shared memory (allocate staging, copy, call, free), split into pieces as needed;
//! - [`Client::watch_broker`] blocks until the broker hangs up and then marks the region closed,
//!   which cancels every wait (run it on a helper thread);
//! - [`Client::goodbye`] closes the session.
//!
//! `Client` is `Sync`: any application thread may call it. Ring pushes are serialised by a mutex
//! (the ring is single-producer); synchronous calls on the ring lane wait on their own reply slot
//! without holding it.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::code::{self, CuCode};
use crate::frame::{self, FrameError};
use crate::handshake::{self, HandshakeError};
use crate::os::{self, OsError};
use crate::paths;
use crate::proto::{
    self, BrokerMessage, ClientMessage, Hello, HostSpan, ProtoError, ReplyEnvelope, Request,
    RequestEnvelope, Welcome, STAGING_REGION,
};
use crate::ring::record::{CallHeader, RecordHeader};
use crate::ring::{record::Call, Command, Producer, RingError, MAX_RECORD};
use crate::shm::{
    Region, ReplyError, ReplySlots, SessionState, ShmError, Staging, StagingError, StagingSpan,
};
use crate::wait::{Cancel, WaitPolicy};

/// Largest request payload that travels in a CALL record; larger requests use the socket.
pub const MAX_CALL_PAYLOAD: usize = MAX_RECORD - RecordHeader::SIZE - CallHeader::SIZE;

/// Errors of a tenant session.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting failed.
    #[error("cannot connect to the broker: {0}")]
    Connect(#[source] io::Error),
    /// The process listening on the socket is neither root, nor this user, nor the uid
    /// `GPUSHARE_BROKER_UID` names: nothing was sent to it.
    #[error(
        "the process listening on the broker socket runs as uid {uid}, not as root or uid {me} \
         (set GPUSHARE_BROKER_UID={uid} if that is the broker's service account); nothing was sent"
    )]
    UntrustedBroker {
        /// The listener's uid.
        uid: u32,
        /// This process's effective uid.
        me: u32,
    },
    /// The handshake failed or was rejected.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// The socket lane failed.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A message did not encode or decode.
    #[error(transparent)]
    Proto(#[from] ProtoError),
    /// Mapping the region failed.
    #[error(transparent)]
    Shm(#[from] ShmError),
    /// The ring failed (closed session, corrupt positions).
    #[error(transparent)]
    Ring(#[from] RingError),
    /// Waiting for a reply failed.
    #[error(transparent)]
    Reply(#[from] ReplyError),
    /// A system call failed.
    #[error(transparent)]
    Os(#[from] OsError),
    /// Allocating or accessing staging memory failed.
    #[error(transparent)]
    Staging(#[from] StagingError),
    /// This session has no region (admin sessions).
    #[error("this session has no shared-memory region")]
    NoRegion,
    /// A reply for another request arrived.
    #[error("reply id {got} does not match request id {expected}")]
    IdMismatch {
        /// Id sent.
        expected: u64,
        /// Id received.
        got: u64,
    },
    /// The broker sent something other than a reply.
    #[error("unexpected message from the broker: {0}")]
    Unexpected(&'static str),
    /// The broker closed the session.
    #[error("the broker closed the session: {0}")]
    Closed(String),
}

/// Tuning of a session.
#[derive(Clone, Copy, Debug)]
pub struct ClientOptions {
    /// How synchronous calls and a full ring are waited for.
    pub wait: WaitPolicy,
    /// Pre-fault the region's pages when mapping it.
    pub populate: bool,
    /// How long to wait for a free reply slot.
    pub slot_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            wait: WaitPolicy::default(),
            populate: false,
            slot_timeout: Duration::from_secs(60),
        }
    }
}

struct Lanes {
    region: Region,
    producer: Mutex<Producer>,
    replies: ReplySlots,
    staging: Staging,
    cancel: Cancel,
}

/// A connected tenant (or admin) session; see the module documentation.
pub struct Client {
    socket: Mutex<UnixStream>,
    welcome: Welcome,
    lanes: Option<Lanes>,
    next_id: AtomicU64,
    options: ClientOptions,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("session_id", &self.welcome.session_id)
            .field("has_region", &self.lanes.is_some())
            .finish()
    }
}

/// Checks, before anything is sent, that the process at the other end of `stream` runs as root,
/// as this process's effective user, or as the uid [`paths::BROKER_UID_ENV`] names: a socket
/// path another user could have put a listener behind must not receive a tenant's `Hello`.
pub fn check_broker(stream: &UnixStream) -> Result<(), ClientError> {
    let peer = os::peer_credentials(stream)?;
    let me = paths::uid();
    if peer.uid == 0 || peer.uid == me || paths::extra_broker_uid() == Some(peer.uid) {
        Ok(())
    } else {
        Err(ClientError::UntrustedBroker { uid: peer.uid, me })
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves the data usable (positions are only committed after
    // a complete push), so a poisoned lock is taken over.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Client {
    /// Connects to the broker socket at `path`, checks that the listener is a broker this
    /// process trusts ([`check_broker`]) and performs the handshake.
    pub fn connect(
        path: impl AsRef<Path>,
        hello: &Hello,
        options: ClientOptions,
    ) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(path).map_err(ClientError::Connect)?;
        check_broker(&stream)?;
        Client::from_stream(stream, hello, options)
    }

    /// Performs the handshake on an already connected socket (whose peer the caller trusts).
    pub fn from_stream(
        mut stream: UnixStream,
        hello: &Hello,
        options: ClientOptions,
    ) -> Result<Client, ClientError> {
        let (welcome, fd) = handshake::client_handshake(&mut stream, hello)?;
        let lanes = match (&welcome.shm, fd) {
            (Some(layout), Some(fd)) => {
                let region = Region::open(fd.as_fd(), layout, options.populate)?;
                let cancel = region.cancel();
                let mut producer = region.command_producer()?;
                producer.set_wait(options.wait, cancel.clone());
                Some(Lanes {
                    producer: Mutex::new(producer),
                    replies: region.replies(),
                    staging: region.staging(),
                    cancel,
                    region,
                })
            }
            _ => None,
        };
        Ok(Client {
            socket: Mutex::new(stream),
            welcome,
            lanes,
            next_id: AtomicU64::new(1),
            options,
        })
    }

    /// The broker's `Welcome`.
    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    /// The session id.
    pub fn session_id(&self) -> u64 {
        self.welcome.session_id
    }

    /// The region (tenants).
    pub fn region(&self) -> Option<&Region> {
        self.lanes.as_ref().map(|l| &l.region)
    }

    /// The staging area (tenants).
    pub fn staging(&self) -> Option<&Staging> {
        self.lanes.as_ref().map(|l| &l.staging)
    }

    /// The wait policy of this session.
    pub fn wait_policy(&self) -> &WaitPolicy {
        &self.options.wait
    }

    /// A fresh request id (unique in the session, non-zero).
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn lanes(&self) -> Result<&Lanes, ClientError> {
        self.lanes.as_ref().ok_or(ClientError::NoRegion)
    }

    /// Appends an asynchronous command to the ring; returns its sequence number. Waits (spin,
    /// then futex) while the ring is full.
    pub fn submit(&self, cmd: &Command<'_>) -> Result<u64, ClientError> {
        Ok(lock(&self.lanes()?.producer).push(cmd)?)
    }

    /// Sequence number of the last command submitted (the fence of a socket-lane request).
    pub fn last_seq(&self) -> u64 {
        self.lanes.as_ref().map_or(0, |l| lock(&l.producer).seq())
    }

    /// Makes a synchronous call: on the ring lane when the session has a region and the request
    /// fits in a record, otherwise on the socket lane. The reply's code may be an error; only
    /// transport failures are `Err`.
    pub fn call(&self, body: Request) -> Result<ReplyEnvelope, ClientError> {
        let Some(lanes) = self.lanes.as_ref() else {
            return self.call_socket(body, &[]);
        };
        let id = self.next_id();
        let env = RequestEnvelope { id, fence: 0, body };
        let payload = proto::encode(&env)?;
        if payload.len() > MAX_CALL_PAYLOAD {
            return self.call_socket(env.body, &[]);
        }
        let slot = lanes
            .replies
            .claim(self.options.slot_timeout, &lanes.cancel)?;
        let result = self.call_in_slot(lanes, slot, id, &payload);
        // A slot whose reply never came (timeout, closed session) is not reused: a late reply
        // could overwrite the payload of the next call while it is being read. Every other
        // outcome leaves the broker done with the slot.
        if !matches!(result, Err(ClientError::Reply(ReplyError::Wait(_)))) {
            let _ = lanes.replies.release(slot);
        }
        result
    }

    fn call_in_slot(
        &self,
        lanes: &Lanes,
        slot: u32,
        id: u64,
        payload: &[u8],
    ) -> Result<ReplyEnvelope, ClientError> {
        let cmd = Command::Call(Call {
            ticket: id,
            slot,
            payload,
        });
        lock(&lanes.producer).push(&cmd)?;
        let mut buf = Vec::new();
        lanes
            .replies
            .wait(slot, id, &self.options.wait, &lanes.cancel, &mut buf)?;
        let reply: ReplyEnvelope = proto::decode(&buf)?;
        if reply.id != id {
            return Err(ClientError::IdMismatch {
                expected: id,
                got: reply.id,
            });
        }
        Ok(reply)
    }

    /// Makes a synchronous call on the socket lane, with descriptors attached (at most
    /// [`os::MAX_FDS`]). The request is fenced after every command already submitted.
    pub fn call_socket(
        &self,
        body: Request,
        fds: &[BorrowedFd<'_>],
    ) -> Result<ReplyEnvelope, ClientError> {
        let id = self.next_id();
        let fence = self.last_seq();
        let payload = proto::encode(&ClientMessage::Request(RequestEnvelope { id, fence, body }))?;
        let mut sock = lock(&self.socket);
        frame::send_frame_with_fds(&mut sock, &payload, fds)?;
        match frame::recv_message::<BrokerMessage>(&mut sock)? {
            BrokerMessage::Reply(r) if r.id == id => Ok(r),
            BrokerMessage::Reply(r) => Err(ClientError::IdMismatch {
                expected: id,
                got: r.id,
            }),
            BrokerMessage::Goodbye { reason } => {
                if let Some(l) = &self.lanes {
                    l.region.close(SessionState::ClosedByBroker);
                }
                Err(ClientError::Closed(reason))
            }
            BrokerMessage::Welcome(_) => Err(ClientError::Unexpected("Welcome")),
            BrokerMessage::Rejected { .. } => Err(ClientError::Unexpected("Rejected")),
        }
    }

    fn piece_size(lanes: &Lanes) -> usize {
        // Half the area, so two threads copying at once both make progress.
        (lanes.staging.size() / 2).max(lanes.staging.chunk_size()) as usize
    }

    fn staged_call(
        &self,
        lanes: &Lanes,
        len: usize,
        before: impl FnOnce(&StagingSpan) -> Result<(), ClientError>,
        request: impl FnOnce(HostSpan) -> Request,
        after: impl FnOnce(&StagingSpan) -> Result<(), ClientError>,
    ) -> Result<CuCode, ClientError> {
        let span = lanes
            .staging
            .alloc(len as u64, &self.options.wait, &lanes.cancel)?;
        let host = HostSpan {
            region: STAGING_REGION,
            offset: span.offset,
            len: len as u64,
        };
        let result = before(&span)
            .and_then(|()| self.call(request(host)))
            .and_then(|r| {
                if r.is_ok() {
                    after(&span).map(|()| r.code)
                } else {
                    Ok(r.code)
                }
            });
        lanes.staging.free(span)?;
        result
    }

    /// Synchronous host-to-device copy of `src` through the staging area (in pieces when it is
    /// larger than half the area). Returns the first failing code, or `SUCCESS`.
    pub fn copy_to_device(&self, dst: u64, src: &[u8]) -> Result<CuCode, ClientError> {
        let lanes = self.lanes()?;
        let piece = Self::piece_size(lanes);
        for (k, part) in src.chunks(piece).enumerate() {
            let at = dst.wrapping_add((k * piece) as u64);
            let code = self.staged_call(
                lanes,
                part.len(),
                |span| Ok(lanes.staging.write(span.offset, part)?),
                |host| Request::MemcpyHtoD { dst: at, src: host },
                |_| Ok(()),
            )?;
            if code != code::SUCCESS {
                return Ok(code);
            }
        }
        Ok(code::SUCCESS)
    }

    /// Synchronous device-to-host copy into `dst` through the staging area (in pieces when it is
    /// larger than half the area). Returns the first failing code, or `SUCCESS`.
    pub fn copy_from_device(&self, dst: &mut [u8], src: u64) -> Result<CuCode, ClientError> {
        let lanes = self.lanes()?;
        let piece = Self::piece_size(lanes);
        for (k, part) in dst.chunks_mut(piece).enumerate() {
            let at = src.wrapping_add((k * piece) as u64);
            let code = self.staged_call(
                lanes,
                part.len(),
                |_| Ok(()),
                |host| Request::MemcpyDtoH { dst: host, src: at },
                |span| Ok(lanes.staging.read(span.offset, part)?),
            )?;
            if code != code::SUCCESS {
                return Ok(code);
            }
        }
        Ok(code::SUCCESS)
    }

    /// Blocks until the broker hangs up (or `timeout` passes: returns false), then marks the
    /// region closed so every pending wait returns `Cancelled`. Run on a helper thread.
    pub fn watch_broker(&self, timeout: Option<Duration>) -> Result<bool, ClientError> {
        // Duplicate the descriptor so the watch does not hold the socket lock.
        let sock = lock(&self.socket)
            .try_clone()
            .map_err(ClientError::Connect)?;
        let hung_up = os::wait_hangup(sock.as_fd(), timeout)?;
        if hung_up {
            if let Some(l) = &self.lanes {
                l.region.close(SessionState::ClosedByBroker);
            }
        }
        Ok(hung_up)
    }

    /// Says goodbye, then marks the region closed by the tenant (which stops the broker's ring
    /// consumer). The region is marked closed even if the broker is already gone.
    pub fn goodbye(&self, reason: &str) -> Result<(), ClientError> {
        let msg = ClientMessage::Goodbye {
            reason: reason.to_string(),
        };
        let sent = frame::send_message(&mut lock(&self.socket), &msg);
        if let Some(l) = &self.lanes {
            l.region.close(SessionState::ClosedByTenant);
        }
        Ok(sent?)
    }
}
