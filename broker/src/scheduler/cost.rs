//! The cost model: how much device time an operation will take, learned from what the device
//! measured (the worker's events around each kernel, copy and memset; see
//! [`crate::device::CompletionSink`]) and seeded from profile files (`gpushare profile`).
//!
//! - A kernel is keyed by (name, grid, block, dynamic shared memory); its estimate is the
//!   moving average of its measured times. An unseen shape of a known kernel is estimated from
//!   the kernel's learned cost per block (× the shape's block count); an unknown kernel gets
//!   [`UNKNOWN_KERNEL_NS`] until its first measurement.
//! - Copies and memsets cost a fixed latency plus bytes over the learned bandwidth of their
//!   engine (host-to-device, device-to-host, device-side).
//!
//! Every observation also yields the prediction error of the estimate it replaces, which the
//! scheduler reports per tenant (status) and the benchmarks print.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Nanoseconds of device time.
pub type Nanos = u64;

/// The estimate for a kernel never seen before (any shape).
pub const UNKNOWN_KERNEL_NS: Nanos = 100_000;
/// Fixed cost of a copy or memset on top of its bytes.
pub const COPY_LATENCY_NS: Nanos = 2_000;
/// Weight of a new measurement in a moving average (1/4).
const EWMA_SHIFT: u32 = 2;
/// Measurements kept per key before the average moves slowly (the first few set it fast).
const WARM_SAMPLES: u64 = 4;
/// Once warm, a measurement counts for at most this many times the average. Measured device
/// time can only be too long, never too short: it runs from the start event to the end event,
/// so a worker descheduled between recording the start event and submitting the operation adds
/// its pause (milliseconds on a loaded host, against a 100 µs kernel). One such sample then
/// moves the estimate by at most 1.75×, not 12×; a kernel that really became slower is
/// learned within a few samples all the same. The tenant is still charged what was measured.
const OUTLIER_FACTOR: f64 = 4.0;

/// Errors of profile files.
#[derive(Debug, thiserror::Error)]
pub enum CostError {
    /// The file could not be read or written.
    #[error("profile {path}: {source}")]
    Io {
        /// Path.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid profile.
    #[error("profile {path}: {message}")]
    Format {
        /// Path.
        path: String,
        /// What is wrong (with line and column from the TOML parser).
        message: String,
    },
}

/// Which engine an operation occupies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// Kernels, device-to-device copies, memsets.
    Compute,
    /// Host-to-device copies.
    H2D,
    /// Device-to-host copies.
    D2H,
}

impl Engine {
    /// All engines, in index order.
    pub const ALL: [Engine; 3] = [Engine::Compute, Engine::H2D, Engine::D2H];

    /// Index into per-engine arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A kernel launch's shape: the model's key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Shape {
    /// Kernel name.
    pub kernel: Arc<str>,
    /// Grid dimensions.
    pub grid: [u32; 3],
    /// Block dimensions.
    pub block: [u32; 3],
    /// Dynamic shared memory bytes.
    pub shared: u32,
}

impl Shape {
    /// Blocks in the grid (at least 1).
    pub fn blocks(&self) -> u64 {
        self.grid.iter().map(|&d| u64::from(d.max(1))).product()
    }
}

/// What the model needs to know about an operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CostClass {
    /// A kernel launch.
    Kernel(Shape),
    /// A copy or memset of `bytes` on `engine`.
    Transfer {
        /// Engine.
        engine: Engine,
        /// Bytes moved or written.
        bytes: u64,
    },
    /// Markers, event records and waits, host functions: no device time, never timed.
    Free,
}

impl CostClass {
    /// The engine the operation occupies (`None` for free operations).
    pub fn engine(&self) -> Option<Engine> {
        match self {
            CostClass::Kernel(_) => Some(Engine::Compute),
            CostClass::Transfer { engine, .. } => Some(*engine),
            CostClass::Free => None,
        }
    }
}

/// A moving average with a sample count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Average {
    value: f64,
    samples: u64,
}

impl Average {
    fn seeded(value: f64, samples: u64) -> Average {
        Average { value, samples }
    }

    /// Adds a measured time; once warm, one longer than [`OUTLIER_FACTOR`] × the average
    /// counts as that.
    fn add_time(&mut self, ns: f64) {
        let cap = self.value * OUTLIER_FACTOR;
        self.add(if self.is_warm() { ns.min(cap) } else { ns });
    }

    /// Adds a measured rate (bytes per ns); once warm, one slower than the average over
    /// [`OUTLIER_FACTOR`] counts as that.
    fn add_rate(&mut self, rate: f64) {
        let floor = self.value / OUTLIER_FACTOR;
        self.add(if self.is_warm() {
            rate.max(floor)
        } else {
            rate
        });
    }

