//! The modelled device: identity, limits and engine rates. `GPUSHARE_CPU_PROFILE` picks one:
//! `h200` (default, modelled on an NVIDIA H200) or `small` (a slow 4-SM device for tests, so that
//! paced completions are long enough to observe overlap and fairness from outside).
//!
//! Device memory is host memory, so the memory size the device reports and allocates is capped
//! by the host's ([`device_memory`]): `GPUSHARE_CPU_MEMORY` sets it explicitly instead.

use crate::error::{CuError, CuResult};
use gpushare_driver_abi::units::parse_size;

/// A device profile: what `cuDeviceGetAttribute` reports and what the timing model uses.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceProfile {
    /// Profile key (`h200`, `small`).
    pub key: &'static str,
    /// `cuDeviceGetName`.
    pub name: &'static str,
    /// `cuDeviceTotalMem`, bytes.
    pub total_memory: u64,
    /// Streaming multiprocessors.
    pub sm_count: u32,
    /// Compute capability (major, minor).
    pub compute_capability: (u32, u32),
    /// Core clock, kHz.
    pub clock_khz: u32,
    /// Memory clock, kHz.
    pub memory_clock_khz: u32,
    /// Memory bus width, bits.
    pub memory_bus_width: u32,
    /// L2 cache, bytes.
    pub l2_cache_bytes: u32,
    /// Asynchronous copy engines (`CU_DEVICE_ATTRIBUTE_ASYNC_ENGINE_COUNT`).
    pub async_engines: u32,
    /// Static shared memory per block, bytes.
    pub shared_per_block: u32,
    /// Opt-in shared memory per block, bytes.
    pub shared_per_block_optin: u32,
    /// Shared memory per SM, bytes.
    pub shared_per_sm: u32,
    /// Maximum resident threads per SM.
    pub max_threads_per_sm: u32,
    /// Maximum resident blocks per SM.
    pub max_blocks_per_sm: u32,
    /// PCI (domain, bus, device).
    pub pci: (u32, u32, u32),
    /// Device UUID.
    pub uuid: [u8; 16],
    /// Timing model rates.
    pub rates: EngineRates,
}

/// Engine rates the timing model charges work against (see docs/cpu-device.md).
#[derive(Clone, Debug, PartialEq)]
pub struct EngineRates {
    /// Host-to-device copies from pinned (page-locked) memory, bytes/s.
    pub h2d_pinned: f64,
    /// Device-to-host copies to pinned memory, bytes/s.
    pub d2h_pinned: f64,
    /// Copies from/to pageable memory (staged through a driver buffer), bytes/s.
    pub pageable: f64,
    /// Device-to-device copies and memsets, bytes/s.
    pub d2d: f64,
    /// Device memory bandwidth seen by kernels, bytes/s.
    pub memory_bandwidth: f64,
    /// Thread-instructions issued per second (all SMs).
    pub issue: f64,
    /// fp32 thread-instructions per second.
    pub fp32: f64,
    /// fp64 thread-instructions per second.
    pub fp64: f64,
    /// Special-function (ex2, rsqrt, div, …) thread-instructions per second.
    pub sfu: f64,
    /// Fixed cost of a kernel launch, ns.
    pub launch_latency_ns: u64,
    /// Fixed cost of a copy, ns.
    pub copy_latency_ns: u64,
}

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

impl DeviceProfile {
    /// The default profile, modelled on an NVIDIA H200 (SXM, 141 GB HBM3e).
    pub fn h200() -> Self {
        let sms = 132.0;
        let ghz = 1.98e9;
        DeviceProfile {
            key: "h200",
            name: "NVIDIA H200 (gpushare CPU device)",
            total_memory: 143_771 * MIB,
            sm_count: 132,
            compute_capability: (9, 0),
            clock_khz: 1_980_000,
            memory_clock_khz: 3_201_000,
            memory_bus_width: 6144,
            l2_cache_bytes: 50 * MIB as u32,
            async_engines: 3,
            shared_per_block: 48 * 1024,
            shared_per_block_optin: 227 * 1024,
            shared_per_sm: 228 * 1024,
            max_threads_per_sm: 2048,
            max_blocks_per_sm: 32,
            pci: (0, 0x19, 0),
            uuid: *b"gpushare-cpu-h2\0",
            rates: EngineRates {
                h2d_pinned: 55e9,
                d2h_pinned: 55e9,
                pageable: 20e9,
                d2d: 4.3e12 / 2.0,
                memory_bandwidth: 4.8e12,
                issue: sms * 128.0 * ghz,
                fp32: sms * 128.0 * ghz,
                fp64: sms * 64.0 * ghz,
                sfu: sms * 16.0 * ghz,
                launch_latency_ns: 3_000,
                copy_latency_ns: 2_000,
            },
        }
    }

