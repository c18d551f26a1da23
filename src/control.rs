//! The control socket: OVS's unixctl protocol, so the stock `ovs-appctl
//! -t SOCKET` and `oxvsctl` both work.
//!
//! # Protocol
//! JSON-RPC 1.0 over a Unix stream socket. A client writes one request
//! object, `{"id": N, "method": "dpctl/show", "params": ["arg", ...]}`,
//! with no framing after it: a message ends where its JSON value ends, so
//! the server parses values out of the byte stream rather than reading
//! lines. The reply is `{"id": N, "result": "<text>", "error": null}` or
//! `{"id": N, "result": null, "error": "<text>"}`. A connection may carry
//! several requests.
//!
//! # Robustness
//! Every failure stays inside its connection: garbage bytes, a value that
//! is not a request, a request over [`MAX_REQUEST_BYTES`], or a client that
//! disappears mid-request get an error reply or a closed connection, and
//! the daemon keeps forwarding. No client can make the main thread's work
//! grow faster than the bytes it sends, or hold memory it does not read:
//! - a [`Framer`] scans each received byte once and the JSON parser runs
//!   only when a top-level value has closed, so a request trickled one
//!   byte at a time costs linear, not quadratic, time;
//! - while more than [`MAX_PENDING_REPLY_BYTES`] of replies wait for a
//!   client that does not read them, its further requests are neither read
//!   nor run;
//! - at most [`MAX_CONNECTIONS`] connections are kept: a new client evicts
//!   the one idle longest, so clients that connect and hang cannot lock
//!   the others out.
//!
//! # Security
//! The socket directory is created 0700 (an existing one that others may
//! write to is warned about: they could replace the socket) and the socket
//! is 0600, owned by the daemon's user. The socket is bound inside that
//! private directory before its mode is narrowed, so the moment it has the
//! umask's mode is not reachable by others.
//!
//! # Threads
//! The server runs on the daemon's main thread inside its mio loop;
//! commands run there too, between polls, with `&mut Daemon`.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use mio::net::{UnixListener, UnixStream};
use mio::{Interest, Registry, Token};
use serde_json::{Value, json};

/// Largest request accepted (OVS's limit is similar in spirit).
pub const MAX_REQUEST_BYTES: usize = 1 << 20;
/// Reply bytes a connection may have waiting before its next requests
/// wait too (one reply may be larger: a big flow dump is still sent).
pub const MAX_PENDING_REPLY_BYTES: usize = 4 << 20;
/// Connections kept open at once; a new one evicts the longest idle.
pub const MAX_CONNECTIONS: usize = 64;

/// Finds where a top-level JSON value ends in a growing byte stream,
/// looking at each byte once: it tracks strings, escapes and bracket
/// depth only, and leaves validation to the parser.
#[derive(Clone, Debug, Default)]
pub struct Framer {
    /// Bytes of the buffer already scanned.
    scanned: usize,
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// A value has started (its first non-blank byte was seen).
    started: bool,
    /// The value is a scalar or not JSON: let the parser decide at once.
    parse_now: bool,
    /// The first value's closing bracket was seen (stays so until reset).
    closed: bool,
}

impl Framer {
    /// True when `buf` (the same buffer as before, possibly longer) may
    /// hold a complete first value, so parsing it is worthwhile.
    pub fn value_may_be_complete(&mut self, buf: &[u8]) -> bool {
        if self.parse_now || self.closed {
            return true;
        }
        while self.scanned < buf.len() {
            let b = buf[self.scanned];
            self.scanned += 1;
            if !self.started {
                match b {
                    b'{' | b'[' => {
                        self.started = true;
                        self.depth = 1;
                    }
                    b if b.is_ascii_whitespace() => {}
                    _ => {
                        self.parse_now = true;
                        return true;
                    }
                }
                continue;
            }
            if self.in_string {
                match (self.escaped, b) {
                    (true, _) => self.escaped = false,
                    (false, b'\\') => self.escaped = true,
                    (false, b'"') => self.in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        self.closed = true;
                        return true;
                    }
                }
                _ => {}
            }
        }
        false
    }

    /// The first value does not start with `{` or `[`.
    pub fn is_scalar(&self) -> bool {
        self.parse_now
    }

    /// The first value was consumed: start over on what follows it.
    pub fn reset(&mut self) {
        *self = Framer::default();
    }
}

/// One parsed request.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    pub id: Value,
    pub method: String,
    pub params: Vec<String>,
}

