//! The plugin's allocator: small blocks in size classes, each with a list of
//! the blocks freed, over the system's allocator (wasi-libc's dlmalloc).
//!
//! Every event crosses into a plugin as one allocation per string the router
//! lowers, and every event a plugin returns leaves as as many frees after the
//! call: a dozen or more of each per call. dlmalloc spent about 450
//! instructions on each allocation and free, half of the guest's time in a
//! handler that renames an event and emits it (BENCHMARKS.md). Here a block
//! freed goes to the front of its class's list and the next allocation of that
//! class takes it back, a few instructions each way.
//!
//! Blocks of up to [`LARGEST`] bytes (aligned to at most 16) come from chunks
//! of [`CHUNK`] bytes taken from the system's allocator, and are never given
//! back to it: a linear memory never shrinks anyway, and the next allocation
//! of the class reuses them. Larger or more aligned blocks go to the system's
//! allocator, which gives a call that runs out of memory the usual trap.
//!
//! It is the global allocator of plugins built for WebAssembly with the
//! default feature `allocator`; a plugin with its own `#[global_allocator]`
//! turns the feature off.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::ptr;

/// The largest block served from the size classes.
pub(crate) const LARGEST: usize = 1024;

/// The bytes taken from the system's allocator at a time for small blocks.
pub(crate) const CHUNK: usize = 64 * 1024;

/// The smallest class: room for the free list's link, and 16-byte alignment
/// for every block (chunks are 16-aligned and every class is a multiple of 16).
const SMALLEST: usize = 16;

/// 16, 32, 64, 128, 256, 512 and 1024 bytes.
const CLASSES: usize = (LARGEST / SMALLEST).trailing_zeros() as usize + 1;

/// The most alignment a block of a class is sure to have.
const ALIGN: usize = 16;

/// Size classes with free lists over [`System`]; see the module's documentation.
pub(crate) struct Classes {
    state: UnsafeCell<State>,
}

struct State {
    /// The first free block of each class; each free block holds the next.
    free: [*mut u8; CLASSES],
    /// The unused rest of the current chunk.
    next: *mut u8,
    end: *mut u8,
}

// A WebAssembly plugin without the threads proposal has one thread, so the
// state is never reached from two at once.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
unsafe impl Sync for Classes {}

impl Classes {
    /// An allocator with no memory of its own yet.
    pub(crate) const fn new() -> Self {
        Self {
            state: UnsafeCell::new(State {
                free: [ptr::null_mut(); CLASSES],
                next: ptr::null_mut(),
                end: ptr::null_mut(),
            }),
        }
    }
}

impl Default for Classes {
    fn default() -> Self {
        Self::new()
    }
}

/// The class of a block for `layout`, or `None` for the system's allocator.
fn class(layout: &Layout) -> Option<usize> {
    if layout.size() > LARGEST || layout.align() > ALIGN {
        return None;
    }
    let size = layout.size().max(SMALLEST);
    Some((usize::BITS - (size - 1).leading_zeros()) as usize - SMALLEST.trailing_zeros() as usize)
}

/// The size of the blocks of class `c`.
fn block_size(c: usize) -> usize {
    SMALLEST << c
}

impl State {
    /// A block of class `c` from the current chunk, or from a new one.
    ///
    /// # Safety
    /// Only through [`Classes`], which makes sure one caller at a time.
    unsafe fn carve(&mut self, c: usize) -> *mut u8 {
        let size = block_size(c);
        if (self.end as usize) - (self.next as usize) < size {
            // The rest of the chunk, less than a block of this class, is left
            // unused: at most a sixty-fourth of a chunk.
            // SAFETY: a valid, non-zero layout.
            let chunk = unsafe { System.alloc(Layout::from_size_align_unchecked(CHUNK, ALIGN)) };
            if chunk.is_null() {
                return chunk;
            }
            self.next = chunk;
            // SAFETY: within (one past the end of) the chunk just allocated.
            self.end = unsafe { chunk.add(CHUNK) };
        }
        let block = self.next;
        // SAFETY: `size` bytes remain in the chunk.
        self.next = unsafe { block.add(size) };
        block
    }
}

