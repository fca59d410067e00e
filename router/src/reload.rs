//! Hot reload: watch the configuration and plugin files, debounce bursts of
//! changes, wait for the files to stop changing, build a complete new runtime off
//! the hot path, and swap it in; or keep the old one and report why not.
//!
//! One task owns every reload, so at most one rebuild is ever in flight, and
//! requests that arrive meanwhile coalesce into the next one (the channel is
//! bounded: a storm of changes cannot grow memory).

use crate::dispatch::Dispatcher;
use crate::plugin::PluginHost;
use crate::runtime::{CandidateKind, Promotion, Promotions, Runtime};
use crate::sync::lock;
use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{mpsc, oneshot};

/// Timing of reloads.
#[derive(Clone, Copy, Debug)]
pub struct ReloadSettings {
    /// Quiet time after the last change before a reload starts.
    pub debounce: Duration,
    /// Longest a burst of changes may postpone a reload.
    pub max_wait: Duration,
    /// How long the files must stay unchanged (same size and hash) before they are read.
    pub settle: Duration,
}

/// What the admin endpoints show about reloads.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ReloadStatus {
    /// Successful reloads since start.
    pub reloads: u64,
    /// Failed reloads since start.
    pub failures: u64,
    /// The error of the last reload, if it failed; cleared by a successful one.
    pub last_error: Option<String>,
    /// When the last reload (successful or not) finished, in seconds since the epoch.
    pub last_attempt_unix: Option<u64>,
    /// Sections changed in the file since the server started that only a restart
    /// applies (`[server]` but for `hop_limit` and `forward_timeout`, `[reload]`,
    /// `[queue]`), as of the last successful reload.
    pub restart_needed: Vec<String>,
}

/// Why a reload did not swap in a new configuration; the previous one keeps
/// serving.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReloadError {
    /// The new configuration or one of its plugins is invalid: every error, one
    /// per line, with file, line and TOML path.
    #[error("{0}")]
    Invalid(String),
    /// The reload task is not running (not started, or shut down).
    #[error("the reloader is not running")]
    NotRunning,
    /// The reload task stopped before it answered.
    #[error("the reloader stopped")]
    Stopped,
}

/// Why a promotion did not happen; the previous snapshot keeps serving.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PromoteError {
    /// No plugin has that name.
    #[error("no plugin named {0:?}")]
    UnknownPlugin(String),
    /// The plugin has no candidate version (of the kind asked for).
    #[error("plugin {plugin:?} has no {what} version to promote")]
    NoCandidate {
        /// The plugin.
        plugin: String,
        /// `shadow`, `canary`, or `shadow or canary`.
        what: &'static str,
    },
    /// The snapshot with the candidate live could not be built.
    #[error("{0}")]
    Reload(#[from] ReloadError),
}

enum Request {
    /// A watched file changed (or SIGHUP): reload after the debounce.
    Changed,
    /// Reload now and answer with the outcome (`POST /admin/reload`).
    Now(oneshot::Sender<Result<u64, ReloadError>>),
    /// Make a plugin's candidate live (`POST /admin/plugins/{name}/promote`).
    Promote(
        String,
        Option<CandidateKind>,
        oneshot::Sender<Result<u64, PromoteError>>,
    ),
}

/// Drives reloads of one configuration file into one dispatcher.
pub struct Reloader {
    config_path: PathBuf,
    dispatcher: Arc<Dispatcher>,
    /// The start-only settings of the snapshot the server started with: the
    /// ones in force, whatever later files say.
    started: Vec<(&'static str, String)>,
    settings: ReloadSettings,
    status: Mutex<ReloadStatus>,
    requests: mpsc::Sender<Request>,
    inbox: Mutex<Option<mpsc::Receiver<Request>>>,
    watched: Arc<Mutex<BTreeSet<PathBuf>>>,
    watcher: Mutex<Option<RecommendedWatcher>>,
    /// The candidates promoted, applied by every reload until the plugin's
    /// entry changes. Only the reload task touches them.
    promotions: Mutex<Promotions>,
}

impl Reloader {
    /// A reloader for `config_path` feeding `dispatcher`. Nothing is watched until
    /// [`Reloader::watch`]; nothing is reloaded until [`Reloader::run`] runs.
    pub fn new(config_path: &Path, dispatcher: Arc<Dispatcher>, settings: ReloadSettings) -> Self {
        // Small on purpose: a queued `Changed` already stands for every change that
        // arrives after it, so a full queue loses nothing by refusing more.
        let (requests, inbox) = mpsc::channel(16);
        Self {
            config_path: config_path.to_owned(),
            started: dispatcher.runtime().start_only().to_vec(),
            dispatcher,
            settings,
            status: Mutex::new(ReloadStatus::default()),
            requests,
            inbox: Mutex::new(Some(inbox)),
            watched: Arc::default(),
            watcher: Mutex::new(None),
            promotions: Mutex::default(),
        }
    }

