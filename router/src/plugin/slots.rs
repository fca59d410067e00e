//! The instances of one plugin: how many of its calls may run at once, and the
//! warm instances waiting between calls, under one lock.
//!
//! A semaphore beside a locked list took and released two locks and a permit
//! per call (the semaphore's release locks its wait list even when nobody
//! waits), all on memory every worker writes: one lock to take a slot and its
//! warm instance, one to give them back, is what a call needs.

use crate::sync::lock;
use std::sync::Mutex;
use tokio::sync::Notify;

/// At most `n` calls at once, and the instances kept warm between them.
pub(super) struct Slots<T> {
    state: Mutex<State<T>>,
    /// Wakes a caller waiting for a slot when one is given back.
    freed: Notify,
}

struct State<T> {
    idle: Vec<T>,
    /// Slots not taken.
    free: usize,
    /// Callers waiting for a slot: a slot given back wakes one only then.
    waiting: usize,
}

impl<T> State<T> {
    /// Whether a waiting caller should be woken: a slot is free for it. A
    /// wake-up given while nobody listens is kept for one caller only, so
    /// every change that leaves a slot free (given back, taken by a woken
    /// caller, left by one that gives up) wakes the next.
    fn wakes_next(&self) -> bool {
        self.free > 0 && self.waiting > 0
    }
}

/// A slot taken: given back when dropped, with the instance [`Slot::keep`]
/// was handed, if any.
pub(super) struct Slot<'a, T> {
    slots: &'a Slots<T>,
    kept: Option<T>,
}

impl<T> Slots<T> {
    /// `n` slots, no instance yet.
    pub(super) fn new(n: usize) -> Self {
        Self {
            state: Mutex::new(State {
                idle: Vec::with_capacity(n),
                free: n,
                waiting: 0,
            }),
            freed: Notify::new(),
        }
    }

    /// Instances waiting warm.
    pub(super) fn idle(&self) -> usize {
        lock(&self.state).idle.len()
    }

    /// Keeps `instance` warm for a later call (one started ahead of time).
    pub(super) fn put(&self, instance: T) {
        lock(&self.state).idle.push(instance);
    }

    /// The warm instances, to change before the plugin is shared.
    pub(super) fn idle_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.state
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .idle
            .iter_mut()
    }

    /// A slot, and a warm instance when one waits; waits while every slot is
    /// taken. Dropping the future while it waits gives up its place.
    ///
    /// Slots given back go to the callers already waiting before new ones:
    /// under load, new calls would otherwise take every slot given back before
    /// a woken caller runs, and the oldest could wait forever.
    pub(super) async fn take(&self) -> (Slot<'_, T>, Option<T>) {
        let mut waiting = {
            let mut state = lock(&self.state);
            if state.free > state.waiting {
                return self.taken(&mut state);
            }
            state.waiting += 1;
            Waiting {
                slots: self,
                counted: true,
            }
        };
        loop {
            // A slot given back before this wait began left its wake-up in
            // `freed`, which this wait then takes at once.
            self.freed.notified().await;
            if let Some(taken) = waiting.try_take() {
                return taken;
            }
        }
    }

    fn taken(&self, state: &mut State<T>) -> (Slot<'_, T>, Option<T>) {
        state.free -= 1;
        let warm = state.idle.pop();
        (
            Slot {
                slots: self,
                kept: None,
            },
            warm,
        )
    }
}

/// A caller counted as waiting, until it has a slot or gives up.
struct Waiting<'a, T> {
    slots: &'a Slots<T>,
    counted: bool,
}

impl<'a, T> Waiting<'a, T> {
    fn try_take(&mut self) -> Option<(Slot<'a, T>, Option<T>)> {
        let slots = self.slots;
        let mut state = lock(&slots.state);
        if state.free == 0 {
            return None;
        }
        state.waiting -= 1;
        self.counted = false;
        let taken = slots.taken(&mut state);
        let next = state.wakes_next();
        drop(state);
        if next {
            slots.freed.notify_one();
        }
        Some(taken)
    }
}

impl<T> Drop for Waiting<'_, T> {
    fn drop(&mut self) {
        if !self.counted {
            return;
        }
        let next = {
            let mut state = lock(&self.slots.state);
            state.waiting -= 1;
            state.wakes_next()
        };
        // This caller may have taken the wake-up meant for a slot it leaves.
        if next {
            self.slots.freed.notify_one();
        }
    }
}

