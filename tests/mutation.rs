//! The property test can fail: each deliberately wrong TCP rule is caught against the
//! real kernel and shrunk to a short script that shows the wrong rule at work.

use closefuzz::exec::{Case, Local};
use closefuzz::generate;
use closefuzz::model::tcp::{Mutation, TcpModel};
use closefuzz::model::{Model, Platform};
use closefuzz::run::run_case_with;
use closefuzz::step::Start;
use closefuzz::transport::Transport;

/// The Linux model of `case`'s world with one wrong TCP rule.
fn mutated(case: &Case, m: Mutation) -> Model {
    closefuzz::run::model_for(case, Platform::Linux).with_tcp(TcpModel::new().with_mutation(m))
}
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

fn shrunk_counterexample(m: Mutation) -> (Case, String) {
    let config = Config {
        cases: 20_000,
        failure_persistence: None,
        max_shrink_iters: 10_000,
        ..Config::default()
    };
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let result = runner.run(&generate::cases(Transport::Tcp4, &Start::ALL, 24), |case| {
        let run = run_case_with(&mut Local, &mutated(&case, m), &case)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        match run.first_mismatch() {
            Some(_) => Err(TestCaseError::fail(run.to_script(&[]))),
            None => Ok(()),
        }
    });
    match result {
        Err(TestError::Fail(why, case)) => (case, why.to_string()),
        other => panic!("{m:?} was not caught: {other:?}"),
    }
}

#[test]
fn every_wrong_rule_is_caught_and_shrunk() {
    for m in Mutation::ALL {
        let (case, script) = shrunk_counterexample(m);
        let steps = &case.steps;
        eprintln!("{m:?}: shrunk to {} steps\n{script}", steps.len());
        // Each wrong rule needs at most: data, a close, a provoking write, the call
        // that shows it, and one more. Anything longer means shrinking did not work.
        assert!(
            steps.len() <= 5,
            "{m:?}: not shrunk: {} steps\n{script}",
            steps.len()
        );
        assert!(
            script.contains("# model:") || script.contains("# after:"),
            "{script}"
        );
    }
}

/// A campaign's finding is 1-minimal: removing any one of its steps leaves a case on
/// which model and kernel agree. proptest's shrink alone left `a: shutdown wr` and
/// three identical `a: write 0` here, where one write shows the missing SIGPIPE.
#[test]
fn a_campaigns_finding_has_no_removable_step() {
    use closefuzz::fuzz::{run_campaign, Campaign, Verdict};
    let model_of = |case: &Case| mutated(case, Mutation::NoSigpipe);
    let c = Campaign {
        cases: 10_000,
        max_steps: 24,
        seed: 42,
        threads: 1,
        transport: Transport::Tcp4,
        starts: &Start::ALL,
        surface: closefuzz::step::Surface::ALL,
        platform: closefuzz::model::Platform::Linux,
        network: closefuzz::step::Network::Instant,
    };
    let f = match run_campaign(&c, &model_of, || Ok(Local), &|_| ()) {
        Verdict::Mismatch(f) => f,
        other => panic!("NoSigpipe was not caught: {other:?}"),
    };
    assert!(!f.case.steps.is_empty());
    for i in 0..f.case.steps.len() {
        let mut fewer = f.case.clone();
        fewer.steps.remove(i);
        let run = run_case_with(&mut Local, &model_of(&fewer), &fewer).unwrap();
        assert!(
            run.first_mismatch().is_none(),
            "step {} can go and the case still disagrees:\n{}",
            i + 1,
            f.script
        );
    }
}
