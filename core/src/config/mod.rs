//! Typed configuration, read once at start. A leaf: it imports no component.
//!
//! Names follow the old proxy where it had one (`BT_NETUID`, `MAX_CONCURRENT_TASKS`, …). Every
//! missing or invalid value is reported in a single error, so an operator fixes them in one pass.
//!
//! [`Settings`] is a set of sections, one per component; each component's constructor takes
//! its own section only. Every section is read here, in [`Settings::from_lookup`], which the
//! Lambdas and `taogate serve` both call. Secrets that live elsewhere (Secrets Manager, wallet
//! files) are resolved by `taogate_shared::secrets::resolve` before the settings are shared.

mod choices;
mod reader;
mod secret;

use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

pub use choices::{AuthMode, MinerProtocol, ScoringMode, SelectionPolicy};
use reader::Reader;
pub use secret::Secret;

/// The subnet and the gateway's identity on it.
#[derive(Debug, Clone)]
pub struct ChainSettings {
    /// `BT_NETUID`: the subnet served.
    pub netuid: u16,
    /// `BT_NETWORK`: finney, test, local or a ws(s):// URL.
    pub network: String,
    /// `BT_WALLET_NAME`: wallet directory name.
    pub wallet_name: String,
    /// `BT_WALLET_HOTKEY`: hotkey file name.
    pub wallet_hotkey: String,
    /// `BT_WALLET_PATH`: where wallets live (default `~/.bittensor/wallets`).
    pub wallet_path: Option<PathBuf>,
    /// `BT_HOTKEY_URI`: the hotkey as a secret URI, mnemonic or seed. Unset, the local runtime
    /// uses the wallet's hotkey or the dev key `//Alice`; the Lambdas refuse to start without a
    /// real key.
    pub hotkey_uri: Option<Secret>,
    /// `METAGRAPH_REFRESH`: seconds between reads of the metagraph from the chain (300).
    pub metagraph_refresh: Duration,
}

/// How requests reach miners (the miner client's section).
#[derive(Debug, Clone)]
pub struct MinerClientSettings {
    /// `MINER_PROTOCOL`: `axon` (default) or `btauth`.
    pub protocol: MinerProtocol,
    /// `SYNAPSE_NAME`: the synapse class name miners serve.
    pub synapse_name: String,
    /// `MINER_PATH`: the request path of `btauth` miners (default `/{SYNAPSE_NAME}`).
    pub path: Option<String>,
    /// `DENDRITE_VERSION`: the SDK version integer sent to miners.
    pub dendrite_version: u64,
    /// `MAX_RESPONSE_BYTES`: the most read from one miner's answer.
    pub max_response_bytes: usize,
    /// `MAX_ANSWER_MEMORY`: the most bytes of miner answers one process holds at once, across
    /// every query of every record (192 MiB); a query that would pass it waits for room.
    pub answer_memory: usize,
    /// `MAX_INPUT_MEMORY`: the most bytes of task inputs one process holds at once to send to
    /// miners, each counted as its bytes plus their base64 form, across every record (160
    /// MiB); an attempt whose input would pass it waits for room, and one larger than the
    /// whole budget waits to have it to itself.
    pub input_memory: usize,
}

impl MinerClientSettings {
    /// The request path of `btauth` miners.
    pub fn btauth_path(&self) -> String {
        self.path
            .clone()
            .unwrap_or_else(|| format!("/{}", self.synapse_name))
    }
}

/// Which miners an attempt asks, and how long it waits (the attempt's section).
#[derive(Debug, Clone)]
pub struct SelectionSettings {
    /// `SELECTION_POLICY`: `stake` (default), `incentive` or `round_robin`.
    pub policy: SelectionPolicy,
    /// `SELECTION_EXPLORATION`: share of the slots given to random miners, in [0, 1] (0.2).
    pub exploration: f64,
    /// `MAX_MINERS_PER_REQUEST`: miners queried per attempt.
    pub miners_per_request: usize,
    /// `REQUIRED_ANSWERS`: valid answers after which an attempt stops waiting (3, at most
    /// `MAX_MINERS_PER_REQUEST`).
    pub required_answers: usize,
    /// `HEDGE_AFTER`: the share of the deadline after which, with fewer than `REQUIRED_ANSWERS`
    /// valid answers in, extra miners are queried (0.5; 1 disables hedging).
    pub hedge_after: f64,
    /// `HEDGE_MINERS`: how many extra miners a hedge queries (2).
    pub hedge_miners: usize,
    /// `ESCALATION_MINERS`: how many more miners an attempt may ask when the valid answers
    /// have no majority (2; 0 disables).
    pub escalation_miners: usize,
    /// `MINER_ALLOWLIST`: networks (CIDR) whose non-public miner addresses may still be called;
    /// by default only public addresses are.
    pub allowlist: Vec<IpNet>,
    /// `TASK_TIMEOUT`: the deadline of one attempt, miner queries included.
    pub deadline: Duration,
}

