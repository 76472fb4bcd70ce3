//! Every variable the gateway reads, declared once: its name, default, range and meaning. The
//! reader takes the default and the range from here, and the README's configuration table is
//! [`markdown_table`] of [`ALL`] (a test holds the two together).

use std::fmt::Write as _;

/// What a variable is when it is not set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fallback {
    /// This value, parsed as if it had been set.
    Value(&'static str),
    /// Nothing: the feature it configures is off.
    Unset,
    /// An empty list.
    Empty,
    /// Computed from other settings, as described.
    Derived(&'static str),
    /// Nothing: the process refuses to start without it.
    Required,
}

/// What happens to a number outside a variable's range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outside {
    /// The configuration is refused at start.
    Refused,
    /// The nearest bound is used.
    Clamped,
}

/// The unit a number is given in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A plain count or share.
    None,
    /// Seconds (fractions allowed where the type is a float).
    Seconds,
    /// Bytes.
    Bytes,
}

/// An inclusive range of numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    /// The least value.
    pub low: f64,
    /// The greatest value (`f64::INFINITY` for none).
    pub high: f64,
    /// What a value outside it does.
    pub outside: Outside,
}

/// One environment variable.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Var {
    /// Its name in the environment.
    pub name: &'static str,
    /// Its value when unset.
    pub default: Fallback,
    /// For numbers, the values it may take.
    pub bounds: Option<Bounds>,
    /// What its numbers count.
    pub unit: Unit,
    /// What it means, as the README says it.
    pub doc: &'static str,
}

impl Var {
    /// A variable with `default` and no range.
    pub const fn new(name: &'static str, default: Fallback, doc: &'static str) -> Self {
        Self {
            name,
            default,
            bounds: None,
            unit: Unit::None,
            doc,
        }
    }

    /// The same variable, refused outside `low..=high`.
    pub const fn within(self, low: f64, high: f64) -> Self {
        self.bounded(low, high, Outside::Refused)
    }

    /// The same variable, refused below `low`.
    pub const fn at_least(self, low: f64) -> Self {
        self.bounded(low, f64::INFINITY, Outside::Refused)
    }

    /// The same variable, brought inside `low..=high` when outside it.
    pub const fn clamped(self, low: f64, high: f64) -> Self {
        self.bounded(low, high, Outside::Clamped)
    }

    const fn bounded(mut self, low: f64, high: f64, outside: Outside) -> Self {
        self.bounds = Some(Bounds { low, high, outside });
        self
    }

    /// The same variable, counted in seconds.
    pub const fn seconds(mut self) -> Self {
        self.unit = Unit::Seconds;
        self
    }

    /// The same variable, counted in bytes.
    pub const fn bytes(mut self) -> Self {
        self.unit = Unit::Bytes;
        self
    }

    /// The problem with `value`, when it lies outside a refusing range.
    pub fn refusal(&self, value: f64) -> Option<String> {
        let b = self.bounds.filter(|b| b.outside == Outside::Refused)?;
        if (b.low..=b.high).contains(&value) {
            return None;
        }
        let unit = match self.unit {
            Unit::None => "",
            Unit::Seconds => " seconds",
            Unit::Bytes => " bytes",
        };
        Some(if b.high.is_infinite() {
            format!(
                "{} must be at least {}{unit}, got {value}",
                self.name, b.low
            )
        } else {
            format!(
                "{} must be between {} and {}{unit}, got {value}",
                self.name, b.low, b.high
            )
        })
    }

    /// `value` brought inside a clamping range.
    pub fn clamp(&self, value: f64) -> f64 {
        match self.bounds {
            Some(b) if b.outside == Outside::Clamped => value.clamp(b.low, b.high),
            _ => value,
        }
    }
}

const fn var(name: &'static str, default: &'static str, doc: &'static str) -> Var {
    Var::new(name, Fallback::Value(default), doc)
}

const fn unset(name: &'static str, doc: &'static str) -> Var {
    Var::new(name, Fallback::Unset, doc)
}

