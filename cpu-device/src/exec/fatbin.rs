//! Fatbin containers and the PTX choice: shared with the shim's linker, so the code lives in
//! [`gpushare_driver_abi::fatbin`] and is re-exported here under its old path.

pub use gpushare_driver_abi::fatbin::*;
