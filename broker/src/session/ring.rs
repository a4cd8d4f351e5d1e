//! The ring thread: consumes a tenant's command ring in order.
//!
//! Asynchronous commands are resolved (handles → driver objects), checked (memory ownership,
//! host spans) and queued in the scheduler, preceded by any joins the tenant's legacy-stream
//! semantics need; their failures become the tenant's asynchronous errors. CALL records are
//! decoded and handed to the executor after every earlier command has been queued. Protocol
//! violations (a malformed record, a host span outside shared memory, a reply slot that does not
//! exist) close the session. CALLs that never block (`Request::runs_inline`, declared with each
//! request) are executed right here, through [`exec::execute`], which saves the hand-off to the
//! executor on the synchronous path.
//!
//! When the ring is empty the thread closes the open batches (their markers publish completion),
//! publishes `retired`, then sleeps on the ring's head word (bounded spin, then futex).

use std::sync::mpsc::Sender;
use std::sync::Arc;

use gpushare_client::code::{self, CuCode};
use gpushare_client::proto::{self, RequestEnvelope};
use gpushare_client::ring::record::{Call, EventRecord};
use gpushare_client::ring::record::{
    CopyDevice, CopyHost, HostFn, HostFnReady, Launch, Memset, StreamWait, WriteValue, COPY_FLAGS,
    COPY_MARK, COPY_RELEASE_STAGING,
};
use gpushare_client::shm::StagingSpan;
use gpushare_client::wait::WaitError;
use gpushare_client::{Command, Consumer, RecordBuf, ReplyEnvelope, SeqWord, WaitPolicy};

mod streamed;

use super::dedup;
use super::error::Violation;
use super::exec::{self, CallJob};
use super::host::host_mem;
use super::state::TenantState;
use super::tenant::{ReplyTo, Tenant};
use crate::device::Stream;
use crate::work::{memset_extent, Op};

/// A command handled, or the protocol violation that closes the session.
type RResult = Result<(), Violation>;

fn violation(msg: impl Into<String>) -> Violation {
    Violation(msg.into())
}

/// Runs the ring thread until the session closes, the broker drains it, or the tenant breaks
/// the protocol.
pub fn run(t: Arc<Tenant>, mut consumer: Consumer, calls: Sender<CallJob>) {
    let head = match SeqWord::at(t.region.mapping(), t.layout.cmd_ring_ctl as usize) {
        Ok(w) => w,
        Err(e) => {
            t.violation(&format!("command ring head: {e}"));
            t.set_ring_done();
            return;
        }
    };
    let policy = WaitPolicy::default();
    let mut buf = RecordBuf::new();
    while !t.is_closing() {
        match consumer.try_pop(&mut buf) {
            Ok(Some(p)) => {
                if let Err(e) = handle(&t, p.seq, p.cmd, &calls) {
                    t.violation(&e.to_string());
                    break;
                }
                t.set_processed(p.seq);
            }
            Ok(None) => {
                t.close_batches();
                t.set_ring_idle(consumer.seq());
                if t.is_draining() {
                    break;
                }
                let waited = head.wait_until_or(
                    |_| !consumer.is_empty(),
                    &policy,
                    || t.is_closing() || t.is_draining() || !t.region.is_open(),
                );
                match waited {
                    Ok(_) | Err(WaitError::Cancelled) | Err(WaitError::TimedOut) => {}
                    Err(e) => {
                        tracing::error!(session = t.info.id, "command ring wait: {e}");
                        break;
                    }
                }
                if !t.region.is_open() && !t.is_closing() {
                    // The tenant closed its end; the socket thread tears the session down.
                    break;
                }
            }
            Err(e) => {
                t.violation(&format!("command ring: {e}"));
                break;
            }
        }
    }
    t.close_batches();
    t.set_ring_done();
}

fn handle(t: &Arc<Tenant>, seq: u64, cmd: Command<'_>, calls: &Sender<CallJob>) -> RResult {
    match cmd {
        Command::Launch(l) => launch(t, seq, &l),
        Command::MemcpyHtoD(c) => copy_host(t, seq, &c, true),
        Command::MemcpyDtoH(c) => copy_host(t, seq, &c, false),
        Command::MemcpyDtoD(c) => copy_device(t, seq, &c),
        Command::Memset(m) => memset(t, seq, &m),
        Command::WriteValue(w) => write_value(t, seq, &w),
        Command::StreamedCopy(c) => streamed::streamed_copy(t, seq, &c),
        Command::EventRecord(e) => event_record(t, seq, &e),
        Command::StreamWaitEvent(w) => stream_wait(t, seq, &w),
        Command::HostFn(h) => host_fn(t, seq, &h),
        Command::HostFnDone(d) => {
            t.host_fn_done(d.token);
            Ok(())
        }
        Command::Call(c) => call(t, seq, &c, calls),
        Command::HostFnReady(_) | Command::AsyncError(_) | Command::OpDone(_) => {
            Err(violation("a notify-ring record in the command ring"))
        }
    }
}

