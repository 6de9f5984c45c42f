//! `--platform smoltcp`: the smoltcp crate in process, checked against its profile.

use closefuzz::exec::smoltcp::Smoltcp;
use closefuzz::exec::{Case, Executor};
use closefuzz::model::{profile::Profile, Platform};
use closefuzz::run::{model_for, run_case_with};
use closefuzz::script::Scenario;
use closefuzz::step::{Errno, Outcome, Start};
use closefuzz::transport::Transport;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, TestRunner};
use std::path::Path;

fn replay(name: &str, t: Transport) -> closefuzz::run::CaseRun {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name);
    let sc = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let case = sc.case(t);
    let case = closefuzz::exec::Case {
        transport: t,
        ..case
    };
    let run = run_case_with(
        &mut Smoltcp::new(),
        &model_for(&case, Platform::Smoltcp),
        &case,
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    for (ss, r) in sc.steps.iter().zip(&run.steps) {
        assert!(
            r.agrees(),
            "{name} line {}: model {} kernel {}",
            ss.line,
            r.model,
            r.kernel
        );
        if let Some(e) = ss.expect_on(Platform::Smoltcp) {
            assert!(
                e.matches(&r.kernel),
                "{name} line {}: {}",
                ss.line,
                r.kernel
            );
        }
    }
    run
}

#[test]
fn the_article_case_on_smoltcp_both_writes_succeed_and_the_read_is_eof() {
    for t in [Transport::Tcp4, Transport::Tcp6] {
        let run = replay("tcp-motivating-case.cfz", t);
        let k: Vec<_> = run.steps.iter().map(|s| s.kernel.outcome.clone()).collect();
        // b's close is a half close: b keeps taking data, so no RST, no EPIPE.
        assert_eq!(k[4], Outcome::Wrote(5));
        assert_eq!(k[6], Outcome::Wrote(5));
        assert_eq!(k[7], Outcome::Eof);
        assert!(run.steps.iter().all(|s| !s.kernel.sigpipe));
    }
}

#[test]
fn evidence_scenarios_replay_on_both_transports() {
    for name in [
        "tcp-smoltcp-close-is-half-close.cfz",
        "tcp-smoltcp-abort-leaves-no-error.cfz",
        "tcp-smoltcp-fixed-buffers.cfz",
        "tcp-half-close-data-still-flows.cfz",
        "tcp-both-shutdown-wr.cfz",
    ] {
        for t in [Transport::Tcp4, Transport::Tcp6] {
            replay(name, t);
        }
    }
    let run = replay("tcp-smoltcp-abort-leaves-no-error.cfz", Transport::Tcp4);
    assert_eq!(
        run.steps[4].kernel.outcome,
        Outcome::Err(Errno::ENOTCONN),
        "a read after the peer's RST is InvalidState"
    );
}

#[test]
fn what_smoltcp_cannot_run_is_refused_not_faked() {
    let mut exec = Smoltcp::new();
    let unix = closefuzz::exec::Case::new(Transport::Unix, Start::Connected, vec![]);
    assert!(exec.run(&unix).is_err());
    let listening = closefuzz::exec::Case::new(Transport::Tcp4, Start::Listening, vec![]);
    assert!(exec.run(&listening).is_err());
}

#[test]
fn a_short_campaign_is_clean() {
    let surface = Profile::smoltcp().surface;
    let mut exec = Smoltcp::new();
    for t in [Transport::Tcp4, Transport::Tcp6] {
        let strategy = closefuzz::generate::cases_on(t, &[Start::Connected], 24, surface);
        let mut runner = TestRunner::new(Config::default());
        for _ in 0..2000 {
            let case = strategy.new_tree(&mut runner).unwrap().current();
            let run = run_case_with(&mut exec, &model_for(&case, Platform::Smoltcp), &case)
                .expect("runs");
            assert!(
                run.first_mismatch().is_none(),
                "{}",
                run.to_script(&["smoltcp campaign".into()])
            );
        }
    }
}

