//! The `closefuzz` command line: replay, fuzz, explain, bench.

use clap::{Parser, Subcommand};
use closefuzz::exec::{executor_for, Case, Executor};
use closefuzz::fuzz::{run_campaign_until, Campaign, Finding, Verdict};
use closefuzz::matrix::{build_seen, run_all, run_all_seen, scenario_files, Column, Recording};
use closefuzz::model::tcp::{Mutation, TcpModel};
use closefuzz::model::{Model, Platform};
use closefuzz::report::{explain_text, replay_report, replay_text};
use closefuzz::run::{run_case_with, stack_of};
use closefuzz::script::Scenario;
use closefuzz::step::Start;
use closefuzz::transport::Transport;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

/// `println!`, except that when standard output's reader has gone (a pipe into `head`)
/// the process ends quietly with 141, as a program killed by SIGPIPE would, instead of
/// panicking: SIGPIPE is blocked here (see `main`), so the write fails with EPIPE.
macro_rules! outln {
    () => {
        emit(format_args!("\n"))
    };
    ($($t:tt)*) => {
        emit(format_args!("{}\n", format_args!($($t)*)))
    };
}

/// `print!`, as [`outln!`].
macro_rules! out {
    ($($t:tt)*) => {
        emit(format_args!($($t)*))
    };
}

