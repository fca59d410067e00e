//! Compiled components on disk (`[compile_cache]`), so that a start, a reload or
//! another router process loads in milliseconds what an earlier run compiled in
//! seconds: a component written in Python or JavaScript is 10-20 MB and takes
//! cranelift about 6 s.
//!
//! An entry is named by the SHA-256 of the component's bytes and a hash of the
//! engine's configuration and version, so a changed component, a changed engine
//! setting or a new wasmtime simply misses. Its content is a header, the SHA-256
//! of the payload, and the payload, wasmtime's serialized form. Entries are
//! written to a new temporary file and renamed into place, so a reader never sees
//! half of one; one that does not check out is deleted and compiled again.
//!
//! Loading native code from disk is as trusting as loading the router's own
//! binary: wasmtime runs what it deserializes without verifying it. The
//! directory is created private (0700) and refused when another user owns it or
//! others may write to it, and the checksum catches corruption; anyone who can
//! still write there could equally replace the router itself.

use crate::digest::{hex, sha256};
use std::hash::{Hash as _, Hasher as _};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The first bytes of every entry, so that a stray file is never deserialized.
const MAGIC: &[u8; 16] = b"router-cwasm-v1\n";

/// Why a cache directory cannot be used. Configured explicitly, this is a
/// configuration error; for the default directory, a warning.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The directory cannot be created or read.
    #[error("cannot use {path}: {source}")]
    Io {
        /// The directory.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Someone else could plant native code in it.
    #[error("{path} is {why}; the compile cache must be private to the router's user (chmod 700)")]
    NotPrivate {
        /// The directory.
        path: String,
        /// What is wrong with its owner or mode.
        why: &'static str,
    },
}

/// A directory of compiled components.
#[derive(Debug)]
pub struct DiskCache {
    dir: PathBuf,
    max_bytes: u64,
}

