//! Behaviour tables: every scenario on every platform × transport, as JSON and Markdown.
//!
//! A column is one (platform, transport) pair. Columns come from live runs on this
//! machine (the host kernel, and gVisor where `runsc` is installed) or from files that
//! `closefuzz record` wrote on another machine. docs/behavior.json holds every cell;
//! docs/behavior.md is rendered from it (a guide: contents, the columns and where they
//! were measured, the differences between stacks, then between transports, then every
//! scenario by topic), so the two cannot disagree. docs/behavior-schema.md describes the
//! JSON.
//!
//! In the JSON every value is by name: errnos as `"ECONNRESET"`, poll flags as
//! `"IN|OUT"`, TCP states as `"FIN_WAIT1|FIN_WAIT2"`, never as numbers, because errno
//! numbers differ between systems and the bit encodings are this program's own.

use crate::exec::Executor;
use crate::model::{Model, Platform, SegmentKind};
use crate::script::{Scenario, ScriptStep};
use crate::step::{Sock, Start, StepResult};
use crate::transport::Transport;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The version of the JSON layout of [`Matrix`] and [`Recording`]. 1 had errno numbers
/// and bit encodings; 2 has names, provenance and expectations.
pub const SCHEMA: u32 = 3;

/// The oldest schema still read: 2 wrote read data as lists of numbers, which 3 reads
/// too (see [`crate::step::data_text`]).
pub const OLDEST_SCHEMA: u32 = 2;

/// One column's identity, and where and when it was measured.
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
    /// The network stack that answered: `Linux`, `gVisor netstack (runsc)`, ...
    pub stack: String,
    /// The stack's version: the kernel release, or `runsc --version`.
    pub version: String,
    /// The kernel the stack ran on (for gVisor: the host's, under the sandbox).
    pub kernel: String,
    /// The date of measurement, `YYYY-MM-DD` (UTC).
    pub measured: String,
    /// The model profile the column's results are checked against (`linux`, `gvisor`),
    /// or none for a stack that has no profile yet. A column is a (stack, profile) pair:
    /// a recording from another Linux machine names `linux` as its profile.
    #[serde(default)]
    pub profile: Option<String>,
}

/// One step of a scenario and its result in each column.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRow {
    /// Line in the scenario file.
    pub line: usize,
    /// The step.
    pub step: String,
    /// The expectation written on the line, if any, with its per-platform overrides
    /// (`EPIPE sigpipe; gvisor => EPIPE`): it describes the scenario, not one column.
    pub expect: Option<String>,
    /// Column name -> result.
    pub cells: BTreeMap<String, StepResult>,
    /// Under `network held`: column name -> the segments the stack sent during the
    /// step, as the comparison names them (`a>b FIN seq 5 ack 0`, `-` for none).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sent: BTreeMap<String, String>,
}

/// One scenario's rows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenarioRows {
    /// The scenario file name (relative to scenarios/).
    pub file: String,
    /// What it teaches (its leading comment lines, without a `topic:` line).
    pub description: Vec<String>,
    /// The topic it is listed under (see [`topic_of`]).
    pub topic: String,
    /// Its `transport` header.
    pub home_transport: Option<Transport>,
    /// Its ladder picture, relative to the Markdown file (`ladders/NAME.svg`), for the
    /// scenarios that teach a four-way close or a reset (see [`wants_ladder`]).
    pub ladder: Option<String>,
    /// Each step.
    pub steps: Vec<StepRow>,
}

/// The whole table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Matrix {
    /// The JSON layout's version, [`SCHEMA`].
    pub schema: u32,
    /// Columns, in display order.
    pub columns: Vec<Column>,
    /// Scenarios, sorted by file name.
    pub scenarios: Vec<ScenarioRows>,
}

/// What `closefuzz record` writes: one machine's results for every scenario.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Recording {
    /// The JSON layout's version, [`SCHEMA`].
    pub schema: u32,
    /// `std::env::consts::OS`.
    pub os: String,
    /// The kernel release (`uname -r`).
    pub release: String,
    /// The kernel's build (`uname -v`).
    pub kernel_version: String,
    /// What ran the sockets: `native`, or a runtime such as `gvisor`.
    pub runtime: String,
    /// The model profile its results are checked against: `linux` for a Linux
    /// machine, none for an OS with no profile yet (its cells are shown, not checked).
    #[serde(default)]
    pub profile: Option<String>,
    /// The date of measurement, `YYYY-MM-DD` (UTC).
    pub measured: String,
    /// Observations this OS cannot make, which therefore read `n/a` or lack a flag.
    pub unavailable: Vec<String>,
    /// Scenario file -> the expectation written on each step's line, with its
    /// per-platform overrides (`null`: none).
    pub expectations: BTreeMap<String, Vec<Option<String>>>,
    /// Scenario file -> transport -> results per step.
    pub results: BTreeMap<String, BTreeMap<String, Vec<StepResult>>>,
}

