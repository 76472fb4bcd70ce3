//! The tenancy gate: who is calling, and whether they may.
//!
//! Every route but health and the docs passes through [`guard`]. It reads the key from
//! `Authorization: Bearer …` or `X-API-Key: …`, checks it against the stored hash, applies the
//! key's rate (an atomic counter in the store, so it holds across processes) and hands the
//! handlers a [`Caller`]. Key records are cached for `API_KEY_CACHE` (at most a minute), so a
//! revocation takes effect within it; rates and quotas are never cached.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Serialize;
use utoipa::ToSchema;

use super::problem::Problem;
use crate::config::{AuthMode, TenancySettings};
use crate::domain::tenant::{Period, Rate, RateDecision, credential_key_id};
use crate::domain::{ApiKey, KeyId, Millis, Priority, now_millis};
use crate::ports::{KeyLookup, Metering, StoreError};

/// Routes anyone may read.
const PUBLIC: &[&str] = &["/api/v1/health", "/openapi.json", "/docs"];
/// Key records cached at most; past it the cache starts over.
const CACHE_ENTRIES: usize = 10_000;
/// A cached record that does not match the presented secret is read again at most this often
/// (a key just rotated), so unknown secrets cannot turn every request into a read.
const MISMATCH_REREAD: Duration = Duration::from_secs(1);
/// The `X-API-Key` header.
pub const API_KEY_HEADER: &str = "x-api-key";

/// Who is calling: a key, or the anonymous tenant when keys are optional.
#[derive(Debug, Clone)]
pub struct Caller {
    key: Option<Arc<ApiKey>>,
}

impl Caller {
    /// The anonymous caller (keys optional, none sent).
    pub fn anonymous() -> Self {
        Self { key: None }
    }

    /// The caller's key, if it sent one.
    pub fn key(&self) -> Option<&ApiKey> {
        self.key.as_deref()
    }

    /// The owner recorded on its tasks: the key id, or empty for the anonymous tenant.
    pub fn owner(&self) -> String {
        self.key
            .as_ref()
            .map(|k| k.id.to_string())
            .unwrap_or_default()
    }

    /// Whether it sees every tenant's tasks.
    pub fn admin(&self) -> bool {
        self.key.as_ref().is_some_and(|k| k.limits.admin)
    }

    /// Whether it may see what `owner` owns. Another tenant's things are answered 404, as if
    /// they did not exist.
    pub fn may_see(&self, owner: &str) -> bool {
        self.admin() || owner == self.owner()
    }

    /// The owner a task list is limited to (`None`: every task, for admins).
    pub fn list_scope(&self) -> Option<String> {
        (!self.admin()).then(|| self.owner())
    }

    /// Whether it may use the operator routes (the validator lease, integration): an admin key,
    /// in every `API_AUTH` mode. An anonymous caller never is one.
    pub fn operator(&self) -> bool {
        self.admin()
    }

    /// The highest priority it may submit at.
    pub fn max_priority(&self) -> Priority {
        self.key
            .as_ref()
            .map_or(Priority::Urgent, |k| k.limits.max_priority)
    }
}

/// Key records read recently: when, and what was found (`None`: no such key).
type KeyCache = HashMap<KeyId, (Instant, Option<Arc<ApiKey>>)>;

/// The gate's state: the key store, the mode, and the key cache.
pub struct Gate<K> {
    store: K,
    settings: TenancySettings,
    cache: Mutex<KeyCache>,
}

