//! Task identifiers.

use std::fmt;
use std::str::FromStr;

use super::InvalidValue;

/// A task's identifier: a UUIDv7, so that ids sort by creation time (newest-first listing and
/// cursors rely on this).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(uuid::Uuid);

impl TaskId {
    /// A fresh, time-ordered id.
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7())
    }

    /// When the id was made (its UUIDv7 timestamp), in milliseconds since the epoch; 0 for an
    /// id of another version.
    pub fn created_at(&self) -> super::Millis {
        self.0.get_timestamp().map_or(0, |t| {
            let (secs, nanos) = t.to_unix();
            secs as i64 * 1_000 + i64::from(nanos / 1_000_000)
        })
    }

    /// The smallest id made at `millis`: every id made then or later sorts at or after it.
    pub fn first_at(millis: super::Millis) -> Self {
        Self(uuid::Builder::from_unix_timestamp_millis(millis.max(0) as u64, &[0; 10]).into_uuid())
    }

    /// The UUID itself.
    pub fn as_uuid(&self) -> &uuid::Uuid {
        &self.0
    }
}

impl Default for TaskId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for TaskId {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s)
            .map(Self)
            .map_err(|_| InvalidValue(format!("'{}' is not a task id", s.escape_default())))
    }
}

impl serde::Serialize for TaskId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for TaskId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_created_later_sort_after_earlier_ones() {
        let first = TaskId::new();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = TaskId::new();
        assert!(first.to_string() < second.to_string());
    }

    #[test]
    fn a_non_uuid_is_refused() {
        assert!("not-a-task".parse::<TaskId>().is_err());
    }
}
