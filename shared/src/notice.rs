//! Telling a submitter that its task finished: the one place a callback body is made and sent,
//! used by the worker right after the final transition and by the sweeper for callbacks still
//! owed (a worker stopped between the two, or the receiver was down).

use tracing::{info, warn};

use crate::domain::{KeyId, Task, now_millis};
use crate::ports::{BlobPresign, CallbackNotifier, KeyLookup};
use crate::views::TaskView;

/// Sends the callback `task` owes, if it owes one. Returns whether it was acknowledged, or
/// `None` when nothing is owed.
pub async fn tell_submitter<B: BlobPresign, N: CallbackNotifier, K: KeyLookup>(
    task: &Task,
    blobs: &B,
    notifier: &N,
    keys: &K,
) -> Option<bool> {
    let url = task.callback_url.as_deref()?;
    let notice = task.notice.as_ref().filter(|n| n.owed())?;
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
    match notifier.deliver(url, &body, &notice.id, &secrets).await {
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
