//! `router explain` output, pinned by expected files: every `tests/explain/*.json`
//! event is explained against `tests/explain/router.toml`, as text and as JSON, and
//! compared with the `.txt` and `.out.json` beside it (`BLESS=1` rewrites them).

use crate::common::check_expected;
use std::process::Command;

const ROUTER: &str = env!("CARGO_BIN_EXE_router");

#[test]
fn explain_output_matches_the_expected_files() {
    let mut events: Vec<_> = std::fs::read_dir("tests/explain")
        .expect("tests/explain")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "json")
                && !p.to_string_lossy().ends_with(".out.json")
                && !p.to_string_lossy().ends_with(".schema.json")
        })
        .collect();
    events.sort();
    assert!(events.len() >= 3, "the explain cases are there");
    let mut mismatches = Vec::new();
    for event in &events {
        for (flag, expected_path) in [
            (None, event.with_extension("txt")),
            (Some("--json"), event.with_extension("out.json")),
        ] {
            let mut cmd = Command::new(ROUTER);
            cmd.args(["explain", "--config", "tests/explain/router.toml"])
                .arg(event);
            cmd.args(flag);
            let out = cmd.output().expect("router explain");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let actual = String::from_utf8_lossy(&out.stdout);
            mismatches.extend(check_expected(&expected_path, &actual));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