/// The key of stream handle `h`'s batches (the legacy stream's is 0, whatever its handle).
fn batch_key(h: u64) -> u64 {
    if TenantState::is_legacy(h) {
        0
    } else {
        h
    }
}

/// Submits one command on stream `h`: resolves the stream (with legacy joins), tracks the
/// command for completion, then queues `build`'s operation or records its error.
fn submit(
    t: &Arc<Tenant>,
    seq: u64,
    h: u64,
    release: Option<StagingSpan>,
    build: impl FnOnce(&mut TenantState, Arc<Stream>) -> Result<Vec<Op>, CuCode>,
) -> RResult {
    let mut guard = t.state();
    let Some(st) = guard.as_mut() else {
        return Ok(());
    };
    let (stream, slot, mut ops) = match st.prepare(h) {
        Ok(x) => x,
        Err(e) => {
            drop(guard);
            if let Some(span) = release {
                let _ = t.staging.free(span);
            }
            t.async_error(seq, e.code());
            return Ok(());
        }
    };
    let key = batch_key(h);
    let full = t.track(key, &stream, slot, seq, release);
    let failed = match build(st, stream) {
        Ok(built) => {
            ops.extend(built);
            None
        }
        Err(code) => Some(code),
    };
    let queued = t.enqueue(seq, ops);
    if let Some(b) = full {
        // After the command's operations: the marker reports them complete.
        t.close_full(b);
    }
    drop(guard);
    if let Some(code) = failed {
        t.async_error(seq, code);
    }
    if queued.is_err() {
        tracing::debug!(session = t.info.id, seq, "command dropped: session closing");
    }
    Ok(())
}

fn launch(t: &Arc<Tenant>, seq: u64, l: &Launch<'_>) -> RResult {
    submit(t, seq, l.stream, None, |st, stream| {
        let f = st.functions.get(l.function).map_err(|e| e.code())?;
        let needed = f
            .layout
            .iter()
            .map(|p| p.offset as usize + p.size as usize)
            .max()
            .unwrap_or(0);
        if l.params.len() < needed {
            return Err(code::ERROR_INVALID_VALUE);
        }
        let launch = Op::Launch {
            function: f.raw,
            kernel: Arc::clone(&f.name),
            sliced: f.sliced.clone(),
            grid: l.grid,
            block: l.block,
            shared: l.shared_mem_bytes,
            stream,
            params: l.params.to_vec(),
            layout: Arc::clone(&f.layout),
        };
        let (layout, may_write) = (Arc::clone(&f.layout), f.may_write.clone());
        let cow = dedup::launch_writes(t, st, seq, (l.params, &layout), may_write.as_deref());
        Ok(cow.into_iter().chain([launch]).collect())
    })
}

fn copy_host(t: &Arc<Tenant>, seq: u64, c: &CopyHost, htod: bool) -> RResult {
    let release = (c.flags & COPY_RELEASE_STAGING != 0).then_some(StagingSpan {
        offset: c.host_offset,
        len: c.len,
    });
    if c.flags & !COPY_FLAGS != 0 {
        return Err(violation(format!("unknown copy flags {:#x}", c.flags)));
    }
    if release.is_some() && c.host_region != proto::STAGING_REGION {
        return Err(violation(
            "COPY_RELEASE_STAGING on a registered host buffer",
        ));
    }
    // Resolve the host side first: a bad span closes the session.
    let host = {
        let guard = t.state();
        let Some(st) = guard.as_ref() else {
            return Ok(());
        };
        host_mem(t, st, c.host_region, c.host_offset, c.len)?
    };
    submit(t, seq, c.stream, release, |st, stream| {
        st.memory.check(c.device_ptr, c.len).map_err(|e| e.code())?;
        if !htod {
            return Ok(vec![Op::CopyDtoH {
                dst: host,
                src: c.device_ptr,
                stream,
            }]);
        }
        let (mut ops, keying) =
            dedup::upload_ops(t, st, seq, c.device_ptr, host, Arc::clone(&stream));
        // The keying rides on the batch's completion marker (this command is in the open
        // batch); a host function of its own only when the batch was just closed.
        if let Some(f) = keying {
            if let Err(f) = t.after_batch(batch_key(c.stream), f) {
                ops.push(dedup::after_copy(stream, f));
            }
        }
        Ok(ops)
    })?;
    if c.flags & COPY_MARK != 0 {
        t.close_batches();
    }
    Ok(())
}

fn copy_device(t: &Arc<Tenant>, seq: u64, c: &CopyDevice) -> RResult {
    submit(t, seq, c.stream, None, |st, stream| {
        st.memory.check(c.dst, c.len).map_err(|e| e.code())?;
        st.memory.check(c.src, c.len).map_err(|e| e.code())?;
        let cow = dedup::written(t, st, seq, c.dst, c.len);
        Ok(cow
            .into_iter()
            .chain([Op::CopyDtoD {
                dst: c.dst,
                src: c.src,
                len: c.len,
                stream,
            }])
            .collect())
    })
}

