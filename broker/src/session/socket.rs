//! The socket thread of a session: handshake, the socket lane, and the session's end.
//!
//! Tenants: after the handshake (region created, `Welcome` sent with the memfd) the thread
//! starts the ring thread and the executor, then reads frames: socket-lane requests go to the
//! executor (fenced after the ring), `Goodbye` or end of stream end the session, and a truncated,
//! oversized or malformed frame, a second `Hello` or unexpected descriptors close it with a log
//! line (frames whose request id can still be read but whose body cannot be decoded — a newer
//! client's request — are answered `CUDA_ERROR_NOT_SUPPORTED`). Then it waits for the other two
//! threads and frees everything the tenant held.
//!
//! Admin sessions get no region: `Status`, `PolicyReload` ([`crate::reload`]) and `Ping` on the
//! socket; anything else is `CUDA_ERROR_NOT_PERMITTED`.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::time::Duration;

use gpushare_client::code;
use gpushare_client::frame::{self, FrameError};
use gpushare_client::handshake::{self, HandshakeError};
use gpushare_client::os;
use gpushare_client::proto::request::{AdminRequest, SessionRequest};
use gpushare_client::proto::{
    self, BrokerMessage, ClientMessage, Hello, Reply, ReplyEnvelope, Routed, SessionKind,
    StatusReport, Welcome,
};
use gpushare_client::shm::{Region, SessionState};

use super::admission::{Pending, SessionSlot};
use super::error::SessionError;
use super::exec::{self, CallJob};
use super::registry::Registry;
use super::ring;
use super::tenant::{Placement, ReplyTo, SessionInfo, Tenant};
use crate::access::{Peer, SystemDirectory};
use crate::device::Device;
use crate::env::Env;
use crate::groups::GroupKey;
use crate::policy::{Policy, Rules};
use crate::reload;

/// How long one read of the handshake may take (the whole handshake is bounded by
/// [`super::admission`]'s deadline).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one send to a client may block: a client that stops reading loses its session
/// rather than holding a broker thread.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// How a session's socket loop ended.
#[derive(Debug)]
enum End {
    /// The peer said goodbye.
    Goodbye(String),
    /// End of stream (the peer exited or died).
    Eof,
    /// The broker closed the session (shutdown or a violation found by another thread).
    Closed,
    /// The peer broke the protocol.
    Violation(String),
}

fn frame_end(e: FrameError, closing: bool) -> End {
    match e {
        _ if closing => End::Closed,
        FrameError::Closed => End::Eof,
        FrameError::Io(e) if e.kind() == std::io::ErrorKind::ConnectionReset => End::Eof,
        other => End::Violation(format!("bad frame: {other}")),
    }
}

