//! `router new`: a plugin project from a template, in a folder of its own
//! outside this repository, that builds and passes its own tests as written.
//!
//! The templates live in `router/templates/` and are compiled into the binary.
//! The SDKs are not published to a registry, so a project depends on the
//! `guest-sdk/` folder of a checkout by path: `--sdk`, else `ROUTER_SDK`, else the
//! checkout this binary was built from.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `router new` arguments.
#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// What the plugin is: a `handler` (a route's target; may emit events) or a
    /// `transform` (a `wasm` step of a route's `transform`; may change or drop
    /// the event).
    #[arg(value_enum)]
    pub kind: Kind,
    /// The project's name: the folder, the package and the plugin's name in the
    /// router's TOML (a lowercase letter, then lowercase letters, digits and
    /// `-`, at most 64).
    pub name: String,
    /// The language of the plugin.
    #[arg(long, value_enum)]
    pub lang: Lang,
    /// Create the project folder in this folder.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// The `guest-sdk` folder of a checkout of the router, which the project
    /// depends on by path. Default: ROUTER_SDK, else the checkout this binary was
    /// built from.
    #[arg(long, env = "ROUTER_SDK")]
    pub sdk: Option<PathBuf>,
}

/// What a template makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// A plugin of the `handler` world.
    Handler,
    /// A plugin of the `transform` world.
    Transform,
}

/// A plugin language with an SDK under `guest-sdk/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Rust, with `guest-sdk/rust` (crate `router-guest`).
    Rust,
    /// Python, with `guest-sdk/python` (package `router-guest`, componentize-py).
    Python,
    /// JavaScript (typed for TypeScript), with `guest-sdk/js` (package
    /// `router-guest`, componentize-js).
    Js,
}

/// One file of a template: where it goes in the project, and its text, both
/// with `{{name}}`, `{{file}}`, `{{sdk}}`, `{{kind}}` and `{{wasm}}` to fill in.
struct Template {
    path: &'static str,
    text: &'static str,
}

macro_rules! template {
    ($path:literal, $source:literal) => {
        Template {
            path: $path,
            text: include_str!(concat!("../../templates/", $source)),
        }
    };
}

impl Lang {
    /// The SDK's folder inside `guest-sdk/`, and the file that shows it is there.
    fn sdk_marker(self) -> &'static str {
        match self {
            Lang::Rust => "rust/Cargo.toml",
            Lang::Python => "python/pyproject.toml",
            Lang::Js => "js/package.json",
        }
    }

    /// Where the project's build writes the component, relative to the project.
    fn wasm(self) -> &'static str {
        match self {
            Lang::Rust => "target/wasm32-wasip2/release/{{file}}.wasm",
            Lang::Python | Lang::Js => "dist/{{name}}.wasm",
        }
    }

    /// The template's files.
    fn templates(self, kind: Kind) -> Vec<Template> {
        let config = match kind {
            Kind::Handler => template!("router.toml", "router-handler.toml"),
            Kind::Transform => template!("router.toml", "router-transform.toml"),
        };
        let mut files = vec![config];
        match (self, kind) {
            (Lang::Rust, kind) => {
                files.extend([
                    template!("Cargo.toml", "rust/Cargo.toml"),
                    template!(".gitignore", "rust/.gitignore"),
                    template!("README.md", "rust/README.md"),
                ]);
                files.push(match kind {
                    Kind::Handler => template!("src/lib.rs", "rust/src/handler.rs"),
                    Kind::Transform => template!("src/lib.rs", "rust/src/transform.rs"),
                });
            }
            (Lang::Python, kind) => {
                files.extend([
                    template!("pyproject.toml", "python/pyproject.toml"),
                    template!("requirements.txt", "python/requirements.txt"),
                    template!(".gitignore", "python/.gitignore"),
                    template!("README.md", "python/README.md"),
                    template!("tests/conftest.py", "python/tests/conftest.py"),
                ]);
                files.extend(match kind {
                    Kind::Handler => [
                        template!("{{file}}.py", "python/handler.py"),
                        template!("tests/test_{{file}}.py", "python/tests/test_handler.py"),
                    ],
                    Kind::Transform => [
                        template!("{{file}}.py", "python/transform.py"),
                        template!("tests/test_{{file}}.py", "python/tests/test_transform.py"),
                    ],
                });
            }
            (Lang::Js, kind) => {
                files.extend([
                    template!("package.json", "js/package.json"),
                    template!(".npmrc", "js/.npmrc"),
                    template!(".gitignore", "js/.gitignore"),
                    template!("README.md", "js/README.md"),
                ]);
                files.extend(match kind {
                    Kind::Handler => [
                        template!("app.js", "js/handler.js"),
                        template!("test/app.test.js", "js/test/handler.test.js"),
                    ],
                    Kind::Transform => [
                        template!("app.js", "js/transform.js"),
                        template!("test/app.test.js", "js/test/transform.test.js"),
                    ],
                });
            }
        }
        files
    }

    /// What to run next, in the new project's folder.
    fn next_steps(self) -> &'static str {
        match self {
            Lang::Rust => {
                "  cargo test                                    # its tests, natively\n  \
                 cargo build --release --target wasm32-wasip2  # the component\n  \
                 router check --config router.toml             # the router loads it"
            }
            Lang::Python => {
                "  python3 -m venv .venv && . .venv/bin/activate\n  \
                 pip install -r requirements.txt    # the SDK, componentize-py and pytest\n  \
                 pytest                             # its tests, natively\n  \
                 router-py build                    # the component\n  \
                 router check --config router.toml  # the router loads it"
            }
            Lang::Js => {
                "  npm install                        # the SDK and componentize-js\n  \
                 npm test                           # its tests, natively (node --test)\n  \
                 npm run build                      # the component\n  \
                 router check --config router.toml  # the router loads it"
            }
        }
    }
}