#[test]
fn held_segments_are_compared_with_their_numbers() {
    use closefuzz::step::{Dir, SegName, WireSeg};
    let run = replay("wire/fast-retransmit.cfz", Transport::Tcp4);
    // Line 24 delivers the third duplicate ACK: b resends all four bytes from 0.
    let third = &run.steps[13];
    let resent = WireSeg {
        dir: Dir::PAIR[1],
        name: SegName::Data(4),
        seq: 0,
        ack: Some(0),
    };
    let segs = third.segs.as_ref().expect("held: segments compared");
    assert_eq!(segs.kernel, vec![resent]);
    assert_eq!(segs.model, vec![resent]);
    // A segment predicted with another number is a mismatch, shown in the script.
    let mut wrong = run.clone();
    wrong.steps[13].segs.as_mut().unwrap().model[0].seq = 1;
    assert_eq!(wrong.first_mismatch(), Some(13));
    let script = wrong.to_script(&[]);
    assert!(
        script.contains("sent: kernel b>a DATA(4) seq 0 ack 0; model b>a DATA(4) seq 1 ack 0"),
        "{script}"
    );
    // One the stack sent and the model did not predict, too.
    let mut missing = run.clone();
    missing.steps[13].segs.as_mut().unwrap().model.clear();
    assert_eq!(missing.first_mismatch(), Some(13));
    // Under network instant nothing is compared segment by segment.
    let instant = replay("tcp-motivating-case.cfz", Transport::Tcp4);
    assert!(instant.steps.iter().all(|s| s.segs.is_none()));
}

#[test]
fn a_short_held_campaign_is_clean_segment_by_segment() {
    use closefuzz::step::Network;
    let surface = Profile::smoltcp().surface;
    let mut exec = Smoltcp::new();
    let mut compared = 0;
    for t in [Transport::Tcp4, Transport::Tcp6] {
        let strategy = closefuzz::generate::cases_net(
            t,
            &[Start::Connected],
            24,
            surface,
            Platform::Smoltcp,
            Network::Held,
        );
        let mut runner = TestRunner::deterministic();
        for _ in 0..3000 {
            let case = strategy.new_tree(&mut runner).unwrap().current();
            let run = run_case_with(&mut exec, &model_for(&case, Platform::Smoltcp), &case)
                .expect("runs");
            compared += run
                .steps
                .iter()
                .filter_map(|s| s.segs.as_ref())
                .map(|w| w.kernel.len())
                .sum::<usize>();
            assert!(
                run.first_mismatch().is_none(),
                "{}",
                run.to_script(&["smoltcp held campaign".into()])
            );
        }
    }
    assert!(compared > 10_000, "only {compared} segments compared");
}

#[test]
fn explain_runs_its_model_under_the_cases_network() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/wire/fast-retransmit.cfz");
    let sc = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let case = sc.case(Transport::Tcp4);
    let run = run_case_with(
        &mut Smoltcp::new(),
        &model_for(&case, Platform::Smoltcp),
        &case,
    )
    .expect("runs");
    let text = closefuzz::report::explain_text(&sc, &run, Platform::Smoltcp);
    // The ladder's segments are the held model's: the resend and its reason.
    assert!(
        text.contains("third duplicate ACK: smoltcp fast retransmit"),
        "{text}"
    );
    assert!(
        text.contains("sent, kernel: b>a DATA(4) seq 0 ack 0"),
        "{text}"
    );
    assert!(!text.contains("<-- differs"), "{text}");
}

/// Shrinking keeps the case's network: a held case that disagrees is shrunk as a held
/// case (it once came back as instant, where nothing is held and nothing disagreed, so
/// every held finding was reported unshrunk).
#[test]
fn shrinking_keeps_network_held() {
    use closefuzz::model::Model;
    use closefuzz::step::{Dir, Network, Op, Sock, Step, Which};
    let case = Case::new(
        Transport::Tcp4,
        Start::Connected,
        vec![
            Step::call(Sock::A, Op::Write(5)),
            Step::call(Sock::B, Op::Inq),
            Step::Deliver {
                dir: Dir::PAIR[0],
                which: Which::Nth(1),
            },
            Step::call(Sock::B, Op::Inq),
        ],
    )
    .with_network(Network::Held);
    // A deliberately wrong model: the instant one, for which no segment waits.
    let instant = |c: &Case| Model::of(c.transport, Platform::Smoltcp);
    let never = std::sync::atomic::AtomicBool::new(false);
    let (shrunk, run, minimal) =
        closefuzz::fuzz::minimize(&mut Smoltcp::new(), &instant, case, &never);
    assert_eq!(shrunk.network, Network::Held);
    assert!(run.is_some(), "the held case still disagrees");
    assert!(minimal);
    assert!(shrunk.steps.len() < 4, "{:?}", shrunk.steps);
}
