//! Builds the Python and JavaScript plugins (`plugins/python/*`, `plugins/js/*`)
//! with their SDKs' own build commands (`router-py build`, `router-js build`) in
//! toolchains that this script installs under `target/guest-toolchains/` at the
//! versions the SDKs pin (`guest-sdk/python/pyproject.toml`,
//! `guest-sdk/js/package.json`).
//!
//! A component takes tens of seconds to build, so each is kept under the SHA-256
//! of everything that goes into it (the plugin's files, its SDK, the WIT and the
//! toolchain's pins): an unchanged plugin is never built again, and a clean
//! checkout builds each once.

use sha2::{Digest as _, Sha256};
use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// The preamble of a component: `\0asm`, version 0x0d, layer 1.
const COMPONENT_HEADER: [u8; 8] = [0, b'a', b's', b'm', 0x0d, 0, 1, 0];

fn main() {
    let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let repo = manifest_dir
        .ancestors()
        .nth(2)
        .expect("tests/polyglot lives two levels below the repository root")
        .to_path_buf();
    for lang in [Lang::Python, Lang::Js] {
        println!(
            "cargo:rerun-if-changed={}",
            repo.join("plugins").join(lang.dir()).display()
        );
        println!(
            "cargo:rerun-if-changed={}",
            repo.join("guest-sdk").join(lang.dir()).display()
        );
    }
    println!("cargo:rerun-if-changed={}", repo.join("wit").display());
    println!("cargo:rerun-if-env-changed=PYTHON");

    // Fixed folders in target/ rather than OUT_DIR: the toolchains and
    // components outlive this build script's output (a changed feature or
    // profile must not install or build them again).
    let (tools, built) = build_all(&repo, &repo.join("target"));
    let mut code = String::new();
    let mut all = Vec::new();
    for component in &built {
        check_component(&component.path);
        let constant = format!(
            "{}_{}",
            component.name.to_uppercase().replace('-', "_"),
            component.lang.suffix()
        );
        writeln!(
            code,
            "/// Absolute path of the component built from `plugins/{}/{}`.\n\
             pub const {constant}: &str = {:?};",
            component.lang.dir(),
            component.name,
            utf8(&component.path),
        )
        .expect("write to a String");
        all.push(format!(
            "({:?}, {:?}, {constant})",
            component.lang.dir(),
            component.name
        ));
    }
    writeln!(
        code,
        "/// Every plugin as (language folder, name, absolute path of its component).\n\
         pub const ALL: &[(&str, &str, &str)] = &[{}];\n\
         /// The Python of the toolchain that built the Python plugins: it has\n\
         /// componentize-py and pytest at the SDK's pinned versions.\n\
         pub const PYTHON: &str = {:?};\n\
         /// The `router-js` command of the installed JavaScript SDK.\n\
         pub const ROUTER_JS: &str = {:?};\n\
         /// The JavaScript SDK as installed, its toolchain in its `node_modules`.\n\
         pub const JS_SDK: &str = {:?};",
        all.join(", "),
        utf8(&tools.python),
        utf8(&tools.router_js),
        utf8(&tools.js_sdk),
    )
    .expect("write to a String");
    std::fs::write(PathBuf::from(env("OUT_DIR")).join("polyglot.rs"), code)
        .expect("write $OUT_DIR/polyglot.rs");
}

/// Fails the build unless `path` is a component.
fn check_component(path: &Path) {
    let mut header = [0; 8];
    let read = std::fs::File::open(path).and_then(|mut file| file.read_exact(&mut header));
    if let Err(e) = read {
        panic!("no component at {}: {e}", path.display());
    }
    assert_eq!(
        header,
        COMPONENT_HEADER,
        "{} is not a WebAssembly component",
        path.display()
    );
}

fn utf8(path: &Path) -> &str {
    path.to_str().expect("the repository path is UTF-8")
}

fn env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| panic!("cargo sets {key} for build scripts"))
}

/// A language with an SDK of its own under `guest-sdk/`.
#[derive(Clone, Copy, Debug)]
enum Lang {
    /// `guest-sdk/python`, built with componentize-py.
    Python,
    /// `guest-sdk/js`, built with componentize-js.
    Js,
}

impl Lang {
    /// The folder of `plugins/` and of `guest-sdk/` that holds this language.
    fn dir(self) -> &'static str {
        match self {
            Lang::Python => "python",
            Lang::Js => "js",
        }
    }

    /// The suffix of the generated constants: `INVENTORY_PY`.
    fn suffix(self) -> &'static str {
        match self {
            Lang::Python => "PY",
            Lang::Js => "JS",
        }
    }

    /// The file that makes a folder of `plugins/<lang>/` a plugin project.
    fn manifest(self) -> &'static str {
        match self {
            Lang::Python => "pyproject.toml",
            Lang::Js => "package.json",
        }
    }
}

/// A built component.
struct Built {
    /// Its language.
    lang: Lang,
    /// The plugin's folder name.
    name: String,
    /// The component.
    path: PathBuf,
}

