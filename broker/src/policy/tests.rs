//! Unit tests of the policy file: every key, its errors (with line and column), precedence.

use super::*;

fn parse(text: &str) -> Policy {
    Policy::parse(text, "p.toml").unwrap_or_else(|e| panic!("{e}"))
}

/// The error of `text` as displayed; asserts it names the file and `line L, column C`.
fn error_at(text: &str, line: usize, column: usize) -> String {
    let e = Policy::parse(text, "p.toml").expect_err(text).to_string();
    let at = format!("line {line}, column {column}");
    assert!(
        e.starts_with("invalid policy file p.toml: ") && e.contains(&at),
        "{text:?}: the error names the file and {at}: {e}"
    );
    e
}

#[test]
fn parses_rules_and_sizes() {
    let p = parse(
        "[default]\nweight = 2\n[tenants.a]\nmemory_quota = \"4GiB\"\n[tenants.b]\nweight = 5\nmemory_quota = 1024\n",
    );
    let (a, b, z) = (
        p.rules_for("a", 0),
        p.rules_for("b", 0),
        p.rules_for("zzz", 0),
    );
    assert_eq!((a.weight, a.memory_quota), (2, 4 << 30));
    assert_eq!((b.weight, b.memory_quota), (5, 1024));
    assert_eq!((z.weight, z.memory_quota), (2, 0));
    assert_eq!(z.isolation, Isolation::Uid, "the default isolation");
    error_at("[default]\nweight = 0\n", 2, 10);
    error_at("[default]\nbogus = 1\n", 2, 1);
    error_at("[tenants.x]\nmemory_quota = \"3 parsecs\"\n", 2, 16);
    assert_eq!(parse_size("512MiB"), Some(512 << 20));
    assert_eq!(parse_size("2GB"), Some(2_000_000_000));
    assert_eq!(parse_size("x"), None);
}

#[test]
fn parses_isolation_groups_and_timeouts() {
    let p = parse(
        "[default]\nisolation = \"tenant\"\nkernel_timeout = \"60s\"\n\
         [tenants.a]\ngroup = \"g1\"\nkernel_timeout = \"0\"\n\
         [tenants.b]\nisolation = \"shared\"\nkernel_timeout = \"250ms\"\n",
    );
    let (a, b, z) = (
        p.rules_for("a", 0),
        p.rules_for("b", 0),
        p.rules_for("z", 0),
    );
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
    error_at("[default]\nisolation = \"process\"\n", 2, 13);
    error_at("[default]\nkernel_timeout = \"ten seconds\"\n", 2, 18);
    error_at("[tenants.x]\ngroup = \"\"\n", 2, 9);
    error_at("[default]\nisolation = 3\n", 2, 13);
    let e = error_at(
        "[default]\nweight = 1\n[tenants.x]\n  kernel_timeout = \"ten seconds\"\n",
        4,
        20,
    );
    assert!(e.contains("[tenants.x]"), "the error names the table: {e}");
    assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
    assert_eq!(parse_duration("5"), None, "a unit is required except for 0");
}

