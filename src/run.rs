//! Running a step sequence through the model and the kernel side by side.

use crate::exec::Pair;
use crate::model::{Model, Platform, WireEvent};
use crate::script::{render, Scenario};
use crate::step::{Observation, Step, StepResult};
use crate::transport::Transport;
use serde::Serialize;
use std::time::{Duration, Instant};

/// The longest a case may take for its kernel results to count when they disagree with
/// the model. The model assumes no TCP timer fires during a case; the shortest one that
/// could change what a step sees is the delayed-ACK timer (TCP_DELACK_MIN, 40 ms). A
/// slower case that disagrees is run again rather than reported.
pub const TIMER_FREE_BUDGET: Duration = Duration::from_millis(25);

/// How often a slow, disagreeing case is tried again before giving up on it.
const SLOW_RETRIES: usize = 4;

/// How often a disagreeing case on a settling executor is run again to see whether the
/// disagreement reproduces.
const SETTLE_RETRIES: usize = 2;

/// One step's results, from both sides.
#[derive(Clone, Debug, Serialize)]
pub struct StepRecord {
    /// The step.
    pub step: Step,
    /// What the kernel returned.
    pub kernel: StepResult,
    /// Both ends on the kernel afterwards.
    pub kernel_after: Observation,
    /// What the model predicted.
    pub model: StepResult,
    /// Both ends in the model afterwards.
    pub model_after: Observation,
    /// Segments the model put on the wire for this step.
    pub wire: Vec<WireEvent>,
}

impl StepRecord {
    /// Whether the model's prediction admits everything the kernel did.
    pub fn agrees(&self) -> bool {
        self.model.admits(&self.kernel)
            && self
                .model_after
                .iter()
                .zip(&self.kernel_after)
                .all(|(m, k)| m.admits(k))
    }
}

/// A whole case.
#[derive(Clone, Debug, Serialize)]
pub struct CaseRun {
    /// The transport it ran over.
    pub transport: Transport,
    /// Each step.
    pub steps: Vec<StepRecord>,
    /// Wall time of the kernel side, from the connected pair to the last observation.
    pub elapsed: Duration,
    /// On a settling executor: an earlier try of this case disagreed with the model but
    /// this one agreed, so the disagreement did not reproduce (a delivery slower than
    /// the settle bound). Its script, so that callers can report it.
    pub unstable: Option<String>,
}

impl CaseRun {
    /// The index of the first step where model and kernel disagree.
    pub fn first_mismatch(&self) -> Option<usize> {
        self.steps.iter().position(|s| !s.agrees())
    }

    /// The run as a script: each step with the kernel's result as its expectation, and
    /// a comment where the model said otherwise.
    pub fn to_script(&self, comments: &[String]) -> String {
        let lines: Vec<_> = self
            .steps
            .iter()
            .map(|r| {
                let mut notes = vec![];
                if !r.model.admits(&r.kernel) {
                    notes.push(format!("model: {}", r.model));
                }
                for (i, (m, k)) in r.model_after.iter().zip(&r.kernel_after).enumerate() {
                    if !m.admits(k) {
                        let end = if i == 0 { "a" } else { "b" };
                        notes.push(format!("after: kernel {end} {k}, model {end} {m}"));
                    }
                }
                let note = if notes.is_empty() {
                    None
                } else {
                    Some(notes.join("; "))
                };
                (r.step, Some(r.kernel.clone()), note)
            })
            .collect();
        render(self.transport, comments, &lines)
    }
}

/// Why a case could not be run.
#[derive(Debug)]
pub enum RunError {
    /// The pair could not be created (socket, bind, connect, accept).
    Setup(std::io::Error),
    /// Every try took longer than [`TIMER_FREE_BUDGET`] and disagreed with the model, so
    /// a timer may have fired: no verdict.
    TooSlow(Duration),
    /// The case disagreed, but something outside it (see [`Executor::interference`])
    /// may have caused that: no verdict.
    Interference(String),
    /// [`run_case`] and [`run_scenario`] run on the host kernel only; this platform's
    /// kernel side needs its own executor.
    Unsupported(Platform),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Setup(e) => write!(f, "cannot create a connected pair: {e}"),
            RunError::Interference(why) => f.write_str(why),
            RunError::Unsupported(p) => write!(
                f,
                "run_case and run_scenario run the host kernel, which is not {p}: use run_case_with(&mut executor_for(Platform::{p:?}, &worker)?, &Model::new(transport, Platform::{p:?}), ..) to run on {p}"
            ),
            RunError::TooSlow(d) => write!(
                f,
                "every try took {:.1} ms or more, past the {} ms in which no TCP timer can fire; no verdict (is the machine overloaded?)",
                d.as_secs_f64() * 1e3,
                TIMER_FREE_BUDGET.as_millis()
            ),
        }
    }
}

