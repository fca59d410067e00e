//! `[[route]]`: which events go where, and what happens to them on the way.

use super::{AppendSpec, Duration, FilterSpec, Name, Positioned, RetrySpec, StepSpec};
use serde::Deserialize;
use toml::Spanned;

/// `[[route]]`: which events go where.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Unique name, reported in responses and logs.
    pub name: Spanned<Name>,
    /// Which events the route takes; all of them when absent.
    #[serde(default)]
    pub filter: Option<Spanned<FilterSpec>>,
    /// The plugin that handles the events.
    #[serde(default)]
    pub handler: Option<Spanned<String>>,
    /// A URL the events are POSTed to in binary mode.
    #[serde(default)]
    pub forward: Option<Spanned<String>>,
    /// A journal (file or Redis stream) every matched event is appended to.
    #[serde(default)]
    pub append: Option<Spanned<AppendSpec>>,
    /// Steps applied, in order, before the targets.
    #[serde(default)]
    pub transform: Vec<StepSpec>,
    /// Overrides of `[delivery.retry]` for this route.
    #[serde(default)]
    pub retry: Option<RetrySpec>,
    /// Drop an event whose (`source`, `id`) this route saw within this window.
    #[serde(default)]
    pub dedup: Option<Duration>,
    /// Position in its `[[...]]` array as written, for error paths: entries that
    /// fail to parse are dropped, so the position in the parsed list can differ.
    #[serde(skip)]
    pub index: usize,
}

impl Positioned for RouteConfig {
    fn set_index(&mut self, index: usize) {
        self.index = index;
    }
}

pub(super) fn check_forward_url(url: &str) -> Result<(), String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http") if uri.host().is_some() => Ok(()),
        Some("https") => Err(format!(
            "{url:?}: https forwarding is not supported yet; use http, or terminate TLS in a proxy"
        )),
        _ => Err(format!("{url:?} is not an absolute http:// URL")),
    }
}
