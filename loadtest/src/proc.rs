//! Sampling a process's memory and CPU from `/proc/<pid>`, from outside it,
//! so the server under test pays nothing for being measured.
//!
//! RSS comes from `VmRSS` in `/proc/<pid>/status`; CPU time is `utime + stime`
//! from `/proc/<pid>/stat`, in clock ticks converted with `getconf CLK_TCK`.
//! [`Sampler`] keeps the latest sample, the peak and a coarse series for the
//! leak check.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One look at a process.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Sample {
    /// Resident set size, bytes.
    pub rss_bytes: u64,
    /// User + system CPU time so far, seconds.
    pub cpu_seconds: f64,
    /// When, in seconds since the harness started.
    pub at_seconds: f64,
}

/// Reads samples of one process.
#[derive(Debug, Clone)]
pub struct Probe {
    pid: ProcRef,
    ticks_per_second: f64,
}

#[derive(Debug, Clone)]
enum ProcRef {
    Pid(u32),
    OwnProcess,
}

impl Probe {
    /// A probe of process `pid`.
    pub fn pid(pid: u32) -> Probe {
        Probe {
            pid: ProcRef::Pid(pid),
            ticks_per_second: clock_ticks_per_second(),
        }
    }

    /// A probe of the harness itself (to show it is not the bottleneck).
    pub fn own_process() -> Probe {
        Probe {
            pid: ProcRef::OwnProcess,
            ticks_per_second: clock_ticks_per_second(),
        }
    }

    fn dir(&self) -> String {
        match self.pid {
            ProcRef::Pid(pid) => format!("/proc/{pid}"),
            ProcRef::OwnProcess => "/proc/self".to_string(),
        }
    }

    /// Reads one sample; `None` when the process is gone or /proc is unreadable.
    pub fn sample(&self) -> Option<Sample> {
        let dir = self.dir();
        let stat = std::fs::read_to_string(format!("{dir}/stat")).ok()?;
        let status = std::fs::read_to_string(format!("{dir}/status")).ok()?;
        let ticks = parse_stat_cpu_ticks(&stat)?;
        Some(Sample {
            rss_bytes: parse_status_rss_bytes(&status)?,
            cpu_seconds: ticks_to_seconds(ticks, self.ticks_per_second),
            at_seconds: crate::stats::now_seconds(),
        })
    }
}

/// utime + stime (fields 14 and 15 of `/proc/<pid>/stat`), in clock ticks.
/// The command name (field 2) may hold spaces and parentheses, so fields are
/// counted from the last `)`.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    // After ")" come field 3 (state), 4, 5, …: utime is field 14, the 12th here.
    let mut fields = after_comm.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// `VmRSS:   1234 kB` from `/proc/<pid>/status`, in bytes.
pub fn parse_status_rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut parts = line["VmRSS:".len()..].split_ascii_whitespace();
    let value: u64 = parts.next()?.parse().ok()?;
    let unit = match parts.next() {
        Some("kB") | None => 1024,
        Some("mB") | Some("MB") => 1024 * 1024,
        Some(_) => return None,
    };
    Some(value * unit)
}

fn ticks_to_seconds(ticks: u64, per_second: f64) -> f64 {
    // Precision loss only beyond 2^53 ticks, i.e. never.
    ticks as f64 / per_second
}

/// `getconf CLK_TCK`, or 100 (every Linux this runs on) when that fails.
fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// What the sampler has seen of one process.
#[derive(Debug, Clone, Default)]
pub struct History {
    pub first: Option<Sample>,
    pub latest: Option<Sample>,
    pub peak_rss_bytes: u64,
    /// One sample per second (for the leak check and the JSON report).
    pub series: Vec<Sample>,
}

/// Samples a process every `every` until cancelled, keeping a [`History`].
#[derive(Debug, Clone)]
pub struct Sampler {
    history: Arc<Mutex<History>>,
    probe: Probe,
}

