//! The metrics endpoint: Prometheus text exposition (format 0.0.4, which
//! every Prometheus-compatible scraper reads) over HTTP/1.1 on a loopback
//! address, off unless `[metrics] listen` is set.
//!
//! # How it works
//! [`MetricsServer`] is a non-blocking TCP listener on the daemon's mio
//! loop (main thread), next to the control socket. A connection may send
//! one request of at most [`MAX_REQUEST_BYTES`] and must finish within
//! [`REQUEST_TIMEOUT`] (checked by the loop's housekeeping tick); `GET
//! /metrics` (or `/`) gets the page and the connection closes, anything
//! else gets 404/405/400. At most [`MAX_CONNECTIONS`] are open at once:
//! a new one closes the connection open longest, so clients that connect
//! and hang cannot keep a scraper out.
//!
//! The page ([`render`]) is built on the main thread from the same
//! sources as `pmd-stats-show`, `coverage/show`, `dpctl/show` and
//! `upcall/show` (the PMDs answer by message), so a scrape is consistent
//! with what the CLI shows and never touches a PMD's state directly.
//!
//! Every drop reason declared in `dp_core::execute::DropReason` appears,
//! zeros included, so dashboards need no knowledge of which reasons exist.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use serde::Deserialize;

use crate::daemon::Daemon;
use crate::drivers::OpenedPort;
use dp_pmd::stats::PmdIdentity;

/// Largest request accepted (request line + headers).
pub const MAX_REQUEST_BYTES: usize = 8192;
/// A connection that has not been answered and flushed by then is closed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections open at once.
pub const MAX_CONNECTIONS: usize = 16;
/// Token of the listener; connections count up from the next one. Far
/// above the control socket's tokens, which count up from 16.
pub const LISTENER: Token = Token(1 << 40);

/// `[metrics]`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// `host:port` to serve on, e.g. `127.0.0.1:9465`; must be a loopback
    /// address. Unset: no endpoint.
    pub listen: Option<String>,
}

impl MetricsSection {
    /// The address to bind, checked (the error is the reason, for the
    /// `metrics.listen` key).
    pub fn address(&self) -> Result<Option<SocketAddr>, String> {
        let Some(text) = &self.listen else {
            return Ok(None);
        };
        let addr: SocketAddr = text
            .parse()
            .map_err(|_| format!("\"{text}\" is not an IP address and port (127.0.0.1:9465)"))?;
        if !addr.ip().is_loopback() {
            return Err(format!(
                "{addr} is not a loopback address: the metrics endpoint has no authentication"
            ));
        }
        Ok(Some(addr))
    }
}

#[derive(Debug)]
struct Connection {
    stream: TcpStream,
    since: Instant,
    request: Vec<u8>,
    /// The response, once built, and how much of it is written.
    response: Option<(Vec<u8>, usize)>,
}

/// The HTTP listener and its connections; see the module docs.
#[derive(Debug)]
pub struct MetricsServer {
    listener: TcpListener,
    address: SocketAddr,
    conns: HashMap<Token, Connection>,
    next_token: usize,
}

impl MetricsServer {
    /// Binds `section`'s address, if any.
    pub fn bind(
        section: &MetricsSection,
        registry: &Registry,
    ) -> Result<Option<MetricsServer>, String> {
        let Some(addr) = section
            .address()
            .map_err(|e| format!("metrics.listen: {e}"))?
        else {
            return Ok(None);
        };
        let mut listener =
            TcpListener::bind(addr).map_err(|e| format!("metrics.listen: {addr}: {e}"))?;
        let address = listener
            .local_addr()
            .map_err(|e| format!("metrics.listen: {addr}: {e}"))?;
        registry
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(|e| format!("metrics.listen: {addr}: {e}"))?;
        Ok(Some(MetricsServer {
            listener,
            address,
            conns: HashMap::new(),
            next_token: LISTENER.0 + 1,
        }))
    }

    /// Where it listens (the port is the kernel's choice when 0 was asked).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Whether `token` is this server's.
    pub fn owns(&self, token: Token) -> bool {
        token.0 >= LISTENER.0
    }