const fn empty(name: &'static str, doc: &'static str) -> Var {
    Var::new(name, Fallback::Empty, doc)
}

/// Declares each variable as a constant and lists them all, in order, in [`ALL`].
macro_rules! declare {
    ($($name:ident = $var:expr;)*) => {
        $(
            #[doc = concat!("`", stringify!($name), "`: its `doc` says what it means.")]
            pub const $name: Var = $var;
        )*
        /// Every variable of [`Settings`](super::Settings), in the README's order.
        pub const ALL: &[Var] = &[$($name),*];
    };
}

declare! {
    // The subnet and the gateway's identity on it.
    BT_NETUID = var("BT_NETUID", "0", "subnet served");
    BT_NETWORK = var(
        "BT_NETWORK",
        "finney",
        "`finney`, `test`, `local` or a `ws://`/`wss://` URL",
    );
    BT_WALLET_NAME = var(
        "BT_WALLET_NAME",
        "default",
        "wallet name: the key is read from `<BT_WALLET_PATH>/<BT_WALLET_NAME>/hotkeys/<BT_WALLET_HOTKEY>` \
         (the SDK's JSON keyfile; encrypted keyfiles are refused with instructions)",
    );
    BT_WALLET_HOTKEY = var("BT_WALLET_HOTKEY", "default", "the wallet's hotkey name");
    BT_WALLET_PATH = Var::new(
        "BT_WALLET_PATH",
        Fallback::Derived("`~/.bittensor/wallets`"),
        "where wallets live",
    );
    BT_HOTKEY_URI = unset(
        "BT_HOTKEY_URI",
        "the signing hotkey as a secret URI, mnemonic or hex seed, instead of the wallet (never \
         logged). With neither, `taogate serve` signs with the development key `//Alice` and warns; \
         the Lambdas refuse to start without a real key",
    );
    METAGRAPH_REFRESH = var(
        "METAGRAPH_REFRESH",
        "300",
        "time between reads of the metagraph from the chain (`serve --network`)",
    )
    .clamped(1.0, 86_400.0)
    .seconds();

    // How requests reach miners.
    MINER_PROTOCOL = var(
        "MINER_PROTOCOL",
        "axon",
        "wire protocol to miners: `axon` (the bittensor ≤ 10 dendrite/axon protocol) or `btauth` \
         (`btauth/1` signed HTTP of bittensor ≥ 11)",
    );
    SYNAPSE_NAME = var(
        "SYNAPSE_NAME",
        "AudioTask",
        "the synapse miners serve (an identifier)",
    );
    MINER_PATH = Var::new(
        "MINER_PATH",
        Fallback::Derived("`/SYNAPSE_NAME`"),
        "request path of `btauth` miners (starts with `/`)",
    );
    DENDRITE_VERSION = var(
        "DENDRITE_VERSION",
        "10005000",
        "SDK version integer sent to miners",
    );
    MAX_RESPONSE_BYTES = var(
        "MAX_RESPONSE_BYTES",
        "67108864",
        "most read from one miner answer (the task's own budget is usually far lower: SCORING.md, \
         \"Budgets\")",
    )
    .at_least(1024.0)
    .bytes();
    MAX_ANSWER_MEMORY = var(
        "MAX_ANSWER_MEMORY",
        "201326592",
        "most bytes of miner answers one process holds at once, across all its records; a query \
         past it waits for room (or its deadline). At least `MAX_RESPONSE_BYTES`",
    )
    .bytes();
    MAX_INPUT_MEMORY = var(
        "MAX_INPUT_MEMORY",
        "167772160",
        "most bytes of task inputs one process holds at once to send to miners, each counted with \
         its base64 form (a 50 MiB recording holds about 117 MiB); an attempt past it waits for room \
         within its lease, and one larger than the whole budget waits to have it alone. With \
         `MAX_ANSWER_MEMORY`, it is what bounds the worker Lambda's memory (512 MB)",
    )
    .at_least(65_536.0)
    .bytes();

    // Which miners an attempt asks, and how long it waits.
    SELECTION_POLICY = var(
        "SELECTION_POLICY",
        "stake",
        "how serving miners are ranked: `stake`, `incentive` or `round_robin` (our own hotkey is \
         never queried)",
    );
    SELECTION_EXPLORATION = var(
        "SELECTION_EXPLORATION",
        "0.2",
        "share of the slots given to miners picked at random beyond the ranking, so new miners get \
         tried. Each miner's stored health record (success, latency and score averages) scales its \
         rank, and a miner failing 3 times in a row is backed off for 30 s and up (see \
         ARCHITECTURE.md)",
    )
    .within(0.0, 1.0);
    MAX_MINERS_PER_REQUEST = var("MAX_MINERS_PER_REQUEST", "5", "miners queried per attempt").within(1.0, 64.0);
    REQUIRED_ANSWERS = var(
        "REQUIRED_ANSWERS",
        "3",
        "valid answers after which an attempt stops waiting for slower miners (they show as \
         `cancelled`); at most `MAX_MINERS_PER_REQUEST` count",
    )
    .at_least(1.0);
    HEDGE_AFTER = var(
        "HEDGE_AFTER",
        "0.5",
        "share of `TASK_TIMEOUT` after which, short of `REQUIRED_ANSWERS` valid answers, \
         `HEDGE_MINERS` more miners are queried (`1` disables)",
    )
    .within(0.0, 1.0);
    HEDGE_MINERS = var(
        "HEDGE_MINERS",
        "2",
        "how many more miners a hedge queries",
    )
    .within(0.0, 64.0);
    ESCALATION_MINERS = var(
        "ESCALATION_MINERS",
        "2",
        "when the valid answers of a transcription or summary have no majority (two disagreeing, or \
         one alone), ask up to this many more miners within `TASK_TIMEOUT` before choosing (`0` \
         disables)",
    )
    .within(0.0, 16.0);
    MINER_ALLOWLIST = empty(
        "MINER_ALLOWLIST",
        "CIDRs whose private addresses miners may have (the chain accepts any address; by default \
         only public ones are called). `serve` with simulated miners adds `127.0.0.0/8`",
    );
    TASK_TIMEOUT = var(
        "TASK_TIMEOUT",
        "30",
        "one attempt may take this long, miner queries included",
    )
    .within(0.1, 900.0)
    .seconds();

    // How answers are weighed.
    ACCURACY_WEIGHT = var(
        "ACCURACY_WEIGHT",
        "0.7",
        "weight of accuracy in an answer's score; with `SPEED_WEIGHT` it must sum to 1",
    )
    .within(0.0, 1.0);
    SPEED_WEIGHT = var("SPEED_WEIGHT", "0.3", "weight of speed in an answer's score").within(0.0, 1.0);
    ACCURACY_FLOOR = var(
        "ACCURACY_FLOOR",
        "0.3",
        "answers less accurate than this never win; when none reaches it the attempt is retried \
         ([SCORING.md](SCORING.md))",
    )
    .within(0.0, 1.0);
    SUMMARY_COMPRESSION = var(
        "SUMMARY_COMPRESSION",
        "0.05,0.6",
        "accepted summary length over source length, `min,max` with 0 < min < max < 1",
    );
    SCORING_MODE = var(
        "SCORING_MODE",
        "consensus",
        "what accuracy is measured against: `consensus` (the other answers), `reference` (the \
         endpoints below, consensus when they fail) or `auto`",
    );

    // The reference endpoints.
    REFERENCE_URL = unset(
        "REFERENCE_URL",
        "a trusted pipeline speaking the `AudioTask` contract (JSON `task_type`/`input_data`/\
         `language` → `output_data`): references for transcription and summarization",
    );
    REFERENCE_ASR_URL = unset(
        "REFERENCE_ASR_URL",
        "an OpenAI-compatible `/v1/audio/transcriptions` endpoint: transcription references and TTS \
         intelligibility",
    );
    REFERENCE_ASR_MODEL = var(
        "REFERENCE_ASR_MODEL",
        "whisper-1",
        "the model name sent to `REFERENCE_ASR_URL`",
    );
    REFERENCE_API_KEY = unset(
        "REFERENCE_API_KEY",
        "bearer token for both reference endpoints (never logged); on AWS the secret \
         `REFERENCE_API_KEY_SECRET_ARN`",
    );

    // Callback delivery.
    CALLBACK_ALLOWLIST = empty(
        "CALLBACK_ALLOWLIST",
        "CIDRs callbacks may reach although private, e.g. `10.0.0.0/8`",
    );
    CALLBACK_MAX_ATTEMPTS = var(
        "CALLBACK_MAX_ATTEMPTS",
        "3",
        "delivery tries per callback, each within 5 s (resolving, connecting and the answer's status \
         included), all of them with their back-offs within 20 s and within the worker's or \
         sweeper's invocation",
    )
    .within(1.0, 20.0);

    // The worker: retries, leases and concurrency.
    MAX_CONCURRENT_TASKS = var(
        "MAX_CONCURRENT_TASKS",
        "10",
        "tasks one process works on at once",
    )
    .within(1.0, 1024.0);
    MAX_ATTEMPTS = var("MAX_ATTEMPTS", "3", "tries before a task fails").within(1.0, 100.0);
    MAX_TASK_AGE = var(
        "MAX_TASK_AGE",
        "600",
        "a task may wait this long for a miner when none can be asked (no snapshot yet, or no miner \
         serving at an allowed address). Waiting uses no attempt: the message comes back every 10 s; \
         past this age the task fails, naming how long it waited. `/api/v1/health` says `degraded` \
         with the cause meanwhile, and submissions are still accepted",
    )
    .within(1.0, 604_800.0)
    .seconds();
    WORKER_TIMEOUT = unset(
        "WORKER_TIMEOUT",
        "the worker Lambda's timeout in seconds (the template sets it); a `TASK_TIMEOUT` whose lease \
         (1.5 × it, at least it plus 5 s) plus the worker's 2 s margin does not fit inside it is \
         refused at start (such a lease could never be claimed)",
    );

    // The submission routes and the sweeper.
    OPENAI_WAIT = var(
        "OPENAI_WAIT",
        "25",
        "an OpenAI-compatible call waits this long for its task before answering 504 with the task \
         id (the template sets 25, inside API Gateway's limit)",
    )
    .clamped(1.0, 900.0)
    .seconds();
    SWEEP_AFTER = var(
        "SWEEP_AFTER",
        "900",
        "an unfinished task may stay quiet this long (pending since accepted, processing since its \
         lease ran out) before the sweeper sends it a new message, in case its message was never \
         sent or was lost",
    )
    .at_least(60.0)
    .seconds();

    // `taogate serve`'s connections.
    HTTP_HEADER_TIMEOUT = var(
        "HTTP_HEADER_TIMEOUT",
        "10",
        "`taogate serve`: a request's head must arrive within this, counted from the connection's \
         opening or the previous response (so idle keep-alive connections close then too: give HTTP \
         clients a pool idle timeout below it, or a request may go out on a connection as it closes)",
    )
    .within(0.1, 3600.0)
    .seconds();
    HTTP_BODY_TIMEOUT = var(
        "HTTP_BODY_TIMEOUT",
        "120",
        "`taogate serve`: a request's body must arrive in full within this (408 otherwise)",
    )
    .within(0.1, 3600.0)
    .seconds();
    HTTP_IDLE_TIMEOUT = var(
        "HTTP_IDLE_TIMEOUT",
        "60",
        "`taogate serve`: a connection on which no byte moves either way for this long is closed",
    )
    .within(0.1, 3600.0)
    .seconds();
    HTTP_MAX_CONNECTIONS = var(
        "HTTP_MAX_CONNECTIONS",
        "1024",
        "`taogate serve`: open connections at most; past it a new connection gets a 503 with \
         `retry-after` and is closed. On AWS, API Gateway fronts the functions instead",
    )
    .at_least(1.0);

    // Who may call the API.
    API_AUTH = var(
        "API_AUTH",
        "optional",
        "`required`: every route but health and the docs needs an API key (the template sets it by \
         its `ApiAuth` parameter, `required` by default); `optional`: requests without a key act as \
         the anonymous tenant",
    );
    API_KEY_CACHE = var(
        "API_KEY_CACHE",
        "30",
        "a key record read for one request serves later ones this long (0 reads it every time): a \
         revoked or rotated key stops working within this. Rates and quotas are never cached",
    )
    .clamped(0.0, 60.0)
    .seconds();
}

