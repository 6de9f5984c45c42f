//! closefuzz: what happens when sockets connect, accept, close, shut down, write and
//! read in every order — predicted by a pure model, checked against real stacks.
//!
//! The crate is split the way sans-IO protocol libraries are:
//!
//! - [`step`]: the vocabulary: named sockets, the call table, steps and results.
//! - [`model`]: the reference model. Pure and deterministic: named sockets, a listener
//!   and its queue, explicit per-socket state and segments in flight, time as an input
//!   (`sleep`), every rule with its reason (RFC section or the kernel function it was
//!   checked against), other platforms as named profile differences.
//! - [`exec`]: the stacks and the executor contract: fresh sockets per case, one call
//!   per step, non-blocking throughout, SIGPIPE caught and reported rather than fatal;
//!   the host kernel in-process, gVisor through a sandboxed worker.
//! - [`run`]: the two side by side, step by step; [`generate`] and [`fuzz`] generate and
//!   shrink cases; [`script`] is the readable scenario format; [`report`] renders
//!   replay tables and explain ladders; [`mod@bench`] measures the loop.
//!
//! # Example
//!
//! The motivating case: the server closes, the client writes twice.
//!
//! ```
//! use closefuzz::model::Platform;
//! use closefuzz::run::run_scenario;
//! use closefuzz::script::Scenario;
//! use closefuzz::transport::Transport;
//!
//! let sc = Scenario::parse("motivating", "
//!     a: write 5   => ok 5
//!     b: read 100  => data 5
//!     b: close     => ok
//!     a: write 5   => ok 5
//!     a: write 5   => EPIPE sigpipe
//!     a: read 10   => eof
//! ").unwrap();
//! // Real loopback sockets and the model, side by side.
//! let run = run_scenario(&sc, Transport::Tcp4, Platform::Linux).unwrap();
//! assert_eq!(run.first_mismatch(), None, "{}", run.to_script(&[]));
//! for (line, record) in sc.steps.iter().zip(&run.steps) {
//!     assert!(line.expect_on(Platform::Linux).unwrap().matches(&record.kernel));
//! }
//! // The second write raised SIGPIPE; the process survived because closefuzz blocks it.
//! assert!(run.steps[4].kernel.sigpipe);
//! ```

#![warn(missing_docs)]

pub mod bench;
pub mod exec;
pub mod fuzz;
pub mod generate;
pub mod matrix;
pub mod model;
pub mod pcap;
pub mod report;
pub mod run;
pub mod script;
pub mod step;
pub mod svg;
pub mod transport;
