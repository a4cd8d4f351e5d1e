//! Deduplication of read-only device memory across tenants (docs/dedup.md).
//!
//! The broker sees every host-to-device upload pass through shared memory (the staging area or
//! a pinned buffer), so it can hash the bytes on their way. A *granule* (the device's VMM
//! granularity, 2 MiB) of a tenant's allocation whose every byte was written by uploads, and by
//! nothing else since, has a content [`Key`]. Granules of the same key are mapped onto one
//! physical copy, read-only; the duplicates are released. Each worker has its own index; a copy
//! another worker holds is imported (its memory exported once as a file descriptor) and
//! listed in the importer's index too.
//!
//! This module is the pure part: what a tenant's granules hold ([`granules`]), the device's
//! content index ([`index`]), the key of a granule ([`key`]), and what it saves device-wide
//! ([`summary`]). The session layer
//! (`session::dedup`) feeds it uploads and writes and carries out what it decides on the
//! worker, in the tenant's order, with the tenant's device work quiesced
//! ([`crate::work::Op::Exclusive`]).

pub mod granules;
pub mod index;
pub mod key;
pub mod summary;

pub use granules::{Completed, Fill, Granule, KeyQueue, Pieces, TenantGranules, UNHASHED};
pub use index::{ContentIndex, CopyUse, EntryId, Freed};
pub use key::{granule_key, hash_bytes, prefix_key, Hash, Key, PREFIX_LEN};
pub use summary::{summarize, Summary};