/// How answers are weighed (the scorer's section).
#[derive(Debug, Clone, Copy)]
pub struct ScoringSettings {
    /// `ACCURACY_WEIGHT`.
    pub accuracy_weight: f64,
    /// `SPEED_WEIGHT`.
    pub speed_weight: f64,
    /// `ACCURACY_FLOOR`: answers below it never win; with none above it the attempt fails
    /// and is retried (0.3).
    pub accuracy_floor: f64,
    /// `SUMMARY_COMPRESSION`: accepted summary length over source length, `min,max`
    /// (`0.05,0.6`).
    pub summary_compression: (f64, f64),
    /// `SCORING_MODE`: `consensus` (default), `reference` or `auto`.
    pub mode: ScoringMode,
    /// `TASK_TIMEOUT`, which caps the speed budget.
    pub deadline: Duration,
}

/// The reference endpoints (their HTTP adapter's section).
#[derive(Debug, Clone)]
pub struct ReferenceSettings {
    /// `REFERENCE_URL`: a trusted pipeline speaking the `AudioTask` contract.
    pub url: Option<url::Url>,
    /// `REFERENCE_ASR_URL`: an OpenAI-compatible `/v1/audio/transcriptions` endpoint.
    pub asr_url: Option<url::Url>,
    /// `REFERENCE_ASR_MODEL`: the model name sent to it (`whisper-1`).
    pub asr_model: String,
    /// `REFERENCE_API_KEY`: bearer token for the reference endpoints (or the secret named by
    /// `REFERENCE_API_KEY_SECRET_ARN`, resolved before the settings are shared).
    pub api_key: Option<Secret>,
}

impl ReferenceSettings {
    /// Whether any endpoint is configured.
    pub fn any(&self) -> bool {
        self.url.is_some() || self.asr_url.is_some()
    }
}

/// Callback delivery (the notifier's section).
#[derive(Debug, Clone)]
pub struct CallbackSettings {
    /// `CALLBACK_ALLOWLIST`: networks callbacks may reach although private.
    pub allowlist: Vec<IpNet>,
    /// `CALLBACK_MAX_ATTEMPTS`: delivery tries per callback.
    pub max_attempts: u32,
}

/// The worker's own section: retries, leases and concurrency.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// `MAX_CONCURRENT_TASKS`: tasks one process works on at once.
    pub max_concurrent_tasks: usize,
    /// `TASK_TIMEOUT`: the deadline of one attempt.
    pub task_timeout: Duration,
    /// `MAX_ATTEMPTS`: tries before a task fails.
    pub max_attempts: u32,
    /// `WORKER_TIMEOUT`: the worker Lambda's own timeout in seconds, set by the template. When
    /// set, a lease longer than it is refused at start: the Lambda would be stopped while it
    /// stores an attempt's result.
    pub invocation_timeout: Option<Duration>,
    /// `MAX_TASK_AGE`: how long a task may wait for a miner to be available (no snapshot, no
    /// serving miner) before it fails; waiting uses no attempt (600 s).
    pub max_task_age: Duration,
}

/// What is left before an invocation's deadline for the worker itself: ending an attempt,
/// telling the submitter, answering the runtime. An attempt is claimed only if its whole lease
/// fits before the deadline less this margin.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(2);

impl WorkerSettings {
    /// How long a worker holds a task: the attempt's deadline plus room to store the result
    /// (half the deadline, at least 5 s).
    pub fn lease(&self) -> Duration {
        self.task_timeout + (self.task_timeout / 2).max(Duration::from_secs(5))
    }
}

