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
pub mod vars;

use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

pub use choices::{AuthMode, MinerProtocol, ScoringMode, SelectionPolicy};
pub use reader::Reader;
pub use secret::Secret;

/// The subnet and the gateway's identity on it.
#[derive(Debug, Clone)]
pub struct ChainSettings {
    /// [`vars::BT_NETUID`].
    pub netuid: u16,
    /// [`vars::BT_NETWORK`].
    pub network: String,
    /// [`vars::BT_WALLET_NAME`].
    pub wallet_name: String,
    /// [`vars::BT_WALLET_HOTKEY`].
    pub wallet_hotkey: String,
    /// [`vars::BT_WALLET_PATH`].
    pub wallet_path: Option<PathBuf>,
    /// [`vars::BT_HOTKEY_URI`].
    pub hotkey_uri: Option<Secret>,
    /// [`vars::METAGRAPH_REFRESH`].
    pub metagraph_refresh: Duration,
}

/// How requests reach miners (the miner client's section).
#[derive(Debug, Clone)]
pub struct MinerClientSettings {
    /// [`vars::MINER_PROTOCOL`].
    pub protocol: MinerProtocol,
    /// [`vars::SYNAPSE_NAME`].
    pub synapse_name: String,
    /// [`vars::MINER_PATH`].
    pub path: Option<String>,
    /// [`vars::DENDRITE_VERSION`].
    pub dendrite_version: u64,
    /// [`vars::MAX_RESPONSE_BYTES`].
    pub max_response_bytes: usize,
    /// [`vars::MAX_ANSWER_MEMORY`].
    pub answer_memory: usize,
    /// [`vars::MAX_INPUT_MEMORY`].
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
    /// [`vars::SELECTION_POLICY`].
    pub policy: SelectionPolicy,
    /// [`vars::SELECTION_EXPLORATION`].
    pub exploration: f64,
    /// [`vars::MAX_MINERS_PER_REQUEST`].
    pub miners_per_request: usize,
    /// [`vars::REQUIRED_ANSWERS`].
    pub required_answers: usize,
    /// [`vars::HEDGE_AFTER`].
    pub hedge_after: f64,
    /// [`vars::HEDGE_MINERS`].
    pub hedge_miners: usize,
    /// [`vars::ESCALATION_MINERS`].
    pub escalation_miners: usize,
    /// [`vars::MINER_ALLOWLIST`].
    pub allowlist: Vec<IpNet>,
    /// [`vars::TASK_TIMEOUT`].
    pub deadline: Duration,
}

/// How answers are weighed (the scorer's section).
#[derive(Debug, Clone, Copy)]
pub struct ScoringSettings {
    /// [`vars::ACCURACY_WEIGHT`].
    pub accuracy_weight: f64,
    /// [`vars::SPEED_WEIGHT`].
    pub speed_weight: f64,
    /// [`vars::ACCURACY_FLOOR`].
    pub accuracy_floor: f64,
    /// [`vars::SUMMARY_COMPRESSION`].
    pub summary_compression: (f64, f64),
    /// [`vars::SCORING_MODE`].
    pub mode: ScoringMode,
    /// `TASK_TIMEOUT`, which caps the speed budget.
    pub deadline: Duration,
}

/// The reference endpoints (their HTTP adapter's section).
#[derive(Debug, Clone)]
pub struct ReferenceSettings {
    /// [`vars::REFERENCE_URL`].
    pub url: Option<url::Url>,
    /// [`vars::REFERENCE_ASR_URL`].
    pub asr_url: Option<url::Url>,
    /// [`vars::REFERENCE_ASR_MODEL`].
    pub asr_model: String,
    /// [`vars::REFERENCE_API_KEY`].
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
    /// [`vars::CALLBACK_ALLOWLIST`].
    pub allowlist: Vec<IpNet>,
    /// [`vars::CALLBACK_MAX_ATTEMPTS`].
    pub max_attempts: u32,
}

