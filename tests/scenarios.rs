//! Every scenario in scenarios/ replays with kernel, model and written expectation in
//! agreement, on every step, on every platform available here (each step held to the
//! expectation its line states for that platform; a port's step whose original test
//! does not check it, to the model alone).

use closefuzz::exec::gvisor::find_runsc;
use closefuzz::exec::{executor_for, Executor};
use closefuzz::model::Platform;
use closefuzz::run::{model_for, run_case_with, stack_of};
use closefuzz::script::Scenario;
use closefuzz::transport::Transport;
use std::path::{Path, PathBuf};

const WORKER: &str = env!("CARGO_BIN_EXE_closefuzz-worker");

fn scenario_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let files = closefuzz::matrix::scenario_files(&dir).expect("scenarios/ exists");
    assert!(
        files.len() >= 12,
        "expected the documented scenarios, found {}",
        files.len()
    );
    files
}

/// The executor for `platform`, or `None` (after printing why) when this machine
/// cannot run it: gVisor needs runsc (as root, or as anyone through `runsc --rootless`,
/// see `closefuzz::exec::gvisor`).
fn executor(platform: Platform) -> Option<Box<dyn Executor + Send>> {
    if platform == Platform::Lwip {
        // Built in only where liblwip-dev was found (build.rs).
        return executor_for(stack_of(platform), &[])
            .map_err(|e| eprintln!("skipped {platform}: {e}"))
            .ok();
    }
    if platform == Platform::Gvisor {
        if let Err(e) = find_runsc() {
            eprintln!("skipped {platform}: runsc not available ({e})");
            return None;
        }
    }
    if platform == Platform::Linux61 {
        if let Err(e) = closefuzz::exec::uml::find_linux_uml() {
            eprintln!("skipped {platform}: linux.uml not available ({e})");
            return None;
        }
    }
    Some(
        executor_for(stack_of(platform), &[WORKER.into()])
            .unwrap_or_else(|e| panic!("{platform}: {e}")),
    )
}

/// Replays every scenario on `platform`; returns one line per failing step.
fn replay_all(platform: Platform, exec: &mut dyn Executor) -> Vec<String> {
    let mut failures = vec![];
    for f in &scenario_files() {
        let sc = Scenario::load(f).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !sc.description.is_empty(),
            "{}: needs a comment saying what it teaches",
            f.display()
        );
        // A port (scenarios/ported/) asserts only what its original test asserts, so a
        // call the original makes without checking it stays without an expectation;
        // the model must still agree with the kernel on it, like on every step.
        let ported = f
            .parent()
            .and_then(|d| d.file_name())
            .is_some_and(|d| d == "ported");
        assert!(
            ported
                || sc
                    .steps
                    .iter()
                    .all(|s| s.expect.is_some() || s.step.as_call().is_none()),
            "{}: every step needs an expectation",
            f.display()
        );
        let surface = closefuzz::model::profile::Profile::of(platform).surface;
        if sc
            .unrunnable_on(&surface, sc.transport.unwrap_or(Transport::Tcp4))
            .is_some()
        {
            continue; // n/a there (smoltcp: no Unix sockets, no listener, ...)
        }
        let case = sc.case(Transport::Tcp4);
        if !closefuzz::model::profile::Profile::of(platform)
            .surface
            .runs(case.transport)
        {
            continue; // n/a there: a transport the stack does not have
        }
        let replay = |exec: &mut dyn Executor| {
            run_case_with(exec, &model_for(&case, platform), &case)
                .unwrap_or_else(|e| panic!("{} on {platform}: {e}", f.display()))
        };
        let mut run = replay(exec);
        // User-mode Linux 6.1 now and then delivers a TCP segment steps after the call
        // that sent it (see README, Platforms): a scenario that fails there is run once
        // more, and one that then passes is said as unstable, never counted silently.
        let passes = |run: &closefuzz::run::CaseRun| {
            sc.steps.iter().zip(&run.steps).all(|(ss, r)| {
                ss.step.as_call().is_none()
                    || (r.agrees() && ss.expect_on(platform).is_none_or(|e| e.matches(&r.kernel)))
            })
        };
        if platform == Platform::Linux61 && case.transport.is_tcp() && !passes(&run) {
            let again = replay(exec);
            if passes(&again) {
                eprintln!(
                    "unstable on {platform}: {} failed once, passed when run again",
                    f.display()
                );
            }
            run = again;
        }
        for (ss, r) in sc.steps.iter().zip(&run.steps) {
            if ss.step.as_call().is_none() {
                continue; // a sleep
            }
            let expect = ss.expect_on(platform);
            if !r.agrees() || expect.is_some_and(|e| !e.matches(&r.kernel)) {
                failures.push(format!(
                    "{}:{}: on {platform}: {}: expected {}, kernel {}, model {}",
                    f.display(),
                    ss.line,
                    ss.step,
                    expect.map_or("nothing (unchecked)".to_string(), |e| e.to_string()),
                    r.kernel,
                    r.model
                ));
            }
        }
    }
    failures
}

#[test]
fn every_scenario_replays_clean_on_every_platform() {
    let mut failures = vec![];
    for platform in Platform::ALL {
        let Some(mut exec) = executor(platform) else {
            continue;
        };
        let found = replay_all(platform, &mut exec);
        if platform == Platform::Lwip {
            failures.extend(lwip_beyond_known(&found));
        } else {
            failures.extend(found);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// lwIP's profile does not yet cover every scenario: tests/lwip-known-mismatches.txt
/// lists the scenarios that still fail on it, and this ratchet holds the list exact,
/// so a new failure, or a known one that now passes (take it off the list), fails.
fn lwip_beyond_known(found: &[String]) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let known = std::fs::read_to_string(dir.join("tests/lwip-known-mismatches.txt"))
        .expect("tests/lwip-known-mismatches.txt");
    let known: std::collections::BTreeSet<&str> = known
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let scenarios = dir.join("scenarios");
    let failing: std::collections::BTreeSet<String> = found
        .iter()
        .filter_map(|f| f.split(':').next())
        .map(|p| {
            Path::new(p)
                .strip_prefix(&scenarios)
                .unwrap_or(Path::new(p))
                .display()
                .to_string()
        })
        .collect();
    let mut out: Vec<String> = found
        .iter()
        .filter(|f| {
            let p = f.split(':').next().unwrap_or("");
            let rel = Path::new(p)
                .strip_prefix(&scenarios)
                .unwrap_or(Path::new(p));
            !known.contains(rel.display().to_string().as_str())
        })
        .cloned()
        .collect();
    for k in known {
        if !failing.contains(k) {
            out.push(format!(
                "{k}: passes on lwip now: take it off tests/lwip-known-mismatches.txt"
            ));
        }
    }
    out
}
