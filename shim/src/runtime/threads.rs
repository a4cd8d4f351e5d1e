//! The session's two daemon threads:
//! - the **watcher** blocks until the broker hangs up, then marks the region closed, which cancels
//!   every wait in the process (a tenant whose broker dies gets an error, never a hang);
//! - the **notifier** reads the notify ring: it runs host functions (`cuLaunchHostFunc`) when
//!   their stream reaches them, and logs asynchronous errors (which are also in the sticky word).

use gpushare_client::ring::record::HostFnDone;
use gpushare_client::ring::{Command, RecordBuf};

use super::objects::HostFnCall;
use super::session::Runtime;

/// Starts both threads (once per process: the caller sees to that).
pub fn start(rt: &'static Runtime) {
    let watcher = std::thread::Builder::new()
        .name("gpushare-watch".into())
        .spawn(move || {
            if let Ok(true) = rt.client.watch_broker(None) {
                crate::log(|| {
                    tracing::error!(target: "gpushare::shim",
                        "the gpushare broker closed the session; CUDA calls now fail")
                });
            }
        });
    let notifier = std::thread::Builder::new()
        .name("gpushare-notify".into())
        .spawn(move || notify_loop(rt));
    if watcher.is_err() || notifier.is_err() {
        crate::log(
            || tracing::error!(target: "gpushare::shim", "cannot start the shim's helper threads"),
        );
    }
}

fn notify_loop(rt: &'static Runtime) {
    let Some(region) = rt.client.region() else {
        return;
    };
    let Ok(mut consumer) = region.notify_consumer() else {
        return;
    };
    consumer.set_wait(rt.policy, rt.cancel.clone());
    let mut buf = RecordBuf::new();
    loop {
        let popped = match consumer.pop(&mut buf) {
            Ok(p) => p,
            Err(_) => return, // session closed
        };
        match popped.cmd {
            Command::HostFnReady(ready) => {
                let token = ready.token;
                // SAFETY: tokens are `Box<HostFnCall>` pointers the shim leaked in
                // cuLaunchHostFunc, and the broker reports each exactly once; ownership comes
                // back here.
                let call = unsafe { Box::from_raw(token as usize as *mut HostFnCall) };
                let run = std::panic::AssertUnwindSafe(|| {
                    // SAFETY: the application's callback with its own argument, as CUDA would
                    // call it (on a driver thread, outside any CUDA call).
                    unsafe { (call.func)(call.data) }
                });
                let _ = std::panic::catch_unwind(run);
                let _ = rt.client.submit(&Command::HostFnDone(HostFnDone { token }));
            }
            Command::AsyncError(e) => {
                crate::log(|| {
                    tracing::warn!(target: "gpushare::shim",
                        "asynchronous error {} in command {}", e.code, e.seq)
                });
            }
            _ => {}
        }
    }
}
