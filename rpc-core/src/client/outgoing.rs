//! The metadata one call sends, merged in order of precedence: the call's own entries
//! ([`CallOptions::with_metadata`]), then the client's defaults
//! ([`ClientBuilder::metadata`](super::ClientBuilder::metadata)), then what a call made inside
//! a served call passes on from it (`rpc-tag`, `tracestate`), then the client's `client.tag`
//! as `rpc-tag`, and last the `traceparent`.
//!
//! The trace context is continued when the served call came with one, and started (a new
//! root) when someone records this client's spans; otherwise nothing is added, so a plain
//! call's frame stays exactly what it was before metadata existed.

use tracing::Span;

use crate::call::{context, CallOptions, TraceParent};
use crate::protocol::{keys, Metadata, MetadataError, MetadataLimits};

/// The metadata to send with one call, checked against the block limits.
pub(super) fn metadata(
    options: &CallOptions,
    defaults: &Metadata,
    tag: Option<&str>,
    span: &Span,
) -> Result<Metadata, MetadataError> {
    if let Some(error) = options.metadata_error() {
        return Err(error.clone());
    }
    let served = context::current();
    if options.metadata.is_empty()
        && defaults.is_empty()
        && tag.is_none()
        && served.is_none()
        && span.is_disabled()
    {
        return Ok(Metadata::new());
    }
    let mut metadata = options.metadata.clone();
    metadata.merge_missing(defaults);
    let incoming = served.as_ref().map(|call| call.metadata());
    for key in [keys::TAG, keys::TRACESTATE] {
        if metadata.get(key).is_none() {
            if let Some(value) = incoming.and_then(|m| m.get_str(key)) {
                metadata.insert(key, value.to_string())?;
            }
        }
    }
    if let (None, Some(tag)) = (metadata.get(keys::TAG), tag) {
        metadata.insert(keys::TAG, tag.to_string())?;
    }
    let parent = match metadata.get_str(keys::TRACEPARENT) {
        // The caller set its own: it names this call's parent; keep it as sent.
        Some(own) => TraceParent::parse(own),
        None => {
            let incoming = incoming
                .and_then(|m| m.get_str(keys::TRACEPARENT))
                .and_then(TraceParent::parse);
            if incoming.is_none() && span.is_disabled() {
                None
            } else {
                // With OpenTelemetry recording the span, its context names this call.
                #[cfg(feature = "opentelemetry")]
                let next = crate::call::otel::traceparent_of(span)
                    .unwrap_or_else(|| TraceParent::continue_from(incoming));
                #[cfg(not(feature = "opentelemetry"))]
                let next = TraceParent::continue_from(incoming);
                metadata.insert(keys::TRACEPARENT, next.to_string())?;
                Some(next)
            }
        }
    };
    if let Some(parent) = parent {
        span.record("trace_id", tracing::field::display(parent.trace_id_hex()));
    }
    check_limits(&metadata)?;
    Ok(metadata)
}

/// Refuses metadata a server with the default limits would refuse: better a clear error here
/// than a status 4 from every provider.
pub(super) fn check_limits(metadata: &Metadata) -> Result<(), MetadataError> {
    let limits = MetadataLimits::default();
    if metadata.len() > limits.max_entries {
        return Err(MetadataError::TooManyEntries {
            count: metadata.len(),
            max: limits.max_entries,
        });
    }
    let len = 2 + metadata
        .iter()
        .map(|(k, v)| 1 + k.len() + 2 + v.len())
        .sum::<usize>();
    if len > limits.max_bytes {
        return Err(MetadataError::TooLarge {
            len,
            max: limits.max_bytes,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_call_wins_over_defaults_and_limits_are_checked() {
        let mut defaults = Metadata::new();
        defaults.insert(keys::CALLER, "billing").unwrap();
        defaults.insert(keys::TAG, "blue").unwrap();
        let options = CallOptions::new().with_metadata(keys::TAG, "gray");
        let sent = metadata(&options, &defaults, None, &Span::none()).unwrap();
        assert_eq!(sent.get_str(keys::TAG), Some("gray"));
        assert_eq!(sent.get_str(keys::CALLER), Some("billing"));
        // No subscriber and no served call: no trace context is invented.
        assert_eq!(sent.get(keys::TRACEPARENT), None);

        let bad = CallOptions::new().with_metadata("Upper", "x");
        assert!(matches!(
            metadata(&bad, &defaults, None, &Span::none()),
            Err(MetadataError::BadKey { .. })
        ));
        let mut many = CallOptions::new();
        for i in 0..65 {
            many = many.with_metadata(format!("k{i}"), "v");
        }
        assert!(matches!(
            metadata(&many, &Metadata::new(), None, &Span::none()),
            Err(MetadataError::TooManyEntries { count: 65, .. })
        ));
        let big = CallOptions::new().with_metadata("big", "x".repeat(16 * 1024));
        assert!(matches!(
            metadata(&big, &Metadata::new(), None, &Span::none()),
            Err(MetadataError::TooLarge { .. })
        ));
    }
}
