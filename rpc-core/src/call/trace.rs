//! W3C Trace Context (`traceparent`): the client starts or continues a trace on every call and
//! the server reads it, so a chain of calls across processes shares one trace id.
//!
//! Format: `00-<32 hex trace id>-<16 hex parent span id>-<2 hex flags>`.

use std::fmt;

use rand::Rng;

/// A parsed `traceparent` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    /// The trace every span of one request chain shares; never zero.
    pub trace_id: u128,
    /// The span that sent this call; never zero.
    pub span_id: u64,
    /// Trace flags (bit 0: sampled).
    pub flags: u8,
}

impl TraceParent {
    /// A new trace, sampled.
    pub fn new_root() -> TraceParent {
        let mut rng = rand::thread_rng();
        TraceParent {
            trace_id: rng.gen_range(1..=u128::MAX),
            span_id: rng.gen_range(1..=u64::MAX),
            flags: 1,
        }
    }

    /// The next hop of the same trace: same trace id and flags, a new span id.
    pub fn child(self) -> TraceParent {
        TraceParent {
            span_id: rand::thread_rng().gen_range(1..=u64::MAX),
            ..self
        }
    }

    /// The trace this call continues: the given parent's child, or a new trace.
    pub fn continue_from(parent: Option<TraceParent>) -> TraceParent {
        parent.map_or_else(TraceParent::new_root, TraceParent::child)
    }

    /// Parses a `traceparent` header value; `None` for anything that is not version 00 with
    /// non-zero ids in lowercase hex.
    pub fn parse(value: &str) -> Option<TraceParent> {
        let mut parts = value.split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || version != "00" {
            return None;
        }
        fn hex(s: &str, len: usize) -> Option<&str> {
            let lower_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
            (s.len() == len && s.bytes().all(lower_hex)).then_some(s)
        }
        let trace_id = u128::from_str_radix(hex(trace, 32)?, 16).ok()?;
        let span_id = u64::from_str_radix(hex(span, 16)?, 16).ok()?;
        let flags = u8::from_str_radix(hex(flags, 2)?, 16).ok()?;
        (trace_id != 0 && span_id != 0).then_some(TraceParent {
            trace_id,
            span_id,
            flags,
        })
    }

    /// The trace id as 32 lowercase hex digits, as trace tools show it.
    pub fn trace_id_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }
}

impl fmt::Display for TraceParent {
    /// The header value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.span_id, self.flags
        )
    }
}

/// Records the attempt about to start and its peer on the current span (the client's
/// `rpc.client` span, which declares both fields; on any other span this does nothing).
pub(crate) fn record_attempt(attempt: usize, peer: std::net::SocketAddr) {
    // The client's spans are at debug level: below it, skip the current-span lookup.
    if !tracing::level_enabled!(tracing::Level::DEBUG) {
        return;
    }
    let span = tracing::Span::current();
    if !span.is_disabled() {
        span.record("attempt", attempt);
        span.record("peer", tracing::field::display(peer));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_w3c_example_and_round_trips() {
        let value = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parsed = TraceParent::parse(value).unwrap();
        assert_eq!(parsed.to_string(), value);
        assert_eq!(parsed.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let child = parsed.child();
        assert_eq!(child.trace_id, parsed.trace_id);
        assert_ne!(child.span_id, parsed.span_id);
    }

    #[test]
    fn refuses_malformed_values() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
    }
}
