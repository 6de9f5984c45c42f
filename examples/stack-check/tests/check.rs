//! A stack's author's `cargo test`: the stack agrees with its profile on generated
//! cases, and a stack with a bug is caught with a short script.

use closefuzz::fuzz::Verdict;
use closefuzz::model::profile::Profile;
use closefuzz::transport::Transport;
use stack_check::{HostStack, Misreporting, Unasking, check};

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

/// A stack without TCP_INFO or SHUT_RD says so in its profile's surface: campaigns then
/// never ask it `state` or `shutdown rd`, and the rest is checked as before.
#[test]
fn a_stack_is_never_asked_what_its_surface_leaves_out() {
    use closefuzz::step::{CallKind, Op, Shut, Surface};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let profile = Profile {
        surface: Surface {
            cannot_call: &[CallKind::State],
            cannot_shut: &[Shut::Rd],
            ..Surface::ALL
        },
        ..Profile::linux()
    };
    let given = Arc::new(AtomicUsize::new(0));
    let make = || {
        Ok(Unasking {
            inner: HostStack,
            unasked: |op| matches!(op, Op::State | Op::Shutdown(Shut::Rd)),
            given: Arc::clone(&given),
        })
    };
    match check(make, profile, Transport::Tcp4, 2000, 7) {
        Verdict::Clean { cases, .. } => assert_eq!(cases, 2000),
        other => panic!("{other:?}"),
    }
    assert_eq!(given.load(Ordering::Relaxed), 0);
    // The same stack under Linux's full surface is asked both, and its n/a disagrees.
    match check(make, Profile::linux(), Transport::Tcp4, 2000, 7) {
        Verdict::Mismatch(f) => assert!(f.script.contains("n/a"), "{}", f.script),
        other => panic!("n/a went unseen: {other:?}"),
    }
}