fn emit(args: std::fmt::Arguments) {
    use std::io::Write;
    if let Err(e) = std::io::stdout().lock().write_fmt(args) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        eprintln!("closefuzz: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

#[derive(Parser)]
#[command(
    name = "closefuzz",
    version,
    about = "What happens when sockets connect, accept, close, shut down, write and read in every order: a model checked against real stacks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run scenario scripts on real sockets and in the model; exit 0 only if all agree
    /// and meet their written expectations, 1 on any mismatch, 2 on bad input.
    Replay {
        /// Scenario files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Transport for files without a `transport` header (a header that says
        /// otherwise is an error).
        #[arg(long)]
        transport: Option<Transport>,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
        /// Where the kernel side runs: linux (the host), gvisor (runsc) or linux-6.1
        /// (User-mode Linux).
        #[arg(long, default_value = "linux")]
        platform: Platform,
        /// Write the packets of a `network held` scenario (one file only) as pcapng:
        /// each emitted, delivered or dropped, with a comment saying which and when.
        #[arg(long, value_name = "FILE")]
        pcap: Option<PathBuf>,
    },
    /// A fuzz campaign: generated orderings, model against kernel, the first
    /// disagreement shrunk to a minimal script and saved. It prints the command that
    /// reruns the same cases, first and last; Ctrl-C stops it between cases, prints
    /// what it did so far and exits 130.
    Fuzz {
        /// Cases in all (1 to 1,000,000,000).
        #[arg(long, default_value_t = 10_000)]
        cases: u64,
        /// Longest sequence (1 to 256: more could write past the bytes per end the
        /// model predicts).
        #[arg(long, default_value_t = 24)]
        max_steps: usize,
        /// Seed (printed; the same seed and thread count give the same cases).
        #[arg(long)]
        seed: Option<u64>,
        /// Worker threads (1 to 64, and at most --cases).
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Transport.
        #[arg(long, default_value = "tcp4")]
        transport: Transport,
        /// Where to write a shrunk disagreement (checked for writing before the
        /// campaign starts).
        #[arg(long, default_value = "closefuzz-failures")]
        out: PathBuf,
        /// Test-only: run against a model with one deliberately wrong TCP rule, to
        /// show a campaign catching and shrinking it.
        #[arg(long, hide = true)]
        mutation: Option<String>,
        /// Where the kernel side runs: linux (the host), gvisor (runsc) or linux-6.1
        /// (User-mode Linux).
        #[arg(long, default_value = "linux")]
        platform: Platform,
        /// How each case's world starts: connected, listening, or both (drawn per case).
        #[arg(long, default_value = "both")]
        start: String,
        /// instant (every segment arrives at once) or held (deliveries, drops and
        /// reorders drawn as steps; the host kernel and smoltcp; start listening, with
        /// the handshake as steps, where the stack has a listener).
        #[arg(long, default_value = "instant")]
        network: closefuzz::step::Network,
    },
    /// Show a scenario as a ladder: each step, every socket's state, the segments on the
    /// wire, and the verdict replay gives (exit 0, 1 or 2 as replay).
    Explain {
        /// The scenario file.
        file: PathBuf,
        /// Transport for a file without a `transport` header.
        #[arg(long)]
        transport: Option<Transport>,
        /// Where the kernel side runs: linux (the host), gvisor (runsc) or linux-6.1
        /// (User-mode Linux).
        #[arg(long, default_value = "linux")]
        platform: Platform,
        /// Also draw the ladder as an SVG picture into this file.
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
        /// Write the packets of a `network held` scenario as pcapng (see replay).
        #[arg(long, value_name = "FILE")]
        pcap: Option<PathBuf>,
    },
    /// Run every scenario on every available platform and transport, and write the
    /// behaviour tables (docs/behavior.md and docs/behavior.json).
    Matrix {
        /// The scenario folder.
        #[arg(long, default_value = "scenarios")]
        scenarios: PathBuf,
        /// Where to write behavior.md, behavior.json and recordings/.
        #[arg(long, default_value = "docs")]
        out: PathBuf,
        /// A recording from `closefuzz record` on another machine: copied into
        /// OUT/recordings/ and shown as that machine's columns from then on.
        #[arg(long)]
        add: Vec<PathBuf>,
        /// Only these platforms (repeatable; default: every one available here).
        #[arg(long)]
        platform: Vec<Platform>,
    },
    /// Run every scenario over every transport on this machine and write the results as
    /// JSON, named by OS, kernel release and runtime, for `matrix --add`.
    Record {
        /// The scenario folder.
        #[arg(long, default_value = "scenarios")]
        scenarios: PathBuf,
        /// The output file. Default: OS-RELEASE-native.json in the system's temporary
        /// folder ($TMPDIR or /tmp), so that nothing lands untracked in a checkout;
        /// the path is printed.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Measure the full loop against bare syscalls, and 2 threads against 1.
    ///
    /// A missed target (full/bare ratio or 2-thread scaling) is marked MISSED and
    /// listed on a final "targets missed:" line (before the JSON with --json); it does
    /// not change the exit code unless --strict, since
    /// the figures depend on what else the machine is doing. A disagreement between
    /// model and kernel is printed as a script; exit 1 if it disagrees again when run
    /// once more.
    Bench {
        /// Cases per measurement (2 to 100,000).
        #[arg(long, default_value_t = 5000)]
        cases: usize,
        /// Transport, or `all` for each transport in turn.
        #[arg(long, default_value = "tcp4")]
        transport: String,
        /// Print one JSON object as the last line (keyed by transport with `all`).
        #[arg(long)]
        json: bool,
        /// Where the kernel side runs: linux (the host), gvisor (runsc) or linux-6.1
        /// (User-mode Linux).
        #[arg(long, default_value = "linux")]
        platform: Platform,
        /// Exit 1 when a target is missed or any case disagreed, even once.
        #[arg(long)]
        strict: bool,
        /// instant, or held (cases with deliveries, drops and reorders as steps, start
        /// connected; the bare loop delivers the same segments without observing).
        #[arg(long, default_value = "instant")]
        network: closefuzz::step::Network,
        /// Test-only: as for fuzz.
        #[arg(long, hide = true)]
        mutation: Option<String>,
    },
    /// Serve cases on stdin/stdout, one JSON line each (what runs inside a sandbox).
    #[command(hide = true)]
    Worker,
}

/// The command that serves cases inside a sandbox: this binary's `worker`.
fn worker_command() -> Vec<std::ffi::OsString> {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("closefuzz"));
    vec![exe.into_os_string(), "worker".into()]
}

fn executor(platform: Platform) -> Result<Box<dyn Executor + Send>, BadInput> {
    executor_for(stack_of(platform), &worker_command())
        .map_err(|e| BadInput(format!("platform {platform}: {e}")))
}

/// The `--start` value that selects `starts`.
fn start_name(starts: &[Start]) -> &'static str {
    match starts {
        [Start::Connected] => "connected",
        [Start::Listening] => "listening",
        _ => "both",
    }
}

/// A user-facing failure: one line, exit 2.
struct BadInput(String);

fn load(file: &Path, cli_transport: Option<Transport>) -> Result<(Scenario, Transport), BadInput> {
    let sc = Scenario::load(file).map_err(|e| BadInput(e.to_string()))?;
    let t = match (sc.transport, cli_transport) {
        (Some(h), Some(c)) if h != c => {
            return Err(BadInput(format!(
                "{}: the file says 'transport {h}' but --transport says {c}: drop one",
                file.display()
            )))
        }
        (Some(h), _) => h,
        (None, Some(c)) => c,
        (None, None) => Transport::default(),
    };
    Ok((sc, t))
}

