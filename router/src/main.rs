//! The `router` binary: command line, logging, configuration, then the server.

use anyhow::Context as _;
use clap::Parser as _;
use router::cli::{Cli, Command, LogFormat};
use router::runtime::Runtime;
use router::server::Server;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

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
    let result = tokio.block_on(async {
        match cli.command {
            Command::Send(args) => send(&args).await,
            Command::Sink(args) => router::sink::run(&args)
                .await
                .map(|()| ExitCode::SUCCESS)
                .context("router sink"),
            Command::Check { config } => check(&config).await,
            Command::Dlq { url, action } => dlq(&url, action).await,
            Command::Explain {
                config,
                event,
                json,
            } => explain(&config, &event, json).await,
            Command::Serve {
                config,
                listen,
                no_watch,
            } => serve(&config, listen, no_watch).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logs(format: LogFormat) {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().boxed(),
    };
    let registry = tracing_subscriber::registry().with(fmt.with_filter(filter));
    #[cfg(feature = "otel")]
    let registry = registry.with(router::trace::otel::layer());
    registry.init();
}

/// `router dlq`: a client of `/admin/dlq`.
async fn dlq(url: &str, action: router::cli::DlqAction) -> anyhow::Result<ExitCode> {
    use router::cli::DlqAction;
    let base = url.trim_end_matches('/');
    let client = reqwest::Client::new();
    let request = match &action {
        DlqAction::List { route, .. } => {
            let mut request = client.get(format!("{base}/admin/dlq"));
            if let Some(route) = route {
                request = request.query(&[("route", route)]);
            }
            request
        }
        DlqAction::Show { id } => client.get(format!("{base}/admin/dlq/{id}")),
        DlqAction::Redrive { ids, route } => client
            .post(format!("{base}/admin/dlq/redrive"))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::json!({ "ids": ids, "route": route }).to_string()),
    };
    let response = request
        .send()
        .await
        .with_context(|| format!("cannot reach the router at {base}"))?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .context("cannot read the router's answer")?;
    let body: serde_json::Value =
        serde_json::from_slice(&bytes).context("the router's answer is not JSON")?;
    if !status.is_success() {
        eprintln!(
            "error: {status}: {}",
            body["error"].as_str().unwrap_or("(no message)")
        );
        return Ok(ExitCode::FAILURE);
    }
    match action {
        DlqAction::List { json: false, .. } => {
            let letters = body["dead_letters"].as_array().cloned().unwrap_or_default();
            println!("{} dead letter(s)", letters.len());
            for l in letters {
                println!(
                    "{}  route={}  event={}  attempts={}  reason={}  at={}  error={}",
                    l["id"].as_str().unwrap_or_default(),
                    l["route"].as_str().unwrap_or_default(),
                    l["event"]["id"].as_str().unwrap_or_default(),
                    l["attempts"],
                    l["reason"].as_str().unwrap_or_default(),
                    l["dead_lettered_at"].as_str().unwrap_or_default(),
                    l["error"].as_str().unwrap_or_default(),
                );
            }
        }
        DlqAction::Redrive { .. } => {
            println!("{} redriven", body["redriven"]);
            for r in body["results"].as_array().into_iter().flatten() {
                // A route's report has an outcome; a poison entry's (routed through
                // every route) has one per route.
                let per_route: Vec<String> = r["report"]["routes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|route| {
                        format!(
                            "{}={}",
                            route["route"].as_str().unwrap_or_default(),
                            route["outcome"].as_str().unwrap_or_default()
                        )
                    })
                    .collect();
                let outcome = match r["report"]["outcome"].as_str().or(r["error"].as_str()) {
                    Some(outcome) => outcome.to_owned(),
                    None if per_route.is_empty() => "no route matches".to_owned(),
                    None => per_route.join(" "),
                };
                println!("{}  {outcome}", r["id"].as_str().unwrap_or_default());
            }
        }
        _ => println!("{}", serde_json::to_string_pretty(&body)?),
    }
    Ok(ExitCode::SUCCESS)
}

async fn check(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    match Runtime::load(path).await {
        Ok((config, _)) => {
            println!(
                "{}: ok ({} plugins, {} routes)",
                path.display(),
                config.plugins.len(),
                config.routes.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            eprint!("{errors}");
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn serve(
    path: &std::path::Path,
    listen: Option<std::net::SocketAddr>,
    no_watch: bool,
) -> anyhow::Result<ExitCode> {
    let (config, runtime) = match Runtime::load(path).await {
        Ok(loaded) => loaded,
        Err(errors) => {
            eprint!("{errors}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let tls = match router::tls::acceptor(&config) {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let server = Server::new(&config, runtime).with_tls(tls);
    if config.reload.watch && !no_watch {
        server
            .watch()
            .context("cannot watch the configuration files")?;
    }
    reload_on_sighup(&server);
    let addr = listen.unwrap_or(config.server.listen);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(
        addr = %listener.local_addr()?,
        plugins = config.plugins.len(),
        routes = config.routes.len(),
        "router serving"
    );
    server.run(listener, shutdown_signal()).await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

async fn explain(
    config: &std::path::Path,
    event: &std::path::Path,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let (_, runtime) = match Runtime::load(config).await {
        Ok(loaded) => loaded,
        Err(errors) => {
            eprint!("{errors}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let bytes = std::fs::read(event).with_context(|| format!("cannot read {}", event.display()))?;
    let event = router::event::json::decode_structured(&bytes.into())
        .with_context(|| format!("{} is not a valid CloudEvent", event.display()))?;
    let explanation = router::explain::explain(&runtime, &event).await;
    if json {
        println!("{}", serde_json::to_string_pretty(&explanation)?);
    } else {
        print!("{explanation}");
    }
    Ok(ExitCode::SUCCESS)
}

async fn send(args: &router::send::SendArgs) -> anyhow::Result<ExitCode> {
    let (status, body) = router::send::send(args).await?;
    println!("{status}");
    println!("{body}");
    Ok(if (200..300).contains(&status) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// SIGHUP asks for a reload, as daemons conventionally do.
fn reload_on_sighup(server: &Server) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let reloader = std::sync::Arc::clone(server.reloader());
        match signal(SignalKind::hangup()) {
            Ok(mut hangups) => {
                tokio::spawn(async move {
                    while hangups.recv().await.is_some() {
                        tracing::info!("SIGHUP: reloading");
                        reloader.request();
                    }
                });
            }
            Err(e) => tracing::warn!(error = %e, "cannot watch SIGHUP"),
        }
    }
    #[cfg(not(unix))]
    let _ = server;
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; only SIGINT stops the router");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
