//! Ladder diagrams as SVG: the two ends as vertical time lines, each step's call and
//! result beside the end that made it, the segments it put on the wire as arrows
//! between the lines, and both ends' state after each step.
//!
//! Hand-written SVG text, so the crate needs no drawing library; every piece of text
//! from a scenario goes through [`escape`]. The segments and states come from the
//! model (the kernel shows neither), the results from the kernel run given.

use crate::model::{Model, Platform, SegmentKind};
use crate::script::{Scenario, ScriptStep};
use crate::step::{End, Sock, Start, Step, StepResult};
use crate::transport::Transport;
use std::fmt::Write as _;

const WIDTH: i32 = 1000;
const X_A: i32 = 340;
const X_B: i32 = 660;
/// Beside a line: how far text starts from it.
const GAP: i32 = 14;
/// Characters per line of a state note before it wraps (about 300 px of 11 px text).
const WRAP: usize = 46;
const LINE: i32 = 15;
const ARROW_DROP: i32 = 30;
const FONT: &str = "DejaVu Sans, Verdana, Arial, sans-serif";

/// `s` with the five XML special characters replaced by entities.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The expectation the line states for `platform` (its override there, else its default)
/// and whether `got` meets it: a run is judged by its own platform's expectation only.
fn expectation(ss: &ScriptStep, platform: Platform, got: &StepResult) -> Option<(String, bool)> {
    ss.expect_on(platform)
        .map(|e| (e.to_string(), e.matches(got)))
}

fn x_of(end: End) -> i32 {
    match end {
        End::A => X_A,
        End::B => X_B,
    }
}

/// Text beside `end`'s line: to its left for `a`, to its right for `b`, so that the
/// space between the lines stays free for the arrows.
fn side_text(out: &mut String, end: End, y: i32, attrs: &str, spans: &str) {
    let (x, anchor) = match end {
        End::A => (X_A - GAP, "end"),
        End::B => (X_B + GAP, "start"),
    };
    let _ = writeln!(
        out,
        r#"<text x="{x}" y="{y}" text-anchor="{anchor}" {attrs}>{spans}</text>"#
    );
}

/// `text` cut at ", " into lines of at most [`WRAP`] characters where it can be.
fn wrap(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = vec![];
    for part in text.split(", ") {
        match lines.last_mut() {
            Some(l) if l.chars().count() + 2 + part.chars().count() <= WRAP => {
                l.push_str(", ");
                l.push_str(part);
            }
            Some(l) => {
                l.push(',');
                lines.push(part.to_string());
            }
            None => lines.push(part.to_string()),
        }
    }
    lines
}

/// The line a socket is drawn on: clients (`a`, `c`) on the left, the server side
/// (`b`, `d` and the listener `l`) on the right.
fn line_of(sock: Sock) -> End {
    sock.side().unwrap_or(End::B)
}

