//! Compiles the plugins workspace (`plugins/`) for wasm32-wasip2 with a nested
//! cargo, the way wasmtime's `crates/test-programs/artifacts` and Spin's
//! `tests/test-components` build their guests, and writes the paths of the
//! components to `$OUT_DIR/artifacts.rs`.
//!
//! Every directory of `plugins/` and of `examples/*/plugins/` with a `Cargo.toml`
//! is a plugin; its crate `<name>` becomes `<name>.wasm` (dashes as underscores)
//! and a constant `<NAME>`.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const TARGET: &str = "wasm32-wasip2";

/// The plugins the router's tests and the demo configuration rely on; the build
/// fails if one of them is not produced.
const REQUIRED: &[&str] = &[
    "inventory",
    "enricher",
    "audit",
    "trap",
    "relay",
    "fail",
    "kv-probe",
    "kv-legacy",
];

/// The preamble of a component: `\0asm`, version 0x0d, layer 1 (a core module
/// has layer 0, and the router refuses it).
const COMPONENT_HEADER: [u8; 8] = [0, b'a', b's', b'm', 0x0d, 0, 1, 0];

fn main() {
    let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let repo = manifest_dir
        .ancestors()
        .nth(2)
        .expect("tests/artifacts lives two levels below the repository root")
        .to_path_buf();
    let plugins_dir = repo.join("plugins");
    for dir in ["plugins", "guest-sdk/rust", "wit"] {
        watch(&repo.join(dir));
    }
    // The examples' own plugins live next to their configuration.
    for dir in example_plugin_dirs(&repo) {
        watch(&dir);
    }

    ensure_target();

    // A fixed directory rather than somewhere under OUT_DIR, because
    // config/router.toml and the README point at the plugins there.
    let target_dir = repo.join("target").join("wasm-plugins");
    build_plugins(&plugins_dir, &target_dir);

    let out = target_dir.join(TARGET).join("release");
    let plugins = plugin_names(&repo);
    for required in REQUIRED {
        assert!(
            plugins.iter().any(|name| name == required),
            "plugins/{required} is missing: the router's tests and config/router.toml need it"
        );
    }

    let mut code = String::new();
    let mut all = Vec::new();
    for name in &plugins {
        let path = out.join(format!("{}.wasm", name.replace('-', "_")));
        check_component(name, &path);
        let path = path.to_str().expect("the repository path is UTF-8");
        let constant = name.to_uppercase().replace('-', "_");
        writeln!(
            code,
            "/// Absolute path of the `{name}` plugin component.\n\
             pub const {constant}: &str = {path:?};"
        )
        .expect("write to a String");
        all.push(format!("({name:?}, {constant})"));
    }
    let out = out.to_str().expect("the repository path is UTF-8");
    writeln!(
        code,
        "/// Absolute path of the directory holding every compiled plugin.\n\
         pub const PLUGIN_DIR: &str = {out:?};\n\
         /// Every plugin as (name, absolute path), sorted by name.\n\
         pub const ALL: &[(&str, &str)] = &[{}];",
        all.join(", ")
    )
    .expect("write to a String");
    std::fs::write(PathBuf::from(env("OUT_DIR")).join("artifacts.rs"), code)
        .expect("write $OUT_DIR/artifacts.rs");
}

/// Runs `cargo build --release --target wasm32-wasip2` on the plugins workspace,
/// as if by hand: with the same toolchain, but none of the outer build's settings.
fn build_plugins(plugins_dir: &Path, target_dir: &Path) {
    let mut cargo = Command::new(env("CARGO"));
    cargo
        .arg("build")
        .arg("--release")
        .arg("--target")
        .arg(TARGET)
        .arg("--manifest-path")
        .arg(plugins_dir.join("Cargo.toml"));
    // With a lock file, the guests build with exactly the locked versions; without
    // one (a plugin author starting over), cargo must be free to write it.
    if plugins_dir.join("Cargo.lock").exists() {
        cargo.arg("--locked");
    }
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(leaks_into_nested_build) {
            cargo.env_remove(&key);
        }
    }
    // Miri runs build scripts with its own `RUSTC`, which cannot build wasm.
    if std::env::var_os("CARGO_CFG_MIRI").is_some() {
        cargo.env_remove("RUSTC");
    }
    cargo
        .env("CARGO_TARGET_DIR", target_dir)
        // Cargo reads `.cargo/config.toml` from the working directory up: the
        // plugins' own configuration, if they ever get one, must apply.
        .current_dir(plugins_dir)
        // Whatever the nested build prints on stdout must not be read by the
        // outer cargo as `cargo:` instructions from this script.
        .stdout(Stdio::from(std::io::stderr()));
    let shown = format!(
        "cargo build --release --target {TARGET} --manifest-path plugins/Cargo.toml (CARGO_TARGET_DIR={})",
        target_dir.display()
    );
    eprintln!("running: {shown}");
    let status = cargo
        .status()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    assert!(
        status.success(),
        "building the plugins failed ({status}); to see why, run:\n  \
         cargo build --release --target {TARGET} --manifest-path plugins/Cargo.toml"
    );
}

