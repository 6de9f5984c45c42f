//! Fuzz campaigns: many generated cases over several threads, shrinking the first
//! disagreement to a minimal script. Reproducible from the seed it prints.

use crate::exec::{Case, Executor};
use crate::generate;
use crate::model::Model;
use crate::run::{run_case_with, CaseRun};
use crate::step::{EndView, Errno, Outcome, PollSet, Start, Step, Surface};
use crate::transport::Transport;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// The longest sequence a campaign may generate: a bound on a case's time and memory
/// (each step writes or reads at most [`crate::step::MAX_WRITE`] bytes).
pub const MAX_STEPS: usize = 256;
/// The most threads a campaign may run (each holds a pair of sockets and, on a
/// sandboxed platform, a sandbox).
pub const MAX_THREADS: usize = 64;
/// The most cases a campaign may run (about a day on one thread on the host kernel).
pub const MAX_CASES: u64 = 1_000_000_000;

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
    /// What the stack can be asked: nothing else is drawn.
    pub surface: Surface,
    /// Whose model the generator follows to draw deliveries only where something is
    /// in flight (under `network held`).
    pub platform: crate::model::Platform,
    /// Whether segments wait for `deliver` steps (`--network held`: the generator draws
    /// deliveries, drops and reorders).
    pub network: crate::step::Network,
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
    /// The case as it first disagreed, before shrinking, as a script.
    pub found: String,
    /// Whether shrinking ran to the end: no single step of `steps` can be removed
    /// with the case still disagreeing. False when the campaign was interrupted while
    /// shrinking.
    pub minimal: bool,
}

/// How many of a campaign's cases reached the corners the issue tracker asks about:
/// full buffers, and the places where the model leaves a count open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Cases run to the end (the denominator of the others).
    pub cases: u64,
    /// Cases where a write found a buffer full: EAGAIN, or fewer bytes than asked.
    pub full_buffer: u64,
    /// Cases where the model predicted a range for some step (a count, a prefix of the
    /// data, a poll flag that may or may not be set).
    pub ranged: u64,
    /// Steps whose model prediction was a range, and all steps.
    pub ranged_steps: (u64, u64),
    /// Cases with a `sleep`, and how many of those sent a segment while sleeping under
    /// `network held` (a retransmission by the timer).
    pub slept: (u64, u64),
    /// Under `network held`, Linux: cases where the model predicted a fast
    /// retransmission, and how many of those held new data or a FIN back by the
    /// congestion window and sent it later.
    pub fast_retransmit: (u64, u64),
}

impl Coverage {
    /// Counts one case's run.
    pub fn count(&mut self, run: &crate::run::CaseRun) {
        self.cases += 1;
        let full = run
            .steps
            .iter()
            .any(|r| match (r.step.as_call(), &r.kernel.outcome) {
                (Some((_, op)), Outcome::Err(e)) => op.write_len().is_some() && *e == Errno::EAGAIN,
                (Some((_, op)), Outcome::Wrote(k)) => {
                    op.write_len().is_some_and(|n| *k < n as usize)
                }
                _ => false,
            });
        let ranged: u64 = run
            .steps
            .iter()
            .filter(|r| {
                r.model.outcome.is_range()
                    || r.model_after.iter().any(|v| {
                        matches!(v, EndView::Open { poll, .. } if poll.maybe() != PollSet::NONE)
                    })
            })
            .count() as u64;
        let sleeps = run
            .steps
            .iter()
            .filter(|r| matches!(r.step, Step::Sleep { .. }));
        let resent = sleeps
            .clone()
            .any(|r| r.segs.as_ref().is_some_and(|w| !w.kernel.is_empty()));
        let noted = |note: &str| {
            run.steps
                .iter()
                .any(|r| r.wire.iter().any(|w| w.note == note))
        };
        let fast = noted(crate::model::tcp::FAST_RETRANSMIT_NOTE);
        self.fast_retransmit.0 += u64::from(fast);
        self.fast_retransmit.1 += u64::from(fast && noted(crate::model::tcp::CWND_RELEASE_NOTE));
        self.slept.0 += u64::from(sleeps.count() > 0);
        self.slept.1 += u64::from(resent);
        self.full_buffer += u64::from(full);
        self.ranged += u64::from(ranged > 0);
        self.ranged_steps.0 += ranged;
        self.ranged_steps.1 += run.steps.len() as u64;
    }

