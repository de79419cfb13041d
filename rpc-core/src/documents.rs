//! Governance documents as a registry stores them (layout **contract**, docs/governance.md):
//! persistent JSON at `<root>/_governance/<service-key>/overrides` and `.../routes`, beside
//! the provider nodes and readable with the same tools. What the documents mean is the
//! cluster's business (`cluster::governance`); a registry only stores and watches the text.

use futures::stream::BoxStream;

/// The folder under the registry root that holds governance documents. Listings of services
/// and watches of provider nodes skip it.
pub const GOVERNANCE_DIR: &str = "_governance";

/// The most bytes a governance document may have; a larger one is refused on write and
/// ignored (with a warning) on read, so a hostile registry cannot make consumers allocate
/// without bound.
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024;

/// The two documents a service can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DocumentKind {
    /// Per-address `disabled` and `weight`, per-service call settings.
    Overrides,
    /// Tag routing and condition rules.
    Routes,
}

impl DocumentKind {
    /// Both kinds.
    pub const ALL: [DocumentKind; 2] = [DocumentKind::Overrides, DocumentKind::Routes];

    /// The last path segment, `overrides` or `routes`.
    pub fn name(self) -> &'static str {
        match self {
            DocumentKind::Overrides => "overrides",
            DocumentKind::Routes => "routes",
        }
    }

    /// The kind whose path segment is `name`.
    pub fn from_name(name: &str) -> Option<DocumentKind> {
        DocumentKind::ALL
            .into_iter()
            .find(|kind| kind.name() == name)
    }

    /// The document's path for `service_key` under `root` (`/rpc` by default).
    ///
    /// ```
    /// use rpc_core::documents::DocumentKind;
    ///
    /// assert_eq!(
    ///     DocumentKind::Routes.path("/rpc", "example.Greeter:1.0.0"),
    ///     "/rpc/_governance/example.Greeter:1.0.0/routes"
    /// );
    /// ```
    pub fn path(self, root: &str, service_key: &str) -> String {
        format!(
            "{}/{GOVERNANCE_DIR}/{service_key}/{}",
            root.trim_end_matches('/'),
            self.name()
        )
    }
}

/// The governance documents of one service key as they stand: the text of each, or `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Documents {
    /// The overrides document's text.
    pub overrides: Option<String>,
    /// The routes document's text.
    pub routes: Option<String>,
}

impl Documents {
    /// The text of `kind`.
    pub fn get(&self, kind: DocumentKind) -> Option<&str> {
        match kind {
            DocumentKind::Overrides => self.overrides.as_deref(),
            DocumentKind::Routes => self.routes.as_deref(),
        }
    }

    /// Sets the text of `kind`.
    pub fn set(&mut self, kind: DocumentKind, text: Option<String>) {
        match kind {
            DocumentKind::Overrides => self.overrides = text,
            DocumentKind::Routes => self.routes = text,
        }
    }
}

/// What a watch of governance documents delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentEvent {
    /// Both documents as they stand now.
    Snapshot(Documents),
    /// The backend lost the registry; the last snapshot stays in force until the next one.
    Disconnected {
        /// Why, for logs.
        reason: String,
    },
}

/// What `Registry::watch_documents` returns.
pub type DocumentStream = BoxStream<'static, DocumentEvent>;
