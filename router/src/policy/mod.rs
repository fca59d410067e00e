//! Routing policies: which events a route takes.

pub mod filter;