    fn add(&mut self, o: &Coverage) {
        self.cases += o.cases;
        self.full_buffer += o.full_buffer;
        self.ranged += o.ranged;
        self.ranged_steps.0 += o.ranged_steps.0;
        self.ranged_steps.1 += o.ranged_steps.1;
        self.slept.0 += o.slept.0;
        self.slept.1 += o.slept.1;
        self.fast_retransmit.0 += o.fast_retransmit.0;
        self.fast_retransmit.1 += o.fast_retransmit.1;
    }
}

impl std::fmt::Display for Coverage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pct = |n: u64, d: u64| 100.0 * n as f64 / d.max(1) as f64;
        write!(
            f,
            "{} cases ({:.3}%) filled a buffer (EAGAIN or a partial write); {} ({:.3}%) had a step the model predicts as a range ({:.3}% of steps)",
            self.full_buffer,
            pct(self.full_buffer, self.cases),
            self.ranged,
            pct(self.ranged, self.cases),
            pct(self.ranged_steps.0, self.ranged_steps.1)
        )?;
        if self.slept.0 > 0 {
            write!(
                f,
                "; {} slept ({} of them sent a segment while sleeping)",
                self.slept.0, self.slept.1
            )?;
        }
        if self.fast_retransmit.0 > 0 {
            write!(
                f,
                "; {} had a fast retransmission ({} of them sent data or a FIN the congestion window had held back)",
                self.fast_retransmit.0, self.fast_retransmit.1
            )?;
        }
        Ok(())
    }
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
        /// What the cases reached.
        coverage: Coverage,
    },
    /// A disagreement, shrunk.
    Mismatch(Finding),
    /// A case could not be run at all (setup failure, or always too slow).
    Error(String),
    /// Stopped from outside (the `interrupted` flag of [`run_campaign_until`]) before
    /// the campaign ended.
    Interrupted {
        /// Cases run before it stopped.
        cases: u64,
        /// As in [`Verdict::Clean`].
        unstable: u64,
        /// A disagreement found before it stopped (shrunk as far as it got).
        finding: Option<Finding>,
    },
}

impl Campaign {
    /// Why these parameters cannot run, if they cannot: every number is bounded (see
    /// [`MAX_STEPS`], [`MAX_THREADS`], [`MAX_CASES`]).
    pub fn check(&self) -> Result<(), String> {
        if !(1..=MAX_CASES).contains(&self.cases) {
            return Err(format!("--cases {}: expected 1 to {MAX_CASES}", self.cases));
        }
        if !(1..=MAX_STEPS).contains(&self.max_steps) {
            return Err(format!(
                "--max-steps {}: expected 1 to {MAX_STEPS}",
                self.max_steps
            ));
        }
        if !(1..=MAX_THREADS).contains(&self.threads) {
            return Err(format!(
                "--threads {}: expected 1 to {MAX_THREADS}",
                self.threads
            ));
        }
        if !self.surface.runs(self.transport) {
            return Err(format!(
                "transport {}: this stack does not run it (it runs {})",
                self.transport,
                names(self.surface.transports.iter())
            ));
        }
        if let Some(s) = self
            .starts
            .iter()
            .find(|s| !self.surface.starts.contains(s))
        {
            return Err(format!(
                "start {s}: this stack cannot set it up (it starts {})",
                names(self.surface.starts.iter())
            ));
        }
        Ok(())
    }
}

fn names<T: std::fmt::Display>(items: impl Iterator<Item = T>) -> String {
    items.map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
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
    run_campaign_until(c, model_for, make_exec, progress, &AtomicBool::new(false))
}

