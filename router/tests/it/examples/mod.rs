//! The seed systems of `examples/`, end to end: each example's own `router.toml`
//! and plugins, driven over HTTP, with real sinks (and a real `redis-server`
//! where the seed uses Redis).

use router::config::{Config, Source};

mod broker_services;
mod ecommerce_catalog;
mod marketplace_streams;
mod order_saga;
mod placement_platform;

/// Loads `examples/<example>/router.toml` as the README's command would, with the
/// variables of `env` (name, value) standing in for the process environment, so
/// that tests can point its forwards at their sinks without touching the
/// process-global environment. Unset variables fall back to the file's defaults.
pub fn example_config(example: &str, env: &[(&str, String)]) -> Config {
    let path = format!("../examples/{example}/router.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    Config::parse(Source::new(&path, text), |name| {
        env.iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.clone())
    })
    .unwrap_or_else(|e| panic!("{path} is invalid: {e}"))
}
