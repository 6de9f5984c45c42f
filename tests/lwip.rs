//! lwIP 2.1.3 in-process (`--platform lwip`): the article's case, the scenarios that
//! show each of lwIP's named differences, cleanup between cases, virtual time, and a
//! campaign against lwIP's profile. Skipped (said) where lwIP is not built in.

use closefuzz::exec::{executor_for, Case, Executor};
use closefuzz::fuzz::{run_campaign, Campaign, Verdict};
use closefuzz::model::profile::Profile;
use closefuzz::model::Platform;
use closefuzz::run::{model_for, run_case_with, stack_of};
use closefuzz::script::Scenario;
use closefuzz::step::{Errno, Op, Outcome, Sock, Start, Step};
use closefuzz::transport::Transport;
use std::path::Path;
use std::time::{Duration, Instant};

fn lwip() -> Option<Box<dyn Executor + Send>> {
    match executor_for(stack_of(Platform::Lwip), &[]) {
        Ok(e) => Some(e),
        Err(e) => {
            eprintln!("skipped lwip: {e}");
            None
        }
    }
}

/// Where Debian's liblwip-dev is installed, lwIP must start, with closefuzz's clock and
/// with looped-back traffic kept off lwIP's tcpip thread (cf_init checks that the
/// binary exports both sys_now and tcpip_try_callback): no silent skip there.
#[test]
fn lwip_starts_where_it_is_installed() {
    if !Path::new("/usr/include/lwip/lwipopts.h").exists() {
        return;
    }
    if let Err(e) = executor_for(stack_of(Platform::Lwip), &[]) {
        panic!("lwIP is installed but does not start: {e}");
    }
}

/// Replays a scenario of scenarios/ on lwIP over `transport`; returns each failing
/// step as a line.
fn replay(exec: &mut dyn Executor, file: &str, transport: Transport) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(file);
    let sc = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let case = sc.case(transport);
    let case = Case { transport, ..case };
    let run = run_case_with(exec, &model_for(&case, Platform::Lwip), &case)
        .unwrap_or_else(|e| panic!("{file}: {e}"));
    let mut out = vec![];
    for (ss, r) in sc.steps.iter().zip(&run.steps) {
        let expect = ss.expect_on(Platform::Lwip);
        if !r.agrees() || expect.is_some_and(|e| !e.matches(&r.kernel)) {
            out.push(format!(
                "{file}:{} over {transport}: {}: expected {}, lwIP {}, model {}",
                ss.line,
                ss.step,
                expect.map_or("-".into(), |e| e.to_string()),
                r.kernel,
                r.model
            ));
        }
    }
    out
}

