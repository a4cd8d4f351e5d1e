use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use rustix::io::FdFlags;

use crate::{
    fd_size, memfd_create, peer_credentials, recv_fds, send_all, send_fds, wait_hangup, OsError,
    MAX_FDS,
};

#[test]
fn descriptors_pass_over_a_socketpair() {
    let (a, b) = UnixStream::pair().unwrap();
    let f1 = memfd_create("one", 4096, false).unwrap();
    let f2 = memfd_create("two", 8192, false).unwrap();
    let n = send_fds(&a, b"xyz", &[f1.as_fd(), f2.as_fd()]).unwrap();
    assert_eq!(n, 3);
    let mut buf = [0u8; 8];
    let (n, fds) = recv_fds(&b, &mut buf, 4).unwrap();
    assert_eq!(&buf[..n], b"xyz");
    assert_eq!(fds.len(), 2);
    assert_eq!(fd_size(fds[0].as_fd()).unwrap(), 4096);
    assert_eq!(fd_size(fds[1].as_fd()).unwrap(), 8192);
    for fd in &fds {
        assert!(rustix::io::fcntl_getfd(fd)
            .unwrap()
            .contains(FdFlags::CLOEXEC));
    }
    // Bytes without descriptors, and the end of the stream.
    send_all(&a, b"plain").unwrap();
    let (n, fds) = recv_fds(&b, &mut buf, 0).unwrap();
    assert_eq!((&buf[..n], fds.len()), (&b"plain"[..], 0));
    drop(a);
    assert_eq!(recv_fds(&b, &mut buf, 4).unwrap().0, 0);
}

#[test]
fn too_many_descriptors_are_refused_or_closed() {
    let (a, b) = UnixStream::pair().unwrap();
    let f = memfd_create("one", 4096, false).unwrap();
    send_fds(&a, b"x", &[f.as_fd(), f.as_fd()]).unwrap();
    let mut buf = [0u8; 1];
    assert!(matches!(
        recv_fds(&b, &mut buf, 1),
        Err(OsError::FdsTruncated(1))
    ));
    send_fds(&a, b"y", &[f.as_fd()]).unwrap();
    assert!(matches!(
        recv_fds(&b, &mut buf, 0),
        Err(OsError::FdsTruncated(0))
    ));
    let all: Vec<_> = (0..MAX_FDS).map(|_| f.as_fd()).collect();
    send_fds(&a, b"z", &all).unwrap();
    let (_, fds) = recv_fds(&b, &mut buf, MAX_FDS + 5).unwrap();
    assert_eq!(fds.len(), MAX_FDS);
    let many: Vec<_> = (0..MAX_FDS + 1).map(|_| f.as_fd()).collect();
    assert!(matches!(
        send_fds(&a, b"x", &many),
        Err(OsError::TooManyFds(17))
    ));
    let err = send_fds(&a, b"", &[f.as_fd()]).unwrap_err();
    assert!(matches!(err, OsError::Io { op: "sendmsg", .. }), "{err}");
}

#[test]
fn peer_credentials_are_ours_on_a_socketpair() {
    let (a, _b) = UnixStream::pair().unwrap();
    let cred = peer_credentials(&a).unwrap();
    let me = std::fs::metadata("/proc/self").unwrap();
    assert_eq!(cred.pid as u32, std::process::id());
    assert_eq!(cred.uid, me.uid());
    assert_eq!(cred.gid, me.gid());
}

#[test]
fn send_all_writes_everything_and_reports_a_gone_peer() {
    let (a, mut b) = UnixStream::pair().unwrap();
    let data: Vec<u8> = (0..(1 << 20)).map(|i| (i % 251) as u8).collect();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        b.read_to_end(&mut got).unwrap();
        got
    });
    send_all(&a, &data).unwrap();
    drop(a);
    assert_eq!(reader.join().unwrap(), data);

    let (a, b) = UnixStream::pair().unwrap();
    drop(b);
    let err = send_all(&a, b"x").unwrap_err();
    assert_eq!(
        err.raw_os_error(),
        Some(rustix::io::Errno::PIPE.raw_os_error())
    );
}

#[test]
fn hangup_is_seen_without_consuming_data() {
    let (a, mut b) = UnixStream::pair().unwrap();
    let start = Instant::now();
    assert!(!wait_hangup(a.as_fd(), Some(Duration::from_millis(20))).unwrap());
    assert!(start.elapsed() >= Duration::from_millis(20));
    b.write_all(b"last words").unwrap();
    // Pending data is not a hang-up.
    assert!(!wait_hangup(a.as_fd(), Some(Duration::ZERO)).unwrap());
    drop(b);
    assert!(wait_hangup(a.as_fd(), Some(Duration::from_secs(5))).unwrap());
    assert!(wait_hangup(a.as_fd(), None).unwrap());
    let mut got = String::new();
    (&a).read_to_string(&mut got).unwrap();
    assert_eq!(got, "last words");
}
