//! `router whatif`: archived events through a plugin's live version and a
//! candidate, offline, and the comparison report.

use router::config::Config;
use router::whatif::{WhatIf, parse_filter, parse_time};
use std::path::PathBuf;
use std::process::ExitCode;

/// `router whatif`.
#[derive(Debug, clap::Args)]
pub struct WhatIfArgs {
    /// The TOML configuration file: the plugin's entry and the `[archive]`.
    #[arg(short, long, env = "ROUTER_CONFIG")]
    pub config: PathBuf,
    /// The plugin, by its name in the configuration.
    #[arg(long)]
    pub plugin: String,
    /// The candidate version's `.wasm` file.
    #[arg(long)]
    pub candidate: PathBuf,
    /// Events that arrived at or after this time (RFC 3339, or ms since the epoch).
    #[arg(long)]
    pub from: String,
    /// Events that arrived before this time (`now` for now).
    #[arg(long)]
    pub to: String,
    /// Only events this takes: a CloudEvents SQL expression, or a route filter
    /// as JSON (any dialect).
    #[arg(long)]
    pub filter: Option<String>,
    /// A `config` value of the candidate that replaces the live version's
    /// (repeatable).
    #[arg(long = "candidate-config", value_name = "KEY=VALUE", value_parser = key_value)]
    pub candidate_config: Vec<(String, String)>,
    /// An attribute left out of the comparison and of the outputs shown, such
    /// as `time` or `id` (repeatable; the plugin's `shadow.ignore` applies too).
    #[arg(long, value_name = "ATTRIBUTE")]
    pub ignore: Vec<String>,
    /// How many differences to show, the first ones.
    #[arg(long, default_value_t = 10)]
    pub show: usize,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Exit with status 1 when the versions disagree on any event (one failed
    /// where the other did not, or their outputs differ).
    #[arg(long)]
    pub fail_on_difference: bool,
}

fn key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("{text:?} is not KEY=VALUE"))
}

/// Runs the comparison and prints its report.
pub async fn run(args: &WhatIfArgs) -> anyhow::Result<ExitCode> {
    let config = match Config::load(&args.config) {
        Ok(config) => config,
        Err(errors) => {
            eprint!("{errors}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let what = WhatIf {
        plugin: args.plugin.clone(),
        candidate: args.candidate.clone(),
        candidate_config: args.candidate_config.clone(),
        from: parse_time("from", &args.from)?,
        to: parse_time("to", &args.to)?,
        filter: args.filter.as_deref().map(parse_filter).transpose()?,
        ignore: args.ignore.clone(),
        show: args.show,
    };
    let report = router::whatif::run(&config, &what).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    Ok(if args.fail_on_difference && report.disagreements() > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
