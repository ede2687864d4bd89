//! The command line: which scenario, how many participants, how hard, for how
//! long, against what. Parsing and range checks only; [`crate::scenario`] acts on it.

use clap::{Parser, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

/// Most WebSocket handshakes the harness keeps in flight at once: a connect
/// storm measures the listen backlog, not the server.
pub const MAX_HANDSHAKES_LIMIT: usize = 500;

/// Drive simulated visitors and agents against a Switchboard server.
///
/// Every run stops by itself: ramp + duration + drain, under a hard deadline.
#[derive(Debug, Clone, Parser)]
#[command(name = "loadtest", version)]
pub struct Cli {
    /// What to simulate: `idle` (connect visitors and hold them: memory per
    /// connection), `chat` (visitors write, agents answer every message),
    /// `burst` (like chat, but each visitor sends `--burst-size` messages back
    /// to back every `--burst-every`).
    #[arg(value_enum, default_value_t = Scenario::Chat)]
    pub scenario: Scenario,

    /// Number of simulated visitors.
    #[arg(long, default_value_t = 10)]
    pub visitors: usize,

    /// Number of simulated agents (chat and burst).
    #[arg(long, default_value_t = 2)]
    pub agents: usize,

    /// Messages per second *per visitor* (chat). 0 sends the next message as
    /// soon as the previous one is acknowledged (closed loop).
    #[arg(long, default_value_t = 1.0)]
    pub rate: f64,

    /// How long the steady phase lasts (e.g. `10`, `10s`, `500ms`, `2m`).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,

    /// Spread the visitors' connections over this long.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub ramp: Duration,

    /// After the steady phase, wait at most this long for outstanding acks and deliveries.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub drain: Duration,

    /// Kill the run after this long whatever happens (default: ramp + duration + drain + 60s).
    #[arg(long, value_parser = parse_duration)]
    pub deadline: Option<Duration>,

    /// Wire encoding, chosen by WebSocket subprotocol.
    #[arg(long, value_enum, default_value_t = EncodingArg::Json)]
    pub encoding: EncodingArg,

    /// Size of each chat message's text, in bytes.
    #[arg(long, default_value_t = 64)]
    pub message_bytes: usize,

    /// What visitors write, repeated up to `--message-bytes` (ASCII). The
    /// default is an ordinary English chat line that the bot does not answer
    /// (low confidence: the conversation goes to an agent); try
    /// `--text "where is my order"` to exercise the bot and the handoff to a
    /// person, or `--text "load test message "` for text with no common
    /// English word, the NLP's slowest path (a trigram language detector runs).
    #[arg(
        long,
        default_value = "and what about the colour, is the blue one any good? "
    )]
    pub text: String,

    /// Agent think time before each reply, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub think_ms: u64,

    /// burst: messages each visitor sends back to back.
    #[arg(long, default_value_t = 10)]
    pub burst_size: usize,

    /// burst: time between two bursts of one visitor.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub burst_every: Duration,

    /// chat/burst: extra visitors that write a few messages, then stop reading
    /// their socket (connection held open, never polled) while the others go
    /// on. They are kept out of the latency histograms; how the server ended
    /// each one is reported (it should close them with 4000 once their
    /// outbound queue is full).
    #[arg(long, default_value_t = 0)]
    pub slow_readers: usize,

    /// Extra messages the agents write to each slow reader's conversation
    /// once it has stopped reading (paced, see `loadtest --help`), so that
    /// the server's queue for it fills up.
    #[arg(long, default_value_t = 1000)]
    pub slow_flood: usize,

    /// The server's WebSocket endpoint. Loopback addresses only.
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    pub target: String,

    /// Source addresses to spread connections over, e.g. `127.0.0.2-127.0.0.9`
    /// or `127.0.0.2,127.0.0.3` (each has its own ~28k ephemeral ports).
    #[arg(long)]
    pub source_ips: Option<String>,

    /// Sample this process's RSS and CPU from /proc (the server's pid).
    #[arg(long)]
    pub server_pid: Option<u32>,

    /// Start a `switchboard serve` on a temporary data folder and test it.
    #[arg(long)]
    pub spawn: bool,

    /// `--spawn`: give the server this environment variable (repeatable), e.g.
    /// `--server-env SWITCHBOARD_SOCKET_SEND_BUFFER_BYTES=16384` so that slow
    /// readers fill the server's queue sooner.
    #[arg(long, value_name = "NAME=VALUE", value_parser = crate::spawn::parse_env_pair)]
    pub server_env: Vec<(String, String)>,

    /// The `switchboard` binary for `--spawn` (default: beside this binary, then $PATH).
    #[arg(long)]
    pub server_bin: Option<PathBuf>,

    /// Admin account used to create the agents.
    #[arg(long, default_value = "admin@localhost")]
    pub admin_email: String,

    /// Admin password (also given to a spawned server).
    #[arg(
        long,
        env = "SWITCHBOARD_ADMIN_PASSWORD",
        default_value = "loadtest-admin-pw"
    )]
    pub admin_password: String,

    /// Most WebSocket handshakes in flight at once.
    #[arg(long, default_value_t = 200)]
    pub max_handshakes: usize,

    /// Write the machine-readable report to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,

    /// Speak no Switchboard protocol: connect, then send frames and expect
    /// each back (for a plain WebSocket echo server such as `bench/echo`).
    /// `idle` holds the connections; `chat`/`burst` echo at their pace. No agents.
    #[arg(long)]
    pub raw: bool,

    /// Do not draw the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    Idle,
    Chat,
    Burst,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EncodingArg {
    Json,
    Bincode,
}

