//! Structured-mode decoding of arbitrary bytes: errors are fine, panics are not,
//! and what decodes must decode again after the router encodes it.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let body = bytes::Bytes::copy_from_slice(data);
    if let Ok(event) = router::event::json::decode_structured(&body) {
        let again = bytes::Bytes::from(router::event::json::encode_structured(&event));
        if let Err(e) = router::event::json::decode_structured(&again) {
            panic!("the router's own encoding does not decode: {e}");
        }
    }
});
