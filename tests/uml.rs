//! Cases on Linux 6.1, through the worker as the init of User-mode Linux
//! (`closefuzz::exec::uml`).
//!
//! Every test needs `linux.uml` (Debian: `apt-get install user-mode-linux`); without it
//! each test prints "skipped: linux.uml not available" and returns.

use closefuzz::exec::uml::{find_linux_uml, Uml, UmlConfig};
use closefuzz::exec::{run_local, Case, Executor};
use closefuzz::fuzz::{run_campaign, Campaign, Verdict};
use closefuzz::model::profile::Profile;
use closefuzz::model::Platform;
use closefuzz::run::{model_for, run_case_with};
use closefuzz::script::Scenario;
use closefuzz::step::{Op, Sock, Start, Step};
use closefuzz::transport::Transport;
use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, Instant};

const WORKER: &str = env!("CARGO_BIN_EXE_closefuzz-worker");

/// One guest at a time: each boots a kernel, and the machine has two cores.
static ONE_GUEST: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn uml() -> Option<Uml> {
    if let Err(e) = find_linux_uml() {
        eprintln!("skipped: linux.uml not available ({e})");
        return None;
    }
    Some(Uml::with_worker(vec![WORKER.into()]).unwrap_or_else(|e| panic!("{e}")))
}

fn scenario(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name);
    Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// Replays `sc` on `exec` against the linux-6.1 profile; the failing steps.
fn replay(exec: &mut dyn Executor, sc: &Scenario) -> Vec<String> {
    let case = sc.case(Transport::Tcp4);
    let run = run_case_with(exec, &model_for(&case, Platform::Linux61), &case)
        .unwrap_or_else(|e| panic!("{}: {e}", sc.name));
    let mut failures = vec![];
    for (ss, r) in sc.steps.iter().zip(&run.steps) {
        if ss.step.as_call().is_none() {
            continue;
        }
        let expect = ss.expect_on(Platform::Linux61);
        if !r.agrees() || expect.is_some_and(|e| !e.matches(&r.kernel)) {
            failures.push(format!(
                "{}:{}: {}: expected {}, kernel {}, model {}",
                sc.name,
                ss.line,
                ss.step,
                expect.map_or("-".to_string(), |e| e.to_string()),
                r.kernel,
                r.model
            ));
        }
    }
    failures
}