/// The worker's own section: retries, leases and concurrency.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// [`vars::MAX_CONCURRENT_TASKS`].
    pub max_concurrent_tasks: usize,
    /// [`vars::TASK_TIMEOUT`].
    pub task_timeout: Duration,
    /// [`vars::MAX_ATTEMPTS`].
    pub max_attempts: u32,
    /// [`vars::WORKER_TIMEOUT`].
    pub invocation_timeout: Option<Duration>,
    /// [`vars::MAX_TASK_AGE`].
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
    /// [`vars::SWEEP_AFTER`].
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
    /// [`vars::CALLBACK_ALLOWLIST`].
    pub callback_allowlist: Vec<IpNet>,
    /// The estimate returned to clients, in seconds (`TASK_TIMEOUT`, at least 1).
    pub estimated_seconds: u64,
    /// Largest audio accepted in a direct multipart upload; larger files go through
    /// `POST /api/v1/uploads`. `None` is the full 50 MiB (the local runtime); a Lambda, whose
    /// event may carry at most 6 MB (base64 included), sets about 4 MB
    /// ([`Self::behind_lambda`]).
    pub max_direct_upload: Option<usize>,
    /// [`vars::OPENAI_WAIT`].
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
    /// [`vars::API_AUTH`].
    pub auth: AuthMode,
    /// [`vars::API_KEY_CACHE`].
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
    /// [`vars::HTTP_HEADER_TIMEOUT`].
    pub header_timeout: Duration,
    /// [`vars::HTTP_BODY_TIMEOUT`].
    pub body_timeout: Duration,
    /// [`vars::HTTP_IDLE_TIMEOUT`].
    pub idle_timeout: Duration,
    /// [`vars::HTTP_MAX_CONNECTIONS`].
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
        use vars::*;
        let mut r = Reader::new(&lookup);
        let task_timeout = r.seconds(&TASK_TIMEOUT);
        let callback_allowlist: Vec<IpNet> = r.networks(&CALLBACK_ALLOWLIST);
        let settings = Settings {
            chain: ChainSettings {
                netuid: r.number(&BT_NETUID),
                network: r.text(&BT_NETWORK),
                wallet_name: r.text(&BT_WALLET_NAME),
                wallet_hotkey: r.text(&BT_WALLET_HOTKEY),
                wallet_path: r.optional(&BT_WALLET_PATH).map(PathBuf::from),
                hotkey_uri: r.optional(&BT_HOTKEY_URI).map(Secret::new),
                metagraph_refresh: r.seconds(&METAGRAPH_REFRESH),
            },
            miner_client: MinerClientSettings {
                protocol: r.choice(&MINER_PROTOCOL, MinerProtocol::parse),
                synapse_name: r.text(&SYNAPSE_NAME),
                path: r.optional(&MINER_PATH),
                dendrite_version: r.number(&DENDRITE_VERSION),
                max_response_bytes: r.number(&MAX_RESPONSE_BYTES),
                answer_memory: r.number(&MAX_ANSWER_MEMORY),
                input_memory: r.number(&MAX_INPUT_MEMORY),
            },
            selection: SelectionSettings {
                policy: r.choice(&SELECTION_POLICY, SelectionPolicy::parse),
                exploration: r.number(&SELECTION_EXPLORATION),
                miners_per_request: r.number(&MAX_MINERS_PER_REQUEST),
                required_answers: r.number(&REQUIRED_ANSWERS),
                hedge_after: r.number(&HEDGE_AFTER),
                hedge_miners: r.number(&HEDGE_MINERS),
                escalation_miners: r.number(&ESCALATION_MINERS),
                allowlist: r.networks(&MINER_ALLOWLIST),
                deadline: task_timeout,
            },
            scoring: ScoringSettings {
                accuracy_weight: r.number(&ACCURACY_WEIGHT),
                speed_weight: r.number(&SPEED_WEIGHT),
                accuracy_floor: r.number(&ACCURACY_FLOOR),
                summary_compression: r.pair(&SUMMARY_COMPRESSION),
                mode: r.choice(&SCORING_MODE, ScoringMode::parse),
                deadline: task_timeout,
            },
            reference: ReferenceSettings {
                url: r.url(&REFERENCE_URL),
                asr_url: r.url(&REFERENCE_ASR_URL),
                asr_model: r.text(&REFERENCE_ASR_MODEL),
                api_key: r.optional(&REFERENCE_API_KEY).map(Secret::new),
            },
            callbacks: CallbackSettings {
                allowlist: callback_allowlist.clone(),
                max_attempts: r.number(&CALLBACK_MAX_ATTEMPTS),
            },
            worker: WorkerSettings {
                max_concurrent_tasks: r.number(&MAX_CONCURRENT_TASKS),
                task_timeout,
                max_attempts: r.number(&MAX_ATTEMPTS),
                max_task_age: r.seconds(&MAX_TASK_AGE),
                invocation_timeout: r.optional_seconds(&WORKER_TIMEOUT),
            },
            submission: SubmissionSettings {
                callback_allowlist,
                estimated_seconds: task_timeout.as_secs().max(1),
                max_direct_upload: None,
                openai_wait: r.seconds(&OPENAI_WAIT),
            },
            sweep: SweepSettings {
                after: r.seconds(&SWEEP_AFTER),
            },
            http: HttpSettings {
                header_timeout: r.seconds(&HTTP_HEADER_TIMEOUT),
                body_timeout: r.seconds(&HTTP_BODY_TIMEOUT),
                idle_timeout: r.seconds(&HTTP_IDLE_TIMEOUT),
                max_connections: r.number(&HTTP_MAX_CONNECTIONS),
            },
            tenancy: TenancySettings {
                auth: r.choice(&API_AUTH, AuthMode::parse),
                key_cache: r.seconds(&API_KEY_CACHE),
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

    /// Rules across variables (each variable's own range is checked as it is read). Returns
    /// one line per broken rule.
    pub fn check(&self) -> Vec<String> {
        let mut p = Vec::new();
        let (scoring, worker, client) = (&self.scoring, &self.worker, &self.miner_client);
        if ((scoring.accuracy_weight + scoring.speed_weight) - 1.0).abs() > 1e-6 {
            p.push(format!(
                "ACCURACY_WEIGHT + SPEED_WEIGHT must sum to 1, got {} + {} = {}",
                scoring.accuracy_weight,
                scoring.speed_weight,
                scoring.accuracy_weight + scoring.speed_weight
            ));
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
    fn every_declared_variable_is_read_and_nothing_else() {
        let asked = std::sync::Mutex::new(std::collections::BTreeSet::new());
        Settings::from_lookup(|k| {
            asked.lock().unwrap().insert(k.to_owned());
            None
        })
        .unwrap();
        let declared: std::collections::BTreeSet<String> =
            vars::ALL.iter().map(|v| v.name.to_owned()).collect();
        assert_eq!(asked.into_inner().unwrap(), declared);
    }

    #[test]
    fn each_choice_declares_its_own_default() {
        use vars::{API_AUTH, Fallback, MINER_PROTOCOL, SCORING_MODE, SELECTION_POLICY};
        let declared = |v: &vars::Var| match v.default {
            Fallback::Value(d) => d,
            other => panic!("{}: {other:?}", v.name),
        };
        assert_eq!(
            MinerProtocol::parse(declared(&MINER_PROTOCOL)),
            Ok(MinerProtocol::default())
        );
        assert_eq!(
            SelectionPolicy::parse(declared(&SELECTION_POLICY)),
            Ok(SelectionPolicy::default())
        );
        assert_eq!(
            ScoringMode::parse(declared(&SCORING_MODE)),
            Ok(ScoringMode::default())
        );
        assert_eq!(
            AuthMode::parse(declared(&API_AUTH)),
            Ok(AuthMode::default())
        );
    }

    #[test]
    fn numbers_outside_a_clamped_range_are_moved_and_others_refused() {
        let s = with(&[("API_KEY_CACHE", "600"), ("OPENAI_WAIT", "0")]).unwrap();
        assert_eq!(s.tenancy.key_cache, Duration::from_secs(60));
        assert_eq!(s.submission.openai_wait, Duration::from_secs(1));
        let err = with(&[
            ("TASK_TIMEOUT", "inf"),
            ("METAGRAPH_REFRESH", "NaN"),
            ("SWEEP_AFTER", "10"),
        ])
        .unwrap_err();
        assert_eq!(err.0.len(), 3, "{err}");
        assert!(
            err.0[2].contains("SWEEP_AFTER must be at least 60"),
            "{err}"
        );
    }

    #[test]
    fn the_hotkey_never_prints() {
        let s = with(&[("BT_HOTKEY_URI", "bottom drive obey lake curtain smoke")]).unwrap();
        assert!(!format!("{s:?}").contains("curtain"));
    }

    #[test]
    fn seconds_too_many_for_a_duration_are_refused_not_a_panic() {
        let err = Settings::from_lookup(|k| (k == "SWEEP_AFTER").then(|| "1e300".to_owned()))
            .unwrap_err();
        assert!(err.to_string().contains("SWEEP_AFTER"), "{err}");
    }
}