    /// Handles readiness of `token`; `render` builds the page when a
    /// request asks for it.
    pub fn ready(&mut self, token: Token, registry: &Registry, render: impl FnOnce() -> String) {
        if token == LISTENER {
            self.accept(registry);
            return;
        }
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        let done = match conn.response {
            Some(_) => write_out(conn),
            None => match read_request(conn) {
                Ok(None) => false,
                Ok(Some(request)) => {
                    let (status, body) = respond(&request, render);
                    conn.response = Some((http_response(status, &body), 0));
                    let _ = registry.reregister(&mut conn.stream, token, Interest::WRITABLE);
                    write_out(conn)
                }
                Err(status) => {
                    conn.response = Some((http_response(status, status), 0));
                    let _ = registry.reregister(&mut conn.stream, token, Interest::WRITABLE);
                    write_out(conn)
                }
            },
        };
        if done {
            self.close(token, registry);
        }
    }

    /// Closes connections past [`REQUEST_TIMEOUT`] (housekeeping tick).
    pub fn expire(&mut self, registry: &Registry) {
        let stale: Vec<Token> = self
            .conns
            .iter()
            .filter(|(_, c)| c.since.elapsed() > REQUEST_TIMEOUT)
            .map(|(t, _)| *t)
            .collect();
        for t in stale {
            self.close(t, registry);
        }
    }

    fn accept(&mut self, registry: &Registry) {
        loop {
            let (mut stream, _) = match self.listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::warn!("metrics: accept: {e}");
                    return;
                }
            };
            if self.conns.len() >= MAX_CONNECTIONS {
                // Full: the connection open longest goes, not the new one,
                // so clients that connect and say nothing (or trickle)
                // cannot lock a scraper out until they time out.
                if let Some(oldest) = self
                    .conns
                    .iter()
                    .min_by_key(|(_, c)| c.since)
                    .map(|(t, _)| *t)
                {
                    tracing::warn!(
                        max = MAX_CONNECTIONS,
                        "metrics: too many connections; closing the one open longest"
                    );
                    self.close(oldest, registry);
                }
            }
            let token = Token(self.next_token);
            self.next_token += 1;
            if registry
                .register(&mut stream, token, Interest::READABLE)
                .is_ok()
            {
                self.conns.insert(
                    token,
                    Connection {
                        stream,
                        since: Instant::now(),
                        request: Vec::new(),
                        response: None,
                    },
                );
            }
        }
    }

    fn close(&mut self, token: Token, registry: &Registry) {
        if let Some(mut c) = self.conns.remove(&token) {
            let _ = registry.deregister(&mut c.stream);
        }
    }
}

