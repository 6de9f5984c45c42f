//! Fuzz campaigns: many generated cases over several threads, shrinking the first
//! disagreement to a minimal script. Reproducible from the seed it prints.

use crate::exec::{Case, Executor};
use crate::generate;
use crate::model::Model;
use crate::run::run_case_with;
use crate::step::Start;
use crate::transport::Transport;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// A campaign's parameters.
#[derive(Clone, Debug)]
pub struct Campaign {
    /// Cases in all, split over the threads.
    pub cases: u64,
    /// Longest sequence generated.
    pub max_steps: usize,
    /// The seed every thread's generator derives from.
    pub seed: u64,
    /// Worker threads.
    pub threads: usize,
    /// The transport.
    pub transport: Transport,
    /// The starts cases are drawn from.
    pub starts: &'static [Start],
}

/// A shrunk disagreement.
#[derive(Clone, Debug)]
pub struct Finding {
    /// The minimal case.
    pub case: Case,
    /// It as a script, with kernel results as expectations and model notes.
    pub script: String,
    /// The thread whose generator found it (for reproduction).
    pub thread: usize,
}

/// What a campaign ended with.
#[derive(Debug)]
pub enum Verdict {
    /// Every case agreed.
    Clean {
        /// Cases run.
        cases: u64,
        /// Cases that disagreed once on a settling executor and agreed when run again.
        unstable: u64,
    },
    /// A disagreement, shrunk.
    Mismatch(Finding),
    /// A case could not be run at all (setup failure, or always too slow).
    Error(String),
}

/// The 32-byte generator seed for one thread (splitmix64 of the campaign seed).
pub fn thread_seed(seed: u64, thread: usize) -> [u8; 32] {
    let mut x = seed ^ (thread as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut out = [0u8; 32];
    for chunk in out.chunks_mut(8) {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        chunk.copy_from_slice(&z.to_le_bytes());
    }
    out
}

/// Runs a campaign. `make_exec` gives each thread its executor, `model_for` the model
/// of a case's world; `progress` is called with the number of cases done so far (from
/// any thread).
pub fn run_campaign<E, F>(
    c: &Campaign,
    model_for: &(dyn Fn(&Case) -> Model + Sync),
    make_exec: F,
    progress: &(dyn Fn(u64) + Sync),
) -> Verdict
where
    E: Executor,
    F: Fn() -> std::io::Result<E> + Sync,
{
    let done = AtomicU64::new(0);
    let unstable = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let result: Mutex<Option<Verdict>> = Mutex::new(None);
    let threads = c.threads.max(1);
    std::thread::scope(|s| {
        for t in 0..threads {
            let share = c.cases / threads as u64 + u64::from((t as u64) < c.cases % threads as u64);
            let (done, stop, result, unstable) = (&done, &stop, &result, &unstable);
            let make_exec = &make_exec;
            s.spawn(move || {
                let exec = match make_exec() {
                    Ok(e) => std::cell::RefCell::new(e),
                    Err(e) => {
                        stop.store(true, Ordering::Relaxed);
                        result
                            .lock()
                            .unwrap()
                            .get_or_insert(Verdict::Error(e.to_string()));
                        return;
                    }
                };
                let config = Config {
                    cases: share.min(u32::MAX as u64) as u32,
                    failure_persistence: None,
                    max_shrink_iters: 10_000,
                    max_global_rejects: u32::MAX,
                    ..Config::default()
                };
                let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &thread_seed(c.seed, t));
                let mut runner = TestRunner::new_with_rng(config, rng);
                let shrinking = std::cell::Cell::new(false);
                let strategy = generate::cases(c.transport, c.starts, c.max_steps);
                let outcome = runner.run(&strategy, |case| {
                    if stop.load(Ordering::Relaxed) && !shrinking.get() {
                        return Ok(());
                    }
                    if !shrinking.get() {
                        progress(done.fetch_add(1, Ordering::Relaxed) + 1);
                    }
                    let run = run_case_with(&mut *exec.borrow_mut(), &model_for(&case), &case)
                        .map_err(|e| TestCaseError::fail(format!("error: {e}")))?;
                    if let Some(script) = &run.unstable {
                        if unstable.fetch_add(1, Ordering::Relaxed) == 0 {
                            eprintln!("first unstable case (disagreed once, agreed when run again):\n{script}");
                        }
                    }
                    if run.first_mismatch().is_some() {
                        shrinking.set(true);
                        stop.store(true, Ordering::Relaxed);
                        return Err(TestCaseError::fail(run.to_script(&[])));
                    }
                    Ok(())
                });
                if let Err(TestError::Fail(why, case)) = outcome {
                    let why = why.to_string();
                    let v = match why.strip_prefix("error: ") {
                        Some(e) => Verdict::Error(e.to_string()),
                        None => Verdict::Mismatch(Finding {
                            case,
                            script: why,
                            thread: t,
                        }),
                    };
                    let mut r = result.lock().unwrap();
                    if !matches!(*r, Some(Verdict::Mismatch(_))) {
                        *r = Some(v);
                    }
                } else if let Err(e) = outcome {
                    result
                        .lock()
                        .unwrap()
                        .get_or_insert(Verdict::Error(e.to_string()));
                }
            });
        }
    });
    result.into_inner().unwrap().unwrap_or(Verdict::Clean {
        cases: done.load(Ordering::Relaxed),
        unstable: unstable.load(Ordering::Relaxed),
    })
}
