//! `taogate bench`: each measurement, its bounds checked before it starts.

use std::path::PathBuf;
use std::time::Duration;

use taogate_cli::serve::{Backend, MinerSource, ServeOptions};
use taogate_shared::config::Settings;

use super::args::BenchCommand;

/// Runs one measurement and prints its figures.
pub(super) async fn run(what: BenchCommand) -> anyhow::Result<()> {
    match what {
        BenchCommand::Sign { seconds } => {
            anyhow::ensure!(seconds > 0.0 && seconds <= 60.0, "--seconds takes up to 60");
            let rate = taogate_cli::bench::signatures(Duration::from_secs_f64(seconds))?;
            println!("{rate:.0} axon request signatures/s on one core");
            Ok(())
        }
        BenchCommand::Score {
            transcripts,
            words,
            chars,
            runs,
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
        BenchCommand::Metagraph { file, runs } => {
            let hex_result = std::fs::read_to_string(&file)?;
            let (median, neurons) = taogate_cli::bench::metagraph(&hex_result, runs)?;
            println!(
                "{neurons} neurons decoded in {:.3} ms (median of {runs}); {:.3} ms per 256 neurons",
                median.as_secs_f64() * 1000.0,
                median.as_secs_f64() * 1000.0 * 256.0 / neurons.max(1) as f64
            );
            Ok(())
        }
        BenchCommand::E2e {
            service,
            rate,
            seconds,
            backlog,
            miners,
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

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("taogate-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
