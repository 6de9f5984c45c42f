//! Several ways a TCP connection may have gone, kept side by side until the kernel's
//! answers tell them apart.
//!
//! Past what a receiver certainly takes at once, whether a segment leaves now or waits
//! in the sender's queue for the window depends on window arithmetic the model does
//! not track. Where such a choice has effects a later step can see (a FIN's ACK, a
//! FIN's arrival, an RST that data after `shutdown rd` draws), the connection model
//! forks ([`TcpModel::take_forks`]) and [`TcpAlternatives`] keeps every way, as a
//! nondeterministic automaton keeps a set of states:
//!
//! - the prediction of a step is the union of the alternatives' predictions (an
//!   [`Outcome::Either`], a set of TCP states, poll flags marked open where they
//!   differ);
//! - once the kernel has answered (see [`super::Hint`]), the alternatives its answer
//!   and its views do not admit are dropped; if it admits none, all are kept, and the
//!   disagreement shows as usual.
//!
//! Without the kernel's answers (a prediction alone) every alternative is kept.

use super::common::Connection;
use super::interleave::SentSeg;
use super::tcp::TcpModel;
use super::{Hint, WireEvent};
use crate::step::{Bufs, End, EndView, Errno, Op, Outcome, PollSet, Sock, StepResult, WireSeg};

/// The most alternatives kept; past it the oldest extra ones are dropped. Views prune
/// them at once, but one step can make more than 16 before they do: writes past what
/// each peer certainly takes in both directions, one of them urgent, then a read that
/// may let either side's held data go (scenarios/tcp-urgent-mark-among-many-ways.cfz,
/// a tcp6 campaign's finding on linux-6.1, also on the host).
pub const MAX_ALTERNATIVES: usize = 32;

/// A TCP connection as a set of alternatives (see the module docs). Never empty.
#[derive(Clone, Debug)]
pub struct TcpAlternatives {
    alts: Vec<TcpModel>,
    hint: Option<Hint>,
    log: Vec<WireEvent>,
    /// Under held: the segments each alternative sent in the last step (as
    /// [`Self::take_segs_all`] returned them), for [`Self::settle_segs`].
    last_segs: Vec<Vec<SentSeg>>,
    /// Ways to go dropped by the bound since [`Self::take_dropped`] last asked.
    dropped: usize,
}

impl TcpAlternatives {
    /// One connection, as `model` has it.
    pub fn new(model: TcpModel) -> TcpAlternatives {
        TcpAlternatives {
            alts: vec![model],
            hint: None,
            log: Vec::new(),
            last_segs: Vec::new(),
            dropped: 0,
        }
    }

    /// How many alternatives are kept now.
    pub fn len(&self) -> usize {
        self.alts.len()
    }

    /// Whether none is kept (never: there is always one).
    pub fn is_empty(&self) -> bool {
        self.alts.is_empty()
    }

    fn first(&self) -> &TcpModel {
        &self.alts[0]
    }

    /// The same connection under `network held` (see [`TcpModel::held`]).
    pub fn held(mut self) -> TcpAlternatives {
        self.alts = self.alts.into_iter().map(TcpModel::held).collect();
        self
    }

    /// The connection as a held non-blocking connect leaves it (see
    /// [`TcpModel::held_connecting`]).
    pub fn held_connecting(mut self, listening: bool) -> TcpAlternatives {
        self.alts = self
            .alts
            .into_iter()
            .map(|m| m.held_connecting(listening))
            .collect();
        self.log = self.alts[0].wire_log().clone();
        self
    }

    /// The listener stopped (see [`TcpModel::listener_stopped`]).
    pub fn listener_stopped(&mut self) {
        self.alts.iter_mut().for_each(TcpModel::listener_stopped);
    }

    /// Whether the child was made since the last call.
    pub fn take_child_made(&mut self) -> bool {
        self.alts
            .iter_mut()
            .map(TcpModel::take_child_made)
            .fold(false, |a, b| a | b)
    }

    /// Whether the client's connect was refused since the last call.
    pub fn take_refused(&mut self) -> bool {
        self.alts
            .iter_mut()
            .map(TcpModel::take_refused)
            .fold(false, |a, b| a | b)
    }

    /// Whether `x` is in SYN_SENT with its descriptor open.
    pub fn syn_sent(&self, x: End) -> bool {
        self.first().syn_sent(x)
    }

    /// `x` in SYN_SENT is disconnected (see [`TcpModel::disconnect_syn_sent`]).
    pub fn disconnect_syn_sent(&mut self, x: End) {
        for a in &mut self.alts {
            a.disconnect_syn_sent(x);
        }
    }

