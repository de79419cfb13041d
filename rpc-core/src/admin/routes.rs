//! The admin endpoint's routes. Every request gets an answer: an unknown path is 404, a
//! known path with the wrong method 405, a body over [`MAX_BODY`] 413.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};

use super::state::{Readiness, SharedState};

/// The largest request body accepted; no route needs one.
pub const MAX_BODY: usize = 4096;

const TEXT: &str = "text/plain; charset=utf-8";
const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";
const JSON: &str = "application/json";

/// Answers one request.
pub(crate) async fn route(
    state: SharedState,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_string();
    let method = request.method().clone();
    let allowed = match path.as_str() {
        "/metrics" | "/health/live" | "/health/ready" | "/services" => Method::GET,
        "/offline" | "/online" => Method::POST,
        _ => return Ok(text(StatusCode::NOT_FOUND, "no such admin path\n")),
    };
    if method != allowed && !(allowed == Method::GET && method == Method::HEAD) {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        response.headers_mut().insert(
            ALLOW,
            HeaderValue::from_static(if allowed == Method::GET {
                "GET, HEAD"
            } else {
                "POST"
            }),
        );
        return Ok(response);
    }
    if body_too_large(request).await {
        return Ok(text(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large\n",
        ));
    }
    Ok(match path.as_str() {
        "/metrics" => match state.render_metrics() {
            Some(body) => with_type(StatusCode::OK, PROMETHEUS, body),
            None => text(StatusCode::NOT_FOUND, "no Prometheus recorder installed\n"),
        },
        "/health/live" => text(StatusCode::OK, "live\n"),
        "/health/ready" => match state.readiness() {
            Readiness::Ready => text(StatusCode::OK, "ready\n"),
            Readiness::NotReady(why) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
        },
        "/services" => with_type(StatusCode::OK, JSON, state.services().to_string()),
        "/offline" | "/online" => transition(&state, &path).await,
        _ => text(StatusCode::NOT_FOUND, "no such admin path\n"),
    })
}

/// Runs `/offline` or `/online` on the attached server.
async fn transition(state: &SharedState, path: &str) -> Response<Full<Bytes>> {
    let Some(server) = state.server() else {
        return text(StatusCode::CONFLICT, "this process serves nothing\n");
    };
    let result = if path == "/offline" {
        server.offline().await
    } else {
        server.online().await
    };
    match result {
        Ok(()) => text(StatusCode::OK, format!("{}\n", server.state().as_str())),
        Err(crate::server::ServerError::Draining) => {
            text(StatusCode::CONFLICT, "the server is shutting down\n")
        }
        Err(e) => {
            tracing::warn!(error = %e, path, "admin transition failed");
            text(StatusCode::BAD_GATEWAY, format!("{e}\n"))
        }
    }
}

/// Whether the body is over [`MAX_BODY`], judged from its declared length, else by reading
/// at most that much of it.
async fn body_too_large(request: Request<Incoming>) -> bool {
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return true;
    }
    Limited::new(request.into_body(), MAX_BODY)
        .collect()
        .await
        .is_err()
}

fn text(status: StatusCode, body: impl Into<String>) -> Response<Full<Bytes>> {
    with_type(status, TEXT, body.into())
}

fn with_type(
    status: StatusCode,
    content_type: &'static str,
    body: String,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
