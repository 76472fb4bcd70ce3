//! The callback a submitter is owed: made with the task's terminal transition, delivered at
//! least once, under one id that stays the same across every try so that receivers can drop
//! duplicates.

use serde::{Deserialize, Serialize};

use super::{Expected, Millis, Task};

/// Tries after which an undelivered callback is given up.
pub const MAX_NOTICE_TRIES: u32 = 10;

/// A callback owed for a finished task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// The delivery id (`webhook-id`), the same on every try.
    pub id: String,
    /// When a try was acknowledged; `None` while it is owed.
    pub delivered_at: Option<Millis>,
    /// Tries made so far (each may itself retry a few times within seconds).
    pub tries: u32,
    /// When the latest try ended.
    pub last_try_at: Option<Millis>,
}

impl Notice {
    /// A fresh notice for task `task`.
    pub fn new(task: &Task) -> Self {
        Self {
            id: format!("msg_{}", task.id.as_uuid().simple()),
            delivered_at: None,
            tries: 0,
            last_try_at: None,
        }
    }

    /// Whether it is still owed and may be tried again.
    pub fn owed(&self) -> bool {
        self.delivered_at.is_none() && self.tries < MAX_NOTICE_TRIES
    }
}

impl Task {
    /// Records that a callback is owed, if the submitter asked for one and none is recorded
    /// yet. Called by every transition into a terminal state.
    pub(super) fn owe_notice(&mut self) {
        if self.callback_url.is_some() && self.notice.is_none() {
            self.notice = Some(Notice::new(self));
        }
    }

    /// Whether a sweeper should try the owed callback at `now`: finished, owed, and its last
    /// try (or the end of the task) at least `bound` ago.
    pub fn notice_due(&self, now: Millis, bound: std::time::Duration) -> bool {
        let Some(notice) = self.notice.as_ref().filter(|n| n.owed()) else {
            return false;
        };
        let since = notice
            .last_try_at
            .or(self.completed_at)
            .unwrap_or(self.created_at);
        self.status.is_terminal() && since + bound.as_millis() as i64 <= now
    }

    /// Records one try of the owed callback. Returns what the store must still find to write
    /// it, or why there is nothing to record.
    pub fn note_try(&mut self, delivered: bool, now: Millis) -> Result<Expected, String> {
        let expected = (self.status, self.attempts);
        let Some(notice) = self.notice.as_mut().filter(|n| n.delivered_at.is_none()) else {
            return Err(format!("task {} owes no callback", self.id));
        };
        notice.tries += 1;
        notice.last_try_at = Some(now);
        if delivered {
            notice.delivered_at = Some(now);
        }
        Ok(expected)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::{AttemptEnd, Language, Priority, ServiceKind, TaskInput};

    fn finished(callback: Option<&str>) -> Task {
        let mut t = Task::new(
            ServiceKind::Tts,
            Priority::Normal,
            Language::parse("en").unwrap(),
            TaskInput::Text { text: "x".into() },
            callback.map(str::to_owned),
            0,
        );
        t.begin_attempt(1_000, Duration::from_secs(10)).unwrap();
        let end = AttemptEnd::Failed {
            reason: "no".into(),
            candidates: vec![],
        };
        t.finish_attempt(1, end, 2_000).unwrap();
        t
    }

    #[test]
    fn a_finished_task_with_a_callback_owes_one_notice_until_a_try_is_acknowledged() {
        assert!(finished(None).notice.is_none());
        let mut t = finished(Some("https://example.com/hook"));
        let id = t.notice.as_ref().unwrap().id.clone();
        let bound = Duration::from_secs(60);
        assert!(!t.notice_due(61_999, bound));
        assert!(t.notice_due(62_000, bound));
        t.note_try(false, 62_000).unwrap();
        assert!(!t.notice_due(100_000, bound), "tried a moment ago");
        assert!(t.notice_due(122_000, bound));
        t.note_try(true, 122_000).unwrap();
        assert!(!t.notice_due(i64::MAX / 2, bound));
        assert!(
            t.note_try(true, 200_000).is_err(),
            "delivered: nothing more to record"
        );
        assert_eq!(t.notice.as_ref().unwrap().id, id, "one id across tries");
    }

    #[test]
    fn an_undelivered_notice_is_given_up_after_its_tries() {
        let mut t = finished(Some("https://example.com/hook"));
        for i in 0..MAX_NOTICE_TRIES {
            t.note_try(false, i64::from(i) * 1_000_000).unwrap();
        }
        assert!(!t.notice.as_ref().unwrap().owed());
        assert!(!t.notice_due(i64::MAX / 2, Duration::from_secs(60)));
    }
}