    fn is_warm(&self) -> bool {
        self.samples >= WARM_SAMPLES
    }

    fn add(&mut self, x: f64) {
        self.samples += 1;
        let weight = if self.samples <= WARM_SAMPLES {
            1.0 / self.samples as f64
        } else {
            1.0 / f64::from(1u32 << EWMA_SHIFT)
        };
        self.value += (x - self.value) * weight;
    }
}

/// Default bandwidths (bytes per ns = GB/s) before anything was measured: PCIe-class copies,
/// HBM-class device-side work.
const DEFAULT_BANDWIDTH: [f64; 3] = [1000.0, 25.0, 25.0];

/// The learned costs.
#[derive(Clone, Debug)]
pub struct CostModel {
    shapes: HashMap<Shape, Average>,
    per_block: HashMap<Arc<str>, Average>,
    /// Bytes per ns, per engine.
    bandwidth: [Average; 3],
}

impl Default for CostModel {
    fn default() -> Self {
        CostModel {
            shapes: HashMap::new(),
            per_block: HashMap::new(),
            bandwidth: DEFAULT_BANDWIDTH.map(|b| Average::seeded(b, 0)),
        }
    }
}

/// What one observation taught: the estimate it replaced and the measured time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Observation {
    /// What the model predicted before the measurement.
    pub predicted: Nanos,
    /// What the device measured.
    pub measured: Nanos,
}

impl Observation {
    /// |predicted − measured| / measured (0 when both are 0).
    pub fn relative_error(&self) -> f64 {
        let (p, m) = (self.predicted as f64, self.measured as f64);
        if m == 0.0 {
            return if p == 0.0 { 0.0 } else { 1.0 };
        }
        (p - m).abs() / m
    }
}

impl CostModel {
    /// An empty model (defaults only).
    pub fn new() -> CostModel {
        CostModel::default()
    }

    /// The estimated device time of an operation.
    pub fn estimate(&self, class: &CostClass) -> Nanos {
        match class {
            CostClass::Free => 0,
            CostClass::Kernel(shape) => self.estimate_kernel(shape),
            CostClass::Transfer { engine, bytes } => {
                let bw = self.bandwidth[engine.index()].value.max(1e-3);
                COPY_LATENCY_NS + (*bytes as f64 / bw) as Nanos
            }
        }
    }

    fn estimate_kernel(&self, shape: &Shape) -> Nanos {
        if let Some(a) = self.shapes.get(shape) {
            return a.value.max(1.0) as Nanos;
        }
        match self.per_block.get(&shape.kernel) {
            Some(a) => (a.value * shape.blocks() as f64).max(1.0) as Nanos,
            None => UNKNOWN_KERNEL_NS,
        }
    }

    /// The learned time of exactly this shape, if it was measured.
    pub fn measured(&self, shape: &Shape) -> Option<Nanos> {
        self.shapes.get(shape).map(|a| a.value.max(1.0) as Nanos)
    }

    /// True when the estimate rests on a measurement (or a profile): a kernel whose name was
    /// never measured is not (copies always are, from a bandwidth).
    pub fn is_known(&self, class: &CostClass) -> bool {
        match class {
            CostClass::Kernel(shape) => self.per_block.contains_key(&shape.kernel),
            CostClass::Transfer { .. } | CostClass::Free => true,
        }
    }

    /// Learns from a measurement; returns the estimate it replaced and the measurement.
    pub fn observe(&mut self, class: &CostClass, measured: Nanos) -> Observation {
        let predicted = self.estimate(class);
        match class {
            CostClass::Free => {}
            CostClass::Kernel(shape) => {
                self.shapes
                    .entry(shape.clone())
                    .or_default()
                    .add_time(measured as f64);
                self.per_block
                    .entry(Arc::clone(&shape.kernel))
                    .or_default()
                    .add_time(measured as f64 / shape.blocks() as f64);
            }
            CostClass::Transfer { engine, bytes } => {
                let moving = measured.saturating_sub(COPY_LATENCY_NS).max(1);
                // Tiny transfers say little about bandwidth.
                if *bytes >= 64 << 10 {
                    let bw = &mut self.bandwidth[engine.index()];
                    if bw.samples == 0 {
                        *bw = Average::default();
                    }
                    bw.add_rate(*bytes as f64 / moving as f64);
                }
            }
        }
        Observation {
            predicted,
            measured,
        }
    }

    /// Kernel shapes known.
    pub fn shapes(&self) -> usize {
        self.shapes.len()
    }

