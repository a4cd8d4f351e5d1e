//! The policy file (`gpushare broker --policy FILE`, TOML): per-tenant scheduling weights,
//! memory quotas, isolation groups and the kernel watchdog, matched by the tenant name from
//! `Hello`.
//!
//! ```toml
//! [default]
//! weight = 1
//! memory_quota = "0"          # bytes, or with a unit: "512MiB", "8GiB"; 0 = no quota
//! isolation = "uid"           # "tenant" | "uid" | "shared": which tenants share a worker
//! kernel_timeout = "0"        # "60s", "500ms", "2m"; 0 = no watchdog
//!
//! [tenants.llm-small]
//! weight = 2
//! memory_quota = "4GiB"
//! group = "llm"               # a named isolation group (overrides `isolation`)
//! ```
//!
//! Today the quota is enforced (`MemAlloc`/`MemCreate` beyond it fail with
//! `CUDA_ERROR_OUT_OF_MEMORY`; `MemGetInfo` and the device's total memory show the quota) and the
//! weight is reported in `Status` and passed to the scheduler, whose FIFO policy ignores it.
//! The file is read once at start-up.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

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
    #[error("invalid policy file {path}: {message}")]
    Parse {
        /// Path.
        path: String,
        /// What is wrong.
        message: String,
    },
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

/// Rules for one tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rules {
    /// Scheduling weight (≥ 1).
    pub weight: u32,
    /// Device memory quota in bytes (0: none).
    pub memory_quota: u64,
    /// How the tenant's worker is chosen when no `group` is named.
    pub isolation: Isolation,
    /// A named isolation group.
    pub group: Option<String>,
    /// The kernel watchdog: device work that makes no progress for this long gets the group's
    /// worker replaced (`Duration::ZERO`: off).
    pub kernel_timeout: Duration,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            weight: 1,
            memory_quota: 0,
            isolation: Isolation::Uid,
            group: None,
            kernel_timeout: Duration::ZERO,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRules {
    weight: Option<Spanned<u32>>,
    memory_quota: Option<Spanned<Size>>,
    isolation: Option<Isolation>,
    group: Option<Spanned<String>>,
    kernel_timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Size {
    Bytes(u64),
    Text(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    default: RawRules,
    #[serde(default)]
    tenants: HashMap<String, RawRules>,
}

/// The parsed policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    default: Rules,
    tenants: HashMap<String, Rules>,
}

pub use gpushare_driver_abi::units::parse_size;

/// Parses a duration: `"0"`, or a number with a unit (`ms`, `s`, `m`, `h`).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    match unit.trim() {
        "" if n == 0 => Some(Duration::ZERO),
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" | "min" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        _ => None,
    }
}

/// A value the file got wrong: what is wrong and where (a byte offset into the file).
struct Invalid {
    at: usize,
    message: String,
}

fn invalid<T>(value: &Spanned<T>, what: &str, message: String) -> Invalid {
    Invalid {
        at: value.span().start,
        message: format!("{what}: {message}"),
    }
}

fn rules(raw: &RawRules, base: &Rules, what: &str) -> Result<Rules, Invalid> {
    let weight = match &raw.weight {
        None => base.weight,
        Some(w) if *w.get_ref() == 0 => {
            return Err(invalid(w, what, "weight must be at least 1".into()))
        }
        Some(w) => *w.get_ref(),
    };
    let memory_quota = match &raw.memory_quota {
        None => base.memory_quota,
        Some(q) => match q.get_ref() {
            Size::Bytes(b) => *b,
            Size::Text(s) => parse_size(s).ok_or_else(|| {
                invalid(
                    q,
                    what,
                    format!("bad memory_quota {s:?} (e.g. \"8GiB\", \"0\")"),
                )
            })?,
        },
    };
    let kernel_timeout = match &raw.kernel_timeout {
        None => base.kernel_timeout,
        Some(t) => parse_duration(t.get_ref()).ok_or_else(|| {
            let s = t.get_ref();
            invalid(
                t,
                what,
                format!("bad kernel_timeout {s:?} (e.g. \"60s\", \"0\")"),
            )
        })?,
    };
    if let Some(g) = &raw.group {
        let name = g.get_ref();
        if name.is_empty() || name.chars().any(|c| c.is_control()) {
            return Err(invalid(g, what, format!("bad group name {name:?}")));
        }
    }
    Ok(Rules {
        weight,
        memory_quota,
        isolation: raw.isolation.unwrap_or(base.isolation),
        group: raw
            .group
            .as_ref()
            .map(|g| g.get_ref().clone())
            .or_else(|| base.group.clone()),
        kernel_timeout,
    })
}

