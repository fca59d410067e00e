//! Configuration errors pinned by expected-output files: every `tests/ui/*.toml`
//! is loaded (plugins included) and its errors compared with the `.stderr` beside
//! it. Run with `BLESS=1` to rewrite the expected files after a deliberate change.

use crate::common::check_expected;
use router::runtime::Runtime;
use std::path::Path;

async fn errors_of(path: &Path) -> String {
    match Runtime::load(path).await {
        Ok(_) => String::from("ok\n"),
        Err(errors) => errors.to_string(),
    }
}

#[tokio::test]
async fn config_errors_match_their_expected_output() {
    let mut cases: Vec<_> = std::fs::read_dir("tests/ui")
        .expect("tests/ui")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 5, "the ui cases are there");
    let mut mismatches = Vec::new();
    for case in &cases {
        let actual = errors_of(case).await;
        mismatches.extend(check_expected(&case.with_extension("stderr"), &actual));
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
