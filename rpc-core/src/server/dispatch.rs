//! Running one request: find the service, decode, run the handler under its deadline and a
//! panic guard, and answer.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use futures::FutureExt;
use tower::ServiceExt;

use super::context::ConnectionContext;
use super::in_flight::{InFlight, Refused, Ticket};
use super::layer::{ServerRequest, ServerStack};
use super::metrics::{self, CallMeter, InFlightGauge, Rejected};
use super::outbound::Outbox;
use super::warn_limit::WarnLimit;
use super::wire_text::WireText;
use tracing::{Instrument, Span};

use crate::call::context::{self, CallContext};
use crate::call::{Deadline, TraceParent};
use crate::protocol::{keys, Codec, Frame, Metadata, Status};
use crate::DispatchError;

/// The connection state a request needs.
pub(crate) struct Dispatch<'a> {
    pub context: &'a ConnectionContext,
    pub outbox: &'a Arc<Outbox>,
    pub in_flight: &'a Arc<InFlight>,
    pub peer: SocketAddr,
    /// The common name of the peer's verified client certificate (mutual TLS).
    pub peer_name: Option<&'a Arc<str>>,
    pub going_away: bool,
    /// When the frame's read completed: the start of its deadline and of its duration.
    pub arrived: Instant,
}

static UNKNOWN_SERVICE: WarnLimit = WarnLimit::new();
static REJECTED: WarnLimit = WarnLimit::new();
static OVERLOADED: WarnLimit = WarnLimit::new();
static PANICKED: WarnLimit = WarnLimit::new();

pub(crate) fn dispatch(frame: Frame, ctx: Dispatch<'_>) {
    let Frame {
        id,
        codec,
        deadline_ms,
        service,
        method,
        metadata,
        body,
        ..
    } = frame;
    let handler = ctx.context.services.get(&*service);
    let meter = CallMeter::start(handler.map(|s| &**s), &method, ctx.arrived);
    let reject = |status: Status, message: &str| {
        meter.answered(status);
        ctx.outbox.send(&Frame::error(id, codec, status, message));
    };
    if ctx.going_away {
        reject(Status::ShuttingDown, "the server is shutting down");
        return;
    }
    let Some(codec) = ctx.context.codecs.get(codec) else {
        if let Some(suppressed) = REJECTED.allow() {
            tracing::warn!(peer = %ctx.peer, codec, suppressed, "request in an unknown codec");
        }
        let known = &ctx.context.codecs;
        reject(
            Status::BadRequest,
            &format!("unknown codec {codec}: this server reads {known}"),
        );
        return;
    };
    let metadata = match Metadata::decode(&metadata, &ctx.context.metadata_limits) {
        Ok(metadata) => metadata,
        Err(e) => {
            if let Some(suppressed) = REJECTED.allow() {
                tracing::warn!(peer = %ctx.peer, error = %e, suppressed, "rejected request metadata");
            }
            reject(Status::BadRequest, &format!("bad metadata: {e}"));
            return;
        }
    };
    if let Some(stack) = &ctx.context.stack {
        let call = Arc::new(CallContext::from_wire(
            ctx.peer,
            id,
            service,
            method,
            Deadline::from_wire_ms_since(deadline_ms, ctx.arrived),
            metadata,
        ));
        let request = ServerRequest {
            context: call,
            codec,
            body,
            peer_name: ctx.peer_name.cloned(),
        };
        dispatch_layered(stack.clone(), request, deadline_ms, meter, &ctx);
        return;
    }
    let service_name = WireText(&service);
    let Some(handler) = handler else {
        if let Some(suppressed) = UNKNOWN_SERVICE.allow() {
            tracing::warn!(peer = %ctx.peer, service = %service_name, suppressed, "request for unknown service");
        }
        reject(
            Status::UnknownService,
            &format!("unknown service {service_name:?}"),
        );
        return;
    };
    // A user type's Deserialize may panic; that is a bad request, not a dead connection.
    let call = std::panic::catch_unwind(AssertUnwindSafe(|| handler.call(&method, codec, body)));
    let work = match call {
        Ok(Ok(work)) => work,
        Ok(Err(e)) => {
            let (status, message) = match &e {
                DispatchError::UnknownMethod { .. } => (
                    Status::UnknownMethod,
                    format!("unknown method {:?} of {service_name}", WireText(&method)),
                ),
                _ => (Status::BadRequest, WireText(&e.to_string()).to_string()),
            };
            if let Some(suppressed) = REJECTED.allow() {
                tracing::warn!(peer = %ctx.peer, error = %message, suppressed, "rejected request");
            }
            reject(status, &message);
            return;
        }
        Err(_) => {
            let message = format!(
                "arguments of {service_name}.{} do not decode: the decoder panicked",
                WireText(&method)
            );
            if let Some(suppressed) = REJECTED.allow() {
                tracing::warn!(peer = %ctx.peer, error = %message, suppressed, "rejected request");
            }
            reject(Status::BadRequest, &message);
            return;
        }
    };
    let max_frame = ctx.context.max_frame;
    let deadline = Deadline::from_wire_ms_since(deadline_ms, ctx.arrived);
    let call = Arc::new(CallContext::from_wire(
        ctx.peer,
        id,
        service,
        method.clone(),
        deadline,
        metadata,
    ));
    let span = call_span(&call);
    // Most handlers finish without waiting: answer those right here, with no task, timer or
    // bookkeeping. Only a handler that is still pending gets its own task.
    let mut work = AssertUnwindSafe(work).catch_unwind();
    let first_poll = || {
        if span.is_disabled() {
            // Nobody records the span: entering and leaving it would only cost time.
            return (&mut work).now_or_never();
        }
        span.in_scope(|| (&mut work).now_or_never())
    };
    if let Some(outcome) = context::sync_scope(Arc::clone(&call), first_poll) {
        let frame = reply(id, codec, &method, Some(outcome), 0, max_frame);
        meter.answered(frame.status);
        ctx.outbox.send(&finish(frame, &call, &span));
        return;
    }
    let ticket = match admit(id, codec, &ctx) {
        Ok(ticket) => ticket,
        Err(status) => {
            meter.answered(status);
            return;
        }
    };
    let seq = ticket.seq();
    let outbox = Arc::clone(ctx.outbox);
    let task = tokio::spawn(async move {
        let running = InFlightGauge::start();
        let work = context::scope(Arc::clone(&call), work).instrument(span.clone());
        let outcome = deadline.run(work).await;
        let frame = reply(id, codec, &method, outcome, deadline_ms, max_frame);
        drop(running);
        meter.answered(frame.status);
        outbox.send(&finish(frame, &call, &span));
        // Only now, with the reply queued, may a draining connection close.
        drop(ticket);
    });
    ctx.in_flight.attach(id, seq, task.abort_handle());
}