impl From<EncodingArg> for switchboard_protocol::Encoding {
    fn from(e: EncodingArg) -> Self {
        match e {
            EncodingArg::Json => switchboard_protocol::Encoding::Json,
            EncodingArg::Bincode => switchboard_protocol::Encoding::Bincode,
        }
    }
}

impl Cli {
    /// Rejects combinations that cannot make a meaningful run.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.visitors > 0, "--visitors must be at least 1");
        if self.scenario != Scenario::Idle && !self.raw {
            anyhow::ensure!(
                self.agents > 0,
                "--agents must be at least 1 for {:?}",
                self.scenario
            );
        }
        anyhow::ensure!(
            self.rate.is_finite() && self.rate >= 0.0,
            "--rate must be a number >= 0"
        );
        anyhow::ensure!(
            (1..=MAX_HANDSHAKES_LIMIT).contains(&self.max_handshakes),
            "--max-handshakes must be within 1..={MAX_HANDSHAKES_LIMIT}"
        );
        anyhow::ensure!(
            self.message_bytes <= switchboard_protocol::limits::MAX_TEXT_CHARS,
            "--message-bytes must be at most {}",
            switchboard_protocol::limits::MAX_TEXT_CHARS
        );
        anyhow::ensure!(
            !self.text.is_empty() && self.text.is_ascii(),
            "--text must be non-empty ASCII"
        );
        anyhow::ensure!(self.burst_size > 0, "--burst-size must be at least 1");
        if self.slow_readers > 0 {
            anyhow::ensure!(
                self.scenario != Scenario::Idle && !self.raw,
                "--slow-readers needs agents: use it with chat or burst, without --raw"
            );
        }
        anyhow::ensure!(
            !self.burst_every.is_zero(),
            "--burst-every must be positive"
        );
        Ok(())
    }

    /// The hard deadline of the whole run.
    pub fn hard_deadline(&self) -> Duration {
        self.deadline
            .unwrap_or(self.ramp + self.duration + self.drain + Duration::from_secs(60))
    }
}

/// `10`, `10s`, `1.5s`, `250ms`, `2m`: a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (try 10s, 500ms, 2m)"))?;
    Duration::try_from_secs_f64(value * scale).map_err(|e| format!("{s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn validation() {
        let ok = Cli::parse_from(["loadtest", "chat", "--visitors", "3"]);
        ok.validate().unwrap();
        let idle_without_agents = Cli::parse_from(["loadtest", "idle", "--agents", "0"]);
        idle_without_agents.validate().unwrap();
        let chat_without_agents = Cli::parse_from(["loadtest", "chat", "--agents", "0"]);
        assert!(chat_without_agents.validate().is_err());
        let storm = Cli::parse_from(["loadtest", "idle", "--max-handshakes", "5000"]);
        assert!(storm.validate().is_err());
        let slow = Cli::parse_from(["loadtest", "chat", "--slow-readers", "2"]);
        slow.validate().unwrap();
        let slow_idle = Cli::parse_from(["loadtest", "idle", "--slow-readers", "2"]);
        assert!(slow_idle.validate().is_err());
        let slow_raw = Cli::parse_from(["loadtest", "chat", "--raw", "--slow-readers", "1"]);
        assert!(slow_raw.validate().is_err());
    }
}
