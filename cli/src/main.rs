//! The `taogate` command: `serve` runs the gateway locally; `submit`, `tasks` and `task` are a
//! client of any taogate server; `keys` manages API keys; `bench` measures.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use taogate_cli::serve::{Backend, MinerSource, ServeOptions};
use taogate_shared::config::Settings;

#[derive(Parser)]
#[command(
    name = "taogate",
    version,
    about = "HTTPS gateway to a Bittensor audio subnet"
)]
struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long, global = true, env = "TAOGATE_LOG_JSON")]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
struct TargetArgs {
    /// The server's base URL.
    #[arg(
        long,
        env = "TAOGATE_URL",
        default_value = "http://127.0.0.1:8000",
        global = true
    )]
    url: String,
    /// An API key (sent as X-API-Key).
    #[arg(long, env = "TAOGATE_API_KEY", hide_env_values = true, global = true)]
    key: Option<String>,
}

impl TargetArgs {
    fn target(self) -> taogate_cli::client::Target {
        taogate_cli::client::Target {
            url: self.url,
            key: self.key,
        }
    }
}

#[derive(Subcommand)]
enum JobCommand {
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
enum KeysCommand {
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
enum BenchCommand {
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

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(cli.log_json);
    match cli.command {
        Command::Serve {
            bind,
            backend,
            data_dir,
            miners,
            network,
            netuid,
            public_url,
            sim_slow_ms,
        } => {
            let mut settings = Settings::from_env()?;
            let miners = match (miners, &network) {
                (Some(m), _) => m,
                (None, Some(_)) => "chain".to_owned(),
                (None, None) => "sim:6".to_owned(),
            };
            if let Some(network) = network {
                settings.chain.network = network;
            }
            if let Some(netuid) = netuid {
                settings.chain.netuid = netuid;
            }
            let running = taogate_cli::serve::start(ServeOptions {
                bind,
                backend,
                data_dir,
                miners: MinerSource::parse(&miners)?,
                public_url,
                workers: settings.worker.max_concurrent_tasks,
                sim_slow: Duration::from_millis(sim_slow_ms),
                settings,
            })
            .await?;
            eprintln!(
                "taogate listening on http://{} (docs at /docs)",
                running.addr
            );
            shutdown_signal().await;
            running.shutdown().await
        }
        Command::Metagraph {
            netuid,
            network,
            all,
            json,
        } => {
            let settings = Settings::from_env()?;
            let network = network.unwrap_or(settings.chain.network);
            let netuid = netuid.unwrap_or(settings.chain.netuid);
            let reader = taogate_shared::bittensor::ChainReader::connect(&network).await?;
            let snapshot = reader.snapshot(netuid).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&snapshot)?);
            } else {
                print!("{}", taogate_cli::metagraph::table(&snapshot, all));
            }
            Ok(())
        }
        Command::Submit {
            target,
            language,
            priority,
            wait,
            timeout,
            output,
            job,
        } => {
            use taogate_cli::client::{Job, SubmitOptions};
            let job = match job {
                JobCommand::Transcription { file } => Job::Transcription(file),
                JobCommand::Tts { text } => Job::Tts(text),
                JobCommand::Summarization { text } => Job::Summarization(text),
            };
            let options = SubmitOptions {
                language,
                priority,
                wait,
                timeout: Duration::from_secs(timeout),
                output,
            };
            client_result(taogate_cli::client::submit(&target.target(), job, options).await)
        }
        Command::Tasks {
            target,
            status,
            limit,
        } => client_result(
            taogate_cli::client::tasks(&target.target(), status.as_deref(), limit).await,
        ),
        Command::Task { target, id } => {
            client_result(taogate_cli::client::task(&target.target(), &id).await)
        }
        Command::Keys {
            backend,
            data_dir,
            action,
        } => {
            let out = match backend {
                Backend::Embedded => {
                    let db = taogate_shared::embedded::Database::open_beside(&data_dir)?;
                    keys(&db, action).await?
                }
                Backend::Aws => {
                    use taogate_shared::aws::{AwsClients, AwsResources, DynamoTasks, S3Blobs};
                    // Keys live in the task table alone: the queues and the bucket are not
                    // touched, so only TABLE_NAME is needed.
                    let resources = AwsResources::from_lookup(|k| {
                        std::env::var(k).ok().or_else(|| {
                            (k.starts_with("QUEUE_URL_") || k == "BUCKET_NAME")
                                .then(|| "unused-by-keys".to_owned())
                        })
                    })?;
                    let clients = AwsClients::load(resources.s3_path_style).await;
                    let blobs = S3Blobs::new(clients.s3.clone(), &resources);
                    let table = DynamoTasks::new(clients.dynamodb.clone(), blobs, &resources);
                    keys(&table, action).await?
                }
            };
            print!("{out}");
            Ok(())
        }
        Command::Bench {
            what: BenchCommand::Sign { seconds },
        } => {
            anyhow::ensure!(seconds > 0.0 && seconds <= 60.0, "--seconds takes up to 60");
            let rate = taogate_cli::bench::signatures(Duration::from_secs_f64(seconds))?;
            println!("{rate:.0} axon request signatures/s on one core");
            Ok(())
        }
        Command::Bench {
            what:
                BenchCommand::Score {
                    transcripts,
                    words,
                    chars,
                    runs,
                },
        } => {
            anyhow::ensure!(
                (1..=64).contains(&transcripts) && words <= 1_000_000 && chars <= 10_000_000,
                "--transcripts takes 1 to 64, --words up to 1,000,000, --chars up to 10,000,000"
            );
            let r = taogate_cli::bench::scoring(transcripts, words, chars, runs);
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            println!(
                "consensus, {} transcripts of {} words (all pairs): {:.2} ms (median of {runs})",
                r.transcripts.0,
                r.transcripts.1,
                ms(r.consensus)
            );
            println!(
                "ROUGE-L, two {}-character texts: {:.2} ms per pair from text, {:.2} ms on tokens",
                r.rouge_chars,
                ms(r.rouge_from_text),
                ms(r.rouge_tokens)
            );
            Ok(())
        }
        Command::Bench {
            what: BenchCommand::Metagraph { file, runs },
        } => {
            let hex_result = std::fs::read_to_string(&file)?;
            let (median, neurons) = taogate_cli::bench::metagraph(&hex_result, runs)?;
            println!(
                "{neurons} neurons decoded in {:.3} ms (median of {runs}); {:.3} ms per 256 neurons",
                median.as_secs_f64() * 1000.0,
                median.as_secs_f64() * 1000.0 * 256.0 / neurons.max(1) as f64
            );
            Ok(())
        }
        Command::Bench {
            what:
                BenchCommand::E2e {
                    service,
                    rate,
                    seconds,
                    backlog,
                    miners,
                },
        } => {
            anyhow::ensure!(rate > 0.0 && rate <= 10_000.0, "--rate takes up to 10,000");
            anyhow::ensure!(
                seconds > 0.0 && seconds <= 120.0,
                "--seconds takes up to 120"
            );
            anyhow::ensure!(backlog <= 200_000, "--backlog takes up to 200,000");
            anyhow::ensure!((1..=64).contains(&miners), "--miners takes 1 to 64");
            let dir = tempfile_dir()?;
            let mut settings = Settings::from_env()?;
            // The receiver listens on loopback, which callbacks may otherwise never reach.
            let loopback: ipnet::IpNet = "127.0.0.0/8".parse()?;
            settings.callbacks.allowlist.push(loopback);
            settings.submission.callback_allowlist.push(loopback);
            let good = vec!["good"; miners].join(",");
            let running = taogate_cli::serve::start(ServeOptions {
                bind: "127.0.0.1:0".parse()?,
                backend: Backend::Embedded,
                data_dir: dir.clone(),
                miners: MinerSource::parse(&format!("sim:{good}"))?,
                public_url: None,
                workers: settings.worker.max_concurrent_tasks,
                sim_slow: Duration::ZERO,
                settings,
            })
            .await?;
            eprintln!(
                "{service}: {rate} tasks/s for {seconds} s, then a backlog of {backlog}, against {miners} simulated miners that answer at once"
            );
            let (latency, throughput) =
                taogate_cli::bench_e2e::run(running.addr, &service, rate, seconds, backlog).await?;
            println!("latency phase ({rate} tasks/s): {latency}");
            println!("throughput phase (backlog {backlog}): {throughput}");
            running.shutdown().await?;
            let _ = std::fs::remove_dir_all(dir);
            Ok(())
        }
        Command::Bench {
            what:
                BenchCommand::Submit {
                    connections,
                    seconds,
                    rate,
                    target,
                    key,
                    auth,
                    subnet,
                    sim_slow_ms,
                    backlog,
                },
        } => {
            anyhow::ensure!(backlog <= 1_000_000, "--backlog takes up to 1,000,000");
            anyhow::ensure!(
                (1..=1024).contains(&connections),
                "--connections takes 1 to 1024"
            );
            anyhow::ensure!(
                seconds > 0.0 && seconds <= 300.0,
                "--seconds takes up to 300"
            );
            let duration = Duration::from_secs_f64(seconds);
            let mut key = key;
            let (addr, local) = match target {
                Some(addr) => (addr, None),
                None => {
                    let dir = tempfile_dir()?;
                    let mut settings = Settings::from_env()?;
                    if auth {
                        settings.tenancy.auth = taogate_shared::config::AuthMode::Required;
                        let db = taogate_shared::embedded::Database::open_beside(&dir)?;
                        let issued = taogate_shared::domain::ApiKey::issue(
                            "bench",
                            taogate_shared::domain::Limits::default(),
                            taogate_shared::domain::now_millis(),
                            |b: &mut [u8]| rand::RngCore::fill_bytes(&mut rand::rng(), b),
                        );
                        taogate_shared::ports::KeyAdmin::save_key(&db, &issued.key).await?;
                        key = Some(issued.secret);
                    }
                    let workers = if subnet {
                        settings.worker.max_concurrent_tasks
                    } else {
                        0
                    };
                    let running = taogate_cli::serve::start(ServeOptions {
                        bind: "127.0.0.1:0".parse()?,
                        backend: Backend::Embedded,
                        data_dir: dir.clone(),
                        miners: MinerSource::parse(if subnet { "sim:6" } else { "sim:1" })?,
                        public_url: None,
                        workers,
                        sim_slow: Duration::from_millis(sim_slow_ms),
                        settings,
                    })
                    .await?;
                    if backlog > 0
                        && let Some(db) = &running.db
                    {
                        let started = std::time::Instant::now();
                        taogate_cli::bench::queue_backlog(db, backlog).await?;
                        eprintln!(
                            "queued a backlog of {backlog} TTS tasks in {:.1} s",
                            started.elapsed().as_secs_f64()
                        );
                    }
                    (running.addr, Some((running, dir)))
                }
            };
            match rate {
                Some(r) => eprintln!(
                    "sending {r} TTS submissions/s to {addr} on {connections} connections for {seconds} s"
                ),
                None => eprintln!(
                    "sending TTS submissions to {addr} on {connections} connections for {seconds} s, as fast as answered"
                ),
            }
            anyhow::ensure!(
                rate.is_none_or(|r| r > 0.0 && r <= 1_000_000.0),
                "--rate takes 1 to 1,000,000"
            );
            let report = taogate_cli::bench::submit(addr, connections, duration, rate, key).await?;
            println!("{report}");
            if subnet && let Some(db) = local.as_ref().and_then(|(r, _)| r.db.as_ref()) {
                let counts = taogate_shared::ports::TaskReader::counts(db).await?;
                let finished = counts.completed + counts.failed;
                println!(
                    "meanwhile the workers finished {finished} tasks ({:.0}/s): {} completed, {} failed",
                    finished as f64 / report.elapsed.as_secs_f64(),
                    counts.completed,
                    counts.failed
                );
            }
            if let Some((running, dir)) = local {
                running.shutdown().await?;
                let _ = std::fs::remove_dir_all(dir);
            }
            Ok(())
        }
    }
}

async fn keys<S>(store: &S, action: KeysCommand) -> anyhow::Result<String>
where
    S: taogate_shared::ports::KeyAdmin + taogate_shared::ports::Metering,
{
    use taogate_cli::keys;
    match action {
        KeysCommand::Create {
            name,
            rate,
            burst,
            quota,
            max_priority,
            admin,
        } => {
            let new = keys::NewKey {
                name,
                rate,
                burst,
                quota,
                max_priority,
                admin,
            };
            keys::create(store, new).await
        }
        KeysCommand::List { json } => keys::list(store, json).await,
        KeysCommand::Revoke { id } => keys::revoke(store, &id).await,
        KeysCommand::Rotate { id } => keys::rotate(store, &id).await,
    }
}

/// Prints a client command's output, or its error alone (no backtrace) with exit status 1.
fn client_result(result: Result<String, taogate_cli::client::ClientError>) -> anyhow::Result<()> {
    match result {
        Ok(out) => {
            print!("{out}");
            Ok(())
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("taogate-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
