//! A stack's author's `cargo test`: the stack agrees with its profile on generated
//! cases, and a stack with a bug is caught with a short script.

use closefuzz::fuzz::Verdict;
use closefuzz::model::profile::Profile;
use closefuzz::transport::Transport;
use stack_check::{HostStack, Misreporting, check};

#[test]
fn the_host_kernel_agrees_with_the_linux_profile() {
    for transport in [Transport::Tcp4, Transport::Unix] {
        match check(|| Ok(HostStack), Profile::linux(), transport, 2000, 7) {
            Verdict::Clean { cases, .. } => assert_eq!(cases, 2000),
            other => panic!("{transport}: {other:?}"),
        }
    }
}

#[test]
fn a_stack_that_misreports_epipe_is_caught_and_shrunk() {
    match check(
        || Ok(Misreporting(HostStack)),
        Profile::linux(),
        Transport::Tcp4,
        20_000,
        7,
    ) {
        Verdict::Mismatch(finding) => {
            assert!(finding.script.contains("ECONNRESET"), "{}", finding.script);
            assert!(finding.case.steps.len() <= 6, "{}", finding.script);
        }
        other => panic!("the bug went unseen: {other:?}"),
    }
}
