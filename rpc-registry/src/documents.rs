//! What every backend does alike with governance documents: the size bound.

use rpc_core::documents::MAX_DOCUMENT_BYTES;
use rpc_core::registry::RegistryError;

/// Refuses a document larger than [`MAX_DOCUMENT_BYTES`].
pub(crate) fn check_size(
    registry: &'static str,
    path: &str,
    text: &str,
) -> Result<(), RegistryError> {
    if text.len() > MAX_DOCUMENT_BYTES {
        return Err(RegistryError::Operation {
            registry,
            op: "write_document",
            key: path.to_string(),
            message: format!(
                "document has {} bytes; at most {MAX_DOCUMENT_BYTES} are allowed",
                text.len()
            ),
        });
    }
    Ok(())
}

/// A document's text read back from a registry: `None` (with a warning) if it is too large or
/// not UTF-8, so a hostile value cannot make consumers allocate without bound.
pub(crate) fn text_of(registry: &'static str, path: &str, value: &[u8]) -> Option<String> {
    if value.len() > MAX_DOCUMENT_BYTES {
        tracing::warn!(registry, path = %path.escape_debug(), bytes = value.len(), "governance document too large; ignored");
        return None;
    }
    match std::str::from_utf8(value) {
        Ok(text) => Some(text.to_string()),
        Err(_) => {
            tracing::warn!(registry, path = %path.escape_debug(), "governance document is not UTF-8; ignored");
            None
        }
    }
}
