//! The policy file (`gpushare broker --policy FILE`, TOML): per-tenant scheduling (weight,
//! priority, share cap), memory quotas, isolation groups, the kernel watchdog and the scheduler's
//! own settings. Rules are matched by the tenant name from `Hello` and by the peer's Unix user.
//!
//! ```toml
//! [default]
//! weight = 1
//! priority = "normal"         # "high" | "normal" | "low"
//! max_share = 1.0             # cap on the share of device time, 0 < x ≤ 1 (1: none)
//! memory_quota = "0"          # bytes, or with a unit: "512MiB", "8GiB"; 0 = no quota
//! isolation = "uid"           # "tenant" | "uid" | "shared": which tenants share a worker
//! kernel_timeout = "0"        # "60s", "500ms", "2m"; 0 = no watchdog
//! dedup = true                # share identical uploaded weights: true (with every tenant of
//!                             #   the device), "group" (its isolation group only), false
//! max_streams = 4096          # objects a session may hold at once (0 = no bound): streams,
//! max_events = 65536          #   events, modules, their images' bytes and host functions in
//! max_modules = 16384         #   flight; past one, CUDA_ERROR_OUT_OF_MEMORY (see [`Limits`])
//! max_module_bytes = "4GiB"
//! max_host_fns = 65536
//! max_pinned_bytes = "0"      # page-locked host memory registered (0 = no bound)
//!
//! [users.alice]               # a user name or a numeric uid ([users.1000])
//! priority = "low"
//!
//! [tenants.llm-small]
//! weight = 2
//! memory_quota = "4GiB"
//! group = "llm"               # a named isolation group (overrides `isolation`)
//!
//! [scheduler]
//! policy = "fair"             # "fair" | "fifo"
//! quantum = "2ms"             # 100us ..= 100ms
//! slicing = true
//! profiles = ["profiles/llm.json"]   # relative to the policy file's directory
//! ```
//!
//! Precedence, field by field: `[tenants.NAME]` over `[users.UID]` over `[users.NAME]` over
//! `[default]` over the built-in defaults ([`Rules::default`]). Every error names the file, the
//! line and the column ([`PolicyError::Parse`]).
//!
//! The broker reads the file at start-up and again on SIGHUP or `gpushare policy reload`
//! ([`crate::reload`]): a file that does not parse is refused and the old policy stays. A reload
//! gives running tenants their new weight, priority, `max_share` and memory quota (new
//! allocations are checked against it); `isolation`, `group` and `kernel_timeout` apply to new
//! sessions only, and the `[scheduler]` table is read by the scheduler at start-up. The object
//! bounds (`max_*`) apply to running tenants too: what they hold stays, new objects are checked.

mod limits;
mod parse;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use crate::access::{AccessRules, Directory, Principal};

pub use gpushare_driver_abi::units::parse_size;
use limits::LimitOverrides;
pub use limits::{
    Limits, DEFAULT_MAX_EVENTS, DEFAULT_MAX_HOST_FNS, DEFAULT_MAX_MODULES,
    DEFAULT_MAX_MODULE_BYTES, DEFAULT_MAX_STREAMS,
};
pub use parse::parse_duration;

/// Errors of the policy file.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("cannot read policy file {path}: {source}")]
    Read {
        /// Path.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for a policy.
    #[error(
        "invalid policy file {path}: {}{message}",
        .location.map(|l| format!("{l}: ")).unwrap_or_default()
    )]
    Parse {
        /// Path.
        path: String,
        /// Where (absent only when the TOML reader could not say).
        location: Option<Location>,
        /// What is wrong.
        message: String,
    },
}

/// A place in the policy file (both 1-based; the column counts characters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    /// Line.
    pub line: usize,
    /// Column.
    pub column: usize,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// Which tenants share a worker process (an isolation group).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// Every tenant (session) its own worker.
    Tenant,
    /// Tenants of the same Unix user share one (like MPS's server per user).
    #[default]
    Uid,
    /// Everyone in one worker (most concurrency, no isolation between tenants' device work).
    Shared,
}

/// With whom a tenant's uploaded device memory may be deduplicated (docs/dedup.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DedupScope {
    /// Not at all: every allocation is the tenant's own.
    Off,
    /// With tenants of its isolation group (its worker) only: its uploads are never exported
    /// to other groups, and it never imports theirs.
    Group,
    /// With every tenant of the device whose scope allows it (`dedup = true`).
    #[default]
    Device,
}

