//! Futures boxed where they are made.
//!
//! `Box::pin(future)` makes the future on the stack and then copies all of it
//! into the heap: every byte of its layout, though a future that has not been
//! polled holds only what it captured. So does `.await` of a future made by a
//! call, into the awaiting future's state. A plugin call's future is about
//! 2 KiB: its box alone read and wrote some 64 cache lines a request, most of
//! them cold (callgrind's cache simulation, `bench/instructions.py`: 50 misses
//! in the first level, of the 447 the router had over the floor). A future
//! made by a closure into memory already allocated is written in place
//! instead: the heap is the closure's return slot, and only the captured
//! values are stored. With the call and the request's two largest futures
//! made so (and `dispatch.rs`' two not `async fn`s), the router missed 478
//! lines a request instead of 600, and ran 480 fewer instructions.

use std::future::Future;
use std::pin::Pin;

/// `Box::pin(make())`, with the future written straight into its box (see the
/// module's documentation); `make` is a closure so that its result has
/// somewhere to go before it exists. `make` should only make the future: when
/// it can unwind (it allocates, it calls code that may panic), the compiler
/// makes its result on the stack and copies it after all, so such work goes
/// before the call.
#[inline(always)]
pub(crate) fn pinned<F: Future>(make: impl FnOnce() -> F) -> Pin<Box<F>> {
    Box::into_pin(Box::write(Box::new_uninit(), make()))
}
