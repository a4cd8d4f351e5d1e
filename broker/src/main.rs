//! The `gpushare` command: `broker`, `status`, `run`, `policy check` and `policy reload` (and
//! `worker`, which the broker starts itself: one per isolation group).

#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use gpushare_broker::policy::Policy;
use gpushare_broker::{admin, logging, paths, profile, run, Broker, BrokerConfig, DeviceChoice};
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
    /// Runs the broker (until SIGTERM or SIGINT, then drains and exits 0; SIGHUP re-reads the
    /// policy file).
    Broker {
        /// Which driver executes the work.
        #[arg(long, value_enum, default_value = "auto")]
        device: DeviceArg,
        /// Socket path [default: $GPUSHARE_SOCKET; as root /run/gpushare/broker.sock; else
        /// $XDG_RUNTIME_DIR/gpushare/broker.sock or /tmp/gpushare-$UID/broker.sock].
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Policy file (TOML: weights, priorities, quotas, isolation groups, the scheduler;
        /// docs/policy.md) [default as root: /etc/gpushare/policy.toml if it exists]. SIGHUP
        /// or `gpushare policy reload` re-read it.
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
    /// Checks or reloads a policy file.
    Policy {
        #[command(subcommand)]
        cmd: PolicyCmd,
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
    /// Runs a command alone on a private broker and writes the kernel and copy costs it
    /// measured (TOML) for `[scheduler] profiles` in a policy; exits with the command's status.
    Profile {
        /// Where to write the profile.
        #[arg(long)]
        out: PathBuf,
        /// Which driver executes the work.
        #[arg(long, value_enum, default_value = "auto")]
        device: DeviceArg,
        /// Tenant name [default: the command's file name].
        #[arg(long)]
        name: Option<String>,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true)]
        cmd: Vec<OsString>,
    },
}

#[derive(Subcommand, Debug)]
enum PolicyCmd {
    /// Parses a policy file: prints `FILE: ok` and a summary, or the error with its line and
    /// column (exit status 1).
    Check {
        /// The policy file.
        file: PathBuf,
    },
    /// Makes the running broker re-read the policy file it was started with (as SIGHUP does);
    /// prints the broker's answer, exit status 1 when it refused the file.
    Reload {
        /// Socket path (default as for `broker`).
        #[arg(long)]
        socket: Option<PathBuf>,
    },
}

fn policy_cmd(cmd: PolicyCmd) -> Result<(), String> {
    match cmd {
        PolicyCmd::Check { file } => {
            let p = Policy::load(&file).map_err(|e| e.to_string())?;
            println!("{}: ok ({})", file.display(), p.summary());
            Ok(())
        }
        PolicyCmd::Reload { socket } => {
            let socket = socket.unwrap_or_else(paths::default_socket);
            let r = admin::reload_policy(&socket, Duration::from_secs(10))
                .map_err(|e| e.to_string())?;
            if !r.applied {
                return Err(format!("policy reload refused: {}", r.message));
            }
            println!(
                "{}: reloaded ({}); {} running tenant{} updated",
                r.path,
                r.message,
                r.tenants,
                if r.tenants == 1 { "" } else { "s" }
            );
            Ok(())
        }
    }
}

/// Stops the broker on SIGTERM or SIGINT; reloads its policy on SIGHUP.
fn handle_signals(b: &Broker) -> Result<(), String> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let (stop, reload) = (b.stop_handle(), b.reload_handle());
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    std::thread::Builder::new()
        .name("gpushare-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if sig == SIGHUP {
                    tracing::info!("SIGHUP: reloading the policy");
                    // `reload` logs the outcome.
                    let _ = reload.reload();
                } else {
                    tracing::info!(signal = sig, "stop requested");
                    stop.stop();
                    break;
                }
            }
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    Ok(())
}

fn broker(
    device: DeviceArg,
    socket: PathBuf,
    policy: Option<PathBuf>,
    drain: u64,
) -> Result<(), String> {
    let policy_file = policy.or_else(|| {
        let system = std::path::Path::new(paths::SYSTEM_POLICY);
        (paths::uid() == 0 && system.is_file()).then(|| system.to_path_buf())
    });
    let policy = match &policy_file {
        Some(p) => Policy::load(p).map_err(|e| e.to_string())?,
        None => Policy::default(),
    };
    let device = device_choice(device);
    let b = Broker::start(BrokerConfig {
        device,
        socket,
        policy,
        policy_file,
        shm: ShmConfig::default(),
        drain_timeout: Duration::from_secs(drain),
    })
    .map_err(|e| e.to_string())?;
    handle_signals(&b)?;
    b.run().map_err(|e| e.to_string())
}

fn device_choice(d: DeviceArg) -> DeviceChoice {
    match d {
        DeviceArg::Cpu => DeviceChoice::Cpu,
        DeviceArg::Cuda => DeviceChoice::Cuda,
        DeviceArg::Auto => DeviceChoice::Auto,
    }
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
            socket.unwrap_or_else(paths::broker_socket),
            policy,
            drain_timeout,
        ),
        Cmd::Status { socket } => {
            let socket = socket.unwrap_or_else(paths::default_socket);
            admin::query_status(&socket, Duration::from_secs(10))
                .map(|s| print!("{}", admin::format_status(&s)))
                .map_err(|e| e.to_string())
        }
        Cmd::Policy { cmd } => policy_cmd(cmd),
        Cmd::Worker => worker(),
        Cmd::Run { name, socket, cmd } => {
            let socket = socket.unwrap_or_else(paths::default_socket);
            Err(run::run(&socket, name, &cmd).to_string())
        }
        Cmd::Profile {
            out,
            device,
            name,
            cmd,
        } => match profile::profile(device_choice(device), &out, name, &cmd) {
            Ok(0) => Ok(()),
            Ok(code) => {
                eprintln!(
                    "gpushare: profile written to {}; the command exited with {code}",
                    out.display()
                );
                return ExitCode::from(u8::try_from(code).unwrap_or(1));
            }
            Err(e) => Err(e.to_string()),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gpushare: {e}");
            ExitCode::FAILURE
        }
    }
}