#[test]
fn priority_max_share_and_dedup() {
    let p = parse(
        "[default]\npriority = \"low\"\nmax_share = 0.5\ndedup = false\n\
         [tenants.hi]\npriority = \"high\"\nmax_share = 1\n\
         [tenants.capped]\nmax_share = 0.3\ndedup = true\n\
         [tenants.private]\ndedup = \"group\"\n",
    );
    let (d, hi, capped) = (
        p.rules_for("other", 0),
        p.rules_for("hi", 0),
        p.rules_for("capped", 0),
    );
    assert_eq!(p.rules_for("private", 0).dedup, DedupScope::Group);
    assert_eq!(
        (d.priority, d.max_share, d.dedup),
        (Priority::Low, Some(0.5), DedupScope::Off)
    );
    assert_eq!(
        (hi.priority, hi.max_share),
        (Priority::High, None),
        "max_share = 1 (an integer is fine) is no cap"
    );
    assert_eq!(
        (capped.priority, capped.max_share, capped.dedup),
        (Priority::Low, Some(0.3), DedupScope::Device)
    );
    let built_in = Policy::default().rules_for("x", 0);
    assert_eq!(
        (built_in.priority, built_in.max_share, built_in.dedup),
        (Priority::Normal, None, DedupScope::Device)
    );
    assert_eq!(Priority::High.name(), "high");
    error_at("[default]\npriority = \"urgent\"\n", 2, 12);
    error_at("[default]\npriority = 1\n", 2, 12);
    let e = error_at("[tenants.t]\nweight = 2\n  max_share = 1.5\n", 3, 15);
    assert!(e.contains("[tenants.t]") && e.contains("max_share"), "{e}");
    error_at("[default]\nmax_share = 0\n", 2, 13);
    error_at("[default]\nmax_share = -0.2\n", 2, 13);
    error_at("[default]\nmax_share = nan\n", 2, 13);
    error_at("[default]\nmax_share = \"30%\"\n", 2, 13);
    let e = error_at("[default]\ndedup = \"yes\"\n", 2, 9);
    assert!(e.contains("\"group\""), "{e}");
    error_at("[default]\ndedup = 1\n", 2, 9);
}

#[test]
fn scheduler_table() {
    let s = Policy::default().scheduler().clone();
    assert_eq!(s, SchedulerConfig::default());
    assert_eq!(
        (s.policy, s.quantum, s.slicing, s.profiles.len()),
        (SchedulingPolicy::Fair, Duration::from_millis(2), true, 0)
    );
    let p = Policy::parse(
        "[scheduler]\npolicy = \"fifo\"\nquantum = \"500us\"\nslicing = false\n\
         profiles = [\"llm.json\", \"/abs/mlp.json\", \"sub/x.json\"]\n",
        "/etc/gpushare/policy.toml",
    )
    .unwrap();
    let s = p.scheduler();
    assert_eq!(
        (s.policy, s.quantum, s.slicing),
        (SchedulingPolicy::Fifo, Duration::from_micros(500), false)
    );
    assert_eq!(
        s.profiles,
        [
            PathBuf::from("/etc/gpushare/llm.json"),
            PathBuf::from("/abs/mlp.json"),
            PathBuf::from("/etc/gpushare/sub/x.json"),
        ],
        "relative to the policy file's directory"
    );
    for (q, want) in [
        ("100us", Duration::from_micros(100)),
        ("250µs", Duration::from_micros(250)),
        ("2ms", Duration::from_millis(2)),
        ("100ms", Duration::from_millis(100)),
    ] {
        let p = parse(&format!("[scheduler]\nquantum = \"{q}\"\n"));
        assert_eq!(p.scheduler().quantum, want, "{q}");
    }
    let e = error_at("[scheduler]\nquantum = \"99us\"\n", 2, 11);
    assert!(
        e.contains("[scheduler]") && e.contains("out of range"),
        "{e}"
    );
    error_at("[scheduler]\nquantum = \"101ms\"\n", 2, 11);
    error_at("[scheduler]\nquantum = \"1s\"\n", 2, 11);
    error_at("[scheduler]\nquantum = \"0\"\n", 2, 11);
    error_at("[scheduler]\nquantum = \"2 fortnights\"\n", 2, 11);
    error_at("[scheduler]\nquantum = 2\n", 2, 11);
    error_at("[scheduler]\npolicy = \"lottery\"\n", 2, 10);
    error_at("[scheduler]\nslicing = 1\n", 2, 11);
    error_at("[scheduler]\nprofiles = \"a.json\"\n", 2, 12);
    error_at("[scheduler]\nprofiles = [\"a.json\", \"\"]\n", 2, 23);
    error_at("[scheduler]\nscheduler = \"fair\"\n", 2, 1);
    error_at("[scheduler]\nweight = 2\n", 2, 1);
}

