//! Compiles the plugins workspace (`plugins/`) for wasm32-wasip2 with a nested
//! cargo, the way wasmtime's `test-programs/artifacts` and Spin's
//! `test-components` do, and writes their paths to `$OUT_DIR/artifacts.rs`.

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
const PLUGINS: &[&str] = &["inventory", "enricher", "audit", "trap", "relay", "fail"];

fn main() {
    let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let repo = manifest_dir
        .ancestors()
        .nth(2)
        .expect("tests/artifacts lives two levels below the repository root")
        .to_path_buf();
    for dir in ["plugins", "guest-sdk", "wit"] {
        rerun_if_changed(&repo.join(dir));
    }
    ensure_target();

    // A fixed folder under the workspace's target/, because config/router.toml
    // refers to the plugins there.
    let target_dir = repo.join("target").join("wasm-plugins");
    let manifest = repo.join("plugins").join("Cargo.toml");
    let mut cargo = Command::new(env("CARGO"));
    cargo
        .arg("build")
        .arg("--release")
        .arg("--target")
        .arg(TARGET)
        .arg("--manifest-path")
        .arg(&manifest);
    if repo.join("plugins").join("Cargo.lock").exists() {
        cargo.arg("--locked");
    }
    // The outer build's settings are for the host; none of them may leak into the
    // guests' build.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if (key.starts_with("CARGO_") && key != "CARGO_HOME")
            || key.starts_with("RUSTC")
            || key == "RUSTFLAGS"
            || key == "RUSTDOCFLAGS"
        {
            cargo.env_remove(key.as_ref());
        }
    }
    cargo.env("CARGO_TARGET_DIR", &target_dir);
    let status = cargo
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo for the plugins: {e}"));
    assert!(status.success(), "building the plugins failed: {status}");

    let out = target_dir.join(TARGET).join("release");
    let mut code = String::new();
    for name in PLUGINS {
        let path = out.join(format!("{name}.wasm"));
        assert!(
            path.exists(),
            "plugin {name} was not built at {}",
            path.display()
        );
        code.push_str(&format!(
            "/// Path of the compiled `{name}` plugin component.\npub const {}: &str = {:?};\n",
            name.to_uppercase(),
            path.display().to_string()
        ));
    }
    code.push_str(&format!(
        "/// Folder holding every compiled plugin.\npub const PLUGIN_DIR: &str = {:?};\n",
        out.display().to_string()
    ));
    let dest = PathBuf::from(env("OUT_DIR")).join("artifacts.rs");
    std::fs::write(&dest, code).expect("write artifacts.rs");
}

fn env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| panic!("cargo sets {key} for build scripts"))
}

/// Installs the target when it is missing (toolchain auto-install is off on the
/// machines this runs on), or fails with the command that would.
fn ensure_target() {
    let sysroot = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let installed = sysroot.is_some_and(|s| s.join("lib/rustlib").join(TARGET).exists());
    if installed {
        return;
    }
    let added = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        added,
        "the {TARGET} target is missing and could not be installed: run `rustup target add {TARGET}`"
    );
}

fn rerun_if_changed(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    println!("cargo:rerun-if-changed={}", dir.display());
    for entry in entries.flatten() {
        let path = entry.path();
        if path.file_name().is_some_and(|n| n == "target") {
            continue;
        }
        if path.is_dir() {
            rerun_if_changed(&path);
        } else {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}
