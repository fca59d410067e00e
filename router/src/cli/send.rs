//! `router send`: post an event from flags or a file, like `kn event send`.

use bytes::Bytes;
use router::event::Event;
use router::event::http::encode_binary;
use router::event::json::{decode_batch, decode_structured, encode_structured};
use std::path::PathBuf;

/// How to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Attributes in `ce-` headers, data as the body.
    Binary,
    /// One `application/cloudevents+json` document.
    Structured,
    /// An `application/cloudevents-batch+json` array.
    Batch,
}

/// What `router send` needs: `--type` (with the other attribute flags), or
/// `--file`.
#[derive(Clone, Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("event").required(true).args(["ty", "file"])))]
pub struct SendArgs {
    /// Where to send: the router's `/events` URL.
    #[arg(long, default_value = "http://127.0.0.1:8080/events")]
    pub url: String,
    /// The content mode.
    #[arg(long, value_enum, default_value = "binary")]
    pub mode: Mode,
    /// A JSON file holding an event (or, for batches, an array of events); the
    /// attribute flags are ignored when it is given.
    #[arg(long, conflicts_with_all = ["id", "source", "ty", "data", "data_file"])]
    pub file: Option<PathBuf>,
    /// `id`; a time-based one when absent.
    #[arg(long)]
    pub id: Option<String>,
    /// `source`.
    #[arg(long, default_value = "/router-send")]
    pub source: String,
    /// `type` (required, unless --file gives whole events).
    #[arg(long = "type", id = "ty", value_name = "TYPE")]
    pub ty: Option<String>,
    /// `subject`.
    #[arg(long)]
    pub subject: Option<String>,
    /// Extension attributes, `name=value`, repeatable.
    #[arg(long = "extension", value_parser = parse_extension)]
    pub extensions: Vec<(String, String)>,
    /// The data, as text.
    #[arg(long, conflicts_with = "data_file")]
    pub data: Option<String>,
    /// The data, from a file.
    #[arg(long)]
    pub data_file: Option<PathBuf>,
    /// `datacontenttype` of the data.
    #[arg(long, default_value = "application/json")]
    pub content_type: String,
    /// A bearer token for routers that require credentials.
    #[arg(long, env = "ROUTER_TOKEN")]
    pub bearer: Option<String>,
}

fn parse_extension(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{text:?} is not name=value"))
}

/// Why nothing was sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The event could not be built or read.
    #[error("{0}")]
    Input(String),
    /// The request failed.
    #[error(
        "cannot reach the router at {url}: {reason}\n  is `router serve` running? Use --url for another address (the `server.listen` of its configuration, path /events)"
    )]
    Request {
        /// Where.
        url: String,
        /// Why.
        reason: String,
    },
    /// The answer was a redirect, which is not followed.
    #[error(
        "{url} answered {status} redirecting to {location}; redirects are not followed\n  give the router's ingest address itself with --url"
    )]
    Redirect {
        /// Where the events went.
        url: String,
        /// The answer's status.
        status: u16,
        /// Where it pointed, escaped.
        location: String,
    },
}

/// Builds the events from the arguments.
pub fn events(args: &SendArgs) -> Result<Vec<Event>, SendError> {
    if let Some(file) = &args.file {
        let text = std::fs::read(file)
            .map_err(|e| SendError::Input(format!("cannot read {}: {e}", file.display())))?;
        let body = Bytes::from(text);
        let is_array = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
        return if is_array {
            decode_batch(&body, usize::MAX).map_err(|e| SendError::Input(e.to_string()))
        } else {
            decode_structured(&body)
                .map(|e| vec![e])
                .map_err(|e| SendError::Input(e.to_string()))
        };
    }
    let ty = args
        .ty
        .clone()
        .ok_or_else(|| SendError::Input("--type is required (or --file)".into()))?;
    let id = args.id.clone().unwrap_or_else(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        format!("send-{}", now.as_nanos())
    });
    let mut event = Event::new(id, args.source.clone(), ty);
    event.subject = args.subject.clone();
    event.time = Some(chrono::Utc::now().to_rfc3339());
    for (k, v) in &args.extensions {
        event.set_extension(k, v.clone());
    }
    let data = match (&args.data, &args.data_file) {
        (Some(text), _) => Some(Bytes::from(text.clone())),
        (None, Some(path)) => {
            Some(Bytes::from(std::fs::read(path).map_err(|e| {
                SendError::Input(format!("cannot read {}: {e}", path.display()))
            })?))
        }
        (None, None) => None,
    };
    if data.is_some() {
        event.datacontenttype = Some(args.content_type.clone());
    }
    event.data = data;
    event
        .validate()
        .map_err(|e| SendError::Input(format!("the event is invalid: {e}")))?;
    Ok(vec![event])
}

/// Sends the events; returns the answer's status and body.
pub async fn send(args: &SendArgs) -> Result<(u16, String), SendError> {
    let events = events(args)?;
    let client = super::http_client();
    // A person at a terminal wants to see where the event went.
    let mut request = client
        .post(&args.url)
        .header("prefer", "return=representation");
    request = match (args.mode, events.as_slice()) {
        (Mode::Binary, [event]) => {
            let (headers, body) = encode_binary(event);
            request.headers(headers).body(body)
        }
        (Mode::Structured, [event]) => request
            .header("content-type", "application/cloudevents+json")
            .body(encode_structured(event)),
        (Mode::Batch, _) | (_, [] | [_, _, ..]) => {
            let items: Vec<serde_json::Value> = events
                .iter()
                .filter_map(|e| serde_json::from_slice(&encode_structured(e)).ok())
                .collect();
            request
                .header("content-type", "application/cloudevents-batch+json")
                .body(serde_json::to_vec(&items).unwrap_or_default())
        }
    };
    if let Some(token) = &args.bearer {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.map_err(|e| SendError::Request {
        url: args.url.clone(),
        reason: super::unreachable(&e),
    })?;
    let status = response.status().as_u16();
    if response.status().is_redirection() {
        return Err(SendError::Redirect {
            url: args.url.clone(),
            status,
            location: router::redirect_location(response.headers()),
        });
    }
    let body = response.text().await.unwrap_or_default();
    Ok((status, body))
}

/// Posts the event and prints the answer; fails unless it is a 2xx.
pub async fn run_send(args: &SendArgs) -> anyhow::Result<std::process::ExitCode> {
    let (status, body) = send(args).await?;
    println!("{status}");
    println!("{body}");
    Ok(if (200..300).contains(&status) {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}
