//! The operating-system layer, from [`gpushare_os`]: memfd and seals, `MAP_SHARED` mappings with
//! bounds-checked copies and atomic words, futex, `SCM_RIGHTS`, `SO_PEERCRED`, hang-up detection,
//! and fixed-address reservations. Re-exported whole so that `gpushare_client::os::…` keeps
//! naming everything the shim and the broker use; this crate itself has no `unsafe` code.

pub use gpushare_os::*;
