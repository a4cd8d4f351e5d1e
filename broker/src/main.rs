//! The `gpushare` command: `broker`, `status` and `run` (and `worker`, which the broker starts
//! itself: one per isolation group).

#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use gpushare_broker::policy::Policy;
use gpushare_broker::{admin, logging, paths, run, Broker, BrokerConfig, DeviceChoice};
use gpushare_client::ShmConfig;

/// gpushare: several CUDA processes sharing one GPU through a broker.
#[derive(Parser, Debug)]
#[command(name = "gpushare", version)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum DeviceArg {
    /// The CPU device (libgpushare_cpu.so next to this executable, or $GPUSHARE_CPU_LIB).
    Cpu,
    /// The real CUDA driver (libcuda.so.1).
    Cuda,
    /// The real driver if one loads and has a device, else the CPU device.
    Auto,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Runs the broker (until SIGTERM or SIGINT, then drains and exits 0).
    Broker {
        /// Which driver executes the work.
        #[arg(long, value_enum, default_value = "auto")]
        device: DeviceArg,
        /// Socket path [default: $GPUSHARE_SOCKET, $XDG_RUNTIME_DIR/gpushare/broker.sock or
        /// /tmp/gpushare-$UID/broker.sock].
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Policy file (TOML: per-tenant weights and memory quotas).
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Seconds shutdown waits for tenants' queued work.
        #[arg(long, default_value_t = 10)]
        drain_timeout: u64,
    },
    /// Shows the broker's tenants, their memory and queues, and the device.
    Status {
        /// Socket path (default as for `broker`).
        #[arg(long)]
        socket: Option<PathBuf>,
    },
    /// A worker process (started by the broker, one per isolation group; its standard input is
    /// the link to the broker). Never started by hand.
    #[command(hide = true)]
    Worker,
    /// Runs a command as a tenant of the broker (through the shim).
    Run {
        /// Tenant name (policy lookup, logs) [default: the command's file name].
        #[arg(long)]
        name: Option<String>,
        /// Socket path (default as for `broker`).
        #[arg(long)]
        socket: Option<PathBuf>,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true)]
        cmd: Vec<OsString>,
    },
}

fn broker(
    device: DeviceArg,
    socket: PathBuf,
    policy: Option<PathBuf>,
    drain: u64,
) -> Result<(), String> {
    let policy = match policy {
        Some(p) => Policy::load(&p).map_err(|e| e.to_string())?,
        None => Policy::default(),
    };
    let device = match device {
        DeviceArg::Cpu => DeviceChoice::Cpu,
        DeviceArg::Cuda => DeviceChoice::Cuda,
        DeviceArg::Auto => DeviceChoice::Auto,
    };
    let b = Broker::start(BrokerConfig {
        device,
        socket,
        policy,
        shm: ShmConfig::default(),
        drain_timeout: Duration::from_secs(drain),
    })
    .map_err(|e| e.to_string())?;
    let stop = b.stop_handle();
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])
    .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    std::thread::Builder::new()
        .name("gpushare-signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                tracing::info!(signal = sig, "stop requested");
                stop.stop();
            }
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    b.run().map_err(|e| e.to_string())
}

fn worker() -> Result<(), String> {
    use std::os::fd::AsFd;
    let link = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| format!("worker: no link on standard input: {e}"))?;
    gpushare_broker::worker::run(std::os::unix::net::UnixStream::from(link))
        .map_err(|e| format!("worker: {e}"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = logging::init() {
        eprintln!("gpushare: {e}");
        return ExitCode::from(2);
    }
    let result = match cli.cmd {
        Cmd::Broker {
            device,
            socket,
            policy,
            drain_timeout,
        } => broker(
            device,
            socket.unwrap_or_else(paths::default_socket),
            policy,
            drain_timeout,
        ),
        Cmd::Status { socket } => {
            let socket = socket.unwrap_or_else(paths::default_socket);
            admin::query_status(&socket, Duration::from_secs(10))
                .map(|s| print!("{}", admin::format_status(&s)))
                .map_err(|e| e.to_string())
        }
        Cmd::Worker => worker(),
        Cmd::Run { name, socket, cmd } => {
            let socket = socket.unwrap_or_else(paths::default_socket);
            Err(run::run(&socket, name, &cmd).to_string())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gpushare: {e}");
            ExitCode::FAILURE
        }
    }
}
