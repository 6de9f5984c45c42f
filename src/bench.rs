//! The benchmark: the full loop against bare syscalls on the same sequences, in the
//! same run, so the figures are ratios that do not depend on the machine's speed.

use crate::exec::Pair;
use crate::gen;
use crate::model::Model;
use crate::run::{run_once_with, Executor, Local};
use crate::step::Step;
use crate::transport::Transport;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde::Serialize;
use std::time::{Duration, Instant};

/// The figures one benchmark run prints.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// The transport.
    pub transport: String,
    /// Cases per run.
    pub cases: usize,
    /// Mean steps per case.
    pub mean_steps: f64,
    /// Full loop (generate, model, execute, observe, compare), one thread.
    pub cases_per_s: f64,
    /// Bare syscalls on fresh pairs, no model, no observation, no checks, one thread.
    pub raw_cases_per_s: f64,
    /// `cases_per_s / raw_cases_per_s`.
    pub ratio: f64,
    /// Full loop on two threads, cases per second in all.
    pub threads2_cases_per_s: f64,
    /// `threads2_cases_per_s / cases_per_s`.
    pub scaling: f64,
    /// Model alone: cases per second (no sockets).
    pub model_cases_per_s: f64,
    /// Disagreements seen during the full-loop runs (should be 0).
    pub mismatches: usize,
    /// Size of one model (what every case clones), in bytes, not counting its heap parts.
    pub model_bytes: usize,
    /// Peak resident memory of the process so far, in KiB (getrusage ru_maxrss).
    pub max_rss_kib: u64,
}

/// Peak resident set size of this process, in KiB.
pub fn max_rss_kib() -> u64 {
    // SAFETY: getrusage fills the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0;
    }
    // Linux and the BSDs report KiB; macOS reports bytes.
    if cfg!(target_os = "macos") {
        ru.ru_maxrss as u64 / 1024
    } else {
        ru.ru_maxrss as u64
    }
}

/// `n` sequences from a fixed seed.
pub fn sequences(n: usize, max_steps: usize, seed: u8) -> Vec<Vec<Step>> {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]),
    );
    let strategy = gen::steps(max_steps);
    (0..n)
        .map(|_| {
            strategy
                .new_tree(&mut runner)
                .expect("generating steps")
                .current()
        })
        .collect()
}

fn full_loop<E: Executor>(
    exec: &mut E,
    model: &Model,
    transport: Transport,
    n: usize,
    seed: u8,
) -> std::io::Result<(Duration, usize)> {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]),
    );
    let strategy = gen::steps(24);
    let mut mismatches = 0;
    let start = Instant::now();
    for _ in 0..n {
        let steps = strategy
            .new_tree(&mut runner)
            .map_err(|e| std::io::Error::other(e.to_string()))?
            .current();
        let run = run_once_with(exec, model, transport, &steps)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        if run.first_mismatch().is_some() {
            mismatches += 1;
        }
    }
    Ok((start.elapsed(), mismatches))
}

fn raw_loop(transport: Transport, seqs: &[Vec<Step>]) -> std::io::Result<Duration> {
    let start = Instant::now();
    for steps in seqs {
        let mut pair = Pair::connect(transport)?;
        for &s in steps {
            pair.call_raw(s);
        }
    }
    Ok(start.elapsed())
}

fn per_s(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

/// Runs the benchmark on the host kernel.
pub fn bench(transport: Transport, model: &Model, cases: usize) -> std::io::Result<BenchReport> {
    let seqs = sequences(cases, 24, 42);
    let mean_steps = seqs.iter().map(|s| s.len()).sum::<usize>() as f64 / cases.max(1) as f64;
    // Warm up both paths once so neither pays for first-touch costs.
    raw_loop(transport, &seqs[..cases.min(200)])?;
    full_loop(&mut Local, model, transport, cases.min(200), 42)?;
    // Interleave raw and full runs and keep each one's best, so a burst of load on
    // the machine does not land on one side only.
    let mut raw_best = Duration::MAX;
    let mut full_best = Duration::MAX;
    let mut mismatches = 0;
    for _ in 0..3 {
        raw_best = raw_best.min(raw_loop(transport, &seqs)?);
        let (d, m) = full_loop(&mut Local, model, transport, cases, 42)?;
        full_best = full_best.min(d);
        mismatches += m;
    }
    let mut two_best = Duration::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        let results: Vec<std::io::Result<(Duration, usize)>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..2u8)
                .map(|t| {
                    s.spawn(move || full_loop(&mut Local, model, transport, cases / 2, 42 + t))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("bench thread"))
                .collect()
        });
        for r in results {
            mismatches += r?.1;
        }
        two_best = two_best.min(start.elapsed());
    }
    let model_start = Instant::now();
    for steps in &seqs {
        let mut m = model.clone();
        for &s in steps {
            std::hint::black_box(m.step(s));
        }
    }
    let model_time = model_start.elapsed();
    let cases_per_s = per_s(cases, full_best);
    let raw_cases_per_s = per_s(cases, raw_best);
    let threads2_cases_per_s = per_s(cases / 2 * 2, two_best);
    Ok(BenchReport {
        transport: transport.name().to_string(),
        cases,
        mean_steps,
        cases_per_s,
        raw_cases_per_s,
        ratio: cases_per_s / raw_cases_per_s,
        threads2_cases_per_s,
        scaling: threads2_cases_per_s / cases_per_s,
        model_cases_per_s: per_s(cases, model_time),
        mismatches,
        model_bytes: std::mem::size_of_val(model),
        max_rss_kib: max_rss_kib(),
    })
}
