//! Which miners an attempt queries.
//!
//! Only serving axons are eligible (ip and port set) at a public address, unless the address is
//! in `MINER_ALLOWLIST` (the chain accepts private and loopback addresses; calling them from a
//! Lambda would probe the operator's own network), and never our own hotkey. A policy ranks them:
//! by stake, by incentive, or in turn (round-robin across attempts). A share of the slots
//! (`SELECTION_EXPLORATION`, default 0.2) goes to miners picked at random from the rest, so that
//! new or low-ranked miners get tried and can prove themselves. Health records (see
//! [`MinerHealth`]) leave backed-off miners out and scale the stake and incentive rankings.

use std::sync::atomic::{AtomicUsize, Ordering};

use rand::seq::SliceRandom;

use std::collections::HashMap;

use crate::config::{SelectionPolicy, SelectionSettings};
use crate::domain::{Millis, Miner, MinerHealth, MinerSnapshot, ip_allowed};

/// A policy plus the state round-robin keeps between attempts.
#[derive(Debug)]
pub struct Selector {
    policy: SelectionPolicy,
    exploration: f64,
    cursor: AtomicUsize,
    allowlist: Vec<ipnet::IpNet>,
}

impl Selector {
    /// A selector; `exploration` is the share of slots given to random picks, in [0, 1].
    pub fn new(policy: SelectionPolicy, exploration: f64) -> Self {
        Self {
            policy,
            exploration: exploration.clamp(0.0, 1.0),
            cursor: AtomicUsize::new(0),
            allowlist: Vec::new(),
        }
    }

    /// The selector `settings` configure (`SELECTION_POLICY`, `SELECTION_EXPLORATION`,
    /// `MINER_ALLOWLIST`).
    pub fn from_settings(settings: &SelectionSettings) -> Self {
        Self::new(settings.policy, settings.exploration).with_allowlist(settings.allowlist.clone())
    }