    /// The script names of the two ends now.
    pub fn names(&self) -> [crate::step::Sock; 2] {
        self.first().names()
    }

    /// A network step on the segments from `x` (`deliver`, `drop`, `held`), in every
    /// alternative; the first's segments stand for all in the wire log. A held
    /// connection has more than one after a sleep that ended where a retransmission
    /// timer may or may not have fired, or a delivery that header prediction may or may
    /// not have taken (see the held rules): the results are joined.
    pub fn wire_step(&mut self, x: End, step: crate::step::Step) -> Outcome {
        use crate::step::Step;
        let mut results = vec![];
        for a in &mut self.alts {
            a.wire_log().clear();
            let r = match step {
                Step::Deliver { which, .. } => a.deliver_held(x, which),
                Step::Drop { .. } => a.drop_held(x),
                _ => Outcome::Segments(a.held_names(x)),
            };
            results.push(StepResult::plain(r));
        }
        self.log = self.alts[0].wire_log().clone();
        self.gather();
        merge_results(results).outcome
    }

    /// Keeps the alternatives whose result for the last wire step admits the kernel's
    /// (`got`), if any does.
    pub fn settle_wire(&mut self, x: End, step: crate::step::Step, got: &Outcome) {
        use crate::step::Step;
        if self.alts.len() < 2 {
            return;
        }
        if let Step::Held { .. } = step {
            let admits = |m: &TcpModel| {
                StepResult::plain(Outcome::Segments(m.held_names(x)))
                    .admits(&StepResult::plain(got.clone()))
            };
            self.retain(admits);
        }
    }

