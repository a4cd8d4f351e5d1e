//! Streams, events, modules and the executor that runs queued work and models its timing.
//!
//! - [`executor`]: the executor thread and ops; [`op`]: their completion records;
//!   [`callback`]: the host-callback thread (host functions, stream callbacks); [`value_wait`]:
//!   stream memory-operation waits (served there) and the wake-up of stream writes.
//! - [`timing`]: the timing model (pure); [`bulk_copy`]: the copy engine's large copies, with
//!   streaming stores.
//! - [`stream`], [`event`]: streams (legacy, per-thread, created) and events.
//! - [`module`], [`image`], [`fatbin`]: modules, libraries, functions and the images they come from.
//!
//! This layer sits below the driver-global state ([`crate::state`]) and never reaches it: the
//! [`Executor`] is given device memory and the driver clock when it is created.
//!
//! See docs/cpu-device.md, sections "Execution" and "Timing model".

pub mod bulk_copy;
pub mod callback;
pub mod decompress;
pub mod event;
pub mod executor;
pub mod fatbin;
pub mod image;
pub mod module;
pub mod op;
pub mod stream;
pub mod timing;
pub mod value_wait;
pub mod work;

use std::collections::VecDeque;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};

use dashmap::{DashMap, DashSet};

use crate::clock::Clock;
use crate::context::Context;
use crate::error::CuResult;
use crate::handles::{HandleKind, HandleTable};
use crate::memory::DeviceMemory;
use crate::profile::DeviceProfile;

pub use event::Event;
pub use module::{Function, KernelObj, Library, LoadedModule};
pub use op::OpState;
pub use stream::{Stream, StreamKind};

/// The work queue (ops in submission order).
#[derive(Default)]
pub(crate) struct Queue {
    pub(crate) ops: VecDeque<executor::Op>,
    pub(crate) next_seq: u64,
    /// The executor thread waits for work: a new op must notify it (a busy one takes the next
    /// op without being woken, so a burst of submissions costs no system call each).
    pub(crate) idle: bool,
}

/// Executes queued work and models its timing; owns streams, events, modules and libraries.
pub struct Executor {
    /// The modelled device.
    pub profile: DeviceProfile,
    /// `GPUSHARE_CPU_PACING=1`: completions become visible only at their modelled end.
    pub pacing: bool,
    /// Host threads a kernel's blocks run on (`GPUSHARE_CPU_THREADS`, default: available cores).
    pub worker_threads: usize,
    /// Device memory that copies, memsets and kernels run over, and module variables live in.
    pub(crate) memory: Arc<DeviceMemory>,
    /// The driver clock (submission times, pacing).
    pub(crate) clock: Clock,
    /// This executor, for the executor thread it starts.
    this: Weak<Executor>,
    pub(crate) queue: Mutex<Queue>,
    pub(crate) queue_cv: Condvar,
    pub(crate) done_lock: Mutex<()>,
    pub(crate) done_cv: Condvar,
    /// Threads waiting on `done_cv` for something other than one op (deferred ops of a context,
    /// an executor's blockers): every completion wakes them.
    pub(crate) general_waiters: AtomicU32,
    /// Set once the executor thread is started (false if it could not be).
    pub(crate) worker: OnceLock<bool>,
    /// Ops deferred to the host-callback thread.
    pub(crate) callbacks: Mutex<callback::CallbackQueue>,
    pub(crate) callbacks_cv: Condvar,
    /// Set once the host-callback thread is started (false if it could not be).
    pub(crate) callback_worker: OnceLock<bool>,
    /// Contexts being released: their pending stream waits end with an error.
    pub(crate) closing: DashSet<u64>,
    /// Created streams.
    pub streams: HandleTable<Stream>,
    /// Events.
    pub events: HandleTable<Event>,
    /// Module instances.
    pub modules: HandleTable<LoadedModule>,
    /// Functions.
    pub functions: HandleTable<Function>,
    /// Libraries.
    pub libraries: HandleTable<Library>,
    /// Library kernels.
    pub kernels: HandleTable<KernelObj>,
    /// Per-context legacy/per-thread streams and last op.
    pub(crate) contexts: DashMap<u64, Arc<stream::CtxStreams>>,
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| matches!(v.trim(), "1" | "true" | "yes" | "on"))
}

