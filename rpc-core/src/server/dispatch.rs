//! Running one request: find the service, decode, run the handler under its deadline and a
//! panic guard, and answer.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use tokio_util::task::TaskTracker;

use super::context::ConnectionContext;
use super::in_flight::InFlight;
use crate::call::Deadline;
use crate::protocol::{Frame, Status};
use crate::transport::FrameWriter;
use crate::DispatchError;

/// The connection state a request needs.
pub(crate) struct Dispatch<'a> {
    pub context: &'a ConnectionContext,
    pub writer: &'a FrameWriter,
    pub in_flight: &'a Arc<InFlight>,
    pub handlers: &'a TaskTracker,
    pub peer: SocketAddr,
    pub going_away: bool,
}

pub(crate) fn dispatch(frame: Frame, ctx: Dispatch<'_>) {
    let id = frame.id;
    let codec = frame.codec;
    let reject = |status: Status, message: &str| {
        let _ = ctx.writer.send(&Frame::error(id, codec, status, message));
    };
    if ctx.going_away {
        reject(Status::ShuttingDown, "the server is shutting down");
        return;
    }
    let Some(service) = ctx.context.services.get(&*frame.service) else {
        tracing::warn!(peer = %ctx.peer, service = %frame.service, "request for unknown service");
        reject(
            Status::UnknownService,
            &format!("unknown service {:?}", &*frame.service),
        );
        return;
    };
    let work = match service.call(&frame.method, codec, frame.body) {
        Ok(work) => work,
        Err(e) => {
            let status = match e {
                DispatchError::UnknownMethod { .. } => Status::UnknownMethod,
                DispatchError::BadRequest { .. } => Status::BadRequest,
            };
            tracing::warn!(peer = %ctx.peer, error = %e, "rejected request");
            reject(status, &e.to_string());
            return;
        }
    };
    let method = frame.method;
    // Most handlers finish without waiting: answer those right here, with no task, timer or
    // bookkeeping. Only a handler that is still pending gets its own task.
    let mut work = AssertUnwindSafe(work).catch_unwind();
    if let Some(outcome) = (&mut work).now_or_never() {
        let _ = ctx
            .writer
            .send(&reply(id, codec, &method, Some(outcome), 0));
        return;
    }
    if !ctx.in_flight.try_reserve(ctx.context.max_in_flight) {
        tracing::warn!(peer = %ctx.peer, limit = ctx.context.max_in_flight, "in-flight limit reached");
        reject(
            Status::Overloaded,
            "too many calls in flight on this connection",
        );
        return;
    }
    let deadline_ms = frame.deadline_ms;
    let deadline = Deadline::from_wire_ms(deadline_ms);
    let writer = ctx.writer.clone();
    let in_flight = Arc::clone(ctx.in_flight);
    ctx.in_flight.spawn(id, ctx.handlers, async move {
        let outcome = deadline.run(work).await;
        in_flight.finish(id);
        let _ = writer.send(&reply(id, codec, &method, outcome, deadline_ms));
    });
}

/// The response to a handler's outcome: its value, a panic, an encoding failure, or (for
/// `None`) a passed deadline.
fn reply(
    id: u64,
    codec: crate::Codec,
    method: &str,
    outcome: Option<std::thread::Result<Result<bytes::Bytes, crate::protocol::CodecError>>>,
    deadline_ms: u32,
) -> Frame {
    match outcome {
        Some(Ok(Ok(body))) => Frame::response(id, codec, Status::Ok, body),
        Some(Ok(Err(e))) => {
            tracing::warn!(method, error = %e, "reply does not encode");
            Frame::error(id, codec, Status::Internal, &e.to_string())
        }
        Some(Err(panic)) => {
            let message = panic_message(panic.as_ref());
            tracing::warn!(method, panic = %message, "handler panicked");
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
