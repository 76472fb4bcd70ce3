//! Typed configuration, read once at start.
//!
//! Names follow the old proxy where it had one (`BT_NETUID`, `MAX_CONCURRENT_TASKS`, …). Every
//! missing or invalid value is reported in a single error, so an operator fixes them in one pass.

use std::fmt;
use std::time::Duration;

use ipnet::IpNet;

/// A secret string (a hotkey seed or URI) that never prints.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Settings shared by the API, the worker and the local runtime.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `BT_NETUID`: the subnet served.
    pub netuid: u16,
    /// `BT_NETWORK`: finney, test, local or a ws(s):// URL.
    pub network: String,
    /// `BT_WALLET_NAME`: wallet directory name.
    pub wallet_name: String,
    /// `BT_WALLET_HOTKEY`: hotkey file name.
    pub wallet_hotkey: String,
    /// `BT_WALLET_PATH`: where wallets live (default `~/.bittensor/wallets`).
    pub wallet_path: Option<std::path::PathBuf>,
    /// `BT_HOTKEY_URI`: the hotkey as a secret URI, mnemonic or seed. Unset, the local runtime
    /// uses the dev key `//Alice`; the Lambdas refuse to start without a real key.
    pub hotkey_uri: Option<Secret>,
    /// `MAX_CONCURRENT_TASKS`: tasks one process works on at once.
    pub max_concurrent_tasks: usize,
    /// `TASK_TIMEOUT`: the deadline of one attempt, miner queries included.
    pub task_timeout: Duration,
    /// `MAX_MINERS_PER_REQUEST`: miners queried per attempt.
    pub max_miners_per_request: usize,
    /// `REQUIRED_ANSWERS`: valid answers after which an attempt stops waiting (3, at most
    /// `MAX_MINERS_PER_REQUEST`).
    pub required_answers: usize,
    /// `HEDGE_AFTER`: the share of the deadline after which, with fewer than `REQUIRED_ANSWERS`
    /// valid answers in, extra miners are queried (0.5; 1 disables hedging).
    pub hedge_after: f64,
    /// `HEDGE_MINERS`: how many extra miners a hedge queries (2).
    pub hedge_miners: usize,
    /// `SELECTION_POLICY`: `stake` (default), `incentive` or `round_robin`.
    pub selection_policy: crate::worker::SelectionPolicy,
    /// `SELECTION_EXPLORATION`: share of the slots given to random miners, in [0, 1] (0.2).
    pub selection_exploration: f64,
    /// `ACCURACY_WEIGHT`.
    pub accuracy_weight: f64,
    /// `SPEED_WEIGHT`.
    pub speed_weight: f64,
    /// `MAX_ATTEMPTS`: tries before a task fails.
    pub max_attempts: u32,
    /// `SYNAPSE_NAME`: the synapse class name miners serve.
    pub synapse_name: String,
    /// `METAGRAPH_REFRESH`: seconds between reads of the metagraph from the chain (300).
    pub metagraph_refresh: Duration,
    /// `MINER_PROTOCOL`: `axon` (default) or `btauth`.
    pub miner_protocol: crate::bittensor::MinerProtocol,
    /// `MINER_PATH`: the request path of `btauth` miners (default `/{SYNAPSE_NAME}`).
    pub miner_path: Option<String>,
    /// `MINER_ALLOWLIST`: networks (CIDR) whose non-public miner addresses may still be called;
    /// by default only public addresses are.
    pub miner_allowlist: Vec<IpNet>,
    /// `DENDRITE_VERSION`: the SDK version integer sent to miners.
    pub dendrite_version: u64,
    /// `MAX_RESPONSE_BYTES`: the most read from one miner's answer.
    pub max_response_bytes: usize,
    /// `CALLBACK_ALLOWLIST`: networks callbacks may reach although private.
    pub callback_allowlist: Vec<IpNet>,
    /// `CALLBACK_MAX_ATTEMPTS`: delivery tries per callback.
    pub callback_max_attempts: u32,
    /// `SCORING_MODE`: `consensus` (default), `reference` or `auto`.
    pub scoring_mode: crate::scoring::Mode,
    /// `REFERENCE_URL`: a trusted pipeline speaking the `AudioTask` contract.
    pub reference_url: Option<url::Url>,
    /// `REFERENCE_ASR_URL`: an OpenAI-compatible `/v1/audio/transcriptions` endpoint.
    pub reference_asr_url: Option<url::Url>,
    /// `REFERENCE_ASR_MODEL`: the model name sent to it (`whisper-1`).
    pub reference_asr_model: String,
    /// `REFERENCE_API_KEY`: bearer token for the reference endpoints.
    pub reference_api_key: Option<Secret>,
    /// `ACCURACY_FLOOR`: answers below it never win; with none above it the attempt fails
    /// and is retried (0.3).
    pub accuracy_floor: f64,
    /// `SUMMARY_COMPRESSION`: accepted summary length over source length, `min,max`
    /// (`0.05,0.6`).
    pub summary_compression: (f64, f64),
}

