//! Local security (issue 13): what another user on the machine can and cannot do to a tenant or
//! the broker. Cross-uid cases need root (CI runs as root); they say so and skip otherwise.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use gpushare_tests::broker::{gpushare_bin, shim_lib, Broker};
use gpushare_tests::compile_c;
use gpushare_tests::process::{run_command, Proc};

/// An empty scratch directory for this test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gpushare-security-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// `gpushare run -- dlopen_probe LIB` with `tmpdir` as `TMPDIR` and no runtime directory;
/// returns the first `LD_LIBRARY_PATH` entry the program saw, whether `lib` loaded, and stderr.
fn probe(tmpdir: &Path, lib: &str) -> (PathBuf, bool, String) {
    let socket = tmpdir.join("no-broker.sock");
    // `gpushare run` only checks that the socket exists; the probe never connects.
    std::fs::write(&socket, b"").expect("socket placeholder");
    let mut cmd = Command::new(gpushare_bin());
    cmd.arg("run")
        .arg("--socket")
        .arg(&socket)
        .arg("--")
        .arg(compile_c("dlopen_probe"))
        .arg(lib)
        .env("TMPDIR", tmpdir)
        .env_remove("XDG_RUNTIME_DIR")
        .env("GPUSHARE_SHIM_LIB", shim_lib());
    let out = run_command(cmd, Duration::from_secs(30));
    assert_eq!(out.code, Some(0), "{out:?}");
    let field = |key: &str| {
        out.stdout
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key:?} in {out:?}"))
            .trim()
            .to_string()
    };
    let first = PathBuf::from(field("first_lib_dir "));
    (first, field("dlopen ") == "loaded", out.stderr.clone())
}

/// A shared library that does nothing, built at `path`.
fn build_library(path: &Path) {
    let src = path.with_extension("c");
    std::fs::write(&src, "int planted_by_another_user(void) { return 1; }\n").unwrap();
    let status = Command::new("gcc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(path)
        .arg(&src)
        .status()
        .expect("gcc");
    assert!(status.success(), "building {}", path.display());
}

#[test]
fn run_links_the_shim_from_a_private_directory() {
    let tmp = scratch("clean");
    let (first, _, _) = probe(&tmp, "libnothing.so");
    let base = first.parent().expect("the link directory has a parent");
    for dir in [first.as_path(), base] {
        let meta = std::fs::symlink_metadata(dir).expect("exists");
        assert!(meta.is_dir(), "{}", dir.display());
        assert_eq!(meta.uid(), std::fs::metadata("/proc/self").unwrap().uid());
        assert_eq!(
            meta.permissions().mode() & 0o077,
            0,
            "{} is open to others",
            dir.display()
        );
    }
    assert!(first.join("libcuda.so").exists() && first.join("libcuda.so.1").exists());
    std::fs::remove_dir_all(tmp).unwrap();
}

/// Another user (or anyone, through a world-writable directory) made `gpushare-run-$UID` first
/// and planted a library where the tenant's links would go: it must never load.
#[test]
fn a_library_planted_in_the_predictable_directory_never_loads() {
    // Where the links go when nobody interferes: `<base>/lib-<hash>`.
    let clean = scratch("learn");
    let (first, _, _) = probe(&clean, "libnothing.so");
    let base_name = first
        .parent()
        .and_then(Path::file_name)
        .expect("base")
        .to_owned();
    let lib_name = first.file_name().expect("lib dir").to_owned();
    std::fs::remove_dir_all(clean).unwrap();

    let tmp = scratch("planted");
    let base = tmp.join(&base_name);
    let planted_dir = base.join(&lib_name);
    std::fs::create_dir_all(&planted_dir).unwrap();
    build_library(&planted_dir.join("libplanted.so"));
    std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (first, loaded, stderr) = probe(&tmp, "libplanted.so");
    assert!(
        !loaded,
        "the planted library loaded (first entry {})",
        first.display()
    );
    assert!(
        !first.starts_with(&base),
        "{} is inside the planted directory",
        first.display()
    );
    assert!(
        stderr.contains("not using") && stderr.contains("0777"),
        "{stderr}"
    );

    if is_root() {
        // Owned by another user (nobody), closed to others: still not ours.
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::chown(&base, Some(65534), Some(65534)).unwrap();
        let (first, loaded, stderr) = probe(&tmp, "libplanted.so");
        assert!(!loaded && !first.starts_with(&base), "{}", first.display());
        assert!(stderr.contains("belongs to uid 65534"), "{stderr}");
    } else {
        eprintln!("not root: the case of a directory owned by another user is skipped");
    }
    std::fs::remove_dir_all(tmp).unwrap();
}

/// `setpriv` running `program` as uid and gid 65534 (nobody) with no supplementary groups.
fn as_nobody(program: &Path) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(program);
    cmd
}