/// Parses JSON of one of the two layouts, refusing another schema with a line that
/// says so rather than a field-by-field complaint. Errors read `LINE: not a closefuzz
/// WHAT (why)`, for the caller to put the file name before.
fn from_json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T, String> {
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| format!("{}: not a closefuzz {what} (not JSON: {e})", e.line()))?;
    match v.get("schema").and_then(|s| s.as_u64()) {
        Some(n) if (OLDEST_SCHEMA as u64..=SCHEMA as u64).contains(&n) => {}
        Some(n) => {
            return Err(format!(
                "1: not a closefuzz {what} of schema {OLDEST_SCHEMA} to {SCHEMA} (it says schema {n}): make it again with this closefuzz"
            ))
        }
        None => {
            return Err(format!(
                "1: not a closefuzz {what} (no \"schema\" field; expected schema {SCHEMA}, errnos by name)"
            ))
        }
    }
    // From the text again, not the value, so that an error has its line.
    serde_json::from_str(text).map_err(|e| format!("{}: not a closefuzz {what} ({e})", e.line()))
}

impl Recording {
    /// Parses what `closefuzz record` wrote (schema [`SCHEMA`]).
    pub fn from_json(text: &str) -> Result<Recording, String> {
        from_json(text, "recording")
    }

    /// An empty recording of this machine, measured today, with the expectations of
    /// `scenarios` (named by `files`); the caller adds the results.
    pub fn here(files: &[PathBuf], scenarios: &[Scenario]) -> Recording {
        let (os, release, unavailable) = machine_identity();
        Recording {
            schema: SCHEMA,
            os,
            release,
            kernel_version: uname().version,
            runtime: "native".into(),
            // The host's kernel is what the Linux profile describes; other systems have
            // none yet.
            profile: (std::env::consts::OS == "linux").then(|| Platform::Linux.name().to_string()),
            measured: today(),
            unavailable,
            expectations: files
                .iter()
                .zip(scenarios)
                .map(|(f, sc)| (file_name(f), sc.steps.iter().map(expect_text).collect()))
                .collect(),
            results: BTreeMap::new(),
        }
    }
}

impl Column {
    /// The model profile this column is checked against, if it names a known one.
    pub fn profile(&self) -> Option<Platform> {
        self.profile.as_deref().and_then(Platform::from_name)
    }
}

impl Matrix {
    /// Parses docs/behavior.json (schema [`SCHEMA`]).
    pub fn from_json(text: &str) -> Result<Matrix, String> {
        from_json(text, "behaviour matrix")
    }
}

/// The expectation written on a script line, as text: the whole of it, default and
/// per-platform overrides, since it describes the scenario rather than one column's
/// run (a cell is judged by [`ScriptStep::expect_on`] its column's platform).
fn expect_text(ss: &ScriptStep) -> Option<String> {
    ss.expect.as_ref().map(|e| e.to_string())
}

/// The topics, in the order docs/behavior.md lists them, each with what it gathers.
pub const TOPICS: [(&str, &str); 10] = [
    (
        "Peer closes",
        "one end closes while the other still writes or reads",
    ),
    (
        "Resets and aborts",
        "RST: abortive close, close with unread data, data after a full shutdown",
    ),
    (
        "Half-close and shutdown",
        "shutdown(2) of one direction, and what still flows",
    ),
    (
        "Poll and SO_ERROR",
        "what poll(2) and the pending socket error say along the way",
    ),
    (
        "States and TIME_WAIT",
        "TCP states as TCP_INFO reports them, delayed ACKs, TIME_WAIT",
    ),
    (
        "Unix stream specifics",
        "AF_UNIX SOCK_STREAM: no RST, no FIN, the peer is marked at once",
    ),
    (
        "Seqpacket records",
        "AF_UNIX SOCK_SEQPACKET: record boundaries and empty records",
    ),
    (
        "Listeners and accept queues",
        "start listening: accept, connections queued when the listener closes or shuts down",
    ),
    (
        "Connecting and never-connected sockets",
        "non-blocking connect, refused connects, calls on a socket that never connected",
    ),
    (
        "Timers",
        "sleep: the delayed ACK of a FIN, the FIN_WAIT2 timeout, SO_LINGER, TIME_WAIT",
    ),
];