/// Every problem found in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigError(pub Vec<String>);

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads settings through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut r = Reader {
            lookup: &lookup,
            problems: Vec::new(),
        };
        let settings = Settings {
            netuid: r.parse("BT_NETUID", 0u16),
            network: r.string("BT_NETWORK", "finney"),
            wallet_name: r.string("BT_WALLET_NAME", "default"),
            wallet_hotkey: r.string("BT_WALLET_HOTKEY", "default"),
            wallet_path: r.raw("BT_WALLET_PATH").map(std::path::PathBuf::from),
            hotkey_uri: r.raw("BT_HOTKEY_URI").map(Secret::new),
            max_concurrent_tasks: r.parse("MAX_CONCURRENT_TASKS", 10usize),
            task_timeout: Duration::from_secs_f64(r.parse("TASK_TIMEOUT", 30.0f64).max(0.0)),
            max_miners_per_request: r.parse("MAX_MINERS_PER_REQUEST", 5usize),
            required_answers: r.parse("REQUIRED_ANSWERS", 3usize),
            hedge_after: r.parse("HEDGE_AFTER", 0.5f64),
            hedge_miners: r.parse("HEDGE_MINERS", 2usize),
            selection_policy: r.choice(
                "SELECTION_POLICY",
                crate::worker::SelectionPolicy::Stake,
                crate::worker::SelectionPolicy::parse,
            ),
            selection_exploration: r.parse("SELECTION_EXPLORATION", 0.2f64),
            accuracy_weight: r.parse("ACCURACY_WEIGHT", 0.7f64),
            speed_weight: r.parse("SPEED_WEIGHT", 0.3f64),
            max_attempts: r.parse("MAX_ATTEMPTS", 3u32),
            synapse_name: r.string("SYNAPSE_NAME", "AudioTask"),
            metagraph_refresh: Duration::from_secs_f64(
                r.parse("METAGRAPH_REFRESH", 300.0f64).clamp(1.0, 86_400.0),
            ),
            miner_protocol: r.choice(
                "MINER_PROTOCOL",
                crate::bittensor::MinerProtocol::default(),
                crate::bittensor::MinerProtocol::parse,
            ),
            miner_path: r.raw("MINER_PATH"),
            miner_allowlist: r.list("MINER_ALLOWLIST"),
            dendrite_version: r.parse("DENDRITE_VERSION", 10_005_000u64),
            max_response_bytes: r.parse("MAX_RESPONSE_BYTES", 64 * 1024 * 1024usize),
            callback_allowlist: r.list("CALLBACK_ALLOWLIST"),
            callback_max_attempts: r.parse("CALLBACK_MAX_ATTEMPTS", 3u32),
            scoring_mode: r.choice(
                "SCORING_MODE",
                crate::scoring::Mode::default(),
                crate::scoring::Mode::parse,
            ),
            reference_url: r.url("REFERENCE_URL"),
            reference_asr_url: r.url("REFERENCE_ASR_URL"),
            reference_asr_model: r.string("REFERENCE_ASR_MODEL", "whisper-1"),
            reference_api_key: r.raw("REFERENCE_API_KEY").map(Secret::new),
            accuracy_floor: r.parse("ACCURACY_FLOOR", 0.3f64),
            summary_compression: r.range("SUMMARY_COMPRESSION", (0.05, 0.6)),
        };
        let mut problems = r.problems;
        problems.extend(settings.check());
        if problems.is_empty() {
            Ok(settings)
        } else {
            Err(ConfigError(problems))
        }
    }

    /// Cross-field rules. Returns one line per broken rule.
    pub fn check(&self) -> Vec<String> {
        let mut p = Vec::new();
        for (name, w) in [
            ("ACCURACY_WEIGHT", self.accuracy_weight),
            ("SPEED_WEIGHT", self.speed_weight),
        ] {
            if !(0.0..=1.0).contains(&w) {
                p.push(format!("{name} must be between 0 and 1, got {w}"));
            }
        }
        if ((self.accuracy_weight + self.speed_weight) - 1.0).abs() > 1e-6 {
            p.push(format!(
                "ACCURACY_WEIGHT + SPEED_WEIGHT must sum to 1, got {} + {} = {}",
                self.accuracy_weight,
                self.speed_weight,
                self.accuracy_weight + self.speed_weight
            ));
        }
        if self.max_concurrent_tasks == 0 || self.max_concurrent_tasks > 1024 {
            p.push("MAX_CONCURRENT_TASKS must be between 1 and 1024".into());
        }
        if self.max_miners_per_request == 0 || self.max_miners_per_request > 64 {
            p.push("MAX_MINERS_PER_REQUEST must be between 1 and 64".into());
        }
        if self.task_timeout < Duration::from_millis(100)
            || self.task_timeout > Duration::from_secs(900)
        {
            p.push("TASK_TIMEOUT must be between 0.1 and 900 seconds".into());
        }
        if self.required_answers == 0 {
            p.push("REQUIRED_ANSWERS must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.hedge_after) || self.hedge_after.is_nan() {
            p.push("HEDGE_AFTER must be between 0 and 1 (a share of TASK_TIMEOUT)".into());
        }
        if self.hedge_miners > 64 {
            p.push("HEDGE_MINERS must be between 0 and 64".into());
        }
        if !(0.0..=1.0).contains(&self.selection_exploration) {
            p.push("SELECTION_EXPLORATION must be between 0 and 1".into());
        }
        if self.max_attempts == 0 || self.max_attempts > 100 {
            p.push("MAX_ATTEMPTS must be between 1 and 100".into());
        }
        if self.callback_max_attempts == 0 || self.callback_max_attempts > 20 {
            p.push("CALLBACK_MAX_ATTEMPTS must be between 1 and 20".into());
        }
        if self.synapse_name.is_empty()
            || !self
                .synapse_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            p.push("SYNAPSE_NAME must be a non-empty identifier".into());
        }
        if let Some(path) = &self.miner_path
            && (!path.starts_with('/') || path.contains(char::is_whitespace))
        {
            p.push(format!(
                "MINER_PATH must be a path starting with '/', got {path:?}"
            ));
        }
        if !(0.0..=1.0).contains(&self.accuracy_floor) || self.accuracy_floor.is_nan() {
            p.push("ACCURACY_FLOOR must be between 0 and 1".into());
        }
        let (low, high) = self.summary_compression;
        if !(0.0 < low && low < high && high < 1.0) {
            p.push(format!(
                "SUMMARY_COMPRESSION must be min,max with 0 < min < max < 1, got {low},{high}"
            ));
        }
        if self.scoring_mode == crate::scoring::Mode::Reference
            && self.reference_url.is_none()
            && self.reference_asr_url.is_none()
        {
            p.push("SCORING_MODE=reference needs REFERENCE_URL or REFERENCE_ASR_URL".into());
        }
        if self.max_response_bytes < 1024 {
            p.push("MAX_RESPONSE_BYTES must be at least 1024".into());
        }
        p
    }

    /// The request path of `btauth` miners.
    pub fn miner_path(&self) -> String {
        self.miner_path
            .clone()
            .unwrap_or_else(|| format!("/{}", self.synapse_name))
    }

    /// The hotkey for local use: the configured one, or the dev key `//Alice`.
    pub fn local_hotkey(&self) -> Secret {
        self.hotkey_uri
            .clone()
            .unwrap_or_else(|| Secret::new("//Alice"))
    }

    /// How long a worker holds a task: the attempt's deadline plus room to store the result
    /// (half the deadline, at least 5 s).
    pub fn lease(&self) -> Duration {
        self.task_timeout + (self.task_timeout / 2).max(Duration::from_secs(5))
    }
}

