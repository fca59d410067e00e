//! The Python and JavaScript plugins (`plugins/python/*`, `plugins/js/*`),
//! compiled by this crate's build script with the SDKs' own build commands
//! (`guest-sdk/python`, `guest-sdk/js`), and where to find them and the
//! toolchains that built them.
//!
//! The build script installs the toolchains under `target/guest-toolchains/`
//! at the versions the SDKs pin (Python's virtual environment with
//! componentize-py and pytest; the JS SDK with componentize-js), and keeps each
//! component in `target/wasm-plugins/<language>/` under the SHA-256 of its
//! inputs, so that a plugin is built again only when it, its SDK or the WIT
//! changed. Each constant `<NAME>_PY` / `<NAME>_JS` is the absolute path of a
//! component.

include!(concat!(env!("OUT_DIR"), "/polyglot.rs"));
