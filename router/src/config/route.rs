//! `[[route]]`: which events go where, and what happens to them on the way.

use super::{
    AppendSpec, ConfigError, Duration, FilterSpec, Name, Positioned, RetrySpec, Source, StepSpec,
};
use serde::Deserialize;
use std::collections::HashSet;
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

fn check_forward_url(url: &str) -> Result<(), String> {
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

impl RouteConfig {
    /// Checks the route's targets and its references to plugins (`plugins`, the
    /// declared names). A `forward` on a line in `unresolved` had a `${VAR}` that
    /// failed, which is reported already. The filter and the transform steps are
    /// compiled, and checked, by the runtime; the `retry` table with the defaults.
    pub fn validate(
        &self,
        source: &Source,
        plugins: &HashSet<&str>,
        unresolved: &HashSet<usize>,
        errors: &mut Vec<ConfigError>,
    ) {
        let i = self.index;
        let at = |field: &str| format!("route[{i}].{field}");
        if self.handler.is_none() && self.forward.is_none() && self.append.is_none() {
            errors.push(source.error(
                Some(self.name.span()),
                format!("route[{i}]"),
                "the route has no target: set `handler`, `forward` and/or `append`",
            ));
        }
        if let Some(append) = &self.append {
            let spec = append.get_ref();
            let problem = match (&spec.file, &spec.stream, &spec.redis) {
                (Some(_), None, None) | (None, Some(_), _) => None,
                (Some(_), Some(_), _) => Some("set `file` or `stream`, not both"),
                (Some(_), None, Some(_)) => Some("`redis` goes with `stream`, not `file`"),
                (None, None, _) => {
                    Some("set `file` (a JSON-lines file) or `stream` (a Redis stream)")
                }
            };
            if let Some(problem) = problem {
                errors.push(source.error(Some(append.span()), at("append"), problem));
            }
        }
        if let Some(h) = &self.handler
            && !plugins.contains(h.get_ref().as_str())
        {
            let mut names: Vec<_> = plugins.iter().copied().collect();
            names.sort_unstable();
            let known = if names.is_empty() {
                "no plugins are declared".to_owned()
            } else {
                format!("declared plugins: {}", names.join(", "))
            };
            errors.push(source.error(
                Some(h.span()),
                at("handler"),
                format!("unknown plugin {:?} ({known})", h.get_ref()),
            ));
        }
        if let Some(url) = &self.forward
            && !unresolved.contains(&source.line_col(url.span().start).0)
            && let Err(message) = check_forward_url(url.get_ref())
        {
            errors.push(source.error(Some(url.span()), at("forward"), message));
        }
    }
}
