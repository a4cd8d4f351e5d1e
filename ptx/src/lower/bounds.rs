//! Bounds checks of the lowering: declared sizes against [`limits`], the kernel parameter
//! layout, and the per-kernel resource limits (local and shared memory, registers, code size).

use super::{decl_layout, invalid, KLower, Res, Sym, VarLoc};
use crate::error::PtxError;
use crate::limits;
use crate::module::{GlobalVar, ParamInfo};
use crate::parse::ast::Function;
use std::collections::HashMap;

/// Error for a declaration or kernel beyond one of the [`crate::limits`].
pub(crate) fn over_limit<T>(line: u32, what: impl Into<String>, reason: String) -> Res<T> {
    Err(PtxError::Unsupported {
        line,
        instruction: what.into(),
        reason,
    })
}

/// `len` zero bytes, or an error if the host cannot allocate them (sizes come from input).
pub(crate) fn zeroed(len: usize, line: u32) -> Res<Vec<u8>> {
    let mut v = Vec::new();
    if v.try_reserve_exact(len).is_err() {
        return invalid(line, format!("cannot allocate {len} bytes of initializer"));
    }
    v.resize(len, 0);
    Ok(v)
}

/// Checks that the module's variables, laid out one after another with their alignments, have
/// a total size that fits in 64 bits (the device decides whether it can allocate them).
pub(crate) fn check_globals_total(globals: &[GlobalVar]) -> Res<()> {
    let mut total = Some(0usize);
    for g in globals {
        total = total
            .and_then(|t| t.checked_next_multiple_of(g.align))
            .and_then(|t| t.checked_add(g.size));
    }
    match total {
        Some(_) => Ok(()),
        None => invalid(0, "the module's variables total more than 2^64 bytes"),
    }
}

/// Kernel parameter layout: offsets, the scope binding each name, and the buffer size
/// (at most [`limits::MAX_PARAM_BYTES`]).
pub(crate) fn param_layout(f: &Function) -> Res<(Vec<ParamInfo>, HashMap<String, Sym>, usize)> {
    let mut params = Vec::new();
    let mut scope = HashMap::new();
    let mut off = 0usize;
    for p in &f.params {
        let (_, size, align) = decl_layout(p)?;
        let end = off
            .checked_next_multiple_of(align)
            .and_then(|o| Some((o, o.checked_add(size)?)))
            .filter(|&(_, end)| end <= limits::MAX_PARAM_BYTES);
        let Some((start, end)) = end else {
            return over_limit(
                f.line,
                format!(".entry {}", f.name),
                format!(
                    "parameter `{}` ends beyond {} bytes of parameters",
                    p.name,
                    limits::MAX_PARAM_BYTES
                ),
            );
        };
        params.push(ParamInfo {
            offset: start,
            size,
            align,
        });
        scope.insert(p.name.clone(), Sym::Var(VarLoc::Param(start as u32)));
        off = end;
    }
    Ok((params, scope, off))
}

impl KLower<'_> {
    /// Local and shared memory and registers of the finished kernel, against [`limits`].
    pub fn check_resources(&self, f: &Function) -> Res<()> {
        let what = || format!(".entry {}", f.name);
        if self.local_off > limits::MAX_LOCAL_BYTES {
            let reason = format!(
                "{} bytes of local memory per thread (limit {})",
                self.local_off,
                limits::MAX_LOCAL_BYTES
            );
            return over_limit(f.line, what(), reason);
        }
        if self.shared_off > limits::MAX_SHARED_BYTES {
            let reason = format!(
                "{} bytes of static shared memory (limit {})",
                self.shared_off,
                limits::MAX_SHARED_BYTES
            );
            return over_limit(f.line, what(), reason);
        }
        self.check_code_size(f.line)?;
        self.check_registers(f.line, 0)
    }

    /// Fails if `more` registers or predicates beyond those allocated would pass
    /// [`limits::MAX_REGISTERS`].
    pub fn check_registers(&self, line: u32, more: u64) -> Res<()> {
        let n = u64::from(self.nregs.max(self.npreds)) + more;
        if n > u64::from(limits::MAX_REGISTERS) {
            return over_limit(
                line,
                format!(".entry {}", self.call_stack[0]),
                format!(
                    "more than {} registers or predicates (with inlined calls)",
                    limits::MAX_REGISTERS
                ),
            );
        }
        Ok(())
    }

    /// Fails once the kernel has lowered to more than its instruction budget.
    pub fn check_code_size(&self, line: u32) -> Res<()> {
        if self.code.len() > self.max_code {
            return over_limit(
                line,
                format!(".entry {}", self.call_stack[0]),
                format!(
                    "more than {} instructions after inlining (limits: {} per kernel, {} per module)",
                    self.max_code,
                    limits::MAX_KERNEL_INSTRUCTIONS,
                    limits::MAX_MODULE_INSTRUCTIONS
                ),
            );
        }
        Ok(())
    }
}
