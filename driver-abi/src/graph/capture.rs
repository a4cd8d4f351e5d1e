//! Stream capture: while a stream captures, the work submitted to it becomes graph nodes instead
//! of running (CUDA driver API, "Stream Capture"). Both libraries route their stream operations
//! through [`record`] (and events through [`event_record`] / [`wait_event`]) first; when nothing
//! captures, that is one relaxed atomic load.
//!
//! Rules kept, as CUDA's:
//! - a capture starts on a stream other than the legacy default stream and grows to other
//!   streams that wait on an event recorded in it (fork); it ends on the stream it started on,
//!   and every stream that joined must have been joined back (its last work an ancestor of the
//!   origin's), else `STREAM_CAPTURE_UNJOINED`;
//! - synchronising or querying a capturing stream, or an event recorded in a capture, is
//!   `STREAM_CAPTURE_UNSUPPORTED` / `CAPTURED_EVENT` and invalidates the capture;
//! - calls that may synchronise implicitly ([`UNSAFE_CALLS`]) are refused with
//!   `STREAM_CAPTURE_UNSUPPORTED`, invalidating the captures that forbid them, as the calling
//!   thread's mode says (`cuThreadExchangeStreamCaptureMode`: global, thread-local, relaxed);
//! - work on the legacy default stream while a blocking stream captures is
//!   `STREAM_CAPTURE_IMPLICIT` and invalidates that capture;
//! - an invalidated capture refuses further work (`STREAM_CAPTURE_INVALIDATED`) until it is
//!   ended, which returns the same error and no graph.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread::ThreadId;

use super::cuda::{CAPTURE_MODE_GLOBAL, CAPTURE_MODE_RELAXED};
use super::node::NodeKind;
use super::store::{with_store, Id};
use crate::cuda_h::CU_STREAM_NON_BLOCKING;
use crate::error::{CuError, CuResult};
use crate::surface::{DefaultStream, Out, Stream};
use crate::sys::{CUevent, CUstream, CU_STREAM_LEGACY, CU_STREAM_PER_THREAD};

/// The methods that may synchronise implicitly, refused while a capture forbids them.
pub const UNSAFE_CALLS: &[&str] = &[
    "ctx_synchronize",
    "mem_alloc",
    "mem_alloc_pitch",
    "mem_free",
    "mem_alloc_host",
    "mem_free_host",
    "mem_host_alloc",
    "memcpy",
    "memcpy_htod",
    "memcpy_dtoh",
    "memcpy_dtod",
    "memcpy_peer",
    "memcpy_2d",
    "memcpy_2d_unaligned",
    "memset_d8",
    "memset_d16",
    "memset_d32",
    "memset_d2d8",
    "memset_d2d16",
    "memset_d2d32",
    "module_load",
    "module_load_data",
    "module_load_data_ex",
    "module_load_fat_binary",
    "module_unload",
];

/// Which stream a handle names, for capture bookkeeping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamKey {
    /// The legacy default stream.
    Legacy,
    /// A thread's per-thread default stream.
    PerThread(ThreadId),
    /// A created stream.
    Handle(usize),
}

impl StreamKey {
    /// The stream `stream` names through a symbol with default-stream semantics `ds`.
    pub fn of(stream: CUstream, ds: DefaultStream) -> StreamKey {
        match stream as u64 {
            0 if ds.per_thread() => StreamKey::PerThread(std::thread::current().id()),
            0 | CU_STREAM_LEGACY => StreamKey::Legacy,
            CU_STREAM_PER_THREAD => StreamKey::PerThread(std::thread::current().id()),
            v => StreamKey::Handle(v as usize),
        }
    }
}

/// One capture sequence.
struct Capture {
    graph: Id,
    origin: StreamKey,
    mode: i32,
    thread: ThreadId,
    invalid: bool,
    /// Each participating stream's current dependencies (the nodes its next work depends on).
    frontier: HashMap<StreamKey, Vec<Id>>,
    /// Participating streams that synchronise with the legacy default stream.
    blocking: HashSet<StreamKey>,
    /// The dependencies last handed out by `cuStreamGetCaptureInfo` (valid until the next call).
    exposed: Vec<usize>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    captures: HashMap<u64, Capture>,
    by_stream: HashMap<StreamKey, u64>,
    /// Events last recorded in a capture: the capture and the dependencies at the record.
    events: HashMap<usize, (u64, Vec<Id>)>,
}

