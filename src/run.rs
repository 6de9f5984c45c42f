//! Running a step sequence through the model and the kernel side by side.

use crate::exec::{Case, Executor, Local, Stack};
use crate::model::{Model, Platform, WireEvent};
use crate::script::Scenario;
use crate::step::{Observation, Sock, Start, Step, StepResult};
use crate::transport::Transport;
use serde::Serialize;
use std::time::Duration;

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
    /// Every socket on the kernel afterwards.
    pub kernel_after: Observation,
    /// What the model predicted.
    pub model: StepResult,
    /// Every socket in the model afterwards.
    pub model_after: Observation,
    /// Segments the model put on the wire for this step.
    pub wire: Vec<WireEvent>,
    /// Under `network held`: the segments the stack sent during this step, with their
    /// numbers, and the model's (`None` under `network instant`: not compared).
    pub segs: Option<SegsSeen>,
    /// Ways to go the model dropped at this step (it keeps a bounded number of them):
    /// a disagreement from here on may be the bound's rather than the rules'.
    pub ways_dropped: usize,
    /// Where the step may do what the model does not follow, why (see
    /// [`crate::model::Prediction::unfollowed`]).
    pub unfollowed: Option<&'static str>,
}

/// The segments one step sent under `network held`, from both sides.
#[derive(Clone, Debug, Serialize)]
pub struct SegsSeen {
    /// What the stack sent.
    pub kernel: Vec<crate::step::WireSeg>,
    /// What the model predicted.
    pub model: Vec<crate::step::WireSeg>,
    /// The other ways the model left open (a timer that may or may not have fired in a
    /// sleep that ended near its deadline); empty almost always.
    pub model_or: Vec<Vec<crate::step::WireSeg>>,
}

impl SegsSeen {
    /// Whether every segment the stack sent was predicted, and no other, in one of the
    /// ways the model left open.
    pub fn agree(&self) -> bool {
        self.kernel == self.model || self.model_or.contains(&self.kernel)
    }
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
            && self.segs.as_ref().is_none_or(SegsSeen::agree)
    }
}

/// A whole case.
#[derive(Clone, Debug, Serialize)]
pub struct CaseRun {
    /// The transport it ran over.
    pub transport: Transport,
    /// How its world started.
    pub start: Start,
    /// Buffer sizes set before connecting.
    pub bufs: crate::step::Bufs,
    /// Whether segments waited for `deliver` steps.
    pub network: crate::step::Network,
    /// Each step.
    pub steps: Vec<StepRecord>,
    /// Wall time of the kernel side, from the connected pair to the last observation.
    pub elapsed: Duration,
    /// On a settling executor: an earlier try of this case disagreed with the model but
    /// this one agreed, so the disagreement did not reproduce (a delivery slower than
    /// the settle bound). Its script, so that callers can report it.
    pub unstable: Option<String>,
    /// The packets captured, when the case asked (see [`crate::exec::Case::capture`]).
    pub packets: Vec<crate::exec::Packet>,
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
                for s in Sock::ALL {
                    let (m, k) = (&r.model_after[s.index()], &r.kernel_after[s.index()]);
                    if !m.admits(k) {
                        notes.push(format!("after: kernel {s} {k}, model {s} {m}"));
                    }
                }
                if let Some(w) = r.segs.as_ref().filter(|w| !w.agree()) {
                    notes.push(format!(
                        "sent: kernel {}; model {}",
                        crate::step::wire_segs(&w.kernel),
                        crate::step::wire_segs(&w.model)
                    ));
                }
                if r.ways_dropped > 0 {
                    notes.push(ways_dropped_note(r.ways_dropped));
                }
                if let Some(why) = r.unfollowed.filter(|_| !r.agrees()) {
                    notes.push(unfollowed_note(why));
                }
                let note = if notes.is_empty() {
                    None
                } else {
                    Some(notes.join("; "))
                };
                (r.step, Some(r.kernel.clone()), note)
            })
            .collect();
        crate::script::render_on(
            self.transport,
            self.start,
            self.bufs,
            self.network,
            comments,
            &lines,
        )
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

