//! The `router` binary: parses the command line, sets up logging and the async
//! runtime, and hands the subcommand to [`cli::run`].

mod cli;

use clap::Parser as _;
use cli::{Cli, LogFormat};
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

/// jemalloc rather than the system's malloc: an event allocates dozens of
/// times on its way through (decoding, the guest call's lifting, the report),
/// and glibc's malloc and free were a sixth of a request's instructions. Why
/// not mimalloc: the workspace's `Cargo.toml`.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(cli.log_format);
    let tokio = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = tokio.block_on(cli::run(cli.command));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The text format's fields as tracing writes them (`message name=value ...`),
/// with control characters in every value escaped: values carry event
/// attributes, plugin output and error texts from the network, and a newline in
/// one must not start a forged log line. (The JSON format escapes by itself.)
fn escaped_fields() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> + Send + Sync + 'static
{
    use tracing_subscriber::field::MakeExt as _;
    tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
        let value = format!("{value:?}");
        let value = router::event::Escaped(&value);
        match field.name() {
            "message" => write!(w, "{value}"),
            // Metadata of records from the `log` crate, shown in the line's
            // target already (as tracing's own formatter does).
            name if name.starts_with("log.") => Ok(()),
            name => {
                let name = name.strip_prefix("r#").unwrap_or(name);
                write!(w, "{name}={value}")
            }
        }
    })
    .delimited(" ")
}

fn init_logs(format: LogFormat) {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only on a terminal (and not under NO_COLOR): in a file or a pipe
    // the escape codes are noise to every reader and parser.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let fmt = match format {
        LogFormat::Text => fmt.fmt_fields(escaped_fields()).boxed(),
        LogFormat::Json => fmt.json().boxed(),
    };
    let registry = tracing_subscriber::registry().with(fmt.with_filter(filter));
    #[cfg(feature = "otel")]
    let registry = registry.with(router::otel::layer());
    registry.init();
}
