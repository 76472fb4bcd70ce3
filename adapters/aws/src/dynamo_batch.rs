//! Reading many items by key: the one `BatchGetItem` loop every table read of several items goes
//! through, with one retry policy.
//!
//! A request names at most [`KEYS_PER_REQUEST`] keys (DynamoDB's limit). DynamoDB may answer part
//! of a request and hand the rest back as unprocessed keys (throttling, or an answer past 16 MB);
//! those are asked again after a back-off that doubles from [`FIRST_BACK_OFF`], at most
//! [`TRIES`] requests per chunk in all (about 1.5 s of waiting), after which the read fails
//! rather than answer with items missing. An item that does not exist is simply absent.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};

use crate::dynamo::backend;
use crate::ports::StoreError;

/// One item, or one key, as the SDK holds it.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// Keys in one `BatchGetItem` request, at most.
pub(crate) const KEYS_PER_REQUEST: usize = 100;
/// Requests per chunk of keys, at most, the first included.
pub(crate) const TRIES: u32 = 6;
/// The wait before the first retry; each later one waits twice the one before.
pub(crate) const FIRST_BACK_OFF: Duration = Duration::from_millis(50);

/// How the items are read.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Read<'a> {
    /// A strongly consistent read (twice the read units).
    pub consistent: bool,
    /// Only these attributes, as a projection expression.
    pub projection: Option<&'a str>,
}

