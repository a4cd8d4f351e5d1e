//! The executor: runs a tenant's synchronous requests, one at a time, in arrival order.
//!
//! A request from a CALL record runs once every operation the ring thread queued before it has
//! been submitted; a socket-lane request first waits for the ring to be processed up to its
//! `fence`. Requests may block on the device (synchronisation, frees that wait for the tenant's
//! work) — only this thread waits; the ring thread keeps consuming. Requests that never block
//! ([`Request::runs_inline`], declared with each request) arriving in CALL records are run by
//! the ring thread itself instead, through [`execute`] too.
//!
//! [`execute`] routes a request to its API family ([`Request::route`]); each family's handler,
//! in the module of the family's name (the same names as the shim's and the CPU device's
//! `src/driver/<family>.rs`), matches exhaustively on its family's requests. What the handlers
//! share is in [`support`].

mod admin;
mod context;
mod copy;
mod device;
mod event;
mod host_memory;
mod memory;
mod module;
mod pointer;
mod session;
mod stream;
pub mod support;
mod vmm;

use std::os::fd::OwnedFd;
use std::sync::mpsc::Receiver;
use std::sync::Arc;

use gpushare_client::code;
use gpushare_client::proto::{ReplyEnvelope, Request, RequestEnvelope, Routed};

use crate::device::FailureSink;
use crate::session::error::{ExecError, ExecResult};
use crate::session::tenant::{ReplyTo, Tenant};

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
        Err(ExecError::Code(code)) => {
            if gpushare_client::code::is_context_fatal(code) {
                if code == gpushare_client::code::ERROR_ILLEGAL_ADDRESS {
                    t.read_only_fault(0);
                }
                // The worker's context is lost: as in CUDA, the error is sticky for the tenant.
                t.async_error(0, code);
                t.dev
                    .link()
                    .note_fault(code, &format!("a call of {}", t.owner()));
            }
            Some(ReplyEnvelope::error(id, code))
        }
        Err(ExecError::Violation(reason)) => {
            t.violation(&reason);
            None
        }
    }
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

/// Executes one request for tenant `t` (`fds`: descriptors that came with it, for
/// `HostRegister`; dropped for every other request).
pub fn execute(t: &Tenant, req: Request, fds: Vec<OwnedFd>) -> ExecResult {
    match req.route() {
        Routed::Session(r) => session::execute(r),
        Routed::Device(r) => device::execute(t, r),
        Routed::Context(r) => context::execute(t, r),
        Routed::Memory(r) => memory::execute(t, r),
        Routed::Pointer(r) => pointer::execute(t, r),
        Routed::HostMemory(r) => host_memory::execute(t, r, fds),
        Routed::Vmm(r) => vmm::execute(t, r),
        Routed::Copy(r) => copy::execute(t, r),
        Routed::Module(r) => module::execute(t, r),
        Routed::Stream(r) => stream::execute(t, r),
        Routed::Event(r) => event::execute(t, r),
        Routed::Admin(r) => admin::execute(r),
    }
}