/// Where the installed toolchains are, for tests that run the SDKs' own tools.
struct Toolchains {
    /// The Python of the virtual environment with componentize-py and pytest.
    python: PathBuf,
    /// The `router-js` command of the installed JS SDK.
    router_js: PathBuf,
    /// The JS SDK as installed (its `node_modules` hold the toolchain).
    js_sdk: PathBuf,
}

/// Installs the toolchains when they are missing or their pins changed, builds
/// every plugin whose inputs changed, and returns every component.
fn build_all(repo: &Path, target: &Path) -> (Toolchains, Vec<Built>) {
    let toolchains = target.join("guest-toolchains");
    let python = python_toolchain(repo, &toolchains.join("python"));
    let (router_js, js_sdk) = js_toolchain(repo, &toolchains.join("js"));
    let tools = Toolchains {
        python,
        router_js,
        js_sdk,
    };

    let mut jobs = Vec::new();
    for lang in [Lang::Python, Lang::Js] {
        let dir = repo.join("plugins").join(lang.dir());
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut plugins: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.join(lang.manifest()).is_file())
            .collect();
        plugins.sort();
        for plugin in plugins {
            let name = file_name(&plugin);
            let out = target
                .join("wasm-plugins")
                .join(lang.dir())
                .join(format!("{name}.wasm"));
            jobs.push((lang, name, plugin, out));
        }
    }

    // Two at a time: each build is one busy process and a few hundred MB.
    let queue = Mutex::new(jobs.iter());
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                loop {
                    let job = queue.lock().expect("queue").next();
                    let Some((lang, name, plugin, out)) = job else {
                        break;
                    };
                    if let Err(e) = build_cached(repo, &tools, *lang, plugin, out) {
                        failures
                            .lock()
                            .expect("failures")
                            .push(format!("{}/{name}: {e}", lang.dir()));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().expect("failures");
    assert!(
        failures.is_empty(),
        "building the Python and JavaScript plugins failed:\n{}",
        failures.join("\n")
    );
    let built = jobs
        .into_iter()
        .map(|(lang, name, _, path)| Built { lang, name, path })
        .collect();
    (tools, built)
}

/// Builds `plugin` into `out` unless `out` was built from the same inputs.
fn build_cached(
    repo: &Path,
    tools: &Toolchains,
    lang: Lang,
    plugin: &Path,
    out: &Path,
) -> Result<(), String> {
    let mut key = Sha256::new();
    key.update(lang.dir());
    hash_tree(&mut key, plugin);
    hash_tree(&mut key, &repo.join("guest-sdk").join(lang.dir()));
    hash_tree(&mut key, &repo.join("wit"));
    let key = hex(&key.finalize());
    let key_file = out.with_extension("wasm.sha256");
    if out.is_file() && std::fs::read_to_string(&key_file).is_ok_and(|k| k.trim() == key) {
        return Ok(());
    }
    let parent = out.parent().expect("out has a folder");
    std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    // Written aside and renamed, so an interrupted build never leaves a
    // component that looks finished.
    let partial = out.with_extension("wasm.partial");
    let mut command = match lang {
        Lang::Python => {
            let mut command = Command::new(&tools.python);
            // The SDK from the checkout, so that an edit applies at once; the
            // virtual environment supplies componentize-py.
            command
                .args(["-m", "router_guest", "build"])
                .env("PYTHONPATH", repo.join("guest-sdk/python/src"))
                .env("PYTHONDONTWRITEBYTECODE", "1");
            command
        }
        Lang::Js => {
            let mut command = Command::new(&tools.router_js);
            command.arg("build");
            command
        }
    };
    command.arg(plugin).arg("-o").arg(&partial);
    let shown = format!("{command:?}");
    run(&mut command, &shown)?;
    std::fs::rename(&partial, out).map_err(|e| format!("{}: {e}", out.display()))?;
    std::fs::write(&key_file, key).map_err(|e| format!("{}: {e}", key_file.display()))?;
    Ok(())
}

/// A virtual environment with the SDK's pinned dependencies (componentize-py,
/// pytest), made again when `guest-sdk/python/pyproject.toml` changes. Returns
/// its Python.
fn python_toolchain(repo: &Path, venv: &Path) -> PathBuf {
    let sdk = repo.join("guest-sdk/python");
    let python = venv.join("bin/python");
    let stamp = stamp_of(&[&sdk.join("pyproject.toml")]);
    if fresh(venv, &stamp) && python.is_file() {
        return python;
    }
    let system = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
    if !Command::new(&system)
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        panic!(
            "the Python plugins (plugins/python) need Python 3.10 or later with venv and \
             pip, as `{system}` (or $PYTHON): install it (Debian: apt-get install python3 \
             python3-venv)"
        );
    }
    let _ = std::fs::remove_dir_all(venv);
    eprintln!(
        "installing the Python plugin toolchain in {}",
        venv.display()
    );
    let mut venv_cmd = Command::new(&system);
    venv_cmd.arg("-m").arg("venv").arg(venv);
    expect_ok(
        &mut venv_cmd,
        "creating the Python toolchain's virtual environment",
    );
    // The SDK with its `test` extra: componentize-py and pytest at the pinned
    // versions. The checkout's SDK shadows this copy (PYTHONPATH) when building.
    let mut pip = Command::new(&python);
    pip.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ])
    .arg(format!("{}[test]", sdk.display()));
    expect_ok(
        &mut pip,
        "installing componentize-py and pytest from PyPI (guest-sdk/python/pyproject.toml pins them)",
    );
    write_stamp(venv, &stamp);
    python
}

