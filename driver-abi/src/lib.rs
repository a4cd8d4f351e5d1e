//! gpushare driver ABI: what the libraries that stand in for `libcuda.so.1` share.
//!
//! Two libraries export the CUDA driver API: the CPU device (`gpushare-cpu-device`, which executes
//! it) and the shim (`gpushare-shim`, which forwards it to the broker). Both implement the
//! driver [`surface`] and export the layer [`driver_exports!`] generates from it, with the
//! argument checks of [`checks`] in common. Both resolve `cuGetProcAddress` with
//! [`procaddress::ProcResolver`] over the generated [`proc_table`]; both hand libcudart the same
//! hidden tables ([`export_table`]). This crate itself exports no symbol (a `#[no_mangle]` item
//! here would be exported twice by a process that loads both): the layer is expanded in each
//! library's thin cdylib.
//!
//! - [`error`]: `CUresult` as `Result<(), CuError>`, and [`error_table`] (names, descriptions).
//! - [`export`]: the panic guard of every entry point; the NOT_SUPPORTED stub body.
//! - [`sys`]: C ABI types shared by every family, out-pointer helpers; [`cuda_h`]: the
//!   structures and enumerator values of cuda.h both libraries read.
//! - [`log`]: logging to stderr, off unless `GPUSHARE_LOG` is set.
//! - [`surface`]: the driver surface declared once, the family traits libraries implement and the
//!   generated C layer that exports them.
//! - [`checks`]: what both libraries do identically with a caller's arguments (argument checks,
//!   copy geometry, launch packing, pointer-attribute values, JIT logs).
//! - [`graph`]: stream capture and the graph API, written once over the family traits: nodes
//!   replay as each library's own stream work.
//! - [`link`]: the driver linker (`cuLink*`) both libraries run locally over
//!   `gpushare_ptx::link_ptx`; [`fatbin`]: fatbin containers and the PTX a device takes from one.

pub mod checks;
pub mod cuda_h;
pub mod error;
pub mod error_strings;
pub mod error_table;
pub mod export;
pub mod export_table;
pub mod fatbin;
pub mod graph;
pub mod image;
pub mod link;
pub mod log;
pub mod proc_table;
pub mod procaddress;
pub mod surface;
pub mod sys;
pub mod units;
