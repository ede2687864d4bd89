//! The phases of a run, the same for every scenario:
//!
//! 1. **setup**: start the server (`--spawn`), create and log in the agents;
//! 2. **agents**: connect every agent;
//! 3. **ramp**: connect the visitors, spread over `--ramp`, at most
//!    `--max-handshakes` handshakes in flight;
//! 4. **steady**: `--duration` of load (none for `idle`); rates, CPU and
//!    memory are measured over this window;
//! 5. **drain**: visitors stop writing; wait (at most `--drain`) for every
//!    outstanding ack and delivery;
//! 6. **shutdown**: close every session, stop the spawned server, judge.
//!
//! The whole run is under a hard deadline; if it fires, the report is still
//! built from what was measured, and the run fails.

use crate::agent::{Agent, Behaviour};
use crate::api::Api;
use crate::cli::{Cli, Scenario};
use crate::echo::EchoClient;
use crate::ledger::Ledger;
use crate::proc::{Probe, Sample, Sampler};
use crate::progress::{Progress, Sources};
use crate::report::{
    self, Connections, Latency, ProcessReport, Report, RunConfig, SlowReaders, Throughput,
};
use crate::session::{self, Ctx};
use crate::slow::{SlowBoard, SlowReader};
use crate::source::SourceIps;
use crate::spawn::SpawnedServer;
use crate::stats::{get, Stats};
use crate::target::Target;
use crate::visitor::{Pace, Visitor};
use crate::wire::Connector;
use anyhow::Context;
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How often /proc is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// Extra time the agents and visitors get to finish connecting after the ramp.
const CONNECT_GRACE: Duration = Duration::from_secs(30);
/// After an idle ramp, let the server's allocations settle before measuring RSS.
const IDLE_SETTLE: Duration = Duration::from_secs(2);
/// How long closing sessions may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Password of the agents the harness creates.
const AGENT_PASSWORD: &str = "loadtest-agent-pw";

/// Runs the scenario `cli` describes, prints the table, writes `--json`.
pub async fn run(cli: Cli) -> anyhow::Result<Report> {
    cli.validate()?;
    let mut server = match cli.spawn {
        true => Some(
            SpawnedServer::start(
                cli.server_bin.as_deref(),
                &cli.admin_password,
                &cli.server_env,
            )
            .await?,
        ),
        false => None,
    };
    let target = match &server {
        Some(s) => Target::from_addr(s.addr)?,
        None => Target::parse(&cli.target)?,
    };
    let sources = match &cli.source_ips {
        Some(spec) => SourceIps::parse(spec)?,
        None => SourceIps::default(),
    };
    let server_pid = cli.server_pid.or(server.as_ref().map(|s| s.pid));
    let mut run = Run::new(&cli, target, sources, server_pid);
    run.spawned = server.as_ref().map(|s| s.binary.display().to_string());
    let outcome = tokio::time::timeout(cli.hard_deadline(), run.phases()).await;
    run.shutdown().await;
    let deadline_hit = outcome.is_err();
    if let Ok(Err(e)) = outcome {
        stop_server(server.take()).await;
        return Err(e);
    }
    if let Some(s) = server.as_mut() {
        if !s.is_running() {
            run.ctx.stats.error("server: exited during the run");
            run.progress.note(&format!(
                "the server exited during the run; its log ends with:\n{}",
                s.log()
            ));
        }
    }
    let server_slow_count = run.server_slow_count().await;
    stop_server(server.take()).await;
    let mut report = run.report(deadline_hit);
    if let Some(slow) = report.slow_readers.as_mut() {
        slow.server_slow_consumer_disconnects = server_slow_count;
    }
    report.judge();
    drop(run);
    println!("{}", report.table());
    if let Some(path) = &cli.json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(report)
}

async fn stop_server(server: Option<SpawnedServer>) {
    if let Some(s) = server {
        if let Err(e) = s.stop().await {
            eprintln!("loadtest: {e:#}");
        }
    }
}

/// Counters and process samples at a phase boundary.
#[derive(Debug, Clone, Copy, Default)]
struct Mark {
    at: f64,
    delivered: u64,
    acked: u64,
    open: u64,
    server: Option<Sample>,
    harness: Option<Sample>,
}

