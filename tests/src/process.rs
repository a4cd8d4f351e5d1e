//! Background processes for the end-to-end tests: each in its own process group, its output
//! collected while it runs (so a test can wait for a line), every wait bounded, killed with its
//! group on timeout or drop.

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::RunOutput;

/// Shell-like rendering of a command for messages.
pub fn describe(cmd: &Command) -> String {
    let envs: String = cmd
        .get_envs()
        .filter_map(|(k, v)| v.map(|v| format!("{}={} ", k.to_string_lossy(), v.to_string_lossy())))
        .collect();
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    format!(
        "{envs}{} {}",
        cmd.get_program().to_string_lossy(),
        args.join(" ")
    )
}

pub(crate) fn kill_group(pid: u32, sig: i32) {
    // SAFETY: kill(2) with a negative pid signals the process group led by our child (spawned with
    // process_group(0)); it touches no memory of ours.
    unsafe {
        libc::kill(-(pid as libc::pid_t), sig);
    }
}

type Sink = Arc<Mutex<Vec<u8>>>;

fn drain_into<R: Read + Send + 'static>(
    r: Option<R>,
    sink: Sink,
) -> Option<thread::JoinHandle<()>> {
    let mut r = r?;
    Some(thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => sink
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&buf[..n]),
            }
        }
    }))
}

/// A background process in its own process group, whose output is collected while it runs;
/// killed (with its group) when dropped.
pub struct Proc {
    child: Child,
    command: String,
    start: Instant,
    stdin: Option<ChildStdin>,
    stdout: Sink,
    stderr: Sink,
    readers: Vec<thread::JoinHandle<()>>,
    done: bool,
}

impl Proc {
    /// Spawns `cmd` with piped standard streams in a new process group.
    pub fn spawn(mut cmd: Command) -> Proc {
        let command = describe(&cmd);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let start = Instant::now();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{command}`: {e}"));
        let (stdout, stderr): (Sink, Sink) = Default::default();
        let readers = [
            drain_into(child.stdout.take(), Arc::clone(&stdout)),
            drain_into(child.stderr.take(), Arc::clone(&stderr)),
        ]
        .into_iter()
        .flatten()
        .collect();
        Proc {
            stdin: child.stdin.take(),
            child,
            command,
            start,
            stdout,
            stderr,
            readers,
            done: false,
        }
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The command line, for messages.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// Standard output so far.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap_or_else(|e| e.into_inner())).into()
    }

    /// Standard error so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap_or_else(|e| e.into_inner())).into()
    }

    /// True while the process has not exited.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits (bounded) for a complete stdout line satisfying `pred`; returns it. Fails early when
    /// the process exits without printing it.
    pub fn wait_line(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Result<String, String> {
        let start = Instant::now();
        loop {
            let out = self.stdout();
            if let Some(line) = out
                .split_inclusive('\n')
                .filter(|l| l.ends_with('\n'))
                .map(str::trim_end)
                .find(|l| pred(l))
            {
                return Ok(line.to_string());
            }
            if !self.running() {
                thread::sleep(Duration::from_millis(50)); // let the readers catch up
                if let Some(line) = self.stdout().lines().find(|l| pred(l)) {
                    return Ok(line.to_string());
                }
                return Err(format!(
                    "`{}` exited before printing the expected line\n--- stdout ---\n{}\n--- stderr ---\n{}",
                    self.command,
                    self.stdout(),
                    self.stderr()
                ));
            }
            if start.elapsed() > timeout {
                return Err(format!(
                    "`{}` printed no expected line within {timeout:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                    self.command,
                    self.stdout(),
                    self.stderr()
                ));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Writes `text` to the process's standard input.
    pub fn write_stdin(&mut self, text: &str) {
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = stdin.write_all(text.as_bytes());
            let _ = stdin.flush();
        }
    }

    /// Sends `sig` to the process (not its group).
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid; it touches no memory of ours.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, sig);
        }
    }

    /// Waits (bounded) for the process to exit; on timeout kills its group. The returned
    /// `elapsed` is measured from the spawn.
    pub fn wait(mut self, timeout: Duration) -> RunOutput {
        let start = Instant::now();
        let mut timed_out = false;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(st)) => break st,
                Ok(None) if start.elapsed() >= timeout => {
                    timed_out = true;
                    kill_group(self.child.id(), libc::SIGKILL);
                    break self.child.wait().expect("wait");
                }
                Ok(None) => thread::sleep(Duration::from_millis(5)),
                Err(e) => panic!("wait for `{}`: {e}", self.command),
            }
        };
        let elapsed = self.start.elapsed();
        self.done = true;
        // Leftover members of the group may hold the pipes open.
        kill_group(self.child.id(), libc::SIGKILL);
        self.stdin = None;
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        RunOutput {
            command: self.command.clone(),
            code: status.code(),
            signal: status.signal(),
            timed_out,
            elapsed,
            stdout: self.stdout(),
            stderr: self.stderr(),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if !self.done {
            kill_group(self.child.id(), libc::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// Runs `cmd` to completion (bounded by `timeout`, process group killed on timeout).
pub fn run_command(cmd: Command, timeout: Duration) -> RunOutput {
    let mut p = Proc::spawn(cmd);
    p.stdin = None; // standard input at EOF, as for a non-interactive run
    p.wait(timeout)
}