const LAYERS: &str = "[default]\nweight = 2\nmemory_quota = \"1GiB\"\npriority = \"low\"\n\
    [users.alice]\nweight = 3\nkernel_timeout = \"5s\"\n\
    [users.1000]\nmemory_quota = \"2GiB\"\n\
    [users.2000]\nweight = 7\n\
    [tenants.llm]\npriority = \"high\"\n";

#[test]
fn precedence_tenants_over_users_over_default() {
    let p = parse(LAYERS);
    // A user table by name, then by uid, then the tenant's, each over the one before.
    let r = p.rules_for_user("llm", 1000, Some("alice"));
    assert_eq!(
        (r.weight, r.memory_quota, r.priority, r.kernel_timeout),
        (3, 2 << 30, Priority::High, Duration::from_secs(5))
    );
    let r = p.rules_for_user("other", 1000, Some("bob"));
    assert_eq!(
        (r.weight, r.memory_quota, r.priority),
        (2, 2 << 30, Priority::Low)
    );
    let r = p.rules_for_user("other", 1001, Some("alice"));
    assert_eq!((r.weight, r.memory_quota), (3, 1 << 30));
    let r = p.rules_for_user("llm", 2000, None);
    assert_eq!((r.weight, r.priority), (7, Priority::High));
    let r = p.rules_for_user("other", 3000, None);
    assert_eq!(
        (r.weight, r.memory_quota, r.priority),
        (2, 1 << 30, Priority::Low)
    );
    // A tenant table overrides a user's value with its own.
    let p = parse("[users.0]\nweight = 9\n[tenants.t]\nweight = 4\n");
    assert_eq!(p.rules_for("t", 0).weight, 4);
    assert_eq!(p.rules_for("u", 0).weight, 9, "numeric uids need no lookup");
    // User names are looked up in the passwd database.
    if let Some(name) = user_name(0) {
        let p = parse(&format!("[users.{name}]\nweight = 6\n"));
        assert_eq!(p.rules_for("t", 0).weight, 6, "{name}");
    }
}

#[test]
fn user_table_errors() {
    let e = error_at("[users.alice]\n weight = 0\n", 2, 11);
    assert!(e.contains("[users.alice]"), "{e}");
    error_at("[users.4294967296]\nweight = 1\n", 1, 8);
    error_at("[users.\"\"]\nweight = 1\n", 1, 8);
    error_at("[users.\"a:b\"]\nweight = 1\n", 1, 8);
    error_at(
        "[users.1000]\nweight = 1\n[users.01000]\nweight = 2\n",
        3,
        8,
    );
    error_at("[users.bob]\nisolation = \"none\"\n", 2, 13);
    error_at("[user.bob]\nweight = 1\n", 1, 2);
}

#[test]
fn errors_are_reported_in_file_order() {
    for _ in 0..8 {
        error_at(
            "[tenants.a]\nweight = 1\n[tenants.b]\nweight = 0\n[tenants.c]\nweight = 0\n",
            4,
            10,
        );
    }
}

#[test]
fn summary_and_syntax_errors() {
    let s = parse(LAYERS).summary();
    assert_eq!(
        s,
        "1 tenant rule (llm), 3 user rules (alice, 1000, 2000); scheduler fair, quantum 2ms, \
         slicing on, 0 profiles"
    );
    error_at("[default]\nweight = \n", 2, 10);
    error_at("[default\n", 1, 9);
    let e = Policy::load(Path::new("/nonexistent/p.toml")).unwrap_err();
    assert!(matches!(e, PolicyError::Read { .. }), "{e}");
}

