//! Reading and editing governance documents in a registry, with validation before every
//! write. rpcctl and the console both go through here, so they cannot differ in what they
//! accept or where they write.

use std::sync::Arc;

use super::{GovernanceError, Overrides, Routes};
use crate::documents::DocumentKind;
use crate::registry::{Registry, RegistryError, ServiceKey};

/// Why a governance read or write failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The document (stored, or about to be written) is not valid; nothing was written.
    #[error("{kind} of {key}: {source}")]
    Invalid {
        /// The service key.
        key: String,
        /// `overrides` or `routes`.
        kind: &'static str,
        /// What is wrong.
        #[source]
        source: GovernanceError,
    },
}

/// The governance documents of a registry.
#[derive(Clone)]
pub struct GovernanceStore {
    registry: Arc<dyn Registry>,
}

impl GovernanceStore {
    /// A store over `registry`.
    pub fn new(registry: Arc<dyn Registry>) -> GovernanceStore {
        GovernanceStore { registry }
    }

    /// The overrides of `key` (an empty document if none is stored).
    pub async fn overrides(&self, key: &ServiceKey) -> Result<Overrides, StoreError> {
        match self.read(key, DocumentKind::Overrides).await? {
            Some(text) => {
                Overrides::parse(&text).map_err(|e| invalid(key, DocumentKind::Overrides, e))
            }
            None => Ok(Overrides::default()),
        }
    }

    /// The routes of `key` (an empty document if none is stored).
    pub async fn routes(&self, key: &ServiceKey) -> Result<Routes, StoreError> {
        match self.read(key, DocumentKind::Routes).await? {
            Some(text) => Routes::parse(&text).map_err(|e| invalid(key, DocumentKind::Routes, e)),
            None => Ok(Routes::default()),
        }
    }

    /// The stored text of one document, unparsed.
    pub async fn read(
        &self,
        key: &ServiceKey,
        kind: DocumentKind,
    ) -> Result<Option<String>, StoreError> {
        Ok(self.registry.read_document(key, kind).await?)
    }

    /// Validates `overrides` and stores it (an empty one deletes the document).
    pub async fn put_overrides(
        &self,
        key: &ServiceKey,
        overrides: &Overrides,
    ) -> Result<(), StoreError> {
        overrides
            .validate()
            .map_err(|e| invalid(key, DocumentKind::Overrides, e))?;
        let text = (overrides != &Overrides::default()).then(|| overrides.to_json());
        self.write(key, DocumentKind::Overrides, text).await
    }

    /// Validates `routes` and stores it (an empty one deletes the document).
    pub async fn put_routes(&self, key: &ServiceKey, routes: &Routes) -> Result<(), StoreError> {
        routes
            .validate()
            .map_err(|e| invalid(key, DocumentKind::Routes, e))?;
        let text = (routes != &Routes::default()).then(|| routes.to_json());
        self.write(key, DocumentKind::Routes, text).await
    }

    /// Deletes one document.
    pub async fn delete(&self, key: &ServiceKey, kind: DocumentKind) -> Result<(), StoreError> {
        self.write(key, kind, None).await
    }

    /// Reads the overrides, lets `edit` change them, validates and stores the result; the
    /// stored document is returned as read back.
    pub async fn edit_overrides(
        &self,
        key: &ServiceKey,
        edit: impl FnOnce(&mut Overrides) -> Result<(), GovernanceError>,
    ) -> Result<Overrides, StoreError> {
        let mut overrides = self.overrides(key).await?;
        edit(&mut overrides).map_err(|e| invalid(key, DocumentKind::Overrides, e))?;
        overrides.prune();
        self.put_overrides(key, &overrides).await?;
        self.overrides(key).await
    }

    async fn write(
        &self,
        key: &ServiceKey,
        kind: DocumentKind,
        text: Option<String>,
    ) -> Result<(), StoreError> {
        Ok(self
            .registry
            .write_document(key, kind, text.as_deref())
            .await?)
    }
}

fn invalid(key: &ServiceKey, kind: DocumentKind, source: GovernanceError) -> StoreError {
    StoreError::Invalid {
        key: key.to_string(),
        kind: kind.name(),
        source,
    }
}
