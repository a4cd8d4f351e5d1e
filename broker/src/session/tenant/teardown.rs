//! Freeing everything a tenant held when its session ends.

use gpushare_client::shm::SessionState;

use super::Tenant;

impl Tenant {
    /// Frees everything the tenant holds: queued work is dropped, the device finishes the
    /// tenant's submitted work, then memory, modules, streams, events and host registrations
    /// are released. Runs on the socket thread once the ring thread and executor have stopped.
    pub fn teardown(&self) {
        self.close(SessionState::ClosedByBroker);
        self.log_report();
        drop(self.env.sched.remove_tenant(self.info.id));
        self.completion.clear_open();
        self.host_fns.clear();
        // No remap may run on memory being freed (an exclusive operation already handed out
        // finishes first; later ones find the tables gone).
        let exclusive = self.exclusive.lock().unwrap_or_else(|p| p.into_inner());
        let Some(mut st) = self.state().take() else {
            return;
        };
        drop(exclusive);
        let dev = &self.dev;
        // A streamed copy waits on the tenant, who will not feed it any more.
        dev.link().streamed().abort_session(self.info.id);
        let charged = st.memory.charged();
        for s in st.all_streams() {
            if let Err(e) = dev.stream_synchronize(&s) {
                tracing::warn!(session = self.info.id, "teardown: {e}");
            }
        }
        dev.link().streamed().forget_session(self.info.id);
        let mut errors = 0u32;
        let mut note = |r: crate::device::DResult<()>| {
            if let Err(e) = r {
                errors += 1;
                tracing::warn!(session = self.info.id, "teardown: {e}");
            }
        };
        for freed in crate::session::granules::forget_all(self.info.id, &mut st) {
            note(crate::session::granules::free(dev, freed));
        }
        for r in st.memory.remove_ranges(|_| true) {
            match r.owner {
                // Granule-wise allocations were freed above.
                crate::memory::Owner::Alloc(a) if a.handle == 0 => {}
                crate::memory::Owner::Alloc(a) => note(dev.vmm_free(&a)),
                crate::memory::Owner::Mapped { .. } => note(dev.mem_unmap(r.base, r.len)),
                crate::memory::Owner::Global { .. }
                | crate::memory::Owner::Host { .. }
                | crate::memory::Owner::Piece { .. } => {}
            }
        }
        for slab in st.memory.slabs.drain() {
            note(dev.vmm_free(&slab));
        }
        for (_, p) in st.phys.drain() {
            note(dev.mem_release(p.raw));
        }
        for (base, size) in st.memory.take_reservations() {
            note(dev.address_free(base, size));
        }
        for (_, h) in st.host_regions.drain() {
            note(dev.host_unregister(h.reg));
        }
        for (_, m) in st.modules.drain() {
            note(dev.module_unload(m.raw));
        }
        drop(st);
        tracing::info!(
            session = self.info.id,
            tenant = %self.info.name,
            freed_bytes = charged,
            errors,
            "session resources freed"
        );
        self.leave_group();
    }

    /// Logs the scheduler's figures of the session that ends.
    fn log_report(&self) {
        if let Some(r) = self.env.sched.report(self.info.id) {
            tracing::info!(
                session = self.info.id,
                "session ended: tenant {:?}, device time {:.3} ms, kernels {}, queue delay p50 {} us p99 {} us, prediction error {}",
                self.info.name,
                r.device_ns as f64 / 1e6,
                r.kernels,
                r.queue_p50_ns / 1000,
                r.queue_p99_ns / 1000,
                r.prediction_error
                    .map_or("-".to_string(), |e| format!("{:.2}%", e * 100.0)),
            );
        }
    }
}