fn env_threads() -> usize {
    let default = std::thread::available_parallelism().map_or(1, |n| n.get());
    match std::env::var("GPUSHARE_CPU_THREADS") {
        Err(_) => default,
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                tracing::warn!(
                    "GPUSHARE_CPU_THREADS={v:?} is not a positive number; using {default}"
                );
                default
            }
        },
    }
}

impl Executor {
    /// A new executor for `profile` over `memory`, timed by `clock`. Reads `GPUSHARE_CPU_PACING`
    /// and `GPUSHARE_CPU_THREADS`. The executor thread starts with the first submitted op.
    pub fn new(
        profile: &DeviceProfile,
        memory: Arc<DeviceMemory>,
        clock: Clock,
    ) -> CuResult<Arc<Self>> {
        let pacing = env_flag("GPUSHARE_CPU_PACING");
        let worker_threads = env_threads();
        if pacing {
            tracing::info!("pacing on: completions wait for their modelled end time");
        }
        Ok(Arc::new_cyclic(|this| Executor {
            profile: profile.clone(),
            pacing,
            worker_threads,
            memory,
            clock,
            this: Weak::clone(this),
            queue: Mutex::new(Queue::default()),
            queue_cv: Condvar::new(),
            done_lock: Mutex::new(()),
            done_cv: Condvar::new(),
            general_waiters: AtomicU32::new(0),
            worker: OnceLock::new(),
            callbacks: Mutex::new(callback::CallbackQueue::default()),
            callbacks_cv: Condvar::new(),
            callback_worker: OnceLock::new(),
            closing: DashSet::new(),
            streams: HandleTable::new(HandleKind::Stream),
            events: HandleTable::new(HandleKind::Event),
            modules: HandleTable::new(HandleKind::Module),
            functions: HandleTable::new(HandleKind::Function),
            libraries: HandleTable::new(HandleKind::Library),
            kernels: HandleTable::new(HandleKind::Kernel),
            contexts: DashMap::new(),
        }))
    }

    /// Waits for all work of `ctx` (with pacing: until its latest modelled end). The caller checks
    /// the context's sticky error afterwards.
    pub fn synchronize_context(&self, ctx: &Context) -> CuResult {
        let last = self
            .contexts
            .get(&ctx.id())
            .and_then(|cs| cs.last.lock().ok().and_then(|l| l.clone()));
        match last {
            Some(op) => self.wait_context(ctx.id(), &op, executor::Until::Horizon),
            None => Ok(()),
        }
    }

    /// Waits for `last`, the last op of context `ctx`, and for the host functions of the context
    /// submitted before it (which may run after `last` is done on another stream).
    fn wait_context(&self, ctx: u64, last: &OpState, until: executor::Until) -> CuResult {
        self.wait(last, executor::Until::Done)?;
        self.wait_deferred(ctx, last.seq)?;
        self.wait(last, until)
    }

    /// Drains the work of context `ctx`, then destroys its streams, events and modules (freeing
    /// module variables). Its stream waits still pending end with `CONTEXT_IS_DESTROYED` (which
    /// poisons the context, so the work queued behind them is skipped).
    pub fn release_context(&self, ctx: u64) {
        self.closing.insert(ctx);
        self.nudge_callbacks();
        let cs = self.contexts.get(&ctx).map(|c| Arc::clone(c.value()));
        if let Some(cs) = &cs {
            let last = cs.last.lock().ok().and_then(|l| l.clone());
            if let Some(op) = last {
                if !Self::on_executor_thread() {
                    // Without pacing: the functional work only.
                    let _ = self.wait_context(ctx, &op, executor::Until::Done);
                }
            }
        }
        let mut forgotten: Vec<u64> = self
            .streams
            .remove_where(|s| s.ctx == ctx)
            .into_iter()
            .map(|(_, s)| s.key)
            .collect();
        if let Some(cs) = cs {
            forgotten.extend(cs.streams().iter().map(|s| s.key));
        }
        self.closing.remove(&ctx);
        self.events.remove_where(|e| e.ctx == ctx);
        self.release_modules(ctx);
        self.contexts.remove(&ctx);
        for key in forgotten {
            self.submit_forget(Some(key), None);
        }
        self.submit_forget(None, Some(ctx));
    }
}
