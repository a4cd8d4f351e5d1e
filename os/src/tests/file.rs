use std::os::fd::{AsFd, AsRawFd};

use rustix::fs::SealFlags;
use rustix::io::{Errno, FdFlags};

use crate::{dup_fd, fd_seals, fd_size, is_shrink_sealed, memfd_create, OsError};

#[test]
fn sealed_memfd_cannot_change_size() {
    let fd = memfd_create("gpushare-test", 8192, true).unwrap();
    assert_eq!(fd_size(fd.as_fd()).unwrap(), 8192);
    assert!(is_shrink_sealed(fd.as_fd()));
    let want = SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL;
    assert_eq!(fd_seals(fd.as_fd()).unwrap(), want.bits());
    assert_eq!(rustix::fs::ftruncate(&fd, 4096), Err(Errno::PERM));
    assert_eq!(rustix::fs::ftruncate(&fd, 16384), Err(Errno::PERM));
    // F_SEAL_SEAL: no further seal can be added (or removed).
    assert!(rustix::fs::fcntl_add_seals(&fd, SealFlags::WRITE).is_err());
    assert_eq!(fd_size(fd.as_fd()).unwrap(), 8192);
}

#[test]
fn unsealed_memfd_can_change_size() {
    let fd = memfd_create("gpushare-test", 4096, false).unwrap();
    assert!(!is_shrink_sealed(fd.as_fd()));
    // Without MFD_ALLOW_SEALING the kernel sets F_SEAL_SEAL only.
    assert_eq!(fd_seals(fd.as_fd()).unwrap(), SealFlags::SEAL.bits());
    rustix::fs::ftruncate(&fd, 1 << 20).unwrap();
    assert_eq!(fd_size(fd.as_fd()).unwrap(), 1 << 20);
    assert!(matches!(
        memfd_create("x", 0, false),
        Err(OsError::ZeroLength)
    ));
    // NUL bytes in the label are dropped, not an error.
    assert!(memfd_create("a\0b", 4096, true).is_ok());
}

#[test]
fn memfds_are_close_on_exec() {
    let fd = memfd_create("gpushare-test", 4096, false).unwrap();
    assert!(rustix::io::fcntl_getfd(&fd)
        .unwrap()
        .contains(FdFlags::CLOEXEC));
}

#[test]
fn seals_of_a_non_memfd_are_an_error() {
    let file = std::fs::File::open("/proc/self/status").unwrap();
    let err = fd_seals(file.as_fd()).unwrap_err();
    assert!(err.raw_os_error().is_some(), "{err}");
    assert!(err.to_string().starts_with("fcntl(F_GET_SEALS): "), "{err}");
    assert!(!is_shrink_sealed(file.as_fd()));
}

#[test]
fn dup_is_a_close_on_exec_view_of_the_same_file() {
    let fd = memfd_create("gpushare-test", 12288, false).unwrap();
    let dup = dup_fd(fd.as_fd()).unwrap();
    assert_ne!(dup.as_raw_fd(), fd.as_raw_fd());
    assert_eq!(fd_size(dup.as_fd()).unwrap(), 12288);
    assert!(rustix::io::fcntl_getfd(&dup)
        .unwrap()
        .contains(FdFlags::CLOEXEC));
    rustix::fs::ftruncate(&fd, 4096).unwrap();
    assert_eq!(fd_size(dup.as_fd()).unwrap(), 4096);
}

#[test]
fn errors_convert_to_io_errors() {
    let e: std::io::Error = OsError::Occupied { addr: 0, len: 1 }.into();
    assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
    let e: std::io::Error = OsError::sys("mmap", Errno::NOMEM).into();
    assert_eq!(e.kind(), std::io::ErrorKind::OutOfMemory);
    assert!(e.to_string().starts_with("mmap: "), "{e}");
    let e: std::io::Error = OsError::ZeroLength.into();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
}
