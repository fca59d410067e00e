//! Hot reload: watch the configuration and plugin files, debounce bursts of
//! changes, wait for the files to stop changing, build a complete new runtime off
//! the hot path, and swap it in; or keep the old one and report why not.
//!
//! One task owns every reload, so at most one rebuild is ever in flight, and
//! requests that arrive meanwhile coalesce into the next one (the channel is
//! bounded: a storm of changes cannot grow memory).

use crate::dispatch::Dispatcher;
use crate::plugin::PluginHost;
use crate::runtime::Runtime;
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

enum Request {
    /// A watched file changed (or SIGHUP): reload after the debounce.
    Changed,
    /// Reload now and answer with the outcome (`POST /admin/reload`).
    Now(oneshot::Sender<Result<u64, ReloadError>>),
}

/// Drives reloads of one configuration file into one dispatcher.
pub struct Reloader {
    config_path: PathBuf,
    dispatcher: Arc<Dispatcher>,
    settings: ReloadSettings,
    status: Mutex<ReloadStatus>,
    requests: mpsc::Sender<Request>,
    inbox: Mutex<Option<mpsc::Receiver<Request>>>,
    watched: Arc<Mutex<BTreeSet<PathBuf>>>,
    watcher: Mutex<Option<RecommendedWatcher>>,
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
            dispatcher,
            settings,
            status: Mutex::new(ReloadStatus::default()),
            requests,
            inbox: Mutex::new(Some(inbox)),
            watched: Arc::default(),
            watcher: Mutex::new(None),
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
            Ok(generation) => {
                crate::metrics::metrics().reloads.inc();
                status.reloads += 1;
                status.last_error = None;
                tracing::info!(generation, "configuration reloaded");
            }
            Err(error) => {
                crate::metrics::metrics().reload_errors.inc();
                status.failures += 1;
                status.last_error = Some(error.to_string());
                tracing::error!(error = %error, "reload failed; the previous configuration keeps serving");
            }
        }
        outcome
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
    ) -> Result<u64, ReloadError> {
        loop {
            let current = self.dispatcher.runtime();
            let files: Vec<PathBuf> = current.files().to_vec();
            let before = fingerprints(&files).await;
            tokio::time::sleep(self.settings.settle).await;
            // Changes that arrived while settling are part of this reload.
            while let Ok(r) = inbox.try_recv() {
                if let Request::Now(reply) = r {
                    waiting.push(reply);
                }
            }
            let after = fingerprints(&files).await;
            if before != after {
                continue;
            }
            let built = Runtime::load(&self.config_path).await;
            let (_, mut runtime) = built
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
            runtime.succeed(&current);
            let generation = runtime.generation();
            if let Ok(host) = PluginHost::shared() {
                let keep: Vec<&str> = runtime.plugins().iter().map(|p| p.digest()).collect();
                host.retain_compiled(&keep);
            }
            self.rewatch(&runtime);
            self.dispatcher.swap(runtime);
            return Ok(generation);
        }
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
