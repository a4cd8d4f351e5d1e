//! The driver clock: nanoseconds since the driver was initialised. The timing model, pacing and
//! event timestamps all read it.

use std::time::Instant;

/// Nanosecond clock from a fixed origin (copies share the origin).
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    epoch: Instant,
}

impl Clock {
    /// A clock whose origin is now.
    pub fn start() -> Self {
        Clock {
            epoch: Instant::now(),
        }
    }

    /// Nanoseconds since the origin.
    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }
}
