//! Re-reading the tokens file while the server runs: polled, so it works on every file
//! system and through the atomic renames that secret mounts use. A file that turns bad keeps
//! the last good table (and says so once).

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;

use super::tokens::Tokens;
use crate::defaults;

/// Polls `path` until `stop`; `last` is the text the current table came from.
pub(super) async fn watch(
    path: PathBuf,
    mut last: String,
    table: Arc<ArcSwap<Tokens>>,
    stop: CancellationToken,
) {
    let mut reported = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(defaults::AUTH_RELOAD_INTERVAL) => {}
            _ = stop.cancelled() => return,
        }
        let text = match tokio::fs::read_to_string(&path).await {
            Ok(text) => text,
            Err(e) => {
                let message = e.to_string();
                if reported.as_ref() != Some(&message) {
                    tracing::warn!(file = %path.display(), error = %message, "cannot read the tokens file; keeping the tokens loaded before");
                    reported = Some(message);
                }
                continue;
            }
        };
        if text == last {
            continue;
        }
        match Tokens::parse(&text) {
            Ok(tokens) => {
                tracing::info!(file = %path.display(), callers = tokens.len(), "tokens file reloaded");
                table.store(Arc::new(tokens));
                last = text;
                reported = None;
            }
            Err(message) => {
                if reported.as_ref() != Some(&message) {
                    tracing::warn!(file = %path.display(), error = %message, "bad tokens file; keeping the tokens loaded before");
                    reported = Some(message);
                }
            }
        }
    }
}
