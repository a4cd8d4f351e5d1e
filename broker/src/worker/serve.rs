//! A worker's command ring: the ring thread and the executors.
//!
//! Asynchronous records go to the driver as they are popped, in ring order (the broker's
//! scheduler decided that order); a failure is posted as `ASYNC_ERROR{seq, code}` on the notify
//! ring. Timed records (launches, copies, memsets: [`timed_stream`]) are bracketed with events
//! and each gets one `OP_DONE{seq, device_ns}` from the timing thread ([`super::timing`]). A
//! `HOST_FN` record enqueues a completion marker whose host function posts
//! `HOST_FN_READY{stream, token, code}`. `CALL` records carry a [`WorkerRequest`]: non-blocking
//! ones are answered inline, blocking ones are handed to the executors — so a synchronisation
//! never stops the ring, and everything the ring submitted before a call is in the driver's
//! streams before the call runs.

use std::ffi::CString;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

use gpushare_client::code;
use gpushare_client::proto as wire;
use gpushare_client::ring::record::{AsyncError, Call, HostFnReady, STREAMED_HTOD};
use gpushare_client::ring::{Command, Consumer, Producer, RecordBuf};
use gpushare_client::shm::channel::CHANNEL_BYTES;
use gpushare_client::shm::{Region, ReplySlots};
use gpushare_client::wait::{AdaptiveSpin, SeqWord, WaitError, WaitPolicy};

use super::driver::Stream;
use super::driver::{AccessFlags, DResult, DeviceError, Driver, StreamedRun, VmmAlloc};
use super::gates::Gates;
use super::objects::Objects;
use super::proto::{timed_stream, WorkerReply, WorkerRequest, GATED, GATE_LIMIT};
use super::timing::Timer;

/// Executor threads for blocking calls.
const EXECUTORS: usize = 4;

/// A blocking call on its way to an executor.
struct Job {
    slot: u32,
    ticket: u64,
    req: WorkerRequest,
}

/// What the ring thread and the executors share.
struct Ctx {
    obj: Arc<Objects>,
    region: Arc<Region>,
    replies: ReplySlots,
    notify: Arc<Mutex<Producer>>,
    gates: Arc<Gates>,
    timer: Timer,
}

/// Starts the ring thread and the executors.
pub fn spawn(obj: Arc<Objects>, region: Arc<Region>) -> std::io::Result<()> {
    let notify = region.notify_producer().map_err(std::io::Error::other)?;
    let consumer = region.command_consumer().map_err(std::io::Error::other)?;
    let notify = Arc::new(Mutex::new(notify));
    let timer = Timer::spawn(Arc::clone(&obj.drv), Arc::clone(&notify))?;
    let ctx = Arc::new(Ctx {
        replies: region.replies(),
        notify,
        gates: Gates::new(&obj.drv),
        timer,
        obj,
        region,
    });
    let (tx, rx) = channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..EXECUTORS {
        let (ctx, rx) = (Arc::clone(&ctx), Arc::clone(&rx));
        std::thread::Builder::new()
            .name(format!("gpushare-wexec-{i}"))
            .spawn(move || executor(&ctx, &rx))?;
    }
    std::thread::Builder::new()
        .name("gpushare-wring".into())
        .spawn(move || ring(&ctx, consumer, tx))?;
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Ctx {
    fn post(&self, cmd: &Command<'_>) {
        if let Err(e) = lock(&self.notify).push(cmd) {
            tracing::error!("notify ring: {e}");
        }
    }

    fn reply(&self, slot: u32, ticket: u64, r: WorkerReply) {
        let bytes = match wire::encode(&r) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!("encoding a reply: {e}");
                return;
            }
        };
        if let Err(e) = self.replies.complete(slot, ticket, &bytes) {
            tracing::error!("reply slot {slot}: {e}");
        }
    }
}

fn ring(ctx: &Ctx, mut consumer: Consumer, calls: Sender<Job>) {
    let layout = ctx.region.layout();
    let Ok(head) = SeqWord::at(ctx.region.mapping(), layout.cmd_ring_ctl as usize) else {
        tracing::error!("command ring head unreadable");
        return;
    };
    let mut spin = AdaptiveSpin::new(WaitPolicy::default());
    let mut buf = RecordBuf::new();
    loop {
        match consumer.try_pop(&mut buf) {
            Ok(Some(p)) => {
                let seq = p.seq;
                if let Err(e) = handle(ctx, seq, p.cmd, &calls) {
                    ctx.post(&Command::AsyncError(AsyncError {
                        seq,
                        code: e.code(),
                        reserved: 0,
                    }));
                }
            }
            Ok(None) => {
                let waited = head.wait_adaptive(
                    |_| !consumer.is_empty(),
                    &mut spin,
                    || !ctx.region.is_open(),
                );
                match waited {
                    Ok(_) | Err(WaitError::TimedOut) => {}
                    Err(WaitError::Cancelled) => return,
                    Err(e) => {
                        tracing::error!("command ring wait: {e}");
                        return;
                    }
                }
            }
            Err(e) => {
                tracing::error!("command ring: {e}");
                return;
            }
        }
    }
}

