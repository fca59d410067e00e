//! The compile cache (`[compile_cache]`): `router check` fills it, a second run
//! compiles nothing, a damaged entry is compiled again, and a directory others
//! may write to is refused.

use std::path::Path;
use std::process::Command;

const ROUTER: &str = env!("CARGO_BIN_EXE_router");

fn config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("router.toml");
    std::fs::write(
        &path,
        format!(
            "[compile_cache]\ndir = \"cache\"\n\n[[plugin]]\nname = \"enricher\"\npath = {:?}\n\n[[plugin]]\nname = \"audit\"\npath = {:?}\n",
            plugin_artifacts::ENRICHER,
            plugin_artifacts::AUDIT
        ),
    )
    .expect("write the configuration");
    path
}

/// Runs `router check` and returns whether it passed, and its log.
fn check(config: &Path) -> (bool, String) {
    let out = Command::new(ROUTER)
        .args(["check", "--config"])
        .arg(config)
        .env("RUST_LOG", "router=info")
        .env_remove("NO_COLOR")
        .output()
        .expect("run router check");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // A pipe is not a terminal: no colour codes in the log.
    assert!(!log.contains('\u{1b}'), "{log}");
    (out.status.success(), log)
}

fn count(log: &str, what: &str) -> usize {
    log.lines().filter(|l| l.contains(what)).count()
}

fn entries(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut entries: Vec<_> = std::fs::read_dir(dir.join("cache"))
        .expect("the cache directory exists")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .collect();
    entries.sort();
    entries
}

#[test]
fn check_fills_the_cache_and_a_second_run_compiles_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path());
    let (ok, log) = check(&config);
    assert!(ok, "{log}");
    assert_eq!(count(&log, "compiled"), 2, "{log}");
    assert_eq!(entries(dir.path()).len(), 2, "{log}");

    let (ok, log) = check(&config);
    assert!(ok, "{log}");
    assert_eq!(count(&log, "compiled"), 0, "{log}");
    assert_eq!(count(&log, "loaded from the compile cache"), 2, "{log}");

    // A damaged entry is not loaded: it is compiled again and rewritten.
    let damaged = &entries(dir.path())[0];
    let mut bytes = std::fs::read(damaged).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(damaged, bytes).expect("write");
    let (ok, log) = check(&config);
    assert!(ok, "{log}");
    assert_eq!(count(&log, "does not check out"), 1, "{log}");
    assert_eq!(count(&log, "compiled"), 1, "{log}");
    assert_eq!(count(&log, "loaded from the compile cache"), 1, "{log}");
    let (ok, log) = check(&config);
    assert!(ok, "{log}");
    assert_eq!(count(&log, "loaded from the compile cache"), 2, "{log}");
}

#[test]
fn a_cache_directory_others_may_write_to_is_a_configuration_error() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path());
    let cache = dir.path().join("cache");
    std::fs::create_dir(&cache).expect("mkdir");
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let (ok, log) = check(&config);
    assert!(!ok, "{log}");
    assert!(log.contains("compile_cache.dir"), "{log}");
    assert!(log.contains("chmod 700"), "{log}");
}
