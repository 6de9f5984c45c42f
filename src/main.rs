//! The `closefuzz` command line: replay, fuzz, explain, bench.

use clap::{Parser, Subcommand};
use closefuzz::fuzz::{run_campaign, Campaign, Verdict};
use closefuzz::matrix::{build, machine_identity, run_all, scenario_files, Column, Recording};
use closefuzz::model::tcp::{Mutation, TcpModel};
use closefuzz::model::{Model, Platform};
use closefuzz::report::{explain_text, replay_report, replay_text};
use closefuzz::run::{executor_for, run_case_with, Executor};
use closefuzz::script::Scenario;
use closefuzz::transport::Transport;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "closefuzz",
    version,
    about = "What happens when both ends of a connection close, shut down, write and read in every order: a model checked against real sockets"
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
        /// Where the kernel side runs: linux (the host) or gvisor (runsc).
        #[arg(long, default_value = "linux")]
        platform: Platform,
    },
    /// A fuzz campaign: generated orderings, model against kernel, the first
    /// disagreement shrunk to a minimal script and saved.
    Fuzz {
        /// Cases in all.
        #[arg(long, default_value_t = 10_000)]
        cases: u64,
        /// Longest sequence.
        #[arg(long, default_value_t = 24)]
        max_steps: usize,
        /// Seed (printed; the same seed and thread count give the same cases).
        #[arg(long)]
        seed: Option<u64>,
        /// Worker threads.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Transport.
        #[arg(long, default_value = "tcp4")]
        transport: Transport,
        /// Where to write a shrunk disagreement.
        #[arg(long, default_value = "closefuzz-failures")]
        out: PathBuf,
        /// Test-only: run against a model with one deliberately wrong TCP rule, to
        /// show a campaign catching and shrinking it.
        #[arg(long, hide = true)]
        mutation: Option<String>,
        /// Where the kernel side runs: linux (the host) or gvisor (runsc).
        #[arg(long, default_value = "linux")]
        platform: Platform,
    },
    /// Show a scenario as a ladder: each step, both ends' state, the segments on the wire.
    Explain {
        /// The scenario file.
        file: PathBuf,
        /// Transport for a file without a `transport` header.
        #[arg(long)]
        transport: Option<Transport>,
        /// Where the kernel side runs: linux (the host) or gvisor (runsc).
        #[arg(long, default_value = "linux")]
        platform: Platform,
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
        /// The output file (default: OS-RELEASE-native.json in the current folder).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Measure the full loop against bare syscalls, and 2 threads against 1.
    Bench {
        /// Cases per measurement.
        #[arg(long, default_value_t = 5000)]
        cases: usize,
        /// Transport, or `all` for each transport in turn.
        #[arg(long, default_value = "tcp4")]
        transport: String,
        /// Print one JSON object as the last line (keyed by transport with `all`).
        #[arg(long)]
        json: bool,
        /// Where the kernel side runs: linux (the host) or gvisor (runsc).
        #[arg(long, default_value = "linux")]
        platform: Platform,
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
    executor_for(platform, &worker_command())
        .map_err(|e| BadInput(format!("platform {platform}: {e}")))
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

fn replay(
    files: &[PathBuf],
    transport: Option<Transport>,
    json: bool,
    platform: Platform,
) -> Result<ExitCode, BadInput> {
    // Parse everything first, so bad input is reported before any socket is made.
    let mut loaded = vec![];
    for f in files {
        loaded.push(load(f, transport)?);
    }
    let mut exec = executor(platform)?;
    let mut reports = vec![];
    for (sc, t) in &loaded {
        let model = Model::new(*t, platform);
        let run = run_case_with(&mut exec, &model, *t, &sc.step_list())
            .map_err(|e| BadInput(format!("{}: {e}", sc.name)))?;
        reports.push(replay_report(sc, &run, platform));
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&reports).expect("serialising a report")
        );
    } else {
        for r in &reports {
            print!("{}", replay_text(r));
        }
        let passed = reports.iter().filter(|r| r.pass).count();
        println!("{passed} passed, {} failed", reports.len() - passed);
    }
    Ok(if reports.iter().all(|r| r.pass) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn fuzz(
    c: Campaign,
    out: &Path,
    mutation: Option<&str>,
    platform: Platform,
) -> Result<ExitCode, BadInput> {
    if c.max_steps == 0 || c.threads == 0 {
        return Err(BadInput(
            "--max-steps and --threads must be at least 1".into(),
        ));
    }
    let model = match mutation {
        None => Model::new(c.transport, platform),
        Some(name) => {
            let m = Mutation::from_name(name).ok_or_else(|| {
                let names: Vec<String> = Mutation::ALL.iter().map(|m| format!("{m:?}")).collect();
                BadInput(format!(
                    "unknown mutation '{name}': expected one of {}",
                    names.join(", ")
                ))
            })?;
            if !c.transport.is_tcp() {
                return Err(BadInput("--mutation applies to the TCP model only".into()));
            }
            Model::Tcp(TcpModel::new().with_mutation(m))
        }
    };
    println!(
        "closefuzz fuzz --cases {} --max-steps {} --seed {} --threads {} --transport {}",
        c.cases, c.max_steps, c.seed, c.threads, c.transport
    );
    let bar = ProgressBar::new(c.cases);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} cases  {per_sec}  eta {eta}")
            .expect("progress template"),
    );
    let start = std::time::Instant::now();
    // Fail early, with one line, if the platform cannot run at all (runsc missing).
    drop(executor(platform)?);
    let worker = worker_command();
    let verdict = run_campaign(&c, &model, || executor_for(platform, &worker), &|n| {
        if n % 64 == 0 {
            bar.set_position(n);
        }
    });
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    match verdict {
        Verdict::Clean { cases, unstable } => {
            if unstable > 0 {
                println!("{unstable} cases disagreed once and agreed when run again (a delivery outlasted the settle bound)");
            }
            println!(
                "{cases} cases, 0 mismatches, {secs:.1} s ({:.0} cases/s)",
                cases as f64 / secs
            );
            Ok(ExitCode::SUCCESS)
        }
        Verdict::Mismatch(f) => {
            let header = [
                format!(
                    "found by: closefuzz fuzz --seed {} --threads {} --transport {} --max-steps {}",
                    c.seed, c.threads, c.transport, c.max_steps
                ),
                format!(
                    "shrunk to {} steps (generator thread {})",
                    f.steps.len(),
                    f.thread
                ),
            ];
            let mut text = String::new();
            for h in &header {
                text.push_str(&format!("# {h}\n"));
            }
            text.push_str(&f.script);
            std::fs::create_dir_all(out)
                .map_err(|e| BadInput(format!("{}: cannot create: {e}", out.display())))?;
            let path = out.join(format!("{}-seed{}-t{}.cfz", c.transport, c.seed, f.thread));
            std::fs::write(&path, &text)
                .map_err(|e| BadInput(format!("{}: cannot write: {e}", path.display())))?;
            println!(
                "MISMATCH: model and kernel disagree.\n\n{text}\nwritten to {}",
                path.display()
            );
            Ok(ExitCode::from(1))
        }
        Verdict::Error(e) => Err(BadInput(e)),
    }
}