    /// Why a sleep may do what the model does not follow, in any alternative (see
    /// [`TcpModel::held_sleep_unfollowed`]).
    pub fn sleep_unfollowed(&self) -> Option<&'static str> {
        self.alts.iter().find_map(TcpModel::held_sleep_unfollowed)
    }

    /// Whether a sleep of `ms` ends outside every timer's uncertain window, in every
    /// alternative (see [`TcpModel::sleep_certain`]).
    pub fn sleep_certain(&self, ms: u64) -> bool {
        self.alts.iter().all(|a| a.sleep_certain(ms))
    }

    /// Every alternative's segments since the last call, one list per alternative
    /// (the first alternative's first).
    pub fn take_segs_all(&mut self) -> Vec<Vec<SentSeg>> {
        let all: Vec<_> = self.alts.iter_mut().map(TcpModel::take_segs).collect();
        self.last_segs = all.clone();
        all
    }

    /// Keeps the alternatives whose last segments (see [`Self::take_segs_all`]) are
    /// the ones the stack sent on this connection (`kernel`), if any are. Each end's
    /// segments are compared in order; the two ends' interleave by when their timers
    /// fired (see [`super::interleave`]).
    pub fn settle_segs(&mut self, kernel: &[WireSeg]) {
        if self.alts.len() < 2 || self.last_segs.len() != self.alts.len() {
            return;
        }
        let keep: Vec<bool> = self
            .last_segs
            .iter()
            .map(|s| same_per_sender(s, kernel))
            .collect();
        if !keep.contains(&true) {
            return;
        }
        let mut k = keep.iter();
        self.alts.retain(|_| *k.next().unwrap_or(&true));
        let mut k = keep.iter();
        self.last_segs.retain(|_| *k.next().unwrap_or(&true));
    }

    /// Whether, in any alternative, the model cannot tell whether new data from `x`
    /// would leave now (see [`crate::model::tcp::TcpModel::held_send_uncertain`]).
    pub fn held_send_uncertain(&self, x: End) -> bool {
        self.alts.iter().any(|a| a.held_send_uncertain(x))
    }

    /// How many ways to go the bound ([`MAX_ALTERNATIVES`]) dropped since the last
    /// call: a disagreement after that may be the bound's, not the rules'.
    pub fn take_dropped(&mut self) -> usize {
        std::mem::take(&mut self.dropped)
    }

    /// How many segments are in flight from `x` (in the first alternative).
    pub fn held_count(&self, x: End) -> usize {
        self.first().held_count(x)
    }

    /// Keeps the alternatives `keep` accepts, or all of them if it accepts none.
    fn retain(&mut self, keep: impl Fn(&TcpModel) -> bool) {
        if self.alts.iter().any(&keep) {
            self.alts.retain(keep);
        }
    }

    /// Gathers every alternative's forks (delivering what they still have in flight),
    /// drops duplicates and bounds the set.
    fn gather(&mut self) {
        let mut all: Vec<TcpModel> = Vec::new();
        let mut work = std::mem::take(&mut self.alts);
        work.reverse();
        while let Some(mut m) = work.pop() {
            m.deliver_all();
            work.extend(m.take_forks());
            if !all.contains(&m) {
                all.push(m);
            }
        }
        self.dropped += all.len().saturating_sub(MAX_ALTERNATIVES);
        all.truncate(MAX_ALTERNATIVES);
        self.alts = all;
    }

    /// Drops the alternatives whose views after the step the kernel's do not admit.
    fn prune_by_views(&mut self) {
        let Some(h) = self.hint.clone() else {
            return;
        };
        self.retain(|m| {
            End::BOTH.iter().all(|&e| match h.after[e.index()] {
                Some(v) => m.view_end(e).admits(&v),
                None => true,
            })
        });
    }

    /// Time passes in every alternative.
    pub fn advance(&mut self, ms: u32) -> Vec<WireEvent> {
        let mut wire = None;
        for a in &mut self.alts {
            let w = a.advance(ms);
            wire.get_or_insert(w);
        }
        self.gather();
        wire.unwrap_or_default()
    }

    /// See [`TcpModel::connect_failed`]; the alternatives agree on it (a failed
    /// connect is decided by the handshake, before any data).
    pub fn connect_failed(&mut self, x: End) -> Option<Errno> {
        let mut out = None;
        for a in &mut self.alts {
            let r = a.connect_failed(x);
            out.get_or_insert(r);
        }
        out.flatten()
    }

    /// See [`TcpModel::accepted`].
    pub fn accepted(&mut self, x: End) {
        for a in &mut self.alts {
            a.accepted(x);
        }
    }

    /// See [`TcpModel::preset_deferred_shutdown`].
    pub fn preset_deferred_shutdown(&mut self, x: End, rd: bool, wr: bool) {
        for a in &mut self.alts {
            a.preset_deferred_shutdown(x, rd, wr);
        }
    }

    /// See [`TcpModel::run`].
    pub fn run(&mut self, end: End, op: Op) -> (StepResult, Vec<WireEvent>) {
        self.log.clear();
        let r = self.drive(end, op);
        (r, std::mem::take(&mut self.log))
    }

    /// One side, as every alternative has it: TCP states joined, poll flags that
    /// differ marked open.
    pub fn view_end(&self, x: End) -> EndView {
        let mut views = self.alts.iter().map(|a| a.view_end(x));
        let first = views.next().unwrap_or(EndView::Closed);
        views.fold(first, merge_views)
    }

    /// The first alternative's account of an end, and how many there are.
    pub fn describe(&self, x: End) -> String {
        let d = self.first().describe(x);
        if self.alts.len() > 1 {
            format!(
                "{d} (one of {} ways the window may have gone)",
                self.alts.len()
            )
        } else {
            d
        }
    }
}

/// Two views of one socket as one prediction: states joined, differing flags open.
fn merge_views(a: EndView, b: EndView) -> EndView {
    match (a, b) {
        (
            EndView::Open {
                state: sa,
                poll: pa,
            },
            EndView::Open {
                state: sb,
                poll: pb,
            },
        ) => EndView::Open {
            state: match (sa, sb) {
                (Some(x), Some(y)) => Some(crate::step::StateSet(x.0 | y.0)),
                (x, y) => x.or(y),
            },
            poll: merge_polls(pa, pb),
        },
        (a, _) => a,
    }
}

fn merge_polls(a: PollSet, b: PollSet) -> PollSet {
    let open = PollSet((a.sure().0 ^ b.sure().0) | a.maybe().0 | b.maybe().0);
    PollSet(a.sure().0 & b.sure().0).with_maybe(open)
}

/// The alternatives' results as one prediction: where they differ, an
/// [`Outcome::Either`] whose SIGPIPE-raising alternatives are marked.
fn merge_results(mut results: Vec<StepResult>) -> StepResult {
    results.dedup();
    if results.len() == 1 {
        return results.remove(0);
    }
    let marked = results.into_iter().map(|r| {
        if r.sigpipe {
            Outcome::WithSigpipe(Box::new(r.outcome))
        } else {
            r.outcome
        }
    });
    let outcome = marked
        .reduce(|acc, o| Outcome::Either(Box::new(acc), Box::new(o)))
        .unwrap_or(Outcome::Ok);
    StepResult::plain(outcome)
}

impl Connection for TcpAlternatives {
    fn fd_open(&self, end: End) -> bool {
        self.first().fd_open(end)
    }