/// Runs `steps` through `model` (a fresh world) step by step.
pub fn predict(model: &Model, steps: &[Step]) -> Vec<crate::model::Prediction> {
    let mut m = model.clone();
    steps.iter().map(|&s| m.step(s)).collect()
}

/// Runs `steps` through `model` beside recorded results alone (no views after each
/// step): as [`predict_seen`] for tables that keep only each step's result.
pub fn predict_given(
    model: &Model,
    steps: &[Step],
    results: &[StepResult],
) -> Vec<crate::model::Prediction> {
    let unseen = [crate::step::EndView::Absent; 5];
    let kernel: Vec<_> = results.iter().map(|r| (r.clone(), unseen)).collect();
    predict_seen(model, steps, &kernel)
}

/// Runs `steps` through `model` beside the kernel's results for them: where the model
/// leaves a count open (a range), the kernel's answer settles it and the model goes on
/// from there (see [`crate::model::Hint`]).
pub fn predict_seen(
    model: &Model,
    steps: &[Step],
    kernel: &[(StepResult, Observation)],
) -> Vec<crate::model::Prediction> {
    let mut m = model.clone();
    steps
        .iter()
        .enumerate()
        .map(|(i, &s)| m.step_seen(s, kernel.get(i).map(|(r, o)| (r, o))))
        .collect()
}

/// [`predict_seen`], where under `network held` the segments the stack sent at each
/// step (`wire`) also settle what the model leaves open (a timer that may or may not
/// have fired in a sleep).
pub fn predict_seen_wire(
    model: &Model,
    steps: &[Step],
    kernel: &[(StepResult, Observation)],
    wire: &[Vec<crate::step::WireSeg>],
) -> Vec<crate::model::Prediction> {
    let mut m = model.clone();
    steps
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            let seen = kernel.get(i);
            let p = m.step_seen(s, seen.map(|(r, o)| (r, o)));
            if let (Some((r, _)), Some(w)) = (seen, wire.get(i)) {
                m.settle_held(s, r, w);
            }
            p
        })
        .collect()
}

/// What a step's note says where the model dropped `n` ways to go because it keeps a
/// bounded number of them.
pub fn ways_dropped_note(n: usize) -> String {
    format!(
        "the model dropped {n} ways to go here (it keeps at most {} per connection, and {} orders of a step's segments): what disagrees from here on may be that bound's",
        crate::model::alternatives::MAX_ALTERNATIVES,
        crate::model::interleave::MAX_ORDERS
    )
}

/// What a disagreeing step's note says where the model does not follow what the step
/// may do (see [`crate::model::Prediction::unfollowed`]).
pub fn unfollowed_note(why: &str) -> String {
    format!("not followed by the model here: {why}")
}

/// Runs `case` once on `exec` and in a copy of `model`, and pairs up the results.
pub fn run_once_with(
    exec: &mut dyn Executor,
    model: &Model,
    case: &Case,
) -> Result<CaseRun, RunError> {
    let kernel = exec.run(case).map_err(RunError::Setup)?;
    let predictions = predict_seen_wire(model, &case.steps, &kernel.steps, &kernel.wire);
    Ok(pair_up(case, kernel, predictions))
}