fn explain(
    file: &Path,
    transport: Option<Transport>,
    platform: Platform,
) -> Result<ExitCode, BadInput> {
    let (sc, t) = load(file, transport)?;
    let mut exec = executor(platform)?;
    let run = run_case_with(&mut exec, &Model::new(t, platform), t, &sc.step_list())
        .map_err(|e| BadInput(format!("{}: {e}", sc.name)))?;
    print!("{}", explain_text(&sc, &run, platform));
    Ok(if run.first_mismatch().is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn bench(
    cases: usize,
    transport: &str,
    json: bool,
    platform: Platform,
) -> Result<ExitCode, BadInput> {
    if cases < 2 {
        return Err(BadInput("--cases must be at least 2".into()));
    }
    let transports: Vec<Transport> = if transport == "all" {
        Transport::ALL.to_vec()
    } else {
        vec![transport
            .parse::<Transport>()
            .map_err(|e| BadInput(format!("--transport: {e}, or all")))?]
    };
    let mut reports = vec![];
    for t in transports {
        let model = Model::new(t, platform);
        let worker = worker_command();
        let r = closefuzz::bench::bench(t, &model, cases, || executor_for(platform, &worker))
            .map_err(|e| BadInput(format!("benchmark over {t} failed: {e}")))?;
        println!(
            "transport {}: {} cases of {:.1} steps on average",
            r.transport, r.cases, r.mean_steps
        );
        println!("  full loop, 1 thread   {:>10.0} cases/s", r.cases_per_s);
        println!(
            "  bare syscalls         {:>10.0} cases/s",
            r.raw_cases_per_s
        );
        println!(
            "  ratio full/bare       {:>10.2}   (target >= 0.5)",
            r.ratio
        );
        println!(
            "  full loop, 2 threads  {:>10.0} cases/s",
            r.threads2_cases_per_s
        );
        println!(
            "  scaling 2/1 threads   {:>10.2}x  (target >= 1.7x)",
            r.scaling
        );
        println!(
            "  model alone           {:>10.0} cases/s",
            r.model_cases_per_s
        );
        println!(
            "  settle                {:>10.0} µs per case",
            r.settle_us_per_case
        );
        println!("  mismatches            {:>10}", r.mismatches);
        println!("  model size            {:>10} bytes", r.model_bytes);
        println!("  peak memory (RSS)     {:>10} KiB", r.max_rss_kib);
        reports.push(r);
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
        println!("{}", line.expect("serialising the report"));
    }
    Ok(ExitCode::SUCCESS)
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

fn read_recording(path: &Path) -> Result<Recording, BadInput> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| BadInput(format!("{}: cannot read recording: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        BadInput(format!(
            "{}:{}: not a closefuzz recording ({e}); expected the JSON `closefuzz record` writes",
            path.display(),
            e.line()
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
    for platform in Platform::ALL {
        if !only.is_empty() && !only.contains(&platform) {
            continue;
        }
        let mut exec = match executor_for(platform, &worker_command()) {
            Ok(e) => e,
            // The host always runs; a sandbox may be missing: say so and go on.
            Err(e) if platform != Platform::Linux => {
                eprintln!("closefuzz: no {platform} columns: {e}");
                continue;
            }
            Err(e) => return Err(BadInput(format!("platform {platform}: {e}"))),
        };
        for t in Transport::ALL {
            columns.push(Column {
                name: format!("{platform}/{t}"),
                platform: platform.name().into(),
                transport: t,
                source: "live".into(),
            });
            results.push(
                run_all(&mut exec, &scenarios, t, Some(&Model::new(t, platform))).map_err(|e| {
                    BadInput(format!("running scenarios over {t} on {platform}: {e}"))
                })?,
            );
        }
    }
    let mut m = build(&files, &scenarios, columns, results);
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
    println!(
        "{} scenarios x {} columns written to {}/behavior.md and {}/behavior.json",
        m.scenarios.len(),
        m.columns.len(),
        out.display(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn record(scenario_dir: &Path, out: Option<PathBuf>) -> Result<ExitCode, BadInput> {
    let (files, scenarios) = load_scenarios(scenario_dir)?;
    let (os, release, unavailable) = machine_identity();
    let mut rec = Recording {
        os: os.clone(),
        release: release.clone(),
        runtime: "native".into(),
        unavailable,
        results: Default::default(),
    };
    for t in Transport::ALL {
        match run_all(&mut closefuzz::run::Local, &scenarios, t, None) {
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
    let out = out.unwrap_or_else(|| PathBuf::from(format!("{os}-{release}-native.json")));
    let text = serde_json::to_string_pretty(&rec).expect("serialising the recording") + "\n";
    std::fs::write(&out, text)
        .map_err(|e| BadInput(format!("{}: cannot write: {e}", out.display())))?;
    println!(
        "recorded {} scenarios on {os} {release} to {}",
        files.len(),
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
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Replay {
            files,
            transport,
            json,
            platform,
        } => replay(&files, transport, json, platform),
        Command::Fuzz {
            cases,
            max_steps,
            seed,
            threads,
            transport,
            out,
            mutation,
            platform,
        } => {
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
        } => explain(&file, transport, platform),
        Command::Worker => Ok(ExitCode::from(closefuzz::exec::worker::main() as u8)),
        Command::Bench {
            cases,
            transport,
            json,
            platform,
        } => bench(cases, &transport, json, platform),
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