/// Whether `key` belongs to the outer build and must not reach the nested one:
/// what cargo sets to describe this build script's package and target, and the
/// host build's flags, target directory, profile, wrappers and jobserver, which
/// are wrong for the guests (host `RUSTFLAGS` may not even be valid for wasm).
///
/// `RUSTC` and `RUSTUP_TOOLCHAIN` stay, so the guests build with the same
/// compiler as the host and the `rustc` that [`ensure_target`] checked.
fn leaks_into_nested_build(key: &str) -> bool {
    const EXACT: &[&str] = &[
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_ENCODED_RUSTDOCFLAGS",
        "RUSTFLAGS",
        "RUSTDOCFLAGS",
        "CARGO_TARGET_DIR",
        // The nested build runs its own job pool, as it would by hand.
        "CARGO_MAKEFLAGS",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_CRATE_NAME",
        "CARGO_RUSTC_CURRENT_DIR",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_LINKER",
        "RUSTDOC",
        "TARGET",
        "HOST",
        "OUT_DIR",
        "NUM_JOBS",
        "OPT_LEVEL",
        "PROFILE",
        "DEBUG",
    ];
    const PREFIXES: &[&str] = &[
        "CARGO_BUILD_",
        "CARGO_MANIFEST_",
        "CARGO_PKG_",
        "CARGO_CFG_",
        "CARGO_FEATURE_",
        // The plugins' release profile is tuned for small components; an override
        // meant for the host (say, debug info) must not bloat them.
        "CARGO_PROFILE_",
        // cargo-internal variables (`cargo fix` and friends).
        "__CARGO_",
    ];
    EXACT.contains(&key) || PREFIXES.iter().any(|prefix| key.starts_with(prefix))
}

/// Installs the wasm32-wasip2 target when the compiler lacks it, because rustup
/// only installs the targets of `rust-toolchain.toml` when it installs the
/// toolchain itself. Fails with the command to run when that is not possible.
fn ensure_target() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()));
    if sysroot
        .as_ref()
        .is_some_and(|sysroot| sysroot.join("lib/rustlib").join(TARGET).is_dir())
    {
        return;
    }

    // Name the toolchain explicitly: rustup resolves it from the working
    // directory otherwise, which may not be the one building us.
    let mut args = vec!["target", "add", TARGET];
    let toolchain = std::env::var("RUSTUP_TOOLCHAIN").ok();
    if let Some(toolchain) = &toolchain {
        args.extend(["--toolchain", toolchain]);
    }
    let command = format!("rustup {}", args.join(" "));
    // On stderr, not as a `cargo:warning`: cargo replays a build script's
    // warnings on every later build that reuses its output, when the target has
    // long been installed. A failure below is shown with the command anyway.
    eprintln!("the {TARGET} target is missing; running `{command}`");
    let added = Command::new("rustup")
        .args(&args)
        .stdout(Stdio::from(std::io::stderr()))
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        added,
        "the {TARGET} target is not installed for {rustc} and `{command}` failed; \
         run it yourself:\n  {command}"
    );
}

/// The `examples/*/plugins` directories, sorted.
fn example_plugin_dirs(repo: &Path) -> Vec<PathBuf> {
    let Ok(examples) = std::fs::read_dir(repo.join("examples")) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = examples
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("plugins"))
        .filter(|dir| dir.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// The plugins: the crate of each directory of `plugins/` and of
/// `examples/*/plugins/` with a `Cargo.toml` (the plugins workspace lists both),
/// sorted. Crate names are unique in a workspace, so they name the components.
fn plugin_names(repo: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for dir in std::iter::once(repo.join("plugins")).chain(example_plugin_dirs(repo)) {
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
        names.extend(
            entries
                .filter_map(Result::ok)
                .filter(|entry| {
                    entry.file_name() != "target" && entry.path().join("Cargo.toml").is_file()
                })
                .map(|entry| crate_name(&entry.path().join("Cargo.toml"))),
        );
    }
    names.sort();
    names
}

/// The `name` of the `[package]` of the manifest at `path`.
fn crate_name(path: &Path) -> String {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .map(str::trim)
        .skip_while(|line| *line != "[package]")
        .take_while(|line| !line.starts_with('[') || *line == "[package]")
        .find_map(|line| {
            let value = line.strip_prefix("name")?.trim_start().strip_prefix('=')?;
            Some(value.trim().trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| panic!("{} has no [package] name", path.display()))
}

/// Fails the build unless `path` is a component, with a hint at the usual
/// causes: a wrong crate name or type, or a crate left out of the workspace.
fn check_component(name: &str, path: &Path) {
    let mut header = [0; 8];
    let read = std::fs::File::open(path).and_then(|mut file| file.read_exact(&mut header));
    if let Err(e) = read {
        panic!(
            "plugin {name} produced no component at {} ({e}): is it a member of \
             plugins/Cargo.toml, and a `cdylib`?",
            path.display()
        );
    }
    assert_eq!(
        header,
        COMPONENT_HEADER,
        "{} is not a WebAssembly component",
        path.display()
    );
}

/// Asks cargo to rerun this script when anything under `path` changes, except in
/// `target` directories. Cargo scans a listed directory recursively, so a
/// directory holding a `target` is not listed itself, only its other entries.
fn watch(path: &Path) {
    let Ok(entries) = std::fs::read_dir(path) else {
        println!("cargo:rerun-if-changed={}", path.display());
        return;
    };
    let entries: Vec<_> = entries.filter_map(Result::ok).collect();
    if !entries
        .iter()
        .any(|entry| entry.file_name() == OsStr::new("target"))
    {
        println!("cargo:rerun-if-changed={}", path.display());
        return;
    }
    for entry in entries {
        if entry.file_name() != OsStr::new("target") {
            watch(&entry.path());
        }
    }
}

fn env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| panic!("cargo sets {key} for build scripts"))
}
