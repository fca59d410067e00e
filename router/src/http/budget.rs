//! The process-wide budget of buffered request bytes (`server.max_buffered_bytes`).
//!
//! A request reserves its declared `Content-Length` before a byte of its body is
//! read (a chunked body reserves each chunk as it arrives), and keeps the
//! reservation until its answer is made: the body, and the events whose data
//! points into it, live that long. When the budget cannot cover a request, the
//! request is refused at once instead of being read, so many clients sending
//! large bodies slowly cannot hold more than the budget in memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes that requests may still reserve.
#[derive(Debug)]
pub struct ByteBudget {
    available: AtomicU64,
    total: u64,
}

/// Bytes reserved by one request; given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<ByteBudget>,
    bytes: u64,
}

impl ByteBudget {
    /// A budget of `total` bytes.
    pub fn new(total: u64) -> Arc<Self> {
        Arc::new(Self {
            available: AtomicU64::new(total),
            total,
        })
    }

    /// The whole budget, in bytes.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Reserves `bytes`, or nothing when fewer are left.
    pub fn reserve(self: &Arc<Self>, bytes: u64) -> Option<Reservation> {
        self.take(bytes).then(|| Reservation {
            budget: Arc::clone(self),
            bytes,
        })
    }

    fn take(&self, bytes: u64) -> bool {
        self.available
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                left.checked_sub(bytes)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: u64) {
        self.available.fetch_add(bytes, Ordering::AcqRel);
    }

    /// Bytes not reserved now.
    #[cfg(test)]
    fn available(&self) -> u64 {
        self.available.load(Ordering::Acquire)
    }
}

impl Reservation {
    /// The bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Reserves `more` bytes besides those held; false (holding the same as
    /// before) when the budget cannot cover them.
    pub fn grow(&mut self, more: u64) -> bool {
        let taken = self.budget.take(more);
        if taken {
            self.bytes += more;
        }
        taken
    }

    /// Gives back what is held beyond `bytes`.
    pub fn shrink_to(&mut self, bytes: u64) {
        if bytes < self.bytes {
            self.budget.give_back(self.bytes - bytes);
            self.bytes = bytes;
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_take_and_give_back() {
        let budget = ByteBudget::new(100);
        let mut a = budget.reserve(60).expect("room for 60");
        assert!(budget.reserve(41).is_none(), "only 40 are left");
        assert!(a.grow(40));
        assert!(!a.grow(1), "the budget is spent");
        assert_eq!(budget.available(), 0);
        a.shrink_to(10);
        assert_eq!(budget.available(), 90);
        let b = budget.reserve(90).expect("what was given back");
        drop(a);
        drop(b);
        assert_eq!(budget.available(), 100);
    }
}
