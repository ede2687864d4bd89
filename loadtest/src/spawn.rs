//! `--spawn`: start `switchboard serve --listen 127.0.0.1:0` on a temporary
//! data folder, learn its port from the `listening on http://…` line it
//! prints, and stop it (SIGTERM, then kill) when the run ends. The server's
//! output goes to `server.log` in the temporary folder, printed on failure.
//!
//! The server inherits the harness's environment, then gets [`BENCH_ENV`]
//! (settings a load test needs whatever the deployment default) and last the
//! `--server-env NAME=VALUE` pairs, which win.

use anyhow::{bail, Context};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

/// How long a fresh server may take to print its address.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a server may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Settings every spawned server gets, before `--server-env`: a load test
/// is one address sending as fast as it can, which the server's abuse limits
/// would throttle (0 lifts a limit).
pub const BENCH_ENV: &[(&str, &str)] = &[
    ("SWITCHBOARD_MESSAGES_PER_SEC", "0"),
    ("SWITCHBOARD_IP_MESSAGES_PER_SEC", "0"),
    ("SWITCHBOARD_IP_NEW_CONVERSATIONS_PER_MIN", "0"),
    ("SWITCHBOARD_MAX_CONNECTIONS_PER_IP", "0"),
];

/// A running `switchboard` child process; killed if dropped.
#[derive(Debug)]
pub struct SpawnedServer {
    child: Child,
    pub addr: SocketAddr,
    pub pid: u32,
    pub binary: PathBuf,
    dir: tempfile::TempDir,
}

impl SpawnedServer {
    /// Starts the server and waits for its `listening on` line.
    pub async fn start(
        binary: Option<&Path>,
        admin_password: &str,
        env: &[(String, String)],
    ) -> anyhow::Result<SpawnedServer> {
        let binary = locate_binary(binary)?;
        let dir = tempfile::Builder::new()
            .prefix("switchboard-loadtest-")
            .tempdir()?;
        let log_path = dir.path().join("server.log");
        let log = std::fs::File::create(&log_path)?;
        let mut child = Command::new(&binary)
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(dir.path().join("data"))
            .env("SWITCHBOARD_ADMIN_PASSWORD", admin_password)
            .envs(BENCH_ENV.iter().copied())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log.try_clone()?))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let pid = child.id().context("the server exited at once")?;
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let found =
            tokio::time::timeout(STARTUP_TIMEOUT, wait_for_address(stdout, log_path.clone())).await;
        let addr = match found {
            Ok(Ok(addr)) => addr,
            Ok(Err(e)) => bail!("{e:#}\n--- server log ---\n{}", read_log(&log_path)),
            Err(_) => bail!(
                "{} printed no `listening on` line within {STARTUP_TIMEOUT:?}\n--- server log ---\n{}",
                binary.display(),
                read_log(&log_path)
            ),
        };
        Ok(SpawnedServer {
            child,
            addr,
            pid,
            binary,
            dir,
        })
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        read_log(&self.dir.path().join("server.log"))
    }

    /// Whether the server is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, wait for a graceful exit, then kill.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        // `kill` keeps this crate free of unsafe signal calls.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status()
            .await;
        if tokio::time::timeout(STOP_TIMEOUT, self.child.wait())
            .await
            .is_err()
        {
            self.child.kill().await?;
            bail!("the server did not stop within {STOP_TIMEOUT:?} of SIGTERM and was killed");
        }
        Ok(())
    }
}

/// Reads stdout until the address line; keeps copying the rest into the log.
async fn wait_for_address(
    stdout: tokio::process::ChildStdout,
    log_path: PathBuf,
) -> anyhow::Result<SocketAddr> {
    let mut lines = BufReader::new(stdout).lines();
    let mut log = tokio::fs::OpenOptions::new()
        .append(true)
        .open(&log_path)
        .await?;
    while let Some(line) = lines.next_line().await? {
        log.write_all(format!("{line}\n").as_bytes()).await?;
        if let Some(addr) = parse_listening(&line) {
            tokio::spawn(async move {
                // Keep draining so a chatty server never blocks on a full pipe.
                while let Ok(Some(line)) = lines.next_line().await {
                    if log.write_all(format!("{line}\n").as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
            return Ok(addr);
        }
    }
    bail!("the server closed its output without printing `listening on http://…`")
}

/// `NAME=VALUE` for `--server-env`.
pub fn parse_env_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_string(), value.to_string()))
        }
        _ => Err(format!("{s:?}: expected NAME=VALUE")),
    }
}

/// The address in a `… listening on http://127.0.0.1:PORT …` line.
pub fn parse_listening(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find("listening on http://")? + "listening on http://".len()..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '/')
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// `--server-bin`, else `switchboard` beside this binary (or one level up,
/// for test binaries in `target/*/deps`), else `switchboard` on `$PATH`.
pub fn locate_binary(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        anyhow::ensure!(p.is_file(), "--server-bin {}: no such file", p.display());
        return Ok(p.to_path_buf());
    }
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(2) {
            let candidate = dir.join("switchboard");
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        if let Some(found) = std::env::split_paths(&path)
            .map(|d| d.join("switchboard"))
            .find(|p| p.is_file())
        {
            return Ok(found);
        }
    }
    bail!("no `switchboard` binary beside loadtest or on $PATH: build it (cargo build -p switchboard-server) or pass --server-bin")
}

fn read_log(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(40).collect();
    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_line() {
        assert_eq!(
            parse_listening(
                "2026-11-22T04:00:00Z INFO switchboard: listening on http://127.0.0.1:43123"
            ),
            Some("127.0.0.1:43123".parse().unwrap())
        );
        assert_eq!(
            parse_listening("listening on http://127.0.0.1:8080/ (ws at /ws)"),
            Some("127.0.0.1:8080".parse().unwrap())
        );
        assert_eq!(
            parse_listening("listening on http://[::1]:9/"),
            Some("[::1]:9".parse().unwrap())
        );
        assert_eq!(parse_listening("starting up"), None);
    }

    #[test]
    fn env_pairs() {
        assert_eq!(
            parse_env_pair("SWITCHBOARD_OUTBOUND_QUEUE=64"),
            Ok(("SWITCHBOARD_OUTBOUND_QUEUE".into(), "64".into()))
        );
        assert_eq!(parse_env_pair("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert!(parse_env_pair("novalue").is_err());
        assert!(parse_env_pair("=x").is_err());
    }
}