    /// The reload counters and last error.
    pub fn status(&self) -> ReloadStatus {
        lock(&self.status).clone()
    }

    /// Asks for a reload after the debounce (file change, SIGHUP).
    pub fn request(&self) {
        let _ = self.requests.try_send(Request::Changed);
    }

    /// Reloads now and returns the new generation, or why the old one stays.
    pub async fn reload_now(&self) -> Result<u64, ReloadError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request::Now(reply))
            .await
            .map_err(|_| ReloadError::NotRunning)?;
        answer.await.map_err(|_| ReloadError::Stopped)?
    }

    /// Makes plugin `name`'s candidate live (`kind`, or its canary when it has
    /// one, else its shadow): the current snapshot's configuration is built
    /// again with the candidate as the plugin's live version, and swapped in
    /// like a reload. Returns the new generation.
    pub async fn promote(
        &self,
        name: &str,
        kind: Option<CandidateKind>,
    ) -> Result<u64, PromoteError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request::Promote(name.to_owned(), kind, reply))
            .await
            .map_err(|_| ReloadError::NotRunning)?;
        answer.await.map_err(|_| ReloadError::Stopped)?
    }

    /// Starts watching the configuration file and every plugin file of the current
    /// runtime (their folders, so that rename-into-place and symlink swaps are seen).
    pub fn watch(&self) -> notify::Result<()> {
        let watched = Arc::clone(&self.watched);
        let requests = self.requests.clone();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            if event.kind.is_access() {
                return;
            }
            let relevant = {
                let watched = lock(&watched);
                event.paths.iter().any(|p| is_relevant(p, &watched))
            };
            if relevant {
                let _ = requests.try_send(Request::Changed);
            }
        })?;
        *lock(&self.watcher) = Some(watcher);
        self.rewatch(&self.dispatcher.runtime());
        Ok(())
    }

    /// Points the watcher at the files of `runtime`.
    fn rewatch(&self, runtime: &Runtime) {
        let files: BTreeSet<PathBuf> = runtime.files().iter().map(|f| absolute(f)).collect();
        let dirs = |files: &BTreeSet<PathBuf>| -> BTreeSet<PathBuf> {
            files
                .iter()
                .filter_map(|f| f.parent().map(Path::to_owned))
                .collect()
        };
        let old_dirs = dirs(&lock(&self.watched));
        let new_dirs = dirs(&files);
        *lock(&self.watched) = files;
        let mut guard = lock(&self.watcher);
        let Some(watcher) = guard.as_mut() else {
            return;
        };
        for dir in old_dirs.difference(&new_dirs) {
            let _ = watcher.unwatch(dir);
        }
        for dir in new_dirs.difference(&old_dirs) {
            if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot watch for changes");
            }
        }
    }

    /// Serves reload requests until `shutdown` completes.
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        let Some(mut inbox) = lock(&self.inbox).take() else {
            return;
        };
        tokio::pin!(shutdown);
        loop {
            let request = tokio::select! {
                r = inbox.recv() => match r { Some(r) => r, None => return },
                () = &mut shutdown => return,
            };
            let mut waiting = Vec::new();
            match request {
                Request::Now(reply) => waiting.push(reply),
                Request::Changed => self.debounce(&mut inbox, &mut waiting).await,
                Request::Promote(name, kind, reply) => {
                    let _ = reply.send(self.promote_now(&name, kind).await);
                    continue;
                }
            }
            let outcome = self.reload(&mut inbox, &mut waiting).await;
            for reply in waiting {
                let _ = reply.send(outcome.clone());
            }
        }
    }

    /// Waits until changes have been quiet for `debounce`, or `max_wait` passed.
    async fn debounce(
        &self,
        inbox: &mut mpsc::Receiver<Request>,
        waiting: &mut Vec<oneshot::Sender<Result<u64, ReloadError>>>,
    ) {
        let deadline = Instant::now() + self.settings.max_wait;
        loop {
            let quiet = self
                .settings
                .debounce
                .min(deadline.saturating_duration_since(Instant::now()));
            match tokio::time::timeout(quiet, inbox.recv()).await {
                Ok(Some(Request::Changed)) if Instant::now() < deadline => continue,
                Ok(Some(Request::Now(reply))) => {
                    waiting.push(reply);
                    return;
                }
                Ok(Some(Request::Promote(name, kind, reply))) => {
                    let _ = reply.send(self.promote_now(&name, kind).await);
                    continue;
                }
                _ => return,
            }
        }
    }

    async fn reload(
        &self,
        inbox: &mut mpsc::Receiver<Request>,
        waiting: &mut Vec<oneshot::Sender<Result<u64, ReloadError>>>,
    ) -> Result<u64, ReloadError> {
        let outcome = self.settle_and_build(inbox, waiting).await;
        let mut status = lock(&self.status);
        status.last_attempt_unix = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs());
        match &outcome {
            Ok((generation, restart_needed)) => {
                crate::metrics::metrics().reloads.inc();
                status.reloads += 1;
                status.last_error = None;
                status.restart_needed = restart_needed.iter().map(|s| (*s).to_owned()).collect();
                if restart_needed.is_empty() {
                    tracing::info!(generation, "configuration reloaded");
                } else {
                    tracing::warn!(
                        generation,
                        sections = %restart_needed.join(", "),
                        "configuration reloaded, but these sections changed and are read only at start: restart to apply them"
                    );
                }
            }
            Err(error) => {
                crate::metrics::metrics().reload_errors.inc();
                status.failures += 1;
                status.last_error = Some(error.to_string());
                tracing::error!(error = %error, "reload failed; the previous configuration keeps serving");
            }
        }
        outcome.map(|(generation, _)| generation)
    }

    /// Waits until every file is stable, builds the runtime, and swaps it in if
    /// the files did not change while it was being built.
    ///
    /// There is no deadline here on purpose: a file that never stops changing is
    /// never complete, and loading it half-written is the one thing not to do.
    async fn settle_and_build(
        &self,
        inbox: &mut mpsc::Receiver<Request>,
        waiting: &mut Vec<oneshot::Sender<Result<u64, ReloadError>>>,
    ) -> Result<(u64, Vec<&'static str>), ReloadError> {
        loop {
            let current = self.dispatcher.runtime();
            let files: Vec<PathBuf> = current.files().to_vec();
            let before = fingerprints(&files).await;
            tokio::time::sleep(self.settings.settle).await;
            // Changes that arrived while settling are part of this reload.
            while let Ok(r) = inbox.try_recv() {
                match r {
                    Request::Now(reply) => waiting.push(reply),
                    Request::Promote(name, kind, reply) => {
                        let _ = reply.send(self.promote_now(&name, kind).await);
                    }
                    Request::Changed => {}
                }
            }
            let after = fingerprints(&files).await;
            if before != after {
                continue;
            }
            let promotions = lock(&self.promotions).clone();
            let built = Runtime::load_with(&self.config_path, &promotions).await;
            let (_, runtime) = built
                .map_err(|errors| ReloadError::Invalid(errors.to_string().trim_end().to_owned()))?;
            // A plugin rewritten after we settled: its digest differs from what we
            // saw; settle again rather than serve a version that is already stale.
            let latest = fingerprints(runtime.files()).await;
            let stale = runtime.plugins().iter().any(|p| {
                latest
                    .get(&absolute(p.path()))
                    .is_some_and(|f| f.1 != p.digest())
            });
            if stale {
                continue;
            }
            // A promotion whose entry changed is over.
            lock(&self.promotions).retain(|name, _| runtime.promoted_from(name).is_some());
            let restart_needed = runtime.restart_needed(&self.started);
            let generation = self.swap_in(runtime);
            return Ok((generation, restart_needed));
        }
    }
}