impl<T> Slot<'_, T> {
    /// Keeps `instance` warm for the next call when this slot is given back.
    pub(super) fn keep(&mut self, instance: T) {
        self.kept = Some(instance);
    }
}

impl<T> Drop for Slot<'_, T> {
    fn drop(&mut self) {
        let wake = {
            let mut state = lock(&self.slots.state);
            state.free += 1;
            if let Some(instance) = self.kept.take() {
                state.idle.push(instance);
            }
            state.wakes_next()
        };
        if wake {
            self.slots.freed.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::task::Poll;
    use std::time::Duration;

    /// Whether `f` is still waiting after one poll.
    async fn waits<F: Future>(f: Pin<&mut F>) -> bool {
        let mut f = f;
        std::future::poll_fn(|cx| Poll::Ready(f.as_mut().poll(cx).is_pending())).await
    }

    #[tokio::test]
    async fn a_slot_given_back_goes_to_a_waiting_caller_with_its_instance() {
        let slots = Slots::new(1);
        slots.put("warm");
        let (mut first, warm) = slots.take().await;
        assert_eq!(warm, Some("warm"));
        // Every slot is taken: the next caller waits.
        let second = slots.take();
        let mut second = std::pin::pin!(second);
        assert!(
            waits(second.as_mut()).await,
            "a second call ran beside the first"
        );
        first.keep("warm again");
        drop(first);
        let (_slot, warm) = tokio::time::timeout(Duration::from_secs(10), second)
            .await
            .expect("the waiting caller was never woken");
        assert_eq!(warm, Some("warm again"));
        assert_eq!(slots.idle(), 0);
    }

    #[tokio::test]
    async fn a_new_caller_does_not_take_the_slot_of_one_that_waits() {
        let slots = Slots::<u8>::new(1);
        let (first, _) = slots.take().await;
        let waiting = slots.take();
        let mut waiting = std::pin::pin!(waiting);
        assert!(waits(waiting.as_mut()).await);
        drop(first);
        // The slot is free, but promised to the caller that waited.
        let newcomer = slots.take();
        let mut newcomer = std::pin::pin!(newcomer);
        assert!(
            waits(newcomer.as_mut()).await,
            "a new call went ahead of a waiting one"
        );
        let (slot, _) = tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("the waiting caller was never woken");
        drop(slot);
        tokio::time::timeout(Duration::from_secs(10), newcomer)
            .await
            .expect("the second caller was never woken");
    }

    #[tokio::test]
    async fn a_caller_that_gives_up_waiting_leaves_the_slot_to_the_next() {
        let slots = Slots::<u8>::new(1);
        let (first, _) = slots.take().await;
        {
            let gives_up = slots.take();
            let mut gives_up = std::pin::pin!(gives_up);
            assert!(waits(gives_up.as_mut()).await);
        }
        assert_eq!(lock(&slots.state).waiting, 0);
        let next = slots.take();
        let mut next = std::pin::pin!(next);
        assert!(waits(next.as_mut()).await);
        drop(first);
        // The slot went back free (no instance kept): the next caller gets it.
        let (_slot, warm) = tokio::time::timeout(Duration::from_secs(10), next)
            .await
            .expect("the waiting caller was never woken");
        assert_eq!(warm, None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_callers_share_two_slots_and_every_one_gets_its_turn() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let slots = Arc::new(Slots::<usize>::new(2));
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let callers: Vec<_> = (0..64)
            .map(|i| {
                let (slots, running, most) = (slots.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    for _ in 0..50 {
                        let (mut slot, _) = slots.take().await;
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        tokio::task::yield_now().await;
                        running.fetch_sub(1, Ordering::SeqCst);
                        slot.keep(i);
                    }
                })
            })
            .collect();
        for caller in callers {
            tokio::time::timeout(Duration::from_secs(60), caller)
                .await
                .expect("a caller never got a slot")
                .expect("task");
        }
        assert!(
            most.load(Ordering::SeqCst) <= 2,
            "more calls ran than slots"
        );
        assert_eq!(slots.idle(), 2);
        let state = lock(&slots.state);
        assert_eq!((state.free, state.waiting), (2, 0));
    }
}
