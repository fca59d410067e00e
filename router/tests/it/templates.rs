//! `router new`: a project made by the command, outside the repository, passes
//! its own tests and builds its component exactly as its README says, and the
//! router loads that component (`router check` on the project's `router.toml`),
//! in every language and for both kinds of plugin.

use crate::common::run;
use std::path::{Path, PathBuf};
use std::process::Command;

const ROUTER: &str = env!("CARGO_BIN_EXE_router");

/// The repository's `target/`, where the projects' tool caches outlive a run.
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target")
}

/// A command in `dir` with none of the outer cargo's settings for the build
/// running this test (a project outside the repository is built as by hand).
fn command_in(dir: &Path, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new(program);
    command.current_dir(dir);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key == "CARGO_TARGET_DIR"
            || key == "RUSTFLAGS"
            || key == "CARGO_ENCODED_RUSTFLAGS"
            || key.starts_with("CARGO_BUILD_")
            || key.starts_with("CARGO_PROFILE_")
        {
            command.env_remove(&*key);
        }
    }
    command
}

/// `router new KIND --lang LANG NAME --dir DIR`; returns the project's folder.
fn new_project(dir: &Path, kind: &str, lang: &str, name: &str) -> PathBuf {
    let out = run(Command::new(ROUTER)
        .args(["new", kind, "--lang", lang, name, "--dir"])
        .arg(dir));
    let project = dir.join(name);
    assert!(
        out.contains(&format!("created {}", project.display())),
        "{out}"
    );
    assert!(project.join("router.toml").is_file(), "{out}");
    project
}

/// `router check` on the project's configuration: the component loads.
fn router_checks(project: &Path) {
    let out = run(command_in(project, ROUTER).args(["check", "--config", "router.toml"]));
    assert!(out.contains("router.toml: ok (1 plugin, 1 route)"), "{out}");
}

#[test]
fn a_rust_project_passes_its_tests_builds_and_loads() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Both projects build in one cargo target folder kept in the repository's
    // target/, so that their dependencies build once, not per project and run.
    let shared = target_dir().join("templates/rust");
    std::fs::create_dir_all(&shared).expect("shared target dir");
    for (kind, name) in [("handler", "greeter"), ("transform", "stamper")] {
        let project = new_project(dir.path(), kind, "rust", name);
        std::os::unix::fs::symlink(&shared, project.join("target")).expect("symlink target");
        let tests = run(command_in(&project, "cargo").args(["test"]));
        assert!(tests.contains("test result: ok."), "{tests}");
        run(command_in(&project, "cargo").args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
        ]));
        router_checks(&project);
    }
}

#[test]
fn a_python_project_passes_its_tests_builds_and_loads() {
    let dir = tempfile::tempdir().expect("temp dir");
    // One virtual environment for both projects, set up as their README says.
    let venv = dir.path().join(".venv");
    run(command_in(dir.path(), "python3")
        .args(["-m", "venv"])
        .arg(&venv));
    for (i, (kind, name)) in [("handler", "greeter"), ("transform", "stamper")]
        .into_iter()
        .enumerate()
    {
        let project = new_project(dir.path(), kind, "python", name);
        if i == 0 {
            run(command_in(&project, venv.join("bin/pip")).args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
                "requirements.txt",
            ]));
        }
        let tests = run(command_in(&project, venv.join("bin/pytest"))
            .args(["-q", "-p", "no:cacheprovider"])
            .env("PYTHONDONTWRITEBYTECODE", "1"));
        assert!(tests.contains(" passed"), "{tests}");
        assert!(!tests.contains("failed"), "{tests}");
        run(command_in(&project, venv.join("bin/router-py")).arg("build"));
        assert!(project.join(format!("dist/{name}.wasm")).is_file());
        router_checks(&project);
    }
}

#[test]
fn a_javascript_project_passes_its_tests_builds_and_loads() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (kind, name) in [("handler", "greeter"), ("transform", "stamper")] {
        let project = new_project(dir.path(), kind, "js", name);
        // Twice: a second install must keep the toolchain whole (npm once
        // pruned a package that componentize-js imports without declaring it).
        for _ in 0..2 {
            run(command_in(&project, "npm").args(["install", "--no-audit", "--no-fund"]));
        }
        let tests = run(command_in(&project, "npm").arg("test"));
        assert!(tests.contains("# fail 0"), "{tests}");
        run(command_in(&project, "npm").args(["run", "build"]));
        assert!(project.join(format!("dist/{name}.wasm")).is_file());
        router_checks(&project);
    }
}

/// README's "Writing a handler" shows, in each language, code that `router
/// new` writes (and the tests above build and run).
#[test]
fn the_readme_shows_the_handlers_that_router_new_writes() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .expect("README.md");
    let section = &readme[readme.find("## Writing a handler").expect("the section")..];
    let section = &section[..section.find("\n## ").expect("the next section")];
    let dir = tempfile::tempdir().expect("temp dir");
    for (lang, file, fence) in [
        ("rust", "src/lib.rs", "```rust\n"),
        ("python", "greeter.py", "```python\n"),
        ("js", "app.js", "```js\n"),
    ] {
        let parent = dir.path().join(lang);
        std::fs::create_dir_all(&parent).expect("dir");
        let project = new_project(&parent, "handler", lang, "greeter");
        let written = std::fs::read_to_string(project.join(file)).expect("written");
        let block =
            &section[section.find(fence).unwrap_or_else(|| panic!("no {fence}")) + fence.len()..];
        let block = &block[..block.find("```").expect("the block ends")];
        assert!(block.lines().count() > 15, "{lang}: {block}");
        assert!(
            written.contains(block),
            "README's {lang} handler is not what `router new` writes in {file}:\n{block}"
        );
    }
}

#[test]
fn router_new_refuses_a_bad_name_an_occupied_folder_and_a_missing_sdk() {
    let dir = tempfile::tempdir().expect("temp dir");
    let attempt = |args: &[&str]| {
        let output = Command::new(ROUTER)
            .args(["new", "handler", "--lang", "rust", "--dir"])
            .arg(dir.path())
            .args(args)
            .output()
            .expect("router new");
        assert!(!output.status.success(), "{args:?} succeeded");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let error = attempt(&["Bad_Name"]);
    assert!(
        error.contains("invalid project name \"Bad_Name\""),
        "{error}"
    );
    std::fs::create_dir_all(dir.path().join("taken")).expect("dir");
    std::fs::write(dir.path().join("taken/keep.txt"), "mine").expect("file");
    let error = attempt(&["taken"]);
    assert!(error.contains("exists and is not empty"), "{error}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("taken/keep.txt")).expect("kept"),
        "mine"
    );
    let error = attempt(&["fine", "--sdk", "/nonexistent/guest-sdk"]);
    assert!(
        error.contains("no guest SDK at /nonexistent/guest-sdk (it needs rust/Cargo.toml)"),
        "{error}"
    );
    assert!(!dir.path().join("fine").exists());
}
