//! The `session` family: requests about the session itself.

use gpushare_client::proto::request::SessionRequest;
use gpushare_client::proto::Reply;

use crate::session::error::ExecResult;

/// Executes a `session` request.
pub fn execute(req: SessionRequest) -> ExecResult {
    match req {
        SessionRequest::Ping => Ok(Reply::Pong),
    }
}