/// Who the peer is (`creds` from `SO_PEERCRED`, else what `Hello` says) and the `Welcome` it
/// gets (the device as its worker sees it — the broker's snapshot for admin sessions — with the
/// tenant's quota as its memory when it has one; no region yet).
fn welcome(
    env: &Env,
    id: u64,
    creds: Option<os::PeerCredentials>,
    hello: &Hello,
    rules: &Rules,
    dev: Option<&Device>,
) -> (SessionInfo, Welcome) {
    let info = SessionInfo {
        id,
        name: hello.tenant_name.clone(),
        pid: creds.map_or(hello.pid, |c| c.pid as u32),
        uid: creds.map_or(0, |c| c.uid),
        gid: creds.map_or(0, |c| c.gid),
    };
    let mut device = dev.map_or_else(|| env.device.clone(), |d| d.info().clone());
    if rules.memory_quota != 0 {
        device.total_mem = device.total_mem.min(rules.memory_quota);
    }
    let welcome = Welcome {
        protocol_version: hello.protocol_version,
        session_id: id,
        shm: None,
        driver_version: dev.map_or(0, Device::driver_version),
        devices: vec![device],
        broker_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    (info, welcome)
}

/// What an admin session of `info`'s user may see of `report`: everything for admins (root,
/// the broker's user, the policy's `admins`), else its own user's tenants and their workers.
fn visible_status(env: &Env, mut report: StatusReport, info: &SessionInfo) -> StatusReport {
    let peer = Peer {
        uid: info.uid,
        gid: info.gid,
    };
    let admin = env
        .policy()
        .access()
        .is_admin(peer, os::effective_uid(), &SystemDirectory);
    if !admin {
        report.tenants.retain(|t| t.uid == info.uid);
        let groups: Vec<String> = report.tenants.iter().map(|t| t.group.clone()).collect();
        report.workers.retain(|w| groups.contains(&w.group));
    }
    report
}

/// Who may open a session named `name`: a peer whose credentials the kernel reports
/// (`SO_PEERCRED`), whom the policy's `[access]` admits (root and the broker's own user always),
/// with an acceptable name ([`check_name`]) not reserved for other users, and whose uid is under
/// its session cap (`pending` becomes its slot). Refusals name the peer's identity in the log and
/// the reason in the `Rejected` the client gets.
fn admit(
    id: u64,
    creds: Option<os::PeerCredentials>,
    name: &str,
    policy: &Policy,
    pending: Pending,
) -> Result<(os::PeerCredentials, SessionSlot), String> {
    let Some(c) = creds else {
        tracing::warn!(
            session = id,
            "refused a connection without peer credentials"
        );
        return Err("the broker cannot tell who you are (no SO_PEERCRED)".into());
    };
    let peer = Peer {
        uid: c.uid,
        gid: c.gid,
    };
    let verdict = if policy
        .access()
        .admits(peer, os::effective_uid(), &SystemDirectory)
    {
        check_name(name).and_then(|()| policy.may_use_name(name, c.uid, &SystemDirectory))
    } else {
        Err(format!(
            "uid {} may not use this broker (the policy's [access] does not admit it)",
            c.uid
        ))
    };
    verdict
        .and_then(|()| pending.admit(c.uid).map_err(|r| r.to_string()))
        .map(|slot| (c, slot))
        .inspect_err(|reason| {
            tracing::warn!(
                session = id,
                uid = c.uid,
                gid = c.gid,
                pid = c.pid,
                "refused a connection: {reason}"
            );
        })
}

/// Longest tenant name, in bytes.
pub const MAX_NAME_BYTES: usize = 256;

/// Checks a tenant name a client declares: not empty, at most [`MAX_NAME_BYTES`], and free of
/// control characters and of the invisible formatting characters that reorder or hide text
/// (bidirectional overrides, zero-width characters), so a name cannot forge a log line or
/// disguise itself in `gpushare status`.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the tenant name is empty".into());
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "the tenant name is {} bytes long (at most {MAX_NAME_BYTES})",
            name.len()
        ));
    }
    let hidden = |c: char| matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}');
    match name.chars().find(|&c| c.is_control() || hidden(c)) {
        Some(c) => Err(format!(
            "the tenant name {:?} contains the control or formatting character {:?}",
            name, c
        )),
        None => Ok(()),
    }
}

/// Applies the policy in force to a tenant that got its rules from `seen` and has just been
/// registered, if a reload replaced `seen` in between (that reload did not see the tenant).
fn catch_up(env: &Env, seen: &Arc<Policy>, t: &Tenant) {
    if !Arc::ptr_eq(seen, &env.policy()) {
        env.under_policy(|p| t.apply_rules(&p.rules_for(&t.info.name, t.info.uid)));
    }
}

/// A tenant session the handshake opened: the tenant, its `Welcome` and its region's memfd.
struct OpenedTenant {
    tenant: Arc<Tenant>,
    welcome: Welcome,
    fd: OwnedFd,
}

/// Places a tenant in its isolation group (starting the group's worker if needed), creates its
/// shared-memory region and its `Tenant`; on failure leaves the group again and says why.
fn open_tenant(
    env: &Arc<Env>,
    id: u64,
    creds: Option<os::PeerCredentials>,
    hello: &Hello,
    rules: &Rules,
    writer: &UnixStream,
) -> Result<OpenedTenant, String> {
    let uid = creds.map_or(0, |c| c.uid);
    let group = GroupKey::of(rules, uid, id);
    let dev = env
        .groups
        .join(&group, rules.kernel_timeout)
        .map_err(|e| format!("no worker for isolation group {group}: {e}"))?;
    let leave = || env.groups.leave(&group, &dev, rules.kernel_timeout);
    let (info, mut welcome) = welcome(env, id, creds, hello, rules, Some(&dev));
    let (region, fd) = Region::create(&env.shm, false).map_err(|e| {
        leave();
        format!("cannot create the shared-memory region: {e}")
    })?;
    welcome.shm = Some(*region.layout());
    let w = writer.try_clone().map_err(|e| {
        leave();
        format!("cannot clone the socket: {e}")
    })?;
    let placement = Placement {
        dev: Arc::clone(&dev),
        group: group.clone(),
        timeout: rules.kernel_timeout,
    };
    let tenant = Tenant::create(
        Arc::clone(env),
        info,
        placement,
        (region, fd.as_fd()),
        w,
        rules,
    )
    .map_err(|e: SessionError| {
        leave();
        e.to_string()
    })?;
    Ok(OpenedTenant {
        tenant,
        welcome,
        fd,
    })
}