/// A tenant's scheduling class: while a higher class has work, lower classes wait (and their
/// work ahead in the device is cut to what is already running).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Served last.
    Low,
    /// The default.
    #[default]
    Normal,
    /// Served first.
    High,
}

impl Priority {
    /// The policy file's spelling (`"high"`, `"normal"`, `"low"`).
    pub fn name(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
        }
    }
}

/// Rules for one tenant.
#[derive(Clone, Debug, PartialEq)]
pub struct Rules {
    /// Scheduling weight (≥ 1).
    pub weight: u32,
    /// Scheduling class.
    pub priority: Priority,
    /// Hard cap on the tenant's share of device time (0 < cap < 1); `None`: no cap
    /// (`max_share = 1`).
    pub max_share: Option<f64>,
    /// Device memory quota in bytes (0: none).
    pub memory_quota: u64,
    /// How the tenant's worker is chosen when no `group` is named.
    pub isolation: Isolation,
    /// A named isolation group.
    pub group: Option<String>,
    /// The kernel watchdog: device work that makes no progress for this long gets the group's
    /// worker replaced (`Duration::ZERO`: off).
    pub kernel_timeout: Duration,
    /// With whom the tenant's uploaded device memory may be deduplicated (docs/dedup.md); read
    /// when a session starts.
    pub dedup: DedupScope,
    /// Bounds on the driver objects the tenant may hold at once.
    pub limits: Limits,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            weight: 1,
            priority: Priority::Normal,
            max_share: None,
            memory_quota: 0,
            isolation: Isolation::Uid,
            group: None,
            kernel_timeout: Duration::ZERO,
            dedup: DedupScope::Device,
            limits: Limits::default(),
        }
    }
}

/// What one `[users.*]` or `[tenants.*]` table sets; the rest falls through to the next level.
#[derive(Clone, Debug, Default, PartialEq)]
struct Overrides {
    weight: Option<u32>,
    priority: Option<Priority>,
    /// As written (1 = no cap).
    max_share: Option<f64>,
    memory_quota: Option<u64>,
    isolation: Option<Isolation>,
    group: Option<String>,
    kernel_timeout: Option<Duration>,
    dedup: Option<DedupScope>,
    limits: LimitOverrides,
}

impl Overrides {
    /// `base` with what this table sets.
    fn apply(&self, mut base: Rules) -> Rules {
        if let Some(w) = self.weight {
            base.weight = w;
        }
        if let Some(p) = self.priority {
            base.priority = p;
        }
        if let Some(m) = self.max_share {
            base.max_share = (m < 1.0).then_some(m);
        }
        if let Some(q) = self.memory_quota {
            base.memory_quota = q;
        }
        if let Some(i) = self.isolation {
            base.isolation = i;
        }
        if let Some(g) = &self.group {
            base.group = Some(g.clone());
        }
        if let Some(t) = self.kernel_timeout {
            base.kernel_timeout = t;
        }
        if let Some(d) = self.dedup {
            base.dedup = d;
        }
        base.limits = self.limits.apply(base.limits);
        base
    }
}

/// The scheduler's cross-tenant policy (`[scheduler] policy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchedulingPolicy {
    /// Weighted fair sharing of device time by estimated cost.
    #[default]
    Fair,
    /// First come, first served across tenants.
    Fifo,
}

impl SchedulingPolicy {
    /// The policy file's spelling.
    pub fn name(self) -> &'static str {
        match self {
            SchedulingPolicy::Fair => "fair",
            SchedulingPolicy::Fifo => "fifo",
        }
    }
}

/// The default scheduling quantum.
pub const DEFAULT_QUANTUM: Duration = Duration::from_millis(2);
/// The shortest quantum a policy may set.
pub const MIN_QUANTUM: Duration = Duration::from_micros(100);
/// The longest quantum a policy may set.
pub const MAX_QUANTUM: Duration = Duration::from_millis(100);

/// The `[scheduler]` table.
#[derive(Clone, Debug, PartialEq)]
pub struct SchedulerConfig {
    /// Fair sharing or FIFO.
    pub policy: SchedulingPolicy,
    /// The time slice ([`MIN_QUANTUM`] ..= [`MAX_QUANTUM`]).
    pub quantum: Duration,
    /// Whether long kernels are launched as block-range slices.
    pub slicing: bool,
    /// Cost-profile files that seed the cost model (resolved against the policy file's
    /// directory).
    pub profiles: Vec<PathBuf>,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            policy: SchedulingPolicy::Fair,
            quantum: DEFAULT_QUANTUM,
            slicing: true,
            profiles: Vec::new(),
        }
    }
}

