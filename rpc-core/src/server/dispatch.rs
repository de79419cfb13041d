//! Running one request: find the service, decode, run the handler under its deadline and a
//! panic guard, and answer.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio_util::task::TaskTracker;

use super::connection::{ConnectionContext, InFlight};
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
    if !ctx.in_flight.try_reserve(ctx.context.max_in_flight) {
        tracing::warn!(peer = %ctx.peer, limit = ctx.context.max_in_flight, "in-flight limit reached");
        reject(
            Status::Overloaded,
            "too many calls in flight on this connection",
        );
        return;
    }
    let work = match service.call(&frame.method, codec, frame.body) {
        Ok(work) => work,
        Err(e) => {
            ctx.in_flight.finish(id);
            let status = match e {
                DispatchError::UnknownMethod { .. } => Status::UnknownMethod,
                DispatchError::BadRequest { .. } => Status::BadRequest,
            };
            tracing::warn!(peer = %ctx.peer, error = %e, "rejected request");
            reject(status, &e.to_string());
            return;
        }
    };
    let deadline =
        (frame.deadline_ms > 0).then(|| Duration::from_millis(u64::from(frame.deadline_ms)));
    let writer = ctx.writer.clone();
    let in_flight = Arc::clone(ctx.in_flight);
    let method = frame.method;
    ctx.in_flight.spawn(id, ctx.handlers, async move {
        let guarded = AssertUnwindSafe(work).catch_unwind();
        let outcome = match deadline {
            Some(budget) => tokio::time::timeout(budget, guarded).await.ok(),
            None => Some(guarded.await),
        };
        let reply = match outcome {
            Some(Ok(Ok(body))) => Frame::response(id, codec, Status::Ok, body),
            Some(Ok(Err(e))) => {
                tracing::warn!(method = %method, error = %e, "reply does not encode");
                Frame::error(id, codec, Status::Internal, &e.to_string())
            }
            Some(Err(panic)) => {
                let message = panic_message(panic.as_ref());
                tracing::warn!(method = %method, panic = %message, "handler panicked");
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
                &format!(
                    "deadline of {} ms exceeded",
                    deadline.map_or(0, |d| d.as_millis())
                ),
            ),
        };
        in_flight.finish(id);
        let _ = writer.send(&reply);
    });
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