/// Reads what is available: `Ok(Some(head))` once the header is complete,
/// `Err(status)` for a request to refuse.
fn read_request(conn: &mut Connection) -> Result<Option<String>, &'static str> {
    let mut buf = [0u8; 2048];
    loop {
        match conn.stream.read(&mut buf) {
            Ok(0) => return Err("400 Bad Request"),
            Ok(n) => {
                conn.request.extend_from_slice(&buf[..n]);
                if let Some(end) = find(&conn.request, b"\r\n\r\n") {
                    return Ok(Some(String::from_utf8_lossy(&conn.request[..end]).into()));
                }
                if conn.request.len() > MAX_REQUEST_BYTES {
                    return Err("431 Request Header Fields Too Large");
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return Err("400 Bad Request"),
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Status line and body for a request head.
fn respond(head: &str, render: impl FnOnce() -> String) -> (&'static str, String) {
    let mut parts = head.lines().next().unwrap_or("").split(' ');
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if !parts.next().is_some_and(|v| v.starts_with("HTTP/1.")) {
        return ("400 Bad Request", "400 Bad Request".into());
    }
    let path = path.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/metrics" | "/") => ("200 OK", render()),
        ("GET", _) => ("404 Not Found", "404 Not Found: try /metrics".into()),
        _ => ("405 Method Not Allowed", "405 Method Not Allowed".into()),
    }
}

fn http_response(status: &str, body: &str) -> Vec<u8> {
    let content_type = if status.starts_with("200") {
        "text/plain; version=0.0.4; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// Writes what the socket takes; true when done (or failed).
fn write_out(conn: &mut Connection) -> bool {
    let Some((bytes, written)) = &mut conn.response else {
        return true;
    };
    while *written < bytes.len() {
        match conn.stream.write(&bytes[*written..]) {
            Ok(0) => return true,
            Ok(n) => *written += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return true,
        }
    }
    true
}

/// The exposition text being built: one family at a time.
struct Page {
    out: String,
}

impl Page {
    /// Starts a family. Counters end in `_total`, as both Prometheus and
    /// OpenMetrics parsers expect of their sample names.
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        debug_assert!(kind != "counter" || name.ends_with("_total"), "{name}");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn pmd_label(who: PmdIdentity) -> String {
    match who {
        PmdIdentity::Pmd { core_id, .. } => core_id.to_string(),
        PmdIdentity::Main => "main".into(),
    }
}

/// Buffer pools of a port: name, capacity (when the driver has a fixed
/// one) and buffers out.
fn port_pool(opened: &OpenedPort) -> (String, Option<usize>, usize) {
    let pool = match opened {
        OpenedPort::Dummy(d) => Some(d.pool().stats()),
        OpenedPort::Pcap(p) => Some(p.pool().stats()),
        OpenedPort::Tap(t) => Some(t.pool().stats()),
        OpenedPort::System(s) => Some(s.pool().stats()),
        _ => None,
    };
    match pool {
        Some(s) => (s.name, Some(s.capacity), s.in_use),
        None => {
            let (name, in_use) = opened.buffers_in_use();
            (name, None, in_use)
        }
    }
}

/// The whole page, from the daemon's current state.
pub fn render(d: &Daemon) -> String {
    let mut p = Page { out: String::new() };
    let reports = d.datapath.pmd_stats().unwrap_or_else(|e| {
        tracing::warn!("metrics: {e}");
        Vec::new()
    });
    let observed = d.datapath.observe_snapshots().unwrap_or_default();

    type Get = fn(&dp_pmd::stats::PmdStats) -> u64;
    let pmd_counters: [(&str, &str, Get); 7] = [
        (
            "oxvs_pmd_packets_received_total",
            "Packets received from rx queues.",
            |s| s.packets_received,
        ),
        (
            "oxvs_pmd_recirculations_total",
            "Extra datapath passes (recirculation, tunnel pop).",
            |s| s.recirculations,
        ),
        (
            "oxvs_pmd_upcall_flow_limit_hits_total",
            "Upcalls not installed because the flow limit was reached.",
            |s| s.upcall_flow_limit_hit,
        ),
        (
            "oxvs_pmd_upcall_budget_exceeded_total",
            "Misses dropped because the iteration's upcall budget was spent.",
            |s| s.upcall_budget_exceeded,
        ),
        (
            "oxvs_pmd_tx_packets_total",
            "Packets handed to transmit queues.",
            |s| s.tx_packets,
        ),
        (
            "oxvs_pmd_tx_batches_total",
            "Transmit calls that carried them.",
            |s| s.tx_batches,
        ),
        (
            "oxvs_pmd_subtable_lookups_total",
            "Megaflow subtables searched for megaflow hits.",
            |s| s.lookup.subtable_lookups,
        ),
    ];
    for (name, help, get) in pmd_counters {
        p.family(name, "counter", help);
        for r in &reports {
            p.sample(name, &[("pmd", &pmd_label(r.identity))], get(&r.stats));
        }
    }

    let name = "oxvs_pmd_lookups_total";
    p.family(
        name,
        "counter",
        "Packets by the cache level that classified them (miss: none did).",
    );
    for r in &reports {
        let l = &r.stats.lookup;
        let pmd = pmd_label(r.identity);
        for (level, v) in [
            ("simple_match", l.simple_match_hits),
            ("emc", l.emc_hits),
            ("smc", l.smc_hits),
            ("megaflow", l.megaflow_hits),
            ("miss", l.misses),
        ] {
            p.sample(name, &[("pmd", &pmd), ("level", level)], v);
        }
    }

    let name = "oxvs_pmd_upcalls_total";
    p.family(name, "counter", "Upcalls by result.");
    for r in &reports {
        let pmd = pmd_label(r.identity);
        p.sample(
            name,
            &[("pmd", &pmd), ("result", "ok")],
            r.stats.miss_upcall_ok,
        );
        p.sample(
            name,
            &[("pmd", &pmd), ("result", "failed")],
            r.stats.miss_upcall_failed,
        );
    }

    let name = "oxvs_pmd_cycles_total";
    p.family(
        name,
        "counter",
        "TSC cycles in iterations that received packets (busy) or none (idle).",
    );
    for r in &reports {
        let pmd = pmd_label(r.identity);
        p.sample(
            name,
            &[("pmd", &pmd), ("state", "busy")],
            r.stats.busy_cycles,
        );
        p.sample(
            name,
            &[("pmd", &pmd), ("state", "idle")],
            r.stats.idle_cycles,
        );
    }

    let name = "oxvs_pmd_iterations_total";
    p.family(name, "counter", "PMD loop iterations.");
    for (who, o) in &observed {
        p.sample(name, &[("pmd", &pmd_label(*who))], o.perf.iterations);
    }
    let name = "oxvs_pmd_suspicious_iterations_total";
    p.family(
        name,
        "counter",
        "Iterations longer than the pmd-perf-log-set threshold (while logging).",
    );
    for (who, o) in &observed {
        p.sample(name, &[("pmd", &pmd_label(*who))], o.perf.suspicious_total);
    }

    // The perf history as Prometheus histograms: bucket b of a PMD
    // histogram holds [2^(b-1), 2^b), so its cumulative bound is 2^b - 1;
    // the last bucket is open-ended.
    type HistGet = fn(&dp_pmd::perf::PerfSnapshot) -> &dp_pmd::perf::Histogram;
    let histograms: [(&str, &str, HistGet); 2] = [
        (
            "oxvs_pmd_iteration_cycles",
            "TSC cycles per PMD loop iteration.",
            |p| &p.cycles_per_iteration,
        ),
        (
            "oxvs_pmd_iteration_packets",
            "Packets received per PMD loop iteration.",
            |p| &p.packets_per_iteration,
        ),
    ];
    for (name, help, get) in histograms {
        p.family(name, "histogram", help);
        let bucket = format!("{name}_bucket");
        for (who, o) in &observed {
            let pmd = pmd_label(*who);
            let h = get(&o.perf);
            let mut cumulative = 0u64;
            for (b, count) in h.buckets.iter().enumerate() {
                cumulative += count;
                let le = if b + 1 == h.buckets.len() {
                    "+Inf".to_string()
                } else {
                    ((1u64 << b) - 1).to_string()
                };
                p.sample(&bucket, &[("pmd", &pmd), ("le", &le)], cumulative);
            }
            p.sample(&format!("{name}_sum"), &[("pmd", &pmd)], h.sum);
            p.sample(&format!("{name}_count"), &[("pmd", &pmd)], h.samples);
        }
    }

    let name = "oxvs_drops_total";
    p.family(
        name,
        "counter",
        "Packets the datapath dropped, by reason (every declared reason).",
    );
    for r in &reports {
        let pmd = pmd_label(r.identity);
        for (reason, n) in &r.drops {
            let reason = reason.strip_prefix("datapath_drop_").unwrap_or(reason);
            p.sample(name, &[("pmd", &pmd), ("reason", reason)], n);
        }
    }

    let name = "oxvs_flows";
    p.family(name, "gauge", "Megaflows installed, per PMD thread.");
    for (who, o) in &observed {
        p.sample(name, &[("pmd", &pmd_label(*who))], o.flows);
    }
    p.family(
        "oxvs_flow_limit",
        "gauge",
        "The flow limit in force (adapted by the revalidator).",
    );
    p.sample("oxvs_flow_limit", &[], d.datapath.flow_limit());

    type PortGet = fn(&dp_core::netdev::NetdevStats) -> u64;
    let port_counters: [(&str, &str, PortGet); 8] = [
        ("oxvs_port_rx_packets_total", "Packets received.", |s| {
            s.rx_packets
        }),
        ("oxvs_port_rx_bytes_total", "Bytes received.", |s| {
            s.rx_bytes
        }),
        (
            "oxvs_port_rx_dropped_total",
            "Packets the driver dropped on receive.",
            |s| s.rx_dropped,
        ),
        ("oxvs_port_rx_errors_total", "Receive errors.", |s| {
            s.rx_errors
        }),
        ("oxvs_port_tx_packets_total", "Packets sent.", |s| {
            s.tx_packets
        }),
        ("oxvs_port_tx_bytes_total", "Bytes sent.", |s| s.tx_bytes),
        (
            "oxvs_port_tx_dropped_total",
            "Packets dropped on transmit.",
            |s| s.tx_dropped,
        ),
        ("oxvs_port_tx_errors_total", "Transmit errors.", |s| {
            s.tx_errors
        }),
    ];
    let ports: Vec<(&str, &'static str, dp_core::netdev::NetdevStats)> = d
        .ports
        .iter()
        .map(|(name, st)| {
            let netdev = st.opened.netdev();
            (name.as_str(), netdev.type_name(), netdev.stats())
        })
        .collect();
    for (name, help, get) in port_counters {
        p.family(name, "counter", help);
        for (port, kind, s) in &ports {
            p.sample(name, &[("port", port), ("type", kind)], get(s));
        }
    }

    // Driver-specific counters (AF_XDP socket statistics, checksum
    // repairs, ...), labelled by the driver's own name for each.
    let name = "oxvs_port_driver_events_total";
    p.family(
        name,
        "counter",
        "Driver-specific port counters (dpctl/show -s lists them).",
    );
    for (port, st) in &d.ports {
        let netdev = st.opened.netdev();
        for (stat, value) in netdev.custom_stats() {
            p.sample(
                name,
                &[("port", port), ("type", netdev.type_name()), ("stat", stat)],
                value,
            );
        }
    }

    let pools: Vec<(String, Option<usize>, usize)> =
        d.ports.values().map(|st| port_pool(&st.opened)).collect();
    p.family(
        "oxvs_pool_buffers_in_use",
        "gauge",
        "Packet buffers out of their pool (or frames lent by the driver).",
    );
    for (pool, _, in_use) in &pools {
        p.sample("oxvs_pool_buffers_in_use", &[("pool", pool)], in_use);
    }
    p.family(
        "oxvs_pool_buffers_available",
        "gauge",
        "Packet buffers a pool can still hand out (pools with a fixed capacity).",
    );
    for (pool, capacity, in_use) in &pools {
        if let Some(c) = capacity {
            p.sample(
                "oxvs_pool_buffers_available",
                &[("pool", pool)],
                c.saturating_sub(*in_use),
            );
        }
    }

    if let Some(r) = d.datapath.revalidator() {
        let s = r.stats();
        p.family(
            "oxvs_revalidator_dump_duration_seconds",
            "gauge",
            "How long the last revalidator flow dump took.",
        );
        p.sample(
            "oxvs_revalidator_dump_duration_seconds",
            &[],
            s.last_dump_duration_ms.load(Relaxed) as f64 / 1000.0,
        );
        p.family(
            "oxvs_revalidator_rounds_total",
            "counter",
            "Revalidation rounds.",
        );
        p.sample("oxvs_revalidator_rounds_total", &[], s.rounds.load(Relaxed));
        let name = "oxvs_revalidator_flows_deleted_total";
        p.family(
            name,
            "counter",
            "Megaflows the revalidator deleted, by why.",
        );
        for (why, v) in [
            ("idle", &s.flows_deleted_idle),
            ("limit", &s.flows_deleted_limit),
            ("retranslation", &s.flows_deleted_retranslation),
        ] {
            p.sample(name, &[("reason", why)], v.load(Relaxed));
        }
    }
    crate::capture::render_metrics(d, &mut |name, kind, help, samples| {
        p.family(name, kind, help);
        for (labels, v) in samples {
            let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
            p.sample(name, &labels, v);
        }
    });
    p.out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_addresses() {
        let s = |t: &str| MetricsSection {
            listen: Some(t.into()),
        };
        assert!(MetricsSection::default().address().unwrap().is_none());
        assert!(s("127.0.0.1:9465").address().unwrap().is_some());
        assert!(s("[::1]:9465").address().unwrap().is_some());
        assert!(
            s("0.0.0.0:9465")
                .address()
                .unwrap_err()
                .contains("loopback")
        );
        assert!(s("localhost").address().unwrap_err().contains("not an IP"));
    }

    #[test]
    fn requests_are_answered_by_method_and_path() {
        let page = || "x 1\n".to_string();
        assert_eq!(respond("GET /metrics HTTP/1.1", page).0, "200 OK");
        assert_eq!(respond("GET /?a=b HTTP/1.0", page).0, "200 OK");
        assert_eq!(respond("GET /x HTTP/1.1", page).0, "404 Not Found");
        assert_eq!(
            respond("POST /metrics HTTP/1.1", page).0,
            "405 Method Not Allowed"
        );
        assert_eq!(respond("garbage", page).0, "400 Bad Request");
    }

    #[test]
    fn label_values_are_escaped() {
        let mut p = Page { out: String::new() };
        p.sample("m", &[("port", "a\"b\\c\nd")], 1);
        assert_eq!(p.out, "m{port=\"a\\\"b\\\\c\\nd\"} 1\n");
    }
}
