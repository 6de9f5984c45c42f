//! Human-readable and JSON renderings of runs: the replay table and the explain ladder.

use crate::model::{Model, Platform};
use crate::run::CaseRun;
use crate::script::{Scenario, ScriptStep};
use crate::step::{EndView, Sock, Start, Step};
use serde::Serialize;

/// One replayed step, judged.
#[derive(Clone, Debug, Serialize)]
pub struct ReplayStep {
    /// Line in the scenario file.
    pub line: usize,
    /// The step, as written.
    pub step: String,
    /// The written expectation that holds on the platform run, if any.
    pub expect: Option<String>,
    /// The kernel's result.
    pub kernel: String,
    /// The model's prediction.
    pub model: String,
    /// Every socket on the kernel afterwards (`-` for one that does not exist).
    pub kernel_after: [String; 5],
    /// Every socket in the model afterwards.
    pub model_after: [String; 5],
    /// Kernel result and both views agree with the model.
    pub model_agrees: bool,
    /// The kernel's result meets the written expectation (true when none is written).
    pub expectation_met: bool,
    /// Under a `sigpipe` header, at a step that raised SIGPIPE: what a process with
    /// that treatment experienced, in words.
    pub process: Option<String>,
    /// Under `network held`: every segment the stack sent during the step, with its
    /// numbers (`a>b FIN seq 5 ack 0, ...`, or `-`); `None` under `network instant`.
    pub kernel_sent: Option<String>,
    /// The segments the model predicted, written the same way.
    pub model_sent: Option<String>,
    /// Ways to go the model dropped at this step (it keeps a bounded number): a
    /// disagreement from here on may be that bound's.
    pub ways_dropped: usize,
    /// Where the step may do what the model does not follow, why (kept only where the
    /// step disagrees).
    pub unfollowed: Option<String>,
}

/// A replayed scenario, judged.
#[derive(Clone, Debug, Serialize)]
pub struct ReplayReport {
    /// The file.
    pub file: String,
    /// The transport it ran over.
    pub transport: String,
    /// The platform the kernel side ran on.
    pub platform: String,
    /// How the world started (`connected` or `listening`).
    pub start: String,
    /// Who each socket is: "client" and "server" sides where the world starts from a
    /// listener (the accepted side is the server's), plain `a`/`b` otherwise.
    pub roles: String,
    /// Each step.
    pub steps: Vec<ReplayStep>,
    /// Every step agreed and met its expectation.
    pub pass: bool,
}

/// Who the sockets are, in words, for a world that starts as `start`.
pub fn roles(start: Start) -> &'static str {
    match start {
        Start::Connected => "a connected to b (a connected, b was accepted)",
        Start::Listening => {
            "clients a and c; the server's listener l and the sockets it accepted, b and d"
        }
    }
}

/// Judges a run of `sc` step by step.
pub fn replay_report(sc: &Scenario, run: &CaseRun, platform: Platform) -> ReplayReport {
    let steps: Vec<ReplayStep> = sc
        .steps
        .iter()
        .zip(&run.steps)
        .map(|(ss, r): (&ScriptStep, _)| ReplayStep {
            line: ss.line,
            step: ss.step.to_string(),
            expect: ss.expect_on(platform).map(|e| e.to_string()),
            kernel: r.kernel.to_string(),
            process: sc
                .sigpipe
                .filter(|_| r.kernel.sigpipe)
                .map(|d| d.at_sigpipe().to_string()),
            model: r.model.to_string(),
            kernel_after: r.kernel_after.map(|v| v.to_string()),
            model_after: r.model_after.map(|v| v.to_string()),
            model_agrees: r.agrees(),
            kernel_sent: r.segs.as_ref().map(|w| crate::step::wire_segs(&w.kernel)),
            model_sent: r.segs.as_ref().map(|w| crate::step::wire_segs(&w.model)),
            ways_dropped: r.ways_dropped,
            unfollowed: r.unfollowed.filter(|_| !r.agrees()).map(str::to_string),
            expectation_met: ss.expect_on(platform).is_none_or(|e| e.matches(&r.kernel)),
        })
        .collect();
    let pass = steps.iter().all(|s| s.model_agrees && s.expectation_met);
    ReplayReport {
        file: sc.name.clone(),
        transport: run.transport.name().to_string(),
        platform: platform.name().to_string(),
        start: run.start.name().to_string(),
        roles: roles(run.start).to_string(),
        steps,
        pass,
    }
}

