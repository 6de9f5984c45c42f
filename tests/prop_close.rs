//! Model versus kernel on generated orderings.

use closefuzz::exec::Case;
use closefuzz::generate;
use closefuzz::model::Platform;
use closefuzz::run::run_case;
use closefuzz::step::Start;
use closefuzz::transport::Transport;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};

/// The number of cases for a test: `PROPTEST_CASES` when set, else the test's own
/// default. Each `proptest!` block below carries its own default, so transports can
/// differ while one environment variable still sets them all.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn config(default_cases: u32) -> Config {
    Config {
        cases: cases(default_cases),
        // One committed file at the crate root: proptest's default would put it beside
        // the test source, since tests/ has no lib.rs to anchor its parallel tree.
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/prop_close.txt",
        ))),
        max_shrink_iters: 10_000,
        ..Config::default()
    }
}

fn check(case: &Case) -> Result<(), TestCaseError> {
    let run = run_case(case, Platform::Linux).map_err(|e| TestCaseError::fail(e.to_string()))?;
    if let Some(i) = run.first_mismatch() {
        return Err(TestCaseError::fail(format!(
            "model and kernel disagree at step {}:\n{}",
            i + 1,
            run.to_script(&["minimal disagreement found by tests/prop_close.rs".into()])
        )));
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(2000))]
    #[test]
    fn tcp4_model_matches_kernel(case in generate::cases(Transport::Tcp4, &Start::ALL, 24)) {
        check(&case)?;
    }
}

proptest! {
    #![proptest_config(config(1000))]
    #[test]
    fn tcp6_model_matches_kernel(case in generate::cases(Transport::Tcp6, &Start::ALL, 24)) {
        check(&case)?;
    }
}

proptest! {
    #![proptest_config(config(1000))]
    #[test]
    fn unix_model_matches_kernel(case in generate::cases(Transport::Unix, &Start::ALL, 24)) {
        check(&case)?;
    }
}

proptest! {
    #![proptest_config(config(1000))]
    #[test]
    fn seqpacket_model_matches_kernel(case in generate::cases(Transport::Seqpacket, &Start::ALL, 24)) {
        check(&case)?;
    }
}
