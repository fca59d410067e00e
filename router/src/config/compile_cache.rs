//! `[compile_cache]`: where compiled plugins are kept between starts.

use super::ByteSize;
use serde::Deserialize;
use std::path::PathBuf;

/// `[compile_cache]`: compiled components on disk, so that a start or a reload
/// compiles only components no earlier run has compiled.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CompileCacheConfig {
    /// Whether to keep compiled components on disk at all.
    pub enabled: bool,
    /// The directory, relative to the configuration's folder; the user's cache
    /// folder (`$XDG_CACHE_HOME/router/components`, else
    /// `~/.cache/router/components`) when absent.
    pub dir: Option<PathBuf>,
    /// Most bytes the directory may hold; the least recently used entries go
    /// first past it.
    pub max_size: ByteSize,
}

impl Default for CompileCacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            dir: None,
            max_size: ByteSize(1 << 30),
        }
    }
}