impl std::error::Error for RunError {}

/// What the kernel did in one case: each step's result and both ends afterwards.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct KernelRun {
    /// Per step: the result and the observation after it.
    pub steps: Vec<(StepResult, Observation)>,
    /// Wall time from the connected pair to the last observation.
    pub elapsed: Duration,
    /// Of `elapsed`, the time spent waiting for observations to settle after each
    /// step (zero where the executor does not settle: see
    /// [`crate::exec::worker::Settle`]).
    #[serde(default)]
    pub settle: Duration,
}

/// Something that can run a whole case on real sockets: the host kernel in this
/// process, or a worker in a sandbox. A whole case at a time, so that a remote
/// executor costs one round trip per case, not per step.
pub trait Executor {
    /// Runs `steps` on a fresh pair over `transport`.
    fn run_steps(&mut self, transport: Transport, steps: &[Step]) -> std::io::Result<KernelRun>;

    /// Runs `steps` as bare calls on a fresh pair: no observation, no SIGPIPE check.
    /// The benchmark's baseline.
    fn run_raw(&mut self, transport: Transport, steps: &[Step]) -> std::io::Result<()> {
        run_local_raw(transport, steps).map(|_| ())
    }

    /// Something outside the cases that may have changed their results (asked only
    /// when a case disagrees with the model); `None` when there is no such sign.
    fn interference(&mut self) -> Option<String> {
        None
    }

    /// Whether this executor's stack delivers on threads of its own, so observations
    /// are taken after a bounded settle and a slow delivery can outlast it.
    fn settles(&self) -> bool {
        false
    }
}

impl<T: Executor + ?Sized> Executor for Box<T> {
    fn run_steps(&mut self, transport: Transport, steps: &[Step]) -> std::io::Result<KernelRun> {
        (**self).run_steps(transport, steps)
    }
    fn interference(&mut self) -> Option<String> {
        (**self).interference()
    }
    fn settles(&self) -> bool {
        (**self).settles()
    }
    fn run_raw(&mut self, transport: Transport, steps: &[Step]) -> std::io::Result<()> {
        (**self).run_raw(transport, steps)
    }
}

/// The executor for `platform`. `worker` is the command that serves cases inside a
/// sandbox (`closefuzz worker`), used by sandboxed platforms only.
pub fn executor_for(
    platform: Platform,
    worker: &[std::ffi::OsString],
) -> std::io::Result<Box<dyn Executor + Send>> {
    Ok(match platform {
        Platform::Linux => Box::new(Local),
        Platform::Gvisor => Box::new(crate::exec::gvisor::Gvisor::with_worker(worker.to_vec())?),
    })
}

/// The host kernel, in this thread.
#[derive(Default, Clone, Copy, Debug)]
pub struct Local;

impl Executor for Local {
    fn run_steps(&mut self, transport: Transport, steps: &[Step]) -> std::io::Result<KernelRun> {
        run_local(transport, steps)
    }

    fn interference(&mut self) -> Option<String> {
        crate::exec::netns::interference()
    }
}

/// Runs `steps` on a fresh local pair, observing after each.
pub fn run_local(transport: Transport, steps: &[Step]) -> std::io::Result<KernelRun> {
    let mut pair = Pair::connect(transport)?;
    let start = Instant::now();
    let mut out = Vec::with_capacity(steps.len());
    for &step in steps {
        let r = pair.step(step);
        out.push((r, pair.observe()));
    }
    let elapsed = start.elapsed();
    drop(pair);
    Ok(KernelRun {
        steps: out,
        elapsed,
        settle: Duration::ZERO,
    })
}

/// Runs `steps` as bare calls on a fresh local pair; returns the time they took.
pub fn run_local_raw(transport: Transport, steps: &[Step]) -> std::io::Result<Duration> {
    let start = Instant::now();
    let mut pair = Pair::connect(transport)?;
    for &s in steps {
        pair.call_raw(s);
    }
    drop(pair);
    Ok(start.elapsed())
}

/// Runs `steps` through `model` (a fresh connection) step by step.
pub fn predict(model: &Model, steps: &[Step]) -> Vec<crate::model::Prediction> {
    let mut m = model.clone();
    steps.iter().map(|&s| m.step(s)).collect()
}

