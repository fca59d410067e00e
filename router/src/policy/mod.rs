//! Routing policies: which events a route takes.

pub mod data;
pub mod filter;
