//! PTX scalar types and the instruction-modifier helper used by lowering.

/// PTX fundamental types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub(crate) enum Ty {
    B8,
    B16,
    B32,
    B64,
    B128,
    U8,
    U16,
    U32,
    U64,
    S8,
    S16,
    S32,
    S64,
    F16,
    F16x2,
    Bf16,
    Bf16x2,
    F32,
    F64,
    Pred,
}

/// Every [`Ty`], indexed by its discriminant.
pub(crate) const ALL_TYS: [Ty; 20] = [
    Ty::B8,
    Ty::B16,
    Ty::B32,
    Ty::B64,
    Ty::B128,
    Ty::U8,
    Ty::U16,
    Ty::U32,
    Ty::U64,
    Ty::S8,
    Ty::S16,
    Ty::S32,
    Ty::S64,
    Ty::F16,
    Ty::F16x2,
    Ty::Bf16,
    Ty::Bf16x2,
    Ty::F32,
    Ty::F64,
    Ty::Pred,
];

impl Ty {
    /// Inverse of `ty as u8`.
    pub fn from_code(c: u8) -> Ty {
        ALL_TYS[(c as usize).min(ALL_TYS.len() - 1)]
    }

    /// Parse a type name written without the dot.
    pub fn parse(s: &str) -> Option<Ty> {
        use Ty::*;
        Some(match s {
            "b8" => B8,
            "b16" => B16,
            "b32" => B32,
            "b64" => B64,
            "b128" => B128,
            "u8" => U8,
            "u16" => U16,
            "u32" => U32,
            "u64" => U64,
            "s8" => S8,
            "s16" => S16,
            "s32" => S32,
            "s64" => S64,
            "f16" => F16,
            "f16x2" => F16x2,
            "bf16" => Bf16,
            "bf16x2" => Bf16x2,
            "f32" => F32,
            "f64" => F64,
            "pred" => Pred,
            _ => return None,
        })
    }

    /// Width in bits (predicates count as 1).
    pub fn bits(self) -> u32 {
        use Ty::*;
        match self {
            Pred => 1,
            B8 | U8 | S8 => 8,
            B16 | U16 | S16 | F16 | Bf16 => 16,
            B32 | U32 | S32 | F32 | F16x2 | Bf16x2 => 32,
            B64 | U64 | S64 | F64 => 64,
            B128 => 128,
        }
    }

    /// Width in bytes (predicates count as 1).
    pub fn bytes(self) -> u32 {
        self.bits().div_ceil(8)
    }

    /// Signed integer type.
    pub fn is_signed(self) -> bool {
        matches!(self, Ty::S8 | Ty::S16 | Ty::S32 | Ty::S64)
    }

    /// Floating-point type (including packed halves).
    pub fn is_float(self) -> bool {
        matches!(
            self,
            Ty::F16 | Ty::F16x2 | Ty::Bf16 | Ty::Bf16x2 | Ty::F32 | Ty::F64
        )
    }

    /// Integer or bit-size type.
    pub fn is_int(self) -> bool {
        !self.is_float() && self != Ty::Pred
    }
}

/// Instruction modifiers with "consumed" tracking, so that lowering can reject
/// any modifier it did not interpret.
pub(crate) struct Mods<'a> {
    items: Vec<(&'a str, bool)>,
}

impl<'a> Mods<'a> {
    pub fn new(mods: &'a [String]) -> Self {
        Mods {
            items: mods.iter().map(|m| (m.as_str(), false)).collect(),
        }
    }

    /// Consume `name` if present.
    pub fn has(&mut self, name: &str) -> bool {
        let mut found = false;
        for it in self.items.iter_mut() {
            if !it.1 && it.0 == name {
                it.1 = true;
                found = true;
            }
        }
        found
    }

    /// Consume the first of `names` present and return it.
    pub fn one_of(&mut self, names: &[&'static str]) -> Option<&'static str> {
        for it in self.items.iter_mut() {
            if !it.1 {
                if let Some(n) = names.iter().find(|n| **n == it.0) {
                    it.1 = true;
                    return Some(n);
                }
            }
        }
        None
    }

    /// Like [`Mods::one_of`], as the position of the modifier found in `names` (a mode number).
    pub fn index_of(&mut self, names: &[&'static str]) -> Option<u32> {
        let found = self.one_of(names)?;
        names.iter().position(|n| *n == found).map(|i| i as u32)
    }

    /// Consume every modifier in `names` (accepted and ignored).
    pub fn ignore(&mut self, names: &[&str]) {
        for it in self.items.iter_mut() {
            if names.contains(&it.0) {
                it.1 = true;
            }
        }
    }

    /// Consume every modifier accepted by `pred`.
    pub fn ignore_if(&mut self, pred: impl Fn(&str) -> bool) {
        for it in self.items.iter_mut() {
            if pred(it.0) {
                it.1 = true;
            }
        }
    }

    /// Consume the first type modifier only.
    pub fn first_type(&mut self) -> Option<Ty> {
        for it in self.items.iter_mut() {
            if !it.1 {
                if let Some(t) = Ty::parse(it.0) {
                    it.1 = true;
                    return Some(t);
                }
            }
        }
        None
    }

    /// Consume all type modifiers, in order.
    pub fn types(&mut self) -> Vec<Ty> {
        let mut v = Vec::new();
        for it in self.items.iter_mut() {
            if !it.1 {
                if let Some(t) = Ty::parse(it.0) {
                    it.1 = true;
                    v.push(t);
                }
            }
        }
        v
    }

    /// Unconsumed modifiers.
    pub fn rest(&self) -> Vec<&'a str> {
        self.items.iter().filter(|i| !i.1).map(|i| i.0).collect()
    }
}

/// Cache / memory-ordering qualifiers that do not change single-copy semantics here.
pub(crate) fn is_cache_or_order_mod(m: &str) -> bool {
    matches!(
        m,
        "ca" | "cg"
            | "cs"
            | "lu"
            | "cv"
            | "wb"
            | "wt"
            | "nc"
            | "weak"
            | "volatile"
            | "relaxed"
            | "acquire"
            | "release"
            | "acq_rel"
            | "sc"
            | "cta"
            | "gpu"
            | "sys"
            | "cluster"
            | "mmio"
            | "L2::64B"
            | "L2::128B"
            | "L2::256B"
            | "L2::cache_hint"
            | "unified"
    ) || m.starts_with("L1::")
        || m.starts_with("L2::")
}
