//! Behaviour tables: every scenario on every platform × transport, as JSON and Markdown.
//!
//! A column is one (platform, transport) pair. Columns come from live runs on this
//! machine (the host kernel, and gVisor where `runsc` is installed) or from files that
//! `closefuzz record` wrote on another machine. docs/behavior.json holds every cell;
//! docs/behavior.md is rendered from it (summary of differences first, then a table
//! per scenario), so the two cannot disagree.

use crate::exec::Executor;
use crate::script::Scenario;
use crate::step::StepResult;
use crate::transport::Transport;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One column's identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// Short name used as the table header: `linux/tcp4`, `gvisor/unix`, `freebsd-14.1/tcp4`.
    pub name: String,
    /// The platform: `linux`, `gvisor`, or a recorded machine's `os-release`.
    pub platform: String,
    /// The transport.
    pub transport: Transport,
    /// Where the column came from: `live` or the recording's file name.
    pub source: String,
}

/// One step of a scenario and its result in each column.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRow {
    /// Line in the scenario file.
    pub line: usize,
    /// The step.
    pub step: String,
    /// Column name -> result.
    pub cells: BTreeMap<String, StepResult>,
}

/// One scenario's rows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenarioRows {
    /// The scenario file name (relative to scenarios/).
    pub file: String,
    /// What it teaches.
    pub description: Vec<String>,
    /// Its `transport` header.
    pub home_transport: Option<Transport>,
    /// Each step.
    pub steps: Vec<StepRow>,
}

/// The whole table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Matrix {
    /// Columns, in display order.
    pub columns: Vec<Column>,
    /// Scenarios, sorted by file name.
    pub scenarios: Vec<ScenarioRows>,
}

/// What `closefuzz record` writes: one machine's results for every scenario.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Recording {
    /// `std::env::consts::OS`.
    pub os: String,
    /// The kernel release (`uname -r`).
    pub release: String,
    /// What ran the sockets: `native`, or a runtime such as `gvisor`.
    pub runtime: String,
    /// Observations this OS cannot make, which therefore read `n/a` or lack a flag.
    pub unavailable: Vec<String>,
    /// Scenario file -> transport -> results per step.
    pub results: BTreeMap<String, BTreeMap<String, Vec<StepResult>>>,
}

/// The scenario files in `dir`, sorted.
pub fn scenario_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "cfz"))
        .collect();
    files.sort();
    Ok(files)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Runs every scenario over `transport` on `exec`, returning each step's result. With a
/// `model`, a settling executor's disagreement is run again before its results are
/// taken (see [`crate::run::run_case_with`]), so a delivery that outlasted the settle
/// bound does not end up in the tables.
pub fn run_all(
    exec: &mut dyn Executor,
    scenarios: &[Scenario],
    transport: Transport,
    platform: Option<crate::model::Platform>,
) -> std::io::Result<Vec<Vec<StepResult>>> {
    scenarios
        .iter()
        .map(|sc| {
            let case = crate::exec::Case::new(transport, sc.start, sc.step_list());
            match platform {
                Some(p) => {
                    let m = crate::run::model_for(&case, p);
                    let run = crate::run::run_case_with(exec, &m, &case)
                        .map_err(|e| std::io::Error::other(e.to_string()))?;
                    Ok(run.steps.into_iter().map(|r| r.kernel).collect())
                }
                None => {
                    let kr = exec.run(&case)?;
                    Ok(kr.steps.into_iter().map(|(r, _)| r).collect())
                }
            }
        })
        .collect()
}