/// One run in progress.
struct Run<'a> {
    cli: &'a Cli,
    ctx: Ctx,
    server: Option<Sampler>,
    server_pid: Option<u32>,
    /// The binary `--spawn` started.
    spawned: Option<String>,
    harness: Sampler,
    progress: Progress,
    sessions: JoinSet<()>,
    stop_sampling: CancellationToken,
    before: Mark,
    ramp_start: f64,
    ramp_end: f64,
    steady_start: Mark,
    steady_end: Option<Mark>,
}

impl<'a> Run<'a> {
    fn new(cli: &'a Cli, target: Target, sources: SourceIps, server_pid: Option<u32>) -> Run<'a> {
        let stats = Arc::new(Stats::default());
        let ledger = Arc::new(Ledger::default());
        let stop_sampling = CancellationToken::new();
        let server = server_pid
            .map(|pid| Sampler::start(Probe::pid(pid), SAMPLE_EVERY, stop_sampling.clone()));
        let harness = Sampler::start(Probe::own_process(), SAMPLE_EVERY, stop_sampling.clone());
        let connections = u64::try_from(participants(cli)).unwrap_or(u64::MAX);
        let sources_view = Sources {
            stats: stats.clone(),
            ledger: ledger.clone(),
            server: server.clone(),
            connections,
        };
        let ctx = Ctx {
            connector: Arc::new(Connector::new(target, cli.encoding.into(), sources)),
            stats,
            ledger,
            handshakes: Arc::new(Semaphore::new(cli.max_handshakes)),
            stop_sending: CancellationToken::new(),
            shutdown: CancellationToken::new(),
            text: session::filler_text(&cli.text, cli.message_bytes).into(),
            slow: Arc::new(SlowBoard::default()),
        };
        Run {
            cli,
            ctx,
            server,
            server_pid,
            spawned: None,
            harness,
            progress: Progress::start(sources_view, cli.quiet),
            sessions: JoinSet::new(),
            stop_sampling,
            before: Mark::default(),
            ramp_start: 0.0,
            ramp_end: 0.0,
            steady_start: Mark::default(),
            steady_end: None,
        }
    }

    async fn phases(&mut self) -> anyhow::Result<()> {
        self.progress.phase("setup", Duration::ZERO);
        let tokens = self.agent_tokens().await?;
        self.before = self.mark();
        self.ramp_start = crate::stats::now_seconds();
        self.connect_agents(tokens).await?;
        self.connect_visitors().await;
        self.ramp_end = crate::stats::now_seconds();
        if self.cli.scenario == Scenario::Idle {
            self.progress.phase("settle", IDLE_SETTLE);
            tokio::time::sleep(IDLE_SETTLE).await;
        }
        self.steady_start = self.mark();
        self.progress.phase("steady", self.cli.duration);
        tokio::time::sleep(self.cli.duration).await;
        self.steady_end = Some(self.mark());
        self.drain().await;
        Ok(())
    }

    fn mark(&self) -> Mark {
        let c = &self.ctx.stats.counters;
        Mark {
            at: crate::stats::now_seconds(),
            delivered: get(&c.delivered),
            acked: get(&c.acked),
            open: get(&c.open),
            server: self.server.as_ref().and_then(Sampler::sample_now),
            harness: self.harness.sample_now(),
        }
    }

    /// Creates the agents through the REST API and logs each in.
    async fn agent_tokens(&self) -> anyhow::Result<Vec<String>> {
        let count = agents_of(self.cli);
        if count == 0 {
            return Ok(Vec::new());
        }
        let api = Api {
            addr: self.ctx.connector.target.addr,
        };
        let admin = api
            .login(&self.cli.admin_email, &self.cli.admin_password)
            .await
            .context("admin login (set --admin-password or SWITCHBOARD_ADMIN_PASSWORD)")?;
        let capacity = self.agent_capacity();
        let run_id = format!("{}-{}", std::process::id(), unix_seconds());
        self.progress.note(&format!(
            "creating {count} agents (capacity {capacity} each)"
        ));
        let tokens: Vec<anyhow::Result<String>> = futures::stream::iter(0..count)
            .map(|i| {
                let (admin, email) = (admin.clone(), format!("lt{run_id}-{i}@loadtest.invalid"));
                async move {
                    api.create_agent(&admin, &email, AGENT_PASSWORD, capacity)
                        .await?;
                    api.login(&email, AGENT_PASSWORD).await
                }
            })
            .buffered(4)
            .collect()
            .await;
        tokens.into_iter().collect()
    }

    /// Enough room for every visitor (slow readers too), spread over the agents.
    fn agent_capacity(&self) -> u32 {
        let agents = agents_of(self.cli).max(1);
        let visitors = self.cli.visitors + self.cli.slow_readers;
        u32::try_from(visitors.div_ceil(agents) + 1).unwrap_or(u32::MAX)
    }

    async fn connect_agents(&mut self, tokens: Vec<String>) -> anyhow::Result<()> {
        if tokens.is_empty() {
            return Ok(());
        }
        let count = tokens.len();
        self.progress.phase("agents", Duration::from_secs(1));
        let behaviour = Behaviour {
            capacity: self.agent_capacity(),
            think: Duration::from_millis(self.cli.think_ms),
            flood: self.cli.slow_flood,
        };
        for (i, token) in tokens.into_iter().enumerate() {
            let ctx = self.ctx.clone();
            self.sessions.spawn(async move {
                if let Some(agent) = Agent::connect(i, token, ctx, behaviour).await {
                    agent.run().await;
                }
            });
        }
        self.wait_connected(count, CONNECT_GRACE).await;
        let c = &self.ctx.stats.counters;
        anyhow::ensure!(
            get(&c.connected) > 0,
            "no agent could connect: {:?}",
            self.ctx.stats.errors()
        );
        Ok(())
    }

    async fn connect_visitors(&mut self) {
        let total = self.cli.visitors;
        let ramp = self.cli.ramp;
        let pace = self.pace();
        let raw = self.cli.raw;
        self.progress.phase("ramp", ramp);
        let start = tokio::time::Instant::now();
        for i in 0..total {
            let ctx = self.ctx.clone();
            let at = start + ramp.mul_f64(i as f64 / total as f64);
            // Spread the visitors' first sends over one period (golden-ratio stride).
            let offset = pace.period().map_or(Duration::ZERO, |p| {
                p.mul_f64((i as f64 * 0.618_034).fract())
            });
            self.sessions.spawn(async move {
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = ctx.shutdown.cancelled() => return,
                }
                if raw {
                    if let Some(client) = EchoClient::connect(i, ctx, pace, offset).await {
                        client.run().await;
                    }
                } else if let Some(visitor) = Visitor::connect(i, ctx, pace, offset).await {
                    visitor.run().await;
                }
            });
        }
        self.connect_slow_readers(start);
        self.wait_connected(participants(self.cli), ramp + CONNECT_GRACE)
            .await;
    }

