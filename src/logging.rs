//! Logging: tracing to stderr with a filter from the config (`[log]
//! level`) or `OXVS_LOG`, changeable at run time (`vlog/set`).

use std::sync::{Mutex, OnceLock};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt;

type Handle = reload::Handle<EnvFilter, tracing_subscriber::Registry>;

static HANDLE: OnceLock<Handle> = OnceLock::new();
static CURRENT: Mutex<String> = Mutex::new(String::new());

/// Installs the subscriber with `filter` (`OXVS_LOG` wins when set).
pub fn init(filter: &str) -> Result<(), String> {
    let filter = std::env::var("OXVS_LOG").unwrap_or_else(|_| filter.to_string());
    let env_filter =
        EnvFilter::try_new(&filter).map_err(|e| format!("log filter \"{filter}\": {e}"))?;
    let (layer, handle) = reload::Layer::new(env_filter);
    tracing_subscriber::registry()
        .with(layer)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(true),
        )
        .try_init()
        .map_err(|e| format!("logging: {e}"))?;
    let _ = HANDLE.set(handle);
    *CURRENT.lock().expect("log filter lock") = filter;
    Ok(())
}

/// The filter in force.
pub fn current_filter() -> String {
    CURRENT.lock().expect("log filter lock").clone()
}

/// Replaces the filter (`vlog/set`).
pub fn set_filter(filter: &str) -> Result<(), String> {
    let env_filter =
        EnvFilter::try_new(filter).map_err(|e| format!("log filter \"{filter}\": {e}"))?;
    let handle = HANDLE.get().ok_or("logging is not initialised")?;
    handle
        .reload(env_filter)
        .map_err(|e| format!("log filter: {e}"))?;
    *CURRENT.lock().expect("log filter lock") = filter.to_string();
    Ok(())
}