impl Sampler {
    /// Starts sampling in the background; stops when `stop` is cancelled.
    pub fn start(probe: Probe, every: Duration, stop: CancellationToken) -> Sampler {
        let sampler = Sampler {
            history: Arc::default(),
            probe,
        };
        let task = sampler.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            let mut next_series = f64::NEG_INFINITY;
            loop {
                tokio::select! {
                    // Stop with the run.
                    _ = stop.cancelled() => return,
                    // Take one sample.
                    _ = tick.tick() => {
                        if let Some(s) = task.probe.sample() {
                            task.record(s, &mut next_series);
                        }
                    }
                }
            }
        });
        sampler
    }

    /// Keeps `s`, and puts it in the series when a whole second has come
    /// round. `next_series` advances by exactly one second (or jumps ahead
    /// after a stall), so the series does not drift to one point every
    /// 1.25 s when the ticks land just short of a second.
    fn record(&self, s: Sample, next_series: &mut f64) {
        let mut h = self.history.lock().expect("sampler lock");
        h.first.get_or_insert(s);
        h.latest = Some(s);
        h.peak_rss_bytes = h.peak_rss_bytes.max(s.rss_bytes);
        if s.at_seconds >= *next_series {
            h.series.push(s);
            *next_series = if *next_series + 1.0 < s.at_seconds {
                s.at_seconds + 1.0
            } else {
                *next_series + 1.0
            };
        }
    }

    /// Takes a sample now (also recorded), for phase boundaries.
    pub fn sample_now(&self) -> Option<Sample> {
        let s = self.probe.sample()?;
        let mut h = self.history.lock().expect("sampler lock");
        h.first.get_or_insert(s);
        h.latest = Some(s);
        h.peak_rss_bytes = h.peak_rss_bytes.max(s.rss_bytes);
        Some(s)
    }

    /// A copy of the history so far.
    pub fn history(&self) -> History {
        self.history.lock().expect("sampler lock").clone()
    }

    /// The latest sample.
    pub fn latest(&self) -> Option<Sample> {
        self.history.lock().expect("sampler lock").latest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (switch board (x)) S 1 4242 4242 0 -1 4194560 1500 0 0 0 250 75 0 0 20 0 9 0 123456 987654321 3000 18446744073709551615 1 1 0 0 0 0 0 4096 17003 0 0 0 17 1 0 0 0 0 0";

    #[test]
    fn cpu_ticks_from_stat() {
        assert_eq!(parse_stat_cpu_ticks(STAT), Some(325));
        assert_eq!(parse_stat_cpu_ticks("1 (x) S 1 2"), None);
        assert_eq!(parse_stat_cpu_ticks("garbage"), None);
    }

    #[test]
    fn rss_from_status() {
        let status = "Name:\tswitchboard\nVmPeak:\t  99999 kB\nVmRSS:\t   12345 kB\nThreads:\t9\n";
        assert_eq!(parse_status_rss_bytes(status), Some(12345 * 1024));
        assert_eq!(parse_status_rss_bytes("Name:\tzombie\n"), None);
    }

    #[test]
    fn series_keeps_one_point_per_second() {
        let sampler = Sampler {
            history: Arc::default(),
            probe: Probe::own_process(),
        };
        let mut next = f64::NEG_INFINITY;
        // Ticks every 250 ms, slightly late; then a 3-second stall.
        let times = (0..40)
            .map(|i| f64::from(i) * 0.25 + 0.01)
            .chain([13.0, 13.3, 14.0]);
        for at in times {
            let s = Sample {
                at_seconds: at,
                ..Sample::default()
            };
            sampler.record(s, &mut next);
        }
        let kept: Vec<f64> = sampler
            .history()
            .series
            .iter()
            .map(|s| s.at_seconds)
            .collect();
        assert_eq!(kept.len(), 12, "{kept:?}");
        assert!(kept[..10]
            .windows(2)
            .all(|w| (0.75..=1.25).contains(&(w[1] - w[0]))));
        assert_eq!(&kept[10..], &[13.0, 14.0]);
    }

    #[test]
    fn own_process_is_readable() {
        let s = Probe::own_process().sample().expect("/proc/self");
        assert!(s.rss_bytes > 0);
        assert!(s.cpu_seconds >= 0.0);
        assert!((ticks_to_seconds(250, 100.0) - 2.5).abs() < 1e-9);
    }
}
