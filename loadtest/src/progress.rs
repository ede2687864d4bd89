//! The live view of a run: an indicatif bar for the current phase with
//! connection counts, message rates, errors and the server's RSS and CPU,
//! redrawn twice a second from the shared counters. On a terminal only;
//! elsewhere (CI, `bench/run.sh` logs) each phase is one line on stderr.

use crate::ledger::Ledger;
use crate::proc::Sampler;
use crate::stats::{get, Stats};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const TICKS: u64 = 1000;

#[derive(Debug)]
struct Phase {
    started: Instant,
    length: Duration,
}

/// The progress display; stops redrawing when dropped.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
    phase: Arc<Mutex<Phase>>,
    stop: CancellationToken,
    quiet: bool,
}

/// What the redraw task reads.
#[derive(Debug, Clone)]
pub struct Sources {
    pub stats: Arc<Stats>,
    pub ledger: Arc<Ledger>,
    pub server: Option<Sampler>,
    pub connections: u64,
}

impl Progress {
    pub fn start(sources: Sources, quiet: bool) -> Progress {
        let visible = !quiet && std::io::stderr().is_terminal();
        let bar = ProgressBar::with_draw_target(
            Some(TICKS),
            if visible {
                ProgressDrawTarget::stderr_with_hz(4)
            } else {
                ProgressDrawTarget::hidden()
            },
        );
        bar.set_style(
            ProgressStyle::with_template("{prefix:>7} [{bar:24}] {msg}")
                .expect("valid progress template")
                .progress_chars("=> "),
        );
        let phase = Arc::new(Mutex::new(Phase {
            started: Instant::now(),
            length: Duration::ZERO,
        }));
        let stop = CancellationToken::new();
        tokio::spawn(redraw(bar.clone(), phase.clone(), sources, stop.clone()));
        Progress {
            bar,
            phase,
            stop,
            quiet,
        }
    }

    /// Enters a phase expected to last `length`.
    pub fn phase(&self, name: &'static str, length: Duration) {
        *self.phase.lock().expect("phase lock") = Phase {
            started: Instant::now(),
            length,
        };
        self.bar.set_prefix(name);
        self.bar.set_position(0);
        if self.bar.is_hidden() && !self.quiet {
            eprintln!("loadtest: {name} ({:.1}s)", length.as_secs_f64());
        }
    }

    /// Prints a line above the bar.
    pub fn note(&self, line: &str) {
        if self.bar.is_hidden() {
            if !self.quiet {
                eprintln!("loadtest: {line}");
            }
        } else {
            self.bar.println(line);
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.cancel();
        self.bar.finish_and_clear();
    }
}

async fn redraw(bar: ProgressBar, phase: Arc<Mutex<Phase>>, s: Sources, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut last = (Instant::now(), 0u64, 0u64, None::<f64>);
    loop {
        tokio::select! {
            // The run is over.
            _ = stop.cancelled() => return,
            // Redraw.
            _ = tick.tick() => {}
        }
        let c = &s.stats.counters;
        let now = Instant::now();
        let dt = now.duration_since(last.0).as_secs_f64().max(1e-3);
        let (delivered, acked) = (get(&c.delivered), get(&c.acked));
        let sample = s.server.as_ref().and_then(Sampler::latest);
        let cpu = match (sample, last.3) {
            (Some(now_s), Some(before)) => {
                format!(" cpu {:>3.0}%", (now_s.cpu_seconds - before) / dt * 100.0)
            }
            _ => String::new(),
        };
        let rss = sample.map_or(String::new(), |x| {
            format!(" rss {:.0}MiB", x.rss_bytes as f64 / 1048576.0)
        });
        bar.set_message(format!(
            "conns {}/{} fail {} | {:.0} deliv/s {:.0} acks/s | pending {} | errors {}{rss}{cpu}",
            get(&c.open),
            s.connections,
            get(&c.connect_failed),
            (delivered - last.1) as f64 / dt,
            (acked - last.2) as f64 / dt,
            s.ledger.outstanding(),
            s.stats.error_count(),
        ));
        last = (now, delivered, acked, sample.map(|x| x.cpu_seconds));
        let p = phase.lock().expect("phase lock");
        let fraction = if p.length.is_zero() {
            0.0
        } else {
            p.started.elapsed().as_secs_f64() / p.length.as_secs_f64()
        };
        drop(p);
        bar.set_position((fraction.clamp(0.0, 1.0) * TICKS as f64) as u64);
    }
}