/// The kernel's run of `case` beside the model's predictions for it, step by step.
pub fn pair_up(
    case: &Case,
    kernel: crate::exec::KernelRun,
    predictions: Vec<crate::model::Prediction>,
) -> CaseRun {
    let packets = kernel.packets;
    let mut kernel_wire = kernel.wire.into_iter();
    let records = case
        .steps
        .iter()
        .zip(kernel.steps)
        .zip(predictions)
        .map(|((&step, (k, k_after)), p)| {
            let seen = kernel_wire.next().unwrap_or_default();
            StepRecord {
                step,
                kernel: k,
                kernel_after: k_after,
                model: p.result,
                model_after: p.after,
                wire: p.wire,
                ways_dropped: p.ways_dropped,
                unfollowed: p.unfollowed,
                segs: p.segs.map(|model| {
                    let mut model_or = p.segs_or;
                    // Where the model left ways open, the one the kernel took is shown.
                    let model = match model_or.iter().position(|o| *o == seen) {
                        Some(i) if model != seen => std::mem::replace(&mut model_or[i], model),
                        _ => model,
                    };
                    SegsSeen {
                        kernel: seen,
                        model,
                        model_or,
                    }
                }),
            }
        })
        .collect();
    CaseRun {
        transport: case.transport,
        start: case.start,
        bufs: case.bufs,
        network: case.network,
        steps: records,
        // Sleeps and lingering closes are time the case asks for: only the rest counts
        // against the timer-free budget.
        elapsed: kernel.elapsed.saturating_sub(case.time_bound()),
        unstable: None,
        packets,
    }
}

/// Runs `case` on `exec`, trying again when a disagreeing run was too slow to be sure
/// no unexpected timer fired. A fast disagreement is always returned as it is.
pub fn run_case_with(
    exec: &mut dyn Executor,
    model: &Model,
    case: &Case,
) -> Result<CaseRun, RunError> {
    let mut slowest = Duration::ZERO;
    for _ in 0..SLOW_RETRIES {
        let run = run_once_with(exec, model, case)?;
        if run.first_mismatch().is_some() {
            if let Some(why) = exec.interference() {
                return Err(RunError::Interference(why));
            }
        }
        if run.first_mismatch().is_some() && exec.settles() {
            return rerun_unsettled(exec, model, case, run);
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
    case: &Case,
    first: CaseRun,
) -> Result<CaseRun, RunError> {
    for _ in 0..SETTLE_RETRIES {
        let mut again = run_once_with(exec, model, case)?;
        if again.first_mismatch().is_none() {
            again.unstable =
                Some(first.to_script(&["disagreed once, agreed when run again".into()]));
            return Ok(again);
        }
    }
    Ok(first)
}

/// The stack a platform's cases run on.
pub fn stack_of(platform: Platform) -> Stack {
    match platform {
        Platform::Linux => Stack::Host,
        Platform::Gvisor => Stack::Gvisor,
        Platform::Smoltcp => Stack::Smoltcp,
        Platform::Lwip => Stack::Lwip,
        Platform::Linux61 => Stack::Uml,
    }
}

/// The model of `case`'s world as `platform` behaves.
pub fn model_for(case: &Case, platform: Platform) -> Model {
    Model::with_start(
        case.transport,
        crate::model::profile::Profile::of(platform),
        case.start,
    )
    .with_bufs(case.bufs)
    .with_network(case.network)
}

/// Runs `case` on the host kernel against the Linux model (see [`run_case_with`]).
/// Another platform's cases need that platform's executor
/// ([`crate::exec::executor_for`]): asking for one here is an error, never a silent
/// run of the host kernel against another platform's model.
pub fn run_case(case: &Case, platform: Platform) -> Result<CaseRun, RunError> {
    if stack_of(platform) != Stack::Host {
        return Err(RunError::Unsupported(platform));
    }
    run_case_with(&mut Local, &model_for(case, platform), case)
}

/// Runs a parsed scenario (its own transport header wins over `default`) on the host
/// kernel: as [`run_case`], Linux only.
pub fn run_scenario(
    sc: &Scenario,
    default: Transport,
    platform: Platform,
) -> Result<CaseRun, RunError> {
    run_case(&sc.case(default), platform)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::Op;

    #[test]
    fn the_host_kernel_is_never_run_against_another_platforms_model() {
        let case = Case::new(
            Transport::Tcp4,
            Start::Connected,
            vec![Step::call(Sock::A, Op::Close)],
        );
        for platform in Platform::ALL {
            let r = run_case(&case, platform);
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
