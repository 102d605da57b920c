//! National-scale figures for docs/scale.md: a snapshot loaded from a file as the sidecar's
//! file source does (streamed into the indexes), resident bytes per work, the peak while a
//! second snapshot is built beside it (a swap), and 1,000-change deltas applied to it.
//!
//! ```text
//! cargo run --release --example bench_fixture -- snapshot /tmp/g1.json --orgs 10000 --users 300000 --works 3000000
//! cargo run --release --example scale -- /tmp/g1.json --works 3000000 --users 300000
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "test, bench and example code: a panic is a failure with its location"
)]

use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use streetgate::grants::Snapshot;
use streetgate::grants::synthetic::synthetic_delta;

#[derive(Parser)]
struct Cli {
    /// A v1 document (version 1) written by `bench_fixture snapshot`.
    file: std::path::PathBuf,
    #[arg(long)]
    works: usize,
    #[arg(long)]
    users: usize,
    /// Deltas to time.
    #[arg(long, default_value_t = 30)]
    deltas: usize,
}

/// (VmRSS, VmHWM) in bytes.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU seconds (user + system) this process has used, from /proc.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at ") ".
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat, 11 and 12 after the name; 100 ticks/s.
    (ticks(11) + ticks(12)) / 100.0
}

fn mib(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

fn main() -> anyhow::Result<()> {
    let started = Instant::now();
    let cli = Cli::parse();
    let (rss0, _) = memory();
    let file = std::fs::File::open(&cli.file).context("snapshot file")?;
    let size = file.metadata()?.len();
    let first = Snapshot::from_reader_sized(file, None, size).context("load")?;
    let ready = started.elapsed();
    let (rss1, hwm1) = memory();
    let steady = rss1.saturating_sub(rss0);
    println!(
        "load: {} works, {} users ready {ready:.2?} after process start ({:.2} CPU s)",
        first.work_count(),
        first.user_count(),
        cpu_seconds()
    );
    println!(
        "resident: {:.1} MiB above start = {:.1} B/work; peak while loading {:.1} MiB above start = {:.2}x steady",
        mib(steady),
        steady as f64 / cli.works as f64,
        mib(hwm1.saturating_sub(rss0)),
        hwm1.saturating_sub(rss0) as f64 / steady as f64
    );

    // A swap: the next version built while this one is in force.
    let file = std::fs::File::open(&cli.file).context("snapshot file")?;
    let t = Instant::now();
    let cpu = cpu_seconds();
    let second = Snapshot::from_reader_sized(file, None, size).context("load again")?;
    let (rss2, hwm2) = memory();
    println!(
        "swap: second snapshot built in {:.2?} ({:.2} CPU s); both alive {:.1} MiB, peak {:.1} MiB above start = {:.2}x one snapshot",
        t.elapsed(),
        cpu_seconds() - cpu,
        mib(rss2.saturating_sub(rss0)),
        mib(hwm2.saturating_sub(rss0)),
        hwm2.saturating_sub(rss0) as f64 / steady as f64
    );
    drop(second);

    // Deltas of 1,000 changes each, applied in a chain as the sidecar would.
    let mut current = first;
    let mut times = Vec::new();
    for round in 0..cli.deltas {
        let text = synthetic_delta(current.version, round, cli.works, cli.users);
        let t = Instant::now();
        let doc = streetgate::grants::load_delta(text.as_bytes()).context("parse delta")?;
        let next = current.apply_delta(&doc).context("apply delta")?;
        times.push(t.elapsed());
        current = next;
    }
    times.sort();
    if !times.is_empty() {
        println!(
            "delta of 1,000 changes (parse + validate + apply), {} runs: median {:.2?}, max {:.2?}; works now {}",
            times.len(),
            times[times.len() / 2],
            times[times.len() - 1],
            current.work_count()
        );
    }
    Ok(())
}
