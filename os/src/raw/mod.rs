//! The audited module: all of the crate's `unsafe` code, and nothing else.
//!
//! Four kinds of code need `unsafe` here:
//!
//! - [`mapping`]: the raw-pointer side of [`Mapping`](mapping::Mapping), a `MAP_SHARED` mapping
//!   placed by the kernel. Its invariant is that `ptr .. ptr + len` is a live mapping owned by
//!   the value, which no Rust reference ever points into except the atomic words it hands out;
//!   every access is checked against `len` before the pointer is touched.
//! - [`vm`]: mappings at fixed addresses. Creating one at an address the kernel chooses, or with
//!   `MAP_FIXED_NOREPLACE`, cannot disturb memory in use, so those functions are safe. Replacing
//!   (`MAP_FIXED`), re-protecting or unmapping a range can, so those are `unsafe fn`s whose
//!   `# Safety` section states what the caller must own.
//! - [`peercred`]: `SO_PEERCRED` through `libc` (rustix's wrapper cannot represent the pid 0 the
//!   kernel reports for a peer in another pid namespace).
//! - [`streaming`]: copies with streaming stores (SSE2 intrinsics), for large copies whose
//!   destination no one reads soon.
//!
//! Every `unsafe` block carries a `// SAFETY:` comment (the workspace denies undocumented ones).
//! The system calls themselves are rustix's; the `unsafe` is about the memory they affect.

pub mod mapping;
pub mod peercred;
pub mod streaming;
pub mod vm;
