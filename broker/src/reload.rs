//! Live policy reload: SIGHUP to the broker and `gpushare policy reload` (an admin
//! `PolicyReload` request) re-read the policy file the broker was started with (`--policy`).
//!
//! A file that does not read or parse is refused: the error (file, line, column) is logged and
//! returned, and the old policy stays. A good file is put in force ([`Env::replace_policy`]):
//! sessions opened from then on get its rules, and every running tenant gets its new weight,
//! priority and `max_share` (the scheduler's [`crate::scheduler::Scheduler::set_params`], and what
//! `gpushare status` shows) and its new memory quota, which later allocations are checked against
//! ([`crate::session::tenant::Tenant::apply_rules`]). A tenant's isolation group and kernel
//! watchdog stay as its session started: `isolation`, `group` and `kernel_timeout` apply to new
//! sessions. Reloads are serialized, so running tenants always end with the newest policy.
//!
//! Who may reload over the socket: the broker's own user and root (other users' admin sessions
//! may still ask for `Status`).

use std::path::PathBuf;
use std::sync::Arc;

use gpushare_client::proto::PolicyReloadReport;

use crate::env::Env;
use crate::policy::{Policy, PolicyError};
use crate::session::registry::Registry;

/// Errors of a reload.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The broker was started without `--policy`.
    #[error("the broker was started without --policy: there is no policy file to reload")]
    NoFile,
    /// The file could not be read or does not parse (the old policy stays).
    #[error("{0}; the old policy stays")]
    Policy(#[from] PolicyError),
    /// The peer may not reload.
    #[error("only the broker's user (uid {broker}) or root may reload the policy, not uid {peer}")]
    NotPermitted {
        /// The broker's user.
        broker: u32,
        /// The peer's.
        peer: u32,
    },
}

/// A reload that was applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reloaded {
    /// The file re-read.
    pub path: PathBuf,
    /// Running tenants that got the new rules.
    pub tenants: usize,
    /// [`Policy::summary`] of the new policy.
    pub summary: String,
}

/// Reloads the policy of a running broker (from the signal thread); see
/// [`crate::Broker::reload_handle`].
#[derive(Clone)]
pub struct ReloadHandle {
    env: Arc<Env>,
    registry: Arc<Registry>,
}

impl ReloadHandle {
    /// A handle on the broker whose state is `env` and whose sessions are in `registry`.
    pub fn new(env: Arc<Env>, registry: Arc<Registry>) -> ReloadHandle {
        ReloadHandle { env, registry }
    }

    /// Re-reads the policy file and applies it (see the module documentation).
    pub fn reload(&self) -> Result<Reloaded, ReloadError> {
        reload(&self.env, &self.registry)
    }
}

/// Re-reads the broker's policy file and applies it to the broker and every running tenant of
/// `registry`; a bad file changes nothing. The outcome is logged.
pub fn reload(env: &Env, registry: &Registry) -> Result<Reloaded, ReloadError> {
    let result = load_and_apply(env, registry);
    match &result {
        Ok(r) => tracing::info!(
            path = %r.path.display(),
            tenants = r.tenants,
            "policy reloaded: {}",
            r.summary
        ),
        Err(e) => tracing::error!("policy reload refused: {e}"),
    }
    result
}

fn load_and_apply(env: &Env, registry: &Registry) -> Result<Reloaded, ReloadError> {
    let path = env.policy_file().ok_or(ReloadError::NoFile)?.to_path_buf();
    let policy = Policy::load(&path)?;
    let summary = policy.summary();
    let tenants = env.replace_policy(policy, |policy| {
        env.sched.configure(policy.scheduler());
        // Who may connect may have changed: the socket's mode follows `[access]`.
        let mode = policy.access().socket_mode();
        if let Err(e) = std::fs::set_permissions(
            env.socket(),
            std::os::unix::fs::PermissionsExt::from_mode(mode),
        ) {
            tracing::warn!("setting the socket's mode to {mode:o}: {e}");
        }
        let tenants = registry.tenants();
        for t in &tenants {
            t.apply_rules(&policy.rules_for(&t.info.name, t.info.uid));
        }
        tenants.len()
    });
    Ok(Reloaded {
        path,
        tenants,
        summary,
    })
}

/// Serves an admin session's `PolicyReload` from user `peer`.
pub fn requested(env: &Env, registry: &Registry, peer: u32) -> PolicyReloadReport {
    let broker = gpushare_client::paths::uid();
    let path = env
        .policy_file()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let result = if peer == broker || peer == 0 {
        reload(env, registry)
    } else {
        let e = ReloadError::NotPermitted { broker, peer };
        tracing::warn!("policy reload refused: {e}");
        Err(e)
    };
    match result {
        Ok(r) => PolicyReloadReport {
            applied: true,
            path,
            message: r.summary,
            tenants: u32::try_from(r.tenants).unwrap_or(u32::MAX),
        },
        Err(e) => PolicyReloadReport {
            applied: false,
            path,
            message: e.to_string(),
            tenants: 0,
        },
    }
}