    /// A small, slow device for tests: 4 SMs, 1 GiB, 2 GB/s pinned copies.
    pub fn small() -> Self {
        let sms = 4.0;
        let ghz = 1.0e9;
        DeviceProfile {
            key: "small",
            name: "gpushare CPU device (small)",
            total_memory: GIB,
            sm_count: 4,
            compute_capability: (9, 0),
            clock_khz: 1_000_000,
            memory_clock_khz: 1_000_000,
            memory_bus_width: 256,
            l2_cache_bytes: 4 * MIB as u32,
            async_engines: 2,
            shared_per_block: 48 * 1024,
            shared_per_block_optin: 227 * 1024,
            shared_per_sm: 228 * 1024,
            max_threads_per_sm: 2048,
            max_blocks_per_sm: 32,
            pci: (0, 0x42, 0),
            uuid: *b"gpushare-cpu-sm\0",
            rates: EngineRates {
                h2d_pinned: 2e9,
                d2h_pinned: 2e9,
                pageable: 0.5e9,
                d2d: 50e9,
                memory_bandwidth: 50e9,
                issue: sms * 128.0 * ghz,
                fp32: sms * 128.0 * ghz,
                fp64: sms * 64.0 * ghz,
                sfu: sms * 16.0 * ghz,
                launch_latency_ns: 5_000,
                copy_latency_ns: 5_000,
            },
        }
    }

    /// The profile named by `GPUSHARE_CPU_PROFILE` (default `h200`), its memory size capped by
    /// the host's memory or set by `GPUSHARE_CPU_MEMORY` (see [`device_memory`]). An unknown
    /// name or a malformed size is an error (`cuInit` fails with `INVALID_VALUE` and logs why).
    pub fn from_env() -> CuResult<Self> {
        let mut profile = match std::env::var("GPUSHARE_CPU_PROFILE") {
            Err(_) => Self::h200(),
            Ok(name) => Self::by_name(&name).ok_or_else(|| {
                tracing::error!(
                    "GPUSHARE_CPU_PROFILE={name:?} is not a known profile (known: h200, small)"
                );
                CuError::INVALID_VALUE
            })?,
        };
        profile.total_memory = memory_from_env(profile.total_memory)?;
        Ok(profile)
    }

    /// A profile by key.
    pub fn by_name(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "" | "h200" => Some(Self::h200()),
            "small" => Some(Self::small()),
            _ => None,
        }
    }

    /// `"0000:19:00.0"`-style PCI bus id.
    pub fn pci_bus_id(&self) -> String {
        format!("{:04x}:{:02x}:{:02x}.0", self.pci.0, self.pci.1, self.pci.2)
    }
}

/// Environment variable that sets the device memory size: bytes, or a number with a unit
/// (`K`/`KiB`, `M`/`MiB`, `G`/`GiB`, `T`/`TiB` are powers of 1024; `KB`, `MB`, `GB`, `TB`
/// powers of 1000), e.g. `GPUSHARE_CPU_MEMORY=16GiB`.
pub const MEMORY_ENV: &str = "GPUSHARE_CPU_MEMORY";

/// Smallest device memory the host cap leaves (on hosts with less than about 2.3 GiB).
pub const MIN_HOST_CAPPED_MEMORY: u64 = 256 * MIB;

/// How much device memory a host with `host` bytes of physical memory backs: what is left after
/// a headroom of a quarter of it, and at least 2 GiB, for the host itself (the interpreter's
/// register files and local memory, staging buffers, page-locked host allocations — none of
/// which is charged as device memory — other processes and the page cache); never less than
/// [`MIN_HOST_CAPPED_MEMORY`]; rounded down to 2 MiB.
pub fn host_memory_cap(host: u64) -> u64 {
    let headroom = (host / 4).max(2 * GIB);
    host.saturating_sub(headroom).max(MIN_HOST_CAPPED_MEMORY) & !(2 * MIB - 1)
}

/// The device memory size: `explicit` (`GPUSHARE_CPU_MEMORY`) when set, lower or higher than the
/// profile's; otherwise the profile's size capped by [`host_memory_cap`] of the host's memory
/// (the profile's size when the host's memory is unknown).
pub fn device_memory(profile: u64, host: Option<u64>, explicit: Option<u64>) -> u64 {
    match (explicit, host) {
        (Some(bytes), _) => bytes,
        (None, Some(host)) => profile.min(host_memory_cap(host)),
        (None, None) => profile,
    }
}