/// The parsed policy.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Policy {
    default: Rules,
    /// `[users.NAME]` with a user name.
    user_names: HashMap<String, Overrides>,
    /// `[users.UID]` with a numeric uid.
    uids: HashMap<u32, Overrides>,
    tenants: HashMap<String, Overrides>,
    /// `[tenants.NAME] users`: the names only these users may use.
    tenant_users: HashMap<String, Vec<Principal>>,
    scheduler: SchedulerConfig,
    access: AccessRules,
}

/// The name of user `uid` (the passwd database, NSS included), if it has one.
pub fn user_name(uid: u32) -> Option<String> {
    crate::access::SystemDirectory.user_name(uid)
}

impl Policy {
    /// Parses policy TOML. `path` names the file in errors, and its directory is what relative
    /// `profiles` paths are resolved against.
    pub fn parse(text: &str, path: &str) -> Result<Policy, PolicyError> {
        parse::policy(text, path)
    }

    /// Reads and parses a policy file.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Policy::parse(&text, &path.display().to_string())
    }

    /// The rules for tenant `name` of user `uid` (the user's name is looked up only when the
    /// policy has `[users.NAME]` tables with names).
    pub fn rules_for(&self, name: &str, uid: u32) -> Rules {
        let user = if self.user_names.is_empty() {
            None
        } else {
            user_name(uid)
        };
        self.rules_for_user(name, uid, user.as_deref())
    }

    /// The rules for tenant `name` of user `uid` whose user name is `user`: `[default]`, then
    /// `[users.USER]`, then `[users.UID]`, then `[tenants.NAME]`, each over the one before.
    pub fn rules_for_user(&self, name: &str, uid: u32, user: Option<&str>) -> Rules {
        let mut rules = self.default.clone();
        if let Some(o) = user.and_then(|u| self.user_names.get(u)) {
            rules = o.apply(rules);
        }
        if let Some(o) = self.uids.get(&uid) {
            rules = o.apply(rules);
        }
        if let Some(o) = self.tenants.get(name) {
            rules = o.apply(rules);
        }
        rules
    }

    /// The `[scheduler]` table.
    pub fn scheduler(&self) -> &SchedulerConfig {
        &self.scheduler
    }

    /// The `[access]` table: who may connect, who administers.
    pub fn access(&self) -> &AccessRules {
        &self.access
    }

    /// Whether user `uid` may use tenant name `name`: yes unless `[tenants.NAME] users` lists
    /// who may, and `uid` is neither one of them nor root (else the reason).
    pub fn may_use_name(&self, name: &str, uid: u32, dir: &dyn Directory) -> Result<(), String> {
        let Some(users) = self.tenant_users.get(name) else {
            return Ok(());
        };
        if uid == 0 || crate::access::is_listed(users, uid, dir) {
            Ok(())
        } else {
            Err(format!(
                "the tenant name {name:?} is reserved by the policy for other users (uid {uid} is not among them)"
            ))
        }
    }

    /// One line: the tenant and user rules the file names and the scheduler settings.
    pub fn summary(&self) -> String {
        let mut tenants: Vec<&str> = self.tenants.keys().map(String::as_str).collect();
        tenants.sort_unstable();
        let mut users: Vec<String> = self.user_names.keys().cloned().collect();
        users.sort_unstable();
        let mut uids: Vec<u32> = self.uids.keys().copied().collect();
        uids.sort_unstable();
        users.extend(uids.iter().map(u32::to_string));
        let count =
            |n: usize, what: &str| format!("{n} {what} rule{}", if n == 1 { "" } else { "s" });
        let list = |names: &[String]| {
            if names.is_empty() {
                String::new()
            } else {
                format!(" ({})", names.join(", "))
            }
        };
        let tenants: Vec<String> = tenants.iter().map(|s| s.to_string()).collect();
        let s = &self.scheduler;
        format!(
            "{}{}, {}{}; scheduler {}, quantum {:?}, slicing {}, {} profile{}",
            count(tenants.len(), "tenant"),
            list(&tenants),
            count(users.len(), "user"),
            list(&users),
            s.policy.name(),
            s.quantum,
            if s.slicing { "on" } else { "off" },
            s.profiles.len(),
            if s.profiles.len() == 1 { "" } else { "s" },
        )
    }
}