/// `--pcap FILE`: the case, capturing, when the scenario holds its segments; a one-line
/// error when it does not (under `network instant` nothing waits to be captured).
fn capture_for(case: Case, name: &str, pcap: Option<&Path>) -> Result<Case, BadInput> {
    match pcap {
        None => Ok(case),
        Some(_) if case.network != closefuzz::step::Network::Held => Err(BadInput(format!(
            "--pcap: {name} is not `network held`: only held segments are captured"
        ))),
        Some(_) => Ok(case.capturing()),
    }
}

/// Writes what `run` captured to `path` (see [`closefuzz::pcap`]).
fn write_pcap(path: &Path, run: &closefuzz::run::CaseRun) -> Result<(), BadInput> {
    let steps: Vec<_> = run.steps.iter().map(|s| s.step).collect();
    let file = std::fs::File::create(path)
        .map_err(|e| BadInput(format!("{}: cannot write: {e}", path.display())))?;
    let n = closefuzz::pcap::write(std::io::BufWriter::new(file), &run.packets, &steps)
        .map_err(|e| BadInput(format!("{}: cannot write: {e}", path.display())))?;
    eprintln!("{}: {n} packet records written", path.display());
    Ok(())
}

fn replay(
    files: &[PathBuf],
    transport: Option<Transport>,
    json: bool,
    platform: Platform,
    pcap: Option<&Path>,
) -> Result<ExitCode, BadInput> {
    // Parse everything first, so bad input is reported before any socket is made. A
    // folder stands for its scenarios (as `matrix` reads them: its subfolders too, but
    // not slow/ unless that folder is named itself).
    let mut loaded = vec![];
    for f in files {
        if f.is_dir() {
            let inner = scenario_files(f)
                .map_err(|e| BadInput(format!("{}: cannot list scenarios: {e}", f.display())))?;
            if inner.is_empty() {
                return Err(BadInput(format!(
                    "{}: a folder with no .cfz scenario files: expected scenario files",
                    f.display()
                )));
            }
            for g in inner {
                loaded.push(load(&g, transport)?);
            }
        } else {
            loaded.push(load(f, transport)?);
        }
    }
    if pcap.is_some() && loaded.len() != 1 {
        return Err(BadInput(format!(
            "--pcap: {} scenarios given: expected one scenario file",
            loaded.len()
        )));
    }
    let mut exec = executor(platform)?;
    let mut reports = vec![];
    let surface = closefuzz::model::profile::Profile::of(platform).surface;
    let mut skipped = 0;
    for (sc, t) in &loaded {
        // What the stack cannot run is n/a there, not a failure.
        if let Some(why) = sc.unrunnable_on(&surface, *t) {
            if !json {
                outln!("{} ({t} on {platform}): skipped, n/a: {why}", sc.name);
            }
            skipped += 1;
            continue;
        }
        let case = sc.case(*t);
        if !surface.runs(case.transport) || !surface.starts.contains(&case.start) {
            if !json {
                outln!(
                    "{}: skipped, n/a on {platform} ({} {})",
                    sc.name,
                    case.transport,
                    case.start
                );
            }
            skipped += 1;
            continue;
        }
        let case = capture_for(case, &sc.name, pcap)?;
        let model = closefuzz::run::model_for(&case, platform);
        let run = run_case_with(&mut exec, &model, &case)
            .map_err(|e| BadInput(format!("{}: {e}", sc.name)))?;
        if let Some(path) = pcap {
            write_pcap(path, &run)?;
        }
        reports.push(replay_report(sc, &run, platform));
    }
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&reports).expect("serialising a report")
        );
    } else {
        for r in &reports {
            out!("{}", replay_text(r));
        }
        let passed = reports.iter().filter(|r| r.pass).count();
        let failed = reports.len() - passed;
        if skipped > 0 {
            outln!("{passed} passed, {failed} failed, {skipped} skipped (n/a on {platform})");
        } else {
            outln!("{passed} passed, {failed} failed");
        }
    }
    Ok(if reports.iter().all(|r| r.pass) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The model of each case's world a campaign or benchmark checks against: the
/// platform's, or (test-only) one whose TCP connections have one deliberately wrong
/// rule. Also the mutation's own name.
type ModelOf = Box<dyn Fn(&Case) -> Model + Sync>;

fn model_for(
    transport: Transport,
    platform: Platform,
    mutation: Option<&str>,
) -> Result<(ModelOf, Option<String>), BadInput> {
    let plain = move |case: &Case| closefuzz::run::model_for(case, platform);
    let Some(name) = mutation else {
        return Ok((Box::new(plain), None));
    };
    let m = Mutation::from_name(name).ok_or_else(|| {
        let names: Vec<String> = Mutation::ALL.iter().map(|m| format!("{m:?}")).collect();
        BadInput(format!(
            "unknown mutation '{name}': expected one of {}",
            names.join(", ")
        ))
    })?;
    if !transport.is_tcp() {
        return Err(BadInput("--mutation applies to the TCP model only".into()));
    }
    let tcp =
        TcpModel::with_profile(closefuzz::model::profile::Profile::of(platform)).with_mutation(m);
    Ok((
        Box::new(move |case: &Case| plain(case).with_tcp(tcp.clone())),
        Some(format!("{m:?}")),
    ))
}

/// Set by SIGINT while a campaign runs; the campaign stops between cases.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    // A second Ctrl-C means "now" (a shrink or a sandbox may take a while to stop).
    if INTERRUPTED.swap(true, Ordering::SeqCst) {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(130) }
    }
}

