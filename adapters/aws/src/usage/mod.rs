//! What this process asks of AWS, counted per operation, so that a task's cost can be read from
//! the logs instead of guessed.
//!
//! One [`UsageInterceptor`] sits on each SDK client that [`AwsClients::load`](super::AwsClients)
//! builds, so every adapter is counted without code at its call sites, and a call added later
//! is counted too. Per operation (`DynamoDB.PutItem`, `SQS.SendMessage`, `S3.GetObject`, ...):
//!
//! - `requests`: attempts sent, retries included (AWS bills each); presigning a URL is not a
//!   request (the client that uses the URL makes it);
//! - `billed_requests`: what the price list counts. SQS bills each 64 KiB chunk of a request
//!   as one request; every other service, one per request;
//! - `bytes_sent`, `bytes_received`: request and response bodies;
//! - `capacity_reported`: the capacity units DynamoDB reports. The interceptor asks for them on
//!   every request that can return them (`"ReturnConsumedCapacity": "TOTAL"`, spliced into the
//!   request unless the call site set it), so on AWS this is the billed figure, indexes included;
//! - `capacity_estimated`: the base table's units, computed from the item sizes the request and
//!   response carry: a write is 1 unit per KB written, a read 1 unit per 4 KB read (half that
//!   when eventually consistent, double in a transaction). Emulators report a fixed figure per
//!   call, so this is the one to read off them. `UpdateItem` and `DeleteItem` do not carry the
//!   item: they are counted as 1 unit, which holds for the items this product updates in place
//!   (counters, rate state, claims, all under 1 KB);
//! - `index_units_estimated`: writes to the global secondary indexes, which emulators do not
//!   report. The [`Usage`] knows the table's key and index key attributes
//!   ([`Usage::with_indexes`]) and remembers each item's index keys as it last saw them (in an
//!   item read or written, at most [`REMEMBERED_ITEMS`] items). A `PutItem` then costs, per
//!   index (keys-only projections, under 1 KB an entry): 1 for an entry added or removed, 2 for
//!   one moved (a delete and a put), nothing when its key stays. This product reads a task
//!   before every conditional write of it, so the previous keys are known; a write of an item
//!   not seen before counts as a new one.
//!
//! Bodies are only measured and, for DynamoDB, scanned for sizes and capacity (bodies past
//! `PARSED_BYTES` for capacity only, their reads estimated from their length): nothing read
//! here is logged, so item contents (and Secrets Manager's answers, never parsed) stay out of
//! logs.
//!
//! The counts live in a [`Usage`] shared by the clients of one [`AwsClients`](super::AwsClients),
//! not in a static: two sets of clients in one process (tests) count apart. The Lambdas log and
//! reset it after every invocation ([`Usage::log_invocation`]).

mod capacity;
mod interceptor;

