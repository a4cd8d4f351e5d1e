//! The modelled device: identity, limits and engine rates. `GPUSHARE_CPU_PROFILE` picks one:
//! `h200` (default, modelled on an NVIDIA H200) or `small` (a slow 4-SM device for tests, so that
//! paced completions are long enough to observe overlap and fairness from outside).

use crate::error::{CuError, CuResult};

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

    /// The profile named by `GPUSHARE_CPU_PROFILE` (default `h200`). An unknown name is an error
    /// (`cuInit` fails with `INVALID_VALUE` and logs the known names).
    pub fn from_env() -> CuResult<Self> {
        match std::env::var("GPUSHARE_CPU_PROFILE") {
            Err(_) => Ok(Self::h200()),
            Ok(name) => Self::by_name(&name).ok_or_else(|| {
                tracing::error!(
                    "GPUSHARE_CPU_PROFILE={name:?} is not a known profile (known: h200, small)"
                );
                CuError::INVALID_VALUE
            }),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

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
