//! Who may use the API. Without a token the console serves loopback only and refuses a
//! `Host` that is not a loopback name (a web page elsewhere cannot reach it by DNS
//! rebinding); with a token every `/api` request must carry it. Writes take JSON bodies
//! only, so a cross-site form cannot post one without a CORS preflight, which is never
//! granted.

use std::fmt;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::State as Shared;

/// The console token: never printed, not even by `Debug`.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Parses `--console-token`: not empty, no whitespace.
    pub fn parse(text: &str) -> Result<Secret, String> {
        if text.is_empty() || text.chars().any(char::is_whitespace) {
            return Err("the console token must be non-empty and contain no whitespace".into());
        }
        Ok(Secret(text.to_string()))
    }

    /// Compares in time independent of where the first difference is.
    fn matches(&self, given: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), given.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The middleware: lets a request through, or answers 401 / 403.
pub(crate) async fn check(State(console): State<Shared>, request: Request, next: Next) -> Response {
    let api = request.uri().path().starts_with("/api/");
    match &console.token {
        Some(token) if api => {
            if !token.matches(&given_token(&request).unwrap_or_default()) {
                return ApiError::new(StatusCode::UNAUTHORIZED, "missing or wrong console token")
                    .into_response();
            }
        }
        Some(_) => {}
        None => {
            let host = request
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("");
            if !is_loopback_host(host) {
                return ApiError::new(
                    StatusCode::FORBIDDEN,
                    "this console serves loopback names only; start it with a token to use another",
                )
                .into_response();
            }
        }
    }
    next.run(request).await
}

/// `Authorization: Bearer T`, else `?token=T` (what `EventSource` can send).
fn given_token(request: &Request) -> Option<String> {
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::to_string);
    bearer.or_else(|| {
        request.uri().query().and_then(|query| {
            query.split('&').find_map(|pair| {
                let value = pair.strip_prefix("token=")?;
                percent_encoding::percent_decode_str(value)
                    .decode_utf8()
                    .ok()
                    .map(|v| v.into_owned())
            })
        })
    })
}

/// `localhost`, `127.x.y.z` or `[::1]`, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for good in [
            "127.0.0.1:8080",
            "localhost:1",
            "[::1]:80",
            "127.1.2.3",
            "LOCALHOST",
        ] {
            assert!(is_loopback_host(good), "{good}");
        }
        for bad in [
            "evil.example:8080",
            "10.0.0.1:80",
            "",
            "[::2]:80",
            "localhost.evil:1",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }

    #[test]
    fn tokens_compare_and_never_print() {
        let secret = Secret::parse("s3cret").unwrap();
        assert!(secret.matches("s3cret"));
        assert!(!secret.matches("s3cre") && !secret.matches("s3creT"));
        assert_eq!(format!("{secret:?}"), "***");
        assert!(Secret::parse("").is_err() && Secret::parse("a b").is_err());
    }
}
