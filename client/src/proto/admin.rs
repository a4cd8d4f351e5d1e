//! Admin status: what the broker reports to `Status` requests (admin tools, monitoring).

use serde::{Deserialize, Serialize};

/// The broker's state at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// Broker build version.
    pub broker_version: String,
    /// Milliseconds since the broker started.
    pub uptime_ms: u64,
    /// Devices the broker drives.
    pub devices: Vec<DeviceStatus>,
    /// Connected tenant sessions.
    pub tenants: Vec<TenantStatus>,
    /// Worker processes (one per isolation group, plus faulted ones their tenants still hold).
    pub workers: Vec<WorkerStatus>,
}

/// One worker process.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerStatus {
    /// Its isolation group.
    pub group: String,
    /// Process id.
    pub pid: u32,
    /// `running`, `faulted` (context lost; its tenants keep it until they leave) or `dead`.
    pub state: String,
    /// Tenants on it.
    pub tenants: u32,
    /// Device memory its tenants hold (bytes).
    pub memory_bytes: u64,
    /// Context-fatal faults in its group.
    pub faults: u64,
    /// Workers its group replaced.
    pub restarts: u64,
    /// Streamed copies (`STREAMED_COPY`) its worker ran, declined and aborted.
    pub streamed: [u64; 3],
    /// The last fault or death reason in its group.
    pub last_fault: String,
}

/// One device's figures.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceStatus {
    /// Device ordinal.
    pub ordinal: i32,
    /// Device name.
    pub name: String,
    /// Total memory in bytes.
    pub total_mem: u64,
    /// Memory in use by all tenants (bytes; deduplicated copies counted once).
    pub used_mem: u64,
    /// Bytes deduplication saves: mappings of shared copies beyond the first.
    pub saved_mem: u64,
    /// Illegal-address faults of tenants that mapped deduplicated copies read-only (each
    /// tenant counted once): likely stores the broker could not see (docs/dedup.md).
    pub dedup_faults: u64,
    /// Device time used by all tenants over the last 10 s (the sum of their shares), in per
    /// mille (0 from a broker without a fair scheduler's figures).
    pub busy_permille: u32,
}

/// One tenant session's figures.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantStatus {
    /// Session id.
    pub session_id: u64,
    /// Tenant name from `Hello`.
    pub name: String,
    /// Process id (from `SO_PEERCRED`).
    pub pid: u32,
    /// User id (from `SO_PEERCRED`).
    pub uid: u32,
    /// Device memory held (bytes; what its quota counts, shared copies included).
    pub memory_bytes: u64,
    /// Of `memory_bytes`, what is mapped onto copies other tenants map too (deduplication).
    pub shared_bytes: u64,
    /// Bytes of uploads not copied: deduplication found their content resident and mapped
    /// the copy instead (since the session began).
    pub skipped_upload_bytes: u64,
    /// Memory quota (bytes, 0 = none).
    pub memory_quota: u64,
    /// Streams created.
    pub streams: u32,
    /// Commands received but not yet submitted to the device.
    pub queued_ops: u64,
    /// Commands submitted to the device.
    pub submitted_ops: u64,
    /// Commands completed.
    pub completed_ops: u64,
    /// Device time consumed (nanoseconds).
    pub gpu_time_ns: u64,
    /// Scheduling weight (the policy's now: a reload changes it).
    pub weight: u32,
    /// Isolation group (its worker).
    pub group: String,
    /// Scheduling class: `high`, `normal` or `low` (the policy's now).
    pub priority: String,
    /// Share of device time over the last 10 s, in parts per million.
    pub share_ppm: u32,
    /// Median time an operation waited in the scheduler's queue (recent operations, ns).
    pub queue_p50_ns: u64,
    /// 99th percentile of the same.
    pub queue_p99_ns: u64,
    /// Kernels completed.
    pub kernels: u64,
    /// Mean |predicted − measured| / measured of the cost model, recent timed operations, in
    /// parts per million (`None`: nothing measured yet, or a scheduler without a cost model).
    pub prediction_error_ppm: Option<u32>,
}

/// The outcome of a `PolicyReload` request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyReloadReport {
    /// True when the new policy is in force; false when the broker refused it (the old one
    /// stays) or has no policy file.
    pub applied: bool,
    /// The policy file the broker re-read (empty without one).
    pub path: String,
    /// On success a summary of the new policy, else why it was refused (for a bad file: the
    /// file, line and column).
    pub message: String,
    /// Running tenants that got the new rules.
    pub tenants: u32,
}