/// [`run_campaign`], stopping between cases once `interrupted` is set (by a signal
/// handler, say) with [`Verdict::Interrupted`].
pub fn run_campaign_until<E, F>(
    c: &Campaign,
    model_for: &(dyn Fn(&Case) -> Model + Sync),
    make_exec: F,
    progress: &(dyn Fn(u64) + Sync),
    interrupted: &AtomicBool,
) -> Verdict
where
    E: Executor,
    F: Fn() -> std::io::Result<E> + Sync,
{
    if let Err(e) = c.check() {
        return Verdict::Error(e);
    }
    let done = AtomicU64::new(0);
    let unstable = AtomicU64::new(0);
    let coverage = Mutex::new(Coverage::default());
    let stop = AtomicBool::new(false);
    let result: Mutex<Option<Verdict>> = Mutex::new(None);
    // More threads than cases would only start executors that run nothing.
    let threads = c.threads.min(c.cases as usize);
    std::thread::scope(|s| {
        for t in 0..threads {
            let share = c.cases / threads as u64 + u64::from((t as u64) < c.cases % threads as u64);
            let (done, stop, result, unstable) = (&done, &stop, &result, &unstable);
            let coverage = &coverage;
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
                    // A test that returns Reject ends the run at once: that is how a
                    // thread stops when another found a disagreement or the campaign
                    // is interrupted (returning Ok would still generate every
                    // remaining case). Nothing else returns Reject.
                    max_global_rejects: 0,
                    ..Config::default()
                };
                let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &thread_seed(c.seed, t));
                let mine = std::cell::RefCell::new(Coverage::default());
                let mut runner = TestRunner::new_with_rng(config, rng);
                let shrinking = std::cell::Cell::new(false);
                // The case as it first disagreed, before proptest shrinks it.
                let first = std::cell::RefCell::new(None::<String>);
                let strategy = generate::cases_net(
                    c.transport,
                    c.starts,
                    c.max_steps,
                    c.surface,
                    c.platform,
                    c.network,
                );
                let outcome = runner.run(&strategy, |case| {
                    if interrupted.load(Ordering::Relaxed) {
                        // While shrinking, Ok means "this simpler case passes": the
                        // shrinker then keeps the last failing case without running more.
                        return if shrinking.get() {
                            Ok(())
                        } else {
                            Err(TestCaseError::reject("interrupted"))
                        };
                    }
                    if stop.load(Ordering::Relaxed) && !shrinking.get() {
                        return Err(TestCaseError::reject("stopped"));
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
                    if !shrinking.get() {
                        mine.borrow_mut().count(&run);
                    }
                    if run.first_mismatch().is_some() {
                        if !shrinking.get() {
                            *first.borrow_mut() = Some(run.to_script(&[]));
                        }
                        shrinking.set(true);
                        stop.store(true, Ordering::Relaxed);
                        return Err(TestCaseError::fail(run.to_script(&[])));
                    }
                    Ok(())
                });
                coverage.lock().unwrap().add(&mine.borrow());
                if let Err(TestError::Fail(why, case)) = outcome {
                    let why = why.to_string();
                    let v = match why.strip_prefix("error: ") {
                        Some(e) => Verdict::Error(e.to_string()),
                        None => {
                            let (case, run, minimal) = minimize(
                                &mut *exec.borrow_mut(),
                                model_for,
                                case,
                                interrupted,
                            );
                            Verdict::Mismatch(Finding {
                                found: first.borrow_mut().take().unwrap_or_else(|| why.clone()),
                                script: run.map_or(why, |r| r.to_script(&[])),
                                case,
                                thread: t,
                                minimal,
                            })
                        }
                    };
                    let mut r = result.lock().unwrap();
                    if !matches!(*r, Some(Verdict::Mismatch(_))) {
                        *r = Some(v);
                    }
                } else if let Err(e) = outcome {
                    // A reject-abort is this thread stopping on request (see above).
                    if !stop.load(Ordering::Relaxed) && !interrupted.load(Ordering::Relaxed) {
                        result
                            .lock()
                            .unwrap()
                            .get_or_insert(Verdict::Error(e.to_string()));
                    }
                }
            });
        }
    });
    let cases = done.load(Ordering::Relaxed);
    let unstable = unstable.load(Ordering::Relaxed);
    let verdict = result.into_inner().unwrap();
    if interrupted.load(Ordering::Relaxed) {
        // An error after an interrupt is most likely the interrupt itself (a sandbox
        // killed by the terminal's Ctrl-C), so it is not reported as one.
        let finding = match verdict {
            Some(Verdict::Mismatch(f)) => Some(f),
            _ => None,
        };
        return Verdict::Interrupted {
            cases,
            unstable,
            finding,
        };
    }
    verdict.unwrap_or(Verdict::Clean {
        cases,
        unstable,
        coverage: coverage.into_inner().unwrap(),
    })
}