/// `line L, column C` (1-based) of byte offset `at` in `text`.
fn line_column(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

impl Policy {
    /// Parses policy TOML (`path` names it in errors).
    pub fn parse(text: &str, path: &str) -> Result<Policy, PolicyError> {
        let err = |message: String| PolicyError::Parse {
            path: path.to_string(),
            message,
        };
        let placed = |e: Invalid| {
            let (line, column) = line_column(text, e.at);
            err(format!("line {line}, column {column}: {}", e.message))
        };
        let raw: RawPolicy = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        let default = rules(&raw.default, &Rules::default(), "[default]").map_err(placed)?;
        let mut tenants = HashMap::new();
        for (name, r) in &raw.tenants {
            tenants.insert(
                name.clone(),
                rules(r, &default, &format!("[tenants.{name}]")).map_err(placed)?,
            );
        }
        Ok(Policy { default, tenants })
    }

    /// Reads and parses a policy file.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Policy::parse(&text, &path.display().to_string())
    }

    /// The rules for tenant `name`.
    pub fn rules_for(&self, name: &str) -> Rules {
        self.tenants
            .get(name)
            .cloned()
            .unwrap_or_else(|| self.default.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rules_and_sizes() {
        let p = Policy::parse(
            "[default]\nweight = 2\n[tenants.a]\nmemory_quota = \"4GiB\"\n[tenants.b]\nweight = 5\nmemory_quota = 1024\n",
            "test",
        )
        .unwrap();
        let (a, b, z) = (p.rules_for("a"), p.rules_for("b"), p.rules_for("zzz"));
        assert_eq!((a.weight, a.memory_quota), (2, 4 << 30));
        assert_eq!((b.weight, b.memory_quota), (5, 1024));
        assert_eq!((z.weight, z.memory_quota), (2, 0));
        assert_eq!(z.isolation, Isolation::Uid, "the default isolation");
        assert!(Policy::parse("[default]\nweight = 0\n", "t").is_err());
        assert!(Policy::parse("[default]\nbogus = 1\n", "t").is_err());
        assert!(Policy::parse("[tenants.x]\nmemory_quota = \"3 parsecs\"\n", "t").is_err());
        assert_eq!(parse_size("512MiB"), Some(512 << 20));
        assert_eq!(parse_size("2GB"), Some(2_000_000_000));
        assert_eq!(parse_size("x"), None);
    }

    #[test]
    fn parses_isolation_groups_and_timeouts() {
        let p = Policy::parse(
            "[default]\nisolation = \"tenant\"\nkernel_timeout = \"60s\"\n\
             [tenants.a]\ngroup = \"g1\"\nkernel_timeout = \"0\"\n\
             [tenants.b]\nisolation = \"shared\"\nkernel_timeout = \"250ms\"\n",
            "t",
        )
        .unwrap();
        let (a, b, z) = (p.rules_for("a"), p.rules_for("b"), p.rules_for("z"));
        assert_eq!(
            (a.group.as_deref(), a.kernel_timeout),
            (Some("g1"), Duration::ZERO)
        );
        assert_eq!(
            (b.isolation, b.kernel_timeout),
            (Isolation::Shared, Duration::from_millis(250))
        );
        assert_eq!(
            (z.isolation, z.kernel_timeout),
            (Isolation::Tenant, Duration::from_secs(60))
        );
        for bad in [
            "[default]\nisolation = \"process\"\n",
            "[default]\nkernel_timeout = \"ten seconds\"\n",
            "[tenants.x]\ngroup = \"\"\n",
        ] {
            assert!(Policy::parse(bad, "t").is_err(), "{bad}");
        }
        let e = Policy::parse("[default]\nisolation = 3\n", "p.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2"), "the error names the line: {e}");
        let e = Policy::parse(
            "[default]\nweight = 1\n[tenants.x]\n  kernel_timeout = \"ten seconds\"\n",
            "p.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("p.toml") && e.contains("line 4, column 20") && e.contains("[tenants.x]"),
            "a value's error names its line and column: {e}"
        );
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("5"), None, "a unit is required except for 0");
    }
}
