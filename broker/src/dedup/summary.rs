//! What deduplication saves, device-wide (status): every worker's [`CopyUse`]s put together,
//! so a copy mapped in several workers (imported across isolation groups) counts once.
//!
//! A copy is *held* by one worker: the one it was first registered in while that worker maps
//! it, else the lowest-numbered worker that does (the original's tenants may all have left
//! while imports keep the memory). Every other mapping is a granule saved, charged to the
//! worker that maps it; a tenant's mapping is *shared* when another tenant maps the same copy.

use std::collections::HashMap;

use super::index::{CopyUse, EntryId, TenantId};

/// The device's figures, in granules.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Granules saved, by the worker whose mappings they are.
    pub saved: HashMap<u64, u64>,
    /// Granules each tenant maps on copies another tenant maps too.
    pub shared: HashMap<TenantId, u64>,
}

impl Summary {
    /// Granules saved on the whole device.
    pub fn saved_total(&self) -> u64 {
        self.saved.values().sum()
    }
}

/// The workers mapping one copy: `(worker, the tenant of each mapping there)`.
type Holders = Vec<(u64, Vec<TenantId>)>;

/// Puts together `(worker, uses)` of every worker of the device.
pub fn summarize(workers: Vec<(u64, Vec<CopyUse>)>) -> Summary {
    let mut copies: HashMap<(u64, EntryId), Holders> = HashMap::new();
    for (worker, uses) in workers {
        for u in uses {
            copies.entry(u.copy).or_default().push((worker, u.tenants));
        }
    }
    let mut out = Summary::default();
    for ((original, _), mut holders) in copies {
        holders.retain(|(_, tenants)| !tenants.is_empty());
        holders.sort_by_key(|(w, _)| (*w != original, *w));
        let first = tenant_set(&holders);
        for (i, (worker, tenants)) in holders.iter().enumerate() {
            let held = u64::from(i == 0);
            *out.saved.entry(*worker).or_default() += tenants.len() as u64 - held;
            if first.len() > 1 {
                for t in tenants {
                    *out.shared.entry(*t).or_default() += 1;
                }
            }
        }
    }
    out
}

fn tenant_set(holders: &[(u64, Vec<TenantId>)]) -> Vec<TenantId> {
    let mut all: Vec<TenantId> = holders
        .iter()
        .flat_map(|(_, t)| t.iter().copied())
        .collect();
    all.sort_unstable();
    all.dedup();
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uses(copy: (u64, EntryId), tenants: &[TenantId]) -> CopyUse {
        CopyUse {
            copy,
            tenants: tenants.to_vec(),
        }
    }

    #[test]
    fn a_copy_mapped_in_three_workers_counts_once() {
        let s = summarize(vec![
            (1, vec![uses((1, 5), &[10])]),
            (2, vec![uses((1, 5), &[20, 21])]),
            (3, vec![uses((1, 5), &[30])]),
        ]);
        assert_eq!(s.saved_total(), 3, "four mappings of one copy");
        assert_eq!(s.saved.get(&1), Some(&0), "worker 1 holds it");
        assert_eq!(s.shared.get(&10), Some(&1));
        assert_eq!(s.shared.get(&30), Some(&1));
    }

    #[test]
    fn an_import_whose_original_is_unmapped_holds_the_copy() {
        let s = summarize(vec![
            (1, vec![uses((1, 5), &[])]),
            (2, vec![uses((1, 5), &[20])]),
        ]);
        assert_eq!(s.saved_total(), 0, "one mapping, one copy: nothing saved");
        assert!(s.shared.is_empty(), "one tenant shares with nobody");
        let own = summarize(vec![(1, vec![uses((1, 6), &[10, 10])])]);
        assert_eq!(own.saved_total(), 1);
        assert!(own.shared.is_empty(), "a tenant mapping its own copy twice");
    }
}
