//! The classic close orderings, one named test each. Each replays its documented
//! scenario from scenarios/ and requires kernel, model and written expectation to agree
//! on every step (the scenario files say what each one teaches).

use closefuzz::model::Platform;
use closefuzz::run::run_scenario;
use closefuzz::script::Scenario;
use closefuzz::transport::Transport;

fn replay(file: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(file);
    let sc = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let run = run_scenario(&sc, Transport::Tcp4, Platform::Linux)
        .unwrap_or_else(|e| panic!("{file}: {e}"));
    for (ss, r) in sc.steps.iter().zip(&run.steps) {
        let expect = ss
            .expect_on(Platform::Linux)
            .expect("classic scenarios state every result");
        assert!(
            r.agrees() && expect.matches(&r.kernel),
            "{file}:{}: {}: expected {expect}, kernel {}, model {}\n{}",
            ss.line,
            ss.step,
            r.kernel,
            r.model,
            run.to_script(&[])
        );
    }
}

macro_rules! classic {
    ($($name:ident => $file:literal,)*) => {
        $(#[test] fn $name() { replay($file); })*
    };
}

classic! {
    motivating_case_second_write_raises_sigpipe => "tcp-motivating-case.cfz",
    close_with_unread_data_sends_rst => "tcp-close-with-unread-data-sends-rst.cfz",
    so_linger_zero_aborts_with_rst => "tcp-abort-so-linger-zero.cfz",
    half_close_data_still_flows_the_other_way => "tcp-half-close-data-still-flows.cfz",
    shutdown_rd_without_pending_data => "tcp-shutdown-rd-without-pending-data.cfz",
    shutdown_rd_with_pending_data => "tcp-shutdown-rd-with-pending-data.cfz",
    both_ends_shutdown_wr => "tcp-both-shutdown-wr.cfz",
    so_error_and_poll_after_rst => "tcp-so-error-and-poll-after-rst.cfz",
    so_error_and_poll_after_fin => "tcp-so-error-and-poll-after-fin.cfz",
    data_after_shutdown_rdwr_in_fin_wait_resets => "tcp-reset-after-shutdown-rd-in-fin-wait.cfz",
    write_after_own_shutdown_wr => "tcp-write-after-own-shutdown.cfz",
    passive_close_after_peer_fin => "tcp-close-after-peer-fin-is-graceful.cfz",
}
