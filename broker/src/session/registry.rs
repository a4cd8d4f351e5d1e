//! The registry of live sessions: what `Status` reports, and whom shutdown drains and tells.
//!
//! The broker owns it and hands it to every socket thread, which registers its session once the
//! handshake succeeded and unregisters it when the session's resources are freed.

use std::collections::HashMap;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex, MutexGuard};

use gpushare_client::proto::{DeviceStatus, StatusReport, TenantStatus};
use gpushare_client::{frame, BrokerMessage};

use super::tenant::{SessionInfo, Tenant};
use crate::env::Env;

struct Entry {
    info: SessionInfo,
    tenant: Option<Arc<Tenant>>,
    socket: Option<UnixStream>,
}

/// Live sessions, tenants and admin tools alike.
#[derive(Default)]
pub struct Registry {
    sessions: Mutex<HashMap<u64, Entry>>,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Entry>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds an open session (`tenant`: `None` for admin sessions; `socket`: a handle to shut
    /// the connection down with).
    pub fn register(
        &self,
        info: SessionInfo,
        tenant: Option<Arc<Tenant>>,
        socket: Option<UnixStream>,
    ) {
        self.lock().insert(
            info.id,
            Entry {
                info,
                tenant,
                socket,
            },
        );
    }

    /// Removes a session (its resources are already freed).
    pub fn unregister(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// The live tenant sessions.
    pub fn tenants(&self) -> Vec<Arc<Tenant>> {
        self.lock()
            .values()
            .filter_map(|e| e.tenant.clone())
            .collect()
    }

    /// Says `Goodbye` to every admin session and shuts its socket down (shutdown). The sends
    /// happen outside the registry's lock, each bounded by a short timeout: an admin client that
    /// never reads cannot hold up shutdown.
    pub fn goodbye_admins(&self, reason: &str) {
        let sockets: Vec<UnixStream> = self
            .lock()
            .values()
            .filter(|e| e.tenant.is_none())
            .filter_map(|e| e.socket.as_ref()?.try_clone().ok())
            .collect();
        for mut s in sockets {
            let _ = s.set_write_timeout(Some(std::time::Duration::from_millis(500)));
            let _ = frame::send_message(
                &mut s,
                &BrokerMessage::Goodbye {
                    reason: reason.to_string(),
                },
            );
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    /// The broker's state for admin tools. The registry's lock is not held while the tenants
    /// are asked for their figures.
    pub fn status(&self, env: &Env) -> StatusReport {
        let entries: Vec<(SessionInfo, Option<Arc<Tenant>>)> = self
            .lock()
            .values()
            .map(|e| (e.info.clone(), e.tenant.clone()))
            .collect();
        let summary = env.groups.dedup_summary();
        let mut tenants: Vec<TenantStatus> = entries
            .into_iter()
            .filter_map(|(info, t)| {
                let t = t?;
                let mem = t.memory_figures(&summary);
                let (queued_ops, submitted_ops, completed_ops) = t.op_counts();
                let params = t.params();
                let sched = env.sched.report(info.id).unwrap_or_default();
                Some(TenantStatus {
                    session_id: info.id,
                    name: info.name,
                    pid: info.pid,
                    uid: info.uid,
                    memory_bytes: mem.charged,
                    shared_bytes: mem.shared,
                    skipped_upload_bytes: t.skipped_upload_bytes(),
                    memory_quota: mem.quota,
                    streams: mem.streams,
                    queued_ops,
                    submitted_ops,
                    completed_ops,
                    gpu_time_ns: sched.device_ns,
                    share_ppm: (sched.share * 1e6).round() as u32,
                    queue_p50_ns: sched.queue_p50_ns,
                    queue_p99_ns: sched.queue_p99_ns,
                    kernels: sched.kernels,
                    prediction_error_ppm: sched.prediction_error.map(|e| (e * 1e6).min(4e9) as u32),
                    weight: params.weight,
                    priority: params.priority.name().to_string(),
                    group: t.group.to_string(),
                })
            })
            .collect();
        tenants.sort_by_key(|t| t.session_id);
        let info = &env.device;
        let mut workers = env.groups.status();
        let dedup = env.groups.dedup_figures(&summary);
        for w in &mut workers {
            w.memory_bytes = tenants
                .iter()
                .filter(|t| t.group == w.group && w.state == "running")
                .map(|t| t.memory_bytes)
                .sum::<u64>()
                .saturating_sub(dedup.get(&w.group).map_or(0, |f| f.0));
        }
        let saved_mem: u64 = dedup.values().map(|f| f.0).sum();
        let dedup_faults: u64 = dedup.values().map(|f| f.1).sum();
        StatusReport {
            workers,
            broker_version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_ms: env.uptime().as_millis() as u64,
            devices: vec![DeviceStatus {
                ordinal: 0,
                name: info.name.clone(),
                total_mem: info.total_mem,
                used_mem: tenants
                    .iter()
                    .map(|t| t.memory_bytes)
                    .sum::<u64>()
                    .saturating_sub(saved_mem),
                saved_mem,
                dedup_faults,
                // Each tenant's share of device time over the same window.
                busy_permille: (tenants.iter().map(|t| u64::from(t.share_ppm)).sum::<u64>() / 1000)
                    .min(1000) as u32,
            }],
            tenants,
        }
    }
}