/// How many captures are in progress (the fast path's test).
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's capture-interaction mode (`cuThreadExchangeStreamCaptureMode`).
    static MODE: Cell<i32> = const { Cell::new(CAPTURE_MODE_GLOBAL) };
}

fn state() -> MutexGuard<'static, State> {
    static STATE: OnceLock<Mutex<State>> = OnceLock::new();
    let lock = STATE.get_or_init(Mutex::default);
    lock.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether any capture is in progress in the process.
#[inline]
pub fn any_active() -> bool {
    ACTIVE.load(Ordering::Relaxed) != 0
}

/// When a capture is in progress: `stream`'s key and the capture state (locked).
fn active(stream: CUstream, ds: DefaultStream) -> Option<(StreamKey, MutexGuard<'static, State>)> {
    any_active().then(|| (StreamKey::of(stream, ds), state()))
}

/// Whether `stream` synchronises with the legacy default stream (asked of the library, which
/// also checks the handle).
fn is_blocking<L: Stream>(stream: CUstream, ds: DefaultStream) -> CuResult<bool> {
    let mut flags = 0u32;
    L::stream_get_flags(stream, Out::to(&mut flags), ds)?;
    let created = matches!(StreamKey::of(stream, ds), StreamKey::Handle(_));
    Ok(created && flags & CU_STREAM_NON_BLOCKING == 0)
}