/// Executes one record (submission only: the driver runs it later).
fn handle(ctx: &Ctx, seq: u64, cmd: Command<'_>, calls: &Sender<Job>) -> DResult<()> {
    let o = &ctx.obj;
    let d = &o.drv;
    match cmd {
        Command::Launch(_)
        | Command::MemcpyHtoD(_)
        | Command::MemcpyDtoH(_)
        | Command::MemcpyDtoD(_)
        | Command::StreamedCopy(_)
        | Command::Memset(_) => timed(ctx, seq, &cmd),
        Command::WriteValue(w) => {
            d.write_value32(w.addr, w.value as u32, w.flags, &*o.stream(w.stream)?)
        }
        Command::EventRecord(e) => {
            d.event_record(&*o.event(e.event)?, &*o.stream(e.stream)?, e.flags)
        }
        Command::StreamWaitEvent(w) => {
            d.stream_wait_event(&*o.stream(w.stream)?, &*o.event(w.event)?, w.flags)
        }
        Command::HostFn(h) => marker(ctx, h.stream, h.token),
        Command::Call(c) => call(ctx, &c, calls),
        Command::HostFnDone(d) => {
            ctx.gates.open(d.token);
            Ok(())
        }
        Command::HostFnReady(_) | Command::AsyncError(_) | Command::OpDone(_) => {
            tracing::error!(seq, "record kind not for a worker's command ring");
            Err(DeviceError::Invalid("record kind not for a worker"))
        }
    }
}

/// A timed record: submitted between a start and an end event on its stream; its `OP_DONE`
/// follows from the timing thread, with or without a time, whatever happens here.
fn timed(ctx: &Ctx, seq: u64, cmd: &Command<'_>) -> DResult<()> {
    let stream = timed_stream(cmd)
        .ok_or(DeviceError::Invalid("not a timed record"))
        .and_then(|id| ctx.obj.stream(id));
    let s = match stream {
        Ok(s) => s,
        Err(e) => {
            ctx.timer.failed(seq);
            return Err(e);
        }
    };
    if let Command::StreamedCopy(_) = cmd {
        let submitted = submit(ctx, cmd, &s);
        ctx.timer.untimed(seq, submitted.is_ok().then_some(&s));
        return submitted;
    }
    let start = ctx.timer.start(&s);
    let submitted = submit(ctx, cmd, &s);
    let engine = match cmd {
        Command::MemcpyHtoD(_) => 1,
        Command::MemcpyDtoH(_) => 2,
        _ => 0,
    };
    ctx.timer.finish(seq, engine, &s, start, submitted.is_ok());
    submitted
}

/// Submits a timed record on its (resolved) stream `s`.
fn submit(ctx: &Ctx, cmd: &Command<'_>, s: &Stream) -> DResult<()> {
    let o = &ctx.obj;
    let d = &o.drv;
    match cmd {
        Command::Launch(l) => {
            let f = o.function(l.function)?;
            d.launch(
                f.raw,
                l.grid,
                l.block,
                l.shared_mem_bytes,
                s,
                l.params,
                &f.layout,
            )
        }
        Command::MemcpyHtoD(c) => {
            let src = o.host_mem(c.host_region, c.host_offset, c.len)?;
            d.memcpy_htod_async(c.device_ptr, src, s)
        }
        Command::MemcpyDtoH(c) => {
            let dst = o.host_mem(c.host_region, c.host_offset, c.len)?;
            d.memcpy_dtoh_async(dst, c.device_ptr, s)
        }
        Command::MemcpyDtoD(c) => d.memcpy_dtod_async(c.dst, c.src, c.len, s),
        Command::StreamedCopy(c) => {
            let run = StreamedRun {
                htod: c.flags & STREAMED_HTOD != 0,
                dev: c.device_ptr,
                channel: o.host_mem(c.host_region, c.channel, CHANNEL_BYTES)?,
                channel_dptr: o.host_device_ptr(c.host_region, c.channel)?,
                first: c.first_piece,
                len: c.len,
            };
            d.streamed_copy(run, s)
        }
        Command::Memset(m) => d.memset_async(
            m.dst,
            m.pitch,
            m.value,
            m.element_size,
            m.width,
            m.height,
            s,
        ),
        _ => Err(DeviceError::Invalid("not a timed record")),
    }
}

