//! The control-socket client: one JSON-RPC 1.0 request per call, in the
//! unixctl shape oxvsd (and ovs-vswitchd) speak.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

/// Longest a command may take before the client gives up.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Why a call failed.
#[derive(Debug)]
pub enum CallError {
    /// The socket could not be reached (daemon not running?).
    Connect(String),
    /// The daemon answered with an error.
    Server(String),
    /// The exchange broke (timeout, closed, bad reply).
    Protocol(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Connect(e) | CallError::Server(e) | CallError::Protocol(e) => f.write_str(e),
        }
    }
}

/// Sends `method params` and returns the whole reply object.
pub fn call_raw(socket: &Path, method: &str, params: &[String]) -> Result<Value, CallError> {
    let mut stream = UnixStream::connect(socket).map_err(|e| {
        CallError::Connect(format!(
            "cannot connect to {}: {e} (is oxvsd running? see --socket)",
            socket.display()
        ))
    })?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .map_err(|e| CallError::Protocol(e.to_string()))?;
    let request = json!({"id": 0, "method": method, "params": params});
    stream
        .write_all(request.to_string().as_bytes())
        .map_err(|e| CallError::Protocol(format!("{}: {e}", socket.display())))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        let n = stream
            .read(&mut chunk)
            .map_err(|e| CallError::Protocol(format!("{}: {e}", socket.display())))?;
        if n == 0 {
            return Err(CallError::Protocol(format!(
                "{}: connection closed before a reply",
                socket.display()
            )));
        }
        buf.extend_from_slice(&chunk[..n]);
        match serde_json::from_slice::<Value>(&buf) {
            Ok(v) => return Ok(v),
            Err(e) if e.is_eof() => continue,
            Err(e) => return Err(CallError::Protocol(format!("bad reply: {e}"))),
        }
    }
}

/// Sends `method params` and returns the result text.
pub fn call(socket: &Path, method: &str, params: &[String]) -> Result<String, CallError> {
    let reply = call_raw(socket, method, params)?;
    match &reply["error"] {
        Value::Null => Ok(reply["result"].as_str().unwrap_or_default().to_string()),
        Value::String(e) => Err(CallError::Server(e.clone())),
        other => Err(CallError::Server(other.to_string())),
    }
}