    /// `--slow-readers`, spread over the ramp like the visitors.
    fn connect_slow_readers(&mut self, start: tokio::time::Instant) {
        let total = self.cli.slow_readers;
        for i in 0..total {
            let ctx = self.ctx.clone();
            let at = start + self.cli.ramp.mul_f64((i as f64 + 0.5) / total as f64);
            self.sessions.spawn(async move {
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = ctx.shutdown.cancelled() => return,
                }
                if let Some(reader) = SlowReader::connect(i, ctx).await {
                    reader.run().await;
                }
            });
        }
    }

    fn pace(&self) -> Pace {
        match self.cli.scenario {
            Scenario::Idle => Pace::Idle,
            Scenario::Chat if self.cli.rate == 0.0 => Pace::ClosedLoop,
            Scenario::Chat => Pace::Every(Duration::from_secs_f64(1.0 / self.cli.rate)),
            Scenario::Burst => Pace::Burst {
                size: self.cli.burst_size,
                every: self.cli.burst_every,
            },
        }
    }

    /// Waits until `count` sessions have connected or failed, or `limit` passes.
    async fn wait_connected(&self, count: usize, limit: Duration) {
        let count = u64::try_from(count).unwrap_or(u64::MAX);
        let c = &self.ctx.stats.counters;
        let done = || get(&c.connected) + get(&c.connect_failed) >= count;
        let _ = tokio::time::timeout(limit, async {
            while !done() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }

    /// Stops new messages and waits for what is in flight.
    async fn drain(&mut self) {
        self.ctx.stop_sending.cancel();
        self.progress.phase("drain", self.cli.drain);
        let c = &self.ctx.stats.counters;
        let in_flight = || {
            let sent = get(&c.visitor_sent) + get(&c.agent_sent);
            sent.saturating_sub(get(&c.acked) + get(&c.rejected)) + self.ctx.ledger.outstanding()
        };
        let _ = tokio::time::timeout(self.cli.drain, async {
            // One beat first: an agent may still be answering the last visitor message.
            tokio::time::sleep(Duration::from_millis(100)).await;
            while in_flight() > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }

    /// Closes every session (politely, then by force).
    async fn shutdown(&mut self) {
        self.progress.phase("closing", Duration::ZERO);
        self.ctx.stop_sending.cancel();
        self.ctx.shutdown.cancel();
        let all_done = async { while self.sessions.join_next().await.is_some() {} };
        if tokio::time::timeout(CLOSE_TIMEOUT, all_done).await.is_err() {
            self.sessions.abort_all();
        }
    }

    fn report(&self, deadline_hit: bool) -> Report {
        let stats = &self.ctx.stats;
        let c = &stats.counters;
        let end = self.steady_end.unwrap_or_else(|| self.mark());
        let steady = (end.at - self.steady_start.at).max(0.0);
        let delivered_steady = end.delivered.saturating_sub(self.steady_start.delivered);
        let l = stats.latencies();
        let established = get(&c.connected);
        let ramp_seconds = (self.ramp_end - self.ramp_start).max(0.0);
        Report {
            config: self.config(),
            connections: Connections {
                attempted: u64::try_from(participants(self.cli)).unwrap_or(u64::MAX),
                established,
                failed: get(&c.connect_failed),
                ramp_seconds,
                connect_rate_per_s: report::rate(established, ramp_seconds),
            },
            latency_ms: Latency {
                handshake: report::summarize(&l.handshake),
                visitor_to_agent: report::summarize(&l.visitor_to_agent),
                agent_to_visitor: report::summarize(&l.agent_to_visitor),
                send_to_ack: report::summarize(&l.send_to_ack),
            },
            throughput: Throughput {
                steady_seconds: steady,
                visitor_sent: get(&c.visitor_sent),
                agent_sent: get(&c.agent_sent),
                acked: get(&c.acked),
                delivered: get(&c.delivered),
                delivered_per_s: report::rate(delivered_steady, steady),
                acked_per_s: report::rate(
                    end.acked.saturating_sub(self.steady_start.acked),
                    steady,
                ),
                echoes: get(&c.echoes),
                bot_messages: get(&c.bot_messages),
                rejected: get(&c.rejected),
                conversations_assigned: get(&c.assigned),
                conversations_queued: get(&c.queued),
            },
            server: self.process_report(
                self.server.as_ref(),
                self.server_pid,
                |m| m.server,
                &end,
                delivered_steady,
                steady,
            ),
            harness: self.process_report(
                Some(&self.harness),
                None,
                |m| m.harness,
                &end,
                delivered_steady,
                steady,
            ),
            steady_window_s: (self.steady_start.at, end.at),
            slow_readers: self.slow_report(),
            errors: stats.errors(),
            close_codes: stats.close_codes(),
            delivery: self.ctx.ledger.verdict(),
            deadline_hit,
            passed: false,
        }
    }

    fn process_report(
        &self,
        sampler: Option<&Sampler>,
        pid: Option<u32>,
        pick: fn(&Mark) -> Option<Sample>,
        end: &Mark,
        delivered: u64,
        steady: f64,
    ) -> ProcessReport {
        let Some(sampler) = sampler else {
            return ProcessReport::default();
        };
        let history = sampler.history();
        let series: Vec<(f64, u64)> = history
            .series
            .iter()
            .map(|s| (s.at_seconds, s.rss_bytes))
            .collect();
        let (before, loaded, at_end) = (pick(&self.before), pick(&self.steady_start), pick(end));
        let cpu = loaded
            .zip(at_end)
            .map(|(a, b)| (b.cpu_seconds - a.cpu_seconds).max(0.0));
        ProcessReport {
            pid,
            rss_before_bytes: before.map(|s| s.rss_bytes),
            rss_loaded_bytes: loaded.map(|s| s.rss_bytes),
            rss_end_bytes: at_end.map(|s| s.rss_bytes),
            rss_peak_bytes: history.peak_rss_bytes,
            rss_per_connection_bytes: report::per_connection(
                before.map(|s| s.rss_bytes),
                loaded.map(|s| s.rss_bytes),
                self.steady_start.open,
            ),
            cpu_seconds_steady: cpu,
            cpu_cores_steady: cpu.filter(|_| steady > 0.0).map(|c| c / steady),
            cpu_us_per_delivered: cpu.and_then(|c| report::cpu_per_delivery_us(c, delivered)),
            deliveries_per_cpu_second: cpu.filter(|c| *c > 0.0).map(|c| delivered as f64 / c),
            rss_slope_bytes_per_minute: report::rss_slope_per_minute(
                &series,
                self.steady_start.at,
                end.at,
            ),
            rss_slope_late_bytes_per_minute: report::rss_slope_per_minute(
                &series,
                (self.steady_start.at + end.at) / 2.0,
                end.at,
            ),
            rss_series: series,
        }
    }

    fn slow_report(&self) -> Option<SlowReaders> {
        if self.cli.slow_readers == 0 {
            return None;
        }
        let b = &self.ctx.slow;
        let (connected, sent, acked, stopped_reading) = b.progress();
        Some(SlowReaders {
            requested: self.cli.slow_readers,
            connected,
            sent,
            acked,
            stopped_reading,
            flood_per_reader: self.cli.slow_flood,
            flood_sent: get(&b.flood_sent),
            owed_acked: get(&b.owed_acked),
            frames_on_wake: get(&b.frames_on_wake),
            bytes_on_wake: get(&b.bytes_on_wake),
            outcomes: b.outcomes(),
            server_slow_consumer_disconnects: None,
        })
    }

    /// The server's count of slow-consumer cut-offs, from `/metrics` (with `--slow-readers` only).
    async fn server_slow_count(&self) -> Option<u64> {
        if self.cli.slow_readers == 0 {
            return None;
        }
        let api = Api {
            addr: self.ctx.connector.target.addr,
        };
        let value = api.metric("slow_consumer_disconnects").await.ok()??;
        // A counter: a whole number well within range.
        Some(value.max(0.0).round() as u64)
    }

    fn config(&self) -> RunConfig {
        let cli = self.cli;
        let open_loop = cli.scenario == Scenario::Chat && cli.rate > 0.0;
        RunConfig {
            scenario: cli.scenario,
            encoding: cli.encoding,
            target: self.ctx.connector.target.url.clone(),
            visitors: cli.visitors,
            agents: agents_of(cli),
            rate_per_visitor: cli.rate,
            offered_msgs_per_s: open_loop.then_some(cli.rate * cli.visitors as f64),
            duration_s: cli.duration.as_secs_f64(),
            ramp_s: cli.ramp.as_secs_f64(),
            message_bytes: cli.message_bytes,
            text: cli.text.clone(),
            think_ms: cli.think_ms,
            source_ips: cli
                .source_ips
                .as_deref()
                .and_then(|s| SourceIps::parse(s).ok())
                .map_or(0, |s| s.ips().len()),
            spawned_server: self.spawned.clone(),
            slow_readers: cli.slow_readers,
            slow_flood: cli.slow_flood,
            server_env: match self.spawned {
                Some(_) => crate::spawn::BENCH_ENV
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .chain(cli.server_env.iter().map(|(k, v)| format!("{k}={v}")))
                    .collect(),
                None => Vec::new(),
            },
        }
    }
}

impl Drop for Run<'_> {
    fn drop(&mut self) {
        self.stop_sampling.cancel();
        self.ctx.shutdown.cancel();
    }
}

/// Every session the run opens: visitors, agents and slow readers.
fn participants(cli: &Cli) -> usize {
    cli.visitors + agents_of(cli) + cli.slow_readers
}

/// Agents take part in chat and burst only, and never with `--raw`.
fn agents_of(cli: &Cli) -> usize {
    match cli.scenario {
        _ if cli.raw => 0,
        Scenario::Idle => 0,
        Scenario::Chat | Scenario::Burst => cli.agents,
    }
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