/// What the framing layer found in a connection's buffer.
#[derive(Debug, PartialEq)]
pub enum Parsed {
    /// A complete request, and the bytes it used.
    Request(Request, usize),
    /// A complete JSON value that is not a valid request (reply with an
    /// error and keep the connection), and the bytes it used.
    Invalid {
        id: Value,
        reason: String,
        used: usize,
    },
    /// More bytes are needed.
    Incomplete,
    /// The stream is not JSON: reply and close.
    Garbage(String),
}

/// Parses the first JSON value of `buf`.
pub fn parse_request(buf: &[u8]) -> Parsed {
    let start = buf
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(buf.len());
    if start == buf.len() {
        return Parsed::Incomplete;
    }
    let mut stream = serde_json::Deserializer::from_slice(&buf[start..]).into_iter::<Value>();
    let value = match stream.next() {
        None => return Parsed::Incomplete,
        Some(Err(e)) if e.is_eof() => return Parsed::Incomplete,
        Some(Err(e)) => return Parsed::Garbage(format!("invalid JSON: {e}")),
        Some(Ok(v)) => v,
    };
    let used = start + stream.byte_offset();
    let id = value.get("id").cloned().unwrap_or(Value::Null);
    let invalid = |reason: &str| Parsed::Invalid {
        id: id.clone(),
        reason: reason.to_string(),
        used,
    };
    let Some(obj) = value.as_object() else {
        return invalid("request is not a JSON object");
    };
    let Some(method) = obj.get("method").and_then(Value::as_str) else {
        return invalid("request has no \"method\" string");
    };
    let params = match obj.get("params") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(s) => out.push(s.clone()),
                    _ => return invalid("\"params\" must be an array of strings"),
                }
            }
            out
        }
        Some(_) => return invalid("\"params\" must be an array of strings"),
    };
    Parsed::Request(
        Request {
            id,
            method: method.to_string(),
            params,
        },
        used,
    )
}

/// The reply bytes for a command result.
pub fn reply(id: &Value, result: &Result<String, String>) -> Vec<u8> {
    let v = match result {
        Ok(text) => json!({"id": id, "result": text, "error": null}),
        Err(text) => json!({"id": id, "result": null, "error": text}),
    };
    serde_json::to_vec(&v).expect("a JSON value serialises")
}

struct Connection {
    stream: UnixStream,
    inbuf: Vec<u8>,
    framer: Framer,
    outbuf: Vec<u8>,
    /// Close once the output is flushed.
    closing: bool,
    /// Order of the last event on this connection (for eviction).
    last_active: u64,
}

/// The listening socket and its connections.
pub struct ControlServer {
    path: PathBuf,
    listener: UnixListener,
    conns: HashMap<Token, Connection>,
    next_token: usize,
    /// Counts events, to order connections by activity.
    clock: u64,
}

impl std::fmt::Debug for ControlServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlServer")
            .field("path", &self.path)
            .field("connections", &self.conns.len())
            .finish()
    }
}

/// Token of the listening socket.
pub const LISTENER: Token = Token(0);
/// First token for connections (below: the listener and signals).
const FIRST_CONN: usize = 16;