/// The items of `table` that `keys` name, in no particular order.
pub(crate) async fn batch_get(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    keys: Vec<Item>,
    read: Read<'_>,
) -> Result<Vec<Item>, StoreError> {
    let mut items = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(KEYS_PER_REQUEST) {
        let mut pending = chunk.to_vec();
        let mut back_off = FIRST_BACK_OFF;
        for attempt in 1..=TRIES {
            let request = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut pending)))
                .consistent_read(read.consistent)
                .set_projection_expression(read.projection.map(str::to_owned))
                .build()
                .map_err(backend)?;
            let mut out = client
                .batch_get_item()
                .request_items(table, request)
                .send()
                .await
                .map_err(backend)?;
            items.extend(
                out.responses
                    .as_mut()
                    .and_then(|r| r.remove(table))
                    .unwrap_or_default(),
            );
            pending = out
                .unprocessed_keys
                .and_then(|mut u| u.remove(table))
                .map(|k| k.keys)
                .unwrap_or_default();
            if pending.is_empty() {
                break;
            }
            if attempt == TRIES {
                return Err(backend(anyhow::anyhow!(
                    "BatchGetItem on {table} left {} keys unread after {TRIES} requests",
                    pending.len()
                )));
            }
            tokio::time::sleep(back_off).await;
            back_off *= 2;
        }
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    //! Against a loopback endpoint that speaks DynamoDB's JSON protocol for `BatchGetItem` and
    //! answers from a script: LocalStack serves every key it is asked for, so it cannot show what
    //! happens when DynamoDB hands keys back unprocessed.

    use std::sync::{Arc, Mutex};

    use axum::extract::State;
    use axum::http::header;
    use axum::response::IntoResponse;
    use serde_json::{Value, json};

    use super::*;

    /// What the endpoint does with each request: how many of the keys it asked for it serves (the
    /// rest go back unprocessed); and what it saw.
    #[derive(Default)]
    struct Script {
        served_per_request: Vec<usize>,
        requests: Vec<Vec<String>>,
        consistent: Vec<bool>,
        projections: Vec<Option<String>>,
    }

    type Shared = Arc<Mutex<Script>>;

    async fn batch_get_item(State(script): State<Shared>, body: String) -> impl IntoResponse {
        // The SDK sends application/x-amz-json-1.0, which axum's Json extractor refuses.
        let body: Value = serde_json::from_str(&body).unwrap();
        let asked = &body["RequestItems"]["t"];
        let ids: Vec<String> = asked["Keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["id"]["S"].as_str().unwrap().to_owned())
            .collect();
        let mut script = script.lock().unwrap();
        let turn = script.requests.len();
        let served = script
            .served_per_request
            .get(turn)
            .copied()
            .unwrap_or(usize::MAX)
            .min(ids.len());
        script.requests.push(ids.clone());
        script
            .consistent
            .push(asked["ConsistentRead"].as_bool().unwrap_or(false));
        script
            .projections
            .push(asked["ProjectionExpression"].as_str().map(str::to_owned));
        let items: Vec<Value> = ids[..served]
            .iter()
            .map(|id| json!({"id": {"S": id}, "body": {"S": format!("of {id}")}}))
            .collect();
        let left: Vec<Value> = ids[served..]
            .iter()
            .map(|id| json!({"id": {"S": id}}))
            .collect();
        let mut answer = json!({"Responses": {"t": items}});
        if !left.is_empty() {
            answer["UnprocessedKeys"] = json!({"t": {"Keys": left}});
        }
        (
            [(header::CONTENT_TYPE, "application/x-amz-json-1.0")],
            answer.to_string(),
        )
    }

    async fn endpoint(served_per_request: Vec<usize>) -> (aws_sdk_dynamodb::Client, Shared) {
        let script = Arc::new(Mutex::new(Script {
            served_per_request,
            ..Script::default()
        }));
        let app = axum::Router::new()
            .route("/", axum::routing::post(batch_get_item))
            .with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::for_tests())
            .endpoint_url(format!("http://{address}"))
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .build();
        (aws_sdk_dynamodb::Client::from_conf(config), script)
    }

    fn keys(n: usize) -> Vec<Item> {
        (0..n)
            .map(|i| HashMap::from([("id".to_owned(), AttributeValue::S(format!("k{i:03}")))]))
            .collect()
    }

    fn ids(items: &[Item]) -> Vec<String> {
        let mut ids: Vec<String> = items
            .iter()
            .map(|item| item["id"].as_s().unwrap().clone())
            .collect();
        ids.sort();
        ids
    }

    #[tokio::test]
    async fn keys_are_asked_a_hundred_at_a_time_and_every_item_comes_back() {
        let (client, script) = endpoint(vec![]).await;
        let read = Read {
            consistent: true,
            projection: Some("body"),
        };
        let items = batch_get(&client, "t", keys(250), read).await.unwrap();
        assert_eq!(ids(&items), ids(&keys(250)));
        let script = script.lock().unwrap();
        let sizes: Vec<usize> = script.requests.iter().map(Vec::len).collect();
        assert_eq!(sizes, [100, 100, 50]);
        assert!(script.consistent.iter().all(|c| *c));
        assert!(
            script
                .projections
                .iter()
                .all(|p| p.as_deref() == Some("body"))
        );
    }

    #[tokio::test]
    async fn unprocessed_keys_are_asked_again_until_every_item_is_read() {
        // The first request of the chunk is served 40 of 100, the next 30 of the 60 left, then the rest.
        let (client, script) = endpoint(vec![40, 30]).await;
        let items = batch_get(&client, "t", keys(100), Read::default())
            .await
            .unwrap();
        assert_eq!(
            ids(&items),
            ids(&keys(100)),
            "nothing missing, nothing twice"
        );
        let script = script.lock().unwrap();
        let sizes: Vec<usize> = script.requests.iter().map(Vec::len).collect();
        assert_eq!(sizes, [100, 60, 30]);
        assert_eq!(
            script.requests[1][0], "k040",
            "the retry asks for what was left"
        );
        assert!(script.consistent.iter().all(|c| !c));
    }

    #[tokio::test]
    async fn keys_left_unread_after_every_try_fail_the_read_instead_of_going_missing() {
        // Serves one key per request: 10 keys cannot be read in six requests.
        let (client, script) = endpoint(vec![1; 20]).await;
        let error = batch_get(&client, "t", keys(10), Read::default())
            .await
            .unwrap_err();
        let cause = std::error::Error::source(&error).unwrap().to_string();
        assert!(cause.contains("4 keys unread after 6 requests"), "{cause}");
        assert_eq!(script.lock().unwrap().requests.len(), TRIES as usize);
    }
}
