//! Admin queries: `gpushare status` connects as an admin session, asks for `Status`, and prints
//! a table; `gpushare policy reload` asks for `PolicyReload` ([`crate::reload`]).

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use gpushare_client::proto::{Hello, PolicyReloadReport, Reply, Request, StatusReport};
use gpushare_client::{Client, ClientError, ClientOptions, WaitPolicy};

/// Errors of admin queries.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No broker answers at the socket.
    #[error("cannot reach a broker at {path}: {source} (start one with `gpushare broker`)")]
    Connect {
        /// Socket path.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The session failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The broker answered with an error code or an unexpected reply.
    #[error("the broker answered {request} with {reply}")]
    Unexpected {
        /// The request.
        request: &'static str,
        /// What came back.
        reply: String,
    },
}

/// Sends `request` to the broker at `socket` in an admin session named `name` (every wait
/// bounded by `timeout`); its successful reply.
fn admin_call(
    socket: &Path,
    timeout: Duration,
    name: &str,
    request: Request,
) -> Result<Reply, AdminError> {
    let what = request.name();
    let connect = |source| AdminError::Connect {
        path: socket.display().to_string(),
        source,
    };
    let stream = UnixStream::connect(socket).map_err(connect)?;
    stream.set_read_timeout(Some(timeout)).map_err(connect)?;
    stream.set_write_timeout(Some(timeout)).map_err(connect)?;
    gpushare_client::client::check_broker(&stream)?;
    let options = ClientOptions {
        wait: WaitPolicy::default().timeout(timeout),
        ..ClientOptions::default()
    };
    let client = Client::from_stream(stream, &Hello::admin(name), options)?;
    let reply = client.call(request)?;
    let _ = client.goodbye("done");
    reply.into_result().map_err(|code| AdminError::Unexpected {
        request: what,
        reply: format!(
            "{} ({code})",
            gpushare_client::code::name(code).unwrap_or("unknown CUresult")
        ),
    })
}

/// Asks the broker at `socket` for its status (every wait bounded by `timeout`).
pub fn query_status(socket: &Path, timeout: Duration) -> Result<StatusReport, AdminError> {
    match admin_call(socket, timeout, "gpushare-status", Request::Status)? {
        Reply::Status(s) => Ok(s),
        other => Err(AdminError::Unexpected {
            request: "Status",
            reply: format!("{other:?}"),
        }),
    }
}

/// Asks the broker at `socket` to re-read its policy file (every wait bounded by `timeout`).
/// A refused file is an `Ok` report with `applied: false` and the error in `message`.
pub fn reload_policy(socket: &Path, timeout: Duration) -> Result<PolicyReloadReport, AdminError> {
    match admin_call(socket, timeout, "gpushare-policy", Request::PolicyReload)? {
        Reply::PolicyReload(r) => Ok(r),
        other => Err(AdminError::Unexpected {
            request: "PolicyReload",
            reply: format!("{other:?}"),
        }),
    }
}

/// Bytes as a short human-readable figure (binary units).
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `cell` as it may be printed: control characters (which could move the cursor, clear the
/// screen or forge a line) escaped. Names are checked at the handshake; this is the second line.
fn printable(cell: &str) -> String {
    if cell.chars().any(char::is_control) {
        cell.escape_debug().to_string()
    } else {
        cell.to_string()
    }
}

/// Rows under a header, columns padded to their widest cell (control characters escaped).
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| printable(c)).collect())
        .collect();
    let rows = &rows;
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
            + "\n"
    };
    let mut out = line(header.to_vec());
    for r in rows {
        out += &line(r.iter().map(String::as_str).collect());
    }
    out
}

/// A duration in ns as `850ns`, `12.3us`, `4.5ms` or `2.1s`.
fn human_ns(ns: u64) -> String {
    let x = ns as f64;
    match ns {
        0..1_000 => format!("{ns}ns"),
        1_000..1_000_000 => format!("{:.1}us", x / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1}ms", x / 1e6),
        _ => format!("{:.1}s", x / 1e9),
    }
}

fn tenant_rows(s: &StatusReport) -> Vec<Vec<String>> {
    s.tenants
        .iter()
        .map(|t| {
            vec![
                t.session_id.to_string(),
                t.name.clone(),
                t.pid.to_string(),
                t.uid.to_string(),
                t.group.clone(),
                human_bytes(t.memory_bytes),
                human_bytes(t.shared_bytes),
                human_bytes(t.skipped_upload_bytes),
                if t.memory_quota == 0 {
                    "-".to_string()
                } else {
                    human_bytes(t.memory_quota)
                },
                t.streams.to_string(),
                t.queued_ops.to_string(),
                t.submitted_ops.to_string(),
                t.completed_ops.to_string(),
                t.weight.to_string(),
                t.priority.clone(),
                human_ns(t.gpu_time_ns),
                format!("{:.1}%", f64::from(t.share_ppm) / 1e4),
                format!("{}/{}", human_ns(t.queue_p50_ns), human_ns(t.queue_p99_ns)),
                t.kernels.to_string(),
                t.prediction_error_ppm
                    .map_or("-".into(), |e| format!("{:.1}%", f64::from(e) / 1e4)),
            ]
        })
        .collect()
}