/// The sweeper's section.
#[derive(Debug, Clone, Copy)]
pub struct SweepSettings {
    /// `SWEEP_AFTER`: how long an unfinished task may stay quiet (pending since accepted,
    /// processing since its lease ran out) before the sweeper sends it a new message (900 s).
    pub after: Duration,
}

/// The direct-upload limit behind a Lambda: its event carries at most 6 MB, and binary bodies
/// arrive base64-encoded (4/3 larger), so about 4 MiB of audio fits with room for the form.
pub const LAMBDA_DIRECT_UPLOAD_BYTES: usize = 4 * 1024 * 1024;

/// Largest accepted audio upload: 50 MiB, the old proxy's limit.
pub const MAX_AUDIO_BYTES: usize = 50 * 1024 * 1024;

/// What the submission routes accept (their section).
#[derive(Debug, Clone, Default)]
pub struct SubmissionSettings {
    /// `CALLBACK_ALLOWLIST`: networks a callback may reach although private.
    pub callback_allowlist: Vec<IpNet>,
    /// The estimate returned to clients, in seconds (`TASK_TIMEOUT`, at least 1).
    pub estimated_seconds: u64,
    /// Largest audio accepted in a direct multipart upload; larger files go through
    /// `POST /api/v1/uploads`. `None` is the full 50 MiB (the local runtime); a Lambda, whose
    /// event may carry at most 6 MB (base64 included), sets about 4 MB
    /// ([`Self::behind_lambda`]).
    pub max_direct_upload: Option<usize>,
    /// `OPENAI_WAIT`: seconds an OpenAI-compatible call waits for its task (25, which fits
    /// API Gateway's 29 s; 1–900).
    pub openai_wait: Duration,
}

impl SubmissionSettings {
    /// The direct upload limit in force.
    pub fn direct_upload_limit(&self) -> usize {
        self.max_direct_upload
            .unwrap_or(MAX_AUDIO_BYTES)
            .min(MAX_AUDIO_BYTES)
    }

    /// The same settings with the direct-upload limit a Lambda event allows.
    pub fn behind_lambda(mut self) -> Self {
        self.max_direct_upload = Some(LAMBDA_DIRECT_UPLOAD_BYTES);
        self
    }
}

/// Who may call the API (the tenancy gate's section).
#[derive(Debug, Clone, Copy)]
pub struct TenancySettings {
    /// `API_AUTH`: `required` or `optional` (the default).
    pub auth: AuthMode,
    /// `API_KEY_CACHE`: seconds a key record read for one request serves later ones (30, at
    /// most 60; 0 reads it every time). A revoked key stops working within this.
    pub key_cache: Duration,
}

/// Every section of the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The subnet and the gateway's identity.
    pub chain: ChainSettings,
    /// The miner client.
    pub miner_client: MinerClientSettings,
    /// Miner selection and the attempt's waiting rules.
    pub selection: SelectionSettings,
    /// Scoring.
    pub scoring: ScoringSettings,
    /// Reference endpoints.
    pub reference: ReferenceSettings,
    /// Callback delivery.
    pub callbacks: CallbackSettings,
    /// The worker.
    pub worker: WorkerSettings,
    /// The submission routes.
    pub submission: SubmissionSettings,
    /// The sweeper.
    pub sweep: SweepSettings,
    /// The local HTTP server (`taogate serve`).
    pub http: HttpSettings,
    /// API keys.
    pub tenancy: TenancySettings,
}

