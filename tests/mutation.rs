//! The property test can fail: each deliberately wrong TCP rule is caught against the
//! real kernel and shrunk to a short script that shows the wrong rule at work.

use closefuzz::gen;
use closefuzz::model::tcp::{Mutation, TcpModel};
use closefuzz::model::Model;
use closefuzz::run::{run_case_with, Local};
use closefuzz::step::Step;
use closefuzz::transport::Transport;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

fn shrunk_counterexample(m: Mutation) -> (Vec<Step>, String) {
    let model = Model::Tcp(TcpModel::new().with_mutation(m));
    let config = Config {
        cases: 20_000,
        failure_persistence: None,
        max_shrink_iters: 10_000,
        ..Config::default()
    };
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let result = runner.run(&gen::steps(24), |steps| {
        let run = run_case_with(&mut Local, &model, Transport::Tcp4, &steps)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        match run.first_mismatch() {
            Some(_) => Err(TestCaseError::fail(run.to_script(&[]))),
            None => Ok(()),
        }
    });
    match result {
        Err(TestError::Fail(why, steps)) => (steps, why.to_string()),
        other => panic!("{m:?} was not caught: {other:?}"),
    }
}

#[test]
fn every_wrong_rule_is_caught_and_shrunk() {
    for m in Mutation::ALL {
        let (steps, script) = shrunk_counterexample(m);
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
