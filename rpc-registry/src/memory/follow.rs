//! Watch streams of the in-memory store: after every change, read the watched part again and
//! send it if it differs from what was sent last. Provider lists and governance documents
//! are followed alike.

use std::sync::Arc;

use futures::stream::{self, BoxStream, StreamExt};
use rpc_core::documents::{DocumentKind, Documents};
use rpc_core::registry::ServiceKey;
use tokio::sync::watch;

use super::{MemoryRegistry, Shared, BACKEND, ROOT};
use crate::documents;

/// What a watch stream carries between polls.
struct Follow<T, R> {
    shared: Arc<Shared>,
    read: R,
    changes: watch::Receiver<i64>,
    closed: watch::Receiver<bool>,
    last: Option<T>,
}

impl<T, R> Follow<T, R>
where
    T: Clone + PartialEq,
    R: Fn(&Shared) -> T,
{
    fn is_closed(&self) -> bool {
        self.closed.has_changed().is_err() || *self.closed.borrow()
    }

    async fn next(mut self) -> Option<(T, Self)> {
        loop {
            if self.is_closed() {
                return None;
            }
            self.changes.borrow_and_update();
            let current = (self.read)(&self.shared);
            if self.last.as_ref() != Some(&current) {
                self.last = Some(current.clone());
                return Some((current, self));
            }
            tokio::select! {
                changed = self.changes.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
                _ = self.closed.changed() => {}
            }
        }
    }
}

impl MemoryRegistry {
    /// A stream of what `read` returns, the current value first, then every different one,
    /// each turned into an event by `event`. It ends when this handle shuts down or drops.
    pub(super) fn follow<T, R, E>(&self, read: R, event: fn(T) -> E) -> BoxStream<'static, E>
    where
        T: Clone + PartialEq + Send + 'static,
        R: Fn(&Shared) -> T + Send + 'static,
        E: 'static,
    {
        let state = Follow {
            shared: self.shared.clone(),
            read,
            changes: self.shared.changed.subscribe(),
            closed: self.closed.subscribe(),
            last: None,
        };
        stream::unfold(state, Follow::next).map(event).boxed()
    }
}

impl Shared {
    /// The text of one governance document, if stored (and valid UTF-8).
    pub(super) fn document(&self, key: &ServiceKey, kind: DocumentKind) -> Option<String> {
        let path = kind.path(ROOT, &key.to_string());
        let store = self.lock();
        let node = store.nodes.get(&path)?;
        documents::text_of(BACKEND, &path, &node.value)
    }

    /// Both governance documents of `key`.
    pub(super) fn documents(&self, key: &ServiceKey) -> Documents {
        Documents {
            overrides: self.document(key, DocumentKind::Overrides),
            routes: self.document(key, DocumentKind::Routes),
        }
    }
}