struct Reader<'a, F: Fn(&str) -> Option<String>> {
    lookup: &'a F,
    problems: Vec<String>,
}

impl<F: Fn(&str) -> Option<String>> Reader<'_, F> {
    fn raw(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.trim().is_empty())
    }

    fn string(&mut self, name: &str, default: &str) -> String {
        self.raw(name).unwrap_or_else(|| default.to_owned())
    }

    fn parse<T: std::str::FromStr>(&mut self, name: &str, default: T) -> T {
        match self.raw(name) {
            None => default,
            Some(v) => v.trim().parse().unwrap_or_else(|_| {
                self.problems.push(format!(
                    "{name}={v:?} is not a valid {}",
                    std::any::type_name::<T>()
                ));
                default
            }),
        }
    }

    /// One of a set of named choices, parsed by `parse`; `default` when unset or invalid.
    fn choice<T, E: fmt::Display>(
        &mut self,
        name: &str,
        default: T,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> T {
        match self.raw(name) {
            None => default,
            Some(v) => parse(&v).unwrap_or_else(|e| {
                self.problems.push(format!("{name}: {e}"));
                default
            }),
        }
    }

    fn url(&mut self, name: &str) -> Option<url::Url> {
        let raw = self.raw(name)?;
        match url::Url::parse(raw.trim()) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.password().is_none() => Some(u),
            _ => {
                self.problems
                    .push(format!("{name} must be an http(s) URL without credentials"));
                None
            }
        }
    }

    fn range(&mut self, name: &str, default: (f64, f64)) -> (f64, f64) {
        let Some(raw) = self.raw(name) else {
            return default;
        };
        let parts: Vec<Option<f64>> = raw.split(',').map(|p| p.trim().parse().ok()).collect();
        match parts.as_slice() {
            [Some(low), Some(high)] => (*low, *high),
            _ => {
                self.problems
                    .push(format!("{name}={raw:?} must be two numbers, min,max"));
                default
            }
        }
    }

    fn list<T: std::str::FromStr>(&mut self, name: &str) -> Vec<T> {
        let Some(raw) = self.raw(name) else {
            return Vec::new();
        };
        raw.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .filter_map(|item| {
                item.parse().ok().or_else(|| {
                    self.problems
                        .push(format!("{name}: {item:?} is not a valid network (CIDR)"));
                    None
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        Settings::from_lookup(|k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_string())
        })
    }

    #[test]
    fn defaults_match_the_old_proxy() {
        let s = with(&[]).unwrap();
        assert_eq!(s.max_miners_per_request, 5);
        assert_eq!(s.accuracy_weight, 0.7);
        assert_eq!(s.speed_weight, 0.3);
        assert_eq!(s.max_attempts, 3);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = with(&[
            ("ACCURACY_WEIGHT", "0.9"),
            ("MAX_CONCURRENT_TASKS", "many"),
            ("CALLBACK_ALLOWLIST", "10.0.0.0/8, nonsense"),
        ])
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("sum to 1"), "{text}");
        assert!(text.contains("MAX_CONCURRENT_TASKS"), "{text}");
        assert!(text.contains("nonsense"), "{text}");
        assert_eq!(err.0.len(), 3, "{text}");
    }

    #[test]
    fn scoring_settings_are_checked() {
        let s = with(&[]).unwrap();
        assert_eq!(s.scoring_mode, crate::scoring::Mode::Consensus);
        assert_eq!(s.accuracy_floor, 0.3);
        assert_eq!(s.summary_compression, (0.05, 0.6));
        let err = with(&[
            ("SCORING_MODE", "reference"),
            ("ACCURACY_FLOOR", "1.5"),
            ("SUMMARY_COMPRESSION", "0.7,0.2"),
            ("REFERENCE_ASR_URL", "ftp://x"),
        ])
        .unwrap_err()
        .to_string();
        for needle in [
            "needs REFERENCE_URL",
            "ACCURACY_FLOOR",
            "SUMMARY_COMPRESSION",
            "REFERENCE_ASR_URL",
        ] {
            assert!(err.contains(needle), "{needle}: {err}");
        }
        let key = with(&[
            ("SCORING_MODE", "auto"),
            ("REFERENCE_URL", "http://127.0.0.1:9/pipeline"),
            ("REFERENCE_API_KEY", "sk-very-secret"),
        ])
        .unwrap();
        assert!(!format!("{key:?}").contains("very-secret"));
    }

    #[test]
    fn the_hotkey_never_prints() {
        let s = with(&[("BT_HOTKEY_URI", "bottom drive obey lake curtain smoke")]).unwrap();
        assert!(!format!("{s:?}").contains("curtain"));
    }
}
