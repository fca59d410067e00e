//! Batched-mode decoding of arbitrary bytes, with the default batch limit.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let body = bytes::Bytes::copy_from_slice(data);
    let _ = router::event::json::decode_batch(&body, 100);
});
