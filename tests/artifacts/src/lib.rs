//! The example and test plugins, compiled for wasm32-wasip2 by this crate's build
//! script, and where to find them.
//!
//! Depend on this crate (as a dev-dependency, or behind a feature) to have the
//! plugins built before your tests or binary run: the build script runs a nested
//! `cargo build --release --target wasm32-wasip2` on `plugins/` whenever a source
//! under `plugins/`, `guest-sdk/rust/` or `wit/` changes, and writes the components to
//! [`PLUGIN_DIR`] (`target/wasm-plugins/wasm32-wasip2/release/`).
//!
//! Every constant is the absolute path of a component: [`INVENTORY`], [`ENRICHER`],
//! [`AUDIT`], [`TRAP`], [`RELAY`], [`FAIL`], and one per plugin added to
//! `plugins/`, named after its directory.

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// The preamble of a component: `\0asm`, version 0x0d, layer 1.
    const COMPONENT_HEADER: [u8; 8] = [0, b'a', b's', b'm', 0x0d, 0, 1, 0];

    #[test]
    fn every_plugin_is_a_component() {
        for path in [INVENTORY, ENRICHER, AUDIT, TRAP, RELAY, FAIL] {
            let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!(bytes.get(..8), Some(&COMPONENT_HEADER[..]), "{path}");
        }
    }

    #[test]
    fn every_plugin_is_listed_with_its_absolute_path() {
        for required in ["inventory", "enricher", "audit", "trap", "relay", "fail"] {
            assert!(ALL.iter().any(|(name, _)| *name == required), "{required}");
        }
        for (name, path) in ALL {
            let path = Path::new(path);
            assert!(path.is_absolute(), "{name}: {}", path.display());
            assert_eq!(path.parent(), Some(Path::new(PLUGIN_DIR)), "{name}");
            assert_eq!(
                path.file_name().and_then(|file| file.to_str()),
                Some(&*format!("{}.wasm", name.replace('-', "_")))
            );
        }
    }
}