/// The topic a scenario is listed under. A leading comment line `# topic: NAME` says it;
/// otherwise the file name does: a `unix-` or `seqpacket-` prefix names the transport's
/// topic, and a TCP scenario goes to the first topic with a keyword in its name
/// (`abort`, `reset`, `rst`, `unread`: resets; `shutdown`, `half-close`: half-close;
/// `poll`, `error`: poll; `time-wait`, `state`, `fin-ack`: states), else to peer closes.
pub fn topic_of(file: &str, description: &[String]) -> String {
    if let Some(t) = description
        .iter()
        .find_map(|d| d.strip_prefix("topic:"))
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        return t.to_string();
    }
    let has = |words: &[&str]| words.iter().any(|w| file.contains(w));
    let i = if has(&["listener", "accept"]) {
        7
    } else if has(&["connect", "stale-shutdown"]) {
        8
    } else if has(&["fin-wait2", "linger", "fin-ack-delay", "time-wait-end"]) {
        9
    } else if file.starts_with("unix-") {
        5
    } else if file.starts_with("seqpacket-") {
        6
    } else if has(&["abort", "reset", "rst", "unread"]) {
        1
    } else if has(&["shutdown", "half-close"]) {
        2
    } else if has(&["poll", "error"]) {
        3
    } else if has(&["time-wait", "state", "fin-ack"]) {
        4
    } else {
        0
    };
    TOPICS[i].0.to_string()
}

/// Whether a scenario gets a ladder picture: the motivating case, and every scenario
/// that teaches a four-way close or a reset, by its name (`close`, `abort`, `reset`,
/// `rst`, `shutdown-rdwr`) or by what the model puts on the wire for it over its own
/// transport (an RST, or a FIN from each end).
pub fn wants_ladder(file: &str, sc: &Scenario) -> bool {
    const NAMES: [&str; 6] = [
        "motivating",
        "close",
        "abort",
        "reset",
        "rst",
        "shutdown-rdwr",
    ];
    if NAMES.iter().any(|n| file.contains(n)) {
        return true;
    }
    let mut model = Model::with_start(
        sc.transport.unwrap_or_default(),
        crate::model::profile::Profile::of(Platform::Linux),
        sc.start,
    )
    .with_bufs(sc.bufs);
    let mut fin = [false; 5];
    for ss in &sc.steps {
        for w in model.step(ss.step).wire {
            match w.kind {
                SegmentKind::Rst => return true,
                SegmentKind::Fin => fin[w.from.index()] = true,
                _ => {}
            }
        }
    }
    // A FIN from both ends of a connection: a four-way close.
    (fin[Sock::A.index()] && fin[Sock::B.index()]) || (fin[Sock::C.index()] && fin[Sock::D.index()])
}

/// The date today, `YYYY-MM-DD`, in UTC.
pub fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    civil_date(secs / 86_400)
}

/// The proleptic Gregorian date `days` days after 1970-01-01 (H. Hinnant's
/// `civil_from_days`).
fn civil_date(days: u64) -> String {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The smoltcp crate closefuzz links (Cargo.toml).
const SMOLTCP_VERSION: &str = "0.14.0";

/// Where and what a live column on `platform` measures: (stack, version, kernel).
pub fn live_provenance(platform: Platform) -> (String, String, String) {
    let u = uname();
    let kernel = format!("{} {} ({})", u.sysname, u.release, u.machine);
    match platform {
        Platform::Linux => ("Linux".into(), u.release, kernel),
        Platform::Smoltcp => (
            "smoltcp (in process, loopback interface, clock advanced by sleep)".into(),
            SMOLTCP_VERSION.into(),
            format!("host {kernel}"),
        ),
        Platform::Gvisor => (
            "gVisor netstack (runsc)".into(),
            runsc_version().unwrap_or_else(|| "unknown".into()),
            format!("host {kernel}"),
        ),
        Platform::Lwip => (
            "lwIP (liblwip, in-process)".into(),
            "2.1.3".into(),
            format!("host {kernel}"),
        ),
        // The guest's release as `linux.uml --version` reports it (its uname -r).
        Platform::Linux61 => (
            "Linux".into(),
            crate::exec::uml::find_linux_uml()
                .ok()
                .and_then(|l| crate::exec::uml::release(&l))
                .unwrap_or_else(|| "unknown".into()),
            format!("User-mode Linux on host {kernel}"),
        ),
    }
}

/// The first line of `runsc --version`, without its "runsc version " prefix; waits at
/// most 10 s.
fn runsc_version() -> Option<String> {
    let runsc = crate::exec::gvisor::find_runsc().ok()?;
    let first =
        crate::exec::remote::first_line_of(std::process::Command::new(runsc).arg("--version"))?;
    Some(
        first
            .strip_prefix("runsc version ")
            .unwrap_or(&first)
            .to_string(),
    )
}

/// The folder under a scenario folder whose scenarios take a minute or more (TIME_WAIT's
/// end): [`scenario_files`] leaves it out, `replay` runs its files when named.
pub const SLOW_DIR: &str = "slow";

/// The scenario files in `dir` and in its subfolders (`ported/`, ...) but
/// [`SLOW_DIR`], sorted by file name. A scenario is known by its file name in the
/// tables, so two files with one name are an error.
pub fn scenario_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let is_cfz = |p: &PathBuf| p.extension().is_some_and(|e| e == "cfz");
    let mut files = vec![];
    for entry in std::fs::read_dir(dir)? {
        let p = entry?.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == SLOW_DIR) {
                continue;
            }
            for e in std::fs::read_dir(&p)? {
                let q = e?.path();
                if is_cfz(&q) {
                    files.push(q);
                }
            }
        } else if is_cfz(&p) {
            files.push(p);
        }
    }
    files.sort_by_key(|p| p.file_name().map(|n| n.to_os_string()));
    for w in files.windows(2) {
        if w[0].file_name() == w[1].file_name() {
            return Err(std::io::Error::other(format!(
                "{} and {} have the same name: expected one scenario per name",
                w[0].display(),
                w[1].display()
            )));
        }
    }
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
    Ok(run_all_seen(exec, scenarios, transport, platform)?
        .into_iter()
        .map(|steps| steps.into_iter().map(|s| s.result).collect())
        .collect())
}

