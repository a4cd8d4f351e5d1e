//! The executor: runs a tenant's synchronous requests, one at a time, in arrival order.
//!
//! A request from a CALL record runs once every operation the ring thread queued before it has
//! been submitted; a socket-lane request first waits for the ring to be processed up to its
//! `fence`. Requests may block on the device (synchronisation, frees that wait for the tenant's
//! work) — only this thread waits; the ring thread keeps consuming. Requests that never block
//! ([`runs_inline`]) arriving in CALL records are run by the ring thread itself instead.
//!
//! The request families live in `exec_misc` (device, contexts, streams, events,
//! modules) and `exec_mem` (memory, VMM, host buffers, synchronous copies).

use std::os::fd::OwnedFd;
use std::sync::mpsc::Receiver;
use std::sync::Arc;

use gpushare_client::code::{self, CuCode};
use gpushare_client::proto::{Reply, ReplyEnvelope, Request, RequestEnvelope};

use super::ring::RingThreadError;
use super::state::{StateError, TenantState};
use super::{exec_mem, exec_misc, ReplyTo, Tenant};
use crate::device::{DeviceError, Stream};
use crate::handles::HandleError;
use crate::memory::MemoryError;

/// A request on its way to the executor.
pub struct CallJob {
    /// The request.
    pub env: RequestEnvelope,
    /// Where the reply goes.
    pub to: ReplyTo,
    /// Descriptors that came with it (socket lane).
    pub fds: Vec<OwnedFd>,
    /// Operations that must be submitted first (ring lane: counted at hand-off).
    pub target: Option<u64>,
    /// Ring sequence number to process first (socket lane).
    pub fence: Option<u64>,
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// A `CUresult` for the reply; the session continues.
    #[error("CUresult {0}")]
    Code(CuCode),
    /// A protocol violation: the session is closed.
    #[error("{0}")]
    Violation(String),
}

impl From<CuCode> for ExecError {
    fn from(c: CuCode) -> Self {
        ExecError::Code(c)
    }
}
impl From<HandleError> for ExecError {
    fn from(e: HandleError) -> Self {
        ExecError::Code(e.code())
    }
}
impl From<MemoryError> for ExecError {
    fn from(e: MemoryError) -> Self {
        ExecError::Code(e.code())
    }
}
impl From<StateError> for ExecError {
    fn from(e: StateError) -> Self {
        ExecError::Code(e.code())
    }
}
impl From<DeviceError> for ExecError {
    fn from(e: DeviceError) -> Self {
        ExecError::Code(e.code())
    }
}
impl From<RingThreadError> for ExecError {
    fn from(e: RingThreadError) -> Self {
        ExecError::Violation(e.to_string())
    }
}

/// Result of one request.
pub type ExecResult = Result<Reply, ExecError>;

/// Runs `f` on the tenant's tables (`ERROR_DEINITIALIZED` once torn down).
pub fn with_state<R>(
    t: &Tenant,
    f: impl FnOnce(&mut TenantState) -> Result<R, ExecError>,
) -> Result<R, ExecError> {
    let mut guard = t.state();
    match guard.as_mut() {
        Some(st) => f(st),
        None => Err(ExecError::Code(code::ERROR_DEINITIALIZED)),
    }
}

/// Waits for every stream of the tenant (not other tenants').
pub fn sync_tenant(t: &Tenant) -> Result<(), ExecError> {
    let streams = with_state(t, |st| Ok(st.all_streams()))?;
    let mut first = Ok(());
    for s in streams {
        if let Err(e) = t.env.dev.stream_synchronize(&s) {
            if first.is_ok() {
                first = Err(ExecError::from(e));
            }
        }
    }
    first
}

/// Waits for one stream.
pub fn sync_stream(t: &Tenant, s: &Stream) -> Result<(), ExecError> {
    Ok(t.env.dev.stream_synchronize(s)?)
}

/// Runs the executor until every sender is gone.
pub fn run(t: Arc<Tenant>, rx: Receiver<CallJob>) {
    for job in rx {
        if t.is_closing() {
            t.calls_pending(-1);
            continue;
        }
        let id = job.env.id;
        let result = prepare(&t, &job).and_then(|()| execute(&t, job.env.body, job.fds));
        if let Some(env) = envelope(&t, id, result) {
            t.reply(job.to, env);
        }
        t.calls_pending(-1);
    }
}

