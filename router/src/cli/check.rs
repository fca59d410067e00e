//! `router check`: load a configuration and its plugins, report every problem.

use router::runtime::Runtime;
use std::process::ExitCode;

/// Prints `ok` with the counts, or every error; fails when there is any.
pub async fn run(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    match Runtime::load(path).await {
        Ok((config, _)) => {
            println!(
                "{}: ok ({}, {})",
                path.display(),
                super::count(config.plugins.len(), "plugin"),
                super::count(config.routes.len(), "route")
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            eprint!("{errors}");
            Ok(ExitCode::FAILURE)
        }
    }
}
