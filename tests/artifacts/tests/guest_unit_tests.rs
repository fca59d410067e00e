//! Runs the guest SDK's and the plugins' own unit tests (on the host, through the
//! SDK's `testing` module), so `cargo test --workspace` covers them too.

use std::process::Command;

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
    assert!(report.contains("test result: ok"), "{report}");
}
