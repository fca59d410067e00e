//! Delivery guarantees around the dispatcher: retries with backoff ([`retry`]),
//! dead letters ([`deadletter`]) and duplicate suppression ([`dedup`]).

pub mod deadletter;
pub mod dedup;
pub mod retry;
