//! Metric handles kept per thread, so the call path finds its series with one lookup
//! instead of building a labelled key and asking the recorder on every call.
//!
//! The `metrics` macros allocate the label list and have the recorder look the series up at
//! every use, even when no recorder is installed; measured on the call path, that cost more
//! than the rest of a call's bookkeeping. A handle belongs to the recorder that issued it, so
//! the recorder's address is part of the key: installing a recorder (or a test's local one)
//! starts fresh handles.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::Hash;
use std::thread::LocalKey;

use crate::protocol::Status;

/// Entries a thread keeps per cache before starting over: labels are bounded where they are
/// made, and this bounds the memory even if they were not.
const MAX_ENTRIES: usize = 4_096;

/// One thread's handles of one kind, keyed by the recorder and the series' labels. Keep it
/// in a `thread_local!`: the handles are used without locking or touching a shared counter.
pub(crate) struct HandleCache<K, V> {
    handles: HashMap<(usize, K), V, foldhash::fast::RandomState>,
    /// The series used last: a thread mostly records the same one call after call, and
    /// comparing its labels costs a fraction of hashing them.
    last: Option<((usize, K), V)>,
}

impl<K: Hash + Eq + Clone, V: Clone> HandleCache<K, V> {
    /// An empty cache.
    pub(crate) fn new() -> Self {
        HandleCache {
            handles: HashMap::default(),
            last: None,
        }
    }

    /// The handle for `labels` under the current recorder; `register` makes it on a miss.
    fn get(&mut self, labels: K, register: impl FnOnce() -> V) -> &V {
        let recorder =
            metrics::with_recorder(|r| (r as *const dyn metrics::Recorder).cast::<()>() as usize);
        let key = (recorder, labels);
        if self.last.as_ref().is_some_and(|(last, _)| *last != key) {
            self.last = None;
        }
        let handles = &mut self.handles;
        let (_, handle) = self.last.get_or_insert_with(|| {
            if handles.len() >= MAX_ENTRIES && !handles.contains_key(&key) {
                handles.clear();
            }
            let handle = handles.entry(key.clone()).or_insert_with(register).clone();
            (key, handle)
        });
        handle
    }
}

/// Runs `use_handle` on this thread's handle for `labels` in `cache`, which `register` makes
/// on a miss. While the thread exits (its cache gone), the handle is registered afresh.
pub(crate) fn with_handle<K: Hash + Eq + Clone + 'static, V: Clone + 'static>(
    cache: &'static LocalKey<RefCell<HandleCache<K, V>>>,
    labels: K,
    register: impl FnOnce() -> V,
    use_handle: impl FnOnce(&V),
) {
    let mut pending = Some((labels, register, use_handle));
    let _ = cache.try_with(|cell| {
        if let (Ok(mut handles), Some((labels, register, use_handle))) =
            (cell.try_borrow_mut(), pending.take())
        {
            use_handle(handles.get(labels, register));
        }
    });
    if let Some((_, register, use_handle)) = pending {
        use_handle(&register());
    }
}

/// The status label: the status byte in decimal, without allocating for the codes in use.
pub(crate) fn status_label(status: Status) -> &'static str {
    const CODES: [&str; 16] = [
        "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15",
    ];
    CODES
        .get(usize::from(status.as_u8()))
        .copied()
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use metrics::Counter;
    use metrics_exporter_prometheus::PrometheusBuilder;

    use super::{with_handle, HandleCache};

    thread_local! {
        static COUNTERS: RefCell<HandleCache<&'static str, Counter>> =
            RefCell::new(HandleCache::new());
    }

    fn count(labels: &'static str) {
        let register = || metrics::counter!("handles_test_total", "which" => labels);
        with_handle(&COUNTERS, labels, register, |c| c.increment(1));
    }

    #[test]
    fn a_kept_handle_records_into_the_recorder_in_force_not_the_one_that_issued_it_first() {
        let first = PrometheusBuilder::new().build_recorder();
        let second = PrometheusBuilder::new().build_recorder();
        let (first_out, second_out) = (first.handle(), second.handle());
        metrics::with_local_recorder(&first, || count("a"));
        metrics::with_local_recorder(&second, || count("a"));
        metrics::with_local_recorder(&first, || count("a"));
        metrics::with_local_recorder(&first, || count("b"));
        let (first_text, second_text) = (first_out.render(), second_out.render());
        assert!(
            first_text.contains("handles_test_total{which=\"a\"} 2"),
            "{first_text}"
        );
        assert!(
            first_text.contains("handles_test_total{which=\"b\"} 1"),
            "{first_text}"
        );
        assert!(
            second_text.contains("handles_test_total{which=\"a\"} 1"),
            "{second_text}"
        );
    }
}
