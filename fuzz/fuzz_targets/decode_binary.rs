//! Binary-mode decoding: the input is header lines (`name: value`), an empty
//! line, then the body, so the fuzzer controls both.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let split = data
        .windows(2)
        .position(|w| w == b"\n\n")
        .unwrap_or(data.len());
    let (head, body) = data.split_at(split);
    let mut headers = http::HeaderMap::new();
    for line in head.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(&line[..colon]),
            http::HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    if router::event::http::content_mode(&headers).is_ok() {
        let body = bytes::Bytes::copy_from_slice(body.get(2..).unwrap_or_default());
        let _ = router::event::http::decode_binary(&headers, body);
    }
});
