//! Reading the policy file: the TOML shape as `toml` deserializes it (values with their spans),
//! the checks `toml` cannot make (ranges, units, names), and the placing of every error at its
//! line and column.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{
    parse_size, AccessRules, DedupScope, Isolation, LimitOverrides, Location, Overrides, Policy,
    PolicyError, Principal, Priority, Rules, SchedulerConfig, SchedulingPolicy, MAX_QUANTUM,
    MIN_QUANTUM,
};

/// One `[default]`, `[users.*]` or `[tenants.*]` table as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRules {
    weight: Option<Spanned<u32>>,
    priority: Option<Priority>,
    max_share: Option<Spanned<f64>>,
    memory_quota: Option<Spanned<Size>>,
    isolation: Option<Isolation>,
    group: Option<Spanned<String>>,
    kernel_timeout: Option<Spanned<String>>,
    dedup: Option<Spanned<RawDedup>>,
    max_streams: Option<u32>,
    max_events: Option<u32>,
    max_modules: Option<u32>,
    max_module_bytes: Option<Spanned<Size>>,
    max_host_fns: Option<u32>,
    max_pinned_bytes: Option<Spanned<Size>>,
    /// Only in `[tenants.*]`: who may use the name.
    users: Option<Vec<Spanned<RawPrincipal>>>,
}

/// `dedup` as written: a boolean or a scope's name.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawDedup {
    Flag(bool),
    Scope(String),
}

/// A user or group as written: a number or a name.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawPrincipal {
    Id(i64),
    Name(String),
}

/// The `[access]` table as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccess {
    #[serde(default)]
    users: Vec<Spanned<RawPrincipal>>,
    #[serde(default)]
    groups: Vec<Spanned<RawPrincipal>>,
    #[serde(default)]
    admins: Vec<Spanned<RawPrincipal>>,
    #[serde(default)]
    admin_groups: Vec<Spanned<RawPrincipal>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Size {
    Bytes(u64),
    Text(String),
}

/// The `[scheduler]` table as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScheduler {
    policy: Option<SchedulingPolicy>,
    quantum: Option<Spanned<String>>,
    slicing: Option<bool>,
    profiles: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    default: RawRules,
    #[serde(default)]
    users: HashMap<Spanned<String>, RawRules>,
    #[serde(default)]
    tenants: HashMap<Spanned<String>, RawRules>,
    #[serde(default)]
    scheduler: RawScheduler,
    #[serde(default)]
    access: RawAccess,
}

/// A list of users or groups, each name checked (`what` names the key in errors).
fn principals(list: &[Spanned<RawPrincipal>], what: &str) -> Result<Vec<Principal>, Invalid> {
    list.iter()
        .map(|p| match p.get_ref() {
            RawPrincipal::Id(id) => u32::try_from(*id)
                .map(Principal::Id)
                .map_err(|_| invalid(p, what, format!("id {id} is out of range"))),
            RawPrincipal::Name(n)
                if n.is_empty() || n.chars().any(|c| c.is_control() || c == ':' || c == '/') =>
            {
                Err(invalid(p, what, format!("bad name {n:?}")))
            }
            RawPrincipal::Name(n) => Ok(Principal::Name(n.clone())),
        })
        .collect()
}

fn access(raw: &RawAccess) -> Result<AccessRules, Invalid> {
    Ok(AccessRules {
        users: principals(&raw.users, "[access] users")?,
        groups: principals(&raw.groups, "[access] groups")?,
        admins: principals(&raw.admins, "[access] admins")?,
        admin_groups: principals(&raw.admin_groups, "[access] admin_groups")?,
    })
}

/// Parses a duration: `"0"`, or a whole number with a unit (`us` or `µs`, `ms`, `s`, `m`, `h`).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    match unit.trim() {
        "" if n == 0 => Some(Duration::ZERO),
        "us" | "µs" => Some(Duration::from_micros(n)),
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

/// The [`Location`] of byte offset `at` in `text`.
fn line_column(text: &str, at: usize) -> Location {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Location { line, column }
}

fn weight(raw: &RawRules, what: &str) -> Result<Option<u32>, Invalid> {
    match &raw.weight {
        Some(w) if *w.get_ref() == 0 => Err(invalid(w, what, "weight must be at least 1".into())),
        w => Ok(w.as_ref().map(|w| *w.get_ref())),
    }
}