/// What the model says of the sockets on one line, shorter: "fd open" goes without
/// saying, and a socket not created yet is left out. Under `start connected` each line
/// holds one socket and its name goes without saying too.
fn state_note(model: &Model, end: End) -> String {
    let named = model.start() != Start::Connected;
    Sock::ALL
        .into_iter()
        .filter(|s| line_of(*s) == end)
        .filter_map(|s| {
            let d = model.describe(s);
            if d == "not created" {
                return None;
            }
            let d = d.strip_prefix("fd open, ").map(str::to_string).unwrap_or(d);
            Some(if named { format!("{s}: {d}") } else { d })
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn segment_style(kind: SegmentKind) -> (&'static str, &'static str) {
    match kind {
        SegmentKind::Data(_) => ("#222222", ""),
        SegmentKind::Fin => ("#1f5fbf", ""),
        SegmentKind::Rst => ("#c62828", ""),
        SegmentKind::Ack => ("#777777", ""),
        SegmentKind::PeerGone => ("#7b1fa2", r#" stroke-dasharray="6 4""#),
        SegmentKind::Syn | SegmentKind::SynAck => ("#2e7d32", ""),
        SegmentKind::Connect => ("#2e7d32", r#" stroke-dasharray="6 4""#),
    }
}

/// Draws `sc` as a ladder: the steps run on `transport` under `platform`'s model, with
/// `kernel[i]` as step i's result (a step without one shows the model's prediction),
/// each judged by the expectation the script states for `platform`.
pub fn ladder(
    sc: &Scenario,
    transport: Transport,
    platform: Platform,
    kernel: &[StepResult],
) -> String {
    let mut model = Model::with_start(
        transport,
        crate::model::profile::Profile::of(platform),
        sc.start,
    )
    .with_bufs(sc.bufs);
    let named = sc.start != Start::Connected;
    let mut body = String::new();
    let mut y = 110;
    // The initial states.
    let mut before = [state_note(&model, End::A), state_note(&model, End::B)];
    for end in End::BOTH {
        for (i, l) in wrap(&before[end.index()]).iter().enumerate() {
            side_text(
                &mut body,
                end,
                y + i as i32 * LINE,
                r##"class="state changed""##,
                &escape(l),
            );
        }
    }
    y += LINE + 10;
    for (i, ss) in sc.steps.iter().enumerate() {
        // The kernel's result settles what the model leaves open; its views after the
        // step are not kept here.
        let unseen = [crate::step::EndView::Absent; 5];
        let p = model.step_seen(ss.step, kernel.get(i).map(|r| (r, &unseen)));
        let got = kernel.get(i).cloned().unwrap_or_else(|| p.result.clone());
        let (end, call) = match ss.step {
            Step::Call { sock, op } if named => (line_of(sock), format!("{sock}: {op}")),
            Step::Call { sock, op } => (line_of(sock), op.to_string()),
            // Time passing belongs to neither end: drawn on the left line.
            Step::Sleep { .. } => (End::A, ss.step.to_string()),
            // The network's steps belong to the sender's line.
            Step::Deliver { dir, .. } | Step::Drop { dir } | Step::Held { dir } => {
                (line_of(dir.from), ss.step.to_string())
            }
        };
        let x = x_of(end);
        // Faint rule between steps, so each step's call, arrows and states read as one.
        let _ = writeln!(
            body,
            r##"<line x1="20" y1="{}" x2="{}" y2="{}" class="rule"/>"##,
            y - 2,
            WIDTH - 20,
            y - 2
        );
        y += 16;
        let _ = writeln!(
            body,
            r#"<circle cx="{x}" cy="{}" r="4" class="call"/>"#,
            y - 4
        );
        let agrees = p.result.admits(&got);
        let result = if agrees {
            format!(
                r#"<tspan class="result">{}</tspan>"#,
                escape(&got.to_string())
            )
        } else {
            format!(
                r#"<tspan class="bad">{} (model: {})</tspan>"#,
                escape(&got.to_string()),
                escape(&p.result.to_string())
            )
        };
        side_text(
            &mut body,
            end,
            y,
            r#"class="callText""#,
            &format!(
                r#"<tspan class="op">{}</tspan>  →  {result}  <tspan class="lineno">line {}</tspan>"#,
                escape(&call),
                ss.line
            ),
        );
        if let Some((text, met)) = expectation(ss, platform, &got) {
            y += LINE;
            let (class, mark) = if met {
                ("met", "✓")
            } else {
                ("bad", "✗ unmet")
            };
            side_text(
                &mut body,
                end,
                y,
                &format!(r#"class="{class}""#),
                &format!("expect {} {mark}", escape(&text)),
            );
        }
        y += 8;
        for w in &p.wire {
            let (from, to) = (x_of(line_of(w.from)), x_of(line_of(w.to)));
            let (color, dash) = segment_style(w.kind);
            let (y1, y2) = (y, y + ARROW_DROP);
            let _ = writeln!(
                body,
                r##"<g><title>{}</title><line x1="{from}" y1="{y1}" x2="{}" y2="{y2}" stroke="{color}" stroke-width="2"{dash} marker-end="url(#head-{})"/>"##,
                escape(w.note),
                // Stop short of the line, so the arrowhead's tip touches it.
                if to > from { to - 2 } else { to + 2 },
                color.trim_start_matches('#'),
            );
            let _ = writeln!(
                body,
                r#"<text x="{}" y="{}" text-anchor="middle" class="seg" fill="{color}">{}</text></g>"#,
                (from + to) / 2,
                (y1 + y2) / 2 - 6,
                escape(&if named {
                    format!("{} {}>{}", w.kind, w.from, w.to)
                } else {
                    w.kind.to_string()
                })
            );
            y += ARROW_DROP + 4;
        }
        if p.wire.is_empty() {
            y += 4;
        }
        // Both ends afterwards; a state that did not change is drawn faint.
        let after = [state_note(&model, End::A), state_note(&model, End::B)];
        let mut rows = 0;
        for e in End::BOTH {
            let class = if after[e.index()] == before[e.index()] {
                "state"
            } else {
                "state changed"
            };
            let lines = wrap(&after[e.index()]);
            for (k, l) in lines.iter().enumerate() {
                side_text(
                    &mut body,
                    e,
                    y + 6 + k as i32 * LINE,
                    &format!(r#"class="{class}""#),
                    &escape(l),
                );
            }
            rows = rows.max(lines.len() as i32);
        }
        before = after;
        y += 6 + rows * LINE + 8;
    }
    let height = y + 10;
    let name = std::path::Path::new(&sc.name)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| sc.name.clone());
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="{FONT}">"#
    );
    let _ = writeln!(
        out,
        "<title>{}: ladder diagram ({} on {})</title>",
        escape(&name),
        transport,
        platform
    );
    if !sc.description.is_empty() {
        let _ = writeln!(out, "<desc>{}</desc>", escape(&sc.description.join(" ")));
    }
    out.push_str(concat!(
        "<style>",
        ".title{font-size:15px;font-weight:bold;fill:#111}",
        ".sub{font-size:11px;fill:#555}",
        ".lane{font-size:14px;font-weight:bold;fill:#111}",
        ".callText{font-size:12.5px;fill:#111}",
        ".op{font-weight:bold}",
        ".result{fill:#0b5394;font-weight:bold}",
        ".lineno{fill:#999;font-size:10px}",
        ".met{font-size:11px;fill:#2e7d32}",
        ".bad{font-size:12px;fill:#c62828;font-weight:bold}",
        ".state{font-size:11px;fill:#aaaaaa}",
        ".changed{fill:#6d4c00}",
        ".seg{font-size:12px;font-weight:bold;paint-order:stroke;stroke:#fff;stroke-width:4px}",
        ".rule{stroke:#eeeeee;stroke-width:1}",
        ".call{fill:#111}",
        "</style>\n"
    ));
    out.push_str("<defs>");
    for color in ["#222222", "#1f5fbf", "#c62828", "#777777", "#7b1fa2"] {
        let _ = write!(
            out,
            r#"<marker id="head-{}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="5.5" markerHeight="5.5" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{color}"/></marker>"#,
            color.trim_start_matches('#')
        );
    }
    out.push_str("</defs>\n");
    let _ = writeln!(
        out,
        r##"<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>"##
    );
    let _ = writeln!(
        out,
        r#"<text x="20" y="26" class="title">{}</text>"#,
        escape(&name)
    );
    let _ = writeln!(
        out,
        r#"<text x="20" y="44" class="sub">{transport} on {platform}; time runs down. Beside each end: its calls with the kernel's results, then its state after the step</text>"#
    );
    out.push_str(r#"<text x="20" y="58" class="sub">(the model's account; faint when unchanged). Arrows: what the step put on the wire.</text>"#);
    out.push('\n');
    let labels = match sc.start {
        Start::Connected => [(End::A, "a (connects)"), (End::B, "b (accepted)")],
        Start::Listening => [(End::A, "client: a, c"), (End::B, "server: l, b, d")],
    };
    for (end, label) in labels {
        let x = x_of(end);
        let _ = writeln!(
            out,
            r#"<text x="{x}" y="84" text-anchor="middle" class="lane">{label}</text>"#
        );
        let _ = writeln!(
            out,
            r##"<line x1="{x}" y1="92" x2="{x}" y2="{}" stroke="#444" stroke-width="2"/>"##,
            height - 10
        );
    }
    out.push_str(&body);
    out.push_str("</svg>\n");
    out
}