unsafe impl GlobalAlloc for Classes {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(c) = class(&layout) else {
            // SAFETY: the caller's layout, as the caller promised it.
            return unsafe { System.alloc(layout) };
        };
        // SAFETY: one thread (see `Sync`), and no reference to the state
        // outlives this call.
        let state = unsafe { &mut *self.state.get() };
        let head = state.free[c];
        if head.is_null() {
            // SAFETY: as above.
            return unsafe { state.carve(c) };
        }
        // SAFETY: a free block of this class holds the next one's address.
        state.free[c] = unsafe { head.cast::<*mut u8>().read() };
        head
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        let Some(c) = class(&layout) else {
            // SAFETY: allocated by `System` with this layout (see `alloc`).
            return unsafe { System.dealloc(block, layout) };
        };
        // SAFETY: as in `alloc`.
        let state = unsafe { &mut *self.state.get() };
        // SAFETY: the block is ours again, at least 16 bytes and 16-aligned.
        unsafe { block.cast::<*mut u8>().write(state.free[c]) };
        state.free[c] = block;
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if class(&layout).is_none() {
            // SAFETY: as in `alloc`.
            return unsafe { System.alloc_zeroed(layout) };
        }
        // SAFETY: as in `alloc`; a reused block holds old bytes, cleared here.
        unsafe {
            let block = self.alloc(layout);
            if !block.is_null() {
                block.write_bytes(0, layout.size());
            }
            block
        }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller promises a valid layout for `new_size`.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class(&layout), class(&new_layout)) {
            // Still fits its block (a string or list growing within its class).
            (Some(old), Some(new)) if old == new => block,
            // SAFETY: allocated by `System` with `layout`.
            (None, None) => unsafe { System.realloc(block, layout, new_size) },
            _ => {
                // SAFETY: `alloc` and `dealloc` with the layouts they were
                // made with; the copy stays within both blocks.
                unsafe {
                    let moved = self.alloc(new_layout);
                    if !moved.is_null() {
                        ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                        self.dealloc(block, layout);
                    }
                    moved
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).expect("layout")
    }

    #[test]
    fn sizes_fall_in_the_smallest_class_that_holds_them() {
        assert_eq!(class(&layout(0, 1)), Some(0));
        assert_eq!(class(&layout(1, 1)), Some(0));
        assert_eq!(class(&layout(16, 8)), Some(0));
        assert_eq!(class(&layout(17, 1)), Some(1));
        assert_eq!(class(&layout(32, 16)), Some(1));
        assert_eq!(class(&layout(33, 4)), Some(2));
        assert_eq!(class(&layout(1000, 1)), Some(CLASSES - 1));
        assert_eq!(class(&layout(LARGEST, 1)), Some(CLASSES - 1));
        assert_eq!(block_size(CLASSES - 1), LARGEST);
        assert_eq!(class(&layout(LARGEST + 1, 1)), None);
        assert_eq!(class(&layout(8, 32)), None);
    }

    #[test]
    fn a_freed_block_is_the_next_one_of_its_class() {
        let a = Classes::new();
        unsafe {
            let first = a.alloc(layout(24, 8));
            let second = a.alloc(layout(20, 4));
            assert_ne!(first, second);
            a.dealloc(first, layout(24, 8));
            // Another size of the same class takes the freed block back.
            assert_eq!(a.alloc(layout(30, 1)), first);
            // Another class does not.
            let other = a.alloc(layout(40, 8));
            assert!(other != first && other != second);
        }
    }

    #[test]
    fn blocks_are_aligned_and_do_not_overlap() {
        let a = Classes::new();
        let mut blocks = Vec::new();
        for i in 0..5000usize {
            let size = 1 + (i * 37) % LARGEST;
            let l = layout(size, 1 << (i % 5));
            let block = unsafe { a.alloc(l) };
            assert!(!block.is_null());
            assert_eq!(block as usize % l.align(), 0, "{l:?}");
            unsafe { block.write_bytes(i as u8, size) };
            blocks.push((block, l, i as u8));
            if i % 3 == 0 {
                let (b, l, _) = blocks.swap_remove(i % blocks.len());
                unsafe { a.dealloc(b, l) };
            }
        }
        // Every live block still holds what was written into it.
        for (block, l, byte) in &blocks {
            let bytes = unsafe { std::slice::from_raw_parts(*block, l.size()) };
            assert!(bytes.iter().all(|b| b == byte), "{l:?}");
        }
        for (block, l, _) in blocks {
            unsafe { a.dealloc(block, l) };
        }
    }

    #[test]
    fn realloc_keeps_the_bytes_across_classes_and_to_the_system() {
        let a = Classes::new();
        unsafe {
            let mut block = a.alloc(layout(10, 1));
            block.copy_from_nonoverlapping(b"0123456789".as_ptr(), 10);
            // Within the class: the same block.
            assert_eq!(a.realloc(block, layout(10, 1), 16), block);
            let mut size = 16;
            // Up through the classes, out to the system and back.
            for next in [100, 1024, 5000, 70_000, 600, 10] {
                block = a.realloc(block, layout(size, 1), next);
                size = next;
                assert_eq!(std::slice::from_raw_parts(block, 10), b"0123456789");
            }
            a.dealloc(block, layout(size, 1));
        }
    }

    #[test]
    fn large_and_overaligned_blocks_go_to_the_system() {
        let a = Classes::new();
        unsafe {
            let big = a.alloc_zeroed(layout(LARGEST * 4, 8));
            assert!(
                std::slice::from_raw_parts(big, LARGEST * 4)
                    .iter()
                    .all(|b| *b == 0)
            );
            a.dealloc(big, layout(LARGEST * 4, 8));
            let aligned = a.alloc(layout(64, 64));
            assert_eq!(aligned as usize % 64, 0);
            a.dealloc(aligned, layout(64, 64));
            // A reused small block comes back zeroed when asked so.
            let small = a.alloc(layout(48, 8));
            small.write_bytes(0xff, 48);
            a.dealloc(small, layout(48, 8));
            let zeroed = a.alloc_zeroed(layout(48, 8));
            assert_eq!(zeroed, small);
            assert!(
                std::slice::from_raw_parts(zeroed, 48)
                    .iter()
                    .all(|b| *b == 0)
            );
        }
    }
}
