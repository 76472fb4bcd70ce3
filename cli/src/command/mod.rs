//! What each command does.

use std::time::Duration;

use taogate_cli::serve::{Backend, MinerSource, ServeOptions};
use taogate_shared::config::Settings;

pub(crate) mod args;
mod bench;

use args::{Command, JobCommand, KeysCommand};

/// Runs `command` to its end.
pub(crate) async fn run(command: Command) -> anyhow::Result<()> {
    match command {
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
        Command::Bench { what } => bench::run(what).await,
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