/// A completion marker: when the stream reaches it, `HOST_FN_READY{stream, token, code}` (the
/// code of the driver error that made it run early, else 0); a gate ([`GATED`]) then holds the
/// stream until the broker opens it.
fn marker(ctx: &Ctx, stream: u64, token: u64) -> DResult<()> {
    let s = ctx.obj.stream(stream)?;
    let (notify, gates) = (Arc::clone(&ctx.notify), Arc::clone(&ctx.gates));
    // A gate waits in the stream when it can (see `gates`), else in the host function.
    let in_stream = (token & GATED != 0)
        .then(|| gates.reserve(stream, token))
        .flatten();
    let blocking = token & GATED != 0 && in_stream.is_none();
    ctx.obj.drv.launch_host_fn(
        &s,
        Box::new(move |code| {
            let seq = u64::from(code);
            let ready = Command::HostFnReady(HostFnReady { stream, token, seq });
            if let Err(e) = lock(&notify).push(&ready) {
                tracing::error!("notify ring: {e}");
                return;
            }
            if blocking && !gates.pass(token) {
                tracing::error!(
                    token,
                    "a host function's gate stayed closed for {GATE_LIMIT:?}; the stream goes on"
                );
            }
        }),
    )?;
    match in_stream {
        Some(r) => ctx.gates.queue(&ctx.obj.drv, &s, token, r),
        None => Ok(()),
    }
}

fn call(ctx: &Ctx, c: &Call<'_>, calls: &Sender<Job>) -> DResult<()> {
    let req: WorkerRequest = match wire::decode(c.payload) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("undecodable call: {e}");
            ctx.reply(
                c.slot,
                c.ticket,
                WorkerReply::Failed(code::ERROR_INVALID_VALUE),
            );
            return Ok(());
        }
    };
    if let WorkerRequest::StreamDestroy { stream } = req {
        ctx.gates.forget_stream(stream);
    }
    if req.blocks() {
        let job = Job {
            slot: c.slot,
            ticket: c.ticket,
            req,
        };
        if calls.send(job).is_err() {
            ctx.reply(
                c.slot,
                c.ticket,
                WorkerReply::Failed(code::ERROR_DEINITIALIZED),
            );
        }
    } else {
        let r = execute(&ctx.obj, req);
        ctx.reply(c.slot, c.ticket, r);
    }
    Ok(())
}

fn executor(ctx: &Ctx, jobs: &Mutex<Receiver<Job>>) {
    loop {
        let job = match lock(jobs).recv() {
            Ok(j) => j,
            Err(_) => return,
        };
        let r = execute(&ctx.obj, job.req);
        ctx.reply(job.slot, job.ticket, r);
    }
}

fn reply<T>(r: DResult<T>, ok: impl FnOnce(T) -> WorkerReply) -> WorkerReply {
    match r {
        Ok(v) => ok(v),
        Err(e) => WorkerReply::Failed(e.code()),
    }
}

fn done(r: DResult<()>) -> WorkerReply {
    reply(r, |()| WorkerReply::Done)
}

fn name(s: String) -> DResult<CString> {
    CString::new(s).map_err(|_| DeviceError::Invalid("name with a NUL byte"))
}

fn access(a: u8) -> AccessFlags {
    match a {
        3 => AccessFlags::ReadWrite,
        1 => AccessFlags::Read,
        _ => AccessFlags::None,
    }
}

/// The VMM requests of [`execute`]: address ranges, physical allocations, mappings, access,
/// VMM-backed allocations, and deduplication's granule operations; any other request comes
/// back as `Err`.
fn execute_vmm(d: &Driver, req: WorkerRequest) -> Result<WorkerReply, WorkerRequest> {
    use WorkerRequest as R;
    Ok(match req {
        R::AddressReserve {
            size,
            align,
            addr,
            flags,
        } => reply(
            d.address_reserve(size, align, addr, flags),
            WorkerReply::Value,
        ),
        R::AddressFree { ptr, size } => done(d.address_free(ptr, size)),
        R::MemCreate { size } => reply(d.mem_create(size), WorkerReply::Value),
        R::MemRelease { handle } => done(d.mem_release(handle)),
        R::MemMap {
            ptr,
            size,
            offset,
            handle,
        } => done(d.mem_map(ptr, size, offset, handle)),
        R::MemUnmap { ptr, size } => done(d.mem_unmap(ptr, size)),
        R::MemSetAccess {
            ptr,
            size,
            access: a,
        } => done(d.mem_set_access(ptr, size, access(a))),
        R::VmmAlloc { size } => reply(d.vmm_alloc(size), |a| WorkerReply::Alloc {
            ptr: a.ptr,
            size: a.size,
            handle: a.handle,
        }),
        R::VmmFree { ptr, size, handle } => done(d.vmm_free(&VmmAlloc { ptr, size, handle })),
        R::VmmAllocGranules { size } => reply(d.vmm_alloc_granules(size), |(ptr, handles)| {
            WorkerReply::Granules { ptr, handles }
        }),
        R::VmmFreeGranules { ptr, handles } => done(d.vmm_free_granules(ptr, &handles)),
        R::GranuleJoin { addr, old, shared } => done(d.granule_join(addr, old, shared)),
        R::GranulePrivatize { addr } => reply(d.granule_privatize(addr), WorkerReply::Value),
        R::HandleKey { handle, pieces } => reply(d.handle_key(handle, &pieces), |(key, prefix)| {
            WorkerReply::Key(key, prefix)
        }),
        other => return Err(other),
    })
}