    /// Adds what `other` knows (a profile file) to this model; this model's own measurements
    /// of the same keys win.
    pub fn seed(&mut self, other: &CostModel) {
        for (k, v) in &other.shapes {
            self.shapes.entry(k.clone()).or_insert(*v);
        }
        for (k, v) in &other.per_block {
            self.per_block.entry(Arc::clone(k)).or_insert(*v);
        }
        for (mine, theirs) in self.bandwidth.iter_mut().zip(&other.bandwidth) {
            if mine.samples == 0 && theirs.samples > 0 {
                *mine = *theirs;
            }
        }
    }
}

/// A profile file: what a model learned, as readable TOML.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    /// Format version.
    version: u32,
    #[serde(default)]
    engines: Vec<EngineEntry>,
    #[serde(default)]
    kernels: Vec<KernelEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EngineEntry {
    engine: Engine,
    /// Bytes per nanosecond (GB/s).
    gbps: f64,
    samples: u64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KernelEntry {
    kernel: String,
    grid: [u32; 3],
    block: [u32; 3],
    shared: u32,
    ns: f64,
    samples: u64,
}

const PROFILE_VERSION: u32 = 1;

impl CostModel {
    /// The model as profile TOML (kernels sorted by name and shape).
    pub fn to_profile(&self) -> String {
        let mut kernels: Vec<KernelEntry> = self
            .shapes
            .iter()
            .map(|(s, a)| KernelEntry {
                kernel: s.kernel.to_string(),
                grid: s.grid,
                block: s.block,
                shared: s.shared,
                ns: a.value.round(),
                samples: a.samples,
            })
            .collect();
        kernels.sort_by(|a, b| (&a.kernel, a.grid, a.block).cmp(&(&b.kernel, b.grid, b.block)));
        let engines = Engine::ALL
            .iter()
            .zip(&self.bandwidth)
            .filter(|(_, a)| a.samples > 0)
            .map(|(&engine, a)| EngineEntry {
                engine,
                gbps: a.value,
                samples: a.samples,
            })
            .collect();
        let file = ProfileFile {
            version: PROFILE_VERSION,
            engines,
            kernels,
        };
        toml::to_string(&file).unwrap_or_default()
    }

    /// Parses profile TOML (`path` names it in errors).
    pub fn from_profile(text: &str, path: &str) -> Result<CostModel, CostError> {
        let format = |message: String| CostError::Format {
            path: path.to_string(),
            message,
        };
        let file: ProfileFile = toml::from_str(text).map_err(|e| format(e.to_string()))?;
        if file.version != PROFILE_VERSION {
            return Err(format(format!(
                "version {} (this broker reads {PROFILE_VERSION})",
                file.version
            )));
        }
        let mut model = CostModel::new();
        for e in file.engines {
            if !(e.gbps.is_finite() && e.gbps > 0.0) {
                return Err(format(format!(
                    "bad bandwidth {} for {:?}",
                    e.gbps, e.engine
                )));
            }
            model.bandwidth[e.engine.index()] = Average::seeded(e.gbps, e.samples.max(1));
        }
        for k in file.kernels {
            if !(k.ns.is_finite() && k.ns >= 0.0) {
                return Err(format(format!("bad time {} for kernel {}", k.ns, k.kernel)));
            }
            let shape = Shape {
                kernel: k.kernel.into(),
                grid: k.grid,
                block: k.block,
                shared: k.shared,
            };
            let per_block = k.ns / shape.blocks() as f64;
            model
                .per_block
                .entry(Arc::clone(&shape.kernel))
                .or_insert(Average::seeded(per_block, 1));
            model
                .shapes
                .insert(shape, Average::seeded(k.ns, k.samples.max(1)));
        }
        Ok(model)
    }

    /// Reads a profile file.
    pub fn load(path: &Path) -> Result<CostModel, CostError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| CostError::Io {
            path: name.clone(),
            source,
        })?;
        CostModel::from_profile(&text, &name)
    }

    /// Writes the model as a profile file.
    pub fn save(&self, path: &Path) -> Result<(), CostError> {
        std::fs::write(path, self.to_profile()).map_err(|source| CostError::Io {
            path: path.display().to_string(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(kernel: &str, blocks: u32) -> CostClass {
        CostClass::Kernel(Shape {
            kernel: kernel.into(),
            grid: [blocks, 1, 1],
            block: [128, 1, 1],
            shared: 0,
        })
    }

    #[test]
    fn learns_shapes_and_estimates_unseen_ones_per_block() {
        let mut m = CostModel::new();
        assert_eq!(m.estimate(&shape("k", 10)), UNKNOWN_KERNEL_NS);
        let first = m.observe(&shape("k", 10), 50_000);
        assert_eq!(first.predicted, UNKNOWN_KERNEL_NS);
        assert!((first.relative_error() - 1.0).abs() < 1e-9);
        assert_eq!(m.estimate(&shape("k", 10)), 50_000);
        // 5 µs per block → 100 blocks ≈ 500 µs.
        assert_eq!(m.estimate(&shape("k", 100)), 500_000);
        assert_eq!(m.estimate(&shape("other", 10)), UNKNOWN_KERNEL_NS);
        for _ in 0..20 {
            m.observe(&shape("k", 10), 60_000);
        }
        let e = m.estimate(&shape("k", 10));
        assert!((59_000..=60_000).contains(&e), "converges: {e}");
    }

    #[test]
    fn one_slow_measurement_moves_a_warm_estimate_little() {
        let mut m = CostModel::new();
        let k = shape("k", 1);
        for _ in 0..8 {
            m.observe(&k, 100_000);
        }
        // A worker descheduled for 5 ms between the start event and the launch.
        let hiccup = m.observe(&k, 5_100_000);
        assert_eq!(
            hiccup.measured, 5_100_000,
            "the observation keeps what was measured"
        );
        assert_eq!(m.estimate(&k), 175_000, "counted as 4× the average");
        for _ in 0..12 {
            m.observe(&k, 100_000);
        }
        assert!(m.estimate(&k) < 103_000, "back: {}", m.estimate(&k));
        // A kernel that really became 10× slower is learned within a few samples (10 here,
        // against 8 when every sample counted in full).
        let mut n = 0;
        while m.estimate(&k) < 900_000 {
            m.observe(&k, 1_000_000);
            n += 1;
            assert!(n <= 10, "still {} after {n} samples", m.estimate(&k));
        }
        // The first samples are taken as they are (nothing to compare them with yet).
        let fresh = shape("fresh", 1);
        m.observe(&fresh, 100_000);
        m.observe(&fresh, 900_000);
        assert_eq!(m.estimate(&fresh), 500_000);
    }

    #[test]
    fn one_slow_copy_moves_a_warm_bandwidth_little() {
        let mut m = CostModel::new();
        let copy = CostClass::Transfer {
            engine: Engine::H2D,
            bytes: 1 << 20,
        };
        // 10 GB/s, then one copy that took 100× as long.
        for _ in 0..8 {
            m.observe(&copy, COPY_LATENCY_NS + 104_858);
        }
        m.observe(&copy, COPY_LATENCY_NS + 10_485_800);
        let e = m.estimate(&copy) - COPY_LATENCY_NS;
        // The sample counts as 2.5 GB/s: 10 → 8.125 GB/s.
        assert!(e.abs_diff(129_056) < 100, "{e}");
    }

    #[test]
    fn learns_bandwidth_per_engine() {
        let mut m = CostModel::new();
        let copy = |bytes| CostClass::Transfer {
            engine: Engine::H2D,
            bytes,
        };
        // 10 GB/s measured: 1 MiB in 104_858 ns + latency.
        m.observe(&copy(1 << 20), COPY_LATENCY_NS + 104_858);
        let e = m.estimate(&copy(4 << 20));
        let want = COPY_LATENCY_NS + 419_430;
        assert!(e.abs_diff(want) < 100, "{e} vs {want}");
        let d2h = m.estimate(&CostClass::Transfer {
            engine: Engine::D2H,
            bytes: 1 << 20,
        });
        assert_eq!(d2h, COPY_LATENCY_NS + (1u64 << 20) / 25, "D2H not learned");
        assert_eq!(m.estimate(&CostClass::Free), 0);
    }

    #[test]
    fn profiles_round_trip_and_seed_without_overriding() {
        let mut m = CostModel::new();
        m.observe(&shape("gemm", 64), 1_000_000);
        m.observe(
            &CostClass::Transfer {
                engine: Engine::D2H,
                bytes: 8 << 20,
            },
            1_000_000,
        );
        let text = m.to_profile();
        assert!(text.contains("gemm"), "{text}");
        let back = CostModel::from_profile(&text, "p.toml").unwrap();
        assert_eq!(back.estimate(&shape("gemm", 64)), 1_000_000);
        assert_eq!(back.estimate(&shape("gemm", 128)), 2_000_000);
        let mut fresh = CostModel::new();
        fresh.observe(&shape("gemm", 64), 10);
        fresh.seed(&back);
        assert_eq!(fresh.estimate(&shape("gemm", 64)), 10, "own data wins");
        let bad = CostModel::from_profile("version = 1\n[[kernels]]\nkernel = 3\n", "bad.toml")
            .unwrap_err()
            .to_string();
        assert!(bad.contains("bad.toml") && bad.contains("line"), "{bad}");
        assert!(CostModel::from_profile("version = 9\n", "v").is_err());
    }
}
