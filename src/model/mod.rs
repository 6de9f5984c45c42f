//! The reference model: what each step should return, and what both ends should
//! look like afterwards, with no I/O, no clock and no randomness.
//!
//! Each transport has its own small model ([`tcp`], [`unix`]) over the shared
//! vocabulary of [`crate::step`]. A model keeps explicit per-end state and an explicit
//! queue of segments in flight; [`Model::step`] runs one call and then lets the network
//! deliver everything in flight, because on Linux loopback and Unix sockets delivery
//! completes inside the sending syscall. The models keep the delivery step separate
//! (`deliver_one`) so that a later mode can let the test decide when each segment
//! arrives (crossing FINs, an RST in flight).

pub mod alternatives;
pub mod common;
pub mod interleave;
pub mod memory;
pub mod profile;
pub mod tcp;
pub mod unix;
pub mod world;

use crate::step::{EndView, Observation, Outcome, Sock, StepResult};
use crate::transport::Transport;
use serde::Serialize;
use std::fmt;

/// What kind of thing crossed the wire, as the model sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum SegmentKind {
    /// Payload bytes (a TCP segment, or a Unix-socket skb/record).
    Data(usize),
    /// TCP FIN.
    Fin,
    /// TCP RST.
    Rst,
    /// A pure TCP ACK that changes the receiver's state.
    Ack,
    /// A Unix socket's peer went away (no packet: the kernel marks the peer directly).
    PeerGone,
    /// TCP SYN.
    Syn,
    /// TCP SYN-ACK.
    SynAck,
    /// A Unix connect: the server side is created and queued (no packet).
    Connect,
}

impl fmt::Display for SegmentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SegmentKind::Data(n) => write!(f, "DATA({n})"),
            SegmentKind::Fin => f.write_str("FIN"),
            SegmentKind::Rst => f.write_str("RST"),
            SegmentKind::Ack => f.write_str("ACK"),
            SegmentKind::PeerGone => f.write_str("PEER-GONE"),
            SegmentKind::Syn => f.write_str("SYN"),
            SegmentKind::SynAck => f.write_str("SYN-ACK"),
            SegmentKind::Connect => f.write_str("CONNECT"),
        }
    }
}

/// One segment put on the wire during a step, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WireEvent {
    /// The sending socket (an unaccepted connection's server side is `l`).
    pub from: Sock,
    /// The receiving socket.
    pub to: Sock,
    /// What was sent.
    pub kind: SegmentKind,
    /// Why it was sent, and what it did on arrival.
    pub note: &'static str,
}

/// The model's answer for one step.
#[derive(Clone, Debug)]
pub struct Prediction {
    /// What the call returns.
    pub result: StepResult,
    /// Every socket afterwards.
    pub after: Observation,
    /// Segments the step put on the wire, in order.
    pub wire: Vec<WireEvent>,
    /// Under `network held`: the same segments with their numbers, as the executor
    /// reports them, to be compared one by one; `None` under `network instant`.
    pub segs: Option<Vec<crate::step::WireSeg>>,
    /// Under `network held`, after a sleep that ended where a retransmission timer may
    /// or may not have fired: the other ways the step's segments may have gone.
    pub segs_or: Vec<Vec<crate::step::WireSeg>>,
    /// Ways to go the model dropped at this step because it keeps a bounded number of
    /// them (0 almost always): a disagreement from here on may be the bound's.
    pub ways_dropped: usize,
    /// Where the step may do what the model does not follow (a sleep while a SYN is
    /// unanswered, or while the congestion window holds data back), why; shown beside
    /// a disagreement at that step. `None` almost always.
    pub unfollowed: Option<&'static str>,
}

/// What the kernel did at a step, handed to a connection's model so that a choice the
/// model leaves open is settled the way the kernel settled it, and the model goes on
/// from there (as loom records each nondeterministic choice so a run replays exactly).
/// A choice is taken only within the range the model predicted: an answer outside it
/// is a disagreement all the same, and the model then goes on from its own choice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hint {
    /// The connection's two sides after the step, as the kernel showed them.
    pub after: [Option<EndView>; 2],
    /// The call's result.
    pub result: std::sync::Arc<StepResult>,
}

impl Hint {
    /// The hint a kernel result gives, with the sides' views filled in by the caller.
    pub fn of(result: &StepResult) -> Hint {
        Hint {
            after: [None, None],
            result: std::sync::Arc::new(result.clone()),
        }
    }

    /// The count the call returned: bytes written (0 for EAGAIN), bytes read, or an
    /// ioctl's value.
    pub fn count(&self) -> Option<usize> {
        match &self.result.outcome {
            Outcome::Wrote(n) | Outcome::Queued(n) => Some(*n),
            Outcome::Data(d) => Some(d.len()),
            Outcome::Err(e) if *e == crate::step::Errno::EAGAIN => Some(0),
            _ => None,
        }
    }
}

/// Which kernel's behaviour the model predicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize)]
pub enum Platform {
    /// The host's Linux kernel.
    #[default]
    Linux,
    /// gVisor's user-space netstack, run with `runsc --network=none do`.
    Gvisor,
    /// The smoltcp crate's TCP, in this process on a clock of its own.
    Smoltcp,
    /// lwIP 2.1.3 (Debian's liblwip), in-process.
    Lwip,
    /// Linux 6.1 (Debian's User-mode Linux build, `linux.uml`).
    Linux61,
}

impl Platform {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Platform::Linux => "linux",
            Platform::Gvisor => "gvisor",
            Platform::Smoltcp => "smoltcp",
            Platform::Lwip => "lwip",
            Platform::Linux61 => "linux-6.1",
        }
    }

    /// Every platform.
    pub const ALL: [Platform; 5] = [
        Platform::Linux,
        Platform::Gvisor,
        Platform::Linux61,
        Platform::Smoltcp,
        Platform::Lwip,
    ];

    /// Looks a platform up by name.
    pub fn from_name(s: &str) -> Option<Platform> {
        Self::ALL.into_iter().find(|p| p.name() == s)
    }
}

impl std::str::FromStr for Platform {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Platform::from_name(s).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|p| p.name()).collect();
            format!("unknown platform '{s}': expected {}", names.join(", "))
        })
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

pub use world::Model;

impl Model {
    /// A pair that starts connected over `transport`, as `platform` behaves.
    pub fn of(transport: Transport, platform: Platform) -> Model {
        Model::new(transport, profile::Profile::of(platform))
    }
}