/// The stream and event requests of [`execute`]; any other request comes back as `Err`.
fn execute_streams(o: &Objects, req: WorkerRequest) -> Result<WorkerReply, WorkerRequest> {
    use WorkerRequest as R;
    let d = &o.drv;
    Ok(match req {
        R::StreamCreate { flags, priority } => {
            reply(o.add_stream(flags, priority), WorkerReply::Value)
        }
        R::StreamDestroy { stream } => done(o.remove_stream(stream)),
        R::StreamQuery { stream } => reply(
            o.stream(stream).and_then(|s| d.stream_query(&s)),
            WorkerReply::Flag,
        ),
        R::StreamSynchronize { stream } => {
            done(o.stream(stream).and_then(|s| d.stream_synchronize(&s)))
        }
        R::EventCreate { flags } => reply(o.add_event(flags), WorkerReply::Value),
        R::EventDestroy { event } => done(o.remove_event(event)),
        R::EventQuery { event } => reply(
            o.event(event).and_then(|e| d.event_query(&e)),
            WorkerReply::Flag,
        ),
        R::EventSynchronize { event } => done(o.event(event).and_then(|e| d.event_synchronize(&e))),
        R::EventElapsed { start, end } => {
            let ms = o
                .event(start)
                .and_then(|a| d.event_elapsed(&a, &*o.event(end)?));
            reply(ms, WorkerReply::Millis)
        }
        other => return Err(other),
    })
}

/// Runs one synchronous request.
fn execute(o: &Objects, req: WorkerRequest) -> WorkerReply {
    use WorkerRequest as R;
    let d = &o.drv;
    let req = match execute_vmm(d, req).or_else(|req| execute_streams(o, req)) {
        Ok(reply) => return reply,
        Err(req) => req,
    };
    match req {
        R::MemGetInfo => reply(d.mem_get_info(), |(f, t)| WorkerReply::Pair(f, t)),
        R::Granularity { option } => reply(d.allocation_granularity(option), WorkerReply::Value),
        R::ModuleLoad {
            region,
            offset,
            len,
            max_globals,
        } => {
            let loaded = o
                .read_region(region, offset, len)
                .and_then(|image| o.load_module(image, max_globals));
            reply(loaded, |(module, globals)| {
                WorkerReply::Pair(module, globals)
            })
        }
        R::ModuleUnload { module } => done(o.unload_module(module)),
        R::ModuleGetFunction { module, name: n } => {
            let found = name(n).and_then(|n| o.get_function(module, &n));
            reply(found, |(function, params, may_write)| {
                WorkerReply::Function {
                    function,
                    params,
                    may_write,
                }
            })
        }
        R::ModuleGetGlobal { module, name: n } => {
            let found = name(n).and_then(|n| d.module_get_global(o.module(module)?, &n));
            reply(found, |(p, s)| WorkerReply::Pair(p, s))
        }
        R::FuncGetAttribute {
            function,
            attribute,
        } => reply(
            o.function(function)
                .and_then(|f| d.func_get_attribute(f.raw, attribute)),
            WorkerReply::Int,
        ),
        R::FuncSetAttribute {
            function,
            attribute,
            value,
        } => done(
            o.function(function)
                .and_then(|f| d.func_set_attribute(f.raw, attribute, value)),
        ),
        R::CtxGetLimit { limit } => reply(d.ctx_get_limit(limit), WorkerReply::Value),
        R::CtxSetLimit { limit, value } => done(d.ctx_set_limit(limit, value)),
        // The VMM, stream and event requests, answered above.
        _ => WorkerReply::Failed(code::ERROR_NOT_SUPPORTED),
    }
}
