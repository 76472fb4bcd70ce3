//! The domain: what a task is, the values it is made of, and the rules they obey.
//!
//! Everything here is pure: no HTTP, no storage, no AWS. Values are parsed once at the edge
//! ("parse, don't validate") into types whose constructors enforce the old proxy's rules, so code
//! further in can rely on them.

/// Serializes a domain value by its wire name and deserializes it through its parser, so stored
/// data obeys the same rules as API input.
macro_rules! wire_name_serde {
    ($ty:ty, $name:ident, $parse:expr) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.$name())
            }
        }
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                $parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

mod address;
mod answer_budget;
mod blob_key;
mod candidate;
pub mod health;
mod ids;
mod language;
mod miner;
mod notice;
mod priority;
mod score;
mod service;
mod submitted_text;
mod task;
pub mod tenant;

pub use address::{ip_allowed, parse_callback_url};
pub use answer_budget::{
    AnswerBudget, MAX_ANSWER_CHANNELS, MAX_ANSWER_SAMPLE_BYTES, MAX_ANSWER_SAMPLE_RATE,
    expected_reading_seconds,
};
pub use blob_key::BlobKey;
pub use candidate::{Candidate, Outcome, ScoreDetail};
pub use health::{MinerHealth, Observation};
pub use ids::TaskId;
pub use language::Language;
pub use miner::{ChainInfo, Miner, MinerReply, MinerSnapshot, SynapseAnswer, SynapseRequest};
pub use notice::{MAX_NOTICE_TRIES, Notice};
pub use priority::Priority;
pub use score::Score;
pub use service::ServiceKind;
pub use submitted_text::{SubmittedText, TextLimits};
pub use task::{
    AttemptEnd, AudioInfo, ClaimOutcome, Confidence, Expected, GiveUp, Quorum, StatusCounts, Task,
    TaskInput, TaskOutput, TaskResult, TaskStatus, lease_token_digest, new_lease_token,
};
pub use tenant::{ApiKey, KeyId, Limits, Period, Rate};

/// Milliseconds since the Unix epoch: the one clock unit stored anywhere in taogate.
pub type Millis = i64;

/// The current wall-clock time in [`Millis`].
pub fn now_millis() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

/// A value that did not parse, with a message a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);

wire_name_serde!(Language, code, |r: &str| Language::parse(r)
    .map_err(|e| e.0));
wire_name_serde!(Priority, as_str, |r: &str| Priority::parse(r)
    .map_err(|e| e.0));
wire_name_serde!(ServiceKind, as_str, |r: &str| ServiceKind::parse(r)
    .map_err(|e| e.0));