impl<K: KeyLookup + Metering> Gate<K> {
    /// A gate over `store`.
    pub fn new(store: K, settings: TenancySettings) -> Self {
        Self {
            store,
            settings,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The store (usage reads).
    pub fn store(&self) -> &K {
        &self.store
    }

    fn cached(&self, id: &KeyId) -> Option<(Instant, Option<Arc<ApiKey>>)> {
        let cache = self.cache.lock().ok()?;
        let (at, key) = cache.get(id)?;
        (at.elapsed() < self.settings.key_cache).then(|| (*at, key.clone()))
    }

    async fn read(&self, id: &KeyId) -> Result<Option<Arc<ApiKey>>, StoreError> {
        let key = self.store.key(id).await?.map(Arc::new);
        if !self.settings.key_cache.is_zero()
            && let Ok(mut cache) = self.cache.lock()
        {
            if cache.len() >= CACHE_ENTRIES {
                cache.clear();
            }
            cache.insert(id.clone(), (Instant::now(), key.clone()));
        }
        Ok(key)
    }

    /// The key a presented secret belongs to, or the 401 to answer.
    async fn authenticate(&self, secret: &str) -> Result<Arc<ApiKey>, Problem> {
        let id = credential_key_id(secret)
            .map_err(|_| invalid("the API key is malformed; keys look like tg_<id>_<secret>"))?;
        let mut key = match self.cached(&id) {
            Some((at, Some(k))) if !k.matches(secret) && at.elapsed() >= MISMATCH_REREAD => {
                self.read(&id).await?
            }
            Some((_, k)) => k,
            None => self.read(&id).await?,
        };
        key = key.filter(|k| k.matches(secret));
        match key {
            Some(k) if k.active() => Ok(k),
            Some(_) => Err(invalid("this API key has been revoked")),
            None => Err(invalid("unknown API key")),
        }
    }
}

/// A 401 for a key that was sent but is not good.
fn invalid(detail: &str) -> Problem {
    Problem::unauthorized(detail)
}

/// The secret a request presents, if any; an ambiguous or unreadable one is refused.
fn presented(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let bearer: Vec<&HeaderValue> = headers.get_all(header::AUTHORIZATION).iter().collect();
    let api_key: Vec<&HeaderValue> = headers.get_all(API_KEY_HEADER).iter().collect();
    if bearer.len() > 1 || api_key.len() > 1 {
        return Err(invalid("send the API key once"));
    }
    let unreadable = || invalid("the API key header is not printable ASCII");
    match (bearer.first(), api_key.first()) {
        (Some(_), Some(_)) => Err(invalid(
            "send the API key in one header, Authorization or X-API-Key, not both",
        )),
        (Some(value), None) => {
            let value = value.to_str().map_err(|_| unreadable())?;
            let (scheme, token) = value.trim().split_once(' ').unwrap_or((value, ""));
            if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
                return Err(invalid("use Authorization: Bearer <key>"));
            }
            Ok(Some(token.trim().to_owned()))
        }
        (None, Some(value)) => {
            let value = value.to_str().map_err(|_| unreadable())?.trim();
            if value.is_empty() {
                return Err(invalid("X-API-Key is empty"));
            }
            Ok(Some(value.to_owned()))
        }
        (None, None) => Ok(None),
    }
}

/// The `RateLimit-Policy` and `RateLimit` fields (draft-ietf-httpapi-ratelimit-headers) of a
/// key's rate.
fn rate_fields(rate: &Rate, remaining: u32, reset_s: u64) -> [(HeaderName, HeaderValue); 2] {
    let policy = format!("\"rate\";q={};w={}", rate.burst, rate.window_s());
    let current = format!("\"rate\";r={remaining};t={reset_s}");
    [
        (
            HeaderName::from_static("ratelimit-policy"),
            HeaderValue::from_str(&policy).unwrap_or(HeaderValue::from_static("\"rate\"")),
        ),
        (
            HeaderName::from_static("ratelimit"),
            HeaderValue::from_str(&current).unwrap_or(HeaderValue::from_static("\"rate\"")),
        ),
    ]
}

/// The quota fields of a key with `quota` tasks a month, `used` of them used.
pub fn quota_fields(quota: u64, used: u64, now: Millis) -> [(HeaderName, HeaderValue); 2] {
    let period = Period::of(now);
    let left = period.seconds_left(now);
    let days = 31 * 86_400;
    let policy = format!("\"month\";q={quota};w={days}");
    let current = format!("\"month\";r={};t={left}", quota.saturating_sub(used));
    [
        (
            HeaderName::from_static("ratelimit-policy"),
            HeaderValue::from_str(&policy).unwrap_or(HeaderValue::from_static("\"month\"")),
        ),
        (
            HeaderName::from_static("ratelimit"),
            HeaderValue::from_str(&current).unwrap_or(HeaderValue::from_static("\"month\"")),
        ),
    ]
}

/// Request body read and dropped before a refusal at most, and for how long: a client still
/// sending a small body then reads the refusal instead of a reset connection; a larger one
/// is cut off (nobody unauthenticated gets more of the server than this).
const DRAIN_BYTES: usize = 1024 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(2);

/// Answers `problem` after reading what is left of a small request body.
async fn refuse(problem: Problem, request: Request) -> Response {
    let body = http_body_util::Limited::new(request.into_body(), DRAIN_BYTES);
    let _ = tokio::time::timeout(DRAIN_TIME, http_body_util::BodyExt::collect(body)).await;
    problem.into_response()
}

/// The middleware: authenticates, applies the rate, and hands on a [`Caller`].
pub async fn guard<K: KeyLookup + Metering>(
    State(gate): State<Arc<Gate<K>>>,
    mut request: Request,
    next: Next,
) -> Response {
    if PUBLIC.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let secret = match presented(request.headers()) {
        Ok(s) => s,
        Err(problem) => return refuse(problem, request).await,
    };
    let key = match (secret, gate.settings.auth) {
        (None, AuthMode::Optional) => None,
        (None, AuthMode::Required) => {
            let problem = Problem::unauthorized(
                "this API needs a key: send Authorization: Bearer <key> or X-API-Key: <key>",
            );
            return refuse(problem, request).await;
        }
        (Some(secret), _) => match gate.authenticate(&secret).await {
            Ok(key) => Some(key),
            Err(problem) => return refuse(problem, request).await,
        },
    };
    let mut fields = None;
    if let Some(key) = &key {
        let decision = gate
            .store
            .admit(&key.id, key.limits.rate, now_millis())
            .await;
        match (decision, key.limits.rate) {
            (Err(e), _) => return Problem::from(e).into_response(),
            (Ok(RateDecision::Refuse { retry_after_s }), Some(rate)) => {
                let problem =
                    Problem::too_many_requests(format!("this key may make {rate} requests"))
                        .with_retry_after(retry_after_s, &rate_fields(&rate, 0, retry_after_s));
                return refuse(problem, request).await;
            }
            (
                Ok(RateDecision::Admit {
                    remaining, reset_s, ..
                }),
                Some(rate),
            ) => {
                fields = Some(rate_fields(&rate, remaining, reset_s));
            }
            (Ok(_), None) => {}
        }
    }
    request.extensions_mut().insert(Caller { key });
    let mut response = next.run(request).await;
    for (name, value) in fields.into_iter().flatten() {
        if !response.headers().contains_key(&name) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// A key's use this month (`GET /api/v1/usage`).
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageView {
    /// The key's id.
    pub key_id: String,
    /// The key's name.
    pub name: String,
    /// The calendar month counted (UTC), `YYYY-MM`.
    pub period: String,
    /// Authenticated requests this month.
    pub requests: u64,
    /// Accepted tasks this month, by service.
    pub tasks: std::collections::BTreeMap<String, u64>,
    /// Tasks a month the key may submit; absent when unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<u64>,
    /// Tasks left this month; absent when unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota_remaining: Option<u64>,
    /// When the counts start over (RFC 3339).
    pub resets_at: String,
    /// The key's request rate, e.g. `10/s (burst 20)`; absent when unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<String>,
    /// The highest priority its tasks may have.
    pub max_priority: String,
}

/// `GET /api/v1/usage`: the calling key's use this month.
pub async fn usage<K: KeyLookup + Metering>(
    State(gate): State<Arc<Gate<K>>>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<UsageView>, Problem> {
    let key = caller
        .key()
        .ok_or_else(|| Problem::unauthorized("usage is counted per key: send your API key"))?;
    let now = now_millis();
    let used = gate.store.usage(&key.id, now).await?;
    let period = Period::of(now);
    Ok(Json(UsageView {
        key_id: key.id.to_string(),
        name: key.name.clone(),
        period: period.label,
        requests: used.requests,
        tasks: crate::domain::ServiceKind::ALL
            .iter()
            .map(|k| (k.as_str().to_owned(), used.of(*k)))
            .collect(),
        quota: key.limits.quota,
        quota_remaining: key.limits.quota.map(|q| q.saturating_sub(used.tasks())),
        resets_at: chrono::DateTime::from_timestamp_millis(period.resets_at)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default(),
        rate: key.limits.rate.map(|r| r.to_string()),
        max_priority: key.limits.max_priority.as_str().to_owned(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(value).unwrap(),
            );
        }
        h
    }

    #[test]
    fn a_key_is_read_from_one_header_once() {
        let bearer = headers(&[("authorization", b"Bearer tg_x")]);
        assert_eq!(presented(&bearer).unwrap().as_deref(), Some("tg_x"));
        let lower = headers(&[("authorization", b"bearer  tg_x ")]);
        assert_eq!(presented(&lower).unwrap().as_deref(), Some("tg_x"));
        let api = headers(&[("x-api-key", b"tg_y")]);
        assert_eq!(presented(&api).unwrap().as_deref(), Some("tg_y"));
        assert_eq!(presented(&HeaderMap::new()).unwrap(), None);
        for bad in [
            headers(&[("authorization", b"Basic dXNlcjpwYXNz")]),
            headers(&[("authorization", b"Bearer")]),
            headers(&[
                ("authorization", b"Bearer a"),
                ("authorization", b"Bearer b"),
            ]),
            headers(&[("x-api-key", b"a"), ("x-api-key", b"a")]),
            headers(&[("authorization", b"Bearer a"), ("x-api-key", b"a")]),
            headers(&[("x-api-key", "clé".as_bytes())]),
        ] {
            let problem = presented(&bad).unwrap_err();
            assert_eq!(problem.status, 401, "{bad:?}");
            assert!(!problem.detail.contains("dXNlcjpwYXNz"));
        }
    }
}
