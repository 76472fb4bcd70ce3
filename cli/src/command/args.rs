//! The command line: every command, option and default.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use taogate_cli::serve::Backend;

#[derive(Parser)]
#[command(
    name = "taogate",
    version,
    about = "HTTPS gateway to a Bittensor audio subnet"
)]
pub(crate) struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long, global = true, env = "TAOGATE_LOG_JSON")]
    pub(crate) log_json: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Run the API and a worker pool on the embedded backend (SQLite + files).
    Serve {
        /// Listen address.
        #[arg(long, env = "TAOGATE_BIND", default_value = "127.0.0.1:8000")]
        bind: SocketAddr,
        /// Adapters: `embedded` (SQLite + files) or `aws` (DynamoDB, SQS, S3 at the standard
        /// AWS endpoint variables, e.g. LocalStack).
        #[arg(long, env = "TAOGATE_BACKEND", value_enum, default_value = "embedded")]
        backend: Backend,
        /// Where tasks, the queue and blobs are kept (embedded backend).
        #[arg(long, env = "TAOGATE_DATA_DIR", default_value = ".taogate")]
        data_dir: PathBuf,
        /// `sim:N` for a simulated local subnet of N miners, `sim:good,slow,…` for named
        /// behaviours, `chain` for the metagraph of BT_NETUID on BT_NETWORK, or a JSON file of
        /// miners. Default: `chain` when --network is given, else `sim:6`.
        #[arg(long, env = "TAOGATE_MINERS")]
        miners: Option<String>,
        /// Read the miners from this chain: finney, test, local or a ws:// / wss:// URL
        /// (overrides BT_NETWORK; implies `--miners chain`).
        #[arg(long)]
        network: Option<String>,
        /// The subnet to serve (overrides BT_NETUID).
        #[arg(long)]
        netuid: Option<u16>,
        /// Base of URLs handed to clients (audio results); defaults to http://BIND.
        #[arg(long, env = "TAOGATE_PUBLIC_URL")]
        public_url: Option<String>,
        /// How long simulated `slow` miners take to answer, in milliseconds.
        #[arg(long, env = "TAOGATE_SIM_SLOW_MS", default_value_t = 600)]
        sim_slow_ms: u64,
    },
    /// Print a subnet's miners as the chain reports them.
    Metagraph {
        /// The subnet (default BT_NETUID).
        #[arg(long)]
        netuid: Option<u16>,
        /// finney, test, local or a ws:// / wss:// URL (default BT_NETWORK, else finney).
        #[arg(long)]
        network: Option<String>,
        /// List every neuron, not only those serving an axon.
        #[arg(long)]
        all: bool,
        /// Print the snapshot as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Submit a task to a taogate server; with --wait, follow it and write its result.
    Submit {
        #[command(flatten)]
        target: TargetArgs,
        /// Source language: en es fr de it pt ru ja ko zh ar hi.
        #[arg(long, short = 'l', default_value = "en", global = true)]
        language: String,
        /// low, normal, high or urgent (the server's default: normal).
        #[arg(long, global = true)]
        priority: Option<String>,
        /// Wait for the task to end, showing its progress on stderr.
        #[arg(long, global = true)]
        wait: bool,
        /// Longest wait, in seconds.
        #[arg(long, default_value_t = 300, global = true)]
        timeout: u64,
        /// Write the result here (needed for speech); otherwise text goes to stdout.
        #[arg(long, short = 'o', global = true)]
        output: Option<PathBuf>,
        #[command(subcommand)]
        job: JobCommand,
    },
    /// List your tasks on a taogate server, newest first.
    Tasks {
        #[command(flatten)]
        target: TargetArgs,
        /// Only tasks in this status: pending, processing, completed or failed.
        #[arg(long)]
        status: Option<String>,
        /// At most this many (1–100).
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Show one task of a taogate server as JSON.
    Task {
        #[command(flatten)]
        target: TargetArgs,
        /// The task's id.
        id: String,
    },
    /// Manage API keys: create, list, revoke, rotate.
    Keys {
        /// Where the keys live: `embedded` (the SQLite file under --data-dir; works beside a
        /// running `taogate serve`) or `aws` (the task table named by TABLE_NAME, e.g. the
        /// stack's `TasksTableName` output, with the usual AWS credentials and region).
        #[arg(
            long,
            env = "TAOGATE_BACKEND",
            value_enum,
            default_value = "embedded",
            global = true
        )]
        backend: Backend,
        /// The data directory of the embedded backend.
        #[arg(
            long,
            env = "TAOGATE_DATA_DIR",
            default_value = ".taogate",
            global = true
        )]
        data_dir: PathBuf,
        #[command(subcommand)]
        action: KeysCommand,
    },
    /// Measure the local server.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
}

/// Which server a client command talks to, and with which key.
#[derive(clap::Args)]
pub(crate) struct TargetArgs {
    /// The server's base URL.
    #[arg(
        long,
        env = "TAOGATE_URL",
        default_value = "http://127.0.0.1:8000",
        global = true
    )]
    pub(crate) url: String,
    /// An API key (sent as X-API-Key).
    #[arg(long, env = "TAOGATE_API_KEY", hide_env_values = true, global = true)]
    pub(crate) key: Option<String>,
}

