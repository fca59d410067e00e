//! Paths of the example and test plugins, compiled for wasm32-wasip2 by this
//! crate's build script. Depend on it (as a dev-dependency) to have the plugins
//! built before your tests run.

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));

#[cfg(test)]
mod tests {
    /// The component-model preamble: magic, version 0x0d, layer 1.
    const COMPONENT_HEADER: [u8; 8] = [0, b'a', b's', b'm', 0x0d, 0, 1, 0];

    #[test]
    fn every_plugin_is_a_component() {
        for path in [
            super::INVENTORY,
            super::ENRICHER,
            super::AUDIT,
            super::TRAP,
            super::RELAY,
            super::FAIL,
        ] {
            let bytes = std::fs::read(path).expect("plugin file");
            assert_eq!(bytes.get(..8), Some(&COMPONENT_HEADER[..]), "{path}");
        }
    }
}