/// `vars` as a Markdown table: variable, default, range and meaning, one row each.
pub fn markdown_table(vars: &[Var]) -> String {
    let mut out = String::from("| variable | default | range | meaning |\n|---|---|---|---|\n");
    for v in vars {
        let default = match v.default {
            Fallback::Value(d) if v.unit == Unit::Seconds => format!("`{d}` s"),
            Fallback::Value(d) => format!("`{d}`"),
            Fallback::Unset => "unset".to_owned(),
            Fallback::Empty => "empty".to_owned(),
            Fallback::Derived(d) => d.to_owned(),
            Fallback::Required => "required".to_owned(),
        };
        let unit = match v.unit {
            Unit::None => "",
            Unit::Seconds => " s",
            Unit::Bytes => " B",
        };
        let range = match v.bounds {
            None => String::new(),
            Some(b) => {
                let span = if b.high.is_infinite() {
                    format!("≥ {}{unit}", b.low)
                } else {
                    format!("{}–{}{unit}", b.low, b.high)
                };
                match b.outside {
                    Outside::Refused => span,
                    Outside::Clamped => format!("{span}, clamped"),
                }
            }
        };
        let _ = writeln!(out, "| `{}` | {default} | {range} | {} |", v.name, v.doc);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_lies_inside_its_range() {
        for v in ALL {
            if let (Fallback::Value(d), Some(_)) = (v.default, v.bounds) {
                let value: f64 = d.parse().unwrap_or_else(|_| panic!("{}: {d}", v.name));
                assert_eq!(v.refusal(value), None, "{}", v.name);
                assert_eq!(v.clamp(value), value, "{}", v.name);
            }
        }
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<&str> = ALL.iter().map(|v| v.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before);
    }

    #[test]
    fn a_refusing_range_names_the_variable_and_a_clamping_one_moves_the_value() {
        assert_eq!(
            TASK_TIMEOUT.refusal(1000.0).as_deref(),
            Some("TASK_TIMEOUT must be between 0.1 and 900 seconds, got 1000")
        );
        assert_eq!(
            SWEEP_AFTER.refusal(10.0).as_deref(),
            Some("SWEEP_AFTER must be at least 60 seconds, got 10")
        );
        assert_eq!(API_KEY_CACHE.refusal(600.0), None);
        assert_eq!(API_KEY_CACHE.clamp(600.0), 60.0);
        assert_eq!(TASK_TIMEOUT.clamp(1000.0), 1000.0);
    }

    #[test]
    fn the_table_shows_default_range_and_clamping() {
        let table = markdown_table(&[TASK_TIMEOUT, API_KEY_CACHE, REFERENCE_URL]);
        let rows: Vec<&str> = table.lines().collect();
        assert_eq!(rows.len(), 5, "{table}");
        assert!(
            rows[2].starts_with("| `TASK_TIMEOUT` | `30` s | 0.1–900 s | one attempt"),
            "{}",
            rows[2]
        );
        assert!(
            rows[3].starts_with("| `API_KEY_CACHE` | `30` s | 0–60 s, clamped | "),
            "{}",
            rows[3]
        );
        assert!(
            rows[4].starts_with("| `REFERENCE_URL` | unset |  | "),
            "{}",
            rows[4]
        );
    }
}