/// Why a project could not be created.
#[derive(Debug, thiserror::Error)]
pub enum NewError {
    /// The name cannot be a package and plugin name in every language.
    #[error(
        "invalid project name {0:?}: use a lowercase letter, then lowercase letters, digits and '-' (at most 64)"
    )]
    Name(String),
    /// No SDK where one was expected.
    #[error(
        "no guest SDK at {0} (it needs {1}): pass --sdk (or set ROUTER_SDK) to the guest-sdk folder of a checkout of the router"
    )]
    NoSdk(PathBuf, &'static str),
    /// The project folder exists and holds something.
    #[error("{0} exists and is not empty: choose another name or --dir")]
    Exists(PathBuf),
    /// Reading or writing a file failed.
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
}

/// Creates the project and prints what to run next.
pub fn run(args: &NewArgs) -> Result<ExitCode, NewError> {
    let project = create(args)?;
    println!(
        "created {} ({} {}); next, in that folder:\n{}",
        project.display(),
        lang_name(args.lang),
        kind_name(args.kind),
        args.lang.next_steps()
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes the project's files and returns its folder.
pub fn create(args: &NewArgs) -> Result<PathBuf, NewError> {
    check_name(&args.name)?;
    let sdk = sdk_dir(args.sdk.as_deref(), args.lang)?;
    let project = args.dir.join(&args.name);
    if std::fs::read_dir(&project).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(NewError::Exists(project));
    }
    let sdk_text = sdk.to_str().ok_or_else(|| {
        NewError::Io(
            sdk.clone(),
            std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8"),
        )
    })?;
    let file = args.name.replace('-', "_");
    let wasm = args.lang.wasm().replace("{{file}}", &file);
    let fill = |text: &str| {
        text.replace("{{wasm}}", &wasm)
            .replace("{{name}}", &args.name)
            .replace("{{file}}", &file)
            .replace("{{sdk}}", sdk_text)
            .replace("{{kind}}", kind_name(args.kind))
    };
    for template in args.lang.templates(args.kind) {
        let path = project.join(fill(template.path));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| NewError::Io(parent.to_owned(), e))?;
        }
        std::fs::write(&path, fill(template.text)).map_err(|e| NewError::Io(path.clone(), e))?;
    }
    Ok(project)
}

/// The name must be a Cargo crate, a Python distribution, an npm package and a
/// plugin name at once; this is the common ground.
fn check_name(name: &str) -> Result<(), NewError> {
    let ok = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(NewError::Name(name.to_owned()))
    }
}

/// The absolute path of the `guest-sdk` folder to depend on.
fn sdk_dir(given: Option<&Path>, lang: Lang) -> Result<PathBuf, NewError> {
    let dir = given.map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk"),
        Path::to_path_buf,
    );
    let marker = lang.sdk_marker();
    match std::fs::canonicalize(&dir) {
        Ok(dir) if dir.join(marker).is_file() => Ok(dir),
        _ => Err(NewError::NoSdk(dir, marker)),
    }
}

fn lang_name(lang: Lang) -> &'static str {
    match lang {
        Lang::Rust => "Rust",
        Lang::Python => "Python",
        Lang::Js => "JavaScript",
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Handler => "handler",
        Kind::Transform => "transform",
    }
}
