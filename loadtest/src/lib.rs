//! `loadtest`: drives simulated visitors and agents against a Switchboard
//! server and reports what an operator needs to size a deployment: handshake
//! and end-to-end latency, delivered messages per second, server memory per
//! connection and server CPU per delivered message, errors, and whether every
//! acknowledged message reached the other side exactly once.
//!
//! Module map:
//! - [`cli`]: the command line (flags, durations, validation).
//! - [`target`]: where to connect, and the loopback-only rule.
//! - [`source`]: `--source-ips` ranges, spreading connections over source addresses.
//! - [`spawn`]: starting a `switchboard` on a temporary data folder (`--spawn`).
//! - [`api`]: the few REST calls the harness needs (login, create agents), over a minimal HTTP/1.1 client.
//! - [`wire`]: opening a WebSocket with the chosen subprotocol and framing protocol messages.
//! - [`session`]: what every participant shares: the run context, hello → welcome, message stamps,
//!   and the one send/read loop of visitors, echo clients and slow readers (`drive`, a `Client` each).
//! - [`visitor`] / [`agent`]: one simulated participant each, a struct with `run()`.
//! - [`slow`]: `--slow-readers`, visitors that stop reading their socket, and how the server ended them.
//! - [`echo`]: `--raw` clients for a plain WebSocket echo server (the transport's ceiling).
//! - [`ledger`]: the exactly-once check, keyed by (conversation, seq).
//! - [`stats`]: counters, HDR histograms and error tallies shared by the sessions.
//! - [`proc`]: sampling RSS and CPU of a process from `/proc`, outside it.
//! - [`progress`]: the live progress bar.
//! - [`scenario`]: the phases of a run (setup, ramp, steady, drain, shutdown) for `idle`, `chat` and `burst`.
//! - [`report`]: the final numbers, as a human table and as JSON.

pub mod agent;
pub mod api;
pub mod cli;
pub mod echo;
pub mod ledger;
pub mod proc;
pub mod progress;
pub mod report;
pub mod scenario;
pub mod session;
pub mod slow;
pub mod source;
pub mod spawn;
pub mod stats;
pub mod target;
pub mod visitor;
pub mod wire;

use std::process::ExitCode;

/// Parses the command line, runs the scenario and turns its verdict into an exit code:
/// 0 when every acknowledged message was delivered exactly once, 1 on loss or
/// duplication, 2 when the run itself could not be carried out.
pub fn main() -> ExitCode {
    let cli = <cli::Cli as clap::Parser>::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadtest: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(scenario::run(cli)) {
        Ok(report) if report.passed() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("loadtest: {e:#}");
            ExitCode::from(2)
        }
    }
}