/// `cuStreamBeginCapture*`: starts capturing `stream` into `graph` (a new graph when `None`),
/// its first work depending on `deps`.
pub fn begin<L: Stream>(
    stream: CUstream,
    ds: DefaultStream,
    mode: i32,
    graph: Option<Id>,
    deps: Vec<Id>,
) -> CuResult {
    let key = StreamKey::of(stream, ds);
    if !(CAPTURE_MODE_GLOBAL..=CAPTURE_MODE_RELAXED).contains(&mode) {
        return Err(CuError::INVALID_VALUE);
    }
    if key == StreamKey::Legacy {
        tracing::warn!("stream capture cannot start on the legacy default stream");
        return Err(CuError::STREAM_CAPTURE_UNSUPPORTED);
    }
    let blocking = is_blocking::<L>(stream, ds)?;
    let mut st = state();
    if st.by_stream.contains_key(&key) {
        return Err(CuError::ILLEGAL_STATE);
    }
    let graph = match graph {
        Some(g) => g,
        None => with_store(|s| s.create_graph()),
    };
    st.next_id += 1;
    let id = st.next_id;
    let capture = Capture {
        graph,
        origin: key,
        mode,
        thread: std::thread::current().id(),
        invalid: false,
        frontier: HashMap::from([(key, deps)]),
        blocking: if blocking {
            HashSet::from([key])
        } else {
            HashSet::new()
        },
        exposed: Vec::new(),
    };
    st.captures.insert(id, capture);
    st.by_stream.insert(key, id);
    ACTIVE.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// `cuStreamDestroy` of a stream that takes part in a capture: a capture it started ends (its
/// graph is dropped); a stream that joined one leaves it.
pub fn forget_stream(stream: CUstream) {
    let Some((key, mut st)) = active(stream, DefaultStream::Legacy) else {
        return;
    };
    let Some(id) = st.by_stream.remove(&key) else {
        return;
    };
    let origin = st.captures.get(&id).is_some_and(|c| c.origin == key);
    if !origin {
        if let Some(c) = st.captures.get_mut(&id) {
            c.frontier.remove(&key);
            c.blocking.remove(&key);
        }
        return;
    }
    let c = st.captures.remove(&id).expect("present");
    st.by_stream.retain(|_, v| *v != id);
    st.events.retain(|_, (v, _)| *v != id);
    ACTIVE.fetch_sub(1, Ordering::Relaxed);
    drop(st);
    tracing::warn!("a capturing stream was destroyed: its capture ends without a graph");
    let _ = with_store(|s| s.destroy_graph(c.graph));
}

/// `cuStreamEndCapture`: the captured graph, or why there is none (the capture ends either way).
pub fn end(stream: CUstream, ds: DefaultStream) -> CuResult<Id> {
    let key = StreamKey::of(stream, ds);
    let mut st = state();
    let id = *st.by_stream.get(&key).ok_or(CuError::ILLEGAL_STATE)?;
    let c = &st.captures[&id];
    if c.origin != key {
        return Err(CuError::STREAM_CAPTURE_UNMATCHED);
    }
    if c.mode != CAPTURE_MODE_RELAXED && c.thread != std::thread::current().id() {
        return Err(CuError::STREAM_CAPTURE_WRONG_THREAD);
    }
    let c = st.captures.remove(&id).expect("present");
    st.by_stream.retain(|_, v| *v != id);
    st.events.retain(|_, (v, _)| *v != id);
    ACTIVE.fetch_sub(1, Ordering::Relaxed);
    drop(st);
    let outcome = if c.invalid {
        Err(CuError::STREAM_CAPTURE_INVALIDATED)
    } else {
        unjoined(&c)
    };
    if let Err(e) = outcome {
        tracing::warn!("stream capture ended without a graph: {}", e.name());
        let _ = with_store(|s| s.destroy_graph(c.graph));
        return Err(e);
    }
    Ok(c.graph)
}

/// `STREAM_CAPTURE_UNJOINED` when a forked stream's last work is not an ancestor of the origin's.
fn unjoined(c: &Capture) -> CuResult {
    let origin = c.frontier.get(&c.origin).cloned().unwrap_or_default();
    with_store(|s| {
        let ancestors = s.graph(c.graph)?.ancestors_of(&origin);
        let joined = c.frontier.values().flatten().all(|n| ancestors.contains(n));
        if joined {
            Ok(())
        } else {
            tracing::warn!(
                "stream capture: a forked stream was not joined back to the origin stream"
            );
            Err(CuError::STREAM_CAPTURE_UNJOINED)
        }
    })
}

/// A stream's capture state: status, capture id, graph and current dependencies.
pub struct Status {
    /// `CUstreamCaptureStatus`
    pub status: i32,
    /// The capture's id (0 when not capturing).
    pub id: u64,
    /// The graph being built.
    pub graph: Option<Id>,
    /// Pointer to the current dependencies (valid until the next capture call on the stream).
    pub deps: *const usize,
    /// How many.
    pub count: usize,
}

/// The capture state of `stream`.
pub fn status(stream: CUstream, ds: DefaultStream) -> Status {
    use super::cuda::{CAPTURE_STATUS_ACTIVE, CAPTURE_STATUS_INVALIDATED, CAPTURE_STATUS_NONE};
    let key = StreamKey::of(stream, ds);
    let mut st = state();
    let Some(&id) = st.by_stream.get(&key) else {
        return Status {
            status: CAPTURE_STATUS_NONE,
            id: 0,
            graph: None,
            deps: std::ptr::null(),
            count: 0,
        };
    };
    let c = st.captures.get_mut(&id).expect("indexed");
    c.exposed = c.frontier.get(&key).cloned().unwrap_or_default();
    let status = if c.invalid {
        CAPTURE_STATUS_INVALIDATED
    } else {
        CAPTURE_STATUS_ACTIVE
    };
    Status {
        status,
        id,
        graph: Some(c.graph),
        deps: c.exposed.as_ptr(),
        count: c.exposed.len(),
    }
}

/// `cuStreamUpdateCaptureDependencies`: replaces (`set`) or extends the stream's dependencies.
pub fn update_dependencies(
    stream: CUstream,
    ds: DefaultStream,
    deps: &[Id],
    set: bool,
) -> CuResult {
    let key = StreamKey::of(stream, ds);
    let mut st = state();
    let id = *st.by_stream.get(&key).ok_or(CuError::ILLEGAL_STATE)?;
    let c = st.captures.get_mut(&id).expect("indexed");
    if c.invalid {
        return Err(CuError::STREAM_CAPTURE_INVALIDATED);
    }
    let graph = c.graph;
    let foreign = with_store(|s| deps.iter().any(|d| s.node_graph.get(d) != Some(&graph)));
    if foreign {
        return Err(CuError::INVALID_VALUE);
    }
    let frontier = c.frontier.entry(key).or_default();
    if set {
        frontier.clear();
    }
    for d in deps {
        if !frontier.contains(d) {
            frontier.push(*d);
        }
    }
    Ok(())
}

/// Routes one piece of stream work: `None` when `stream` does not capture (the library runs the
/// work); otherwise the work becomes a node built by `kind` (or the capture's error).
pub fn record(
    stream: CUstream,
    ds: DefaultStream,
    kind: impl FnOnce() -> CuResult<NodeKind>,
) -> Option<CuResult> {
    let (key, mut st) = active(stream, ds)?;
    let Some(&id) = st.by_stream.get(&key) else {
        return implicit(&mut st, key);
    };
    let c = st.captures.get_mut(&id).expect("indexed");
    if c.invalid {
        return Some(Err(CuError::STREAM_CAPTURE_INVALIDATED));
    }
    let kind = match kind() {
        Ok(k) => k,
        Err(e) => return Some(Err(e)),
    };
    let deps = c.frontier.get(&key).cloned().unwrap_or_default();
    Some(
        with_store(|s| s.add_node(c.graph, &deps, kind)).map(|node| {
            c.frontier.insert(key, vec![node]);
        }),
    )
}

/// Stream work that cannot be captured (`cuStreamAddCallback`: host nodes are
/// `cuLaunchHostFunc`'s): `STREAM_CAPTURE_UNSUPPORTED` on a capturing stream, else `None`.
pub fn not_capturable(stream: CUstream, ds: DefaultStream, what: &str) -> Option<CuResult> {
    record(stream, ds, || {
        tracing::warn!("{what} on a capturing stream");
        Err(CuError::STREAM_CAPTURE_UNSUPPORTED)
    })
}

/// Work on the legacy default stream while a blocking stream captures: refused, and the
/// capture invalidated.
fn implicit(st: &mut State, key: StreamKey) -> Option<CuResult> {
    if key != StreamKey::Legacy {
        return None;
    }
    let mut hit = false;
    for c in st.captures.values_mut().filter(|c| !c.blocking.is_empty()) {
        c.invalid = true;
        hit = true;
    }
    hit.then(|| {
        tracing::warn!("work on the legacy default stream while a blocking stream captures");
        Err(CuError::STREAM_CAPTURE_IMPLICIT)
    })
}

/// `cuEventRecord` on a capturing stream: the event remembers the stream's dependencies (no
/// node), or, `external`, becomes an event-record node. On a stream that does not capture, the
/// event forgets any capture it was recorded in, and the library records it (`None`).
pub fn event_record(
    event: CUevent,
    stream: CUstream,
    ds: DefaultStream,
    external: bool,
) -> Option<CuResult> {
    let (key, mut st) = active(stream, ds)?;
    let Some(&id) = st.by_stream.get(&key) else {
        st.events.remove(&(event as usize));
        return implicit(&mut st, key);
    };
    if external {
        drop(st);
        return record(stream, ds, || Ok(NodeKind::EventRecord(event)));
    }
    let c = &st.captures[&id];
    if c.invalid {
        return Some(Err(CuError::STREAM_CAPTURE_INVALIDATED));
    }
    let deps = c.frontier.get(&key).cloned().unwrap_or_default();
    st.events.insert(event as usize, (id, deps));
    Some(Ok(()))
}

/// `cuStreamWaitEvent`: waiting on an event recorded in a capture joins the stream to that
/// capture (fork) or adds the event's dependencies (join); a capturing stream waiting on an
/// event from outside its capture is `STREAM_CAPTURE_ISOLATION`, unless `external` (an
/// event-wait node). `None`: nothing to do with captures, the library waits.
pub fn wait_event<L: Stream>(
    stream: CUstream,
    ds: DefaultStream,
    event: CUevent,
    external: bool,
) -> Option<CuResult> {
    if !any_active() {
        return None;
    }
    let key = StreamKey::of(stream, ds);
    let blocking = is_blocking::<L>(stream, ds).unwrap_or(false);
    let mut st = state();
    let recorded = st.events.get(&(event as usize)).cloned();
    let current = st.by_stream.get(&key).copied();
    match (recorded, current) {
        (None, None) => implicit(&mut st, key),
        (None, Some(_)) if external => {
            drop(st);
            record(stream, ds, || Ok(NodeKind::EventWait(event)))
        }
        (None, Some(_)) => {
            tracing::warn!("a capturing stream waited on an event recorded outside its capture");
            Some(Err(CuError::STREAM_CAPTURE_ISOLATION))
        }
        (Some((cap, _)), Some(cur)) if cap != cur => Some(Err(CuError::STREAM_CAPTURE_MERGE)),
        (Some((cap, deps)), _) => {
            let c = st.captures.get_mut(&cap).expect("indexed");
            let frontier = c.frontier.entry(key).or_default();
            for d in deps {
                if !frontier.contains(&d) {
                    frontier.push(d);
                }
            }
            if blocking {
                c.blocking.insert(key);
            }
            st.by_stream.insert(key, cap);
            Some(Ok(()))
        }
    }
}

/// `cuStreamSynchronize` / `cuStreamQuery` of a capturing stream: refused, the capture
/// invalidated.
pub fn check_stream_sync(stream: CUstream, ds: DefaultStream) -> CuResult {
    let Some((key, mut st)) = active(stream, ds) else {
        return Ok(());
    };
    let Some(&id) = st.by_stream.get(&key) else {
        return Ok(());
    };
    st.captures.get_mut(&id).expect("indexed").invalid = true;
    tracing::warn!("synchronising a capturing stream: the capture is invalidated");
    Err(CuError::STREAM_CAPTURE_UNSUPPORTED)
}

/// `cuEventQuery` / `cuEventSynchronize` of an event last recorded in a capture.
pub fn check_event(event: CUevent) -> CuResult {
    if any_active() && state().events.contains_key(&(event as usize)) {
        return Err(CuError::CAPTURED_EVENT);
    }
    Ok(())
}

/// A call that may synchronise implicitly (`sym`, one of [`UNSAFE_CALLS`]): refused, and the
/// captures that forbid it invalidated, when this thread's mode says so.
pub fn check_unsafe_call(sym: &str) -> CuResult {
    if !any_active() {
        return Ok(());
    }
    let mode = MODE.with(Cell::get);
    if mode == CAPTURE_MODE_RELAXED {
        return Ok(());
    }
    let me = std::thread::current().id();
    let mut st = state();
    let mut refused = false;
    for c in st.captures.values_mut() {
        let mine = c.thread == me && c.mode != CAPTURE_MODE_RELAXED;
        let global = mode == CAPTURE_MODE_GLOBAL && c.mode == CAPTURE_MODE_GLOBAL;
        if mine || global {
            c.invalid = true;
            refused = true;
        }
    }
    if refused {
        tracing::warn!("{sym}: not permitted while a stream captures; the capture is invalidated");
        return Err(CuError::STREAM_CAPTURE_UNSUPPORTED);
    }
    Ok(())
}

/// `cuThreadExchangeStreamCaptureMode`: sets this thread's mode, returning the previous one.
pub fn exchange_mode(mode: i32) -> CuResult<i32> {
    if !(CAPTURE_MODE_GLOBAL..=CAPTURE_MODE_RELAXED).contains(&mode) {
        return Err(CuError::INVALID_VALUE);
    }
    Ok(MODE.with(|m| m.replace(mode)))
}