impl Reloader {
    /// Numbers `runtime` after the snapshot serving now (which a promotion
    /// made while a reload was settling may have replaced), forgets the
    /// compiled components it does not use, watches its files and makes it
    /// the snapshot. Only the reload task swaps snapshots.
    fn swap_in(&self, mut runtime: Runtime) -> u64 {
        runtime.succeed(&self.dispatcher.runtime());
        let generation = runtime.generation();
        if let Ok(host) = PluginHost::shared() {
            host.retain_compiled(&runtime.digests());
        }
        self.rewatch(&runtime);
        self.dispatcher.swap(runtime);
        generation
    }

    /// Builds the current snapshot's configuration again with plugin `name`'s
    /// candidate live, and swaps it in (see [`Reloader::promote`]).
    async fn promote_now(
        &self,
        name: &str,
        kind: Option<CandidateKind>,
    ) -> Result<u64, PromoteError> {
        let current = self.dispatcher.runtime();
        let config = Arc::clone(current.config());
        let entry = config
            .plugins
            .iter()
            .find(|p| p.name.get_ref().as_str() == name)
            .ok_or_else(|| PromoteError::UnknownPlugin(name.to_owned()))?;
        let promotion = match kind {
            Some(kind) => Promotion::of(entry, kind),
            None => Promotion::of(entry, CandidateKind::Canary)
                .or_else(|| Promotion::of(entry, CandidateKind::Shadow)),
        };
        let promotion = promotion
            .filter(|_| current.promoted_from(name).is_none())
            .ok_or(PromoteError::NoCandidate {
                plugin: name.to_owned(),
                what: match kind {
                    Some(CandidateKind::Shadow) => "shadow",
                    Some(CandidateKind::Canary) => "canary",
                    None => "shadow or canary",
                },
            })?;
        let mut promotions = lock(&self.promotions).clone();
        promotions.insert(name.to_owned(), promotion.clone());
        let runtime = Runtime::build_with(&config, &promotions)
            .await
            .map_err(|errors| ReloadError::Invalid(errors.to_string().trim_end().to_owned()))?;
        lock(&self.promotions).insert(name.to_owned(), promotion.clone());
        let generation = self.swap_in(runtime);
        crate::metrics::metrics().reloads.inc();
        lock(&self.status).reloads += 1;
        tracing::info!(
            plugin = name,
            from = %promotion.live,
            to = %promotion.candidate,
            generation,
            "candidate promoted: it is the live version now"
        );
        Ok(generation)
    }
}