impl TargetArgs {
    pub(crate) fn target(self) -> taogate_cli::client::Target {
        taogate_cli::client::Target {
            url: self.url,
            key: self.key,
        }
    }
}

#[derive(Subcommand)]
pub(crate) enum JobCommand {
    /// Transcribe an audio file (WAV, FLAC, MP3 or OGG/Vorbis, up to 50 MiB).
    Transcription {
        /// The audio file.
        file: PathBuf,
    },
    /// Speak a text (1–10,000 characters).
    Tts {
        /// The text.
        text: String,
    },
    /// Summarize a text (50–50,000 characters), given inline or as a file.
    Summarization {
        /// The text, or a file holding it.
        text: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum KeysCommand {
    /// Make a key; its secret and webhook secret are printed once.
    Create {
        /// A name for people.
        #[arg(long)]
        name: String,
        /// Requests allowed: N/s, N/min, N/h or N/day (default: unlimited).
        #[arg(long)]
        rate: Option<String>,
        /// Requests allowed at once from a rested key (default: the rate's N).
        #[arg(long)]
        burst: Option<u32>,
        /// Tasks a calendar month (UTC): N/month (default: unlimited).
        #[arg(long)]
        quota: Option<String>,
        /// The highest priority the key's tasks may ask for.
        #[arg(long, default_value = "high")]
        max_priority: String,
        /// Sees every tenant's tasks and the validator routes.
        #[arg(long)]
        admin: bool,
    },
    /// Every key with this month's requests and tasks.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Stop a key from authenticating.
    Revoke {
        /// The key's id.
        id: String,
    },
    /// Replace a key's secret (at once) and webhook secret (with a day's overlap).
    Rotate {
        /// The key's id.
        id: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum BenchCommand {
    /// Axon request signatures per second on one core.
    Sign {
        /// How long to sign, in seconds.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
    },
    /// Decoding time of a recorded get_neurons_lite response (a `0x…` hex file).
    Metagraph {
        /// The recorded response.
        #[arg(long, default_value = "testdata/metagraph/netuid1-plain-vec.hex")]
        file: PathBuf,
        /// Decodes to time.
        #[arg(long, default_value_t = 200)]
        runs: usize,
    },
    /// Scoring time: consensus over long transcripts, ROUGE-L over long summaries.
    Score {
        /// Transcripts scored together.
        #[arg(long, default_value_t = 5)]
        transcripts: usize,
        /// Words per transcript.
        #[arg(long, default_value_t = 10_000)]
        words: usize,
        /// Characters per ROUGE-L input.
        #[arg(long, default_value_t = 50_000)]
        chars: usize,
        /// Repetitions (the median is reported).
        #[arg(long, default_value_t = 21)]
        runs: usize,
    },
    /// The gateway's overhead end to end: submit to callback, last answer to stored result,
    /// and tasks per second, against simulated miners that answer at once.
    E2e {
        /// The service asked: tts or summarization.
        #[arg(long, default_value = "tts")]
        service: String,
        /// Submissions per second in the latency phase (open loop).
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        /// Length of the latency phase, in seconds.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Tasks submitted at once in the throughput phase.
        #[arg(long, default_value_t = 5_000)]
        backlog: usize,
        /// Simulated `good` miners.
        #[arg(long, default_value_t = 8)]
        miners: usize,
    },
    /// TTS submissions per second and latency percentiles.
    Submit {
        /// Concurrent keep-alive connections.
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// How long to send, in seconds.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Offered load in submissions per second (open loop); without it, as fast as possible.
        #[arg(long)]
        rate: Option<f64>,
        /// A running server to measure; by default an API-only server is started in a
        /// temporary directory for the run.
        #[arg(long)]
        target: Option<SocketAddr>,
        /// An API key sent with every request (X-API-Key), for a --target that needs one.
        #[arg(long, env = "TAOGATE_API_KEY")]
        key: Option<String>,
        /// With the server started for the run: require keys (API_AUTH=required) and send a
        /// key made for the run, without limits, so the gate's cost is measured.
        #[arg(long, conflicts_with = "target")]
        auth: bool,
        /// With the server started for the run: run its workers against `taogate serve`'s
        /// default simulated subnet (`sim:6`), so submissions share the store with their work.
        #[arg(long, conflicts_with = "target")]
        subnet: bool,
        /// With --subnet: how long its `slow` miner takes, in milliseconds (as `serve`'s
        /// --sim-slow-ms). 0 makes every miner answer at once, so the workers use all the CPU
        /// they get.
        #[arg(long, default_value_t = 600, requires = "subnet")]
        sim_slow_ms: u64,
        /// With the server started for the run: queue this many TTS tasks before measuring.
        #[arg(long, default_value_t = 0, conflicts_with = "target")]
        backlog: usize,
    },
}
