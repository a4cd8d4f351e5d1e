//! Public module/kernel/global descriptions produced by [`Module::load`].

use crate::error::PtxError;
use crate::exec::program::Program;

/// A loaded PTX module: parsed, validated and lowered. `Send + Sync`.
pub struct Module {
    pub(crate) kernels: Vec<Kernel>,
    pub(crate) globals: Vec<GlobalVar>,
    pub(crate) version: (u32, u32),
    pub(crate) target: String,
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module")
            .field("version", &self.version)
            .field("target", &self.target)
            .field(
                "kernels",
                &self
                    .kernels
                    .iter()
                    .map(|k| k.name.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("globals", &self.globals.len())
            .finish()
    }
}

impl Module {
    /// Parse and lower PTX source text.
    pub fn load(ptx: &str) -> Result<Module, PtxError> {
        let ast = crate::parse::parse(ptx)?;
        crate::lower::lower_module(&ast)
    }

    /// The `.entry` kernels, in source order.
    pub fn kernels(&self) -> impl Iterator<Item = &Kernel> {
        self.kernels.iter()
    }

    /// Kernel by (mangled) name.
    pub fn kernel(&self, name: &str) -> Option<&Kernel> {
        self.kernels.iter().find(|k| k.name == name)
    }

    /// Module-scope `.global` / `.const` variables. The caller allocates zeroed device
    /// memory for each (size/align), copies [`GlobalVar::resolved_init`] to its start and
    /// passes the addresses to [`crate::launch`] in this order. Sizes are not bounded here
    /// (beyond fitting in 64 bits, all together): the caller checks them against its memory.
    pub fn globals(&self) -> &[GlobalVar] {
        &self.globals
    }

    /// Index and description of a module global by name.
    pub fn global(&self, name: &str) -> Option<(usize, &GlobalVar)> {
        self.globals
            .iter()
            .enumerate()
            .find(|(_, g)| g.name == name)
    }

    /// `.version` of the source (major, minor).
    pub fn ptx_version(&self) -> (u32, u32) {
        self.version
    }

    /// `.target` of the source (e.g. `sm_90`).
    pub fn target(&self) -> &str {
        &self.target
    }
}

/// A kernel (`.entry`) ready to launch.
pub struct Kernel {
    pub(crate) name: String,
    pub(crate) params: Vec<ParamInfo>,
    pub(crate) param_bytes: usize,
    pub(crate) max_threads: u32,
    pub(crate) reqntid: Option<[u32; 3]>,
    pub(crate) num_regs: u32,
    pub(crate) uses_dynamic_shared: bool,
    pub(crate) prog: Program,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernel")
            .field("name", &self.name)
            .field("params", &self.params)
            .field("static_shared", &self.prog.static_shared)
            .field("local", &self.prog.local_bytes)
            .field("instructions", &self.prog.code.len())
            .finish()
    }
}

impl Kernel {
    /// Kernel name as written in the PTX (mangled for C++ kernels).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Parameter layout, in declaration order.
    pub fn params(&self) -> &[ParamInfo] {
        &self.params
    }
    /// Total size of the packed parameter buffer.
    pub fn param_bytes(&self) -> usize {
        self.param_bytes
    }
    /// Static shared memory per block (bytes).
    pub fn static_shared_bytes(&self) -> u32 {
        self.prog.static_shared
    }
    /// Local memory per thread (bytes): `.local` arrays, inlined frames, call parameters.
    pub fn local_bytes_per_thread(&self) -> u32 {
        self.prog.local_bytes
    }
    /// Number of PTX virtual registers (a rough register-pressure figure).
    pub fn num_regs(&self) -> u32 {
        self.num_regs
    }
    /// From `.maxntid` / `.reqntid`, else 1024.
    pub fn max_threads_per_block(&self) -> u32 {
        self.max_threads
    }
    /// `.reqntid` block shape, if declared.
    pub fn required_block_dims(&self) -> Option<[u32; 3]> {
        self.reqntid
    }
    /// Whether the kernel references `extern .shared` (dynamic) shared memory.
    pub fn uses_dynamic_shared(&self) -> bool {
        self.uses_dynamic_shared
    }
    /// Number of lowered instructions.
    pub fn instruction_count(&self) -> usize {
        self.prog.code.len()
    }
}

/// Location of one kernel parameter in the packed parameter buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamInfo {
    /// Byte offset (aligned to `align`).
    pub offset: usize,
    /// Size in bytes.
    pub size: usize,
    /// Alignment in bytes.
    pub align: usize,
}

/// State space of a module variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GlobalSpace {
    /// `.global` (read-write device memory).
    Global,
    /// `.const` (read-only constant bank; backed by device memory here).
    Const,
}

/// Address-valued initializer element to patch at load time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reloc {
    /// Byte offset inside the variable.
    pub offset: usize,
    /// Width of the stored address (4 or 8).
    pub size: usize,
    /// Index (in [`Module::globals`]) of the referenced variable.
    pub target: usize,
    /// Byte offset added to the target's address.
    pub addend: i64,
}

/// A module-scope `.global` / `.const` variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalVar {
    /// Symbol name.
    pub name: String,
    /// `.global` or `.const`.
    pub space: GlobalSpace,
    /// Size in bytes.
    pub size: usize,
    /// Required alignment in bytes.
    pub align: usize,
    /// Initial contents: at most `size` bytes; every byte past `init.len()` is zero.
    /// Variables of up to [`crate::limits::FULL_INIT_BYTES`] carry all `size` bytes (zeros
    /// where not initialised); larger ones only through their last initialised element, so
    /// that a huge declaration costs no host memory at load.
    pub init: Vec<u8>,
    /// Address-valued initializers, to be patched with device addresses.
    pub relocs: Vec<Reloc>,
    /// Declared `.extern` (defined in another module).
    pub is_extern: bool,
}

impl GlobalVar {
    /// Initial bytes (as many as [`GlobalVar::init`] holds; the rest is zero) with
    /// relocations applied, given the device address of every global.
    pub fn resolved_init(&self, global_addrs: &[u64]) -> Vec<u8> {
        let mut v = self.init.clone();
        for r in &self.relocs {
            let addr = global_addrs
                .get(r.target)
                .copied()
                .unwrap_or(0)
                .wrapping_add(r.addend as u64);
            let bytes = addr.to_le_bytes();
            if let Some(dst) = v.get_mut(r.offset..r.offset + r.size) {
                dst.copy_from_slice(&bytes[..r.size]);
            }
        }
        v
    }
}