/// Serves one connection until it ends (registered in `registry` while it is open; `pending`
/// is its admission slot, which becomes a session slot once the peer is known).
pub fn serve(env: Arc<Env>, registry: Arc<Registry>, mut stream: UnixStream, pending: Pending) {
    let id = env.next_session_id();
    let creds = os::peer_credentials(&stream).ok();
    let writer = match stream.try_clone() {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(session = id, "cannot clone the socket: {e}");
            return;
        }
    };
    let _ = stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT));
    let _ = stream.set_write_timeout(Some(SEND_TIMEOUT));
    let mut slot: Option<SessionSlot> = None;
    let mut tenant: Option<Arc<Tenant>> = None;
    let mut info_out: Option<SessionInfo> = None;
    let policy = env.policy();
    let accepted = handshake::broker_handshake(&mut stream, |hello| {
        if env.is_shutting_down() {
            return Err("the broker is shutting down".to_string());
        }
        let (_, admitted) = admit(id, creds, &hello.tenant_name, &policy, pending)?;
        slot = Some(admitted);
        let rules = policy.rules_for(&hello.tenant_name, creds.map_or(0, |c| c.uid));
        match hello.kind {
            SessionKind::Admin => {
                let (info, welcome) = welcome(&env, id, creds, hello, &rules, None);
                info_out = Some(info);
                Ok((welcome, None))
            }
            SessionKind::Tenant => {
                let opened = open_tenant(&env, id, creds, hello, &rules, &writer)?;
                info_out = Some(opened.tenant.info.clone());
                tenant = Some(opened.tenant);
                Ok((opened.welcome, Some(opened.fd)))
            }
        }
    });
    let (hello, info) = match (accepted, info_out) {
        (Ok(h), Some(info)) => (h, info),
        (result, _) => {
            match result {
                Err(HandshakeError::Frame(FrameError::Closed)) => {}
                Err(e) => tracing::info!(session = id, "handshake failed: {e}"),
                Ok(_) => {}
            }
            if let Some(t) = tenant {
                t.teardown();
            }
            return;
        }
    };
    let _ = stream.set_read_timeout(None);
    tracing::info!(
        session = id,
        tenant = %info.name,
        pid = info.pid,
        uid = info.uid,
        kind = ?hello.kind,
        group = %tenant.as_ref().map(|t| t.group.to_string()).unwrap_or_default(),
        "session opened"
    );
    let shutdown_handle = writer.try_clone().ok();
    registry.register(info.clone(), tenant.clone(), shutdown_handle);
    if let Some(t) = &tenant {
        catch_up(&env, &policy, t);
    }
    match tenant {
        Some(t) => serve_tenant(&t, stream),
        None => serve_admin(&env, &registry, &info, stream, writer),
    }
    registry.unregister(id);
    // The session's resources are freed: its place in the admission counts is free too.
    drop(slot);
}

fn serve_tenant(t: &Arc<Tenant>, mut stream: UnixStream) {
    let id = t.info.id;
    let consumer = match t.region.command_consumer() {
        Ok(c) => c,
        Err(e) => {
            t.hang_up(&format!("cannot open the command ring: {e}"));
            t.teardown();
            return;
        }
    };
    let (tx, rx) = mpsc::channel::<CallJob>();
    let spawned = {
        let (t1, t2, tx1) = (Arc::clone(t), Arc::clone(t), tx.clone());
        let ring = std::thread::Builder::new()
            .name(format!("gpushare-ring-{id}"))
            .spawn(move || ring::run(t1, consumer, tx1));
        let exec = std::thread::Builder::new()
            .name(format!("gpushare-exec-{id}"))
            .spawn(move || exec::run(t2, rx));
        (ring, exec)
    };
    let end = match &spawned {
        (Ok(_), Ok(_)) => socket_loop(t, &mut stream, &tx),
        _ => End::Violation("cannot start the session's threads".into()),
    };
    drop(tx);
    match &end {
        End::Goodbye(reason) => {
            tracing::info!(session = id, tenant = %t.info.name, "tenant said goodbye: {reason:?}");
            t.close(SessionState::ClosedByTenant);
        }
        End::Eof => {
            tracing::info!(session = id, tenant = %t.info.name, "tenant disconnected");
            t.close(SessionState::ClosedByBroker);
        }
        End::Closed => t.close(SessionState::ClosedByBroker),
        End::Violation(reason) => t.violation(reason),
    }
    let (ring, exec) = spawned;
    if let Ok(h) = ring {
        let _ = h.join();
    }
    if let Ok(h) = exec {
        let _ = h.join();
    }
    t.teardown();
}