fn max_share(raw: &RawRules, what: &str) -> Result<Option<f64>, Invalid> {
    match &raw.max_share {
        None => Ok(None),
        Some(m) => {
            let x = *m.get_ref();
            if x > 0.0 && x <= 1.0 {
                Ok(Some(x))
            } else {
                Err(invalid(
                    m,
                    what,
                    format!("max_share must be above 0 and at most 1 (e.g. 0.3), not {x}"),
                ))
            }
        }
    }
}

/// A size key (`memory_quota`, `max_module_bytes`, `max_pinned_bytes`): bytes, or text with a
/// unit.
fn size(value: Option<&Spanned<Size>>, key: &str, what: &str) -> Result<Option<u64>, Invalid> {
    let Some(q) = value else {
        return Ok(None);
    };
    match q.get_ref() {
        Size::Bytes(b) => Ok(Some(*b)),
        Size::Text(s) => parse_size(s)
            .map(Some)
            .ok_or_else(|| invalid(q, what, format!("bad {key} {s:?} (e.g. \"8GiB\", \"0\")"))),
    }
}

/// The object bounds a table sets (counts are checked by their type: whole numbers from 0).
fn limits(raw: &RawRules, what: &str) -> Result<LimitOverrides, Invalid> {
    Ok(LimitOverrides {
        streams: raw.max_streams,
        events: raw.max_events,
        modules: raw.max_modules,
        module_bytes: size(raw.max_module_bytes.as_ref(), "max_module_bytes", what)?,
        host_fns: raw.max_host_fns,
        pinned_bytes: size(raw.max_pinned_bytes.as_ref(), "max_pinned_bytes", what)?,
    })
}

fn kernel_timeout(raw: &RawRules, what: &str) -> Result<Option<Duration>, Invalid> {
    let Some(t) = &raw.kernel_timeout else {
        return Ok(None);
    };
    let s = t.get_ref();
    parse_duration(s).map(Some).ok_or_else(|| {
        invalid(
            t,
            what,
            format!("bad kernel_timeout {s:?} (e.g. \"60s\", \"0\")"),
        )
    })
}

fn dedup(raw: &RawRules, what: &str) -> Result<Option<DedupScope>, Invalid> {
    let Some(d) = &raw.dedup else {
        return Ok(None);
    };
    match d.get_ref() {
        RawDedup::Flag(true) => Ok(Some(DedupScope::Device)),
        RawDedup::Flag(false) => Ok(Some(DedupScope::Off)),
        RawDedup::Scope(s) if s == "group" => Ok(Some(DedupScope::Group)),
        RawDedup::Scope(s) => Err(invalid(
            d,
            what,
            format!("bad dedup {s:?} (true, false or \"group\")"),
        )),
    }
}

/// Checks one rules table.
fn overrides(raw: &RawRules, what: &str) -> Result<Overrides, Invalid> {
    if let Some(g) = &raw.group {
        let name = g.get_ref();
        if name.is_empty() || name.chars().any(|c| c.is_control()) {
            return Err(invalid(g, what, format!("bad group name {name:?}")));
        }
    }
    Ok(Overrides {
        weight: weight(raw, what)?,
        priority: raw.priority,
        max_share: max_share(raw, what)?,
        memory_quota: size(raw.memory_quota.as_ref(), "memory_quota", what)?,
        isolation: raw.isolation,
        group: raw.group.as_ref().map(|g| g.get_ref().clone()),
        kernel_timeout: kernel_timeout(raw, what)?,
        dedup: dedup(raw, what)?,
        limits: limits(raw, what)?,
    })
}

/// Checks the `[scheduler]` table; relative profile paths are resolved against `dir`.
fn scheduler(raw: &RawScheduler, dir: &Path) -> Result<SchedulerConfig, Invalid> {
    const WHAT: &str = "[scheduler]";
    let mut cfg = SchedulerConfig::default();
    if let Some(p) = raw.policy {
        cfg.policy = p;
    }
    if let Some(s) = raw.slicing {
        cfg.slicing = s;
    }
    if let Some(q) = &raw.quantum {
        let s = q.get_ref();
        let d = parse_duration(s).ok_or_else(|| {
            invalid(
                q,
                WHAT,
                format!("bad quantum {s:?} (e.g. \"2ms\", \"500us\")"),
            )
        })?;
        if !(MIN_QUANTUM..=MAX_QUANTUM).contains(&d) {
            return Err(invalid(
                q,
                WHAT,
                format!("quantum {s:?} is out of range (100us to 100ms)"),
            ));
        }
        cfg.quantum = d;
    }
    for p in raw.profiles.iter().flatten() {
        let s = p.get_ref();
        if s.trim().is_empty() {
            return Err(invalid(p, WHAT, "an empty profile path".into()));
        }
        cfg.profiles.push(dir.join(PathBuf::from(s)));
    }
    Ok(cfg)
}

