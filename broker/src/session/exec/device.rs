//! The `device` family: device queries (the one device, ordinal 0; its memory is the tenant's
//! quota when it has one).

use gpushare_client::proto::request::DeviceRequest;
use gpushare_client::proto::Reply;

use super::support::{device0, with_state};
use crate::session::error::ExecResult;
use crate::session::tenant::Tenant;

/// Executes a `device` request.
pub fn execute(t: &Tenant, req: DeviceRequest) -> ExecResult {
    let dev = &t.dev;
    match req {
        DeviceRequest::GetDeviceInfo { device } => {
            device0(device)?;
            let mut info = dev.info().clone();
            let quota = with_state(t, |st| Ok(st.memory.quota()))?;
            if quota != 0 {
                info.total_mem = quota.min(info.total_mem);
            }
            Ok(Reply::Device(info))
        }
    }
}