/// Lets SIGINT stop a campaign between cases instead of killing the process, so the
/// cases run and the command that reruns them are printed on the way out.
fn catch_sigint() {
    // SAFETY: the handler only stores to an atomic and calls _exit, both
    // async-signal-safe; SA_RESTART keeps blocking calls in the main thread going.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGINT, &sa, std::ptr::null_mut());
    }
}

/// Creates `dir` if needed and proves a file can be written there, so that a finding
/// is never lost to an unwritable --out at the end of a long campaign. Returns whether
/// the folder was made here (it is removed again if nothing is written to it).
fn check_out_dir(dir: &Path) -> Result<bool, BadInput> {
    let existed = dir.is_dir();
    std::fs::create_dir_all(dir)
        .map_err(|e| BadInput(format!("--out {}: cannot create: {e}", dir.display())))?;
    let probe = dir.join(format!(".closefuzz-probe-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| BadInput(format!("--out {}: cannot write there: {e}", dir.display())))?;
    Ok(!existed)
}

/// Prints a finding in full and saves it under `out`. The script reaches the terminal
/// even when it cannot be written.
fn report_finding(f: &Finding, c: &Campaign, repro: &str, file_stem: &str, out: &Path) {
    let shrunk = if f.minimal {
        format!("shrunk to {} steps", f.case.steps.len())
    } else {
        format!("shrinking interrupted at {} steps", f.case.steps.len())
    };
    let mut text = format!(
        "# found by: {repro}\n# {shrunk} (generator thread {})\n",
        f.thread
    );
    text.push_str(&f.script);
    if f.found != f.script {
        // Kept, commented out, so that a shrink that wandered is not all that is left.
        text.push_str("\n# as it first disagreed, before shrinking:\n");
        for line in f.found.lines() {
            text.push_str(&format!("# {line}\n"));
        }
    }
    outln!("MISMATCH: model and kernel disagree.\n\n{text}");
    let path = out.join(format!("{file_stem}-seed{}-t{}.cfz", c.seed, f.thread));
    match std::fs::write(&path, &text) {
        Ok(()) => outln!("written to {}", path.display()),
        Err(e) => eprintln!(
            "closefuzz: {}: cannot write: {e} (the script is printed above)",
            path.display()
        ),
    }
}

fn fuzz(
    mut c: Campaign,
    out: &Path,
    mutation: Option<&str>,
    platform: Platform,
) -> Result<ExitCode, BadInput> {
    c.check().map_err(BadInput)?;
    if c.threads as u64 > c.cases {
        eprintln!(
            "closefuzz: --threads {} but only {} cases: running {} threads",
            c.threads, c.cases, c.cases
        );
        c.threads = c.cases as usize;
    }
    let (model, mutation) = model_for(c.transport, platform, mutation)?;
    let made_out = check_out_dir(out)?;
    // Everything that selects the cases, so that the line reruns exactly these.
    let mut repro = format!(
        "closefuzz fuzz --cases {} --max-steps {} --seed {} --threads {} --transport {} --start {} --platform {platform}",
        c.cases, c.max_steps, c.seed, c.threads, c.transport, start_name(c.starts)
    );
    if c.network == closefuzz::step::Network::Held {
        repro.push_str(" --network held");
    }
    let mut file_stem = format!("{}-{}-{platform}", c.transport, start_name(c.starts));
    if c.network == closefuzz::step::Network::Held {
        file_stem.push_str("-held");
    }
    if let Some(m) = &mutation {
        repro.push_str(&format!(" --mutation {m}"));
        file_stem.push_str(&format!("-{m}"));
    }
    outln!("{repro}");
    catch_sigint();
    let bar = ProgressBar::new(c.cases);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} cases  {per_sec}  eta {eta}")
            .expect("progress template"),
    );
    let start = std::time::Instant::now();
    // Fail early, with one line, if the platform cannot run at all (runsc missing).
    drop(executor(platform)?);
    let worker = worker_command();
    let verdict = run_campaign_until(
        &c,
        &*model,
        || executor_for(stack_of(platform), &worker),
        &|n| {
            if n % 64 == 0 {
                bar.set_position(n);
            }
        },
        &INTERRUPTED,
    );
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    let unstable_note = |unstable: u64| {
        if unstable > 0 {
            outln!("{unstable} cases disagreed once and agreed when run again (a delivery outlasted the settle bound)");
        }
    };
    let found = matches!(
        verdict,
        Verdict::Mismatch(_)
            | Verdict::Interrupted {
                finding: Some(_),
                ..
            }
    );
    if made_out && !found {
        // Made only for the check: leave no empty folder behind.
        let _ = std::fs::remove_dir(out);
    }
    match verdict {
        Verdict::Clean {
            cases,
            unstable,
            coverage,
        } => {
            unstable_note(unstable);
            outln!("{coverage}");
            outln!(
                "{cases} cases, 0 mismatches, {secs:.1} s ({:.0} cases/s)",
                cases as f64 / secs
            );
            Ok(ExitCode::SUCCESS)
        }
        Verdict::Mismatch(f) => {
            report_finding(&f, &c, &repro, &file_stem, out);
            Ok(ExitCode::from(1))
        }
        Verdict::Interrupted {
            cases,
            unstable,
            finding,
        } => {
            if let Some(f) = &finding {
                report_finding(f, &c, &repro, &file_stem, out);
            }
            unstable_note(unstable);
            outln!(
                "interrupted: {cases} of {} cases run, {} mismatches, {secs:.1} s",
                c.cases,
                u8::from(finding.is_some())
            );
            outln!("to run these cases again: {repro}");
            Ok(ExitCode::from(130))
        }
        Verdict::Error(e) => Err(BadInput(e)),
    }
}

