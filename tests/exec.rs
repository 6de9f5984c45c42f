//! Executor properties: socketpair pairs behave like accepted Unix pairs, and each
//! executing thread has a network namespace of its own.

use closefuzz::exec::Sockets;
use closefuzz::generate;
use closefuzz::step::{Observation, Start, Step, StepResult};
use closefuzz::transport::Transport;
use proptest::prelude::*;

fn trace(mut pair: Sockets, steps: &[Step]) -> Vec<(StepResult, Observation)> {
    steps
        .iter()
        .map(|&s| {
            let r = pair.step(s);
            (r, pair.observe())
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn socketpair_matches_accepted_pair(
        case in generate::cases(Transport::Unix, &[Start::Connected], 24),
        seqpacket in any::<bool>(),
    ) {
        let t = if seqpacket { Transport::Seqpacket } else { Transport::Unix };
        // connect looks for the listener: a socketpair has none, an accepted pair's is
        // gone, and each answers as such; the rest must match.
        let steps: Vec<Step> = case
            .steps
            .into_iter()
            .filter(|s| !matches!(s, Step::Call { op: closefuzz::step::Op::Connect, .. }))
            .collect();
        let accepted = trace(Sockets::connect(t).unwrap(), &steps);
        let paired = trace(Sockets::socketpair(t).unwrap(), &steps);
        prop_assert_eq!(accepted, paired);
    }
}

/// The executor's sockets are in a network namespace of their own (for root and, through
/// user namespaces, for anyone), so the host's TIME_WAIT table never fills and other
/// programs' loopback traffic is apart.
#[test]
fn executor_threads_get_a_private_network_namespace() {
    use closefuzz::exec::netns::{isolation, Isolation};
    let _pair = Sockets::connect(Transport::Tcp4).unwrap();
    let host = std::fs::read_link("/proc/self/ns/net").unwrap();
    match isolation() {
        Isolation::Private => {
            // Where the kernel says the sockets are: this thread's namespace as root,
            // a helper's for an ordinary user (see exec::netns).
            let sockets = closefuzz::exec::netns::socket_namespace().unwrap();
            let sockets = std::path::PathBuf::from(format!("net:[{sockets}]"));
            assert_ne!(
                host, sockets,
                "the sockets should be in their own namespace"
            )
        }
        Isolation::Host => {
            eprintln!("skipped: neither network nor user namespaces are permitted here")
        }
        Isolation::Unknown => panic!("connect did not set up the namespace"),
    }
}
