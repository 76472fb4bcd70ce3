//! Telling a submitter that its task finished: the one place a callback body is made and sent,
//! used by the worker right after the final transition and by the sweeper for callbacks still
//! owed (a worker stopped between the two, or the receiver was down).

use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

use crate::domain::{KeyId, Task, now_millis};
use crate::ports::{BlobPresign, CallbackNotifier, KeyLookup};
use crate::views::TaskView;

/// Longest one delivery of a callback may take, every try and back-off included: 20 s, room
/// for the default three tries (`CALLBACK_MAX_ATTEMPTS`) of
/// [`CALLBACK_TRY_TIMEOUT`](crate::outbound::CALLBACK_TRY_TIMEOUT) with their back-offs
/// (15.75 s). The caller's own bound (an invocation's deadline) may end it sooner.
pub const DELIVERY_DEADLINE: Duration = Duration::from_secs(20);

/// Least time a delivery is begun with: 1 s, far more than a receiver that answers needs.
/// With less left before the caller's bound the callback is not tried at all; it stays owed,
/// its tries uncounted, rather than spend one of them on a request cut short.
pub const LEAST_DELIVERY_TIME: Duration = Duration::from_secs(1);

/// The deadline of a delivery begun now within `bound` (none: no bound of the caller's), or
/// `None` when less than [`LEAST_DELIVERY_TIME`] is left before `bound`.
pub fn delivery_deadline(bound: Option<Instant>) -> Option<Instant> {
    let now = Instant::now();
    let own = now + DELIVERY_DEADLINE;
    match bound {
        None => Some(own),
        Some(bound) if bound.saturating_duration_since(now) >= LEAST_DELIVERY_TIME => {
            Some(own.min(bound))
        }
        Some(_) => None,
    }
}

/// Sends the callback `task` owes, if it owes one, ending by [`DELIVERY_DEADLINE`] and by
/// `bound`. Returns whether it was acknowledged, or `None` when there is no try to record:
/// nothing is owed, or too little is left before `bound` (see [`delivery_deadline`]) and the
/// callback stays owed, untried.
pub async fn tell_submitter<B: BlobPresign, N: CallbackNotifier, K: KeyLookup>(
    task: &Task,
    blobs: &B,
    notifier: &N,
    keys: &K,
    bound: Option<Instant>,
) -> Option<bool> {
    let url = task.callback_url.as_deref()?;
    let notice = task.notice.as_ref().filter(|n| n.owed())?;
    let Some(deadline) = delivery_deadline(bound) else {
        info!(delivery_id = %notice.id, "too little time is left to try the callback; it stays owed");
        return None;
    };
    let audio_url = match TaskView::audio_key(task) {
        Some(key) => blobs.public_url(task.id, key).await.ok(),
        None => None,
    };
    let body = serde_json::to_value(TaskView::new(task, audio_url)).unwrap_or_default();
    // Signed with the submitting key's webhook secrets; the anonymous tenant's are unsigned.
    let secrets = match KeyId::parse(&task.owner) {
        Err(_) => Vec::new(),
        Ok(id) => match keys.key(&id).await {
            Ok(Some(key)) => key.signing_secrets(now_millis()),
            Ok(None) => Vec::new(),
            Err(e) => {
                warn!(error = ?anyhow::Error::from(e), delivery_id = %notice.id, "the signing key could not be read; the callback stays owed");
                return Some(false);
            }
        },
    };
    match notifier
        .deliver(url, &body, &notice.id, &secrets, deadline)
        .await
    {
        Ok(requests) => {
            info!(requests, delivery_id = %notice.id, "callback delivered");
            Some(true)
        }
        Err(e) => {
            warn!(error = %e, delivery_id = %notice.id, "callback not delivered; it stays owed");
            Some(false)
        }
    }
}
