//! Delivery guarantees around the dispatcher: retries with backoff ([`retry`]),
//! dead letters ([`deadletter`]), duplicate suppression ([`dedup`]), and the
//! journals that routes append events to ([`journal`]).

pub mod deadletter;
pub mod dedup;
pub mod journal;
pub mod retry;