/// The reply for a result; `None` after a violation (the session is being closed).
pub fn envelope(t: &Tenant, id: u64, result: ExecResult) -> Option<ReplyEnvelope> {
    match result {
        Ok(body) => Some(ReplyEnvelope::ok(id, body)),
        Err(ExecError::Code(code)) => Some(ReplyEnvelope::error(id, code)),
        Err(ExecError::Violation(reason)) => {
            t.violation(&reason);
            None
        }
    }
}

/// True for requests that never wait for the device to finish work or for the tenant, so the
/// ring thread may run them itself (saving a thread hand-off on the synchronous path).
pub fn runs_inline(req: &Request) -> bool {
    use Request as R;
    matches!(
        req,
        R::Ping
            | R::GetDeviceInfo { .. }
            | R::CtxCreate { .. }
            | R::CtxDestroy { .. }
            | R::PrimaryCtxRetain { .. }
            | R::PrimaryCtxRelease { .. }
            | R::CtxGetLimit { .. }
            | R::CtxGetStreamPriorityRange
            | R::ModuleGetFunction { .. }
            | R::ModuleGetGlobal { .. }
            | R::FuncGetAttribute { .. }
            | R::FuncSetAttribute { .. }
            | R::StreamCreate { .. }
            | R::StreamDestroy { .. }
            | R::StreamQuery { .. }
            | R::EventCreate { .. }
            | R::EventDestroy { .. }
            | R::EventQuery { .. }
            | R::EventElapsedTime { .. }
            | R::MemAlloc { .. }
            | R::MemAllocPitch { .. }
            | R::MemGetInfo
            | R::MemGetAddressRange { .. }
            | R::PointerGetAttribute { .. }
            | R::MemAddressReserve { .. }
            | R::MemAddressFree { .. }
            | R::MemCreate { .. }
            | R::MemRelease { .. }
            | R::MemMap { .. }
            | R::MemSetAccess { .. }
            | R::MemGetAllocationGranularity { .. }
            | R::Status
    )
}

fn prepare(t: &Tenant, job: &CallJob) -> Result<(), ExecError> {
    let target = match (job.fence, job.target) {
        (Some(fence), _) => {
            t.wait_processed(fence)?;
            t.enqueued()
        }
        (None, Some(target)) => target,
        (None, None) => t.enqueued(),
    };
    if t.wait_submitted(target) {
        Ok(())
    } else {
        Err(ExecError::Code(code::ERROR_DEINITIALIZED))
    }
}

/// Executes one request for tenant `t`.
pub fn execute(t: &Arc<Tenant>, req: Request, fds: Vec<OwnedFd>) -> ExecResult {
    use Request as R;
    match req {
        R::Ping => Ok(Reply::Pong),
        R::Status => Err(ExecError::Code(code::ERROR_NOT_PERMITTED)),
        R::GetDeviceInfo { .. }
        | R::CtxCreate { .. }
        | R::CtxDestroy { .. }
        | R::PrimaryCtxRetain { .. }
        | R::PrimaryCtxRelease { .. }
        | R::CtxSynchronize { .. }
        | R::CtxGetLimit { .. }
        | R::CtxSetLimit { .. }
        | R::CtxGetStreamPriorityRange
        | R::ModuleLoad { .. }
        | R::ModuleUnload { .. }
        | R::ModuleGetFunction { .. }
        | R::ModuleGetGlobal { .. }
        | R::FuncGetAttribute { .. }
        | R::FuncSetAttribute { .. }
        | R::StreamCreate { .. }
        | R::StreamDestroy { .. }
        | R::StreamQuery { .. }
        | R::StreamSynchronize { .. }
        | R::EventCreate { .. }
        | R::EventDestroy { .. }
        | R::EventQuery { .. }
        | R::EventSynchronize { .. }
        | R::EventElapsedTime { .. } => exec_misc::execute(t, req),
        R::MemAlloc { .. }
        | R::MemAllocPitch { .. }
        | R::MemFree { .. }
        | R::MemGetInfo
        | R::MemGetAddressRange { .. }
        | R::PointerGetAttribute { .. }
        | R::HostRegister { .. }
        | R::HostUnregister { .. }
        | R::MemAddressReserve { .. }
        | R::MemAddressFree { .. }
        | R::MemCreate { .. }
        | R::MemRelease { .. }
        | R::MemMap { .. }
        | R::MemUnmap { .. }
        | R::MemSetAccess { .. }
        | R::MemGetAllocationGranularity { .. }
        | R::MemcpyHtoD { .. }
        | R::MemcpyDtoH { .. }
        | R::MemcpyDtoD { .. }
        | R::Memset { .. } => exec_mem::execute(t, req, fds),
    }
}