    fn call(&mut self, end: End, op: Op) -> StepResult {
        let mut results = Vec::new();
        let mut kept = Vec::new();
        for mut a in std::mem::take(&mut self.alts) {
            a.set_hint(self.hint.clone());
            a.wire_log().clear();
            let r = a.drive(end, op);
            // A fork made halfway through the delivery has the rest still in flight.
            let mut work = vec![a];
            while let Some(mut m) = work.pop() {
                m.deliver_all();
                work.extend(m.take_forks());
                kept.push((r.clone(), m));
            }
            results.push(r);
        }
        let merged = merge_results(results);
        // What the kernel answered settles which alternatives go on.
        if let Some(got) = self.hint.as_ref().map(|h| h.result.clone()) {
            if kept.iter().any(|(r, _)| r.admits(&got)) {
                kept.retain(|(r, _)| r.admits(&got));
            }
        }
        self.alts = kept.into_iter().map(|(_, m)| m).collect();
        self.gather();
        self.prune_by_views();
        for a in &mut self.alts {
            a.set_hint(None);
        }
        // The wire as the first way still kept saw it.
        self.log = self.alts[0].wire_log().clone();
        merged
    }

    fn call_closed(&mut self, end: End, op: Op) -> StepResult {
        // `call` drives every alternative, each of which sees its closed descriptor.
        self.call(end, op)
    }

    fn deliver_one(&mut self) -> bool {
        let mut any = false;
        for a in &mut self.alts {
            any |= a.deliver_one();
        }
        any
    }

    fn view(&self, end: End) -> EndView {
        self.view_end(end)
    }

    fn wire_log(&mut self) -> &mut Vec<WireEvent> {
        &mut self.log
    }

    fn set_name(&mut self, end: End, sock: Sock) {
        for a in &mut self.alts {
            a.set_name(end, sock);
        }
    }

    fn preset_shutdown(&mut self, end: End, rcv: bool, snd: bool) {
        for a in &mut self.alts {
            a.preset_shutdown(end, rcv, snd);
        }
    }

    fn forget_unaccepted(&mut self, end: End) {
        for a in &mut self.alts {
            a.wire_log().clear();
            a.forget_unaccepted(end);
            a.deliver_all();
        }
        self.log = self.alts[0].wire_log().clone();
        self.gather();
    }

    fn set_hint(&mut self, hint: Option<Hint>) {
        self.hint = hint;
    }

    fn preset_bufs(&mut self, end: End, bufs: Bufs) {
        for a in &mut self.alts {
            a.preset_bufs(end, bufs);
        }
    }

    fn drive(&mut self, end: End, op: Op) -> StepResult {
        // Each alternative drives (and delivers) itself in `call`.
        self.call(end, op)
    }
}

/// Whether `model` and `kernel` are the same segments with each sender's in the same
/// order (the senders' interleaving aside).
fn same_per_sender(model: &[SentSeg], kernel: &[WireSeg]) -> bool {
    model.len() == kernel.len()
        && model.iter().all(|m| {
            let from = m.seg.dir.from;
            let of = |s: &WireSeg| s.dir.from == from;
            model
                .iter()
                .map(|s| s.seg)
                .filter(of)
                .eq(kernel.iter().copied().filter(of))
        })
}

#[cfg(test)]
mod tests {
    use crate::model::{Model, Platform};
    use crate::step::{Op, Sock, Step};
    use crate::transport::Transport;

    /// Pressed writes both ways, one urgent, then one-byte reads: each read may let
    /// either side's held data go, so the ways multiply past the bound, and the
    /// prediction says at which step ways were dropped.
    #[test]
    fn ways_dropped_by_the_bound_are_reported_at_their_step() {
        let call = |sock, op| Step::Call { sock, op };
        let round = [
            call(Sock::A, Op::Write(65536)),
            call(Sock::B, Op::WriteOob(65536)),
            call(Sock::B, Op::Read(1)),
            call(Sock::A, Op::Read(1)),
            call(Sock::B, Op::Read(1)),
            call(Sock::A, Op::Read(1)),
        ];
        let mut m = Model::of(Transport::Tcp4, Platform::Linux);
        let dropped: Vec<usize> = round
            .iter()
            .chain(&round)
            .map(|&s| m.step(s).ways_dropped)
            .collect();
        // The first round stays within the bound; the second does not.
        assert!(dropped[..6].iter().all(|&d| d == 0), "{dropped:?}");
        assert!(dropped[6..].iter().any(|&d| d > 0), "{dropped:?}");
    }
}
