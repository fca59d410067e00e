//! `[kv]`: where plugins' key-value stores live.

use super::DedupStore;
use serde::Deserialize;

/// `[kv]`: where plugins' key-value stores live.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KvConfig {
    /// `memory` (this process) or `redis` (shared by every router process).
    pub store: DedupStore,
    /// The Redis server of a `redis` store; `[queue] url` when absent.
    pub url: Option<String>,
    /// Prefix of every key in Redis (then the plugin's name and `:`).
    pub prefix: String,
}

impl Default for KvConfig {
    fn default() -> Self {
        Self {
            store: DedupStore::Memory,
            url: None,
            prefix: "router:kv:".into(),
        }
    }
}
