//! Checking a socket stack with closefuzz, from the stack's own crate.
//!
//! A stack is an [`Executor`]: it runs a [`Case`] (a transport, how the world starts,
//! the steps) on fresh sockets of the stack, and reports each step's result and every
//! socket's view afterwards ([`KernelRun`]). closefuzz generates cases, runs each through
//! the executor and through the reference model with the [`Profile`] the stack is meant
//! to behave as, and shrinks any disagreement to a script a person can read.
//!
//! [`HostStack`] runs cases on the host's kernel through closefuzz's own local executor:
//! a stack's author replaces its body with calls into their stack. [`Misreporting`]
//! wraps an executor and reports one answer wrongly, to show a disagreement being found
//! and shrunk. See tests/check.rs for both in a `cargo test`.

use closefuzz::exec::{Case, Executor, KernelRun};
use closefuzz::fuzz::{Campaign, Verdict, run_campaign};
use closefuzz::model::Model;
use closefuzz::model::profile::Profile;
use closefuzz::step::{Errno, Outcome};
use closefuzz::transport::Transport;
use std::io;

/// The host's kernel as a stack: every case on fresh local sockets.
#[derive(Clone, Copy, Debug, Default)]
pub struct HostStack;

impl Executor for HostStack {
    fn run(&mut self, case: &Case) -> io::Result<KernelRun> {
        closefuzz::exec::run_local(case)
    }
}

/// A stack that says ECONNRESET wherever `E` said EPIPE: a deliberate bug, for the
/// campaign to find.
#[derive(Clone, Copy, Debug, Default)]
pub struct Misreporting<E>(pub E);

impl<E: Executor> Executor for Misreporting<E> {
    fn run(&mut self, case: &Case) -> io::Result<KernelRun> {
        let mut run = self.0.run(case)?;
        for (result, _) in &mut run.steps {
            if result.outcome == Outcome::Err(Errno::EPIPE) {
                result.outcome = Outcome::Err(Errno::ECONNRESET);
            }
        }
        Ok(run)
    }
}

/// A stack that cannot be asked some calls: it answers `n/a` for any step whose call
/// `unasked` says it cannot make, and counts how many such steps it was given (a
/// campaign whose profile lists those calls in its `surface` gives it none).
#[derive(Debug)]
pub struct Unasking<E> {
    /// The stack that runs everything else.
    pub inner: E,
    /// Whether the stack cannot make this call.
    pub unasked: fn(&closefuzz::step::Op) -> bool,
    /// Steps it was given that it cannot make.
    pub given: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl<E: Executor> Executor for Unasking<E> {
    fn run(&mut self, case: &Case) -> io::Result<KernelRun> {
        let mut run = self.inner.run(case)?;
        for (step, (result, _)) in case.steps.iter().zip(&mut run.steps) {
            if let Some((_, op)) = step.as_call()
                && (self.unasked)(&op)
            {
                self.given
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                result.outcome = Outcome::NotApplicable;
            }
        }
        Ok(run)
    }
}

/// Runs `cases` generated cases over `transport` (every start the profile's surface
/// can set up, one thread, `seed`) on the stack `make` makes, against the model as
/// `profile` describes the stack; only what the surface says the stack can be asked
/// is generated.
pub fn check<E: Executor>(
    make: impl Fn() -> io::Result<E> + Sync,
    profile: Profile,
    transport: Transport,
    cases: u64,
    seed: u64,
) -> Verdict {
    let campaign = Campaign {
        cases,
        max_steps: 24,
        seed,
        threads: 1,
        transport,
        starts: profile.surface.starts,
        surface: profile.surface,
        platform: profile.platform,
        network: closefuzz::step::Network::Instant,
    };
    let model_for = move |case: &Case| {
        Model::with_start(case.transport, profile, case.start).with_bufs(case.bufs)
    };
    run_campaign(&campaign, &model_for, make, &|_| {})
}