/// A `[users.KEY]` table's user: a numeric uid, else a user name.
enum UserKey {
    Uid(u32),
    Name(String),
}

fn user_key(key: &Spanned<String>) -> Result<UserKey, Invalid> {
    let k = key.get_ref();
    let what = format!("[users.{k}]");
    if !k.is_empty() && k.chars().all(|c| c.is_ascii_digit()) {
        return k
            .parse()
            .map(UserKey::Uid)
            .map_err(|_| invalid(key, &what, format!("uid {k} is out of range")));
    }
    if k.is_empty() || k.chars().any(|c| c.is_control() || c == ':' || c == '/') {
        return Err(invalid(key, &what, format!("bad user name {k:?}")));
    }
    Ok(UserKey::Name(k.clone()))
}

/// `users` (who may use a tenant name) belongs in `[tenants.*]` only.
fn only_in_tenants(r: &RawRules, what: &str) -> Result<(), Invalid> {
    match r.users.as_ref().and_then(|u| u.first()) {
        Some(first) => Err(invalid(
            first,
            what,
            "`users` (who may use a tenant name) belongs in a [tenants.NAME] table".into(),
        )),
        None => Ok(()),
    }
}

/// The tables of `map` in the order the file has them (so the first error is reported).
fn in_file_order(map: &HashMap<Spanned<String>, RawRules>) -> Vec<(&Spanned<String>, &RawRules)> {
    let mut v: Vec<_> = map.iter().collect();
    v.sort_by_key(|(k, _)| k.span().start);
    v
}

/// Checks every table of a deserialized file.
fn checked(raw: &RawPolicy, dir: &Path) -> Result<Policy, Invalid> {
    only_in_tenants(&raw.default, "[default]")?;
    let default = overrides(&raw.default, "[default]")?.apply(Rules::default());
    let mut policy = Policy {
        default,
        scheduler: scheduler(&raw.scheduler, dir)?,
        access: access(&raw.access)?,
        ..Policy::default()
    };
    for (key, r) in in_file_order(&raw.users) {
        only_in_tenants(r, &format!("[users.{}]", key.get_ref()))?;
        let o = overrides(r, &format!("[users.{}]", key.get_ref()))?;
        match user_key(key)? {
            UserKey::Uid(uid) => {
                if policy.uids.insert(uid, o).is_some() {
                    let what = format!("[users.{}]", key.get_ref());
                    return Err(invalid(key, &what, format!("uid {uid} has two tables")));
                }
            }
            UserKey::Name(name) => {
                policy.user_names.insert(name, o);
            }
        }
    }
    for (name, r) in in_file_order(&raw.tenants) {
        let what = format!("[tenants.{}]", name.get_ref());
        let o = overrides(r, &what)?;
        policy.tenants.insert(name.get_ref().clone(), o);
        if let Some(users) = &r.users {
            let users = principals(users, &format!("{what} users"))?;
            policy.tenant_users.insert(name.get_ref().clone(), users);
        }
    }
    Ok(policy)
}

/// Parses policy TOML (see [`Policy::parse`]).
pub(super) fn policy(text: &str, path: &str) -> Result<Policy, PolicyError> {
    let err = |location: Option<Location>, message: String| PolicyError::Parse {
        path: path.to_string(),
        location,
        message,
    };
    let raw: RawPolicy = toml::from_str(text).map_err(|e| {
        let location = e.span().map(|s| line_column(text, s.start));
        err(location, e.message().trim().to_string())
    })?;
    let dir = Path::new(path).parent().unwrap_or(Path::new(""));
    checked(&raw, dir).map_err(|e| err(Some(line_column(text, e.at)), e.message))
}