/// One step as a column saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    /// What it returned.
    pub result: StepResult,
    /// Under `network held`, the segments sent during it.
    pub sent: Option<Vec<crate::step::WireSeg>>,
}

/// [`run_all`], keeping the segments each held step sent.
pub fn run_all_seen(
    exec: &mut dyn Executor,
    scenarios: &[Scenario],
    transport: Transport,
    platform: Option<crate::model::Platform>,
) -> std::io::Result<Vec<Vec<Seen>>> {
    let plain = |r: StepResult| Seen {
        result: r,
        sent: None,
    };
    scenarios
        .iter()
        .map(|sc| {
            let case = sc.case(transport);
            let case = crate::exec::Case { transport, ..case };
            match platform {
                // A world the stack cannot set up (its start, its buffer headers), or
                // an expectation it cannot be asked: n/a there.
                Some(p)
                    if sc
                        .world_unrunnable_on(
                            &crate::model::profile::Profile::of(p).surface,
                            transport,
                        )
                        .is_some() =>
                {
                    Ok(case
                        .steps
                        .iter()
                        .map(|_| plain(StepResult::plain(crate::step::Outcome::NotApplicable)))
                        .collect())
                }
                Some(p) => {
                    let m = crate::run::model_for(&case, p);
                    let mut run = crate::run::run_case_with(exec, &m, &case)
                        .map_err(|e| std::io::Error::other(e.to_string()))?;
                    // User-mode Linux 6.1 now and then delivers a TCP segment steps late
                    // (README, Platforms): a disagreeing case is run once more there, and
                    // one that then agrees is said as unstable on stderr.
                    if p == crate::model::Platform::Linux61
                        && transport.is_tcp()
                        && run.first_mismatch().is_some()
                    {
                        let again = crate::run::run_case_with(exec, &m, &case)
                            .map_err(|e| std::io::Error::other(e.to_string()))?;
                        if again.first_mismatch().is_none() {
                            eprintln!(
                                "closefuzz: unstable on {p}/{transport}: {} disagreed once and agreed when run again",
                                sc.name
                            );
                        }
                        run = again;
                    }
                    Ok(run
                        .steps
                        .into_iter()
                        .map(|r| Seen {
                            result: r.kernel,
                            sent: r.segs.map(|s| s.kernel),
                        })
                        .collect())
                }
                None => {
                    let kr = exec.run(&case)?;
                    Ok(kr.steps.into_iter().map(|(r, _)| plain(r)).collect())
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
    let seen = results
        .into_iter()
        .map(|col| {
            col.into_iter()
                .map(|sc| {
                    sc.into_iter()
                        .map(|result| Seen { result, sent: None })
                        .collect()
                })
                .collect()
        })
        .collect();
    build_seen(files, scenarios, columns, seen)
}

/// [`build`], with the segments each held step sent.
pub fn build_seen(
    files: &[PathBuf],
    scenarios: &[Scenario],
    columns: Vec<Column>,
    results: Vec<Vec<Vec<Seen>>>,
) -> Matrix {
    let rows = scenarios
        .iter()
        .zip(files)
        .enumerate()
        .map(|(si, (sc, f))| {
            let file = file_name(f);
            ScenarioRows {
                topic: topic_of(&file, &sc.description),
                ladder: wants_ladder(&file, sc)
                    .then(|| format!("ladders/{}.svg", file.strip_suffix(".cfz").unwrap_or(&file))),
                description: sc
                    .description
                    .iter()
                    .filter(|d| !d.starts_with("topic:"))
                    .cloned()
                    .collect(),
                file,
                home_transport: sc.transport,
                steps: sc
                    .steps
                    .iter()
                    .enumerate()
                    .map(|(i, ss)| StepRow {
                        line: ss.line,
                        step: ss.step.to_string(),
                        expect: expect_text(ss),
                        cells: columns
                            .iter()
                            .zip(&results)
                            .filter_map(|(c, r)| {
                                r.get(si)
                                    .and_then(|s| s.get(i))
                                    .map(|x| (c.name.clone(), x.result.clone()))
                            })
                            .collect(),
                        sent: columns
                            .iter()
                            .zip(&results)
                            .filter_map(|(c, r)| {
                                let segs = r.get(si)?.get(i)?.sent.as_ref()?;
                                Some((c.name.clone(), crate::step::wire_segs(segs)))
                            })
                            .collect(),
                    })
                    .collect(),
            }
        })
        .collect();
    Matrix {
        schema: SCHEMA,
        columns,
        scenarios: rows,
    }
}

/// One cell where two stacks answer the same step over the same transport differently.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackDifference {
    /// The scenario file.
    pub file: String,
    /// Its line.
    pub line: usize,
    /// The step.
    pub step: String,
    /// The transports over which the two stacks differ in just this way.
    pub transports: Vec<Transport>,
    /// The first stack's result.
    pub base: String,
    /// The other stack's result.
    pub other: String,
}

/// Text for a table cell: GFM splits cells at every `|` that is not escaped, even
/// inside a code span, so each one is escaped.
fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

/// How a platform is named in headings.
fn platform_title(p: &str) -> String {
    match p {
        "linux" => "Linux".into(),
        "gvisor" => "gVisor".into(),
        other => other.into(),
    }
}

impl Matrix {
    /// The table of stacks closefuzz runs: what each is, how it is run, and what it
    /// cannot be asked (`n/a` in its columns, never generated for it).
    fn stacks_markdown(&self, out: &mut String) {
        out.push_str("\n## Stacks\n\n");
        out.push_str("The stacks `--platform` selects. A call a stack cannot be asked is `n/a` in its columns and\n");
        out.push_str("is never generated for it; a transport it does not run has no column.\n\n");
        out.push_str(
            "| platform | stack | version | how it is run | transports | network | cannot be asked |\n",
        );
        out.push_str("|---|---|---|---|---|---|---|\n");
        for p in crate::model::Platform::ALL {
            let surface = crate::model::profile::Profile::of(p).surface;
            let column = self.columns.iter().find(|c| c.platform == p.name());
            let transports: Vec<&str> = surface.transports.iter().map(|t| t.name()).collect();
            let networks: Vec<&str> = surface.networks.iter().map(|n| n.name()).collect();
            let mut unasked = surface.unasked();
            if surface.starts.len() < Start::ALL.len() {
                let starts: Vec<&str> = surface.starts.iter().map(|s| s.name()).collect();
                unasked.push(format!("start other than {}", starts.join(", ")));
            }
            out.push_str(&format!(
                "| `{}` | {} | {} | {} | {} | {} | {} |\n",
                p.name(),
                cell(&column.map_or(platform_title(p.name()), |c| c.stack.clone())),
                cell(column.map_or("not measured here", |c| &c.version)),
                cell(crate::run::stack_of(p).how_run()),
                transports.join(", "),
                networks.join(", "),
                if unasked.is_empty() {
                    "(nothing)".to_string()
                } else {
                    cell(&unasked.join(", "))
                }
            ));
        }
        for p in crate::model::Platform::ALL {
            if let Some(table) = crate::run::stack_of(p).call_table() {
                out.push_str(&format!("\n### How {} is asked\n\n{table}", p.name()));
            }
        }
    }

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
                stack: format!("{} ({})", rec.os, rec.runtime),
                version: rec.release.clone(),
                kernel: format!("{} {}", rec.release, rec.kernel_version),
                measured: rec.measured.clone(),
                profile: rec.profile.clone(),
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

    /// The platforms of the columns, in column order, each once.
    pub fn platforms(&self) -> Vec<String> {
        let mut out: Vec<String> = vec![];
        for c in &self.columns {
            if !out.contains(&c.platform) {
                out.push(c.platform.clone());
            }
        }
        out
    }

    /// Every step where `base`'s and `other`'s columns over the same transport answer
    /// differently, in scenario order; transports where the two answer alike are one entry.
    pub fn stack_differences(&self, base: &str, other: &str) -> Vec<StackDifference> {
        let mut out = vec![];
        for sc in &self.scenarios {
            for row in &sc.steps {
                for t in Transport::ALL {
                    let find = |p: &str| {
                        self.columns
                            .iter()
                            .find(|c| c.platform == p && c.transport == t)
                            .and_then(|c| row.cells.get(&c.name))
                    };
                    let (Some(b), Some(o)) = (find(base), find(other)) else {
                        continue;
                    };
                    // As the table shows them: `data N` says how many bytes, not which.
                    let (b, o) = (b.to_string(), o.to_string());
                    if b == o {
                        continue;
                    }
                    let same = |d: &&mut StackDifference| {
                        d.file == sc.file && d.line == row.line && d.base == b && d.other == o
                    };
                    match out.iter_mut().rev().find(same) {
                        Some(d) => d.transports.push(t),
                        None => out.push(StackDifference {
                            file: sc.file.clone(),
                            line: row.line,
                            step: row.step.clone(),
                            transports: vec![t],
                            base: b,
                            other: o,
                        }),
                    }
                }
            }
        }
        out
    }

    /// The scenarios grouped by topic: [`TOPICS`] in order, then any topic a scenario
    /// names itself, alphabetically; empty topics left out.
    pub fn by_topic(&self) -> Vec<(String, Vec<&ScenarioRows>)> {
        let mut names: Vec<String> = TOPICS.iter().map(|(t, _)| t.to_string()).collect();
        let mut own: Vec<String> = self
            .scenarios
            .iter()
            .map(|s| s.topic.clone())
            .filter(|t| !names.contains(t))
            .collect();
        own.sort();
        own.dedup();
        names.extend(own);
        names
            .into_iter()
            .map(|t| {
                let scs = self.scenarios.iter().filter(|s| s.topic == t).collect();
                (t, scs)
            })
            .filter(|(_, scs): &(String, Vec<&ScenarioRows>)| !scs.is_empty())
            .collect()
    }

    /// The ladder pictures: (path relative to the Markdown, SVG text) for each scenario
    /// that has one, drawn from the model and the results of the first column over the
    /// scenario's own transport whose platform has a model (Linux, where measured).
    pub fn ladders(&self, scenarios: &[Scenario]) -> Vec<(String, String)> {
        let mut out = vec![];
        for (rows, sc) in self.scenarios.iter().zip(scenarios) {
            let Some(path) = &rows.ladder else { continue };
            let t = rows.home_transport.unwrap_or_default();
            let Some((col, platform)) = self.columns.iter().find_map(|c| {
                (c.transport == t)
                    .then(|| c.profile().map(|p| (c, p)))
                    .flatten()
            }) else {
                continue;
            };
            let kernel: Vec<StepResult> = rows
                .steps
                .iter()
                .map_while(|r| r.cells.get(&col.name).cloned())
                .collect();
            let mut sc = sc.clone();
            sc.name = rows.file.clone();
            out.push((path.clone(), crate::svg::ladder(&sc, t, platform, &kernel)));
        }
        out
    }

    /// The Markdown rendering: a guide with contents, columns, differences between
    /// stacks and between transports, the model's profiles, then every scenario by topic.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let platforms = self.platforms();
        let others: Vec<&String> = platforms.iter().filter(|p| *p != "linux").collect();
        let has_linux = platforms.iter().any(|p| p == "linux");
        let topics = self.by_topic();
        out.push_str("# Close behaviour, measured\n\n");
        out.push_str("Generated by `closefuzz matrix` from `scenarios/`; do not edit by hand (the JSON behind it,\n");
        out.push_str("`behavior.json`, is described in [behavior-schema.md](behavior-schema.md)). Each cell is what\n");
        out.push_str("the kernel returned for that step (`sigpipe`: the step raised SIGPIPE; `n/a`: no such\n");
        out.push_str("observation on that transport or OS; `closed`: the end's fd was closed, so no call was\n");
        out.push_str("made). End `a` connects, `b` is accepted. A bold row is one where the columns disagree.\n\n");
        out.push_str("## Contents\n\n");
        out.push_str("- [Columns](#columns)\n");
        if has_linux {
            for p in &others {
                let h = format!("Linux versus {}", platform_title(p));
                out.push_str(&format!("- [{h}](#{})\n", anchor(&h)));
            }
        }
        out.push_str("- [Stacks](#stacks)\n");
        out.push_str("- [Transport differences](#transport-differences)\n");
        out.push_str("- [Platform profiles](#platform-profiles)\n");
        out.push_str("- [Scenarios by topic](#scenarios-by-topic)\n");
        for (t, scs) in &topics {
            let links: Vec<String> = scs
                .iter()
                .map(|s| format!("[{}](#{})", stem(&s.file), anchor(&s.file)))
                .collect();
            out.push_str(&format!(
                "  - [{t}](#{}): {}\n",
                anchor(t),
                links.join(", ")
            ));
        }
        out.push_str("\n## Columns\n\n");
        out.push_str(
            "Each column is one stack over one transport, measured on the date shown.\n\n",
        );
        out.push_str("| column | stack | version | kernel | measured | source |\n");
        out.push_str("|---|---|---|---|---|---|\n");
        for c in &self.columns {
            out.push_str(&format!(
                "| `{}` | {} | {} | {} | {} | {} |\n",
                cell(&c.name),
                cell(&c.stack),
                cell(&c.version),
                cell(&c.kernel),
                cell(&c.measured),
                cell(&c.source)
            ));
        }
        if has_linux {
            for p in &others {
                let h = format!("Linux versus {}", platform_title(p));
                out.push_str(&format!("\n## {h}\n\n"));
                out.push_str(&format!(
                    "Every step where {} answers differently from Linux over the same transport.\n\n",
                    platform_title(p)
                ));
                let diffs = self.stack_differences("linux", p);
                if diffs.is_empty() {
                    out.push_str("(none)\n");
                    continue;
                }
                out.push_str(&format!(
                    "| scenario | line | step | transports | linux | {} |\n",
                    cell(p)
                ));
                out.push_str("|---|---|---|---|---|---|\n");
                for d in diffs {
                    out.push_str(&format!(
                        "| [{}](#{}) | {} | `{}` | {} | {} | {} |\n",
                        cell(&d.file),
                        anchor(&d.file),
                        d.line,
                        cell(&d.step),
                        d.transports
                            .iter()
                            .map(|t| t.name())
                            .collect::<Vec<_>>()
                            .join(", "),
                        cell(&d.base),
                        cell(&d.other)
                    ));
                }
            }
        }
        out.push_str("\n## Transport differences\n\n");
        out.push_str("For each platform, one line per scenario step where its transports disagree (the `state`\nstep, which only TCP has, is left out).\n");
        for p in &platforms {
            out.push_str(&format!("\n{}:\n\n", platform_title(p)));
            let cols: Vec<&Column> = self.columns.iter().filter(|c| &c.platform == p).collect();
            let mut any = false;
            for sc in &self.scenarios {
                for row in &sc.steps {
                    if row.step.ends_with(": state") {
                        continue;
                    }
                    // Group the columns by outcome, in column order, so each line reads
                    // as "outcome: where".
                    let mut groups: Vec<(String, Vec<&str>)> = vec![];
                    for c in &cols {
                        if let Some(r) = row.cells.get(&c.name) {
                            let r = r.to_string();
                            let t = c.transport.name();
                            match groups.iter_mut().find(|(o, _)| *o == r) {
                                Some((_, ts)) => ts.push(t),
                                None => groups.push((r, vec![t])),
                            }
                        }
                    }
                    if groups.len() <= 1 {
                        continue;
                    }
                    any = true;
                    let cells: Vec<String> = groups
                        .iter()
                        .map(|(o, ts)| format!("`{o}` on {}", ts.join(", ")))
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
        }
        self.stacks_markdown(&mut out);
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
        out.push_str("## Scenarios by topic\n\n");
        out.push_str("A scenario's topic comes from a `# topic: NAME` line among its leading comments, else from\n");
        out.push_str("its file name: `unix-` and `seqpacket-` files go to their transport's topic; a TCP file goes\n");
        out.push_str("to the first topic with a keyword in its name (`abort`, `reset`, `rst`, `unread`: resets;\n");
        out.push_str(
            "`shutdown`, `half-close`: half-close; `poll`, `error`: poll; `time-wait`, `state`,\n",
        );
        out.push_str("`fin-ack`: states), else to peer closes. Scenarios that teach a four-way close or a reset\n");
        out.push_str("have a ladder picture, drawn from the model and the Linux column over their own transport.\n");
        out.push_str("The `expect` column is what the scenario's line says, with its per-platform overrides\n");
        out.push_str("(`EPIPE sigpipe; gvisor => EPIPE`: EPIPE with SIGPIPE, except on gVisor, EPIPE without).\n");
        for (t, scs) in &topics {
            out.push_str(&format!("\n### {t}\n\n"));
            if let Some((_, what)) = TOPICS.iter().find(|(n, _)| n == t) {
                out.push_str(&format!("{}{}.\n", what[..1].to_uppercase(), &what[1..]));
            }
            for sc in scs {
                self.scenario_markdown(&mut out, sc);
            }
        }
        out
    }

    fn scenario_markdown(&self, out: &mut String, sc: &ScenarioRows) {
        out.push_str(&format!("\n#### {}\n\n", sc.file));
        for d in &sc.description {
            out.push_str(&format!("> {d}\n"));
        }
        if !sc.description.is_empty() {
            out.push('\n');
        }
        if let Some(l) = &sc.ladder {
            out.push_str(&format!("![ladder diagram of {}]({l})\n\n", sc.file));
        }
        out.push_str("| line | step | expect |");
        for c in &self.columns {
            out.push_str(&format!(" {} |", cell(&c.name)));
        }
        out.push_str("\n|---|---|---|");
        for _ in &self.columns {
            out.push_str("---|");
        }
        out.push('\n');
        for row in &sc.steps {
            let distinct: std::collections::BTreeSet<String> =
                row.cells.values().map(|r| r.to_string()).collect();
            out.push_str(&format!(
                "| {} | `{}` | {} |",
                row.line,
                cell(&row.step),
                row.expect.as_deref().map(cell).unwrap_or_default()
            ));
            for c in &self.columns {
                let text = row
                    .cells
                    .get(&c.name)
                    .map(|r| cell(&r.to_string()))
                    .unwrap_or_else(|| "—".into());
                if distinct.len() > 1 {
                    out.push_str(&format!(" **{text}** |"));
                } else {
                    out.push_str(&format!(" {text} |"));
                }
            }
            out.push('\n');
        }
        Self::segments_markdown(out, sc);
    }

    /// Under `network held`: each step's segments, per column that held them.
    fn segments_markdown(out: &mut String, sc: &ScenarioRows) {
        let held: std::collections::BTreeSet<&String> =
            sc.steps.iter().flat_map(|r| r.sent.keys()).collect();
        if held.is_empty() {
            return;
        }
        out.push_str("\nThe segments each step sent (sequence and acknowledgement numbers relative to each end's first data byte):\n\n| line | step |");
        for c in &held {
            out.push_str(&format!(" {} |", cell(c)));
        }
        out.push_str("\n|---|---|");
        for _ in &held {
            out.push_str("---|");
        }
        out.push('\n');
        for row in &sc.steps {
            out.push_str(&format!("| {} | `{}` |", row.line, cell(&row.step)));
            for c in &held {
                let text = row
                    .sent
                    .get(*c)
                    .map(|s| cell(s))
                    .unwrap_or_else(|| "—".into());
                out.push_str(&format!(" {text} |"));
            }
            out.push('\n');
        }
    }
}

fn stem(file: &str) -> &str {
    file.strip_suffix(".cfz").unwrap_or(file)
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

/// `uname(2)`'s fields.
struct Uname {
    sysname: String,
    release: String,
    version: String,
    machine: String,
}

fn uname() -> Uname {
    // SAFETY: uname fills the struct we pass; the fields are NUL-terminated.
    unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut u) != 0 {
            let unknown = || "unknown".to_string();
            return Uname {
                sysname: unknown(),
                release: unknown(),
                version: unknown(),
                machine: unknown(),
            };
        }
        let f = |p: *const libc::c_char| std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned();
        Uname {
            sysname: f(u.sysname.as_ptr()),
            release: f(u.release.as_ptr()),
            version: f(u.version.as_ptr()),
            machine: f(u.machine.as_ptr()),
        }
    }
}

/// This machine's OS, kernel release and the observations it cannot make.
pub fn machine_identity() -> (String, String, Vec<String>) {
    let os = std::env::consts::OS.to_string();
    let release = uname().release;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(59), "1970-03-01");
        assert_eq!(civil_date(11_016), "2000-02-29");
        assert_eq!(civil_date(19_723), "2024-01-01");
    }

    #[test]
    fn topics_from_names_and_comments() {
        assert_eq!(topic_of("tcp-motivating-case.cfz", &[]), "Peer closes");
        assert_eq!(
            topic_of("unix-listener-close-queued.cfz", &[]),
            "Listeners and accept queues"
        );
        assert_eq!(
            topic_of("tcp-connect-refused.cfz", &[]),
            "Connecting and never-connected sockets"
        );
        assert_eq!(topic_of("tcp-fin-wait2-timeout.cfz", &[]), "Timers");
        assert_eq!(
            topic_of("tcp-abort-after-shutdown-wr.cfz", &[]),
            "Resets and aborts"
        );
        assert_eq!(
            topic_of("tcp-both-shutdown-wr.cfz", &[]),
            "Half-close and shutdown"
        );
        assert_eq!(
            topic_of("unix-abort-is-close.cfz", &[]),
            "Unix stream specifics"
        );
        assert_eq!(
            topic_of("tcp-x.cfz", &["topic: Listeners".to_string()]),
            "Listeners"
        );
    }

    #[test]
    fn table_cells_escape_pipes() {
        assert_eq!(cell("poll IN|OUT"), "poll IN\\|OUT");
    }
}
