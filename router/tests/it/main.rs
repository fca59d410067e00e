//! Integration tests: a real router on a real listener, real compiled plugins,
//! real HTTP sinks. One binary, a module per area.

mod common;

mod admin;
mod admin_output;
mod archive;
mod cesql;
mod cli;
mod cluster;
mod compile_cache;
mod config_ui;
mod dashboard;
mod defaults;
mod delivery;
mod demo;
mod docs;
mod durable;
mod examples;
mod explain;
mod forward;
mod fuzz;
mod gate;
mod ingest;
mod languages;
mod layering;
mod memory;
mod ops;
mod outbound;
mod plugins;
mod poison;
mod policy;
mod process;
mod readme;
mod rebalance;
mod reload;
mod sandbox;
mod shadow;
mod templates;
mod whatif;
