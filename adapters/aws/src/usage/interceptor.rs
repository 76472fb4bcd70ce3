//! The interceptor on each SDK client: what each request sends, receives and consumes.

use super::*;

/// DynamoDB operations that take `ReturnConsumedCapacity`.
pub(super) const CAPACITY_OPERATIONS: [&str; 10] = [
    "GetItem",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "Query",
    "Scan",
    "BatchGetItem",
    "BatchWriteItem",
    "TransactGetItems",
    "TransactWriteItems",
];

/// Bodies larger than this are measured, not parsed for the estimates (a `BatchGetItem` answer
/// may be 16 MB): a read is then estimated from its bytes.
pub(super) const PARSED_BYTES: usize = 1024 * 1024;

/// `body` (a JSON object) with `"ReturnConsumedCapacity": "TOTAL"` added before its closing
/// brace, or `None` if it asks already or is not an object. Spliced, not re-serialized.
pub(super) fn with_capacity_asked(body: &[u8]) -> Option<Vec<u8>> {
    let asked = b"\"ReturnConsumedCapacity\"";
    if body.windows(asked.len()).any(|w| w == asked) {
        return None;
    }
    let end = body.iter().rposition(|b| !b.is_ascii_whitespace())?;
    if body[end] != b'}' || body.first() != Some(&b'{') {
        return None;
    }
    let empty = body[1..end].iter().all(u8::is_ascii_whitespace);
    let mut out = Vec::with_capacity(body.len() + 40);
    out.extend_from_slice(&body[..end]);
    if !empty {
        out.push(b',');
    }
    out.extend_from_slice(b"\"ReturnConsumedCapacity\":\"TOTAL\"}");
    Some(out)
}

/// The one field of a DynamoDB answer read whatever its size.
#[derive(Deserialize)]
pub(super) struct Consumed {
    #[serde(rename = "ConsumedCapacity")]
    consumed: Option<Value>,
}

/// SQS prices each 64 KiB chunk of a request's payload as one request.
pub(super) const SQS_CHUNK: u64 = 64 * 1024;

/// Counts every attempt of the client it is added to into a [`Usage`].
#[derive(Debug, Clone)]
pub struct UsageInterceptor {
    usage: Arc<Usage>,
}

impl UsageInterceptor {
    /// Counts into `usage`.
    pub fn new(usage: Arc<Usage>) -> Self {
        Self { usage }
    }
}

/// What the request side of an attempt knew, for the response side.
#[derive(Debug, Clone)]
pub(super) struct Pending {
    operation: String,
    /// The request's counts, recorded when it is sent.
    request: OperationUsage,
    /// Read units per 4 KB for this request (0.5 eventually consistent, 1 strong, 2 in a
    /// transaction).
    read_factor: f64,
}

impl Storable for Pending {
    type Storer = StoreReplace<Self>;
}

impl Intercept for UsageInterceptor {
    fn name(&self) -> &'static str {
        "UsageInterceptor"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some((service, name)) = cfg
            .load::<Metadata>()
            .map(|m| (m.service().to_owned(), m.name().to_owned()))
        else {
            return Ok(());
        };
        let request = context.request_mut();
        let mut usage = OperationUsage {
            requests: 1,
            billed_requests: 1,
            ..OperationUsage::default()
        };
        let mut read_factor = 0.5;
        if service == "DynamoDB" && CAPACITY_OPERATIONS.contains(&name.as_str()) {
            let body = request.body().bytes().unwrap_or_default();
            if body.len() <= PARSED_BYTES
                && let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body)
            {
                read_factor = dynamo_read_factor(&name, &fields);
                usage.capacity_estimated = dynamo_write_units(&name, &fields);
                if name == "PutItem"
                    && let Some(item) = fields.get("Item")
                {
                    usage.index_units_estimated = self.usage.index_writes(item);
                }
            }
            if let Some(bytes) = with_capacity_asked(body) {
                let length = bytes.len();
                *request.body_mut() = SdkBody::from(bytes);
                request
                    .headers_mut()
                    .insert("content-length", length.to_string());
            }
        }
        usage.bytes_sent = request
            .body()
            .content_length()
            .or_else(|| {
                request
                    .headers()
                    .get("content-length")
                    .and_then(|l| l.parse().ok())
            })
            .unwrap_or(0);
        if service == "SQS" {
            usage.billed_requests = usage.bytes_sent.div_ceil(SQS_CHUNK).max(1);
        }
        cfg.interceptor_state().store_put(Pending {
            operation: format!("{service}.{name}"),
            request: usage,
            read_factor,
        });
        Ok(())
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // A presigned URL is signed in its query and never sent from here: the client that
        // uses it makes the request.
        let presigned = context.request().uri().contains("X-Amz-Signature=");
        if let Some(pending) = cfg.load::<Pending>().filter(|_| !presigned) {
            self.usage.record(&pending.operation, pending.request);
        }
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(pending) = cfg.load::<Pending>().cloned() else {
            return Ok(());
        };
        let response = context.response();
        let body = response.body().bytes();
        let mut usage = OperationUsage {
            bytes_received: response
                .headers()
                .get("content-length")
                .and_then(|l| l.parse().ok())
                .or(body.map(|b| b.len() as u64))
                .unwrap_or(0),
            ..OperationUsage::default()
        };
        if pending.operation.starts_with("DynamoDB.")
            && let Some(body) = body
        {
            usage.capacity_reported = serde_json::from_slice::<Consumed>(body)
                .map_or(0.0, |c| reported_capacity(c.consumed.as_ref()));
            if body.len() > PARSED_BYTES {
                usage.capacity_estimated = body.len().div_ceil(4096) as f64 * pending.read_factor;
            } else if let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) {
                usage.capacity_estimated = dynamo_read_units(&fields) * pending.read_factor;
                for item in items_read(&fields) {
                    self.usage.saw(item);
                }
            }
        }
        self.usage.record(&pending.operation, usage);
        Ok(())
    }
}
