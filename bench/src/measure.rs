//! A small timing harness for throughput figures. The machine is shared, so a figure and its
//! baseline are measured in alternating short rounds and the ratio is the median of the
//! per-round ratios: a burst of load hits both sides of one round alike.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// Rounds per comparison (odd, for a clean median).
const ROUNDS: usize = 9;

/// How long one round of one side lasts: `PALREG_BENCH_ROUND_MS` (default 150 ms).
pub fn round_duration() -> Duration {
    let ms = std::env::var("PALREG_BENCH_ROUND_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150);
    Duration::from_millis(ms)
}

/// Operations per second of `op` over one round.
fn one_round<T>(op: &mut impl FnMut() -> T, round: Duration) -> f64 {
    let start = Instant::now();
    let mut count = 0u64;
    let mut batch = 1u64;
    loop {
        for _ in 0..batch {
            black_box(op());
        }
        count += batch;
        let elapsed = start.elapsed();
        if elapsed >= round {
            return count as f64 / elapsed.as_secs_f64();
        }
        batch = (batch * 2).min(1 << 16);
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// A figure beside its baseline.
#[derive(Debug, Clone, Copy)]
pub struct Comparison {
    /// Median operations per second of the measured operation.
    pub ops: f64,
    /// Median operations per second of the baseline.
    pub baseline: f64,
    /// Median of the per-round ratios ops / baseline.
    pub ratio: f64,
    /// Ratio of the two sides' fastest rounds: the least disturbed by other load.
    pub best_ratio: f64,
}

/// Measures `op` and `baseline` in alternating rounds.
pub fn compare<A, B>(mut op: impl FnMut() -> A, mut baseline: impl FnMut() -> B) -> Comparison {
    let round = round_duration();
    one_round(&mut op, round / 2);
    one_round(&mut baseline, round / 2);
    let (mut ops, mut bases, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let a = one_round(&mut op, round);
        let b = one_round(&mut baseline, round);
        ops.push(a);
        bases.push(b);
        ratios.push(a / b);
    }
    let fastest = |xs: &[f64]| xs.iter().copied().fold(0.0, f64::max);
    Comparison {
        best_ratio: fastest(&ops) / fastest(&bases),
        ops: median(ops),
        baseline: median(bases),
        ratio: median(ratios),
    }
}

/// A rate in human units.
pub fn human_rate(ops: f64) -> String {
    if ops >= 1e6 {
        format!("{:.2} M/s", ops / 1e6)
    } else if ops >= 1e3 {
        format!("{:.1} k/s", ops / 1e3)
    } else {
        format!("{ops:.1} /s")
    }
}

/// Time per operation in human units.
pub fn human_time(ops: f64) -> String {
    let secs = 1.0 / ops;
    if secs >= 1e-3 {
        format!("{:.1} ms", secs * 1e3)
    } else if secs >= 1e-6 {
        format!("{:.2} µs", secs * 1e6)
    } else {
        format!("{:.0} ns", secs * 1e9)
    }
}

/// The 1-minute load average, where the OS tells it (Linux), to read the figures by.
pub fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace().next().map(str::to_owned)
}

/// Logical CPUs available.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
