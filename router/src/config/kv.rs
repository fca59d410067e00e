//! `[kv]`: where plugins' key-value stores live.

use super::{ByteSize, DedupStore};
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
    /// Most bytes one plugin's keys take in the memory store (names, values and
    /// a fixed overhead per key).
    pub memory_limit: ByteSize,
}

impl Default for KvConfig {
    fn default() -> Self {
        Self {
            store: DedupStore::Memory,
            url: None,
            prefix: "router:kv:".into(),
            memory_limit: ByteSize(64 << 20),
        }
    }
}