/// The host's physical memory as this process may use it: `MemTotal` from `/proc/meminfo`,
/// lowered to the memory limit of the process's cgroup when one is set.
pub fn host_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let total = meminfo.lines().find_map(|l| {
        let kib = l.strip_prefix("MemTotal:")?.trim().strip_suffix("kB")?;
        kib.trim().parse::<u64>().ok()?.checked_mul(1024)
    })?;
    Some(cgroup_limits().into_iter().fold(total, u64::min))
}

/// Memory limits of the process's cgroup (v2 `memory.max`, v1 `memory.limit_in_bytes`), looked
/// up both under the process's cgroup path and at the root of the mounted hierarchy (what a
/// container with its own cgroup namespace sees). Missing files and `max` mean no limit.
fn cgroup_limits() -> Vec<u64> {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mut files = vec![
        "/sys/fs/cgroup/memory.max".to_string(),
        "/sys/fs/cgroup/memory/memory.limit_in_bytes".to_string(),
    ];
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next(), parts.next().unwrap_or("/"));
        match controllers {
            Some("") => files.push(format!("/sys/fs/cgroup{path}/memory.max")),
            Some(c) if c.split(',').any(|c| c == "memory") => {
                files.push(format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes"))
            }
            _ => {}
        }
    }
    files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok()?.trim().parse().ok())
        .collect()
}

/// The device memory size for a profile of `profile` bytes under the current environment.
fn memory_from_env(profile: u64) -> CuResult<u64> {
    let explicit = match std::env::var(MEMORY_ENV) {
        Ok(v) if !v.trim().is_empty() => match parse_size(&v).filter(|&n| n > 0) {
            Some(n) => Some(n),
            None => {
                tracing::error!(
                    "{MEMORY_ENV}={v:?} is not a size (bytes, or a number with a unit: 16GiB)"
                );
                return Err(CuError::INVALID_VALUE);
            }
        },
        _ => None,
    };
    let host = host_memory();
    let total = device_memory(profile, host, explicit);
    if explicit.is_none() && total < profile {
        tracing::info!(
            "device memory capped at {} MiB (profile: {} MiB; host: {} MiB; set {MEMORY_ENV} to \
             override)",
            total >> 20,
            profile >> 20,
            host.unwrap_or(0) >> 20
        );
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_cap_leaves_headroom() {
        // 24 GiB host: a quarter (6 GiB) stays with the host.
        assert_eq!(host_memory_cap(24 * GIB), 18 * GIB);
        // Small hosts keep at least 2 GiB, and the device gets at least 256 MiB.
        assert_eq!(host_memory_cap(4 * GIB), 2 * GIB);
        assert_eq!(host_memory_cap(2 * GIB), MIN_HOST_CAPPED_MEMORY);
        assert_eq!(host_memory_cap(0), MIN_HOST_CAPPED_MEMORY);
        // Rounded down to 2 MiB: MemTotal is rarely a round number.
        let odd = 24_683_784 * 1024;
        assert_eq!(host_memory_cap(odd), (odd - odd / 4) & !(2 * MIB - 1));
        assert_eq!(host_memory_cap(odd) % (2 * MIB), 0);
        assert_eq!(
            host_memory_cap(u64::MAX),
            (u64::MAX - u64::MAX / 4) & !(2 * MIB - 1)
        );
    }

    #[test]
    fn device_memory_is_capped_by_the_host_unless_set() {
        let h200 = DeviceProfile::h200().total_memory;
        let small = DeviceProfile::small().total_memory;
        assert_eq!(device_memory(h200, Some(24 * GIB), None), 18 * GIB);
        assert_eq!(device_memory(h200, Some(2 << 40), None), h200);
        assert_eq!(device_memory(small, Some(24 * GIB), None), small);
        assert_eq!(
            device_memory(small, Some(GIB), None),
            MIN_HOST_CAPPED_MEMORY
        );
        assert_eq!(device_memory(h200, None, None), h200);
        // Explicit: lower or higher than the profile and the host.
        assert_eq!(device_memory(h200, Some(24 * GIB), Some(3 * GIB)), 3 * GIB);
        assert_eq!(
            device_memory(small, Some(24 * GIB), Some(64 * GIB)),
            64 * GIB
        );
    }

    #[test]
    fn host_memory_is_read() {
        let host = host_memory().expect("/proc/meminfo");
        assert!(host >= 64 * MIB, "{host}");
    }

    #[test]
    fn profiles_by_name() {
        assert_eq!(DeviceProfile::by_name("H200").unwrap().sm_count, 132);
        assert_eq!(
            DeviceProfile::by_name("small").unwrap().total_memory,
            1 << 30
        );
        assert!(DeviceProfile::by_name("a100").is_none());
        assert_eq!(DeviceProfile::h200().pci_bus_id(), "0000:19:00.0");
    }
}