/// The most cases the greedy pass of [`minimize`] runs.
const MINIMIZE_BUDGET: usize = 10_000;

/// Whether the generator could have drawn `steps` as the model sees them: every
/// sleep ends outside every timer's uncertain window, and under `network held` no new
/// data or FIN leaves an end whose congestion window the model knows only as a bound.
fn drawable(model: &Model, steps: &[Step]) -> bool {
    let mut m = model.clone();
    steps.iter().all(|&s| {
        let ok = match s {
            Step::Sleep { ms } => m.sleep_certain(u64::from(ms)),
            Step::Call { sock, op } if crate::generate::sends_new(op) => {
                !m.held_send_uncertain(sock)
            }
            _ => true,
        };
        m.step(s);
        ok
    })
}

/// Greedy removal after proptest's shrink, which removes steps only in ways its vector
/// tree allows and can leave repeats behind (three identical writes where two show
/// the same): tries removing each run of identical steps, then each single step, on
/// the executor, keeping every removal after which the case still disagrees, until a
/// whole pass removes nothing. Returns the steps, the run of them that disagreed
/// (`None` if the case no longer disagrees at all), and whether the pass finished: then
/// no single step can be removed with the case still disagreeing (1-minimal).
pub fn minimize(
    exec: &mut dyn Executor,
    model_for: &(dyn Fn(&Case) -> Model + Sync),
    case: Case,
    interrupted: &AtomicBool,
) -> (Case, Option<CaseRun>, bool) {
    let budget = std::cell::Cell::new(MINIMIZE_BUDGET);
    let (transport, start, bufs, network) = (case.transport, case.start, case.bufs, case.network);
    let mut fails = |s: &[Step]| -> Option<CaseRun> {
        budget.set(budget.get().checked_sub(1)?);
        if interrupted.load(Ordering::Relaxed) {
            return None;
        }
        let c = Case::new(transport, start, s.to_vec())
            .with_bufs(bufs)
            .with_network(network);
        if !drawable(&model_for(&c), s) {
            // Removing a step can leave one the generator would never draw (a sleep
            // across a timer the model does not follow, new data where it does not
            // know the congestion window): such a candidate disagrees for a reason
            // the model declines, not the one found.
            return None;
        }
        // An error (too slow, interference) gives no verdict: the step is kept.
        run_case_with(exec, &model_for(&c), &c)
            .ok()
            .filter(|r| r.first_mismatch().is_some())
    };
    let as_case = |steps: Vec<Step>| {
        Case::new(transport, start, steps)
            .with_bufs(bufs)
            .with_network(network)
    };
    let Some(mut last) = fails(&case.steps) else {
        return (case, None, false);
    };
    let mut cur = case.steps;
    loop {
        let mut removed = false;
        let mut i = 0;
        while i < cur.len() {
            let j = i + cur[i..].iter().take_while(|&&s| s == cur[i]).count();
            if j - i >= 2 {
                let cand: Vec<Step> = [&cur[..i], &cur[j..]].concat();
                if let Some(run) = fails(&cand) {
                    (cur, last, removed) = (cand, run, true);
                    continue;
                }
            }
            i = j;
        }
        let mut i = 0;
        while i < cur.len() {
            let cand: Vec<Step> = [&cur[..i], &cur[i + 1..]].concat();
            match fails(&cand) {
                Some(run) => (cur, last, removed) = (cand, run, true),
                None => i += 1,
            }
        }
        if budget.get() == 0 || interrupted.load(Ordering::Relaxed) {
            return (as_case(cur), Some(last), false);
        }
        if !removed {
            return (as_case(cur), Some(last), true);
        }
    }
}