fn memset(t: &Arc<Tenant>, seq: u64, m: &Memset) -> RResult {
    submit(t, seq, m.stream, None, |st, stream| {
        let len = memset_extent(m.pitch, m.width, m.height, u64::from(m.element_size))
            .ok_or(code::ERROR_INVALID_VALUE)?;
        st.memory.check(m.dst, len).map_err(|e| e.code())?;
        let cow = dedup::written(t, st, seq, m.dst, len);
        Ok(cow
            .into_iter()
            .chain([Op::Memset {
                dst: m.dst,
                pitch: m.pitch,
                value: m.value,
                element_size: m.element_size,
                width: m.width,
                height: m.height,
                stream,
            }])
            .collect())
    })
}

fn write_value(t: &Arc<Tenant>, seq: u64, w: &WriteValue) -> RResult {
    submit(t, seq, w.stream, None, |st, stream| {
        if !w.addr.is_multiple_of(u64::from(w.size)) {
            return Err(code::ERROR_INVALID_VALUE);
        }
        st.memory
            .check(w.addr, u64::from(w.size))
            .map_err(|e| e.code())?;
        let cow = dedup::written(t, st, seq, w.addr, u64::from(w.size));
        Ok(cow
            .into_iter()
            .chain([Op::WriteValue {
                addr: w.addr,
                value: w.value as u32,
                flags: w.flags,
                stream,
            }])
            .collect())
    })
}

fn event_record(t: &Arc<Tenant>, seq: u64, e: &EventRecord) -> RResult {
    submit(t, seq, e.stream, None, |st, stream| {
        let event = st.events.get(e.event).map_err(|e| e.code())?;
        Ok(vec![Op::EventRecord {
            event: Arc::clone(event),
            stream,
            flags: e.flags,
        }])
    })
}

fn stream_wait(t: &Arc<Tenant>, seq: u64, w: &StreamWait) -> RResult {
    submit(t, seq, w.stream, None, |st, stream| {
        let event = st.events.get(w.event).map_err(|e| e.code())?;
        Ok(vec![Op::StreamWait {
            stream,
            event: Arc::clone(event),
            flags: w.flags,
        }])
    })
}

/// A host function: a gated marker that offers the function to the tenant and waits for its
/// `HOST_FN_DONE`. It counts against `max_host_fns` until the marker has run (or its operation
/// was dropped): past the bound the command fails with `CUDA_ERROR_OUT_OF_MEMORY` (an
/// asynchronous error, as the shim does not wait for the command).
fn host_fn(t: &Arc<Tenant>, seq: u64, h: &HostFn) -> RResult {
    let weak = Arc::downgrade(t);
    let (stream_handle, token) = (h.stream, h.token);
    submit(t, seq, h.stream, None, |_, stream| {
        let in_flight = t.limits.host_fn().map_err(|e| e.code())?;
        let f = Box::new(move || {
            let _in_flight = in_flight;
            let Some(t) = weak.upgrade() else {
                return;
            };
            if t.is_closing() {
                return;
            }
            t.host_fn_expect(token);
            let ready = HostFnReady {
                stream: stream_handle,
                token,
                seq,
            };
            if !t.notify_host_fn(ready) {
                t.async_error(seq, code::ERROR_LAUNCH_FAILED);
            } else if !t.host_fn_wait(token) && !t.is_closing() {
                tracing::warn!(session = t.info.id, token, "host function not done in time");
                t.async_error(seq, code::ERROR_TIMEOUT);
            }
        });
        Ok(vec![Op::HostFn {
            stream,
            f,
            gate: true,
        }])
    })
}

fn call(t: &Arc<Tenant>, _seq: u64, c: &Call<'_>, calls: &Sender<CallJob>) -> RResult {
    if c.slot >= t.replies.count() {
        return Err(violation(format!(
            "CALL names reply slot {}, the region has {}",
            c.slot,
            t.replies.count()
        )));
    }
    let to = ReplyTo::Slot {
        slot: c.slot,
        ticket: c.ticket,
    };
    let env: RequestEnvelope = match proto::decode(c.payload) {
        Ok(env) => env,
        Err(e) => {
            tracing::debug!(session = t.info.id, "undecodable CALL: {e}");
            let id = proto::peek_envelope_id(c.payload).unwrap_or(c.ticket);
            t.reply(to, ReplyEnvelope::error(id, code::ERROR_NOT_SUPPORTED));
            return Ok(());
        }
    };
    t.close_batches();
    let target = t.enqueued();
    if env.body.runs_inline() {
        // Earlier commands (e.g. the event record an EventQuery asks about) are submitted first.
        if t.wait_submitted(target) {
            let result = exec::execute(t, env.body, Vec::new());
            if let Some(reply) = exec::envelope(t, env.id, result) {
                t.reply(to, reply);
            }
        }
        return Ok(());
    }
    let job = CallJob {
        env,
        to,
        fds: Vec::new(),
        target: Some(target),
        fence: None,
    };
    t.calls_pending(1);
    if calls.send(job).is_err() {
        t.calls_pending(-1);
    }
    Ok(())
}
