//! Miner health: read before an attempt picks its miners, added to after it.

use super::*;

impl<T, B, D, C, R, N> Worker<T, B, D, C, R, N>
where
    T: TaskLease + NoticeLedger + HealthStore + KeyLookup,
    B: BlobGet + BlobPut + BlobPresign,
    D: MinerDirectory,
    C: MinerClient,
    R: ReferenceEndpoints,
    N: CallbackNotifier,
{
    /// The health records of `hotkeys`, the miners this attempt may pick. Health is advisory:
    /// if it cannot be read, the attempt goes on without it.
    pub(super) async fn load_health(&self, hotkeys: Vec<String>) -> HashMap<String, MinerHealth> {
        match self.ports.tasks.load_health(hotkeys).await {
            Ok(records) => records.into_iter().map(|h| (h.hotkey.clone(), h)).collect(),
            Err(e) => {
                warn!(error = ?anyhow::Error::from(e), "miner health could not be read; selecting without it");
                HashMap::new()
            }
        }
    }

    /// What this attempt observed of the miners asked (a cancelled query observed nothing).
    pub(super) fn observations(&self, asked: &[Candidate]) -> Vec<Observation> {
        let now = now_millis();
        asked
            .iter()
            .filter(|c| c.outcome != Outcome::Cancelled)
            .map(|c| Observation {
                hotkey: c.hotkey.clone(),
                // A well-formed answer below the accuracy floor is worthless: it counts as a
                // failure, so a miner that only answers garbage is ranked down and backed off.
                outcome: match c.accuracy {
                    Some(a) if c.outcome == Outcome::Success && a < self.policy.scorer.floor => {
                        Outcome::InvalidAnswer
                    }
                    _ => c.outcome,
                },
                latency_ms: c.latency_ms as f64,
                score: c.combined,
                at: now,
            })
            .collect()
    }

    /// Adds `observations` to the records of the miners asked, in the store, so that
    /// concurrent attempts add up rather than overwrite each other.
    pub(super) async fn record_health(&self, observations: Vec<Observation>) {
        if observations.is_empty() {
            return;
        }
        match self.ports.tasks.observe_health(observations).await {
            Ok(records) => {
                for record in records
                    .iter()
                    .filter(|r| r.failures_in_a_row == crate::domain::health::BACKOFF_AFTER)
                {
                    info!(hotkey = %record.hotkey, "miner keeps failing; backed off");
                }
            }
            Err(e) => {
                warn!(error = ?anyhow::Error::from(e), "miner health could not be stored");
            }
        }
    }
}
