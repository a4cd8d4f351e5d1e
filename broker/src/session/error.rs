//! Errors of a session: what ends it ([`SessionError`], [`Violation`]) and what a synchronous
//! request returns ([`ExecError`]).

use gpushare_client::code::CuCode;
use gpushare_client::proto::Reply;

use super::state::StateError;
use crate::device::DeviceError;
use crate::handles::HandleError;
use crate::memory::MemoryError;

/// Errors that end a session.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The tenant broke the protocol; the session is closed.
    #[error("protocol violation: {0}")]
    Violation(String),
    /// The session is closing.
    #[error("the session is closed")]
    Closed,
    /// Setting the session up failed.
    #[error("session setup failed: {0}")]
    Setup(String),
}

/// A protocol violation found while handling a command or a request (a malformed record, a host
/// span outside shared memory, a reply slot that does not exist): the session is closed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Violation(pub String);

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

/// Result of one request.
pub type ExecResult = Result<Reply, ExecError>;

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
impl From<Violation> for ExecError {
    fn from(e: Violation) -> Self {
        ExecError::Violation(e.0)
    }
}
