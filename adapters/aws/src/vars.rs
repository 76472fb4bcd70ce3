//! The variables the AWS processes read besides the gateway's own settings, declared once: the
//! template sets them, and the README's table of them is [`markdown_table`] of [`ALL`].
//!
//! [`markdown_table`]: taogate_core::config::vars::markdown_table

use taogate_core::config::vars::{Fallback, Var};

/// `TABLE_NAME`.
pub const TABLE_NAME: Var = Var::new("TABLE_NAME", Fallback::Required, "the task table");
/// `BUCKET_NAME`.
pub const BUCKET_NAME: Var = Var::new(
    "BUCKET_NAME",
    Fallback::Required,
    "the bucket of blobs and the miner snapshot",
);
/// `QUEUE_URL_HIGH`.
pub const QUEUE_URL_HIGH: Var = Var::new(
    "QUEUE_URL_HIGH",
    Fallback::Required,
    "the high-priority queue (`urgent` uses it too)",
);
/// `QUEUE_URL_NORMAL`.
pub const QUEUE_URL_NORMAL: Var = Var::new(
    "QUEUE_URL_NORMAL",
    Fallback::Required,
    "the normal-priority queue",
);
/// `QUEUE_URL_LOW`.
pub const QUEUE_URL_LOW: Var = Var::new(
    "QUEUE_URL_LOW",
    Fallback::Required,
    "the low-priority queue",
);
/// `DLQ_URL_HIGH`.
pub const DLQ_URL_HIGH: Var = Var::new(
    "DLQ_URL_HIGH",
    Fallback::Unset,
    "the high queue's dead-letter queue (its depth shows in health)",
);
/// `DLQ_URL_NORMAL`.
pub const DLQ_URL_NORMAL: Var = Var::new(
    "DLQ_URL_NORMAL",
    Fallback::Unset,
    "the normal queue's dead-letter queue",
);
/// `DLQ_URL_LOW`.
pub const DLQ_URL_LOW: Var = Var::new(
    "DLQ_URL_LOW",
    Fallback::Unset,
    "the low queue's dead-letter queue",
);
/// `SNAPSHOT_KEY`.
pub const SNAPSHOT_KEY: Var = Var::new(
    "SNAPSHOT_KEY",
    Fallback::Value("metagraph/snapshot.json"),
    "the miner snapshot object",
);
/// `TASK_TTL_DAYS`.
pub const TASK_TTL_DAYS: Var = Var::new(
    "TASK_TTL_DAYS",
    Fallback::Value("30"),
    "days a finished task is kept before DynamoDB expires it",
)
.within(1.0, 3650.0);
/// `PRESIGN_TTL_SECONDS`.
pub const PRESIGN_TTL_SECONDS: Var = Var::new(
    "PRESIGN_TTL_SECONDS",
    Fallback::Value("900"),
    "lifetime of presigned S3 URLs",
)
.within(60.0, 604_800.0)
.seconds();
/// `AWS_S3_FORCE_PATH_STYLE`.
pub const AWS_S3_FORCE_PATH_STYLE: Var = Var::new(
    "AWS_S3_FORCE_PATH_STYLE",
    Fallback::Value("false"),
    "`true` or `1`: path-style S3 addressing (emulators need it)",
);

/// `GATEWAY_HOTKEY`.
pub const GATEWAY_HOTKEY: Var = Var::new(
    "GATEWAY_HOTKEY",
    Fallback::Unset,
    "the status function: the gateway hotkey's SS58 address, shown to validator operators",
);
/// `BT_HOTKEY_SECRET_ARN`.
pub const BT_HOTKEY_SECRET_ARN: Var = Var::new(
    "BT_HOTKEY_SECRET_ARN",
    Fallback::Unset,
    "the worker: the Secrets Manager secret holding the signing hotkey (the worker refuses to \
     start without a key)",
);
/// `REFERENCE_API_KEY_SECRET_ARN`.
pub const REFERENCE_API_KEY_SECRET_ARN: Var = Var::new(
    "REFERENCE_API_KEY_SECRET_ARN",
    Fallback::Unset,
    "the worker: the secret holding the reference endpoints' bearer token (replaces \
     `REFERENCE_API_KEY`)",
);

/// Every variable [`AwsResources`](crate::AwsResources) reads, in the README's order.
pub const ALL: &[Var] = &[
    TABLE_NAME,
    BUCKET_NAME,
    QUEUE_URL_HIGH,
    QUEUE_URL_NORMAL,
    QUEUE_URL_LOW,
    DLQ_URL_HIGH,
    DLQ_URL_NORMAL,
    DLQ_URL_LOW,
    SNAPSHOT_KEY,
    TASK_TTL_DAYS,
    PRESIGN_TTL_SECONDS,
    AWS_S3_FORCE_PATH_STYLE,
];

/// The variables single functions read besides [`ALL`], in the README's order.
pub const PER_FUNCTION: &[Var] = &[
    GATEWAY_HOTKEY,
    BT_HOTKEY_SECRET_ARN,
    REFERENCE_API_KEY_SECRET_ARN,
];
