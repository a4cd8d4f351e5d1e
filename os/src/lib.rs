//! gpushare's operating-system layer: the memory, file and socket system calls of the client
//! library (and so of the shim and the broker) and of the CPU device, in one place.
//!
//! # Design
//!
//! The crate is built on [`rustix`], which gives typed, `errno`-checked, I/O-safe (`OwnedFd` /
//! `BorrowedFd`) bindings to Linux system calls. What rustix can express safely is wrapped here
//! without any `unsafe` (the crate denies `unsafe_code`):
//!
//! - [`file`](mod@file): anonymous memory files (`memfd_create`), their size (`fstat`), seals
//!   (`fcntl` `F_ADD_SEALS` / `F_GET_SEALS`), descriptor duplication.
//! - [`futex`]: non-private `FUTEX_WAIT` / `FUTEX_WAKE`, so waits work across processes on a
//!   word in a `MAP_SHARED` mapping.
//! - [`identity`]: the effective uid, the descriptor limit.
//! - [`cache`]: the size of the CPU's last-level cache (sysfs files, read with `std::fs`).
//! - [`socket`]: `SCM_RIGHTS` descriptor passing, `send(MSG_NOSIGNAL)`, and `poll` for the
//!   peer's hang-up on Unix stream sockets (and `SO_PEERCRED`, whose code is in [`raw`]).
//!
//! What cannot be safe lives in one audited module, [`raw`] — the only module allowed `unsafe`:
//! the raw-pointer side of [`Mapping`] (bounds-checked copies, references to atomic words in
//! shared memory), the functions that create, change or remove mappings at fixed addresses
//! ([`raw::vm`]), copies with streaming stores ([`raw::streaming`]), and `SO_PEERCRED`. Every
//! `unsafe` block there carries a `// SAFETY:` comment; every `unsafe fn` documents its contract
//! under `# Safety`.
//!
//! # Contract
//!
//! - No function panics. Failures are [`OsError`] values naming the failing system call.
//! - Interrupted system calls (`EINTR`) are retried, except [`futex_wait`], which reports
//!   [`FutexWait::Interrupted`] so that callers re-check their condition.
//! - Every descriptor this crate creates is close-on-exec.
//! - Addresses and lengths of the address-space functions ([`raw::vm`]) are `u64`, as device
//!   addresses are; they are checked to fit the host's address space.
//!
//! # `libc`
//!
//! One call only: `getsockopt(SO_PEERCRED)` ([`peer_credentials`], in [`raw::peercred`]).
//! rustix's `socket_peercred` returns the peer's pid as a non-zero `Pid`, but the kernel reports
//! pid 0 for a peer in another pid namespace (a containerised tenant), which that type cannot
//! hold. Everything else goes through rustix (its `linux_raw` backend issues the system calls
//! directly).

#![deny(unsafe_code)]

pub mod cache;
mod error;
pub mod file;
pub mod futex;
pub mod identity;
#[allow(unsafe_code)]
pub mod raw;
pub mod socket;

#[cfg(test)]
mod tests;

pub use cache::last_level_cache_bytes;
pub use error::OsError;
pub use file::{dup_fd, fd_seals, fd_size, is_shrink_sealed, memfd_create};
pub use futex::{futex_wait, futex_wake, FutexWait};
pub use identity::{effective_uid, raise_descriptor_limit};
pub use raw::mapping::{AtomicWord, Mapping, SharedAtomic};
pub use raw::vm::{
    advise_huge_pages, map_anonymous, map_anonymous_fixed, map_fd_fixed, map_shared_fixed,
    populate, protect, range_is_mapped, release, reserve_aligned, reserve_fixed, unmap_to_reserved,
    Prot, PAGE,
};
pub use socket::{
    peer_credentials, recv_fds, send_all, send_fds, wait_hangup, PeerCredentials, MAX_FDS,
};