    /// Serving miners at allowed addresses, our own hotkey excluded.
    fn eligible<'s>(&self, snapshot: &'s MinerSnapshot, own_hotkey: &str) -> Vec<&'s Miner> {
        snapshot
            .serving()
            .filter(|m| m.hotkey != own_hotkey)
            .filter(|m| ip_allowed(m.ip, &self.allowlist))
            .collect()
    }

    /// The hotkeys of the miners [`Self::select`] may pick, whose health it needs.
    pub fn candidates(&self, snapshot: &MinerSnapshot, own_hotkey: &str) -> Vec<String> {
        self.eligible(snapshot, own_hotkey)
            .into_iter()
            .map(|m| m.hotkey.clone())
            .collect()
    }

    /// Also accepts miners at non-public addresses inside these networks.
    pub fn with_allowlist(mut self, allowlist: Vec<ipnet::IpNet>) -> Self {
        self.allowlist = allowlist;
        self
    }

    /// Up to `n` miners to query. `health` holds the records known for the eligible miners:
    /// backed-off miners are left out (and only fill slots nobody else can), and the stake and
    /// incentive rankings are scaled by each miner's [`MinerHealth::weight`].
    pub fn select<'a>(
        &self,
        snapshot: &'a MinerSnapshot,
        own_hotkey: &str,
        n: usize,
        health: &HashMap<String, MinerHealth>,
        now: Millis,
    ) -> Vec<&'a Miner> {
        let (mut eligible, mut resting): (Vec<&Miner>, Vec<&Miner>) = self
            .eligible(snapshot, own_hotkey)
            .into_iter()
            .partition(|m| !health.get(&m.hotkey).is_some_and(|h| h.backed_off(now)));
        // Last resort: miners whose back-off ends soonest.
        resting.sort_by_key(|m| health.get(&m.hotkey).map_or(0, |h| h.backoff_until));
        let fill = |mut picked: Vec<&'a Miner>, resting: Vec<&'a Miner>| {
            let missing = n.saturating_sub(picked.len());
            picked.extend(resting.into_iter().take(missing));
            picked
        };
        if eligible.len() <= n {
            eligible.sort_by_key(|m| m.uid);
            return fill(eligible, resting);
        }
        let weight = |m: &Miner| health.get(&m.hotkey).map_or(1.0, MinerHealth::weight);
        match self.policy {
            SelectionPolicy::Stake => eligible.sort_by(|a, b| {
                (b.stake * weight(b))
                    .total_cmp(&(a.stake * weight(a)))
                    .then(a.uid.cmp(&b.uid))
            }),
            SelectionPolicy::Incentive => eligible.sort_by(|a, b| {
                (b.incentive * weight(b))
                    .total_cmp(&(a.incentive * weight(a)))
                    .then((b.stake * weight(b)).total_cmp(&(a.stake * weight(a))))
                    .then(a.uid.cmp(&b.uid))
            }),
            SelectionPolicy::RoundRobin => {
                eligible.sort_by_key(|m| m.uid);
                let start = self.cursor.fetch_add(n, Ordering::Relaxed) % eligible.len();
                eligible.rotate_left(start);
            }
        }
        let explore = ((n as f64) * self.exploration).round() as usize;
        let ranked = n - explore.min(n);
        let (chosen, rest) = eligible.split_at_mut(ranked);
        let mut picked: Vec<&Miner> = chosen.to_vec();
        rest.shuffle(&mut rand::rng());
        picked.extend(rest.iter().take(n - ranked));
        picked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> MinerSnapshot {
        let miners = (0..10u16)
            .map(|uid| Miner {
                uid,
                hotkey: format!("hk{uid}"),
                ip: if uid == 9 {
                    "0.0.0.0".parse().unwrap()
                } else {
                    "1.2.3.1".parse().unwrap()
                },
                port: 8000 + uid,
                stake: f64::from(uid) * 10.0,
                incentive: f64::from(10 - uid) / 10.0,
                chain: None,
            })
            .collect();
        MinerSnapshot {
            netuid: 1,
            network: "test".into(),
            miners,
            taken_at: 0,
            block: None,
        }
    }

    fn uids(miners: &[&Miner]) -> Vec<u16> {
        miners.iter().map(|m| m.uid).collect()
    }

    #[test]
    fn stake_and_incentive_rank_serving_miners_and_skip_ourselves() {
        let s = snapshot();
        let by_stake = Selector::new(SelectionPolicy::Stake, 0.0);
        assert_eq!(
            uids(&by_stake.select(&s, "hk8", 3, &HashMap::new(), 0)),
            vec![7, 6, 5],
            "uid 9 serves no axon, uid 8 is us"
        );
        let by_incentive = Selector::new(SelectionPolicy::Incentive, 0.0);
        assert_eq!(
            uids(&by_incentive.select(&s, "none", 3, &HashMap::new(), 0)),
            vec![0, 1, 2]
        );
    }

    #[test]
    fn round_robin_reaches_every_miner_in_turn() {
        let s = snapshot();
        let rr = Selector::new(SelectionPolicy::RoundRobin, 0.0);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..3 {
            seen.extend(uids(&rr.select(&s, "none", 3, &HashMap::new(), 0)));
        }
        assert_eq!(
            seen.into_iter().collect::<Vec<_>>(),
            (0..9).collect::<Vec<_>>()
        );
    }

    #[test]
    fn exploration_gives_low_ranked_miners_a_slot() {
        let s = snapshot();
        let explorer = Selector::new(SelectionPolicy::Stake, 0.4);
        let mut outside_top = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let picked = uids(&explorer.select(&s, "none", 5, &HashMap::new(), 0));
            assert_eq!(picked.len(), 5);
            assert_eq!(&picked[..3], &[8, 7, 6], "ranked slots come first");
            outside_top.extend(picked[3..].iter().copied());
        }
        assert!(
            outside_top.len() >= 4 && outside_top.iter().all(|u| *u <= 5),
            "{outside_top:?}"
        );
    }

    #[test]
    fn with_few_miners_every_eligible_one_is_queried() {
        let s = snapshot();
        let picked =
            Selector::new(SelectionPolicy::Stake, 0.5).select(&s, "none", 20, &HashMap::new(), 0);
        assert_eq!(uids(&picked), (0..9).collect::<Vec<_>>());
        assert!(SelectionPolicy::parse("round-robin").is_ok());
        assert!(SelectionPolicy::parse("random").is_err());
    }

    #[test]
    fn private_addresses_need_the_allowlist() {
        let mut s = snapshot();
        s.miners[0].ip = "127.0.0.1".parse().unwrap();
        s.miners[1].ip = "10.1.2.3".parse().unwrap();
        s.miners[2].ip = "fd00::7".parse().unwrap();
        let public_only = Selector::new(SelectionPolicy::Stake, 0.0);
        let uids: Vec<u16> = public_only
            .select(&s, "none", 20, &HashMap::new(), 0)
            .iter()
            .map(|m| m.uid)
            .collect();
        assert_eq!(uids, vec![3, 4, 5, 6, 7, 8]);
        let with_loopback = Selector::new(SelectionPolicy::Stake, 0.0)
            .with_allowlist(vec!["127.0.0.0/8".parse().unwrap()]);
        let uids: Vec<u16> = with_loopback
            .select(&s, "none", 20, &HashMap::new(), 0)
            .iter()
            .map(|m| m.uid)
            .collect();
        assert_eq!(uids, vec![0, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn backed_off_miners_are_left_out_and_unreliable_ones_ranked_lower() {
        let s = snapshot();
        let by_stake = Selector::new(SelectionPolicy::Stake, 0.0);
        let mut health = HashMap::new();
        // uid 8 (the most stake) keeps failing: backed off until t = 1000.
        let mut failing = MinerHealth::new("hk8");
        for _ in 0..3 {
            failing.observe(crate::domain::Outcome::Timeout, 10.0, None, 0);
        }
        health.insert("hk8".to_owned(), failing);
        // uid 7 keeps half its answers invalid: its stake counts for less than uid 5's.
        let mut flaky = MinerHealth::new("hk7");
        flaky.observe(crate::domain::Outcome::Success, 10.0, Some(0.9), 0);
        flaky.observe(crate::domain::Outcome::InvalidAnswer, 10.0, None, 0);
        flaky.observe(crate::domain::Outcome::InvalidAnswer, 10.0, None, 0);
        health.insert("hk7".to_owned(), flaky);
        assert_eq!(
            uids(&by_stake.select(&s, "none", 3, &health, 1)),
            vec![6, 5, 7]
        );
        // Once the back-off is over, uid 8 is tried again (ranked by its poor record).
        assert!(!uids(&by_stake.select(&s, "none", 8, &health, 1)).contains(&8));
        let later = uids(&by_stake.select(&s, "none", 8, &health, 40_000));
        assert!(later.contains(&8) && !later.contains(&0), "{later:?}");
        // Nobody else left: a backed-off miner still fills the slot.
        assert_eq!(uids(&by_stake.select(&s, "none", 9, &health, 1)).len(), 9);
    }
}
