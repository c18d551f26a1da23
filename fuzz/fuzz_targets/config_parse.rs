//! The daemon's config parser and validator on arbitrary text: a config
//! is accepted or rejected with a one-line error naming the file, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oxvs::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = Config::parse(text, "fuzz.toml") {
        let line = e.to_string();
        assert!(line.starts_with("fuzz.toml: "), "{line}");
    }
});
