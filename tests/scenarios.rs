//! Every scenario in scenarios/ replays with kernel, model and written expectation in
//! agreement, on every step.

use closefuzz::model::Platform;
use closefuzz::run::run_scenario;
use closefuzz::script::Scenario;
use closefuzz::transport::Transport;
use std::path::Path;

#[test]
fn every_scenario_replays_clean() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("scenarios/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "cfz"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 12,
        "expected the documented scenarios, found {}",
        files.len()
    );
    let mut failures = vec![];
    for f in &files {
        let sc = Scenario::load(f).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !sc.description.is_empty(),
            "{}: needs a comment saying what it teaches",
            f.display()
        );
        assert!(
            sc.steps.iter().all(|s| s.expect.is_some()),
            "{}: every step needs an expectation",
            f.display()
        );
        let run = run_scenario(&sc, Transport::Tcp4, Platform::Linux)
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        for (ss, r) in sc.steps.iter().zip(&run.steps) {
            let expect = ss.expect.as_ref().expect("checked above");
            if !r.agrees() || !expect.matches(&r.kernel) {
                failures.push(format!(
                    "{}:{}: {}: expected {expect}, kernel {}, model {}",
                    f.display(),
                    ss.line,
                    ss.step,
                    r.kernel,
                    r.model
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