/// The replay table as text.
pub fn replay_text(r: &ReplayReport) -> String {
    let mut out = format!("{} ({} on {})\n", r.file, r.transport, r.platform);
    if r.start != Start::Connected.name() {
        out.push_str(&format!("  start {}: {}\n", r.start, r.roles));
    }
    out.push_str(&format!(
        "  {:>4}  {:<18} {:<16} {:<18} {:<18} {}\n",
        "line", "step", "expect", "kernel", "model", ""
    ));
    for s in &r.steps {
        out.push_str(&format!(
            "  {:>4}  {:<18} {:<16} {:<18} {:<18} {}\n",
            s.line,
            s.step,
            s.expect.as_deref().unwrap_or("-"),
            s.kernel,
            s.model,
            step_verdict(s).unwrap_or("ok")
        ));
        if let Some(p) = &s.process {
            out.push_str(&format!("        {p}\n"));
        }
        if s.ways_dropped > 0 {
            out.push_str(&format!(
                "        {}\n",
                crate::run::ways_dropped_note(s.ways_dropped)
            ));
        }
        if let Some(why) = &s.unfollowed {
            out.push_str(&format!("        {}\n", crate::run::unfollowed_note(why)));
        }
        if let (Some(k), Some(m)) = (&s.kernel_sent, &s.model_sent) {
            if k != m {
                out.push_str(&format!(
                    "        sent: kernel {k}
"
                ));
                out.push_str(&format!(
                    "              model  {m}
"
                ));
            }
        }
        if !s.model_agrees && (s.kernel_after != s.model_after) {
            for sock in Sock::ALL {
                let i = sock.index();
                if s.kernel_after[i] != s.model_after[i] {
                    out.push_str(&format!(
                        "        after, {sock}: kernel {} / model {}\n",
                        s.kernel_after[i], s.model_after[i]
                    ));
                }
            }
        }
    }
    out.push_str(&verdict_line(r));
    out
}

/// What is wrong with a step, if anything.
fn step_verdict(s: &ReplayStep) -> Option<&'static str> {
    match (s.model_agrees, s.expectation_met) {
        (true, true) => None,
        (false, true) => Some("MODEL DIFFERS"),
        (true, false) => Some("EXPECTATION UNMET"),
        (false, false) => Some("MODEL DIFFERS, EXPECTATION UNMET"),
    }
}

/// The last line of a replay or explain: PASS, or FAIL and the lines that failed.
fn verdict_line(r: &ReplayReport) -> String {
    if r.pass {
        return "  PASS\n".into();
    }
    let failed: Vec<String> = r
        .steps
        .iter()
        .filter_map(|s| step_verdict(s).map(|v| format!("line {}: {}", s.line, v.to_lowercase())))
        .collect();
    format!("  FAIL ({})\n", failed.join("; "))
}

const LADDER_WIDTH: usize = 44;

/// An arrow across the ladder: clients (`a`, `c`) stand on the left, the sockets of
/// the server side (`b`, `d`, `l`) on the right.
fn arrow(from: Sock, to: Sock, label: &str) -> String {
    let inner = LADDER_WIDTH - 4;
    let label = format!(" {label} {from}>{to} ");
    let left = (inner.saturating_sub(label.chars().count())) / 2;
    let right = inner.saturating_sub(label.chars().count() + left);
    if matches!(from, Sock::A | Sock::C) {
        format!("  |{}{}{}>|", "-".repeat(left), label, "-".repeat(right))
    } else {
        format!("  |<{}{}{}|", "-".repeat(left), label, "-".repeat(right))
    }
}

fn ends_text(model: &Model) -> String {
    let mut out = String::new();
    for s in Sock::ALL {
        let d = model.describe(s);
        if d != "not created" {
            out.push_str(&format!("    {s}: {d}\n"));
        }
    }
    out
}

fn view_text(v: &EndView) -> String {
    v.to_string()
}