fn socket_loop(t: &Arc<Tenant>, stream: &mut UnixStream, tx: &Sender<CallJob>) -> End {
    loop {
        let (payload, fds) = match frame::recv_frame_with_fds(stream, os::MAX_FDS) {
            Ok(x) => x,
            Err(e) => return frame_end(e, t.is_closing()),
        };
        match proto::decode::<ClientMessage>(&payload) {
            Ok(ClientMessage::Request(env)) => {
                let fence = env.fence;
                t.calls_pending(1);
                let job = CallJob {
                    env,
                    to: ReplyTo::Socket,
                    fds,
                    target: None,
                    fence: Some(fence),
                };
                if tx.send(job).is_err() {
                    t.calls_pending(-1);
                    return End::Closed;
                }
            }
            Ok(ClientMessage::Goodbye { reason }) => return End::Goodbye(reason),
            Ok(ClientMessage::Hello(_)) => return End::Violation("a second Hello".into()),
            Err(e) => match proto::peek_request_id(&payload) {
                Some(id) => {
                    tracing::debug!(session = t.info.id, "undecodable request {id}: {e}");
                    t.reply(
                        ReplyTo::Socket,
                        ReplyEnvelope::error(id, code::ERROR_NOT_SUPPORTED),
                    );
                }
                None => return End::Violation(format!("malformed frame: {e}")),
            },
        }
    }
}

fn serve_admin(
    env: &Env,
    registry: &Registry,
    info: &SessionInfo,
    mut stream: UnixStream,
    mut writer: UnixStream,
) {
    let end = loop {
        let payload = match frame::recv_frame(&mut stream) {
            Ok(p) => p,
            Err(e) => break frame_end(e, env.is_shutting_down()),
        };
        let reply = match proto::decode::<ClientMessage>(&payload) {
            Ok(ClientMessage::Request(req)) => match req.body.route() {
                Routed::Admin(AdminRequest::Status) => ReplyEnvelope::ok(
                    req.id,
                    Reply::Status(visible_status(env, registry.status(env), info)),
                ),
                Routed::Admin(AdminRequest::PolicyReload) => ReplyEnvelope::ok(
                    req.id,
                    Reply::PolicyReload(reload::requested(env, registry, info.uid)),
                ),
                Routed::Session(SessionRequest::Ping) => ReplyEnvelope::ok(req.id, Reply::Pong),
                // Admin sessions have no device work: every tenant family is refused.
                _ => ReplyEnvelope::error(req.id, code::ERROR_NOT_PERMITTED),
            },
            Ok(ClientMessage::Goodbye { reason }) => break End::Goodbye(reason),
            Ok(ClientMessage::Hello(_)) => break End::Violation("a second Hello".into()),
            Err(e) => match proto::peek_request_id(&payload) {
                Some(id) => ReplyEnvelope::error(id, code::ERROR_NOT_SUPPORTED),
                None => break End::Violation(format!("malformed frame: {e}")),
            },
        };
        if frame::send_message(&mut writer, &BrokerMessage::Reply(reply)).is_err() {
            break End::Eof;
        }
    };
    if let End::Violation(reason) = &end {
        tracing::warn!(
            session = info.id,
            "closing admin session: protocol violation: {reason}"
        );
        let _ = frame::send_message(
            &mut writer,
            &BrokerMessage::Goodbye {
                reason: format!("protocol violation: {reason}"),
            },
        );
    }
    let _ = writer.shutdown(std::net::Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::check_name;

    #[test]
    fn names_that_could_forge_or_hide_text_are_refused() {
        for good in ["llm", "bert-large_2", "モデル", "a b"] {
            assert!(check_name(good).is_ok(), "{good:?}");
        }
        for bad in [
            "",
            "x\nFAKE log line",
            "\u{1b}[2J",
            "tab\there",
            "del\u{7f}",
            "evil\u{202e}txt.exe",
            "zero\u{200b}width",
        ] {
            let e = check_name(bad).expect_err(bad);
            assert!(e.contains("tenant name"), "{e}");
        }
        assert!(check_name(&"n".repeat(257)).is_err());
        assert!(check_name(&"n".repeat(256)).is_ok());
    }
}
