//! `Idempotency-Key` (draft-ietf-httpapi-idempotency-key-header) on the routes that create
//! things: a repeat of the same request within 24 hours gets the first one's answer, a
//! different request under the same key 422, and a repeat while the first is still being
//! accepted 409. The record is claimed with one atomic write before anything is created, so
//! concurrent repeats create at most one task across every process sharing the store.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::gate::Caller;
use super::problem::Problem;
use crate::domain::now_millis;
use crate::domain::tenant::{StoredAnswer, check_idempotency_key, digest_hex};
use crate::ports::{Begun, Idempotency};

/// The header's name.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// What a creating route answers, before it becomes a response (so it can be remembered).
pub struct Created {
    /// Status.
    pub status: StatusCode,
    /// `Location`, if any.
    pub location: Option<String>,
    /// The JSON body.
    pub body: serde_json::Value,
}

impl Created {
    fn stored(&self) -> StoredAnswer {
        StoredAnswer {
            status: self.status.as_u16(),
            location: self.location.clone(),
            body: self.body.to_string(),
        }
    }
}

fn respond(status: u16, location: Option<&str>, body: String, replayed: bool) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(l) = location.and_then(|l| HeaderValue::from_str(l).ok()) {
        headers.insert(header::LOCATION, l);
    }
    if replayed {
        headers.insert(
            HeaderName::from_static("idempotent-replayed"),
            HeaderValue::from_static("true"),
        );
    }
    response
}

/// The key a request sent, checked: at most once, 1–255 visible ASCII characters, with or
/// without the quotes of a structured-field string.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Problem::malformed("send Idempotency-Key once"));
    }
    let bad = |m: String| Problem::malformed(format!("Idempotency-Key: {m}"));
    let raw = first
        .to_str()
        .map_err(|_| bad("must be visible ASCII".into()))?
        .trim();
    // A structured-field string's quotes are not part of the key (but `""` alone is a key).
    let raw = raw
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .filter(|inner| !inner.is_empty())
        .unwrap_or(raw);
    check_idempotency_key(raw).map_err(|e| bad(e.0))?;
    Ok(Some(raw.to_owned()))
}

/// Runs `create` once per `Idempotency-Key` of this caller; without the header, always.
/// `fingerprint` names what the request asks for (computed only when the header is sent);
/// `create` gets the id to create under: `resource`, or, taking over a request abandoned
/// mid-way, the id that request chose (so what it created is found, not made twice).
pub async fn once<S, F, Fut>(
    store: &S,
    headers: &HeaderMap,
    caller: &Caller,
    fingerprint: impl FnOnce() -> String,
    resource: String,
    create: F,
) -> Result<Response, Problem>
where
    S: Idempotency,
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = Result<Created, Problem>>,
{
    let Some(key) = idempotency_key(headers)? else {
        let answer = create(resource).await?;
        return Ok(respond(
            answer.status.as_u16(),
            answer.location.as_deref(),
            answer.body.to_string(),
            false,
        ));
    };
    let scope = digest_hex(&[caller.owner().as_bytes(), key.as_bytes()]);
    let fingerprint = fingerprint();
    let (token, resource) = match store
        .begin(&scope, &fingerprint, &resource, now_millis())
        .await?
    {
        Begun::Owned { token, resource } => (token, resource),
        Begun::Replay(a) => return Ok(respond(a.status, a.location.as_deref(), a.body, true)),
        Begun::Mismatch => {
            return Err(Problem::invalid_field(
                "Idempotency-Key",
                "was already used with a different request; use a new key for a new request",
            ));
        }
        Begun::InFlight => {
            return Err(Problem::conflict(
                "a request with this Idempotency-Key is still being handled; retry shortly",
            ));
        }
    };
    match create(resource).await {
        Ok(answer) => {
            if let Err(e) = store.finish(&scope, token, answer.stored()).await {
                tracing::warn!(error = ?anyhow::Error::from(e), "an idempotent answer could not be remembered; a repeat within a minute gets 409, later ones find what was created");
            }
            Ok(respond(
                answer.status.as_u16(),
                answer.location.as_deref(),
                answer.body.to_string(),
                false,
            ))
        }
        Err(problem) => {
            // Nothing was created: a retry under the same key starts afresh.
            if let Err(e) = store.forget(&scope, token).await {
                tracing::warn!(error = ?anyhow::Error::from(e), "a failed idempotent request could not be forgotten; a repeat within a minute gets 409");
            }
            Err(problem)
        }
    }
}
