//! Per-tenant bounds on the driver objects a session may hold at once (`max_streams`,
//! `max_events`, `max_modules`, `max_module_bytes`, `max_host_fns`): a tenant cannot make the
//! broker or its worker hold unbounded host memory. Each is far above what real programs use;
//! `0` means no bound. `max_pinned_bytes` bounds the page-locked host memory a session has
//! registered (its pinned, managed and mapped buffers), which the worker's driver pins; it has
//! no bound by default, as `memory_quota` has none. Past a bound the call fails as CUDA fails
//! when it runs out of room (`CUDA_ERROR_OUT_OF_MEMORY`) and the session goes on; see
//! docs/policy.md.

/// The bounds in force for one tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Streams created and not destroyed (the legacy stream not counted).
    pub streams: u32,
    /// Events created and not destroyed.
    pub events: u32,
    /// Modules loaded and not unloaded.
    pub modules: u32,
    /// Bytes of the images of those modules, together.
    pub module_bytes: u64,
    /// Host functions launched whose stream has not passed them yet.
    pub host_fns: u32,
    /// Bytes of host buffers registered (page-locked) and not unregistered.
    pub pinned_bytes: u64,
}

/// Default `max_streams`: CUDA programs use a few to a few dozen streams (framework pools
/// hold 32 per device and priority); each costs a worker stream and a join event.
pub const DEFAULT_MAX_STREAMS: u32 = 4096;
/// Default `max_events`: caching allocators record an event per freed block in use by another
/// stream, thousands at most in large jobs.
pub const DEFAULT_MAX_EVENTS: u32 = 65_536;
/// Default `max_modules`: the CUDA runtime loads one module per registered fatbin (one per
/// translation unit); the largest frameworks register a few thousand.
pub const DEFAULT_MAX_MODULES: u32 = 16_384;
/// Default `max_module_bytes`: the largest frameworks ship about 1.5 GiB of fatbins (every
/// architecture), which the runtime may load in full.
pub const DEFAULT_MAX_MODULE_BYTES: u64 = 4 << 30;
/// Default `max_host_fns`: host functions in flight; programs keep a handful.
pub const DEFAULT_MAX_HOST_FNS: u32 = 65_536;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            streams: DEFAULT_MAX_STREAMS,
            events: DEFAULT_MAX_EVENTS,
            modules: DEFAULT_MAX_MODULES,
            module_bytes: DEFAULT_MAX_MODULE_BYTES,
            host_fns: DEFAULT_MAX_HOST_FNS,
            pinned_bytes: 0,
        }
    }
}

/// What one rules table sets of the bounds; the rest falls through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct LimitOverrides {
    pub streams: Option<u32>,
    pub events: Option<u32>,
    pub modules: Option<u32>,
    pub module_bytes: Option<u64>,
    pub host_fns: Option<u32>,
    pub pinned_bytes: Option<u64>,
}

impl LimitOverrides {
    /// `base` with what this table sets.
    pub fn apply(&self, base: Limits) -> Limits {
        Limits {
            streams: self.streams.unwrap_or(base.streams),
            events: self.events.unwrap_or(base.events),
            modules: self.modules.unwrap_or(base.modules),
            module_bytes: self.module_bytes.unwrap_or(base.module_bytes),
            host_fns: self.host_fns.unwrap_or(base.host_fns),
            pinned_bytes: self.pinned_bytes.unwrap_or(base.pinned_bytes),
        }
    }
}