/// Skips (true) with a message when the test cannot switch users.
fn cannot_switch_users(test: &str) -> bool {
    let ok = is_root() && Command::new("setpriv").arg("--version").output().is_ok();
    if !ok {
        eprintln!("{test}: skipped (needs root and setpriv to act as another user)");
    }
    !ok
}

#[test]
fn the_broker_admits_only_its_own_user_and_root() {
    if cannot_switch_users("the_broker_admits_only_its_own_user_and_root") {
        return;
    }
    let broker = Broker::start(&[]);
    let socket = broker.socket();
    let mode = std::fs::metadata(socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode, 0o600,
        "the socket's mode is explicit, not the umask's"
    );
    // Open the socket itself: the broker's own check must still refuse.
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let mut status = as_nobody(gpushare_bin());
    status.arg("status").arg("--socket").arg(socket);
    let out = run_command(status, Duration::from_secs(20));
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(
        out.stderr.contains("uid 65534 may not use this broker"),
        "{out:?}"
    );
    assert!(
        broker
            .log_text()
            .contains("refused a connection: uid 65534"),
        "{}",
        broker.log_tail(20)
    );
    // Its own user (root here) still gets in.
    broker.status().expect("root is admitted");
}

#[test]
fn clients_send_nothing_to_a_listener_of_another_user() {
    if cannot_switch_users("clients_send_nothing_to_a_listener_of_another_user") {
        return;
    }
    let dir = scratch("fake");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let socket = dir.join("broker.sock");
    let mut listener = as_nobody(&compile_c("fake_listener"));
    listener.arg(&socket);
    let mut fake = Proc::spawn(listener);
    fake.wait_line(Duration::from_secs(10), |l| l == "listening")
        .expect("the fake broker listens");
    let mut status = Command::new(gpushare_bin());
    status.arg("status").arg("--socket").arg(&socket);
    let out = run_command(status, Duration::from_secs(20));
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.contains("runs as uid 65534"), "{out:?}");
    let got = fake.wait(Duration::from_secs(20));
    assert!(
        got.stdout.contains("received 0"),
        "the fake broker got data: {got:?}"
    );

    // The shim (inside a tenant) refuses it the same way: cuInit reports no device.
    let mut listener = as_nobody(&compile_c("fake_listener"));
    let _ = std::fs::remove_file(&socket);
    listener.arg(&socket);
    let mut fake = Proc::spawn(listener);
    fake.wait_line(Duration::from_secs(10), |l| l == "listening")
        .expect("the fake broker listens");
    let mut tenant = Command::new(gpushare_bin());
    tenant
        .arg("run")
        .arg("--socket")
        .arg(&socket)
        .arg("--")
        .arg(compile_c("init_only"))
        .env("TMPDIR", &dir)
        .env("GPUSHARE_SHIM_LIB", shim_lib());
    let out = run_command(tenant, Duration::from_secs(20));
    assert!(
        out.stdout.contains("cuInit 100"),
        "CUDA_ERROR_NO_DEVICE expected: {out:?}"
    );
    let got = fake.wait(Duration::from_secs(20));
    assert!(
        got.stdout.contains("received 0"),
        "the fake broker got data: {got:?}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_socket_directory_others_may_write_to_is_refused() {
    let dir = scratch("open-socket-dir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut broker = Command::new(gpushare_bin());
    broker
        .args(["broker", "--device", "cpu", "--socket"])
        .arg(dir.join("broker.sock"));
    let out = run_command(broker, Duration::from_secs(30));
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(
        out.stderr.contains("socket directory refused") && out.stderr.contains("0777"),
        "{out:?}"
    );
    assert!(!dir.join("broker.sock").exists());
    std::fs::remove_dir_all(dir).unwrap();
}

/// A client that sends its `Hello` a byte at a time, slower than the whole handshake may take, is
/// cut off (a per-read timeout alone would keep it forever).
#[test]
fn a_handshake_trickled_a_byte_at_a_time_is_cut_off() {
    use std::io::{Read, Write};
    let broker = Broker::start(&[]);
    let mut conn = std::os::unix::net::UnixStream::connect(broker.socket()).unwrap();
    // A plausible frame: a length prefix of 64 bytes, then the payload, slowly.
    conn.write_all(&64u32.to_le_bytes()).unwrap();
    let start = std::time::Instant::now();
    let mut writer = conn.try_clone().unwrap();
    let trickle = std::thread::spawn(move || {
        for _ in 0..60 {
            std::thread::sleep(Duration::from_millis(300));
            if writer.write_all(&[0]).is_err() {
                return;
            }
        }
    });
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buf = [0u8; 256];
    let n = conn.read(&mut buf).unwrap_or(0);
    let held = start.elapsed();
    assert_eq!(n, 0, "the broker answered a half-sent Hello");
    assert!(held < Duration::from_secs(15), "held for {held:?}");
    trickle.join().unwrap();
    assert!(
        broker.log_text().contains("did not finish the handshake"),
        "{}",
        broker.log_tail(10)
    );
    broker.status().expect("the broker still serves");
}

/// Connections that never say anything are capped per uid: beyond the cap they are closed at
/// once, without a thread; once they go, the user gets in again.
#[test]
fn idle_connections_are_capped_per_user() {
    use std::io::Read;
    let broker = Broker::start(&[]);
    let idle: Vec<_> = (0..32)
        .map(|_| std::os::unix::net::UnixStream::connect(broker.socket()).unwrap())
        .collect();
    // One more is closed at once, as soon as the acceptor has seen all 32 (on a loaded machine
    // that takes a while: until then an extra connection is admitted, and dropped here).
    let seen_all = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut extra = std::os::unix::net::UnixStream::connect(broker.socket()).unwrap();
        extra
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut buf = [0u8; 16];
        if extra.read(&mut buf).ok() == Some(0) {
            break;
        }
        assert!(
            std::time::Instant::now() < seen_all,
            "a connection beyond 32 idle ones was not closed at once"
        );
    }
    assert!(
        broker
            .log_text()
            .contains("already has 32 connections waiting"),
        "{}",
        broker.log_tail(10)
    );
    drop(idle);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while broker.status().is_err() {
        assert!(std::time::Instant::now() < deadline, "never admitted again");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A tenant name with a newline and escape codes is refused (the shim gets no device), and the
/// broker's log shows it escaped: no forged line.
#[test]
fn a_name_with_control_characters_is_refused_and_logged_escaped() {
    let broker = Broker::start(&[]);
    let name = "x\nFAKE: session opened\u{1b}[2J";
    let out = broker.run_tenant(
        name,
        &compile_c("init_only"),
        &[] as &[&str],
        &[],
        Duration::from_secs(30),
    );
    assert!(out.stdout.contains("cuInit 100"), "{out:?}");
    let log = broker.log_text();
    assert!(!log.lines().any(|l| l.starts_with("FAKE")), "{log}");
    assert!(
        !log.contains("\u{1b}[2J"),
        "the name's escape code reached the log"
    );
    assert!(
        log.contains("contains the control or formatting character"),
        "{log}"
    );
}

/// `[access]` admits another user; that user sees only its own tenants in `gpushare status` and
/// cannot use a tenant name the policy reserves for others.
#[test]
fn the_policy_admits_users_who_see_only_their_own_tenants_and_names() {
    if cannot_switch_users("the_policy_admits_users_who_see_only_their_own_tenants_and_names") {
        return;
    }
    let broker = Broker::start_with_policy(
        Some("[access]\nusers = [65534]\n[tenants.reserved]\nusers = [1000]\n"),
        &[],
    );
    let socket = broker.socket();
    let mode = std::fs::metadata(socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode, 0o666,
        "others are admitted: the socket is open, the policy decides"
    );
    // A tenant of root's, running while nobody looks.
    let bench = compile_c("bench_sched");
    let root_tenant =
        broker.spawn_tenant("roots", &bench, &["--seconds", "4", "--ns", "100000"], &[]);
    broker
        .wait_status("root's tenant", Duration::from_secs(20), |s| {
            s.tenants.iter().any(|t| t.name == "roots")
        })
        .expect("root sees its tenant");
    let mut status = as_nobody(gpushare_bin());
    status.arg("status").arg("--socket").arg(socket);
    let out = run_command(status, Duration::from_secs(20));
    assert_eq!(out.code, Some(0), "nobody is admitted: {out:?}");
    assert!(
        out.stdout.contains("no tenants") && !out.stdout.contains("roots"),
        "nobody sees root's tenant: {out:?}"
    );

    let tmp = scratch("nobody-run");
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o777)).unwrap();
    // The build tree may sit in a directory only root can enter (a fresh clone in a mkdtemp
    // directory): uid 65534 runs copies.
    let reachable = |from: &Path| {
        let to = tmp.join(from.file_name().expect("a file"));
        std::fs::copy(from, &to).expect("copy for uid 65534");
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).unwrap();
        to
    };
    let (gpushare, shim, program) = (
        reachable(gpushare_bin()),
        reachable(shim_lib()),
        reachable(&compile_c("init_only")),
    );
    let run_as_nobody = |name: &str| {
        let mut cmd = as_nobody(&gpushare);
        cmd.args(["run", "--name", name, "--socket"])
            .arg(socket)
            .arg("--")
            .arg(&program)
            .env("TMPDIR", &tmp)
            .env_remove("XDG_RUNTIME_DIR")
            .env("GPUSHARE_SHIM_LIB", &shim);
        run_command(cmd, Duration::from_secs(30))
    };
    let reserved = run_as_nobody("reserved");
    assert!(reserved.stdout.contains("cuInit 100"), "{reserved:?}");
    assert!(
        broker.log_text().contains("is reserved by the policy"),
        "{}",
        broker.log_tail(10)
    );
    let own = run_as_nobody("mine");
    assert!(own.stdout.contains("cuInit 0"), "{own:?}");
    let out = root_tenant.wait(Duration::from_secs(30));
    assert_eq!(out.code, Some(0), "{out:?}");
    std::fs::remove_dir_all(tmp).unwrap();
}

/// An admin client that asks for status over and over and never reads the replies: the broker's
/// sends to it block, but shutdown (SIGTERM) still finishes promptly.
#[test]
fn a_client_that_never_reads_cannot_hold_up_shutdown() {
    use gpushare_client::proto::{ClientMessage, Hello, Request, RequestEnvelope};
    use gpushare_client::{frame, handshake};
    let mut broker = Broker::start(&[]);
    let mut conn = std::os::unix::net::UnixStream::connect(broker.socket()).unwrap();
    handshake::client_handshake(&mut conn, &Hello::admin("never-reads")).expect("admitted");
    conn.set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut sent = 0u64;
    for id in 1..=200_000u64 {
        let req = ClientMessage::Request(RequestEnvelope {
            id,
            fence: 0,
            body: Request::Status,
        });
        if frame::send_message(&mut conn, &req).is_err() {
            break; // the broker stopped reading: its replies fill the socket
        }
        sent += 1;
    }
    assert!(sent > 100, "only {sent} requests went out");
    let start = std::time::Instant::now();
    broker.signal(15);
    while broker.running() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the broker did not exit within 15 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "shutdown with a client that never reads: {:?}",
        start.elapsed()
    );
    drop(conn);
}