/// (size, sha256 hex) of each file that exists.
async fn fingerprints(files: &[PathBuf]) -> HashMap<PathBuf, (u64, String)> {
    let files = files.to_vec();
    tokio::task::spawn_blocking(move || {
        files
            .iter()
            .filter_map(|f| {
                let bytes = std::fs::read(f).ok()?;
                let digest = crate::digest::hex(&crate::digest::sha256(&bytes));
                Some((absolute(f), (bytes.len() as u64, digest)))
            })
            .collect()
    })
    .await
    .unwrap_or_default()
}

/// Whether a change to `path` concerns a watched file: the file itself, or a
/// `..name` entry of its folder (Kubernetes swaps ConfigMap contents by replacing
/// the `..data` symlink).
fn is_relevant(path: &Path, watched: &BTreeSet<PathBuf>) -> bool {
    if watched.contains(path) {
        return true;
    }
    let hidden = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(".."));
    hidden
        && path
            .parent()
            .is_some_and(|dir| watched.iter().any(|w| w.parent() == Some(dir)))
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Longest a test waits for something that must happen; only catches hangs.
    const PATIENCE: Duration = Duration::from_secs(20);

    fn route(name: &str) -> String {
        format!("[[route]]\nname = \"{name}\"\nforward = \"http://127.0.0.1:9/\"\n")
    }

    /// Writes `text` beside `path` and renames it over `path`: every version a
    /// reload may read is whole, so only the reloader's timing is under test.
    fn replace(path: &Path, text: &str) {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).expect("write");
        std::fs::rename(&tmp, path).expect("rename");
    }

    fn settings(debounce: u64, max_wait: u64, settle: u64) -> ReloadSettings {
        ReloadSettings {
            debounce: Duration::from_millis(debounce),
            max_wait: Duration::from_millis(max_wait),
            settle: Duration::from_millis(settle),
        }
    }

    /// A reloader of `dir/router.toml`, which starts with one route, `first`.
    async fn reloader(dir: &Path, settings: ReloadSettings) -> Arc<Reloader> {
        let path = dir.join("router.toml");
        replace(&path, &route("first"));
        let (_, runtime) = Runtime::load(&path).await.expect("load");
        Arc::new(Reloader::new(
            &path,
            Arc::new(Dispatcher::new(runtime)),
            settings,
        ))
    }

    fn take_inbox(reloader: &Reloader) -> mpsc::Receiver<Request> {
        lock(&reloader.inbox)
            .take()
            .expect("the inbox is taken once")
    }

    fn route_names(reloader: &Reloader) -> Vec<String> {
        reloader
            .dispatcher
            .runtime()
            .routes()
            .iter()
            .map(|r| r.name.clone())
            .collect()
    }

    #[test]
    fn a_change_is_relevant_for_a_watched_file_or_a_double_dot_entry_beside_one() {
        let watched: BTreeSet<PathBuf> = [PathBuf::from("/etc/router/router.toml")].into();
        let relevant = |p: &str| is_relevant(Path::new(p), &watched);
        assert!(relevant("/etc/router/router.toml"));
        // Kubernetes swaps a ConfigMap by replacing `..data`, and writes `..<timestamp>`.
        assert!(relevant("/etc/router/..data"));
        assert!(relevant("/etc/router/..2026_12_02_06_00_00.123"));
        // Editors' and our own temporary files are not the file: their rename is.
        assert!(!relevant("/etc/router/router.tmp"));
        assert!(!relevant("/etc/router/.router.toml.swp"));
        assert!(!relevant("/etc/router/notes.txt"));
        assert!(!relevant("/etc/other/..data"));
        assert!(!relevant("/etc/router"));
    }

    #[tokio::test]
    async fn fingerprints_are_size_and_sha256_of_the_files_that_exist() {
        let dir = tempfile::tempdir().expect("tempdir");
        let present = dir.path().join("a.txt");
        std::fs::write(&present, "abc").expect("write");
        let missing = dir.path().join("b.txt");
        let prints = fingerprints(&[present.clone(), missing]).await;
        assert_eq!(
            prints,
            HashMap::from([(
                absolute(&present),
                (
                    3,
                    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".to_owned()
                )
            )])
        );
    }

    #[tokio::test]
    async fn without_changes_the_debounce_waits_its_quiet_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let reloader = reloader(dir.path(), settings(200, 60_000, 10)).await;
        let mut inbox = take_inbox(&reloader);
        let started = Instant::now();
        reloader.debounce(&mut inbox, &mut Vec::new()).await;
        assert!(started.elapsed() >= Duration::from_millis(200));
    }

    /// Changes 20 ms apart against a 500 ms debounce: the reload starts once
    /// they stop, not at the first or in between.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_changes_is_debounced_until_it_stops() {
        let dir = tempfile::tempdir().expect("tempdir");
        let reloader = reloader(dir.path(), settings(500, 60_000, 10)).await;
        let mut inbox = take_inbox(&reloader);
        let sender = {
            let reloader = Arc::clone(&reloader);
            tokio::spawn(async move {
                for _ in 0..20 {
                    reloader.request();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                reloader.request();
                Instant::now()
            })
        };
        tokio::time::timeout(PATIENCE, reloader.debounce(&mut inbox, &mut Vec::new()))
            .await
            .expect("the debounce ends after the burst");
        let returned = Instant::now();
        let last_change = sender.await.expect("sender");
        assert!(
            returned >= last_change + Duration::from_millis(500),
            "the reload started {:?} before the quiet time after the last change ended",
            (last_change + Duration::from_millis(500)).saturating_duration_since(returned)
        );
    }

    /// Changes that never stop, against a 10 s debounce: only `max_wait` can end
    /// the wait, and it does, never before it has passed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stream_of_changes_postpones_a_reload_by_max_wait_at_most() {
        let dir = tempfile::tempdir().expect("tempdir");
        let reloader = reloader(dir.path(), settings(10_000, 300, 10)).await;
        let mut inbox = take_inbox(&reloader);
        let stop = Arc::new(AtomicBool::new(false));
        let sender = {
            let (reloader, stop) = (Arc::clone(&reloader), Arc::clone(&stop));
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    reloader.request();
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        };
        let started = Instant::now();
        let ended =
            tokio::time::timeout(PATIENCE, reloader.debounce(&mut inbox, &mut Vec::new())).await;
        let took = started.elapsed();
        stop.store(true, Ordering::SeqCst);
        sender.await.expect("sender");
        assert!(
            ended.is_ok(),
            "a stream of changes postponed the reload for good"
        );
        assert!(took >= Duration::from_millis(300), "ended after {took:?}");
        assert!(took < Duration::from_secs(10), "ended after {took:?}");
    }

    #[tokio::test]
    async fn an_explicit_reload_cuts_the_debounce_short() {
        let dir = tempfile::tempdir().expect("tempdir");
        let reloader = reloader(dir.path(), settings(60_000, 60_000, 10)).await;
        let mut inbox = take_inbox(&reloader);
        reloader.request();
        reloader.request();
        let (reply, _answer) = oneshot::channel();
        reloader
            .requests
            .try_send(Request::Now(reply))
            .expect("queued");
        let mut waiting = Vec::new();
        tokio::time::timeout(PATIENCE, reloader.debounce(&mut inbox, &mut waiting))
            .await
            .expect("`Now` ends the debounce");
        assert_eq!(waiting.len(), 1, "the caller is answered by this reload");
    }

    /// The configuration is rewritten every 20 ms for 2 s while a reload is
    /// asked for; with a 500 ms `settle`, the reload reads it only once the
    /// writer is done: the last version, 500 ms after its write began.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_file_that_keeps_changing_is_read_only_once_it_has_settled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let reloader = reloader(dir.path(), settings(10, 1_000, 500)).await;
        tokio::spawn(Arc::clone(&reloader).run(std::future::pending()));
        let path = reloader.config_path.clone();
        let writer = std::thread::spawn(move || {
            for i in 0..100 {
                replace(&path, &route(&format!("v{i}")));
                std::thread::sleep(Duration::from_millis(20));
            }
            let last = Instant::now();
            replace(&path, &route("last"));
            last
        });
        let generation = tokio::time::timeout(PATIENCE, reloader.reload_now())
            .await
            .expect("the reload ends once the file has settled");
        let answered = Instant::now();
        let last_written = writer.join().expect("writer");
        assert_eq!(generation, Ok(2));
        assert_eq!(route_names(&reloader), ["last"]);
        assert!(answered >= last_written + Duration::from_millis(500));
    }

    #[tokio::test]
    async fn a_failed_reload_keeps_the_old_runtime_and_says_why() {
        let dir = tempfile::tempdir().expect("tempdir");
        let reloader = reloader(dir.path(), settings(10, 100, 10)).await;
        tokio::spawn(Arc::clone(&reloader).run(std::future::pending()));
        replace(&reloader.config_path, "[[route]\nname = ");
        let Err(ReloadError::Invalid(error)) = reloader.reload_now().await else {
            panic!("a syntax error reloaded");
        };
        assert!(error.contains("router.toml:1:"), "{error}");
        let status = reloader.status();
        assert_eq!((status.reloads, status.failures), (0, 1));
        assert_eq!(status.last_error.as_deref(), Some(error.as_str()));
        assert!(status.last_attempt_unix.is_some());
        assert_eq!(reloader.dispatcher.runtime().generation(), 1);
        assert_eq!(route_names(&reloader), ["first"]);

        replace(&reloader.config_path, &route("second"));
        assert_eq!(reloader.reload_now().await, Ok(2));
        let status = reloader.status();
        assert_eq!((status.reloads, status.failures), (1, 1));
        assert_eq!(status.last_error, None);
        assert_eq!(route_names(&reloader), ["second"]);
    }

    #[tokio::test]
    async fn a_stopped_reloader_refuses_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let reloader = reloader(dir.path(), settings(10, 100, 10)).await;
        Arc::clone(&reloader).run(async {}).await;
        assert_eq!(reloader.reload_now().await, Err(ReloadError::NotRunning));
    }

    /// The configuration's folder is watched, so a file renamed over it is seen.
    #[tokio::test]
    async fn watching_sees_a_file_renamed_over_the_configuration() {
        let dir = tempfile::tempdir().expect("tempdir");
        let reloader = reloader(dir.path(), settings(10, 100, 10)).await;
        let mut inbox = take_inbox(&reloader);
        reloader.watch().expect("watch");
        assert_eq!(
            *lock(&reloader.watched),
            BTreeSet::from([absolute(&reloader.config_path)])
        );
        replace(&reloader.config_path, &route("second"));
        let request = tokio::time::timeout(PATIENCE, inbox.recv())
            .await
            .expect("the rename is seen");
        assert!(matches!(request, Some(Request::Changed)));
    }
}