/// Runs `steps` once on `exec` and in a copy of `model`, and pairs up the results.
pub fn run_once_with(
    exec: &mut dyn Executor,
    model: &Model,
    transport: Transport,
    steps: &[Step],
) -> Result<CaseRun, RunError> {
    let kernel = exec.run_steps(transport, steps).map_err(RunError::Setup)?;
    let predictions = predict(model, steps);
    let records = steps
        .iter()
        .zip(kernel.steps)
        .zip(predictions)
        .map(|((&step, (k, k_after)), p)| StepRecord {
            step,
            kernel: k,
            kernel_after: k_after,
            model: p.result,
            model_after: p.after,
            wire: p.wire,
        })
        .collect();
    Ok(CaseRun {
        transport,
        steps: records,
        elapsed: kernel.elapsed,
        unstable: None,
    })
}

/// Runs `steps` on `exec`, trying again when a disagreeing run was too slow to be sure
/// no timer fired. A fast disagreement is always returned as it is.
pub fn run_case_with(
    exec: &mut dyn Executor,
    model: &Model,
    transport: Transport,
    steps: &[Step],
) -> Result<CaseRun, RunError> {
    let mut slowest = Duration::ZERO;
    for _ in 0..SLOW_RETRIES {
        let run = run_once_with(exec, model, transport, steps)?;
        if run.first_mismatch().is_some() {
            if let Some(why) = exec.interference() {
                return Err(RunError::Interference(why));
            }
        }
        if run.first_mismatch().is_some() && exec.settles() {
            return rerun_unsettled(exec, model, transport, steps, run);
        }
        if run.first_mismatch().is_none() || run.elapsed <= TIMER_FREE_BUDGET {
            return Ok(run);
        }
        slowest = slowest.max(run.elapsed);
    }
    Err(RunError::TooSlow(slowest))
}

/// A settling executor's disagreement counts only if it reproduces: the case is run
/// again; if a rerun agrees, that run is returned with the first one's script in
/// [`CaseRun::unstable`] (callers report these), else the first disagreement stands.
fn rerun_unsettled(
    exec: &mut dyn Executor,
    model: &Model,
    transport: Transport,
    steps: &[Step],
    first: CaseRun,
) -> Result<CaseRun, RunError> {
    for _ in 0..SETTLE_RETRIES {
        let mut again = run_once_with(exec, model, transport, steps)?;
        if again.first_mismatch().is_none() {
            again.unstable =
                Some(first.to_script(&["disagreed once, agreed when run again".into()]));
            return Ok(again);
        }
    }
    Ok(first)
}

/// Runs `steps` on the host kernel against the platform's model (see [`run_case_with`]).
/// Only [`Platform::Linux`], whose model is the host's: any other `platform` is
/// [`RunError::Unsupported`], since comparing the host with another platform's model
/// would report the host's own behaviour as that platform's differences.
pub fn run_case(
    transport: Transport,
    platform: Platform,
    steps: &[Step],
) -> Result<CaseRun, RunError> {
    if platform != Platform::Linux {
        return Err(RunError::Unsupported(platform));
    }
    run_case_with(
        &mut Local,
        &Model::new(transport, platform),
        transport,
        steps,
    )
}

/// Runs a parsed scenario (its own transport header wins over `default`) on the host
/// kernel: as [`run_case`], Linux only.
pub fn run_scenario(
    sc: &Scenario,
    default: Transport,
    platform: Platform,
) -> Result<CaseRun, RunError> {
    run_case(sc.transport.unwrap_or(default), platform, &sc.step_list())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::{End, Op};

    #[test]
    fn the_host_kernel_is_never_run_against_another_platforms_model() {
        let steps = [Step {
            end: End::A,
            op: Op::Close,
        }];
        for platform in Platform::ALL {
            let r = run_case(Transport::Tcp4, platform, &steps);
            if platform == Platform::Linux {
                assert!(r.is_ok(), "{platform}: {:?}", r.err());
            } else {
                let e = r.expect_err("a platform other than the host's is refused");
                assert!(matches!(e, RunError::Unsupported(p) if p == platform));
                assert!(e.to_string().contains("run_case_with"), "{e}");
            }
        }
        let sc = Scenario::parse("s", "a: close\n").unwrap();
        assert!(matches!(
            run_scenario(&sc, Transport::Tcp4, Platform::Gvisor),
            Err(RunError::Unsupported(Platform::Gvisor))
        ));
    }
}
