//! Logging: `tracing` to standard error, filtered by `GPUSHARE_LOG` (an `EnvFilter` directive
//! such as `info`, `debug` or `gpushare_broker=debug`; default `info`).

/// Environment variable holding the log filter.
pub const LOG_ENV: &str = "GPUSHARE_LOG";

/// Errors of logging set-up.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The filter does not parse.
    #[error("invalid {LOG_ENV} filter: {0}")]
    Filter(String),
}

/// Installs the global subscriber (once; later calls do nothing).
pub fn init() -> Result<(), LogError> {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var(LOG_ENV) {
        Ok(s) if !s.is_empty() => {
            EnvFilter::try_new(&s).map_err(|e| LogError::Filter(e.to_string()))?
        }
        _ => EnvFilter::new("info"),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    Ok(())
}
