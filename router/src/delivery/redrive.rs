//! Redrive: dead letters sent back, and removed from the sink once they no
//! longer fail.
//!
//! A route's dead letter goes back to that route only (not through every route,
//! which already had the event); a dead letter of [`ALL_ROUTES`] (a durable
//! queue's poison entry) is routed through every route that matches it now,
//! directly rather than through the queue, so its answer says how it went. The
//! delivering itself is the caller's ([`Redeliver`]): the dispatcher, which sits
//! above this layer.

use super::deadletter::{ALL_ROUTES, DeadLetter, DeadLetterError, DeadLetterSink};
use crate::event::Event;
use serde::Serialize;
use std::future::Future;

/// Who delivers a redriven event.
pub trait Redeliver: Sync {
    /// What became of one redriven event.
    type Report: Serialize + Send;

    /// Delivers `event` to the route named `route` only, skipping its filter, or
    /// with `None`, through every route it matches; `None` when there is no such
    /// route any more.
    fn deliver_again(
        &self,
        route: Option<&str>,
        event: Event,
    ) -> impl Future<Output = Option<Self::Report>> + Send;

    /// Whether the event still failed (and was not dead-lettered again).
    fn still_failing(report: &Self::Report) -> bool;
}

/// Which dead letters to redrive: by id, those of one route (both: the ids of
/// that route), or explicitly all of them. An empty selection chooses nothing, so
/// that a forgotten body never redrives every dead letter.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    /// Dead-letter ids.
    #[serde(default)]
    pub ids: Vec<String>,
    /// A route name ([`ALL_ROUTES`] for the queue's poison entries).
    pub route: Option<String>,
    /// Every dead letter; not combined with `ids` or `route`.
    #[serde(default)]
    pub all: bool,
}

/// Why a selection names no dead letters in a usable way.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectionError {
    /// Neither ids, nor a route, nor `all`.
    #[error(
        "name the dead letters to redrive: {{\"ids\": [\"ID\", ...]}}, {{\"route\": \"ROUTE\"}} (both: those ids of that route), or {{\"all\": true}} for every dead letter"
    )]
    Empty,
    /// `all` beside ids or a route.
    #[error("`all` redrives every dead letter: do not combine it with `ids` or `route`")]
    AllWithOthers,
}

impl Selection {
    /// Checks that the selection names something, and only one way.
    pub fn validate(&self) -> Result<(), SelectionError> {
        let narrowed = !self.ids.is_empty() || self.route.is_some();
        match (self.all, narrowed) {
            (false, false) => Err(SelectionError::Empty),
            (true, true) => Err(SelectionError::AllWithOthers),
            _ => Ok(()),
        }
    }

    fn contains(&self, letter: &DeadLetter) -> bool {
        if self.validate().is_err() {
            return false;
        }
        (self.ids.is_empty() || self.ids.contains(&letter.id))
            && self.route.as_ref().is_none_or(|r| &letter.route == r)
    }
}

/// What became of one dead letter.
#[derive(Debug, Serialize)]
pub struct Redriven<R> {
    /// The dead letter.
    pub id: String,
    /// What the delivery did, when it happened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<R>,
    /// Why it was not delivered (no valid event, no such route).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The outcome of a redrive.
#[derive(Debug, Serialize)]
pub struct Redrive<R> {
    /// How many dead letters were delivered (or dead-lettered again, as new
    /// entries) and removed.
    pub redriven: usize,
    /// One result per chosen dead letter, oldest first.
    pub results: Vec<Redriven<R>>,
}

/// Sends the dead letters of `sink` chosen by `selection` back through `target`,
/// and removes those that no longer fail: the ones delivered, and the ones
/// dead-lettered again (as a new entry).
pub async fn redrive<T: Redeliver>(
    sink: &DeadLetterSink,
    selection: &Selection,
    target: &T,
) -> Result<Redrive<T::Report>, DeadLetterError> {
    let letters = sink.list().await?;
    let mut done = Vec::new();
    let mut results = Vec::new();
    for letter in letters.into_iter().filter(|l| selection.contains(l)) {
        let result = match letter.event() {
            Err(e) => Redriven {
                id: letter.id,
                report: None,
                error: Some(e.to_string()),
            },
            Ok(event) => {
                let route = (letter.route != ALL_ROUTES).then_some(letter.route.as_str());
                match target.deliver_again(route, event).await {
                    None => Redriven {
                        error: Some(format!("route {:?} no longer exists", letter.route)),
                        id: letter.id,
                        report: None,
                    },
                    Some(report) => {
                        if !T::still_failing(&report) {
                            done.push(letter.id.clone());
                        }
                        Redriven {
                            id: letter.id,
                            report: Some(report),
                            error: None,
                        }
                    }
                }
            }
        };
        results.push(result);
    }
    sink.remove(&done).await?;
    Ok(Redrive {
        redriven: done.len(),
        results,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selection(json: &str) -> Selection {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_selection_must_name_what_it_redrives() {
        assert_eq!(selection("{}").validate(), Err(SelectionError::Empty));
        assert_eq!(
            selection(r#"{"ids": [], "all": false}"#).validate(),
            Err(SelectionError::Empty)
        );
        assert_eq!(
            selection(r#"{"all": true, "route": "r"}"#).validate(),
            Err(SelectionError::AllWithOthers)
        );
        for ok in [r#"{"all": true}"#, r#"{"ids": ["a"]}"#, r#"{"route": "r"}"#] {
            assert_eq!(selection(ok).validate(), Ok(()), "{ok}");
        }
    }
}
