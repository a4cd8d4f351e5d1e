//! The `admin` family in a tenant session: not permitted. Admin sessions, which may ask for
//! `Status` and `PolicyReload`, are served by their socket thread ([`crate::session::socket`]).

use gpushare_client::code;
use gpushare_client::proto::request::AdminRequest;

use crate::session::error::{ExecError, ExecResult};

/// Executes an `admin` request from a tenant: `CUDA_ERROR_NOT_PERMITTED`.
pub fn execute(req: AdminRequest) -> ExecResult {
    match req {
        AdminRequest::Status | AdminRequest::PolicyReload => {
            Err(ExecError::Code(code::ERROR_NOT_PERMITTED))
        }
    }
}
