//! API keys: the parse of a presented secret, the other values a client or an operator types
//! (key ids, idempotency keys, rates, quotas), and the gate's reading of the key headers.

use axum::body::Body;
use proptest::prelude::*;
use taogate_shared::config::AuthMode;
use taogate_shared::domain::tenant::{
    ApiKey, KeyId, Limits, MAX_CREDENTIAL_BYTES, Rate, check_idempotency_key, credential_key_id,
    parse_quota,
};
use taogate_shared::ports::KeyAdmin as _;

use crate::multipart::{Gateway, gateway, send};
use crate::{Input, MIB, bytes_or_mutated, fuzz};

/// The bytes `ApiKey::issue` is given in place of random ones.
fn counter() -> impl FnMut(&mut [u8]) {
    let mut n = 0u8;
    move |b: &mut [u8]| {
        for x in b {
            n = n.wrapping_add(37);
            *x = n;
        }
    }
}

/// An issued key and its secret.
fn issued() -> (ApiKey, String) {
    let issued = ApiKey::issue("fuzz", Limits::default(), 0, counter());
    (issued.key, issued.secret)
}

/// Every parser of a typed or presented value (`credential_key_id`, `ApiKey::matches`,
/// `KeyId::parse`, `check_idempotency_key`, `Rate::parse`, `parse_quota`) on mutated valid
/// values and arbitrary text: a value or an error, never a panic; a credential that parses is
/// short and names its id, and only the issued secret matches its key. 256 cases (under 1 s in the debug profile).
///
/// Memory: at most 16 × the text + 1 MiB.
#[test]
fn presented_values_parse_or_are_refused() {
    let (key, secret) = issued();
    let seeds = vec![
        secret.clone().into_bytes(),
        key.id.to_string().into_bytes(),
        b"order-2024-06-01/42".to_vec(),
        b"10/min".to_vec(),
        b" 1000000 / day ".to_vec(),
        b"500/month".to_vec(),
    ];
    fuzz(
        concat!(module_path!(), "::presented_values_parse_or_are_refused"),
        256,
        bytes_or_mutated(seeds, 256),
        || (),
        |text| 16 * text.0.len() + MIB,
        |(), Input(bytes)| {
            let text = String::from_utf8_lossy(&bytes);
            if let Ok(id) = credential_key_id(&text) {
                prop_assert!(text.len() <= MAX_CREDENTIAL_BYTES);
                let prefix = format!("tg_{id}_");
                prop_assert!(text.starts_with(&prefix), "{text} names {id}");
            }
            prop_assert_eq!(key.matches(&text), text == secret);
            if let Ok(id) = KeyId::parse(&text) {
                prop_assert_eq!(id.as_str(), &*text);
            }
            let _ = check_idempotency_key(&text);
            if let Ok(rate) = Rate::parse(&text, None) {
                prop_assert!(rate.interval_us() > 0 && rate.window_s() > 0);
            }
            if let Ok(quota) = parse_quota(&text) {
                prop_assert!(quota > 0);
            }
            Ok(())
        },
    );
}

/// How a request presents a key.
#[derive(Debug, Clone)]
enum Presented {
    /// No key.
    Nothing,
    /// An `Authorization` value.
    Authorization(Input),
    /// An `X-API-Key` value.
    ApiKey(Input),
    /// Both headers.
    Both(Input, Input),
    /// The same header twice.
    Twice(Input, Input),
}

impl Presented {
    fn headers(&self) -> Vec<(&'static str, &[u8])> {
        match self {
            Self::Nothing => vec![],
            Self::Authorization(v) => vec![("authorization", &v.0)],
            Self::ApiKey(v) => vec![("x-api-key", &v.0)],
            Self::Both(a, b) => vec![("authorization", &a.0), ("x-api-key", &b.0)],
            Self::Twice(a, b) => vec![("x-api-key", &a.0), ("x-api-key", &b.0)],
        }
    }

    fn len(&self) -> usize {
        self.headers().iter().map(|(_, v)| v.len()).sum()
    }
}

/// The gate, with keys required and one key stored.
struct Gate {
    gateway: Gateway,
    secret: String,
}

fn gate() -> Gate {
    let gateway = gateway(AuthMode::Required);
    let (key, secret) = issued();
    gateway.runtime.block_on(gateway.db.save_key(&key)).unwrap();
    Gate { gateway, secret }
}

/// `POST /api/v1/tts` through the gate (keys required, one stored) with any `Authorization`,
/// `X-API-Key` and `Idempotency-Key` values, mutated from valid ones or arbitrary, alone,
/// together or repeated: a 2xx or a 4xx, never a 5xx and never a panic; exactly the issued
/// secret, presented once in one header, gets through. 128 cases (under 1 s in the debug profile).
///
/// Memory: at most 16 × the header values + 32 MiB (SQLite's page cache as tasks are stored).
#[test]
fn the_gate_reads_any_key_headers() {
    let (_, secret) = issued();
    let bearer = format!("Bearer {secret}").into_bytes();
    let values = |seed: Vec<u8>| bytes_or_mutated(vec![seed], 160);
    let presented = prop_oneof![
        1 => Just(Presented::Nothing),
        3 => values(bearer.clone()).prop_map(Presented::Authorization),
        3 => values(secret.clone().into_bytes()).prop_map(Presented::ApiKey),
        1 => (values(bearer), values(secret.clone().into_bytes()))
            .prop_map(|(a, b)| Presented::Both(a, b)),
        1 => (values(secret.clone().into_bytes()), values(secret.clone().into_bytes()))
            .prop_map(|(a, b)| Presented::Twice(a, b)),
    ];
    let idempotency = prop_oneof![
        3 => Just(None),
        1 => values(b"order-42".to_vec()).prop_map(Some),
    ];
    fuzz(
        concat!(module_path!(), "::the_gate_reads_any_key_headers"),
        128,
        (presented, idempotency),
        gate,
        |(presented, idempotency)| {
            16 * (presented.len() + idempotency.as_ref().map_or(0, |i| i.0.len())) + 32 * MIB
        },
        |gate, (presented, idempotency)| {
            let mut request =
                http::Request::post("/api/v1/tts").header("content-type", "application/json");
            let mut sent = Vec::new();
            for (name, value) in presented.headers() {
                if let Ok(value) = http::HeaderValue::from_bytes(value) {
                    sent.push((name, value.clone()));
                    request = request.header(name, value);
                }
            }
            if let Some(Ok(value)) = idempotency.map(|i| http::HeaderValue::from_bytes(&i.0)) {
                request = request.header("idempotency-key", value);
            }
            let body = Body::from(r#"{"text":"hello there","source_language":"en"}"#);
            let (status, answer) = send(&gate.gateway, request.body(body).unwrap());
            prop_assert!(
                (200..300).contains(&status) || (400..500).contains(&status),
                "{status}: {answer}"
            );
            let exact = match sent.as_slice() {
                [("authorization", v)] => v
                    .to_str()
                    .ok()
                    .and_then(|v| v.trim().split_once(' '))
                    .is_some_and(|(scheme, token)| {
                        scheme.eq_ignore_ascii_case("bearer") && token.trim() == gate.secret
                    }),
                [("x-api-key", v)] => v.to_str().is_ok_and(|v| v.trim() == gate.secret),
                _ => false,
            };
            if !exact {
                prop_assert_eq!(status, 401, "{}", answer);
            } else {
                prop_assert_ne!(status, 401, "{}", answer);
            }
            Ok(())
        },
    );
}