/// How `taogate serve` treats connections (on AWS, API Gateway does this).
#[derive(Debug, Clone, Copy)]
pub struct HttpSettings {
    /// `HTTP_HEADER_TIMEOUT`: a request's head must arrive in full within this, counted from
    /// when the server waits for it (the connection opened, or the previous response was sent:
    /// so it also ends idle keep-alive connections) (10 s).
    pub header_timeout: Duration,
    /// `HTTP_BODY_TIMEOUT`: a request's body must arrive in full within this (120 s).
    pub body_timeout: Duration,
    /// `HTTP_IDLE_TIMEOUT`: a connection on which no byte moves either way for this long is
    /// closed, whatever it is doing (60 s).
    pub idle_timeout: Duration,
    /// `HTTP_MAX_CONNECTIONS`: open connections at most; past it a new one is answered 503 and
    /// closed (1024).
    pub max_connections: usize,
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
        let task_timeout = Duration::from_secs_f64(r.parse("TASK_TIMEOUT", 30.0f64).max(0.0));
        let callback_allowlist: Vec<IpNet> = r.list("CALLBACK_ALLOWLIST");
        let settings = Settings {
            chain: ChainSettings {
                netuid: r.parse("BT_NETUID", 0u16),
                network: r.string("BT_NETWORK", "finney"),
                wallet_name: r.string("BT_WALLET_NAME", "default"),
                wallet_hotkey: r.string("BT_WALLET_HOTKEY", "default"),
                wallet_path: r.raw("BT_WALLET_PATH").map(PathBuf::from),
                hotkey_uri: r.raw("BT_HOTKEY_URI").map(Secret::new),
                metagraph_refresh: Duration::from_secs_f64(
                    r.parse("METAGRAPH_REFRESH", 300.0f64).clamp(1.0, 86_400.0),
                ),
            },
            miner_client: MinerClientSettings {
                protocol: r.choice(
                    "MINER_PROTOCOL",
                    MinerProtocol::default(),
                    MinerProtocol::parse,
                ),
                synapse_name: r.string("SYNAPSE_NAME", "AudioTask"),
                path: r.raw("MINER_PATH"),
                dendrite_version: r.parse("DENDRITE_VERSION", 10_005_000u64),
                max_response_bytes: r.parse("MAX_RESPONSE_BYTES", 64 * 1024 * 1024usize),
                answer_memory: r.parse("MAX_ANSWER_MEMORY", 192 * 1024 * 1024usize),
                input_memory: r.parse("MAX_INPUT_MEMORY", 160 * 1024 * 1024usize),
            },
            selection: SelectionSettings {
                policy: r.choice(
                    "SELECTION_POLICY",
                    SelectionPolicy::default(),
                    SelectionPolicy::parse,
                ),
                exploration: r.parse("SELECTION_EXPLORATION", 0.2f64),
                miners_per_request: r.parse("MAX_MINERS_PER_REQUEST", 5usize),
                required_answers: r.parse("REQUIRED_ANSWERS", 3usize),
                hedge_after: r.parse("HEDGE_AFTER", 0.5f64),
                hedge_miners: r.parse("HEDGE_MINERS", 2usize),
                escalation_miners: r.parse("ESCALATION_MINERS", 2usize),
                allowlist: r.list("MINER_ALLOWLIST"),
                deadline: task_timeout,
            },
            scoring: ScoringSettings {
                accuracy_weight: r.parse("ACCURACY_WEIGHT", 0.7f64),
                speed_weight: r.parse("SPEED_WEIGHT", 0.3f64),
                accuracy_floor: r.parse("ACCURACY_FLOOR", 0.3f64),
                summary_compression: r.range("SUMMARY_COMPRESSION", (0.05, 0.6)),
                mode: r.choice("SCORING_MODE", ScoringMode::default(), ScoringMode::parse),
                deadline: task_timeout,
            },
            reference: ReferenceSettings {
                url: r.url("REFERENCE_URL"),
                asr_url: r.url("REFERENCE_ASR_URL"),
                asr_model: r.string("REFERENCE_ASR_MODEL", "whisper-1"),
                api_key: r.raw("REFERENCE_API_KEY").map(Secret::new),
            },
            callbacks: CallbackSettings {
                allowlist: callback_allowlist.clone(),
                max_attempts: r.parse("CALLBACK_MAX_ATTEMPTS", 3u32),
            },
            worker: WorkerSettings {
                max_concurrent_tasks: r.parse("MAX_CONCURRENT_TASKS", 10usize),
                task_timeout,
                max_attempts: r.parse("MAX_ATTEMPTS", 3u32),
                max_task_age: Duration::from_secs_f64(r.parse("MAX_TASK_AGE", 600.0f64).max(0.0)),
                invocation_timeout: r
                    .raw("WORKER_TIMEOUT")
                    .map(|_| Duration::from_secs(r.parse("WORKER_TIMEOUT", 0u64))),
            },
            submission: SubmissionSettings {
                callback_allowlist,
                estimated_seconds: task_timeout.as_secs().max(1),
                max_direct_upload: None,
                openai_wait: Duration::from_secs_f64(
                    r.parse("OPENAI_WAIT", 25.0f64).clamp(1.0, 900.0),
                ),
            },
            sweep: SweepSettings {
                after: Duration::from_secs_f64(r.parse("SWEEP_AFTER", 900.0f64).max(0.0)),
            },
            http: HttpSettings {
                header_timeout: Duration::from_secs_f64(
                    r.parse("HTTP_HEADER_TIMEOUT", 10.0f64).max(0.0),
                ),
                body_timeout: Duration::from_secs_f64(
                    r.parse("HTTP_BODY_TIMEOUT", 120.0f64).max(0.0),
                ),
                idle_timeout: Duration::from_secs_f64(
                    r.parse("HTTP_IDLE_TIMEOUT", 60.0f64).max(0.0),
                ),
                max_connections: r.parse("HTTP_MAX_CONNECTIONS", 1024usize),
            },
            tenancy: TenancySettings {
                auth: r.choice("API_AUTH", AuthMode::default(), AuthMode::parse),
                key_cache: Duration::from_secs_f64(
                    r.parse("API_KEY_CACHE", 30.0f64).clamp(0.0, 60.0),
                ),
            },
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
        let (scoring, selection, worker) = (&self.scoring, &self.selection, &self.worker);
        for (name, w) in [
            ("ACCURACY_WEIGHT", scoring.accuracy_weight),
            ("SPEED_WEIGHT", scoring.speed_weight),
        ] {
            if !(0.0..=1.0).contains(&w) {
                p.push(format!("{name} must be between 0 and 1, got {w}"));
            }
        }
        if ((scoring.accuracy_weight + scoring.speed_weight) - 1.0).abs() > 1e-6 {
            p.push(format!(
                "ACCURACY_WEIGHT + SPEED_WEIGHT must sum to 1, got {} + {} = {}",
                scoring.accuracy_weight,
                scoring.speed_weight,
                scoring.accuracy_weight + scoring.speed_weight
            ));
        }
        if worker.max_concurrent_tasks == 0 || worker.max_concurrent_tasks > 1024 {
            p.push("MAX_CONCURRENT_TASKS must be between 1 and 1024".into());
        }
        if selection.miners_per_request == 0 || selection.miners_per_request > 64 {
            p.push("MAX_MINERS_PER_REQUEST must be between 1 and 64".into());
        }
        if worker.task_timeout < Duration::from_millis(100)
            || worker.task_timeout > Duration::from_secs(900)
        {
            p.push("TASK_TIMEOUT must be between 0.1 and 900 seconds".into());
        }
        // A lease that cannot fit a whole invocation (less the worker's own margin) could
        // never be claimed: every delivery would be handed back, uncounted, forever.
        if let Some(limit) = worker.invocation_timeout
            && worker.lease() + DEADLINE_MARGIN > limit
        {
            p.push(format!(
                "TASK_TIMEOUT={} s needs a worker timeout of at least {} s (the attempt, room \
                 to store its result and {} s to answer), but WORKER_TIMEOUT is {} s",
                worker.task_timeout.as_secs_f64(),
                (worker.lease() + DEADLINE_MARGIN).as_secs_f64().ceil(),
                DEADLINE_MARGIN.as_secs(),
                limit.as_secs()
            ));
        }
        if worker.max_task_age < Duration::from_secs(1)
            || worker.max_task_age > Duration::from_secs(7 * 24 * 3600)
        {
            p.push("MAX_TASK_AGE must be between 1 second and 7 days".into());
        }
        if self.sweep.after < Duration::from_secs(60) {
            p.push("SWEEP_AFTER must be at least 60 seconds".into());
        }
        let http = &self.http;
        for (name, value) in [
            ("HTTP_HEADER_TIMEOUT", http.header_timeout),
            ("HTTP_BODY_TIMEOUT", http.body_timeout),
            ("HTTP_IDLE_TIMEOUT", http.idle_timeout),
        ] {
            if !(Duration::from_millis(100)..=Duration::from_secs(3600)).contains(&value) {
                p.push(format!("{name} must be between 0.1 and 3600 seconds"));
            }
        }
        if http.max_connections == 0 {
            p.push("HTTP_MAX_CONNECTIONS must be at least 1".into());
        }
        if selection.required_answers == 0 {
            p.push("REQUIRED_ANSWERS must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&selection.hedge_after) || selection.hedge_after.is_nan() {
            p.push("HEDGE_AFTER must be between 0 and 1 (a share of TASK_TIMEOUT)".into());
        }
        if selection.hedge_miners > 64 {
            p.push("HEDGE_MINERS must be between 0 and 64".into());
        }
        if selection.escalation_miners > 16 {
            p.push("ESCALATION_MINERS must be between 0 and 16".into());
        }
        if !(0.0..=1.0).contains(&selection.exploration) {
            p.push("SELECTION_EXPLORATION must be between 0 and 1".into());
        }
        if worker.max_attempts == 0 || worker.max_attempts > 100 {
            p.push("MAX_ATTEMPTS must be between 1 and 100".into());
        }
        if self.callbacks.max_attempts == 0 || self.callbacks.max_attempts > 20 {
            p.push("CALLBACK_MAX_ATTEMPTS must be between 1 and 20".into());
        }
        let client = &self.miner_client;
        if client.synapse_name.is_empty()
            || !client
                .synapse_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            p.push("SYNAPSE_NAME must be a non-empty identifier".into());
        }
        if let Some(path) = &client.path
            && (!path.starts_with('/') || path.contains(char::is_whitespace))
        {
            p.push(format!(
                "MINER_PATH must be a path starting with '/', got {path:?}"
            ));
        }
        if !(0.0..=1.0).contains(&scoring.accuracy_floor) || scoring.accuracy_floor.is_nan() {
            p.push("ACCURACY_FLOOR must be between 0 and 1".into());
        }
        let (low, high) = scoring.summary_compression;
        if !(0.0 < low && low < high && high < 1.0) {
            p.push(format!(
                "SUMMARY_COMPRESSION must be min,max with 0 < min < max < 1, got {low},{high}"
            ));
        }
        if scoring.mode == ScoringMode::Reference && !self.reference.any() {
            p.push("SCORING_MODE=reference needs REFERENCE_URL or REFERENCE_ASR_URL".into());
        }
        if client.answer_memory < client.max_response_bytes {
            p.push(format!(
                "MAX_ANSWER_MEMORY ({}) must be at least MAX_RESPONSE_BYTES ({}): one answer must fit",
                client.answer_memory, client.max_response_bytes
            ));
        }
        if client.max_response_bytes < 1024 {
            p.push("MAX_RESPONSE_BYTES must be at least 1024".into());
        }
        if client.input_memory < 64 * 1024 {
            p.push(format!(
                "MAX_INPUT_MEMORY ({}) must be at least 65536 (64 KiB)",
                client.input_memory
            ));
        }
        p
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
        assert_eq!(s.selection.miners_per_request, 5);
        assert_eq!(s.scoring.accuracy_weight, 0.7);
        assert_eq!(s.scoring.speed_weight, 0.3);
        assert_eq!(s.worker.max_attempts, 3);
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
        assert_eq!(s.scoring.mode, ScoringMode::Consensus);
        assert_eq!(s.scoring.accuracy_floor, 0.3);
        assert_eq!(s.scoring.summary_compression, (0.05, 0.6));
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
    fn an_attempt_that_cannot_end_inside_the_worker_timeout_is_refused() {
        assert!(with(&[("TASK_TIMEOUT", "30"), ("WORKER_TIMEOUT", "60")]).is_ok());
        let err = with(&[("TASK_TIMEOUT", "50"), ("WORKER_TIMEOUT", "60")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least 77 s"), "{err}");
        // A lease that fits the timeout but not its margin could never be claimed.
        assert!(with(&[("TASK_TIMEOUT", "39.5"), ("WORKER_TIMEOUT", "60")]).is_err());
        assert!(with(&[("TASK_TIMEOUT", "38"), ("WORKER_TIMEOUT", "60")]).is_ok());
        assert!(with(&[("WORKER_TIMEOUT", "soon")]).is_err());
    }

    #[test]
    fn the_hotkey_never_prints() {
        let s = with(&[("BT_HOTKEY_URI", "bottom drive obey lake curtain smoke")]).unwrap();
        assert!(!format!("{s:?}").contains("curtain"));
    }
}
