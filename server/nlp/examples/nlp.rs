//! The `switchboard nlp` commands without the server, for development:
//! `cargo run --release -p switchboard-nlp --example nlp -- eval --train FILE --cv 5 --json`.

use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: switchboard_nlp::cli::NlpCommand,
}

fn main() -> anyhow::Result<()> {
    switchboard_nlp::cli::run(Cli::parse().cmd)
}
