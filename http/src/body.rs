//! Reading request bodies within their limits, so that every limit answers with problem+json.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};

use super::problem::Problem;

/// The error a request body gives when it did not arrive in full within the server's
/// `HTTP_BODY_TIMEOUT`; reading it answers 408.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the request body did not arrive within {} s", .0.as_secs_f64())]
pub struct BodyTimedOut(pub std::time::Duration);

/// The request's media type, if it names one.
pub(super) fn content_type(headers: &HeaderMap) -> Option<mime::Mime> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Reads the whole body, refusing more than `limit` bytes (413) whether the client declared its
/// length or not.
pub(super) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, Problem> {
    let too_large = || Problem::too_large(format!("the request body exceeds {limit} bytes"));
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let mut source: Option<&dyn std::error::Error> = Some(&e);
        while let Some(s) = source {
            if s.is::<http_body_util::LengthLimitError>() {
                return too_large();
            }
            if let Some(late) = s.downcast_ref::<BodyTimedOut>() {
                return Problem::timed_out(late.to_string());
            }
            source = s.source();
        }
        Problem::malformed("the request body could not be read completely")
    })
}