pub use capacity::item_size;
use capacity::*;
pub use interceptor::UsageInterceptor;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::{
    AfterDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextMut,
    BeforeTransmitInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One operation's counts.
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OperationUsage {
    /// Attempts sent, retries included.
    pub requests: u64,
    /// Requests as priced (SQS: one per 64 KiB chunk of the request).
    pub billed_requests: u64,
    /// Request body bytes.
    pub bytes_sent: u64,
    /// Response body bytes.
    pub bytes_received: u64,
    /// Capacity units DynamoDB reported.
    pub capacity_reported: f64,
    /// Base-table capacity units estimated from item sizes.
    pub capacity_estimated: f64,
    /// Index write units estimated from the index keys each write adds, moves or removes.
    #[serde(default)]
    pub index_units_estimated: f64,
}

impl OperationUsage {
    fn add(&mut self, other: &Self) {
        self.requests += other.requests;
        self.billed_requests += other.billed_requests;
        self.bytes_sent += other.bytes_sent;
        self.bytes_received += other.bytes_received;
        self.capacity_reported += other.capacity_reported;
        self.capacity_estimated += other.capacity_estimated;
        self.index_units_estimated += other.index_units_estimated;
    }
}

/// Counts by `Service.Operation`, in name order.
pub type UsageReport = BTreeMap<String, OperationUsage>;

/// Adds `other` into `into`, operation by operation.
pub fn merge(into: &mut UsageReport, other: &UsageReport) {
    for (op, usage) in other {
        into.entry(op.clone()).or_default().add(usage);
    }
}

/// Items whose index keys a [`Usage`] remembers; past this it forgets them all and starts
/// again (the estimate then counts the next write of a forgotten item as new).
pub const REMEMBERED_ITEMS: usize = 10_000;

/// The counts of one set of clients.
#[derive(Debug, Default)]
pub struct Usage {
    operations: Mutex<UsageReport>,
    /// The table's key attribute and its indexes' key attributes.
    indexed: Option<(String, Vec<String>)>,
    /// Each remembered item's index key values, in the order of `indexed`'s list.
    seen: Mutex<std::collections::HashMap<String, Vec<Option<String>>>>,
}

impl Usage {
    /// Counts that also estimate index writes on a table keyed by `key` whose global secondary
    /// indexes are keyed by `index_keys`.
    pub fn with_indexes(key: &str, index_keys: &[&str]) -> Self {
        Self {
            indexed: Some((
                key.to_owned(),
                index_keys.iter().map(|k| (*k).to_owned()).collect(),
            )),
            ..Self::default()
        }
    }

    /// The item's key and index key values, if this is an indexed item.
    fn index_keys(&self, item: &Value) -> Option<(String, Vec<Option<String>>)> {
        let (key, index_keys) = self.indexed.as_ref()?;
        let id = item.get(key)?.to_string();
        let values = index_keys
            .iter()
            .map(|k| item.get(k).map(Value::to_string))
            .collect();
        Some((id, values))
    }

    /// Remembers the index keys of `item`, as read or written.
    fn saw(&self, item: &Value) {
        if let (Some((id, values)), Ok(mut seen)) = (self.index_keys(item), self.seen.lock()) {
            if seen.len() >= REMEMBERED_ITEMS {
                seen.clear();
            }
            seen.insert(id, values);
        }
    }

    /// Index write units of writing `item` over what was last seen of it, which it replaces.
    fn index_writes(&self, item: &Value) -> f64 {
        let Some((id, new)) = self.index_keys(item) else {
            return 0.0;
        };
        let Ok(mut seen) = self.seen.lock() else {
            return 0.0;
        };
        let old = seen
            .get(&id)
            .cloned()
            .unwrap_or_else(|| vec![None; new.len()]);
        let units = old
            .iter()
            .zip(&new)
            .map(|(before, after)| match (before, after) {
                (Some(b), Some(a)) if b == a => 0.0,
                (Some(_), Some(_)) => 2.0,
                (None, None) => 0.0,
                _ => 1.0,
            })
            .sum();
        if seen.len() >= REMEMBERED_ITEMS {
            seen.clear();
        }
        seen.insert(id, new);
        units
    }

    fn record(&self, operation: &str, usage: OperationUsage) {
        if let Ok(mut ops) = self.operations.lock() {
            match ops.get_mut(operation) {
                Some(o) => o.add(&usage),
                None => {
                    ops.insert(operation.to_owned(), usage);
                }
            }
        }
    }

    /// The counts so far.
    pub fn snapshot(&self) -> UsageReport {
        self.operations
            .lock()
            .map(|ops| ops.clone())
            .unwrap_or_default()
    }

    /// The counts so far, leaving zero.
    pub fn take(&self) -> UsageReport {
        self.operations
            .lock()
            .map(|mut ops| std::mem::take(&mut *ops))
            .unwrap_or_default()
    }

    /// Logs the counts since the last call (field `aws_usage`, one JSON object) and starts
    /// again from zero; logs nothing if nothing was used. A Lambda calls it after each
    /// invocation, so each log line is that invocation's use (and, in the first, the
    /// initialization's).
    pub fn log_invocation(&self) {
        let used = self.take();
        if !used.is_empty() {
            let json = serde_json::to_string(&used).unwrap_or_default();
            tracing::info!(aws_usage = %json, "AWS usage of this invocation");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::interceptor::with_capacity_asked;
    use super::*;
    use serde_json::json;

    #[test]
    fn item_sizes_follow_the_documented_rules() {
        // "id" (2) + 5 characters; "n" (1) + 3 significant digits -> 2 + 1; "b" (1) + 3 bytes.
        let item = json!({"id": {"S": "abcde"}, "n": {"N": "-00123"}, "b": {"B": "AQID"}});
        assert_eq!(item_size(&item), 2 + 5 + 1 + 3 + 1 + 3);
        let nested = json!({"m": {"M": {"k": {"BOOL": true}}}, "l": {"L": [{"S": "xy"}]}});
        assert_eq!(item_size(&nested), 1 + 3 + (1 + 1 + 1) + 1 + 3 + (1 + 2));
    }

    #[test]
    fn writes_are_estimated_per_started_kilobyte() {
        let put = |bytes: usize| {
            json!({"Item": {"body": {"S": "x".repeat(bytes - 4)}}})
                .as_object()
                .cloned()
                .unwrap()
        };
        assert_eq!(dynamo_write_units("PutItem", &put(1024)), 1.0);
        assert_eq!(dynamo_write_units("PutItem", &put(1025)), 2.0);
        assert_eq!(dynamo_write_units("UpdateItem", &put(5000)), 1.0);
        let transaction =
            json!({"TransactItems": [{"Put": {"Item": {"a": {"S": "b"}}}}, {"Update": {}}]});
        assert_eq!(
            dynamo_write_units("TransactWriteItems", transaction.as_object().unwrap()),
            4.0
        );
    }

    #[test]
    fn reads_round_up_per_item_or_per_query() {
        let big = json!({"body": {"S": "x".repeat(5000)}});
        let small = json!({"id": {"S": "a"}});
        let batch = json!({"Responses": {"t": [big.clone(), small.clone()]}});
        assert_eq!(dynamo_read_units(batch.as_object().unwrap()), 3.0);
        let query = json!({"Items": [small.clone(), small]});
        assert_eq!(dynamo_read_units(query.as_object().unwrap()), 1.0);
        let eventual = json!({"Key": {}});
        assert_eq!(
            dynamo_read_factor("GetItem", eventual.as_object().unwrap()),
            0.5
        );
        let strong = json!({"Key": {}, "ConsistentRead": true});
        assert_eq!(
            dynamo_read_factor("GetItem", strong.as_object().unwrap()),
            1.0
        );
    }

    #[test]
    fn index_writes_count_entries_added_moved_and_removed() {
        let usage = Usage::with_indexes("id", &["list_all", "list_status", "notice_owed"]);
        let item = |status: &str, owed: bool| {
            let mut i = json!({"id": {"S": "t1"}, "list_all": {"S": "all#3"},
                "list_status": {"S": status}, "body": {"S": "{}"}});
            if owed {
                i["notice_owed"] = json!({"S": "owed#3"});
            }
            i
        };
        // New: two entries added.
        assert_eq!(usage.index_writes(&item("pending#3", false)), 2.0);
        // Read back unchanged, then written with a new status: one entry moved.
        usage.saw(&item("pending#3", false));
        assert_eq!(usage.index_writes(&item("processing#3", false)), 2.0);
        // The same keys again: nothing; a sparse key appearing: one.
        assert_eq!(usage.index_writes(&item("processing#3", false)), 0.0);
        assert_eq!(usage.index_writes(&item("processing#3", true)), 1.0);
        // An item without the table's key (a counter, say) is not indexed here.
        assert_eq!(usage.index_writes(&json!({"other": {"S": "x"}})), 0.0);
        // Without index attributes known, nothing is estimated.
        assert_eq!(
            Usage::default().index_writes(&item("pending#3", false)),
            0.0
        );
    }

    #[test]
    fn capacity_is_asked_by_splicing_the_body() {
        let asked = with_capacity_asked(br#"{"TableName":"t","Key":{"id":{"S":"a"}}} "#).unwrap();
        let v: Value = serde_json::from_slice(&asked).unwrap();
        assert_eq!(v["ReturnConsumedCapacity"], "TOTAL");
        assert_eq!(v["Key"]["id"]["S"], "a");
        let empty: Value = serde_json::from_slice(&with_capacity_asked(b"{ }").unwrap()).unwrap();
        assert_eq!(empty, json!({"ReturnConsumedCapacity": "TOTAL"}));
        assert!(with_capacity_asked(br#"{"ReturnConsumedCapacity":"NONE"}"#).is_none());
        assert!(with_capacity_asked(b"[1]").is_none());
    }

    #[test]
    fn reported_capacity_sums_lists() {
        assert_eq!(reported_capacity(Some(&json!({"CapacityUnits": 1.5}))), 1.5);
        assert_eq!(
            reported_capacity(Some(
                &json!([{"CapacityUnits": 1.0}, {"CapacityUnits": 0.5}])
            )),
            1.5
        );
        assert_eq!(reported_capacity(None), 0.0);
    }
}
