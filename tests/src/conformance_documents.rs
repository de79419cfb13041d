//! Conformance cases for governance documents (docs/governance.md): every backend stores them
//! persistently at the contract's path, reads back what was written, watches them, and keeps
//! them out of service listings. Run by [`conformance_tests!`](crate::conformance_tests).

use std::sync::Arc;

use futures::StreamExt;
use rpc_core::documents::{DocumentEvent, DocumentKind, DocumentStream, Documents, GOVERNANCE_DIR};
use rpc_core::registry::{Registry, ServiceKey};

use crate::conformance::{close, unique_service, Backend, ROOT, WAIT};

const ROUTES: &str = r#"{"version":1,"tag":{"force":true}}"#;
const OVERRIDES: &str = r#"{"version":1,"addresses":{"127.0.0.1:1":{"disabled":true}}}"#;

async fn read(
    backend: &dyn Backend,
    registry: &dyn Registry,
    key: &ServiceKey,
    kind: DocumentKind,
) -> Option<String> {
    registry.read_document(key, kind).await.unwrap_or_else(|e| {
        panic!(
            "[{}] read_document {key} {}: {e}",
            backend.name(),
            kind.name()
        )
    })
}

async fn write(
    backend: &dyn Backend,
    registry: &dyn Registry,
    key: &ServiceKey,
    kind: DocumentKind,
    text: Option<&str>,
) {
    registry
        .write_document(key, kind, text)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "[{}] write_document {key} {}: {e}",
                backend.name(),
                kind.name()
            )
        });
}

/// What one client writes, another reads back, at the contract's path, after the writer is
/// gone; deleting removes it.
pub async fn governance_documents_persist_at_the_contract_path(backend: &dyn Backend) {
    let name = backend.name();
    let writer = backend.connect().await;
    let reader = backend.connect().await;
    let key = ServiceKey::new(unique_service("documents"), "1.0.0");
    assert_eq!(
        read(backend, &*reader, &key, DocumentKind::Routes).await,
        None,
        "[{name}] new key has routes"
    );

    write(backend, &*writer, &key, DocumentKind::Routes, Some(ROUTES)).await;
    write(
        backend,
        &*writer,
        &key,
        DocumentKind::Overrides,
        Some(OVERRIDES),
    )
    .await;
    close(name, &*writer).await;

    assert_eq!(
        read(backend, &*reader, &key, DocumentKind::Routes)
            .await
            .as_deref(),
        Some(ROUTES),
        "[{name}] routes after the writer shut down"
    );
    assert_eq!(
        read(backend, &*reader, &key, DocumentKind::Overrides)
            .await
            .as_deref(),
        Some(OVERRIDES),
        "[{name}] overrides"
    );
    let path = format!("{ROOT}/{GOVERNANCE_DIR}/{key}/routes");
    assert_eq!(
        backend.get_raw(&path).await.as_deref(),
        Some(ROUTES.as_bytes()),
        "[{name}] raw node at {path}"
    );

    let listed = reader
        .services()
        .await
        .unwrap_or_else(|e| panic!("[{name}] services: {e}"));
    assert!(
        listed
            .iter()
            .all(|k| !k.name().starts_with(GOVERNANCE_DIR) && k != &key),
        "[{name}] services() lists governance paths: {listed:?}"
    );

    write(backend, &*reader, &key, DocumentKind::Routes, None).await;
    assert_eq!(
        read(backend, &*reader, &key, DocumentKind::Routes).await,
        None,
        "[{name}] routes after delete"
    );
    write(backend, &*reader, &key, DocumentKind::Overrides, None).await;
    close(name, &*reader).await;
}

/// The next snapshot on `watch`, skipping disconnect notices; fails after [`WAIT`].
async fn next_snapshot(name: &str, watch: &mut DocumentStream) -> Documents {
    loop {
        match tokio::time::timeout(WAIT, watch.next()).await {
            Ok(Some(DocumentEvent::Snapshot(documents))) => return documents,
            Ok(Some(DocumentEvent::Disconnected { .. })) => continue,
            Ok(None) => panic!("[{name}] document watch ended"),
            Err(_) => panic!("[{name}] no document snapshot within {WAIT:?}"),
        }
    }
}

/// A watch of documents starts with the current ones and follows writes by clients and by
/// tools.
pub async fn governance_documents_are_watched(backend: &dyn Backend) {
    let name = backend.name();
    let registry: Arc<dyn Registry> = backend.connect().await;
    let key = ServiceKey::new(unique_service("documents-watch"), "1.0.0");
    let mut watch = registry
        .watch_documents(&key)
        .await
        .unwrap_or_else(|e| panic!("[{name}] watch_documents: {e}"));
    assert_eq!(
        next_snapshot(name, &mut watch).await,
        Documents::default(),
        "[{name}] first snapshot"
    );

    write(
        backend,
        &*registry,
        &key,
        DocumentKind::Routes,
        Some(ROUTES),
    )
    .await;
    let seen = next_snapshot(name, &mut watch).await;
    assert_eq!(
        seen.routes.as_deref(),
        Some(ROUTES),
        "[{name}] after write: {seen:?}"
    );

    let path = format!("{ROOT}/{GOVERNANCE_DIR}/{key}/overrides");
    backend.put_raw(&path, OVERRIDES.as_bytes()).await;
    let seen = next_snapshot(name, &mut watch).await;
    assert_eq!(
        seen.overrides.as_deref(),
        Some(OVERRIDES),
        "[{name}] after a tool's write: {seen:?}"
    );
    assert_eq!(
        seen.routes.as_deref(),
        Some(ROUTES),
        "[{name}] routes kept: {seen:?}"
    );

    write(backend, &*registry, &key, DocumentKind::Routes, None).await;
    let seen = next_snapshot(name, &mut watch).await;
    assert_eq!(seen.routes, None, "[{name}] after delete: {seen:?}");
    write(backend, &*registry, &key, DocumentKind::Overrides, None).await;
    close(name, &*registry).await;
}