impl DiskCache {
    /// Opens (creating it private if needed) the cache at `dir`, holding at most
    /// `max_bytes`.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self, CacheError> {
        let shown = || dir.display().to_string();
        let io = |source| CacheError::Io {
            path: shown(),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io)?;
        let meta = std::fs::metadata(dir).map_err(io)?;
        // `/proc/self` belongs to the process's effective user: no libc call.
        let me = std::fs::metadata("/proc/self").map_err(io)?.uid();
        if meta.uid() != me {
            return Err(CacheError::NotPrivate {
                path: shown(),
                why: "owned by another user",
            });
        }
        if meta.mode() & 0o022 != 0 {
            return Err(CacheError::NotPrivate {
                path: shown(),
                why: "writable by its group or by others",
            });
        }
        Ok(Self {
            dir: dir.to_owned(),
            max_bytes,
        })
    }

    fn entry(&self, engine: &Engine, digest: &[u8; 32]) -> PathBuf {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        self.dir
            .join(format!("{}-{:016x}.cwasm", hex(digest), hasher.finish()))
    }

    /// The component whose bytes hash to `digest`, compiled by an engine like
    /// `engine`, when a sound entry holds it. A damaged entry is removed.
    pub fn get(&self, engine: &Engine, digest: &[u8; 32]) -> Option<Component> {
        let path = self.entry(engine, digest);
        let bytes = std::fs::read(&path).ok()?;
        let payload = bytes
            .strip_prefix(MAGIC.as_slice())
            .and_then(|rest| rest.split_at_checked(32))
            .filter(|(sum, payload)| sha256(payload).as_slice() == *sum)
            .map(|(_, payload)| payload);
        let component = payload.and_then(|payload| deserialize(engine, payload));
        match component {
            Some(component) => {
                // Marks the entry as recently used, for the size limit.
                let _ = std::fs::File::open(&path)
                    .and_then(|f| f.set_modified(std::time::SystemTime::now()));
                Some(component)
            }
            None => {
                tracing::warn!(entry = %path.display(), "a compile cache entry does not check out; compiling again");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Keeps `component` (whose bytes hash to `digest`) for later runs, then
    /// trims the directory to its size limit. Failures are logged: the cache
    /// only saves time.
    pub fn put(&self, engine: &Engine, digest: &[u8; 32], component: &Component) {
        let path = self.entry(engine, digest);
        if let Err(e) = self.write(&path, component) {
            tracing::warn!(entry = %path.display(), error = %e, "cannot write a compile cache entry");
            return;
        }
        self.trim(&path);
    }

    fn write(&self, path: &Path, component: &Component) -> std::io::Result<()> {
        let payload = component.serialize().map_err(std::io::Error::other)?;
        let tmp = self.dir.join(format!(
            ".{}.{:016x}.tmp",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("entry"),
            fastrand::u64(..)
        ));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut file| {
                file.write_all(MAGIC)?;
                file.write_all(&sha256(&payload))?;
                file.write_all(&payload)?;
                file.sync_all()
            })
            .and_then(|()| std::fs::rename(&tmp, path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }

    /// Removes the least recently used entries (never `keep`) until the
    /// directory holds at most `max_bytes`.
    fn trim(&self, keep: &Path) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut entries: Vec<(std::time::SystemTime, u64, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
            .filter_map(|e| {
                let meta = e.metadata().ok()?;
                Some((meta.modified().ok()?, meta.len(), e.path()))
            })
            .collect();
        let mut total: u64 = entries.iter().map(|(_, len, _)| len).sum();
        entries.sort();
        for (_, len, path) in entries {
            if total <= self.max_bytes {
                break;
            }
            if path != keep && std::fs::remove_file(&path).is_ok() {
                total -= len;
            }
        }
    }
}

/// wasmtime's own check refuses bytes of another engine configuration or
/// version; the checksum and the directory's privacy (see the module) stand for
/// the rest of what its safety contract asks: that the bytes are its own output.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, payload: &[u8]) -> Option<Component> {
    // SAFETY: `payload` is what `Component::serialize` wrote into a private
    // directory, with its SHA-256 checked just now.
    unsafe { Component::deserialize(engine, payload) }.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        Engine::new(&crate::plugin::engine_config().expect("engine config")).expect("engine")
    }

    /// The smallest component there is: the header of an empty one.
    fn component(engine: &Engine) -> (Component, [u8; 32]) {
        let bytes = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];
        (
            Component::new(engine, bytes).expect("compiles"),
            sha256(&bytes),
        )
    }

    #[test]
    fn an_entry_comes_back_and_a_damaged_one_is_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = DiskCache::open(&dir.path().join("c"), 1 << 30).expect("open");
        let engine = engine();
        let (component, digest) = component(&engine);
        assert!(cache.get(&engine, &digest).is_none());
        cache.put(&engine, &digest, &component);
        assert!(cache.get(&engine, &digest).is_some());
        let path = cache.entry(&engine, &digest);
        let mode = std::fs::metadata(&path).expect("entry").mode();
        assert_eq!(mode & 0o777, 0o600);
        let mut bytes = std::fs::read(&path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, bytes).expect("write");
        assert!(
            cache.get(&engine, &digest).is_none(),
            "a flipped bit misses"
        );
        assert!(!path.exists(), "and the entry is gone");
    }

    #[test]
    fn the_directory_is_private_or_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c");
        DiskCache::open(&path, 1).expect("open");
        let mode = std::fs::metadata(&path).expect("dir").mode();
        assert_eq!(mode & 0o777, 0o700);
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        assert!(matches!(
            DiskCache::open(&path, 1),
            Err(CacheError::NotPrivate { .. })
        ));
    }

    #[test]
    fn past_its_size_the_least_recently_used_entries_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = engine();
        let (component, _) = component(&engine);
        let size = component.serialize().expect("serialize").len() as u64 + 64;
        let cache = DiskCache::open(&dir.path().join("c"), 2 * size).expect("open");
        let keys: Vec<[u8; 32]> = (0u8..3).map(|i| sha256(&[i])).collect();
        for key in &keys {
            cache.put(&engine, key, &component);
        }
        let kept: Vec<bool> = keys
            .iter()
            .map(|k| cache.entry(&engine, k).exists())
            .collect();
        assert_eq!(kept.iter().filter(|k| **k).count(), 2, "{kept:?}");
        assert!(kept[2], "the newest entry stays");
    }
}