fn explain(
    file: &Path,
    transport: Option<Transport>,
    platform: Platform,
    svg: Option<&Path>,
    pcap: Option<&Path>,
) -> Result<ExitCode, BadInput> {
    let (sc, t) = load(file, transport)?;
    let mut exec = executor(platform)?;
    let case = capture_for(sc.case(t), &sc.name, pcap)?;
    let run = run_case_with(
        &mut exec,
        &closefuzz::run::model_for(&case, platform),
        &case,
    )
    .map_err(|e| BadInput(format!("{}: {e}", sc.name)))?;
    out!("{}", explain_text(&sc, &run, platform));
    if let Some(path) = svg {
        let kernel: Vec<_> = run.steps.iter().map(|r| r.kernel.clone()).collect();
        std::fs::write(path, closefuzz::svg::ladder(&sc, t, platform, &kernel))
            .map_err(|e| BadInput(format!("{}: cannot write: {e}", path.display())))?;
    }
    if let Some(path) = pcap {
        write_pcap(path, &run)?;
    }
    // The same verdict as replay: kernel and model agree and every expectation holds.
    Ok(if replay_report(&sc, &run, platform).pass {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Whether `platform` can run cases under `network`: a one-line error naming the
/// platforms that can, when it cannot.
fn network_runs_on(network: closefuzz::step::Network, platform: Platform) -> Result<(), BadInput> {
    use closefuzz::model::profile::Profile;
    if Profile::of(platform).surface.networks.contains(&network) {
        return Ok(());
    }
    let can: Vec<String> = Platform::ALL
        .iter()
        .filter(|p| Profile::of(**p).surface.networks.contains(&network))
        .map(|p| p.to_string())
        .collect();
    Err(BadInput(format!(
        "--network {network}: {platform} cannot hold segments (held runs on {})",
        can.join(", ")
    )))
}

fn bench(
    cases: usize,
    transport: &str,
    json: bool,
    (platform, network): (Platform, closefuzz::step::Network),
    strict: bool,
    mutation: Option<&str>,
) -> Result<ExitCode, BadInput> {
    use closefuzz::bench::MAX_CASES;
    if !(2..=MAX_CASES).contains(&cases) {
        return Err(BadInput(format!(
            "--cases {cases}: expected 2 to {MAX_CASES}"
        )));
    }
    network_runs_on(network, platform)?;
    let surface = closefuzz::model::profile::Profile::of(platform).surface;
    let transports: Vec<Transport> = if transport == "all" {
        // Segments are held on TCP only.
        surface
            .transports
            .iter()
            .copied()
            .filter(|t| t.is_tcp() || network == closefuzz::step::Network::Instant)
            .collect()
    } else {
        vec![transport
            .parse::<Transport>()
            .map_err(|e| BadInput(format!("--transport: {e}, or all")))?]
    };
    let mut reports = vec![];
    // Each start mode on its own, so that each has its full-loop / bare ratio.
    // Held cases start connected (the handshake delivered before the first step).
    let held = network == closefuzz::step::Network::Held;
    for (t, starts) in transports.iter().flat_map(|t| {
        [&[Start::Connected][..], &[Start::Listening][..]]
            .into_iter()
            .filter(|s| surface.starts.contains(&s[0]) && !(held && s[0] == Start::Listening))
            .map(move |s| (*t, s))
    }) {
        let (model, _) = model_for(t, platform, mutation)?;
        let worker = worker_command();
        let draw = closefuzz::bench::Draw {
            // The loop's speed, not the timers': a held sleep is up to 1.5 s of wall
            // time, which would be all the benchmark measured.
            surface: closefuzz::step::Surface {
                held_sleep: false,
                ..surface
            },
            platform,
            network,
        };
        let r = closefuzz::bench::bench(t, starts, draw, &*model, cases, || {
            executor_for(stack_of(platform), &worker)
        })
        .map_err(|e| BadInput(format!("benchmark over {t} failed: {e}")))?;
        out!("{}", r.to_text());
        reports.push(r);
    }
    let missed: Vec<String> = reports.iter().flat_map(|r| r.missed()).collect();
    let mismatches: usize = reports.iter().map(|r| r.mismatches).sum();
    let reproduced: usize = reports.iter().map(|r| r.mismatches_reproduced).sum();
    if missed.is_empty() {
        outln!("targets: all met");
    } else {
        outln!("targets missed: {}", missed.join("; "));
    }
    if json {
        let line = if reports.len() == 1 {
            serde_json::to_string(&reports[0])
        } else {
            let map: serde_json::Map<String, serde_json::Value> = reports
                .iter()
                .map(|r| {
                    (
                        r.transport.clone(),
                        serde_json::to_value(r).expect("report as JSON"),
                    )
                })
                .collect();
            serde_json::to_string(&map)
        };
        outln!("{}", line.expect("serialising the report"));
    }
    // A disagreement that shows again is a finding, as in fuzz; missed targets and
    // one-off disagreements depend on the machine's load, so only --strict fails on them.
    let failed = reproduced > 0 || (strict && (!missed.is_empty() || mismatches > 0));
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn load_scenarios(dir: &Path) -> Result<(Vec<PathBuf>, Vec<Scenario>), BadInput> {
    let files = scenario_files(dir)
        .map_err(|e| BadInput(format!("{}: cannot list scenarios: {e}", dir.display())))?;
    if files.is_empty() {
        return Err(BadInput(format!(
            "{}: no .cfz scenario files",
            dir.display()
        )));
    }
    let scenarios = files
        .iter()
        .map(|f| Scenario::load(f).map_err(|e| BadInput(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((files, scenarios))
}

/// The largest recording `matrix --add` reads (one machine's results for every
/// scenario take about 2 MB).
const MAX_RECORDING_BYTES: u64 = 64 << 20;

fn read_recording(path: &Path) -> Result<Recording, BadInput> {
    let bytes = closefuzz::script::read_regular(
        path,
        MAX_RECORDING_BYTES,
        "the JSON `closefuzz record` writes",
    )
    .map_err(|e| BadInput(format!("{}: cannot read recording: {e}", path.display())))?;
    let text = String::from_utf8(bytes).map_err(|_| {
        BadInput(format!(
            "{}: not UTF-8: expected the JSON `closefuzz record` writes",
            path.display()
        ))
    })?;
    Recording::from_json(&text).map_err(|e| {
        BadInput(format!(
            "{}:{e}; expected the JSON `closefuzz record` writes",
            path.display()
        ))
    })
}

fn matrix(
    scenario_dir: &Path,
    out: &Path,
    add: &[PathBuf],
    only: &[Platform],
) -> Result<ExitCode, BadInput> {
    let (files, scenarios) = load_scenarios(scenario_dir)?;
    // Validate every recording before anything is written.
    let mut added = vec![];
    for a in add {
        added.push((a.clone(), read_recording(a)?));
    }
    let rec_dir = out.join("recordings");
    std::fs::create_dir_all(&rec_dir)
        .map_err(|e| BadInput(format!("{}: cannot create: {e}", rec_dir.display())))?;
    for (path, _) in &added {
        let dest = rec_dir.join(path.file_name().unwrap_or_default());
        std::fs::copy(path, &dest).map_err(|e| {
            BadInput(format!(
                "{}: cannot copy to {}: {e}",
                path.display(),
                dest.display()
            ))
        })?;
    }
    let mut columns = vec![];
    let mut results = vec![];
    let measured = closefuzz::matrix::today();
    for platform in Platform::ALL {
        if !only.is_empty() && !only.contains(&platform) {
            continue;
        }
        let mut exec = match executor_for(stack_of(platform), &worker_command()) {
            Ok(e) => e,
            // The host always runs; a sandbox may be missing: say so and go on.
            Err(e) if platform != Platform::Linux => {
                eprintln!("closefuzz: no {platform} columns: {e}");
                continue;
            }
            Err(e) => return Err(BadInput(format!("platform {platform}: {e}"))),
        };
        let (stack, version, kernel) = closefuzz::matrix::live_provenance(platform);
        let surface = closefuzz::model::profile::Profile::of(platform).surface;
        for t in Transport::ALL.into_iter().filter(|t| surface.runs(*t)) {
            columns.push(Column {
                name: format!("{platform}/{t}"),
                platform: platform.name().into(),
                transport: t,
                source: "live".into(),
                stack: stack.clone(),
                version: version.clone(),
                kernel: kernel.clone(),
                measured: measured.clone(),
                profile: Some(platform.name().into()),
            });
            results.push(
                run_all_seen(&mut exec, &scenarios, t, Some(platform)).map_err(|e| {
                    BadInput(format!("running scenarios over {t} on {platform}: {e}"))
                })?,
            );
        }
    }
    let mut m = build_seen(&files, &scenarios, columns, results);
    let mut recordings: Vec<PathBuf> = std::fs::read_dir(&rec_dir)
        .map_err(|e| BadInput(format!("{}: {e}", rec_dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    recordings.sort();
    for f in recordings {
        let rec = read_recording(&f)?;
        m.add_recording(&rec, &f.file_name().unwrap_or_default().to_string_lossy());
    }
    let json = serde_json::to_string_pretty(&m).expect("serialising the matrix");
    let md = m.to_markdown();
    for (name, text) in [("behavior.json", json + "\n"), ("behavior.md", md)] {
        let p = out.join(name);
        std::fs::write(&p, text)
            .map_err(|e| BadInput(format!("{}: cannot write: {e}", p.display())))?;
    }
    write_ladders(out, &m.ladders(&scenarios))?;
    outln!(
        "{} scenarios x {} columns written to {}/behavior.md and {}/behavior.json",
        m.scenarios.len(),
        m.columns.len(),
        out.display(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes the ladder pictures under `out` and removes pictures no scenario has any more.
fn write_ladders(out: &Path, ladders: &[(String, String)]) -> Result<(), BadInput> {
    let dir = out.join("ladders");
    std::fs::create_dir_all(&dir)
        .map_err(|e| BadInput(format!("{}: cannot create: {e}", dir.display())))?;
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.extension().is_some_and(|e| e == "svg")
            && !ladders.iter().any(|(l, _)| out.join(l) == p)
        {
            let _ = std::fs::remove_file(&p);
        }
    }
    for (rel, svg) in ladders {
        let p = out.join(rel);
        std::fs::write(&p, svg)
            .map_err(|e| BadInput(format!("{}: cannot write: {e}", p.display())))?;
    }
    Ok(())
}

fn record(scenario_dir: &Path, out: Option<PathBuf>) -> Result<ExitCode, BadInput> {
    let (files, scenarios) = load_scenarios(scenario_dir)?;
    let mut rec = Recording::here(&files, &scenarios);
    let (os, release) = (rec.os.clone(), rec.release.clone());
    for t in Transport::ALL {
        match run_all(&mut closefuzz::exec::Local, &scenarios, t, None) {
            Ok(per_scenario) => {
                for (f, steps) in files.iter().zip(per_scenario) {
                    let name = f
                        .file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned();
                    rec.results
                        .entry(name)
                        .or_default()
                        .insert(t.name().to_string(), steps);
                }
            }
            // A transport this OS lacks (no SOCK_SEQPACKET on macOS) is left out, and said.
            Err(e) => {
                eprintln!("closefuzz: {t} not recorded: {e}");
                rec.unavailable.push(format!("transport {t}: {e}"));
            }
        }
    }
    // Not the current folder: run in a checkout, the file would sit there untracked.
    let out =
        out.unwrap_or_else(|| std::env::temp_dir().join(format!("{os}-{release}-native.json")));
    let text = serde_json::to_string_pretty(&rec).expect("serialising the recording") + "\n";
    std::fs::write(&out, text)
        .map_err(|e| BadInput(format!("{}: cannot write: {e}", out.display())))?;
    outln!(
        "recorded {} scenarios on {os} {release} to {}",
        files.len(),
        out.display()
    );
    outln!(
        "bring it to a closefuzz checkout and run: closefuzz matrix --add {}",
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    // Without root, become root in a user namespace of our own while there is still one
    // thread (the kernel refuses it later), so each thread may have a network namespace.
    closefuzz::exec::netns::enter_user_namespace();
    // Block SIGPIPE before any thread starts, so every thread inherits the mask: on
    // Linux a socket's SIGPIPE goes to the writing thread, but on some systems it is
    // sent to the process, and must then stay pending rather than reach a thread that
    // would ignore it unseen.
    closefuzz::exec::signals::block_sigpipe_in_this_thread();
    if closefuzz::exec::uml::is_guest() {
        closefuzz::exec::uml::guest_main();
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                e.exit();
            }
            // Bad input is one line that says what was wrong (clap's first line).
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("bad arguments");
            eprintln!(
                "closefuzz: {} (see closefuzz --help)",
                first.trim_start_matches("error: ")
            );
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Replay {
            files,
            transport,
            json,
            platform,
            pcap,
        } => replay(&files, transport, json, platform, pcap.as_deref()),
        Command::Fuzz {
            cases,
            max_steps,
            seed,
            threads,
            transport,
            out,
            mutation,
            platform,
            start,
            network,
        } => {
            let surface = closefuzz::model::profile::Profile::of(platform).surface;
            if let Err(BadInput(msg)) = network_runs_on(network, platform) {
                eprintln!("closefuzz: {msg}");
                return ExitCode::from(2);
            }
            let starts: &'static [Start] = match start.as_str() {
                // Both, where the stack can set both up.
                "both" => {
                    closefuzz::model::profile::Profile::of(platform)
                        .surface
                        .starts
                }
                "connected" => &[Start::Connected],
                "listening" => &[Start::Listening],
                other => {
                    eprintln!("closefuzz: --start {other}: expected connected, listening or both");
                    return ExitCode::from(2);
                }
            };
            let seed = seed.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
            fuzz(
                Campaign {
                    cases,
                    max_steps,
                    seed,
                    threads,
                    transport,
                    starts,
                    surface,
                    platform,
                    network,
                },
                &out,
                mutation.as_deref(),
                platform,
            )
        }
        Command::Explain {
            file,
            transport,
            platform,
            svg,
            pcap,
        } => explain(&file, transport, platform, svg.as_deref(), pcap.as_deref()),
        Command::Worker => Ok(ExitCode::from(closefuzz::exec::worker::main() as u8)),
        Command::Bench {
            cases,
            transport,
            json,
            platform,
            strict,
            network,
            mutation,
        } => bench(
            cases,
            &transport,
            json,
            (platform, network),
            strict,
            mutation.as_deref(),
        ),
        Command::Matrix {
            scenarios,
            out,
            add,
            platform,
        } => matrix(&scenarios, &out, &add, &platform),
        Command::Record { scenarios, out } => record(&scenarios, out),
    };
    match result {
        Ok(code) => code,
        Err(BadInput(msg)) => {
            eprintln!("closefuzz: {msg}");
            ExitCode::from(2)
        }
    }
}