/// A place in the connection's in-flight table for call `id`, or its refusal answered.
fn admit(id: u64, codec: crate::Codec, ctx: &Dispatch<'_>) -> Result<Ticket, Status> {
    let refusal = match ctx.in_flight.admit(id, ctx.context.max_in_flight) {
        Ok(ticket) => return Ok(ticket),
        Err(Refused::Full) => {
            metrics::rejected(Rejected::Overloaded);
            if let Some(suppressed) = OVERLOADED.allow() {
                tracing::warn!(peer = %ctx.peer, limit = ctx.context.max_in_flight, suppressed, "in-flight limit reached");
            }
            Frame::error(
                id,
                codec,
                Status::Overloaded,
                "too many calls in flight on this connection",
            )
        }
        Err(Refused::DuplicateId) => Frame::error(
            id,
            codec,
            Status::BadRequest,
            &format!("request id {id} is already in flight on this connection"),
        ),
    };
    ctx.outbox.send(&refusal);
    Err(refusal.status)
}

/// Runs a call through the builder's layers, in its own task: the whole stack runs in the
/// call's context and span, under its deadline and the panic guard.
fn dispatch_layered(
    stack: ServerStack,
    request: ServerRequest,
    deadline_ms: u32,
    meter: CallMeter,
    ctx: &Dispatch<'_>,
) {
    let (id, codec) = (request.context.request_id(), request.codec);
    let ticket = match admit(id, codec, ctx) {
        Ok(ticket) => ticket,
        Err(status) => {
            meter.answered(status);
            return;
        }
    };
    let call = Arc::clone(&request.context);
    let span = call_span(&call);
    let max_frame = ctx.context.max_frame;
    let seq = ticket.seq();
    let outbox = Arc::clone(ctx.outbox);
    let task = tokio::spawn(async move {
        let running = InFlightGauge::start();
        let work = AssertUnwindSafe(stack.oneshot(request)).catch_unwind();
        let work = context::scope(Arc::clone(&call), work).instrument(span.clone());
        let frame = match call.deadline().run(work).await {
            Some(Ok(Err(rejection))) => {
                let status = match rejection.status {
                    Status::Ok => Status::Internal,
                    status => status,
                };
                if let Some(reason) = Rejected::by_layer(status) {
                    metrics::rejected(reason);
                }
                Frame::error(id, codec, status, &rejection.message)
            }
            Some(Ok(Ok(body))) => reply(
                id,
                codec,
                call.method(),
                Some(Ok(Ok(body))),
                deadline_ms,
                max_frame,
            ),
            Some(Err(panic)) => reply(
                id,
                codec,
                call.method(),
                Some(Err(panic)),
                deadline_ms,
                max_frame,
            ),
            None => reply(id, codec, call.method(), None, deadline_ms, max_frame),
        };
        drop(running);
        meter.answered(frame.status);
        outbox.send(&finish(frame, &call, &span));
        drop(ticket);
    });
    ctx.in_flight.attach(id, seq, task.abort_handle());
}