/// The explain ladder: each step, both ends' model state before and after, and the
/// segments the step put on the wire, drawn between the two ends.
///
/// Each step shows its written expectation for `platform` beside the kernel's and the
/// model's results, and the text ends with the verdict `replay` gives (see
/// [`replay_report`] for the exit status).
pub fn explain_text(sc: &Scenario, run: &CaseRun, platform: Platform) -> String {
    let report = replay_report(sc, run, platform);
    let mut model = Model::with_start(
        run.transport,
        crate::model::profile::Profile::of(platform),
        run.start,
    )
    .with_bufs(run.bufs)
    .with_network(run.network);
    let mut out = String::new();
    out.push_str(&format!(
        "{} ({} on {})\n",
        sc.name,
        run.transport,
        platform.name()
    ));
    for d in &sc.description {
        out.push_str(&format!("  # {d}\n"));
    }
    let (left, right) = match run.start {
        Start::Connected => ("a", "b"),
        Start::Listening => ("client a c", "server l b d"),
    };
    out.push_str(&format!(
        "\n  {:<w$}{}\n",
        left,
        right,
        w = LADDER_WIDTH - 1 - right.len().saturating_sub(1)
    ));
    out.push_str(&ends_text(&model));
    for (i, r) in run.steps.iter().enumerate() {
        let step: Step = r.step;
        let p = model.step_seen(step, Some((&r.kernel, &r.kernel_after)));
        let line = sc.steps.get(i).map(|s| s.line).unwrap_or(0);
        let judged = report.steps.get(i);
        out.push_str(&format!(
            "\n  {step}   (line {line})\n    expect: {}   kernel: {}   model: {}{}\n",
            judged.and_then(|s| s.expect.as_deref()).unwrap_or("-"),
            r.kernel,
            r.model,
            match judged.and_then(step_verdict) {
                Some(v) => format!("   <-- {v}"),
                None => String::new(),
            }
        ));
        if let Some(p) = judged.and_then(|s| s.process.as_deref()) {
            out.push_str(&format!("    {p}\n"));
        }
        if let Some(why) = judged.and_then(|s| s.unfollowed.as_deref()) {
            out.push_str(&format!("    {}\n", crate::run::unfollowed_note(why)));
        }
        for w in &p.wire {
            out.push_str(&arrow(w.from, w.to, &w.kind.to_string()));
            out.push_str(&format!("  {}\n", w.note));
        }
        if p.wire.is_empty() {
            out.push_str("  |  (nothing on the wire)\n");
        }
        if let Some(w) = &r.segs {
            // Under held every segment is compared, numbers included.
            out.push_str(&format!(
                "    sent, kernel: {}\n",
                crate::step::wire_segs(&w.kernel)
            ));
            out.push_str(&format!(
                "    sent, model:  {}{}\n",
                crate::step::wire_segs(&w.model),
                if w.agree() { "" } else { "   <-- differs" }
            ));
            // Where timers' firing windows overlap, or a timer may or may not have
            // fired, the model predicts more than one way: the others are shown too.
            const SHOWN: usize = 4;
            for o in w.model_or.iter().take(SHOWN) {
                out.push_str(&format!(
                    "    or, model:    {}\n",
                    crate::step::wire_segs(o)
                ));
            }
            if w.model_or.len() > SHOWN {
                out.push_str(&format!(
                    "    or, model:    ... {} more ways\n",
                    w.model_or.len() - SHOWN
                ));
            }
        }
        out.push_str(&ends_text(&model));
        let open_ended = p
            .after
            .iter()
            .any(|v| matches!(v, EndView::Open { state: Some(s), .. } if s.single().is_none()));
        if open_ended {
            out.push_str("    (FIN_WAIT1|FIN_WAIT2: the peer may still be delaying the ACK of the FIN; Linux's delayed-ACK heuristics decide, which the model leaves open)\n");
        }
        let ranged = r.model.outcome.is_range()
            || p.after.iter().any(
                |v| matches!(v, EndView::Open { poll, .. } if poll.maybe() != crate::step::PollSet::NONE),
            );
        if ranged {
            out.push_str("    (a range: how much the peer's window, its receive memory and the send buffer take at once is not tracked, so the model predicts from what certainly fits to all, `?` marks a poll flag that may or may not be set, and the kernel's answer settles it for the steps after)\n");
        }
        for sock in Sock::ALL {
            let (m, k) = (&r.model_after[sock.index()], &r.kernel_after[sock.index()]);
            if !m.admits(k) {
                out.push_str(&format!(
                    "    <-- {sock} differs: kernel {} / model {}\n",
                    view_text(k),
                    view_text(m)
                ));
            }
        }
    }
    out.push('\n');
    out.push_str(&verdict_line(&report));
    out
}
