//! The one way the router takes a `std::sync::Mutex`.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, recovering it if a thread panicked while holding it: every
/// critical section in the router leaves its data consistent at each step (an
/// insert, a remove, a push), so a panic elsewhere must not turn each later
/// lock into a second panic on the event path.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
