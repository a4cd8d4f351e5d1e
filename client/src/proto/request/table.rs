//! The request table: `requests!` turns one declaration per synchronous request into the flat
//! [`Request`](super::Request) enum (what travels, postcard-encoded), one enum per API family
//! (what the broker's handlers match on), [`Routed`](super::Routed) with
//! [`Request::route`](super::Request::route), `family`, `runs_inline`, and
//! [`REQUESTS`](super::REQUESTS), from which [`request_table`] renders the table of
//! `docs/protocol.md` §3 (a unit test keeps the two equal).
//!
//! The declaration is a list of families, each a list of requests:
//!
//! ```text
//! /// Family doc.
//! family_module: Family(FamilyRequest) {
//!     /// Request doc.
//!     Variant { /// field doc
//!               field: Type, ... } => ReplyVariant, inline|executor;
//! }
//! ```
//!
//! The flat enum lists the requests in declaration order, which is their postcard variant index.
//! A request added compatibly goes last: at the end of the last block, or in a new block after
//! it, which may repeat an earlier family's module name with an enum of its own
//! (`memory: MemoryMore(MemoryMoreRequest) { .. }`, routed to the same broker module). A request
//! added inside an earlier block shifts the indices after it, which changes the wire format
//! (`PROTOCOL_VERSION`). `family_module` is the name of the family's module in the shim, the CPU
//! device and the broker (`src/driver/<family>.rs`, `session/exec/<family>.rs`). `ReplyVariant` is the
//! [`Reply`](super::super::Reply) variant of a success (checked to exist at compile time).
//! `inline`: the request never waits for the device or the tenant, so the broker may run it on
//! the ring thread; `executor`: it may block and runs on the tenant's executor thread.

/// What the declaration says about one request (documentation and tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestInfo {
    /// Variant name.
    pub name: &'static str,
    /// Family module name (`memory`).
    pub family: &'static str,
    /// Field names and types, in order.
    pub fields: &'static [(&'static str, &'static str)],
    /// `Reply` variant of a success.
    pub reply: &'static str,
    /// May run on the broker's ring thread.
    pub inline: bool,
    /// The declaration's doc comment.
    pub doc: &'static str,
}

/// The markdown table of requests (`docs/protocol.md` §3), rendered from the declaration.
pub fn request_table(requests: &[RequestInfo]) -> String {
    let mut out = String::from(
        "| # | family | request | reply | runs on | what |\n|---|---|---|---|---|---|\n",
    );
    for (i, r) in requests.iter().enumerate() {
        let fields: Vec<String> = r
            .fields
            .iter()
            .map(|(n, t)| format!("{n}: {}", t.replace(' ', "")))
            .collect();
        let request = if fields.is_empty() {
            format!("`{}`", r.name)
        } else {
            format!("`{}{{{}}}`", r.name, fields.join(", "))
        };
        let runs_on = if r.inline { "ring" } else { "executor" };
        let what: Vec<&str> = r.doc.lines().map(str::trim).collect();
        out.push_str(&format!(
            "| {i} | {} | {request} | `{}` | {runs_on} | {} |\n",
            r.family,
            r.reply,
            what.join(" ")
        ));
    }
    out
}

/// Generates the requests from their declaration (see the module documentation).
macro_rules! requests {
    (@inline inline) => { true };
    (@inline executor) => { false };

    (
        $(
            $(#[doc = $fdoc:literal])*
            $family:ident: $Family:ident($FamEnum:ident) {
                $(
                    $(#[doc = $doc:literal])*
                    $V:ident $({ $($(#[doc = $fd:literal])* $f:ident: $t:ty),* $(,)? })?
                        => $reply:ident, $mode:ident;
                )*
            }
        )*
    ) => {
        /// Every synchronous call, flat: what travels (postcard, the variant index is the
        /// declaration order). Generated from the declaration in [`request`](crate::proto::request);
        /// the broker matches on the per-family enums [`Request::route`] gives.
        #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
        pub enum Request {
            $($(
                $(#[doc = $doc])*
                #[doc = ""]
                #[doc = concat!(
                    "Family `", stringify!($family), "`; reply [`Reply::", stringify!($reply),
                    "`](crate::proto::Reply::", stringify!($reply), "); runs on the broker's ",
                    stringify!($mode), "."
                )]
                $V $({ $($(#[doc = $fd])* $f: $t),* })?,
            )*)*
        }

        /// The API families of [`Request`] (the shim's and the CPU device's `src/driver/<family>.rs`
        /// modules, the broker's `session/exec/<family>.rs`).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Family {
            $( $(#[doc = $fdoc])* $Family, )*
        }

        impl Family {
            /// Every family, in declaration order.
            pub const ALL: &'static [Family] = &[$(Family::$Family),*];

            /// The family's module name (`host_memory`).
            pub fn name(self) -> &'static str {
                match self {
                    $( Family::$Family => stringify!($family), )*
                }
            }
        }

        $(
            $(#[doc = $fdoc])*
            #[doc = ""]
            #[doc = concat!("The `", stringify!($family), "` family of [`Request`].")]
            #[derive(Clone, Debug, PartialEq, Eq)]
            pub enum $FamEnum {
                $(
                    $(#[doc = $doc])*
                    $V $({ $($(#[doc = $fd])* $f: $t),* })?,
                )*
            }
        )*

        /// A [`Request`] routed to its family ([`Request::route`]).
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum Routed {
            $( $(#[doc = $fdoc])* $Family($FamEnum), )*
        }

        impl Request {
            /// The request as its family's enum.
            pub fn route(self) -> Routed {
                match self {
                    $($(
                        Request::$V $({ $($f),* })? => Routed::$Family($FamEnum::$V $({ $($f),* })?),
                    )*)*
                }
            }

            /// Its API family.
            pub fn family(&self) -> Family {
                match self {
                    $($( Request::$V { .. } => Family::$Family, )*)*
                }
            }

            /// True when the request never waits for the device or the tenant, so the broker
            /// may run it on the ring thread (saving the hand-off to the executor).
            pub fn runs_inline(&self) -> bool {
                match self {
                    $($( Request::$V { .. } => requests!(@inline $mode), )*)*
                }
            }

            /// Variant name (logs).
            pub fn name(&self) -> &'static str {
                match self {
                    $($( Request::$V { .. } => stringify!($V), )*)*
                }
            }
        }

        // Every declared reply is a `Reply` variant.
        const _: fn(&Reply) = |r: &Reply| {
            $($( let _ = matches!(r, Reply::$reply { .. }); )*)*
        };

        /// Every request as declared, in wire order (documentation tables, tests).
        pub const REQUESTS: &[$crate::proto::request::table::RequestInfo] = &[
            $($($crate::proto::request::table::RequestInfo {
                name: stringify!($V),
                family: stringify!($family),
                fields: &[$($((stringify!($f), stringify!($t))),*)?],
                reply: stringify!($reply),
                inline: requests!(@inline $mode),
                doc: concat!($($doc, "\n"),*),
            },)*)*
        ];
    };
}
pub(crate) use requests;