#[test]
fn object_limits_default_layer_and_fail_at_their_place() {
    let p = parse(
        "[default]\nmax_streams = 64\nmax_module_bytes = \"256MiB\"\n\
         [users.7]\nmax_events = 10\nmax_pinned_bytes = \"1GiB\"\n\
         [tenants.a]\nmax_modules = 3\nmax_host_fns = 0\nmax_module_bytes = 1000\n",
    );
    let (a, u, z) = (
        p.rules_for("a", 7),
        p.rules_for("z", 7),
        p.rules_for("z", 0),
    );
    let d = Limits::default();
    assert_eq!(
        z.limits,
        Limits {
            streams: 64,
            module_bytes: 256 << 20,
            ..d
        }
    );
    assert_eq!(u.limits.events, 10, "[users.UID] over [default]");
    assert_eq!(u.limits.pinned_bytes, 1 << 30);
    assert_eq!(
        a.limits,
        Limits {
            streams: 64,
            events: 10,
            modules: 3,
            module_bytes: 1000,
            host_fns: 0,
            pinned_bytes: 1 << 30,
        },
        "[tenants.NAME] over both, field by field"
    );
    assert_eq!(Policy::default().rules_for("x", 0).limits, d);
    assert_eq!(
        (
            d.streams,
            d.events,
            d.modules,
            d.module_bytes,
            d.host_fns,
            d.pinned_bytes
        ),
        (4096, 65_536, 16_384, 4 << 30, 65_536, 0)
    );
    error_at("[default]\nmax_streams = -1\n", 2, 15);
    error_at("[default]\nmax_events = \"many\"\n", 2, 14);
    error_at("[tenants.x]\nmax_modules = 5000000000\n", 2, 15);
    let e = error_at("[tenants.x]\nmax_module_bytes = \"lots\"\n", 2, 20);
    assert!(e.contains("bad max_module_bytes"), "{e}");
    error_at("[default]\nmax_host_fns = 1.5\n", 2, 16);
    let e = error_at("[users.7]\nmax_pinned_bytes = \"8 cows\"\n", 2, 20);
    assert!(e.contains("bad max_pinned_bytes"), "{e}");
}

/// A user database for the access tests: uid 1000 is alice.
struct Users;

impl Directory for Users {
    fn user_name(&self, uid: u32) -> Option<String> {
        (uid == 1000).then(|| "alice".to_string())
    }

    fn group_id(&self, _: &str) -> Option<u32> {
        None
    }

    fn groups_of(&self, _: u32, gid: u32) -> Vec<u32> {
        vec![gid]
    }
}

#[test]
fn access_and_reserved_names() {
    let p = parse(
        "[access]\nusers = [\"bob\", 1001]\ngroups = [\"gpu\", 27]\nadmins = [\"alice\"]\n\
         [tenants.llm]\nweight = 2\nusers = [\"alice\", 2000]\n",
    );
    let a = p.access();
    assert_eq!(
        a.users,
        vec![Principal::Name("bob".into()), Principal::Id(1001)]
    );
    assert_eq!(
        a.groups,
        vec![Principal::Name("gpu".into()), Principal::Id(27)]
    );
    assert_eq!(a.admins, vec![Principal::Name("alice".into())]);
    assert_eq!(a.socket_mode(), 0o666);
    assert!(p.may_use_name("llm", 1000, &Users).is_ok(), "alice by name");
    assert!(p.may_use_name("llm", 2000, &Users).is_ok(), "by uid");
    assert!(p.may_use_name("llm", 0, &Users).is_ok(), "root");
    let e = p.may_use_name("llm", 1001, &Users).expect_err("reserved");
    assert!(e.contains("reserved") && e.contains("1001"), "{e}");
    assert!(p.may_use_name("other", 1001, &Users).is_ok());
    assert_eq!(p.rules_for("llm", 1000).weight, 2);
    assert_eq!(parse("").access().socket_mode(), 0o600);
    let e = error_at("[default]\nusers = [\"alice\"]\n", 2, 10);
    assert!(e.contains("[tenants.NAME]"), "{e}");
    error_at("[users.1000]\nweight = 1\nusers = [1]\n", 3, 10);
    error_at("[access]\nusers = [\"a:b\"]\n", 2, 10);
    error_at("[access]\nfriends = [1]\n", 2, 1);
    error_at("[access]\nusers = [-1]\n", 2, 10);
}
