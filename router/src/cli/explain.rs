//! `router explain`: what the routes would do with an event, without doing it.

use anyhow::Context as _;
use router::runtime::Runtime;
use std::process::ExitCode;

/// Prints the explanation of `event` (a structured CloudEvent file, or `-` for
/// standard input) under `config`.
pub async fn run(
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
    let (bytes, name) = if event == std::path::Path::new("-") {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)
            .context("cannot read the event from standard input")?;
        (bytes, "standard input".to_owned())
    } else {
        let bytes =
            std::fs::read(event).with_context(|| format!("cannot read {}", event.display()))?;
        (bytes, event.display().to_string())
    };
    let event = router::event::json::decode_structured(&bytes.into()).with_context(|| {
        format!("{name} is not a valid CloudEvent (a structured-mode JSON document)")
    })?;
    let explanation = router::explain::explain(&runtime, &event).await;
    if json {
        println!("{}", serde_json::to_string_pretty(&explanation)?);
    } else {
        print!("{explanation}");
    }
    Ok(ExitCode::SUCCESS)
}
