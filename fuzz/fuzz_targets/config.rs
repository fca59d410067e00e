//! The configuration loader on arbitrary text: every problem is a reported
//! error, never a panic. Environment lookups answer nothing.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let source = router::config::Source::new("fuzz.toml", text.to_owned());
    if let Err(errors) = router::config::Config::parse(source, |_| None) {
        let _ = errors.to_string();
    }
});
