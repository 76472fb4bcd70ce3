//! The `taogate` command: `serve` runs the gateway locally; `submit`, `tasks` and `task` are a
//! client of any taogate server; `keys` manages API keys; `bench` measures.

use clap::Parser;

mod command;

use command::args::Cli;

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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(cli.log_json);
    command::run(cli.command).await
}
