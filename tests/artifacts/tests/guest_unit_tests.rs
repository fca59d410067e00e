//! Runs the guest SDK's and the plugins' own unit tests (on the host, through the
//! SDK's `testing` module), so `cargo test --workspace` covers them too.

use std::process::Command;

/// Tests in the plugins workspace on 2 December 2026 (86 unit tests, 9 of the
/// SDK's doc-tests): fewer means some stopped being built or run. Raise it when
/// tests are added.
const AT_LEAST: u32 = 95;

/// The `N passed` and `M failed` of every `test result:` line of a libtest report.
fn counts(report: &str) -> Vec<(u32, u32)> {
    report
        .lines()
        .filter_map(|line| line.trim().strip_prefix("test result: "))
        .map(|result| {
            let count = |what: &str| {
                result
                    .split(';')
                    .find_map(|part| part.trim().strip_suffix(what))
                    .and_then(|n| n.trim().rsplit(' ').next()?.parse::<u32>().ok())
                    .unwrap_or_else(|| panic!("no `{what}` count in {result:?}"))
            };
            (count(" passed"), count(" failed"))
        })
        .collect()
}

#[test]
fn counts_are_read_from_every_result_line() {
    let report = "running 2 tests\ntest result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n\
                  test result: FAILED. 3 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out\n\
                  test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out\n";
    assert_eq!(counts(report), [(2, 0), (3, 1), (0, 0)]);
}

#[test]
fn guest_sdk_and_plugin_unit_tests_pass() {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../../plugins/Cargo.toml");
    let target_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/guest-host-tests");
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .args(["test", "--workspace", "--manifest-path", manifest])
        .env("CARGO_TARGET_DIR", target_dir);
    // This test's own build settings are not the nested build's.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_") && !matches!(key.as_ref(), "CARGO_HOME" | "CARGO_TARGET_DIR")
            || key == "RUSTFLAGS"
        {
            cargo.env_remove(key.as_ref());
        }
    }
    let out = cargo
        .output()
        .expect("run cargo test for the plugins workspace");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{report}");
    let counts = counts(&report);
    assert!(
        counts.iter().all(|&(_, failed)| failed == 0),
        "{counts:?}\n{report}"
    );
    let passed: u32 = counts.iter().map(|&(passed, _)| passed).sum();
    assert!(
        passed >= AT_LEAST,
        "{passed} tests passed in {} test binaries, expected at least {AT_LEAST}:\n{report}",
        counts.len()
    );
}
