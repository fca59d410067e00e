//! Routing policies: which events a route takes, and what their data must look like.

pub mod cesql;
pub mod data;
pub mod filter;
pub mod schema;
pub mod transform;