/// The article's case gives on 6.1 what it gives on the host, step by step, and a
/// handful of scenarios over every transport replay clean against the 6.1 profile,
/// all in one guest.
#[test]
fn scenarios_replay_on_linux_6_1_and_the_article_case_matches_the_host() {
    let _turn = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
    let Some(mut g) = uml() else { return };
    let article = scenario("tcp-motivating-case.cfz");
    let case = article.case(Transport::Tcp4);
    let guest = g.run(&case).unwrap_or_else(|e| panic!("{e}"));
    let host = run_local(&case).unwrap();
    let results = |r: &closefuzz::exec::KernelRun| -> Vec<String> {
        r.steps.iter().map(|(s, _)| s.to_string()).collect()
    };
    assert_eq!(results(&guest), results(&host));
    // The second write is EPIPE with SIGPIPE on both (the article's point).
    assert!(
        results(&guest).iter().any(|s| s == "EPIPE sigpipe"),
        "{:?}",
        results(&guest)
    );
    let mut failures = replay(&mut g, &article);
    for name in [
        "tcp-close-with-unread-data-sends-rst.cfz",
        "tcp-abort-so-linger-zero.cfz",
        "tcp-listener-close-queued.cfz",
        "tcp-fin-wait2-timeout.cfz",
        "tcp-shutdown-wr-behind-a-full-window.cfz",
        "unix-write-after-peer-close.cfz",
        "unix-close-with-unread-data.cfz",
        "seqpacket-reset-before-data.cfz",
        "seqpacket-short-read-truncates.cfz",
    ] {
        failures.extend(replay(&mut g, &scenario(name)));
    }
    // tcp6 needs the guest's IPv6 module, loaded by its init.
    let tcp6 = Case::new(
        Transport::Tcp6,
        Start::Connected,
        vec![
            Step::call(Sock::A, Op::Write(5)),
            Step::call(Sock::B, Op::Read(10)),
        ],
    );
    let run = run_case_with(&mut g, &model_for(&tcp6, Platform::Linux61), &tcp6)
        .unwrap_or_else(|e| panic!("tcp6: {e}"));
    if let Some(m) = run.first_mismatch() {
        failures.push(format!("tcp6: {m:?}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(g.starts(), 1, "one guest served every case");
}

/// A request longer than the guest's console line takes at once (4 KiB) goes in
/// acknowledged parts and is answered whole; so is a long answer.
#[test]
fn a_long_case_crosses_the_console_line_whole() {
    let _turn = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
    let Some(mut g) = uml() else { return };
    let mut steps = vec![];
    for _ in 0..128 {
        steps.push(Step::call(Sock::A, Op::Write(5)));
        steps.push(Step::call(Sock::B, Op::Read(10)));
    }
    let case = Case::new(Transport::Tcp4, Start::Connected, steps);
    assert!(serde_json::to_string(&case).unwrap().len() > 8192);
    let run = run_case_with(&mut g, &model_for(&case, Platform::Linux61), &case)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(run.steps.len(), 256);
    assert!(run.first_mismatch().is_none(), "{:?}", run.first_mismatch());
    assert_eq!(g.starts(), 1);
}

/// Short TCP campaigns agree with the 6.1 profile. Two defects made them fail before:
/// a segment reaching the peer steps late while the guest's ksoftirqd was runnable (2 of
/// 5 tcp4 campaigns of 2,500 cases; exec::uml::drain_softirqs), and answers with 16-byte
/// runs of NULs from a memcpy that faulted onto fresh heap (this seed, two threads:
/// "unreadable answer" every time, 4 of 4 runs; exec::uml's prefault_heap).
#[test]
fn short_tcp_campaigns_agree_with_the_6_1_profile() {
    let _turn = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
    if let Err(e) = find_linux_uml() {
        eprintln!("skipped: linux.uml not available ({e})");
        return;
    }
    let profile = Profile::linux_6_1();
    for transport in [Transport::Tcp4, Transport::Tcp6] {
        let campaign = Campaign {
            cases: 2000,
            max_steps: 24,
            seed: 8,
            threads: 2,
            transport,
            starts: &Start::ALL,
            surface: profile.surface,
            platform: Platform::Linux61,
            network: closefuzz::step::Network::Instant,
        };
        let model = move |case: &Case| model_for(case, Platform::Linux61);
        let exec = || Uml::with_worker(vec![WORKER.into()]);
        match run_campaign(&campaign, &model, exec, &|_| {}) {
            Verdict::Clean { cases, .. } => assert_eq!(cases, 2000),
            Verdict::Mismatch(f) => panic!("{transport}:\n{}", f.script),
            other => panic!("{transport}: {other:?}"),
        }
    }
}

/// A guest that has not answered by the boot deadline is a one-line error, is stopped,
/// and leaves no temporary folder behind.
#[test]
fn a_guest_that_never_answers_times_out_and_is_cleaned_up() {
    let _turn = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
    if let Err(e) = find_linux_uml() {
        eprintln!("skipped: linux.uml not available ({e})");
        return;
    }
    let before = uml_dirs();
    // Booting takes more than a second: 200 ms is too short.
    let mut c = UmlConfig::new(vec![OsString::from(WORKER)]).unwrap();
    c.start_timeout = Duration::from_millis(200);
    let t = Instant::now();
    let e = Uml::start(c).err().expect("no guest").to_string();
    eprintln!("{e}");
    assert!(e.starts_with("User-mode Linux did not start"), "{e}");
    assert!(e.contains("no answer within"), "{e}");
    assert!(!e.contains('\n'), "{e}");
    // The deadline, then at most 2 s for SIGTERM and the SIGKILL of the group.
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(uml_dirs(), before, "the uml_dir folder is removed");
}

/// The temporary folders of this process's guests.
fn uml_dirs() -> Vec<String> {
    let prefix = format!("closefuzz-uml-{}-", std::process::id());
    let mut v: Vec<String> = std::fs::read_dir(std::env::temp_dir())
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
