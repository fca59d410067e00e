//! CESQL: parse arbitrary text and evaluate what parses against a fixed event.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(expression) = router::policy::cesql::Expression::parse(text) {
        let mut event = router::event::Event::new("1", "/fuzz", "fuzz.event");
        event.subject = Some("subject".to_owned());
        let _ = expression.matches(&event);
        let _ = expression.explain(&event);
    }
});
