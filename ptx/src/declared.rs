//! What loading a module will allocate in device memory, known before anything is allocated:
//! the declared sizes of its module-scope `.global` and `.const` variables, from the parse
//! alone (no lowering). A broker charges these to a tenant's memory quota and refuses a module
//! that does not fit before the driver sees it.

use std::collections::HashMap;

use crate::error::PtxError;
use crate::lower::decl_layout;
use crate::parse::ast::{Linkage, Space};

/// The bytes module `ptx`'s `.global` and `.const` variables occupy, laid out one after the
/// other with their alignments, as [`crate::Module::load`] lays them out (an `.extern`
/// declaration followed by a definition counts once, as the definition). Errors: the text does
/// not parse, a declaration is malformed, or the total overflows 64 bits.
pub fn declared_global_bytes(ptx: &str) -> Result<u64, PtxError> {
    let ast = crate::parse::parse(ptx)?;
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut decls = Vec::new();
    for v in &ast.vars {
        if !matches!(v.space, Space::Global | Space::Const) {
            continue;
        }
        match index.get(v.name.as_str()) {
            Some(&i) => {
                if v.init.is_some() || v.linkage != Linkage::Extern {
                    decls[i] = v;
                }
            }
            None => {
                index.insert(v.name.as_str(), decls.len());
                decls.push(v);
            }
        }
    }
    let mut total: u64 = 0;
    for d in decls {
        let (_, size, align) = decl_layout(d)?;
        total = total
            .checked_next_multiple_of(align as u64)
            .and_then(|t| t.checked_add(size as u64))
            .ok_or_else(|| PtxError::Invalid {
                line: d.line,
                msg: "the module's variables total more than 2^64 bytes".into(),
            })?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = ".version 8.0\n.target sm_80\n.address_size 64\n";

    #[test]
    fn sums_globals_and_consts_with_alignment() {
        let ptx = format!(
            "{HEAD}.global .align 4 .b8 a[3];\n.const .align 8 .u64 b[2];\n\
             .global .u32 c = 7;\n.shared .b8 s[4096];\n"
        );
        // a: 0..3, b: 8..24, c: 24..28; shared memory is not device memory.
        assert_eq!(declared_global_bytes(&ptx).unwrap(), 28);
    }

    #[test]
    fn a_huge_declaration_is_counted_not_allocated() {
        let ptx = format!("{HEAD}.global .align 8 .b8 big[1610612736];\n");
        assert_eq!(declared_global_bytes(&ptx).unwrap(), 1_610_612_736);
        let extern_then_defined =
            format!("{HEAD}.extern .global .u32 x;\n.visible .global .u32 x[4];\n");
        assert_eq!(declared_global_bytes(&extern_then_defined).unwrap(), 16);
        assert!(declared_global_bytes("not ptx {").is_err());
    }
}