impl ControlServer {
    /// Binds `path` (creating its directory 0700), replacing a stale
    /// socket file but refusing to steal one a live daemon answers on.
    pub fn bind(path: &Path, registry: &Registry) -> Result<ControlServer, String> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            if !dir.exists() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("control socket directory {}: {e}", dir.display()))?;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                    .map_err(|e| format!("control socket directory {}: {e}", dir.display()))?;
            } else if let Ok(meta) = std::fs::metadata(dir)
                && meta.permissions().mode() & 0o022 != 0
                && meta.permissions().mode() & 0o1000 == 0
            {
                // Without the sticky bit, anyone who may write the
                // directory may replace the socket with their own.
                tracing::warn!(
                    directory = %dir.display(),
                    mode = format!("{:o}", meta.permissions().mode() & 0o7777),
                    "control socket directory is writable by others: they could replace the socket"
                );
            }
        }
        if path.exists() {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(format!(
                    "control socket {}: another daemon is listening there",
                    path.display()
                ));
            }
            std::fs::remove_file(path)
                .map_err(|e| format!("control socket {}: {e}", path.display()))?;
        }
        let mut listener = UnixListener::bind(path)
            .map_err(|e| format!("control socket {}: {e}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("control socket {}: {e}", path.display()))?;
        registry
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(|e| format!("control socket {}: {e}", path.display()))?;
        Ok(ControlServer {
            path: path.to_path_buf(),
            listener,
            conns: HashMap::new(),
            next_token: FIRST_CONN,
            clock: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts pending connections.
    pub fn accept(&mut self, registry: &Registry) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    if self.conns.len() >= MAX_CONNECTIONS
                        && let Some(idle) = self
                            .conns
                            .iter()
                            .min_by_key(|(_, c)| c.last_active)
                            .map(|(t, _)| *t)
                    {
                        tracing::warn!(
                            max = MAX_CONNECTIONS,
                            "control socket: too many connections; closing the one idle longest"
                        );
                        self.close(idle, registry);
                    }
                    let token = Token(self.next_token);
                    self.next_token += 1;
                    self.clock += 1;
                    if registry
                        .register(&mut stream, token, Interest::READABLE)
                        .is_ok()
                    {
                        self.conns.insert(
                            token,
                            Connection {
                                stream,
                                inbuf: Vec::new(),
                                framer: Framer::default(),
                                outbuf: Vec::new(),
                                closing: false,
                                last_active: self.clock,
                            },
                        );
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::warn!("control socket accept: {e}");
                    return;
                }
            }
        }
    }

    /// Handles readiness on connection `token`, running each complete
    /// request through `handle`.
    pub fn ready(
        &mut self,
        token: Token,
        registry: &Registry,
        mut handle: impl FnMut(&Request) -> Result<String, String>,
    ) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        self.clock += 1;
        conn.last_active = self.clock;
        let mut eof = false;
        let mut flushed;
        loop {
            // A client that does not read its replies gets nothing more
            // read or run until it does.
            let backlogged = conn.outbuf.len() > MAX_PENDING_REPLY_BYTES;
            let mut more_to_read = false;
            if !backlogged && !conn.closing && !eof {
                match read_some(conn) {
                    ReadState::Eof => eof = true,
                    ReadState::Drained => {}
                    ReadState::ValueBuffered => more_to_read = true,
                }
            }
            while !conn.closing
                && conn.outbuf.len() <= MAX_PENDING_REPLY_BYTES
                && conn.framer.value_may_be_complete(&conn.inbuf)
            {
                match parse_request(&conn.inbuf) {
                    Parsed::Incomplete if conn.framer.is_scalar() => {
                        // An unterminated string or number at top level:
                        // never a request, and re-parsing it as it grows
                        // would cost quadratic time.
                        conn.outbuf.extend(reply(
                            &Value::Null,
                            &Err("request is not a JSON object".into()),
                        ));
                        conn.inbuf.clear();
                        conn.closing = true;
                    }
                    Parsed::Incomplete => break,
                    Parsed::Request(req, used) => {
                        conn.inbuf.drain(..used);
                        conn.framer.reset();
                        let result = handle(&req);
                        conn.outbuf.extend(reply(&req.id, &result));
                    }
                    Parsed::Invalid { id, reason, used } => {
                        conn.inbuf.drain(..used);
                        conn.framer.reset();
                        conn.outbuf.extend(reply(&id, &Err(reason)));
                    }
                    Parsed::Garbage(reason) => {
                        conn.outbuf.extend(reply(&Value::Null, &Err(reason)));
                        conn.inbuf.clear();
                        conn.closing = true;
                    }
                }
            }
            let held_back = backlogged || conn.outbuf.len() > MAX_PENDING_REPLY_BYTES;
            flushed = flush(conn);
            // Go round again while the socket may hold more (reading
            // stopped at a complete request), or once a client that held
            // input back has read enough of its replies: no further
            // readiness event would come for that input.
            let again = more_to_read || held_back;
            if !flushed || conn.closing || !again || conn.outbuf.len() > MAX_PENDING_REPLY_BYTES {
                break;
            }
        }
        let interest = if conn.outbuf.is_empty() {
            Interest::READABLE
        } else {
            Interest::READABLE | Interest::WRITABLE
        };
        if (eof && conn.outbuf.is_empty()) || !flushed || (conn.closing && conn.outbuf.is_empty()) {
            self.close(token, registry);
        } else {
            let _ = registry.reregister(&mut conn.stream, token, interest);
        }
    }

    /// Open connections (for tests and `memory/show`-style reports).
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    fn close(&mut self, token: Token, registry: &Registry) {
        if let Some(mut conn) = self.conns.remove(&token) {
            let _ = registry.deregister(&mut conn.stream);
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Why [`read_some`] stopped.
enum ReadState {
    Eof,
    /// The socket has nothing more now.
    Drained,
    /// A complete value is buffered: run it before reading on, so the
    /// buffer holds at most about one request.
    ValueBuffered,
}

/// Reads from the socket into the connection's buffer until it would
/// block or a complete value is buffered. Over [`MAX_REQUEST_BYTES`]
/// without a complete value, the client gets an error and the connection
/// closes.
fn read_some(conn: &mut Connection) -> ReadState {
    let mut chunk = [0u8; 8192];
    loop {
        if conn.framer.value_may_be_complete(&conn.inbuf) {
            return ReadState::ValueBuffered;
        }
        match conn.stream.read(&mut chunk) {
            Ok(0) => return ReadState::Eof,
            Ok(n) => {
                conn.inbuf.extend_from_slice(&chunk[..n]);
                if conn.inbuf.len() > MAX_REQUEST_BYTES
                    && !conn.framer.value_may_be_complete(&conn.inbuf)
                {
                    conn.outbuf.extend(reply(
                        &Value::Null,
                        &Err(format!("request larger than {MAX_REQUEST_BYTES} bytes")),
                    ));
                    conn.inbuf.clear();
                    conn.closing = true;
                    return ReadState::Drained;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return ReadState::Drained,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return ReadState::Eof,
        }
    }
}

/// Writes what it can; `false` when the peer is gone.
fn flush(conn: &mut Connection) -> bool {
    while !conn.outbuf.is_empty() {
        match conn.stream.write(&conn.outbuf) {
            Ok(0) => return false,
            Ok(n) => {
                conn.outbuf.drain(..n);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_ovs_appctl_sends() {
        let bytes = br#"{"id":0,"method":"dpif-netdev/pmd-stats-show","params":["-pmd","1"]}"#;
        match parse_request(bytes) {
            Parsed::Request(r, used) => {
                assert_eq!(r.method, "dpif-netdev/pmd-stats-show");
                assert_eq!(r.params, vec!["-pmd", "1"]);
                assert_eq!(used, bytes.len());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn framing_handles_partial_pipelined_and_bad_input() {
        assert_eq!(parse_request(br#"{"id":1,"meth"#), Parsed::Incomplete);
        assert_eq!(parse_request(b"   "), Parsed::Incomplete);
        let two = br#"{"id":1,"method":"a","params":[]}  {"id":2,"method":"b"}"#;
        let Parsed::Request(first, used) = parse_request(two) else {
            panic!()
        };
        assert_eq!(first.method, "a");
        let Parsed::Request(second, _) = parse_request(&two[used..]) else {
            panic!()
        };
        assert_eq!((second.method.as_str(), second.params.len()), ("b", 0));
        assert!(matches!(
            parse_request(b"\x00\xffgarbage"),
            Parsed::Garbage(_)
        ));
        assert!(matches!(parse_request(br#"[1,2]"#), Parsed::Invalid { .. }));
        assert!(matches!(
            parse_request(br#"{"id":3,"method":"x","params":[1]}"#),
            Parsed::Invalid { .. }
        ));
    }

    /// Feeds `bytes` one at a time; returns the prefix lengths at which
    /// the framer asked for a parse.
    fn framer_stops(bytes: &[u8]) -> Vec<usize> {
        let mut framer = Framer::default();
        (1..=bytes.len())
            .filter(|&k| framer.value_may_be_complete(&bytes[..k]))
            .collect()
    }

    #[test]
    fn framer_finds_value_ends_without_rescanning() {
        let req = br#" {"id":1,"method":"a}\"{[","params":["]}"]} "#;
        // Braces and escaped quotes inside strings do not end the value.
        let end = req.len() - 1;
        assert_eq!(framer_stops(req).first(), Some(&end));
        assert!(matches!(parse_request(&req[..end]), Parsed::Request(..)));
        for k in 1..end {
            assert_eq!(parse_request(&req[..k]), Parsed::Incomplete, "prefix {k}");
        }
        // Not an object or array: parse at once (garbage is found early).
        assert_eq!(framer_stops(b"\x00{"), vec![1, 2]);
        assert_eq!(framer_stops(b"   "), Vec::<usize>::new());
        // After reset, the next value of a pipelined stream.
        let mut framer = Framer::default();
        let two = br#"[1][2]"#;
        assert!(framer.value_may_be_complete(two));
        framer.reset();
        assert!(framer.value_may_be_complete(&two[3..]));
    }

    #[test]
    fn replies_in_ovs_shape() {
        let ok = String::from_utf8(reply(&json!(0), &Ok("hi\n".into()))).unwrap();
        let v: Value = serde_json::from_str(&ok).unwrap();
        assert_eq!(v, json!({"id": 0, "result": "hi\n", "error": null}));
        let err = String::from_utf8(reply(&json!(5), &Err("nope".into()))).unwrap();
        let v: Value = serde_json::from_str(&err).unwrap();
        assert_eq!(v, json!({"id": 5, "result": null, "error": "nope"}));
    }
}