fn worker_rows(s: &StatusReport) -> Vec<Vec<String>> {
    s.workers
        .iter()
        .map(|w| {
            vec![
                w.group.clone(),
                w.pid.to_string(),
                w.state.clone(),
                w.tenants.to_string(),
                human_bytes(w.memory_bytes),
                w.faults.to_string(),
                w.restarts.to_string(),
                format!("{}/{}/{}", w.streamed[0], w.streamed[1], w.streamed[2]),
                if w.last_fault.is_empty() {
                    "-".to_string()
                } else {
                    w.last_fault.clone()
                },
            ]
        })
        .collect()
}

/// The status as a human-readable report: the device line(s), one row per tenant, one row per
/// worker.
pub fn format_status(s: &StatusReport) -> String {
    let mut out = format!(
        "gpushare broker {} — up {:.1} s\n",
        s.broker_version,
        s.uptime_ms as f64 / 1000.0
    );
    for d in &s.devices {
        out += &format!(
            "device {}: {} — {} used of {} ({} saved by deduplication), busy {:.1} % (10 s)\n",
            d.ordinal,
            d.name,
            human_bytes(d.used_mem),
            human_bytes(d.total_mem),
            human_bytes(d.saved_mem),
            f64::from(d.busy_permille) / 10.0
        );
    }
    if s.tenants.is_empty() {
        out += "no tenants\n";
    } else {
        let header = [
            "SESSION",
            "NAME",
            "PID",
            "UID",
            "GROUP",
            "MEMORY",
            "SHARED",
            "SKIPPED",
            "QUOTA",
            "STREAMS",
            "QUEUED",
            "SUBMITTED",
            "DONE",
            "WEIGHT",
            "PRIORITY",
            "DEVICE",
            "SHARE",
            "QDELAY p50/p99",
            "KERNELS",
            "PRED.ERR",
        ];
        out += &table(&header, &tenant_rows(s));
    }
    if !s.workers.is_empty() {
        let header = [
            "GROUP",
            "WORKER",
            "STATE",
            "TENANTS",
            "MEMORY",
            "FAULTS",
            "RESTARTS",
            "STREAMED ok/declined/aborted",
            "LAST FAULT",
        ];
        out += &table(&header, &worker_rows(s));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpushare_client::proto::{DeviceStatus, TenantStatus};

    #[test]
    fn status_table() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
        let mut s = StatusReport {
            broker_version: "0.1.0".into(),
            uptime_ms: 1500,
            devices: vec![DeviceStatus {
                ordinal: 0,
                name: "GPU".into(),
                total_mem: 8 << 30,
                used_mem: 1 << 20,
                saved_mem: 0,
                dedup_faults: 0,
                busy_permille: 0,
            }],
            tenants: vec![],
            workers: vec![],
        };
        assert!(format_status(&s).contains("no tenants"));
        s.tenants.push(TenantStatus {
            session_id: 7,
            name: "llm".into(),
            pid: 42,
            memory_bytes: 1 << 20,
            weight: 3,
            priority: "high".into(),
            gpu_time_ns: 1_500_000,
            share_ppm: 250_000,
            queue_p50_ns: 12_000,
            queue_p99_ns: 2_000_000,
            kernels: 9,
            prediction_error_ppm: Some(42_000),
            ..Default::default()
        });
        let text = format_status(&s);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].contains("1.0 MiB used of 8.0 GiB"), "{text}");
        assert!(lines[2].contains("WEIGHT  PRIORITY  DEVICE"), "{text}");
        assert!(lines[2].ends_with("KERNELS  PRED.ERR"), "{text}");
        assert!(
            lines[3].contains("3       high      1.5ms   25.0%"),
            "{text}"
        );
        assert!(
            lines[3].ends_with("12.0us/2.0ms    9        4.2%"),
            "{text}"
        );
        assert_eq!(human_ns(2_100_000_000), "2.1s");
        assert!(lines[2].starts_with("SESSION  NAME"), "{text}");
        assert!(lines[3].starts_with("7        llm "), "{text}");
        s.tenants[0].name = "x\n\u{1b}[2Jforged".into();
        let text = format_status(&s);
        assert_eq!(text.lines().count(), lines.len(), "no extra line: {text}");
        assert!(text.contains("x\\n\\u{1b}[2Jforged"), "{text}");
        s.workers.push(gpushare_client::proto::WorkerStatus {
            group: "uid:0".into(),
            pid: 99,
            state: "running".into(),
            tenants: 1,
            ..Default::default()
        });
        let text = format_status(&s);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[4].starts_with("GROUP  WORKER"), "{text}");
        assert!(lines[5].starts_with("uid:0  99      running"), "{text}");
    }
}
