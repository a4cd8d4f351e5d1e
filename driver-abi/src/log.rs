//! Logging: off unless `GPUSHARE_LOG` is set (e.g. `GPUSHARE_LOG=debug`), always to stderr, never stdout.
//! The CPU device and the shim live inside other people's processes, so it installs a subscriber only when asked
//! and only if the process has none.

use std::sync::Once;

/// Installs the stderr subscriber once if `GPUSHARE_LOG` is set. Cheap after the first call.
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let Ok(spec) = std::env::var("GPUSHARE_LOG") else {
            return;
        };
        let filter =
            tracing_subscriber::EnvFilter::try_new(if spec.is_empty() { "info" } else { &spec })
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        // Fails harmlessly if the host process already installed a global subscriber.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_target(true)
            .try_init();
    });
}
