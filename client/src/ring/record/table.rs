//! The record-kind table: `record_kinds!` turns one declaration per record kind into
//! everything that used to be written once per kind by hand — the [`kind`](super::kind)
//! constants, the [`Command`](super::Command) enum, the per-kind steps of encoding and decoding,
//! and [`KINDS`](super::KINDS), from which [`kind_table`] renders the markdown table of
//! `docs/protocol.md` §6 (a unit test keeps the two equal).
//!
//! A row of the declaration:
//!
//! ```text
//! /// Doc line (the `Command` variant's and the `kind` constant's doc, the table's "what").
//! NAME = value, command|notify ring, Variant(Payload)
//!     [= FixedStruct { copied, fields } + variable_field[len_field] [<= MAX else TooLarge]: "doc"]
//!     [, check function: "doc"];
//! ```
//!
//! - Without the `= ...` part the payload *is* the fixed part: a [`fixed_layout!`] struct, read
//!   and written as is.
//! - With it, the payload is a borrowed view: `FixedStruct` is its fixed part; the view's
//!   `copied` fields are copied to and from the fixed part, its `variable_field` (`&[u8]`) is the
//!   variable part, whose length travels in the fixed part's `len_field` (`u32`). `<= MAX else
//!   TooLarge`: a longer variable part is `RecordError::TooLarge(len)`, on encoding and decoding.
//! - `check function`: `fn(&FixedStruct) -> Result<(), RecordError>`, run when decoding, after
//!   the length checks.
//!
//! [`fixed_layout!`]: crate::fixed_layout

/// What the declaration says about one record kind (documentation and tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KindInfo {
    /// Constant name (`LAUNCH`).
    pub name: &'static str,
    /// `RecordHeader::kind` value.
    pub value: u16,
    /// Which ring carries it: `command`, `notify` or `both` (PAD).
    pub ring: &'static str,
    /// The declaration's doc comment.
    pub doc: &'static str,
    /// The fixed part (`None` for PAD).
    pub fixed: Option<FixedInfo>,
    /// The variable part, if the kind has one.
    pub variable: Option<VariableInfo>,
    /// What decoding checks beyond lengths, if anything.
    pub check: Option<&'static str>,
}

/// A fixed part: a `fixed_layout!` struct.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedInfo {
    /// Struct name.
    pub name: &'static str,
    /// Encoded size in bytes.
    pub size: usize,
    /// Field names and types, in order.
    pub fields: &'static [(&'static str, &'static str)],
}

/// A variable part: bytes after the fixed part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VariableInfo {
    /// Field of the fixed part holding the length.
    pub len_field: &'static str,
    /// Largest length, if limited below the ring's largest record.
    pub max: Option<usize>,
    /// What the bytes are.
    pub doc: &'static str,
}

/// The markdown table of record kinds (`docs/protocol.md` §6), rendered from the declaration.
pub fn kind_table(kinds: &[KindInfo]) -> String {
    let mut out = String::from(
        "| kind | value | ring | fixed part (bytes: fields) | variable part | what |\n\
         |---|---|---|---|---|---|\n",
    );
    for k in kinds {
        let fixed = match &k.fixed {
            None => "—".to_string(),
            Some(f) => {
                let fields: Vec<String> =
                    f.fields.iter().map(|(n, t)| format!("{n} {t}")).collect();
                let mut s = format!("{}: `{}{{{}}}`", f.size, f.name, fields.join(", "));
                if let Some(check) = k.check {
                    s.push_str(&format!("; checked: {check}"));
                }
                s
            }
        };
        let variable = match &k.variable {
            None => "—".to_string(),
            Some(v) => match v.max {
                Some(max) => format!("`{}` (≤ {max}) bytes: {}", v.len_field, v.doc),
                None => format!("`{}` bytes: {}", v.len_field, v.doc),
            },
        };
        out.push_str(&format!(
            "| {} | {} | {} | {fixed} | {variable} | {} |\n",
            k.name,
            k.value,
            k.ring,
            k.doc.trim()
        ));
    }
    out
}