/// The server's span for one call, at debug level so that an `info` subscriber prints
/// nothing per call. It carries the caller's trace id when the call came with a
/// `traceparent`.
fn call_span(call: &CallContext) -> Span {
    let span = tracing::debug_span!(
        "rpc.server",
        rpc.service = %call.service(),
        rpc.method = %WireText(call.method()),
        peer = %call.peer(),
        trace_id = tracing::field::Empty,
        status = tracing::field::Empty,
    );
    if !span.is_disabled() {
        let parent = call.metadata().get_str(keys::TRACEPARENT);
        if let Some(parent) = parent.and_then(TraceParent::parse) {
            #[cfg(feature = "opentelemetry")]
            crate::call::otel::link_to_caller(&span, parent);
            span.record(
                "trace_id",
                tracing::field::display(format_args!("{:032x}", parent.trace_id)),
            );
        }
    }
    span
}

/// The reply as sent: with the metadata the handler set, and its status on the span.
fn finish(mut frame: Frame, call: &CallContext, span: &Span) -> Frame {
    let response = call.take_response_metadata();
    if !response.is_empty() {
        frame.metadata = response.encode();
    }
    if !span.is_disabled() {
        span.record("status", frame.status.as_u8());
        let _entered = span.enter();
        tracing::debug!(status = frame.status.as_u8(), "rpc call served");
    }
    frame
}

/// The response to a handler's outcome: its value, a panic, an encoding failure, a reply
/// over the frame limit, or (for `None`) a passed deadline.
fn reply(
    id: u64,
    codec: Codec,
    method: &str,
    outcome: Option<std::thread::Result<Result<bytes::Bytes, crate::protocol::CodecError>>>,
    deadline_ms: u32,
    max_frame: usize,
) -> Frame {
    match outcome {
        Some(Ok(Ok(body))) => {
            let frame = Frame::response(id, codec, Status::Ok, body);
            if frame.encoded_len() <= max_frame {
                return frame;
            }
            let message = format!(
                "the response of {} bytes is over the frame limit of {max_frame} bytes",
                frame.encoded_len()
            );
            metrics::rejected(Rejected::ResponseTooLarge);
            if let Some(suppressed) = REJECTED.allow() {
                tracing::warn!(method = %WireText(method), error = %message, suppressed, "reply not sent");
            }
            Frame::error(id, codec, Status::ResponseTooLarge, &message)
        }
        Some(Ok(Err(e))) => {
            tracing::warn!(method = %WireText(method), error = %e, "reply does not encode");
            Frame::error(
                id,
                codec,
                Status::Internal,
                &WireText(&e.to_string()).to_string(),
            )
        }
        Some(Err(panic)) => {
            let message = panic_message(panic.as_ref());
            let message = WireText(&message);
            if let Some(suppressed) = PANICKED.allow() {
                tracing::warn!(method = %WireText(method), panic = %message, suppressed, "handler panicked");
            }
            Frame::error(
                id,
                codec,
                Status::ApplicationError,
                &format!("handler panicked: {message}"),
            )
        }
        None => Frame::error(
            id,
            codec,
            Status::DeadlineExceeded,
            &format!("deadline of {deadline_ms} ms exceeded"),
        ),
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_string()
    }
}
