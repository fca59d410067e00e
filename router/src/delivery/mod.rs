//! Delivery guarantees around the dispatcher: retries with backoff ([`retry`]),
//! dead letters ([`deadletter`]) and sending them back ([`redrive`]), duplicate
//! suppression ([`dedup`]), the journals that routes append events to
//! ([`journal`]), and the archive of accepted events ([`archive`]).

pub mod archive;
pub mod deadletter;
pub mod dedup;
pub mod journal;
pub mod redrive;
pub mod retry;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};

/// One value per file path for the whole process.
pub(crate) type PerPath<T> = LazyLock<Mutex<HashMap<PathBuf, Arc<T>>>>;

/// The value for `path` in `registry`, made by `make` the first time: every route
/// and reloaded runtime that names one file shares it (and the lock in it), so
/// their writes to the file never interleave.
pub(crate) fn per_path<T>(registry: &PerPath<T>, path: &Path, make: impl FnOnce() -> T) -> Arc<T> {
    let mut values = crate::sync::lock(registry);
    Arc::clone(
        values
            .entry(path.to_owned())
            .or_insert_with(|| Arc::new(make())),
    )
}
