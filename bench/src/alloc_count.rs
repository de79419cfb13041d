//! A counting global allocator: every `alloc`, `alloc_zeroed` and `realloc` of this process
//! (a `realloc` counts as one allocation) is counted, so each point can report allocations per
//! call, client and server alike (the server child is the same binary).
//!
//! The count is striped: one shared counter would be a cache line every allocating thread
//! writes, bouncing between cores on exactly the hot path being measured. Instead each thread
//! picks one of [`STRIPES`] cache-line-padded counters once (round robin, remembered in a
//! `const`-initialised thread local that needs no allocation and no destructor) and only ever
//! adds to that one with a relaxed increment; [`allocations`] sums the stripes when asked.
//! Threads beyond [`STRIPES`] share stripes, which costs some contention but no counts.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Counters the allocation count is spread over.
pub const STRIPES: usize = 64;

/// One counter alone on its cache line (128 bytes: adjacent-line prefetch pairs 64 byte lines).
#[repr(align(128))]
struct Stripe(AtomicU64);

static COUNTS: [Stripe; STRIPES] = [const { Stripe(AtomicU64::new(0)) }; STRIPES];

/// Threads given a stripe so far; the next thread takes this count modulo [`STRIPES`].
static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's stripe plus one; 0 until the thread first allocates.
    static STRIPE: Cell<usize> = const { Cell::new(0) };
}

/// The calling thread's stripe, assigned on first use. Never allocates: a thread local that
/// is already torn down falls back to stripe 0.
fn stripe() -> usize {
    STRIPE
        .try_with(|cell| match cell.get() {
            0 => {
                let index = NEXT_STRIPE.fetch_add(1, Ordering::Relaxed) % STRIPES;
                cell.set(index + 1);
                index
            }
            assigned => assigned - 1,
        })
        .unwrap_or(0)
}

fn count() {
    COUNTS[stripe()].0.fetch_add(1, Ordering::Relaxed);
}

/// Allocations (calls to `alloc`, `alloc_zeroed` and `realloc`) this process has made so far.
/// A relaxed sum: exact once the threads being measured are quiet, and never going backwards.
pub fn allocations() -> u64 {
    COUNTS
        .iter()
        .map(|stripe| stripe.0.load(Ordering::Relaxed))
        .fold(0, u64::wrapping_add)
}

/// The system allocator with every allocation counted; installed as the global allocator.
pub struct CountingAllocator;

// SAFETY: every call is passed unchanged to the system allocator; only a counter is added,
// and counting neither allocates nor touches the memory handed out.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's guarantees for `alloc` are passed on as they are.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's guarantees for `alloc_zeroed` are passed on as they are.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through this allocator, with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: the caller's guarantees for `realloc` are passed on as they are.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_allocation_is_counted() {
        let before = allocations();
        for _ in 0..100 {
            let v: Vec<u64> = Vec::with_capacity(10);
            // Keeps the compiler from removing the allocation as unused.
            std::hint::black_box(v);
        }
        let after = allocations();
        // Other test threads may allocate too, so only a lower bound holds.
        assert!(after - before >= 100, "{before} -> {after}");
    }

    #[test]
    fn each_thread_keeps_one_stripe() {
        let here = stripe();
        assert_eq!(stripe(), here);
        let there = std::thread::spawn(|| (stripe(), stripe())).join();
        assert!(
            matches!(there, Ok((a, b)) if a == b && a < STRIPES),
            "{there:?}"
        );
    }
}
