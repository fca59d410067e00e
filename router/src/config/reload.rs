//! `[reload]`: hot reload of the configuration and plugin files.

use super::Duration;
use serde::Deserialize;

/// `[reload]`: hot reload of the configuration and plugin files.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReloadConfig {
    /// Watch the files and reload on change; `serve --no-watch` turns it off.
    pub watch: bool,
    /// Quiet time after the last change before reloading.
    pub debounce: Duration,
    /// Longest a stream of changes may postpone a reload.
    pub max_wait: Duration,
    /// How long files must stay unchanged before they are read.
    pub settle: Duration,
}

impl Default for ReloadConfig {
    fn default() -> Self {
        let ms = |n| Duration(std::time::Duration::from_millis(n));
        Self {
            watch: true,
            debounce: ms(50),
            max_wait: ms(2000),
            settle: ms(50),
        }
    }
}
