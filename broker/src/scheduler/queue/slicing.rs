//! Cutting the head of a tenant's queue before it is dispatched: a kernel longer than the
//! tenant's slice target into block-range slices (settling on whole waves), a host copy longer
//! than that into chunks of at least [`MIN_COPY_CHUNK`] bytes and [`MIN_COPY_CHUNK_NS`], so that
//! another tenant waits for at most a slice or a chunk of it.

use super::super::cost::{CostClass, Engine, Nanos};
use super::{queued, FairQueue, Queued, Work, MIN_COPY_CHUNK, MIN_COPY_CHUNK_NS};
use crate::scheduler::TenantId;

impl<J: Work> FairQueue<J> {
    /// Cuts the head of tenant `id` into block-range slices when it is a kernel longer than
    /// the tenant's slice target, or into chunks when it is a host copy longer than that.
    pub(super) fn slice_head(&mut self, id: TenantId) {
        if !self.cfg.slicing {
            return;
        }
        let Some(t) = self.tenants.get(&id) else {
            return;
        };
        let target = (self.window(t) / 2).max(1);
        let Some(head) = t.ops.head() else {
            return;
        };
        let estimate = self.model.estimate(&head.class);
        if estimate <= target {
            return;
        }
        let parts = match &head.class {
            CostClass::Kernel(shape) => {
                self.kernel_parts(&head.job, shape.blocks(), estimate, target)
            }
            CostClass::Transfer {
                engine: Engine::H2D | Engine::D2H,
                bytes,
            } => estimate
                .div_ceil(target.max(MIN_COPY_CHUNK_NS))
                .min(bytes / MIN_COPY_CHUNK),
            _ => 0,
        };
        let parts = parts.min(u64::from(u32::MAX)) as u32;
        tracing::debug!(tenant = id, estimate, parts, "slicing");
        if parts < 2 {
            return;
        }
        let t = self.tenants.get_mut(&id).expect("present");
        t.ops.replace_head(|q| {
            let at = q.at;
            match q.job.split(parts) {
                Ok(slices) => slices.into_iter().map(|j| queued(j, at)).collect(),
                Err(job) => vec![Queued { job, ..q }],
            }
        });
    }

    /// How many slices a kernel of `blocks` blocks estimated at `estimate` ns is cut into for
    /// slices of about `target` ns (fewer than 2: none).
    fn kernel_parts(&self, job: &J, blocks: u64, estimate: Nanos, target: Nanos) -> u64 {
        if blocks < 2 {
            return 0;
        }
        let mut parts = estimate
            .div_ceil(target)
            .min(blocks)
            .min(u64::from(u32::MAX)) as u32;
        // A slice smaller than a wave of the device takes as long as a wave: when doubling a
        // slice's blocks does not nearly double its measured time, halve the number of
        // slices. An unmeasured size is tried (then measured), so this settles in a few
        // launches on slices of whole waves.
        while parts >= 2 {
            let time = |parts: u32| match job.slice_class(parts) {
                Some(CostClass::Kernel(s)) => Some(self.model.measured(&s)),
                _ => None,
            };
            let Some(small) = time(parts) else {
                return 0;
            };
            let Some(small) = small else {
                break;
            };
            let bigger = if parts / 2 >= 2 {
                time(parts / 2).flatten()
            } else {
                None
            };
            match bigger {
                Some(b) if b * 10 >= small * 18 => break,
                _ => parts /= 2,
            }
        }
        u64::from(parts)
    }
}