/// Generates the record kinds from their declaration (see the module documentation).
macro_rules! record_kinds {
    // ----- per-row helpers -----
    (@fixed $View:ident) => { $View };
    (@fixed $View:ident, $Fixed:ident) => { $Fixed };
    (@fixed_name $View:ident) => { stringify!($View) };
    (@fixed_name $View:ident, $Fixed:ident) => { stringify!($Fixed) };
    (@ring command) => { "command" };
    (@ring notify) => { "notify" };
    (@variable $v:ident) => { &[] };
    (@variable $v:ident, $var:ident) => { $v.$var };
    (@max $v:ident) => { Ok(()) };
    (@max $v:ident, $var:ident) => { Ok(()) };
    (@max $v:ident, $var:ident, $max:ident, $TooLarge:ident) => {
        if $v.$var.len() > $max {
            Err(RecordError::$TooLarge($v.$var.len()))
        } else {
            Ok(())
        }
    };
    (@write $v:ident, $body:ident, $n:ident) => { $v.write_to($body) };
    (@write $v:ident, $body:ident, $n:ident, $Fixed:ident { $($copy:ident),* } $len:ident) => {
        $Fixed { $($copy: $v.$copy,)* $len: $n }.write_to($body)
    };
    (@var_len $b:ident, $short:ident) => { Ok(0) };
    (@var_len $b:ident, $short:ident, $Fixed:ident, $len:ident) => {
        Ok($Fixed::read_from($b).ok_or_else($short)?.$len as usize)
    };
    (@var_len $b:ident, $short:ident, $Fixed:ident, $len:ident, $max:ident, $TooLarge:ident) => {{
        let n = $Fixed::read_from($b).ok_or_else($short)?.$len as usize;
        if n > $max {
            Err(RecordError::$TooLarge(n))
        } else {
            Ok(n)
        }
    }};
    (@view $h:ident, $bytes:ident, $View:ident) => { $h };
    (@view $h:ident, $bytes:ident, $View:ident, $($copy:ident),* ; $var:ident) => {
        $View { $($copy: $h.$copy,)* $var: $bytes }
    };
    (@doc_fixed $View:ident) => {
        concat!("[`", stringify!($View), "`](crate::ring::record::", stringify!($View), ")")
    };
    (@doc_fixed $View:ident, $Fixed:ident) => {
        concat!("[`", stringify!($Fixed), "`](crate::ring::record::", stringify!($Fixed), ")")
    };
    (@doc_var) => { "—" };
    (@doc_var $len:ident, $vdoc:literal) => { concat!("`", stringify!($len), "` bytes: ", $vdoc) };
    (@doc_var $len:ident, $vdoc:literal, $max:ident) => {
        concat!(
            "`", stringify!($len), "` (≤ [`", stringify!($max), "`](crate::ring::record::",
            stringify!($max), ")) bytes: ", $vdoc
        )
    };
    (@info_var) => { None };
    (@info_var $len:ident, $vdoc:literal $(, $max:ident)?) => {
        Some($crate::ring::record::table::VariableInfo {
            len_field: stringify!($len),
            max: record_kinds!(@opt $($max)?),
            doc: $vdoc,
        })
    };
    (@opt) => { None };
    (@opt $x:expr) => { Some($x) };

    // ----- the declaration -----
    (
        $(#[doc = $pad_doc:literal])*
        PAD = $pad:literal, both ring;
        $(
            $(#[doc = $doc:literal])*
            $NAME:ident = $value:literal, $ring:ident ring, $Variant:ident($View:ident $(<$lt:lifetime>)?)
            $( = $Fixed:ident { $($copy:ident),* $(,)? } + $var:ident[$len:ident]
               $(<= $max:ident else $TooLarge:ident)?: $vdoc:literal )?
            $(, check $check:ident: $cdoc:literal)?;
        )*
    ) => {
        /// Record kinds (`RecordHeader::kind`), generated from the declaration in
        /// [`record`](crate::ring::record) (`docs/protocol.md` §6 has the same table with sizes
        /// and fields):
        ///
        /// | kind | value | ring | fixed part | variable part | what |
        /// |---|---|---|---|---|---|
        #[doc = concat!("| PAD | ", stringify!($pad), " | both | — | — |", $($pad_doc),*, " |")]
        $(#[doc = concat!(
            "| ", stringify!($NAME), " | ", stringify!($value), " | ", $crate::ring::record::table::record_kinds!(@ring $ring),
            " | ", $crate::ring::record::table::record_kinds!(@doc_fixed $View $(, $Fixed)?),
            " | ", $crate::ring::record::table::record_kinds!(@doc_var $($len, $vdoc $(, $max)?)?),
            " |", $($doc),*, " |"
        )])*
        pub mod kind {
            $(#[doc = $pad_doc])*
            pub const PAD: u16 = $pad;
            $( $(#[doc = $doc])* pub const $NAME: u16 = $value; )*
        }

        // Kind values are distinct, and every fixed part fits the producer's buffer.
        const _: () = {
            let values = [$pad, $($value),*];
            let mut i = 0;
            while i < values.len() {
                let mut j = i + 1;
                while j < values.len() {
                    assert!(values[i] != values[j], "two record kinds share a value");
                    j += 1;
                }
                i += 1;
            }
            $(assert!(
                RecordHeader::SIZE + <record_kinds!(@fixed $View $(, $Fixed)?)>::SIZE <= FIXED_MAX,
                "a fixed part exceeds FIXED_MAX"
            );)*
        };

        /// Every record kind as declared, PAD first (documentation tables, tests).
        pub const KINDS: &[$crate::ring::record::table::KindInfo] = &[
            $crate::ring::record::table::KindInfo {
                name: "PAD",
                value: $pad,
                ring: "both",
                doc: concat!($($pad_doc),*),
                fixed: None,
                variable: None,
                check: None,
            },
            $($crate::ring::record::table::KindInfo {
                name: stringify!($NAME),
                value: $value,
                ring: record_kinds!(@ring $ring),
                doc: concat!($($doc),*),
                fixed: Some($crate::ring::record::table::FixedInfo {
                    name: record_kinds!(@fixed_name $View $(, $Fixed)?),
                    size: <record_kinds!(@fixed $View $(, $Fixed)?)>::SIZE,
                    fields: <record_kinds!(@fixed $View $(, $Fixed)?)>::FIELDS,
                }),
                variable: record_kinds!(@info_var $($len, $vdoc $(, $max)?)?),
                check: record_kinds!(@opt $($cdoc)?),
            },)*
        ];

        /// One record, borrowed: what producers push and consumers pop.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Command<'a> {
            $( $(#[doc = $doc])* $Variant($View $(<$lt>)?), )*
        }

        impl<'a> Command<'a> {
            /// The record kind.
            pub fn kind(&self) -> u16 {
                match self {
                    $( Command::$Variant(..) => kind::$NAME, )*
                }
            }

            /// The variable-length bytes that follow the fixed part.
            #[inline]
            pub fn variable(&self) -> &'a [u8] {
                match self {
                    $( Command::$Variant(_v) => record_kinds!(@variable _v $(, $var)?), )*
                }
            }

            /// Size of the fixed part (without header); `None` for an unknown kind (or PAD).
            fn fixed_size(kind: u16) -> Option<usize> {
                match kind {
                    $( kind::$NAME => Some(<record_kinds!(@fixed $View $(, $Fixed)?)>::SIZE), )*
                    _ => None,
                }
            }

            /// Checks the variable part against the kind's limit before encoding.
            fn check_variable(&self) -> Result<(), RecordError> {
                match self {
                    $( Command::$Variant(_v) => {
                        record_kinds!(@max _v $(, $var $(, $max, $TooLarge)?)?)
                    } )*
                }
            }

            /// Writes the fixed part into `body` (`var_len`: the variable part's length).
            fn write_fixed(&self, body: &mut [u8], var_len: u32) -> bool {
                match self {
                    $( Command::$Variant(_v) => {
                        record_kinds!(@write _v, body, var_len $(, $Fixed { $($copy),* } $len)?)
                    } )*
                }
            }

            /// The variable part's length as the fixed part at the start of `body` states it,
            /// checked against the kind's limit (0 for kinds without one).
            fn variable_len(
                kind: u16,
                body: &[u8],
                short: &dyn Fn() -> RecordError,
            ) -> Result<usize, RecordError> {
                match kind {
                    $( kind::$NAME => {
                        record_kinds!(@var_len body, short $(, $Fixed, $len $(, $max, $TooLarge)?)?)
                    } )*
                    other => Err(RecordError::UnknownKind(other)),
                }
            }

            /// Builds the command from its fixed part (`body`, long enough) and variable part,
            /// running the kind's check.
            fn from_parts(
                kind: u16,
                body: &[u8],
                variable: &'a [u8],
                short: &dyn Fn() -> RecordError,
            ) -> Result<Command<'a>, RecordError> {
                match kind {
                    $( kind::$NAME => {
                        let _h = <record_kinds!(@fixed $View $(, $Fixed)?)>::read_from(body)
                            .ok_or_else(short)?;
                        $( $check(&_h)?; )?
                        Ok(Command::$Variant(
                            record_kinds!(@view _h, variable, $View $(, $($copy),* ; $var)?)
                        ))
                    } )*
                    other => Err(RecordError::UnknownKind(other)),
                }
            }
        }
    };
}
pub(crate) use record_kinds;
