//! A Unix pair from socketpair(2) behaves like one from listen/connect/accept: the same
//! generated sequences give the same results and observations on both.

use closefuzz::exec::Pair;
use closefuzz::gen;
use closefuzz::step::{Observation, Step, StepResult};
use closefuzz::transport::Transport;
use proptest::prelude::*;

fn trace(mut pair: Pair, steps: &[Step]) -> Vec<(StepResult, Observation)> {
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
    fn socketpair_matches_accepted_pair(steps in gen::steps(24), seqpacket in any::<bool>()) {
        let t = if seqpacket { Transport::Seqpacket } else { Transport::Unix };
        let accepted = trace(Pair::connect(t).unwrap(), &steps);
        let paired = trace(Pair::socketpair(t).unwrap(), &steps);
        prop_assert_eq!(accepted, paired);
    }
}