#[test]
fn the_articles_case_second_write_and_read_are_econnreset() {
    let Some(mut exec) = lwip() else { return };
    for t in [Transport::Tcp4, Transport::Tcp6] {
        let failures = replay(&mut *exec, "tcp-motivating-case.cfz", t);
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
    // The same, step by step, with what lwIP returned.
    let case = Case::new(
        Transport::Tcp4,
        Start::Connected,
        vec![
            Step::call(Sock::A, Op::Write(5)),
            Step::call(Sock::B, Op::Read(100)),
            Step::call(Sock::B, Op::Close),
            Step::call(Sock::A, Op::Write(5)),
            Step::call(Sock::A, Op::Write(5)),
            Step::call(Sock::A, Op::Read(10)),
        ],
    );
    let run = exec.run(&case).expect("lwIP runs the case");
    let outcomes: Vec<&Outcome> = run.steps.iter().map(|(r, _)| &r.outcome).collect();
    assert_eq!(outcomes[3], &Outcome::Wrote(5));
    assert_eq!(outcomes[4], &Outcome::Err(Errno::ECONNRESET));
    assert_eq!(outcomes[5], &Outcome::Err(Errno::ECONNRESET));
    assert!(
        run.steps.iter().all(|(r, _)| !r.sigpipe),
        "lwIP raises no signal"
    );
}

#[test]
fn the_scenarios_that_show_lwips_differences_replay_clean() {
    let Some(mut exec) = lwip() else { return };
    let mut failures = vec![];
    for file in [
        "tcp-abort-after-full-shutdown.cfz",
        "tcp-abort-after-held-tail-left.cfz",
        "tcp-abort-with-everything-acknowledged.cfz",
        "tcp-accept-after-client-abort.cfz",
        "tcp-both-shutdown-wr.cfz",
        "tcp-connect-refused.cfz",
        "tcp-connect-twice.cfz",
        "tcp-drained-reader-and-the-writers-held-tail.cfz",
        "tcp-fin-ack-is-delayed.cfz",
        "tcp-fin-wait2-timeout.cfz",
        "tcp-fin-waits-behind-data-a-drained-reader-never-saw.cfz",
        "tcp-listener-shutdown-rdwr-fires-events.cfz",
        "tcp-never-connected-shutdown.cfz",
        "tcp-never-connected-write-read.cfz",
        "tcp-outq-after-write.cfz",
        "tcp-peek-stops-at-one-pbuf.cfz",
        "tcp-read-of-kept-pbuf-gives-its-window-back.cfz",
        "tcp-reads-and-poll-after-reset.cfz",
        "tcp-reset-after-full-shutdown-is-not-told.cfz",
        "tcp-shutdown-rd-then-more-data.cfz",
        "tcp-shutdown-that-closes-with-linger-zero.cfz",
        "tcp-urgent-byte-stops-a-read.cfz",
        "tcp-write-after-own-shutdown-wr.cfz",
    ] {
        for t in [Transport::Tcp4, Transport::Tcp6] {
            failures.extend(replay(&mut *exec, file, t));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_case_gives_back_its_sockets_and_connections() {
    let Some(mut exec) = lwip() else { return };
    // Orphans in FIN_WAIT, TIME_WAIT on both sides, a listener with a queued
    // connection never accepted, a lingering close refused: the executor closes,
    // aborts and counts lwIP's pcbs after each case, and fails the case if any is
    // left; hundreds in a row also show that no descriptor leaks.
    let leave_behind = [
        Case::new(
            Transport::Tcp4,
            Start::Connected,
            vec![
                Step::call(Sock::A, Op::Write(3)),
                Step::call(Sock::A, Op::Close),
            ],
        ),
        Case::new(
            Transport::Tcp6,
            Start::Connected,
            vec![
                Step::call(Sock::A, Op::Shutdown(closefuzz::step::Shut::Wr)),
                Step::call(Sock::B, Op::Shutdown(closefuzz::step::Shut::Wr)),
            ],
        ),
        Case::new(
            Transport::Tcp4,
            Start::Listening,
            vec![
                Step::call(Sock::A, Op::Connect),
                Step::call(Sock::C, Op::Connect),
                Step::call(Sock::B, Op::Accept),
            ],
        ),
        Case::new(
            Transport::Tcp4,
            Start::Connected,
            vec![
                Step::call(Sock::A, Op::Write(7)),
                Step::call(Sock::A, Op::Linger(1)),
                Step::call(Sock::A, Op::Close),
            ],
        ),
    ];
    for i in 0..400 {
        let case = &leave_behind[i % leave_behind.len()];
        exec.run(case)
            .unwrap_or_else(|e| panic!("case {i} ({:?}): {e}", case.transport));
    }
}

#[test]
fn sleep_is_lwips_time_not_the_wall_clock() {
    let Some(mut exec) = lwip() else { return };
    // TIME_WAIT (2 MSL, 120 s here) outlasts the longest sleep a script allows, and
    // the sleep costs next to no real time: lwIP's clock is the executor's.
    let case = Case::new(
        Transport::Tcp4,
        Start::Connected,
        vec![
            Step::call(Sock::A, Op::Shutdown(closefuzz::step::Shut::Wr)),
            Step::call(Sock::B, Op::Close),
            Step::Sleep { ms: 70_000 },
            Step::call(Sock::A, Op::State),
        ],
    );
    let start = Instant::now();
    let run = exec.run(&case).expect("lwIP runs the case");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(
        run.steps[3].0.outcome,
        Outcome::State(closefuzz::step::TcpState::TimeWait.into())
    );
}

/// A short campaign against lwIP's profile, over both transports, with no mismatch.
#[test]
fn a_campaign_agrees_with_lwips_profile() {
    if lwip().is_none() {
        return;
    }
    let profile = Profile::lwip();
    for transport in [Transport::Tcp4, Transport::Tcp6] {
        let campaign = Campaign {
            cases: 3000,
            max_steps: 24,
            seed: 12,
            threads: 1,
            transport,
            starts: &Start::ALL,
            surface: profile.surface,
            platform: Platform::Lwip,
            network: closefuzz::step::Network::Instant,
        };
        let model = move |case: &Case| closefuzz::run::model_for(case, Platform::Lwip);
        let exec = || {
            executor_for(stack_of(Platform::Lwip), &[])
                .map_err(|e| std::io::Error::other(e.to_string()))
        };
        match run_campaign(&campaign, &model, exec, &|_| {}) {
            Verdict::Clean { cases, .. } => assert_eq!(cases, 3000),
            other => panic!("{transport}: {other:?}"),
        }
    }
}