/// The JS SDK installed with its pinned dependencies (componentize-js and the
/// bundler) into a prefix, again whenever anything in `guest-sdk/js` changes
/// (npm installs a copy of it). Returns its `router-js` and the installed SDK.
fn js_toolchain(repo: &Path, prefix: &Path) -> (PathBuf, PathBuf) {
    let sdk = repo.join("guest-sdk/js");
    let router_js = prefix.join("node_modules/.bin/router-js");
    let installed = prefix.join("node_modules/router-guest");
    let mut stamp = Sha256::new();
    hash_tree(&mut stamp, &sdk);
    let stamp = hex(&stamp.finalize());
    if fresh(prefix, &stamp) && router_js.exists() {
        return (router_js, installed);
    }
    if !Command::new("npm")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        panic!(
            "the JavaScript plugins (plugins/js) need Node.js 20 or later with npm: install \
             them (Debian: apt-get install nodejs npm)"
        );
    }
    let _ = std::fs::remove_dir_all(prefix);
    std::fs::create_dir_all(prefix).unwrap_or_else(|e| panic!("{}: {e}", prefix.display()));
    eprintln!(
        "installing the JavaScript plugin toolchain in {}",
        prefix.display()
    );
    let mut npm = Command::new("npm");
    npm.arg("install")
        .arg("--prefix")
        .arg(prefix)
        // A copy, not a link: the SDK's dependencies land in the prefix.
        .args([
            "--install-links",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ])
        .arg(&sdk);
    expect_ok(
        &mut npm,
        "installing the JS SDK and componentize-js from npm (guest-sdk/js/package.json pins them)",
    );
    write_stamp(prefix, &stamp);
    (router_js, installed)
}

/// Runs `command`, its output going to this script's stderr (shown by cargo
/// when the build fails); an error carries the command.
fn run(command: &mut Command, shown: &str) -> Result<(), String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    eprint!("{}", String::from_utf8_lossy(&output.stdout));
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    if output.status.success() {
        Ok(())
    } else {
        let tail: String = String::from_utf8_lossy(&output.stderr)
            .lines()
            .rev()
            .take(15)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        Err(format!("{shown} failed ({}):\n{tail}", output.status))
    }
}

fn expect_ok(command: &mut Command, what: &str) {
    let shown = format!("{command:?}");
    if let Err(e) = run(command, &shown) {
        panic!("{what} failed: {e}");
    }
}

/// The SHA-256 of the contents of `files`.
fn stamp_of(files: &[&Path]) -> String {
    let mut hash = Sha256::new();
    for file in files {
        hash.update(std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display())));
    }
    hex(&hash.finalize())
}

/// Whether `dir` was made from the inputs of `stamp`.
fn fresh(dir: &Path, stamp: &str) -> bool {
    std::fs::read_to_string(dir.join(".stamp")).is_ok_and(|s| s.trim() == stamp)
}

fn write_stamp(dir: &Path, stamp: &str) {
    let path = dir.join(".stamp");
    std::fs::write(&path, stamp).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// Hashes every file under `dir` (path and contents), in a stable order,
/// skipping what tools leave behind: installed packages, bytecode, caches and
/// built components.
fn hash_tree(hash: &mut Sha256, dir: &Path) {
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.filter_map(Result::ok).map(|e| e.path()).collect(),
        Err(_) => return,
    };
    entries.sort();
    for path in entries {
        let name = file_name(&path);
        if matches!(
            name.as_str(),
            "node_modules" | "__pycache__" | ".pytest_cache" | "target" | ".venv"
        ) || name.ends_with(".wasm")
            || name.ends_with(".egg-info")
        {
            continue;
        }
        // Each name framed by its kind and length, so that moving a file
        // between folders, or renaming one, changes the hash.
        if path.is_dir() {
            hash.update(b"d");
            hash.update((name.len() as u64).to_le_bytes());
            hash.update(name.as_bytes());
            hash_tree(hash, &path);
            hash.update(b"u");
        } else if let Ok(bytes) = std::fs::read(&path) {
            hash.update(b"f");
            hash.update((name.len() as u64).to_le_bytes());
            hash.update(name.as_bytes());
            hash.update((bytes.len() as u64).to_le_bytes());
            hash.update(&bytes);
        }
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .and_then(|name| name.to_str())
        .expect("plugin folders have UTF-8 names")
        .to_owned()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