/// Builds a matrix from loaded scenarios and per-column results
/// (`results[column][scenario][step]`).
pub fn build(
    files: &[PathBuf],
    scenarios: &[Scenario],
    columns: Vec<Column>,
    results: Vec<Vec<Vec<StepResult>>>,
) -> Matrix {
    let rows = scenarios
        .iter()
        .zip(files)
        .enumerate()
        .map(|(si, (sc, f))| ScenarioRows {
            file: file_name(f),
            description: sc.description.clone(),
            home_transport: sc.transport,
            steps: sc
                .steps
                .iter()
                .enumerate()
                .map(|(i, ss)| StepRow {
                    line: ss.line,
                    step: ss.step.to_string(),
                    cells: columns
                        .iter()
                        .zip(&results)
                        .filter_map(|(c, r)| {
                            r.get(si)
                                .and_then(|s| s.get(i))
                                .map(|x| (c.name.clone(), x.clone()))
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect();
    Matrix {
        columns,
        scenarios: rows,
    }
}

impl Matrix {
    /// Adds a recorded machine's columns (one per transport it recorded).
    pub fn add_recording(&mut self, rec: &Recording, source: &str) {
        let platform = format!(
            "{}-{}{}",
            rec.os,
            rec.release,
            if rec.runtime == "native" {
                String::new()
            } else {
                format!("-{}", rec.runtime)
            }
        );
        for t in Transport::ALL {
            let name = format!("{platform}/{t}");
            if !rec.results.values().any(|m| m.contains_key(t.name()))
                || self.columns.iter().any(|c| c.name == name)
            {
                continue;
            }
            self.columns.push(Column {
                name: name.clone(),
                platform: platform.clone(),
                transport: t,
                source: source.to_string(),
            });
            for sc in &mut self.scenarios {
                if let Some(steps) = rec.results.get(&sc.file).and_then(|m| m.get(t.name())) {
                    for (row, r) in sc.steps.iter_mut().zip(steps) {
                        row.cells.insert(name.clone(), r.clone());
                    }
                }
            }
        }
    }

    /// The Markdown rendering: summary of differences, then one table per scenario.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        out.push_str("# Close behaviour, measured\n\n");
        out.push_str("Generated by `closefuzz matrix` from `scenarios/`; do not edit by hand. Each cell is what the\n");
        out.push_str("kernel returned for that step (`sigpipe`: the step raised SIGPIPE; `n/a`: no such observation\n");
        out.push_str(
            "on that transport or OS; `closed`: the end's fd was closed, so no call was made).\n\n",
        );
        out.push_str("Columns:\n\n");
        for c in &self.columns {
            out.push_str(&format!(
                "- `{}`: {} over {} ({})\n",
                c.name, c.platform, c.transport, c.source
            ));
        }
        out.push_str("\n## Differences\n\n");
        out.push_str("One line per scenario step where the columns disagree (the `state` step, which only TCP has,\nis left out of this summary).\n\n");
        let mut any = false;
        for sc in &self.scenarios {
            for row in &sc.steps {
                let distinct: std::collections::BTreeSet<String> =
                    row.cells.values().map(|r| r.to_string()).collect();
                if distinct.len() <= 1 || row.step.ends_with(": state") {
                    continue;
                }
                any = true;
                // Group the columns by outcome, in column order, so each line reads as
                // "outcome: where".
                let mut groups: Vec<(String, Vec<&str>)> = vec![];
                for c in &self.columns {
                    if let Some(r) = row.cells.get(&c.name) {
                        let r = r.to_string();
                        match groups.iter_mut().find(|(o, _)| *o == r) {
                            Some((_, cols)) => cols.push(&c.name),
                            None => groups.push((r, vec![&c.name])),
                        }
                    }
                }
                let cells: Vec<String> = groups
                    .iter()
                    .map(|(o, cols)| format!("`{o}` on {}", cols.join(", ")))
                    .collect();
                out.push_str(&format!(
                    "- [{}](#{}) line {}, `{}`: {}\n",
                    sc.file,
                    anchor(&sc.file),
                    row.line,
                    row.step,
                    cells.join("; ")
                ));
            }
        }
        if !any {
            out.push_str("(none)\n");
        }
        out.push_str("\n## Platform profiles\n\n");
        out.push_str("How the model's profiles depart from Linux (`src/model/profile.rs`); each entry names the\nscenario whose table shows it.\n\n");
        for p in crate::model::Platform::ALL {
            let diffs = crate::model::profile::Profile::of(p).differences();
            if diffs.is_empty() {
                continue;
            }
            out.push_str(&format!("{}:\n\n", p.name()));
            for d in diffs {
                out.push_str(&format!(
                    "- `{}`: {} ([{}](#{}))\n",
                    d.name,
                    d.summary,
                    d.evidence,
                    anchor(d.evidence)
                ));
            }
            out.push('\n');
        }
        out.push_str("## Scenarios\n");
        for sc in &self.scenarios {
            out.push_str(&format!("\n### {}\n\n", sc.file));
            for d in &sc.description {
                out.push_str(&format!("> {d}\n"));
            }
            out.push('\n');
            out.push_str("| line | step |");
            for c in &self.columns {
                out.push_str(&format!(" {} |", c.name));
            }
            out.push_str("\n|---|---|");
            for _ in &self.columns {
                out.push_str("---|");
            }
            out.push('\n');
            for row in &sc.steps {
                let distinct: std::collections::BTreeSet<String> =
                    row.cells.values().map(|r| r.to_string()).collect();
                out.push_str(&format!("| {} | `{}` |", row.line, row.step));
                for c in &self.columns {
                    let cell = row
                        .cells
                        .get(&c.name)
                        .map(|r| r.to_string())
                        .unwrap_or_else(|| "—".into());
                    if distinct.len() > 1 {
                        out.push_str(&format!(" **{cell}** |"));
                    } else {
                        out.push_str(&format!(" {cell} |"));
                    }
                }
                out.push('\n');
            }
        }
        out
    }
}

/// A Markdown heading anchor as GitHub makes it.
fn anchor(s: &str) -> String {
    s.chars()
        .filter_map(|c| match c {
            'a'..='z' | '0'..='9' | '-' | '_' => Some(c),
            'A'..='Z' => Some(c.to_ascii_lowercase()),
            ' ' => Some('-'),
            _ => None,
        })
        .collect()
}

/// This machine's OS, kernel release and the observations it cannot make.
pub fn machine_identity() -> (String, String, Vec<String>) {
    let os = std::env::consts::OS.to_string();
    // SAFETY: uname fills the struct we pass.
    let release = unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut u) == 0 {
            std::ffi::CStr::from_ptr(u.release.as_ptr())
                .to_string_lossy()
                .into_owned()
        } else {
            "unknown".to_string()
        }
    };
    let mut unavailable = vec![];
    if !cfg!(target_os = "linux") {
        unavailable.push("poll RDHUP (POLLRDHUP is Linux-only)".to_string());
    }
    if !cfg!(any(
        target_os = "linux",
        target_os = "freebsd",
        target_os = "macos"
    )) {
        unavailable.push("state (no TCP_INFO)".to_string());
    }
    (os, release, unavailable)
}
