//! `network held` for the TCP model: segments wait in flight, one queue per direction,
//! until a step delivers or drops one, and every segment the stack sends is there,
//! pure ACKs included.
//!
//! The socket rules stay in [`super`]: a segment that arrives in order does what it
//! does under `network instant` (`data_arrives`, `fin_arrives`, `reset`, `fin_acked`).
//! This layer adds what instant delivery never needed: sequence and acknowledgement
//! numbers (relative: the first data byte is 0), which segments the receiver accepts,
//! the ones it keeps out of order, and which ACKs it sends. The rules are smoltcp's
//! (`socket/tcp.rs` of smoltcp 0.14, as the executor sets its sockets up: Nagle off, no
//! delayed ACK, no congestion control), the only stack with held mode: in
//! `Socket::process`,
//!
//! - a segment whose ACK is below what the receiver already had acknowledged
//!   (`ack_number < ack_min`, "duplicate ACK") is dropped whole, its data too;
//! - a segment outside the receive window is not processed: an RST is dropped, data
//!   draws an ACK (`ack_reply`), anything else a challenge ACK, at most one a second
//!   (`challenge_ack_reply`; time does not pass in held mode, so one per socket);
//! - an RST in the window closes the socket, whatever the ACK;
//! - a FIN behind a hole (`window_start < segment_start`) is ignored;
//! - TIME_WAIT, and a FIN in CLOSE_WAIT, LAST_ACK or CLOSING, fall to "unexpected
//!   packet": dropped with no answer;
//! - data beyond a hole goes to the assembler, and while the assembler holds any (or
//!   has just emptied) each data segment is answered at once by `ack_reply`; otherwise
//!   the ACK is `Socket::dispatch`'s, sent when the poll after it finds
//!   `ack_to_transmit` (new data or a FIN acknowledged), in every state but CLOSED.
//!
//! A segment for a socket in CLOSED (reset, or LAST_ACK done) is answered by the
//! interface with an RST whose sequence number is the segment's ACK (`rst_reply`).
//!
//! **Fast retransmission.** At the end of `Socket::process`, an accepted segment with
//! no payload whose ACK equals the last one taken (`local_rx_last_ack`), below the
//! highest sequence number sent (`remote_last_seq`), and whose window equals the last
//! one seen (not `is_window_update`), is a duplicate ACK: `local_rx_dup_acks` counts
//! it, and the third starts `Timer::set_for_fast_retransmit`. Any other accepted
//! segment sets the count to 0 and takes its ACK as the last (a FIN counts as a
//! duplicate: it has no payload). The poll after it runs `dispatch`, where
//! `should_retransmit` sets `pending_fast_retransmit` and one segment goes out from
//! `local_seq_no`: up to one MSS of the unacknowledged data (the loopback's MTU is
//! 65,535 and held scripts write at most 16 KiB, so all of it), with the FIN when that
//! is the end of the send buffer in FIN_WAIT1, CLOSING or LAST_ACK; it replaces the ACK
//! dispatch would have sent. The window each segment carries is what the duplicate
//! test compares: `scaled_window()`, the receive buffer's free room (64 KiB less what
//! arrived in order and was not read) shifted right by the window scale (1, for
//! 64 KiB: `remote_win_shift`), except the SYN-ACK's, which is not scaled. Not
//! modelled: three duplicates when only the FIN is unacknowledged (the send buffer is
//! empty, so `seq_to_transmit` sends nothing and the pending flag waits for the next
//! segment); a campaign has not reached it.

use super::{Conn, Seg, TcpModel};
use crate::model::interleave::{Firing, SentSeg};
use crate::model::{SegmentKind, WireEvent};
use crate::step::{
    Dir, End, Errno, Op, Outcome, PollSet, SegName, StepResult, TcpState, Which, WireSeg,
};
use cwnd::{Cwnd, Recovery, Unsent};
use std::collections::VecDeque;

mod cwnd;

/// The note on Linux's fast retransmission (campaigns count the cases that reach it).
pub const FAST_RETRANSMIT_NOTE: &str = "duplicate ACKs up to tp->reordering: fast retransmit of the head, the rest joined to it (tcp_fastretrans_alert, tcp_retrans_try_collapse)";
/// The note on what the congestion window held back leaving (campaigns count it).
pub const CWND_RELEASE_NOTE: &str = "what the congestion window held back leaves once an ACK opens it (tcp_data_snd_check, tcp_cwnd_test)";

/// The sequence space of one end, as the held wire sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct SeqSpace {
    /// The next sequence number to send (data bytes, then 1 for the FIN).
    snd_nxt: u64,
    /// The oldest unacknowledged (smoltcp's `local_seq_no`).
    snd_una: u64,
    /// Our FIN's sequence number, once sent.
    fin_seq: Option<u64>,
    /// The next in-order sequence number expected (`remote_seq_no + rx_buffer.len()`).
    rcv_nxt: u64,
    /// Data received beyond a hole, as sequence ranges (smoltcp's assembler).
    ooo: Vec<(u64, u64)>,
    /// The ACK number last sent (`remote_last_ack`).
    last_ack: u64,
    /// When (model ms) this end last answered a segment outside its window, while
    /// that still holds the next answer back (Linux's last_oow_ack_time, 500 ms;
    /// smoltcp's challenge_ack_timer, 1 s): see [`TcpModel::oow_expires`].
    oow_stamp: Option<u64>,
    /// The last ACK number taken as new (`local_rx_last_ack`; the handshake's is 0).
    dup_last: u64,
    /// Duplicate ACKs in a row (`local_rx_dup_acks`).
    dups: u8,
    /// The peer's window last seen, in bytes (`remote_win_len`); `None`: the SYN-ACK's
    /// unscaled 65,535, which no scaled window equals.
    win_seen: Option<u32>,
    /// Linux: a FIN that arrived beyond a hole, kept in the out-of-order queue with its
    /// data (tcp_data_queue_ofo) until the hole fills; its sequence number.
    ooo_fin: Option<u64>,
    /// Linux's rcv_wup: the ACK number of the last segment sent (tcp_select_window
    /// sets it for every one); tcp_sequence takes nothing that ends before it.
    rcv_wup: u64,
    /// Linux: where each segment with data or a FIN sent so far ends, oldest first
    /// (the retransmission queue's skbs, for packets_out).
    sent_ends: Vec<u64>,
    /// Linux: the congestion window and fast recovery (see [`cwnd`]).
    cwnd: Cwnd,
    /// Linux: what was written and the congestion window holds back.
    unsent: Option<Unsent>,
    /// Linux's tp->reordering (net.ipv4.tcp_reordering, 3, at first): Reno lowers it
    /// when duplicate ACKs outnumber what is out.
    reordering: u32,
    /// Linux's snd_up: one past the last urgent byte written (tcp_mark_urg).
    snd_up: Option<u64>,
    /// Linux's snd_wl1: the sequence number of the segment that last updated the
    /// send window; `None` is the SYN-ACK's, one before the first data byte (the
    /// client's, tcp_rcv_synsent_state_process; the accepted side starts at the
    /// handshake ACK's, 0).
    wl1: Option<u64>,
    /// Linux: the retransmission timer and what it needs (see [`RtoState`]).
    rto: RtoState,
}

/// Linux: one skb of the retransmission queue, data or FIN sent and not yet
/// acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Tx {
    /// Where it ends in sequence space.
    end: u64,
    /// When it last left, in model time (ms slept since the case began).
    at: u64,
    /// It was retransmitted (TCPCB_RETRANS): its ACK gives no RTT sample (Karn).
    retrans: bool,
}

/// Linux's retransmission timer on one end (tcp_retransmit_timer), with the RTT
/// estimator that sets its timeout (tcp_rtt_estimator, __tcp_set_rto), in µs as the
/// kernel keeps them. Model time passes only in `sleep` steps, so an RTT sample is the
/// time slept between a segment leaving and its ACK arriving.
#[derive(Clone, Debug, PartialEq, Eq)]
struct RtoState {
    /// The retransmission queue, oldest first.
    rtx: Vec<Tx>,
    /// When the timer was last (re)armed (model ms); `None`: not armed.
    armed: Option<u64>,
    /// icsk_rto, µs.
    rto_us: u64,
    /// tp->srtt_us (8 times the smoothed RTT), mdev_us, mdev_max_us, rttvar_us.
    srtt_us: u64,
    mdev_us: u64,
    mdev_max_us: u64,
    rttvar_us: u64,
    /// tp->rtt_seq: the rttvar is decayed once per window of data.
    rtt_seq: u64,
    /// The timer has fired in this case: the congestion window is small from then on
    /// (one segment, growing by slow start), which the model does not follow.
    timed_out: bool,
}

impl Default for RtoState {
    /// After the handshake: its RTT sample (µs on this wire, taken here as 1 µs) gave
    /// srtt, and rttvar is the route's locked rto_min (tcp_rtt_estimator's first sample:
    /// rttvar = max(2m, tcp_rto_min_us)), so the RTO is rto_min plus the srtt.
    fn default() -> Self {
        RtoState {
            rtx: Vec::new(),
            armed: None,
            rto_us: RTO_MIN_US + 1,
            srtt_us: 8,
            mdev_us: 2,
            mdev_max_us: RTO_MIN_US,
            rttvar_us: RTO_MIN_US,
            rtt_seq: 0,
            timed_out: false,
        }
    }
}

/// The route's locked `rto_min` on the held wire ([`crate::exec::wire::RTO_MIN_MS`]),
/// in µs.
const RTO_MIN_US: u64 = 1_000_000;
/// TCP_RTO_MAX (120 s), µs.
const RTO_MAX_US: u64 = 120_000_000;

/// How much earlier than the model's deadline a timer may be seen to have fired: the
/// model counts only the sleeps, the kernel also the time the case's calls took (at
/// most [`crate::run::TIMER_FREE_BUDGET`], with margin). A sleep that ends later than
/// this before a deadline certainly ends before the timer fires.
pub const TIMER_EARLY_MS: u64 = 100;

// A case whose calls took longer than the budget and disagrees is run again, so the
// calls' time stays well inside this margin.
const _: () = assert!(TIMER_EARLY_MS >= 2 * crate::run::TIMER_FREE_BUDGET.as_millis() as u64);

/// How much later than its deadline a timer may fire: the timer wheel's granularity
/// (an eighth of the timeout, at most: a 1 s timer sits on a level of 64 ms steps, a
/// 4 s one on 512 ms steps), RTT samples the model takes a little short (the calls'
/// time again), and scheduling.
pub fn timer_late_ms(timeout_ms: u64) -> u64 {
    timeout_ms / 8 + 200
}

impl SeqSpace {
    /// The urgent byte a segment starting at `seq` points at: tcp_transmit_skb sets URG
    /// on every segment, pure ACKs too, that starts before snd_up while it is
    /// unacknowledged (tcp_urg_mode), whether or not it carries the byte.
    fn urgent_pointer(&self, seq: u64) -> Option<u64> {
        self.snd_up
            .filter(|&up| up > seq && up > self.snd_una)
            .map(|up| up - 1)
    }

    /// A write ending at `end` was urgent, or not: tcp_mark_urg puts snd_up past its
    /// last byte.
    fn mark_urgent(&mut self, end: u64, urgent: bool) {
        if urgent {
            self.snd_up = Some(end);
        }
    }

    /// Where the retransmission queue ends: what was sent as new data so far.
    fn snd_nxt_sent(&self) -> u64 {
        self.rto.rtx.last().map_or(self.snd_una, |t| t.end)
    }

    /// Linux's tcp_packets_in_flight (see [`cwnd`]): in Open and Disorder, the skbs
    /// out less Reno's sacked_out.
    fn in_flight(&self) -> u32 {
        match &self.cwnd.rec {
            Some(r) => r.in_flight(self.snd_una),
            None => {
                let out = self.sent_ends.iter().filter(|&&e| e > self.snd_una).count();
                u32::try_from(out)
                    .unwrap_or(u32::MAX)
                    .saturating_sub(u32::from(self.dups))
            }
        }
    }

    /// New data or a FIN ending at `end` left (tcp_event_new_data_sent; in recovery
    /// tcp_write_xmit counts it in prr_out).
    fn cwnd_sent(&mut self, end: u64) {
        let out = self.sent_ends.iter().filter(|&&e| e > self.snd_una).count();
        let c = &mut self.cwnd;
        c.max_out = c.max_out.max(u32::try_from(out).unwrap_or(u32::MAX));
        if let Some(r) = c.rec.as_mut() {
            r.new_ends.push(end);
            r.prr_out += 1;
        }
    }

    /// An ACK moved SND.UNA from `from` to `ack` (tcp_clean_rtx_queue, the end of
    /// tcp_fastretrans_alert, tcp_cong_control).
    fn ack_moved(&mut self, from: u64, ack: u64) {
        let Some(r) = self.cwnd.rec.as_mut() else {
            // tcp_reno_cong_avoid's slow start grows the window only while
            // tcp_is_cwnd_limited (cwnd < 2 * max_packets_out): past that, the model
            // knows only that it is no smaller.
            if self.cwnd.max_out * 2 > self.cwnd.cwnd {
                self.cwnd.exact = false;
            }
            return;
        };
        // Whole skbs acknowledged: the head, skbs of new data.
        let head = u32::from(r.head_end > from && r.head_end <= ack);
        let news = r.new_ends.iter().filter(|&&e| e > from && e <= ack).count();
        let pkts = head + u32::try_from(news).unwrap_or(u32::MAX);
        r.new_ends.retain(|&e| e > ack);
        let mut delivered = 0;
        if pkts > 0 {
            // tcp_remove_reno_sacks: "One ACK acked hole. The rest eat duplicate
            // ACKs."
            delivered = pkts.saturating_sub(r.sacked).max(1);
            r.sacked = r.sacked.saturating_sub(pkts - 1);
            if let Some(p) = r.limit_sacked(ack) {
                self.reordering = (p + pkts).min(300);
            }
        }
        if ack >= r.high_seq {
            // tcp_reset_reno_sack.
            r.sacked = 0;
            if ack > r.high_seq {
                // tcp_try_undo_recovery (no undo: no timestamps, no D-SACK) opens,
                // tcp_end_cwnd_reduction sets cwnd to ssthresh; congestion avoidance
                // may grow it from there.
                self.cwnd.cwnd = r.ssthresh;
                self.cwnd.rec = None;
                self.cwnd.exact = false;
                return;
            }
        }
        if delivered > 0 {
            let in_flight = r.in_flight(ack);
            self.cwnd.cwnd = r.reduce(delivered, true, in_flight);
        }
    }
}

/// One segment in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct HeldSeg {
    seq: u64,
    ack: u64,
    len: u64,
    fin: bool,
    rst: bool,
    /// The window it advertises, in bytes (see the module docs).
    win: u32,
    /// It has the ACK flag (all but `rst_reply`'s RST to a segment that had one).
    ack_flag: bool,
    /// The sequence number of an urgent byte it carries (a `write N oob`: its last
    /// byte; a retransmission carrying it), the URG flag whose pointer the
    /// receiver marks (tcp_urg) when the segment arrives in order.
    urgent: Option<u64>,
    /// A SYN (with `ack_flag`: a SYN-ACK). Its sequence number is the ISN, reported
    /// as 0 like the first data byte after it (see [`crate::script`]).
    syn: bool,
}

/// Each socket's receive buffer in smoltcp's executor (`exec::smoltcp::BUF`): the
/// window is counted from it.
pub(super) const RX_BUF: u64 = 65_536;
/// smoltcp's window shift for that buffer (`remote_win_shift`: bits of the capacity
/// above 16).
const WIN_SHIFT: u32 = 1;

/// The window, in bytes, of a receive buffer holding `fill` bytes: smoltcp's
/// `scaled_window()` (at most `u16::MAX` once shifted), shifted back.
fn window(fill: u64) -> u32 {
    let scaled = (RX_BUF.saturating_sub(fill) >> WIN_SHIFT).min(u64::from(u16::MAX));
    u32::try_from(scaled << WIN_SHIFT).unwrap_or(u32::MAX)
}

/// The RST that answers segment `h` where no socket takes it (smoltcp's `rst_reply`;
/// Linux's tcp_v4_send_reset / tcp_v6_send_reset): with `h`'s ACK as its sequence
/// number and no ACK flag; to a segment without an ACK (a SYN) with sequence number
/// 0 and an ACK of everything `h` carried.
fn rst_reply(h: &HeldSeg) -> HeldSeg {
    HeldSeg {
        seq: if h.ack_flag { h.ack } else { 0 },
        ack: h.seq + h.len + u64::from(h.fin),
        len: 0,
        fin: false,
        rst: true,
        win: 0,
        ack_flag: !h.ack_flag,
        urgent: None,
        syn: false,
    }
}

impl HeldSeg {
    /// Where it ends in sequence space: its data, and one for a FIN.
    fn end_seq(&self) -> u64 {
        self.seq + self.len + u64::from(self.fin)
    }

    fn name(&self) -> SegName {
        let n = u32::try_from(self.len).unwrap_or(u32::MAX);
        if self.syn {
            return if self.ack_flag {
                SegName::SynAck
            } else {
                SegName::Syn
            };
        }
        match (self.rst, self.fin, n) {
            (true, _, _) => SegName::Rst,
            (_, true, 0) => SegName::Fin,
            (_, true, n) => SegName::DataFin(n),
            (_, false, 0) => SegName::Ack,
            (_, false, n) => SegName::Data(n),
        }
    }
}

/// The held wire of one connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct HeldWire {
    seq: [SeqSpace; 2],
    /// In flight from end `i` to its peer, oldest first.
    queue: [VecDeque<HeldSeg>; 2],
    /// Every segment sent since the step began, as the executor reports them, with
    /// the window of the timer that sent it.
    sent: Vec<SentSeg>,
    /// While a retransmission timer fires: when it may have (see
    /// [`crate::model::interleave`]).
    firing: Option<Firing>,
    /// The segment being processed where an RST the rules send answers it (Linux's
    /// tcp_v4_send_reset: the RST takes the segment's ACK as its sequence number and
    /// has no ACK flag), rather than being the socket's own (tcp_send_active_reset:
    /// SND.NXT, with an ACK).
    reply_to: Option<HeldSeg>,
    /// Linux under `start listening`: how far the handshake has come at the
    /// listener's side (`a`'s own progress is its state: SYN_SENT until the SYN-ACK).
    shake: Shake,
    /// The listener stopped (closed, or `shutdown rd`) before the child was made: a
    /// SYN or a request's next segment then meets no listener.
    listener_gone: bool,
    /// The child was made since the world last asked: it queues it on the listener.
    child_made: bool,
    /// `a`'s SYN was refused (an RST in SYN_SENT) since the world last asked.
    refused: bool,
    /// Model time: the ms slept since the case began.
    now_ms: u64,
}

/// The listener's side of a handshake under `network held` (Linux).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum Shake {
    /// No handshake pending: the connection started connected, or its child is made.
    #[default]
    Done,
    /// The client's SYN is in flight or lost, or the request was reset: the listener
    /// holds nothing for the connection.
    NoRequest,
    /// The listener answered with a SYN-ACK (tcp_conn_request): a request in
    /// SYN_RECV, not a socket, until a segment with a valid ACK arrives.
    Request,
}

impl TcpModel {
    /// This model under `network held`: the handshake done, nothing in flight.
    pub fn held(mut self) -> TcpModel {
        let mut w = Box::<HeldWire>::default();
        // b last saw a's window in the handshake's ACK, scaled; a, the SYN-ACK's.
        w.seq[End::B.index()].win_seen = Some(window(0));
        w.seq[End::B.index()].wl1 = Some(0);
        for s in &mut w.seq {
            s.reordering = 3;
        }
        self.held = Some(w);
        self
    }

    /// The window `x` advertises now: its receive buffer's free room, scaled.
    fn window_of(&self, x: End) -> u32 {
        let w = self.held.as_ref().expect("held mode");
        let s = &w.seq[x.index()];
        let fin = u64::from(
            w.seq[x.peer().index()]
                .fin_seq
                .is_some_and(|f| s.rcv_nxt > f),
        );
        let data_in = s.rcv_nxt.saturating_sub(fin);
        window(data_in.saturating_sub(self.ends[x.index()].taken))
    }

    /// This model under `network held` as `a`'s non-blocking connect leaves it
    /// (tcp_v4_connect -> tcp_connect): `a` in SYN_SENT, its SYN in flight to the
    /// listener, the server side nothing yet (named `l`, never seen until accepted).
    /// `listening`: whether a listener is there for the SYN to meet.
    pub fn held_connecting(self, listening: bool) -> TcpModel {
        let mut m = self.held();
        {
            let w = m.wire_mut();
            w.shake = Shake::NoRequest;
            w.listener_gone = !listening;
        }
        m.ends[End::A.index()].state = TcpState::SynSent;
        let b = m.end(End::B);
        b.state = TcpState::SynRecv;
        b.fd_open = false;
        let syn = HeldSeg {
            seq: 0,
            ack: 0,
            len: 0,
            fin: false,
            rst: false,
            win: 0,
            ack_flag: false,
            urgent: None,
            syn: true,
        };
        m.emit(End::A, syn, "connect sends SYN (tcp_connect)");
        m
    }

    /// The listener stopped: a handshake not yet done meets no listener from now on.
    pub fn listener_stopped(&mut self) {
        if let Some(w) = self.held.as_mut() {
            if w.shake != Shake::Done || w.child_made {
                w.listener_gone = true;
            }
        }
    }

    /// Whether the child was made since the last call (it is to be queued).
    pub fn take_child_made(&mut self) -> bool {
        self.held
            .as_mut()
            .is_some_and(|w| std::mem::take(&mut w.child_made))
    }

    /// Whether `a`'s connect was refused since the last call.
    pub fn take_refused(&mut self) -> bool {
        self.held
            .as_mut()
            .is_some_and(|w| std::mem::take(&mut w.refused))
    }

    /// Whether `x` is in SYN_SENT with its descriptor open.
    pub fn syn_sent(&self, x: End) -> bool {
        let e = &self.ends[x.index()];
        e.fd_open && e.state == TcpState::SynSent && e.conn == Conn::Live
    }

    /// `x` in SYN_SENT is disconnected (inet_shutdown's TCP_SYN_SENT case ->
    /// tcp_disconnect, which sends nothing from SYN_SENT): the connection loses it
    /// silently; the world makes it an unconnected socket.
    pub fn disconnect_syn_sent(&mut self, x: End) {
        let e = self.end(x);
        e.fd_open = false;
        e.state = TcpState::Close;
        e.conn = Conn::Gone;
    }

    /// A call on `x` in SYN_SENT (non-blocking), where it differs from an open
    /// connection; `None` for the calls answered as anywhere (state, error, linger).
    pub(super) fn syn_sent_call(&mut self, x: End, op: Op) -> Option<StepResult> {
        let r = |o| Some(StepResult::plain(o));
        let e = self.end(x);
        match op {
            // tcp_sendmsg_locked -> sk_stream_wait_connect: sk_err, else (SYN_SENT, no
            // time to wait) EAGAIN, before any shutdown bit is looked at.
            Op::Write(_) | Op::WriteNoSignal(_) | Op::WriteOob(_) => {
                r(Outcome::Err(e.err.take().unwrap_or(Errno::EAGAIN)))
            }
            // tcp_recvmsg_locked with nothing queued: SOCK_DONE, sk_err, RCV_SHUTDOWN
            // (0: EOF), then EAGAIN.
            Op::Read(_) | Op::Peek(_) => match e.err.take() {
                Some(err) => r(Outcome::Err(err)),
                None if e.rcv_shut => r(Outcome::Eof),
                None => r(Outcome::Err(Errno::EAGAIN)),
            },
            // tcp_recv_urg: no urgent data.
            Op::ReadOob(_) => r(Outcome::Err(Errno::EINVAL)),
            // tcp_ioctl: SIOCINQ and SIOCOUTQ are 0 in SYN_SENT.
            Op::Inq | Op::Outq => r(Outcome::Queued(0)),
            // __inet_stream_connect in SS_CONNECTING, still SYN_SENT.
            Op::Connect => r(Outcome::Err(Errno::EALREADY)),
            // __tcp_close: tcp_close_state(SYN_SENT) is CLOSE with no FIN, and
            // tcp_disconnect (linger 0) sends no RST from SYN_SENT (tcp_need_reset).
            Op::Close | Op::Abort => {
                e.fd_open = false;
                e.state = TcpState::Close;
                e.conn = Conn::Gone;
                r(Outcome::Ok)
            }
            _ => None,
        }
    }

    /// tcp_poll in SYN_SENT: nothing readable or writable yet.
    pub(super) fn syn_sent_poll(&self, x: End) -> PollSet {
        let e = &self.ends[x.index()];
        PollSet::NONE
            .with_if(PollSet::HUP, e.rcv_shut && e.snd_shut)
            .with_if(PollSet::IN, e.rcv_shut)
            .with_if(PollSet::RDHUP, e.rcv_shut && self.profile.poll_rdhup)
            .with_if(PollSet::ERR, e.err.is_some())
    }

    /// Segment `h` at `y` while the handshake is not done (Linux); `true` when the
    /// handshake rules took it whole, `false` when it goes on as at an ESTABLISHED
    /// socket (the child was just made by it, or there is no handshake).
    fn handshake_arrives(&mut self, y: End, h: &HeldSeg) -> bool {
        let (shake, gone) = {
            let w = self.held.as_ref().expect("held mode");
            (w.shake, w.listener_gone)
        };
        if y == End::A {
            let e = &self.ends[y.index()];
            if e.state != TcpState::SynSent || e.conn != Conn::Live {
                return false;
            }
            // tcp_rcv_synsent_state_process.
            if h.ack_flag && h.ack != 0 {
                if !h.rst {
                    self.emit(y, rst_reply(h), "SYN_SENT: an unacceptable ACK draws RST");
                }
                return true;
            }
            if h.rst {
                if h.ack_flag {
                    // tcp_reset in SYN_SENT: ECONNREFUSED, tcp_done shuts both ways.
                    let e = self.end(y);
                    e.state = TcpState::Close;
                    e.conn = Conn::Gone;
                    e.err = Some(Errno::ECONNREFUSED);
                    e.rcv_shut = true;
                    e.snd_shut = true;
                    self.wire_mut().refused = true;
                }
                return true;
            }
            if h.syn && h.ack_flag {
                self.end(y).state = TcpState::Established;
                self.send_ack(
                    y,
                    "SYN-ACK: ESTABLISHED, the handshake's ACK (tcp_rcv_synsent_state_process -> tcp_send_ack)",
                );
            }
            return true;
        }
        match shake {
            Shake::Done => false,
            Shake::NoRequest => {
                if gone || !h.syn {
                    // No listener (tcp_v4_rcv: no_tcp_socket), or a listener that answers
                    // a segment with an ACK by a reset (tcp_rcv_state_process in LISTEN).
                    self.no_socket(y, h);
                } else {
                    self.wire_mut().shake = Shake::Request;
                    let synack = HeldSeg {
                        seq: 0,
                        ack: 0,
                        len: 0,
                        fin: false,
                        rst: false,
                        win: 0,
                        ack_flag: true,
                        urgent: None,
                        syn: true,
                    };
                    self.emit(
                        y,
                        synack,
                        "SYN at the listener: a request in SYN_RECV answers SYN-ACK (tcp_conn_request)",
                    );
                }
                true
            }
            Shake::Request => {
                if gone {
                    // tcp_v4_rcv: the request's listener no longer listens, so the
                    // request is dropped and the lookup finds nothing: tcp_v4_send_reset.
                    self.no_socket(y, h);
                    return true;
                }
                // tcp_check_req.
                let in_window = h.seq == 0 || (h.end_seq() > 0 && h.seq < LINUX_WINDOW);
                if !in_window {
                    if !h.rst {
                        self.send_ack(y, "outside the request's window: tcp_v4_reqsk_send_ack");
                    }
                    return true;
                }
                if h.rst {
                    if h.seq == 0 {
                        // At RCV.NXT: embryonic_reset, the request goes unanswered.
                        self.wire_mut().shake = Shake::NoRequest;
                    } else if !self.oow_stamped(y) {
                        // Seen on 6.18: elsewhere in the window the request answers as
                        // an established socket does (RFC 5961 3.2) and stays.
                        self.send_ack(
                            y,
                            "RST in the request's window but not at RCV.NXT: challenge ACK (RFC 5961 3.2)",
                        );
                    }
                    return true;
                }
                if h.syn {
                    // embryonic_reset: a SYN in the window resets the request.
                    self.no_socket(y, h);
                    self.wire_mut().shake = Shake::NoRequest;
                    return true;
                }
                if !h.ack_flag {
                    return true;
                }
                // A valid ACK: syn_recv_sock makes the child, inet_csk_complete_hashdance
                // queues it, and tcp_child_process hands it this segment (its ACK moves
                // it to ESTABLISHED, its text is taken as there).
                let w = self.wire_mut();
                w.shake = Shake::Done;
                w.child_made = true;
                // The child's rate-limit stamp is the listener's copy, not the
                // request's (sk_clone_lock).
                w.seq[y.index()].oow_stamp = None;
                let e = self.end(y);
                e.state = TcpState::Established;
                // A socket now, queued for accept (the world keeps it unseen till then).
                e.fd_open = true;
                false
            }
        }
    }

    fn wire_mut(&mut self) -> &mut HeldWire {
        self.held.as_mut().expect("held mode")
    }

    /// A segment leaves `x`: it waits in flight. The model's own ACKs are not sent
    /// here: the held rules decide every ACK (see the module docs).
    pub(super) fn hold_segment(&mut self, x: End, seg: Seg, note: &'static str) {
        if matches!(seg, Seg::Data { .. } | Seg::Fin) && self.cwnd_holds(x) {
            return self.hold_back(x, seg);
        }
        let w = self.wire_mut();
        let reply = w.reply_to;
        let s = &mut w.seq[x.index()];
        let ack = s.rcv_nxt;
        let h = match seg {
            Seg::Data {
                offset,
                len,
                urgent,
            } => {
                s.snd_nxt = s.snd_nxt.max(offset + len as u64);
                s.mark_urgent(offset + len as u64, urgent);
                HeldSeg {
                    seq: offset,
                    ack,
                    len: len as u64,
                    fin: false,
                    rst: false,
                    win: 0,
                    ack_flag: true,
                    urgent: None,
                    syn: false,
                }
            }
            Seg::Fin => {
                let seq = s.snd_nxt;
                s.fin_seq = Some(seq);
                s.snd_nxt += 1;
                HeldSeg {
                    seq,
                    ack,
                    len: 0,
                    fin: true,
                    rst: false,
                    win: 0,
                    ack_flag: true,
                    urgent: None,
                    syn: false,
                }
            }
            Seg::Rst if reply.is_some() => rst_reply(&reply.expect("checked")),
            Seg::Rst => HeldSeg {
                seq: s.snd_nxt,
                ack,
                len: 0,
                fin: false,
                rst: true,
                win: 0,
                ack_flag: true,
                urgent: None,
                syn: false,
            },
            Seg::Ack | Seg::Held => return,
        };
        self.emit(x, h, note);
    }

    fn emit(&mut self, x: End, mut h: HeldSeg, note: &'static str) {
        h.win = self.window_of(x);
        // The one place segments get their urgent pointer (Linux; smoltcp has none).
        if !h.rst && !h.syn && !self.profile.tcp.smoltcp_segment_rules {
            h.urgent = self.wire_mut().seq[x.index()].urgent_pointer(h.seq);
        }
        let new = !h.rst && h.end_seq() > self.wire_mut().seq[x.index()].snd_nxt_sent();
        if new {
            self.new_data_sent(x, h.end_seq());
        }
        let kind = match h.name() {
            SegName::Syn => SegmentKind::Syn,
            SegName::SynAck => SegmentKind::SynAck,
            SegName::Rst => SegmentKind::Rst,
            SegName::Fin | SegName::DataFin(_) => SegmentKind::Fin,
            SegName::Ack => SegmentKind::Ack,
            _ => SegmentKind::Data(h.len as usize),
        };
        self.log.push(WireEvent {
            from: self.names[x.index()],
            to: self.names[x.peer().index()],
            kind,
            note,
        });
        let seen = WireSeg {
            dir: Dir {
                from: self.names[x.index()],
                to: self.names[x.peer().index()],
            },
            name: h.name(),
            seq: h.seq,
            ack: h.ack_flag.then_some(h.ack),
        };
        let w = self.wire_mut();
        let fired = w.firing;
        w.sent.push(SentSeg { seg: seen, fired });
        let s = &mut w.seq[x.index()];
        if h.ack_flag {
            s.rcv_wup = h.ack;
        }
        if !h.rst && (h.len > 0 || h.fin) && s.sent_ends.last().is_none_or(|&e| h.end_seq() > e) {
            s.sent_ends.push(h.end_seq());
        }
        if new && !h.syn {
            s.cwnd_sent(h.end_seq());
        }
        w.queue[x.index()].push_back(h);
    }

    /// New data (or the FIN) leaves `x`, ending at `end`: it joins the retransmission
    /// queue, and the timer is armed if nothing was outstanding
    /// (tcp_event_new_data_sent: `if (!prior_packets) tcp_rearm_rto`).
    fn new_data_sent(&mut self, x: End, end: u64) {
        let w = self.wire_mut();
        let now = w.now_ms;
        let r = &mut w.seq[x.index()].rto;
        if r.rtx.is_empty() {
            r.armed = Some(now);
        }
        r.rtx.push(Tx {
            end,
            at: now,
            retrans: false,
        });
    }

    /// The segments sent since the last call (the step's, with their numbers and,
    /// where a timer sent them, when).
    pub fn take_segs(&mut self) -> Vec<SentSeg> {
        self.held
            .as_mut()
            .map_or(vec![], |w| std::mem::take(&mut w.sent))
    }

    /// A pure ACK from `y` of all it has in order.
    fn send_ack(&mut self, y: End, note: &'static str) {
        let s = &mut self.wire_mut().seq[y.index()];
        s.last_ack = s.rcv_nxt;
        let h = HeldSeg {
            seq: s.snd_nxt,
            ack: s.rcv_nxt,
            len: 0,
            fin: false,
            rst: false,
            win: 0,
            ack_flag: true,
            urgent: None,
            syn: false,
        };
        self.emit(y, h, note);
    }

    /// SIOCOUTQ: Linux's write_seq - snd_una (tcp_ioctl), the FIN counted once sent;
    /// smoltcp's `send_queue()`, data written and not yet acknowledged, the FIN not
    /// counted.
    pub(super) fn held_outq(&self, x: End) -> usize {
        let smoltcp = self.profile.tcp.smoltcp_segment_rules;
        self.held.as_ref().map_or(0, |w| {
            let s = &w.seq[x.index()];
            let end = if smoltcp {
                s.fin_seq.unwrap_or(s.snd_nxt)
            } else {
                // write_seq: what the window holds back too, its FIN included.
                s.unsent.map_or(s.snd_nxt, |u| u.end + u64::from(u.fin))
            };
            end.saturating_sub(s.snd_una) as usize
        })
    }

    /// `held`: what is in flight from `x`, oldest first.
    pub fn held_names(&self, x: End) -> Vec<SegName> {
        self.held.as_ref().map_or(vec![], |w| {
            w.queue[x.index()].iter().map(HeldSeg::name).collect()
        })
    }

    /// How many segments are in flight from `x`.
    pub fn held_count(&self, x: End) -> usize {
        self.held.as_ref().map_or(0, |w| w.queue[x.index()].len())
    }

    /// `drop`: the oldest segment from `x` is lost.
    pub fn drop_held(&mut self, x: End) -> Outcome {
        self.log.clear();
        match self.wire_mut().queue[x.index()].pop_front() {
            Some(_) => Outcome::Ok,
            None => Outcome::NotApplicable,
        }
    }

    /// `deliver`: segments from `x` arrive, each answered before the next.
    pub fn deliver_held(&mut self, x: End, which: Which) -> Outcome {
        self.log.clear();
        let picks: Vec<HeldSeg> = match which {
            Which::Nth(k) => match self.wire_mut().queue[x.index()].remove(usize::from(k) - 1) {
                Some(h) => vec![h],
                None => return Outcome::NotApplicable,
            },
            Which::All => self.wire_mut().queue[x.index()].drain(..).collect(),
        };
        if picks.is_empty() {
            // Nothing in flight that way: nothing to deliver, as for the oldest.
            return Outcome::NotApplicable;
        }
        self.deliver_picks(x, &picks);
        Outcome::Ok
    }

    /// `picks` from `x` arrive one after the other; a way the model forks into at one
    /// of them takes the rest too.
    fn deliver_picks(&mut self, x: End, picks: &[HeldSeg]) {
        for (i, &h) in picks.iter().enumerate() {
            let before = self.forks.len();
            if self.profile.tcp.smoltcp_segment_rules {
                self.arrives_smoltcp(x.peer(), h);
            } else {
                self.arrives(x.peer(), h);
                // tcp_data_snd_check, whichever way the segment was taken.
                self.release_unsent(x.peer());
            }
            let made: Vec<TcpModel> = self.forks.drain(before..).collect();
            for mut f in made {
                f.deliver_picks(x, &picks[i + 1..]);
                self.fork(f);
            }
        }
    }

    /// smoltcp's `Socket::process` and the poll after it, for segment `h` at `y`.
    fn arrives_smoltcp(&mut self, y: End, h: HeldSeg) {
        let state = self.ends[y.index()].state;
        if state == TcpState::Close {
            // The socket no longer accepts (Socket::accepts in CLOSED): the interface
            // answers anything but an RST with one (rst_reply).
            if !h.rst {
                self.emit(
                    y,
                    rst_reply(&h),
                    "segment for a CLOSED socket: smoltcp rst_reply",
                );
            }
            return;
        }
        let s = self.wire_mut().seq[y.index()].clone();
        // Window: smoltcp's receive buffer keeps at least 48 KiB free here (held
        // scripts write at most 16 KiB per end), so only its start matters.
        let start = s.rcv_nxt;
        let in_window = if h.len == 0 {
            h.seq >= start
        } else {
            h.seq + h.len > start
        };
        if h.rst {
            if in_window {
                self.reset(y);
            }
            return;
        }
        if h.ack < s.snd_una {
            // "duplicate ACK": dropped whole, before anything else is looked at.
            return;
        }
        if !in_window {
            if h.len > 0 {
                self.send_ack(y, "segment outside the window: smoltcp ack_reply");
            } else if !self.oow_stamped(y) {
                self.send_ack(y, "segment outside the window: smoltcp challenge_ack_reply");
            }
            return;
        }
        let ack_of_fin = s.fin_seq.is_some_and(|f| h.ack == f + 1);
        let fin = h.fin && h.seq <= start;
        match (state, fin) {
            (TcpState::TimeWait, _)
            | (TcpState::CloseWait | TcpState::LastAck | TcpState::Closing, true) => {
                // "unexpected packet": dropped before its ACK is looked at.
                return;
            }
            (TcpState::LastAck, false) if !ack_of_fin && h.ack == s.snd_una => {
                if !self.oow_stamped(y) {
                    self.send_ack(
                        y,
                        "LAST_ACK without the FIN's ACK: smoltcp challenge_ack_reply",
                    );
                }
                return;
            }
            _ => {}
        }
        // Duplicate ACKs (process, after the state machine; see the module docs).
        let fast_rexmit = {
            let t = &mut self.wire_mut().seq[y.index()];
            let dup = h.len == 0 && t.dup_last == h.ack && h.ack < t.snd_nxt;
            let dup = dup && t.win_seen == Some(h.win);
            t.win_seen = Some(h.win);
            if dup {
                t.dups = t.dups.saturating_add(1);
                t.dups == 3
            } else {
                t.dups = 0;
                t.dup_last = h.ack;
                false
            }
        };
        self.wire_mut().seq[y.index()].snd_una = h.ack;
        // Linux counts the FIN in SIOCOUTQ; smoltcp's send_queue() counts data only.
        let data_unacked = s.fin_seq.unwrap_or(s.snd_nxt).saturating_sub(h.ack);
        self.end(y).outq_hi = data_unacked as usize;
        if ack_of_fin {
            self.fin_acked(y);
        }
        // The payload: in order, or into the assembler.
        let had_ooo = !s.ooo.is_empty();
        if h.len > 0 {
            let (lo, hi) = (h.seq.max(start), h.seq + h.len);
            let mut ranges = s.ooo.clone();
            ranges.push((lo, hi));
            ranges.sort_unstable();
            let mut nxt = start;
            let mut rest = vec![];
            for (a, b) in ranges {
                if a <= nxt {
                    nxt = nxt.max(b);
                } else {
                    rest.push((a, b));
                }
            }
            let mut merged: Vec<(u64, u64)> = vec![];
            for (a, b) in rest {
                match merged.last_mut() {
                    Some(m) if a <= m.1 => m.1 = m.1.max(b),
                    _ => merged.push((a, b)),
                }
            }
            let new = nxt - start;
            self.wire_mut().seq[y.index()].ooo = merged;
            if new > 0 {
                self.wire_mut().seq[y.index()].rcv_nxt = nxt;
                let offset = self.ends[y.index()].rq.start + self.ends[y.index()].rq.len as u64;
                self.data_arrives(y, offset, new as usize, false);
            }
        }
        let fin = fin && self.wire_mut().seq[y.index()].rcv_nxt == h.seq + h.len;
        if fin {
            self.wire_mut().seq[y.index()].rcv_nxt += 1;
            let before = self.ends[y.index()].state;
            self.fin_arrives(y);
            if before == TcpState::FinWait1 && ack_of_fin {
                // smoltcp: FIN_WAIT1 with the FIN's ACK and a FIN goes to TIME_WAIT.
                let e = self.end(y);
                if e.state == TcpState::Closing {
                    Self::done(e, Conn::TimeWait);
                    self.time_wait_shows(y);
                }
            }
        }
        if self.ends[y.index()].state == TcpState::Close {
            return;
        }
        let s = &self.wire_mut().seq[y.index()];
        let around_hole = h.len > 0 && (had_ooo || !s.ooo.is_empty());
        let ack_due = s.rcv_nxt > s.last_ack;
        if around_hole {
            self.send_ack(y, "data around a hole: smoltcp ack_reply");
        } else if !(fast_rexmit && self.fast_retransmit(y)) && ack_due {
            self.send_ack(y, "ACK of what arrived: smoltcp dispatch, ack_to_transmit");
        }
    }

    /// The third duplicate ACK has arrived at `y`: dispatch's `pending_fast_retransmit`
    /// segment, all the unacknowledged data from `local_seq_no`, the FIN with it when
    /// the send half is closed. `false` when no data is unacknowledged (not modelled:
    /// see the module docs).
    fn fast_retransmit(&mut self, y: End) -> bool {
        let state = self.ends[y.index()].state;
        let s = &mut self.wire_mut().seq[y.index()];
        let len = s.fin_seq.unwrap_or(s.snd_nxt).saturating_sub(s.snd_una);
        if len == 0 {
            return false;
        }
        s.last_ack = s.rcv_nxt;
        let h = HeldSeg {
            seq: s.snd_una,
            ack: s.rcv_nxt,
            len,
            fin: s.fin_seq.is_some()
                && matches!(
                    state,
                    TcpState::FinWait1 | TcpState::Closing | TcpState::LastAck
                ),
            rst: false,
            win: 0,
            ack_flag: true,
            urgent: None,
            syn: false,
        };
        self.emit(y, h, "third duplicate ACK: smoltcp fast retransmit");
        true
    }
}

/// The receive window Linux checks segments against (tcp_sequence: no further than
/// RCV.NXT plus it). Held scripts write at most
/// [`crate::script::HELD_MAX_BYTES_PER_END`] bytes per end, far inside the 64 KiB a
/// fresh connection offers, so only the window's start decides.
const LINUX_WINDOW: u64 = 65_535;

/// Linux's rules: the receive path of tcp_v4_rcv / tcp_v6_rcv as the executor's
/// namespaces are set up (no timestamps, no SACK, the route's `quickack`: every ACK
/// leaves at once; Nagle off), read in Linux 6.18's net/ipv4/tcp_input.c and
/// tcp_minisocks.c:
///
/// - a full socket (tcp_rcv_established, tcp_rcv_state_process) checks the sequence
///   number first (tcp_validate_incoming: tcp_sequence takes a segment that does not
///   end before RCV.WUP, the ACK number it last sent, and does not start beyond the
///   window): anything else but an RST is answered with an ACK (tcp_send_dupack), a
///   segment with neither data nor FIN at most once per 500 ms
///   (tcp_oow_rate_limited); an RST is dropped unless it sits one before RCV.NXT
///   after the peer's FIN (tcp_reset_check);
/// - an RST resets only at exactly RCV.NXT (or tcp_reset_check's place), elsewhere in
///   the window it draws a challenge ACK (RFC 5961 3.2, tcp_send_challenge_ack, rate
///   limited with the same 500 ms stamp);
/// - the ACK (tcp_ack): one below SND.UNA is old and ignored, the segment goes on
///   (since 6.8 also in the closing states, "tcp: accept old ack during closing");
///   one that acknowledges our FIN moves FIN_WAIT1 to FIN_WAIT2 (an orphan becomes the
///   FIN_WAIT2 mini-socket, tcp_time_wait, and the segment ends there, unless it
///   carries a FIN; one that carries new data resets, "Receive out of order FIN after
///   close()"), CLOSING to TIME_WAIT and LAST_ACK to CLOSED, the segment ending
///   there;
/// - the text (tcp_data_queue): in CLOSE_WAIT, CLOSING and LAST_ACK nothing new is
///   taken and nothing is answered; in FIN_WAIT1/2 with the read side shut, new data
///   resets the connection and is answered with an RST (tcp_reset, then
///   tcp_v4_send_reset: "RFC 1122 says we MUST send a reset"); otherwise data in order
///   is queued, with whatever the out-of-order queue then joins (tcp_ofo_queue, a FIN
///   kept there included), data or a FIN beyond a hole waits in the out-of-order queue,
///   and data already received is dropped; each of these is answered by one ACK
///   (tcp_ack_snd_check; tcp_fin sends its own in FIN_WAIT1 and FIN_WAIT2, and there is
///   still one);
/// - a TIME_WAIT mini-socket (tcp_timewait_state_process) ignores an ACK at RCV.NXT,
///   dies of an RST there, and answers anything else but an RST with an ACK (at most
///   once per 500 ms for segments without data or FIN); the FIN_WAIT2 mini-socket
///   answers what is outside its window with an ACK, dies of any RST, ignores what
///   brings nothing new, enters TIME_WAIT on the FIN (ACKed) and answers anything else
///   with an RST and dies (TCP_TW_RST);
/// - a segment that meets no socket is answered with an RST (tcp_v4_send_reset).
///
/// Reno's duplicate ACKs, fast retransmission and the congestion window are
/// [`TcpModel::count_dupacks`]'s and [`cwnd`]'s. Not modelled: window updates on reads
/// (the window never falls to half). The retransmission timer, which runs in `sleep`
/// steps, has its own impl block below.
impl TcpModel {
    fn arrives(&mut self, y: End, h: HeldSeg) {
        if self.fast_path_differs(y, &h) {
            // Header prediction (tcp_rcv_established) takes this segment unless the
            // socket's forward-allocated memory is short of its truesize (then step5,
            // the slow path's tcp_ack): which, depends on the socket's memory history,
            // so both ways are kept and later segments settle it. The fast path sets
            // snd_wl1 to the segment's sequence number even backwards ("tcp: fix to
            // update snd_wl1 in bulk receiver fast path", 2020); the slow path's
            // tcp_may_update_window leaves it. A later ACK at that number is then a
            // window update (not a duplicate) one way only.
            let mut fast = self.clone();
            fast.forks.clear();
            fast.wire_mut().seq[y.index()].wl1 = Some(h.seq);
            fast.arrives_slow_path(y, h);
            self.fork(fast);
        }
        self.arrives_slow_path(y, h);
    }

    /// Whether header prediction may take `h` at `y` and leave snd_wl1 otherwise than
    /// the slow path: `y` ESTABLISHED with prediction on (no out-of-order data, no
    /// urgent mark pending: tcp_fast_path_check; the window constant on the held wire),
    /// `h` data with ACK (and PSH) only, at RCV.NXT, acknowledging SND.UNA exactly, its
    /// sequence number behind snd_wl1 (a later segment of the peer's overtook it).
    fn fast_path_differs(&self, y: End, h: &HeldSeg) -> bool {
        let e = &self.ends[y.index()];
        let Some(s) = self.held.as_ref().map(|w| &w.seq[y.index()]) else {
            return false;
        };
        e.conn == Conn::Live
            && e.state == TcpState::Established
            && e.urg.is_none()
            && h.len > 0
            && h.ack_flag
            && !(h.fin || h.rst || h.syn || h.urgent.is_some())
            && h.seq == s.rcv_nxt
            && h.ack == s.snd_una
            && s.wl1.is_some_and(|w| h.seq < w)
            && s.ooo.is_empty()
            && s.ooo_fin.is_none()
    }

    /// The segment's processing but for header prediction (see [`TcpModel::arrives`]).
    fn arrives_slow_path(&mut self, y: End, h: HeldSeg) {
        if self.handshake_arrives(y, &h) {
            return;
        }
        let e = &self.ends[y.index()];
        match e.conn {
            Conn::Gone => return self.no_socket(y, &h),
            Conn::TimeWait => return self.time_wait_arrives(y, h),
            Conn::Live if e.state == TcpState::Close => return self.no_socket(y, &h),
            Conn::Live if !e.fd_open && e.state == TcpState::FinWait2 => {
                return self.fin_wait2_arrives(y, h)
            }
            Conn::Live => {}
        }
        let s = self.wire_mut().seq[y.index()].clone();
        let acceptable = h.end_seq() >= s.rcv_wup && h.seq <= s.rcv_nxt + LINUX_WINDOW;
        if !acceptable {
            if !h.rst {
                if !self.oow_limited(y, &h) {
                    self.send_ack(y, "segment outside the window: tcp_send_dupack");
                }
            } else if self.reset_check(y, &h) {
                self.reset(y);
            }
            return;
        }
        if h.rst {
            if h.seq == s.rcv_nxt || self.reset_check(y, &h) {
                self.reset(y);
            } else if !self.oow_stamped(y) {
                self.send_ack(
                    y,
                    "RST in the window but not at RCV.NXT: challenge ACK (RFC 5961 3.2)",
                );
            }
            return;
        }
        // tcp_ack.
        let old_ack = h.ack < s.snd_una;
        if !old_ack {
            self.wire_mut().seq[y.index()].snd_una = h.ack;
            self.rtx_acked(y, h.ack);
            self.end(y).outq_hi = s.snd_nxt.saturating_sub(h.ack) as usize;
        }
        self.count_dupacks(y, &h, &s);
        if !old_ack && s.fin_seq.is_some_and(|f| h.ack == f + 1) {
            match self.ends[y.index()].state {
                TcpState::FinWait1 => {
                    self.fin_acked(y);
                    if !self.ends[y.index()].fd_open {
                        self.start_fw2_timer(y);
                        if h.len > 0 && h.end_seq() - u64::from(h.fin) > s.rcv_nxt {
                            Self::done(self.end(y), Conn::Gone);
                            self.emit(
                                y,
                                rst_reply(&h),
                                "new data for an orphan whose FIN this ACKs: tcp_rcv_state_process resets",
                            );
                            return;
                        }
                        if !h.fin {
                            // tcp_time_wait(TCP_FIN_WAIT2): a mini-socket with a rate
                            // limit stamp of its own.
                            self.wire_mut().seq[y.index()].oow_stamp = None;
                            return;
                        }
                    }
                }
                TcpState::Closing | TcpState::LastAck => {
                    self.fin_acked(y);
                    self.wire_mut().seq[y.index()].oow_stamp = None;
                    return;
                }
                _ => {}
            }
        }
        // tcp_urg (step 6) for every segment that got this far, pure ACKs too: its
        // pointer marks the urgent byte, not yet there unless this segment carries it.
        if let Some(at) = h.urgent {
            let carries = h.seq <= at && at < h.seq + h.len;
            self.urgent_arrives(y, at, s.rcv_nxt, carries);
        }
        let has_text = h.len > 0 || h.fin;
        if !has_text {
            return;
        }
        let state = self.ends[y.index()].state;
        match state {
            TcpState::CloseWait | TcpState::Closing | TcpState::LastAck if h.seq >= s.rcv_nxt => {
                return;
            }
            TcpState::FinWait1 | TcpState::FinWait2
                if self.ends[y.index()].rcv_shut && h.end_seq() - u64::from(h.fin) > s.rcv_nxt =>
            {
                // The urgent mark was taken before the text (tcp_urg, above); the text
                // resets.
                let new = h.end_seq() - u64::from(h.fin) - s.rcv_nxt.max(h.seq);
                let e = &self.ends[y.index()];
                let base = e.rq.start + e.rq.len as u64;
                self.wire_mut().reply_to = Some(h);
                self.data_arrives(y, base, new as usize, false);
                self.wire_mut().reply_to = None;
                return;
            }
            _ => {}
        }
        self.data_queue(y, h);
        if self.ends[y.index()].conn == Conn::Gone {
            return;
        }
        // A FIN taken in FIN_WAIT1 or FIN_WAIT2 is acknowledged inside tcp_fin
        // (tcp_send_ack), before tcp_data_snd_check; any other ACK is scheduled, and
        // what the window held back, leaving now, carries it.
        let fin_taken = matches!(state, TcpState::FinWait1 | TcpState::FinWait2)
            && self.ends[y.index()].state != state;
        if fin_taken && self.held_unsent_at(y) {
            self.send_ack(y, "a FIN in FIN_WAIT1: tcp_fin acknowledges it at once");
            self.release_unsent(y);
        } else if !self.release_unsent(y) {
            self.send_ack(
                y,
                "what arrived, acknowledged at once (route quickack): tcp_ack_snd_check",
            );
        }
    }

    /// Reno's duplicate ACKs (tcp_ack, tcp_fastretrans_alert without SACK), and what
    /// every ACK does to the congestion window ([`cwnd`]). A window update is not a
    /// duplicate: tcp_may_update_window is true for an ACK that moves SND.UNA or a
    /// segment whose sequence number is past snd_wl1 (which it then becomes). An ACK
    /// that moves nothing, with no data or FIN, while segments are outstanding, adds one
    /// to sacked_out (tcp_add_reno_sack); where that makes more than packets_out - 1,
    /// tcp_check_reno_reordering cuts it to packets_out - 1 and sets tp->reordering to
    /// packets_out (a duplicate can only be reordering then). Once sacked_out reaches
    /// tp->reordering (3 at first) the head is marked lost (tcp_newreno_mark_lost) and
    /// fast recovery begins: the head leaves again, the small segments after it and the
    /// FIN joined to it (tcp_retrans_try_collapse, up to an MSS: all of them here). In
    /// recovery nothing is sent again: the head is every byte that was out, already
    /// retransmitted (tcp_xmit_retransmit_queue skips it), and an ACK that moves
    /// SND.UNA into it acknowledges no whole skb.
    fn count_dupacks(&mut self, y: End, h: &HeldSeg, before: &SeqSpace) {
        let t = &mut self.wire_mut().seq[y.index()];
        if h.ack < before.snd_una {
            // Old: tcp_ack leaves before the window is looked at.
            return;
        }
        let win_update = h.ack > before.snd_una || t.wl1.is_none_or(|w| h.seq > w);
        if win_update {
            t.wl1 = Some(h.seq);
        }
        if h.ack > before.snd_una {
            t.sent_ends.retain(|&e| e > h.ack);
            t.dups = 0;
            if t.cwnd.loss.is_some_and(|high| h.ack > high) {
                // tcp_process_loss -> tcp_try_undo_recovery: Open.
                t.cwnd.loss = None;
            }
            t.ack_moved(before.snd_una, h.ack);
            return;
        }
        let packets_out = t.sent_ends.iter().filter(|&&e| e > t.snd_una).count();
        if win_update || h.len > 0 || h.fin || packets_out == 0 {
            return;
        }
        if let Some(high) = t.cwnd.loss {
            // tcp_process_loss: a duplicate counts only once new data went out past
            // high_seq, and starts nothing.
            if t.snd_nxt > high {
                let packets_out = u32::try_from(packets_out).unwrap_or(u32::MAX);
                t.dups = t
                    .dups
                    .saturating_add(1)
                    .min(u8::try_from(packets_out.saturating_sub(1)).unwrap_or(u8::MAX));
            }
            return;
        }
        if let Some(r) = t.cwnd.rec.as_mut() {
            if t.snd_una >= r.high_seq {
                // Reno holding Recovery at high_seq: tcp_fastretrans_alert resets
                // sacked_out and returns (tcp_try_undo_recovery) before counting it.
                r.sacked = 0;
                return;
            }
            // tcp_add_reno_sack in Recovery; what it counts is delivered.
            let prior = r.sacked;
            r.sacked += 1;
            if let Some(p) = r.limit_sacked(t.snd_una) {
                t.reordering = p.min(300);
            }
            let delivered = r.sacked.saturating_sub(prior);
            if delivered > 0 {
                let in_flight = r.in_flight(t.snd_una);
                t.cwnd.cwnd = r.reduce(delivered, false, in_flight);
            }
            return;
        }
        let packets_out = u32::try_from(packets_out).unwrap_or(u32::MAX);
        let mut sacked = u32::from(t.dups) + 1;
        if sacked + 1 > packets_out {
            sacked = packets_out - 1;
            // sysctl_tcp_max_reordering is 300.
            t.reordering = packets_out.min(300);
        }
        t.dups = u8::try_from(sacked).unwrap_or(u8::MAX);
        if sacked < t.reordering {
            return;
        }
        let (r, cwnd) = Recovery::begin(t.cwnd.cwnd, packets_out, sacked, t.snd_nxt);
        t.cwnd.rec = Some(r);
        t.cwnd.cwnd = cwnd;
        self.retransmit_head(y, FAST_RETRANSMIT_NOTE);
    }

    /// Whether the congestion window holds back new data or a FIN from `x` now
    /// (tcp_write_xmit's tcp_cwnd_test; Linux only): behind what it already holds, or
    /// with the flight at the window.
    fn cwnd_holds(&self, x: End) -> bool {
        if self.profile.tcp.smoltcp_segment_rules {
            return false;
        }
        self.held.as_ref().is_some_and(|w| {
            let s = &w.seq[x.index()];
            s.unsent.is_some() || s.in_flight() >= s.cwnd.cwnd
        })
    }

    /// Data or a FIN the window holds back joins the unsent tail skb (tcp_sendmsg
    /// appends to it; tcp_send_fin sets FIN on it).
    fn hold_back(&mut self, x: End, seg: Seg) {
        let s = &mut self.wire_mut().seq[x.index()];
        let u = s.unsent.get_or_insert(Unsent {
            end: s.snd_nxt,
            fin: false,
        });
        match seg {
            Seg::Data {
                offset,
                len,
                urgent,
            } => {
                u.end = u.end.max(offset + len as u64);
                s.mark_urgent(offset + len as u64, urgent);
            }
            Seg::Fin => u.fin = true,
            _ => {}
        }
    }

    /// tcp_data_snd_check after a segment arrived at `y`: what the window held back
    /// leaves, as one segment, if the flight is below the window now. Returns whether
    /// it did (it carries the ACK that would otherwise have gone alone).
    fn release_unsent(&mut self, y: End) -> bool {
        let e = &self.ends[y.index()];
        if e.conn != Conn::Live || e.state == TcpState::Close {
            return false;
        }
        let Some(s) = self.held.as_ref().map(|w| &w.seq[y.index()]) else {
            return false;
        };
        let Some(u) = s.unsent else {
            return false;
        };
        if s.in_flight() >= s.cwnd.cwnd {
            return false;
        }
        let h = HeldSeg {
            seq: s.snd_nxt,
            ack: s.rcv_nxt,
            len: u.end - s.snd_nxt,
            fin: u.fin,
            rst: false,
            win: 0,
            ack_flag: true,
            urgent: None,
            syn: false,
        };
        let s = &mut self.wire_mut().seq[y.index()];
        s.unsent = None;
        s.snd_nxt = u.end;
        if u.fin {
            s.fin_seq = Some(u.end);
            s.snd_nxt += 1;
        }
        s.last_ack = s.rcv_nxt;
        self.emit(y, h, CWND_RELEASE_NOTE);
        true
    }

    /// The head of `y`'s retransmission queue leaves again with everything after it.
    fn retransmit_head(&mut self, y: End, note: &'static str) {
        let t = &self.wire_mut().seq[y.index()];
        if t.snd_nxt <= t.snd_una {
            return;
        }
        let r = HeldSeg {
            seq: t.snd_una,
            ack: t.rcv_nxt,
            len: t.fin_seq.unwrap_or(t.snd_nxt).saturating_sub(t.snd_una),
            fin: t.fin_seq.is_some(),
            rst: false,
            win: 0,
            ack_flag: true,
            urgent: None,
            syn: false,
        };
        self.emit(y, r, note);
    }

    /// tcp_data_queue for a segment with data or a FIN, from its place relative to
    /// RCV.NXT (the ACK is the caller's).
    fn data_queue(&mut self, y: End, h: HeldSeg) {
        let s = self.wire_mut().seq[y.index()].clone();
        let start = s.rcv_nxt;
        if h.end_seq() <= start {
            // Already received: dropped (a duplicate ACK follows).
            return;
        }
        if h.seq > start {
            // Beyond a hole: tcp_data_queue_ofo keeps it, a FIN with it.
            let t = &mut self.wire_mut().seq[y.index()];
            if h.len > 0 {
                t.ooo.push((h.seq, h.seq + h.len));
            }
            if h.fin {
                t.ooo_fin = Some(h.seq + h.len);
            }
            return;
        }
        // In order (its old part trimmed), then tcp_ofo_queue.
        let own_end = h.seq + h.len;
        let mut nxt = own_end.max(start);
        let mut ranges = s.ooo.clone();
        ranges.sort_unstable();
        let mut rest = vec![];
        for (a, b) in ranges {
            if a <= nxt && !h.fin {
                nxt = nxt.max(b);
            } else {
                rest.push((a, b));
            }
        }
        self.wire_mut().seq[y.index()].ooo = rest;
        let base = self.ends[y.index()].rq.start + self.ends[y.index()].rq.len as u64;
        if own_end > start {
            self.wire_mut().seq[y.index()].rcv_nxt = own_end;
            // Its urgent mark, if any, was taken on arrival (urgent_arrives).
            self.data_arrives(y, base, (own_end - start) as usize, false);
        }
        if nxt > own_end.max(start) && self.ends[y.index()].conn == Conn::Live {
            let from = own_end.max(start);
            self.wire_mut().seq[y.index()].rcv_nxt = nxt;
            let base = self.ends[y.index()].rq.start + self.ends[y.index()].rq.len as u64;
            self.data_arrives(y, base, (nxt - from) as usize, false);
        }
        let fin = h.fin || s.ooo_fin == Some(nxt);
        if fin && self.ends[y.index()].conn == Conn::Live {
            let t = &mut self.wire_mut().seq[y.index()];
            t.rcv_nxt = nxt + 1;
            t.ooo_fin = None;
            self.fin_arrives(y);
            if self.ends[y.index()].conn == Conn::TimeWait {
                self.wire_mut().seq[y.index()].oow_stamp = None;
            }
        }
    }

    /// tcp_reset_check: an RST one before RCV.NXT after the peer's FIN resets too.
    fn reset_check(&self, y: End, h: &HeldSeg) -> bool {
        let s = &self.held.as_ref().expect("held mode").seq[y.index()];
        h.seq + 1 == s.rcv_nxt
            && matches!(
                self.ends[y.index()].state,
                TcpState::CloseWait | TcpState::LastAck | TcpState::Closing
            )
    }

    /// __tcp_oow_rate_limited: whether an answer to a segment outside the window is
    /// held back; the first sets the socket's stamp, which holds back every other
    /// until it expires (see [`Self::oow_expires`]), and a held-back one leaves it.
    fn oow_stamped(&mut self, y: End) -> bool {
        let w = self.wire_mut();
        let now = w.now_ms;
        let stamp = &mut w.seq[y.index()].oow_stamp;
        if stamp.is_some() {
            return true;
        }
        *stamp = Some(now);
        false
    }

    /// How long an out-of-window answer holds the next back: Linux's
    /// sysctl_tcp_invalid_ratelimit (500 ms), smoltcp's challenge_ack_timer (1 s).
    fn oow_limit_ms(&self) -> u64 {
        if self.profile.tcp.smoltcp_segment_rules {
            1000
        } else {
            500
        }
    }

    /// After a sleep, the out-of-window stamps that have expired are cleared. The
    /// kernel compares in jiffies (up to 4 ms each) and the calls since the stamp took
    /// real time of their own (at most [`crate::run::TIMER_FREE_BUDGET`]; a slower
    /// case that disagrees is run again), so a stamp whose age is within that of the
    /// limit may or may not have expired: both ways are kept, and the answers settle
    /// which.
    pub(super) fn oow_expires(&mut self) {
        const JIFFY_MS: u64 = 4;
        let slack = crate::run::TIMER_FREE_BUDGET.as_millis() as u64 + JIFFY_MS;
        let (now, limit) = (self.held_now(), self.oow_limit_ms());
        let mut open = vec![];
        for x in End::BOTH {
            let Some(stamp) = self.held.as_ref().and_then(|w| w.seq[x.index()].oow_stamp) else {
                continue;
            };
            let age = now - stamp;
            if age >= limit + JIFFY_MS {
                self.wire_mut().seq[x.index()].oow_stamp = None;
            } else if age + slack >= limit {
                open.push(x);
            }
        }
        // Every way the open stamps may have gone but all kept (this model).
        for expired in 1..(1u8 << open.len()) {
            let mut m = self.clone();
            m.forks.clear();
            for (i, x) in open.iter().enumerate() {
                if expired & (1 << i) != 0 {
                    m.wire_mut().seq[x.index()].oow_stamp = None;
                }
            }
            self.fork(m);
        }
    }

    /// tcp_oow_rate_limited: a segment with data or a FIN is always answered.
    fn oow_limited(&mut self, y: End, h: &HeldSeg) -> bool {
        h.end_seq() == h.seq && self.oow_stamped(y)
    }

    /// No socket takes the segment: tcp_v4_send_reset answers all but an RST.
    fn no_socket(&mut self, y: End, h: &HeldSeg) {
        if !h.rst {
            self.emit(
                y,
                rst_reply(h),
                "segment for a connection that no longer exists: tcp_v4_send_reset",
            );
        }
    }

    /// tcp_timewait_state_process in TIME_WAIT.
    fn time_wait_arrives(&mut self, y: End, h: HeldSeg) {
        let rcv_nxt = self.wire_mut().seq[y.index()].rcv_nxt;
        if h.seq == rcv_nxt && (h.end_seq() == h.seq || h.rst) {
            if h.rst {
                // TIME_WAIT assassination (net.ipv4.tcp_rfc1337 = 0).
                self.end(y).conn = Conn::Gone;
                self.end(y).time_wait_ms = None;
            } else {
                // A bare ACK in the window: TIME_WAIT starts over
                // (inet_twsk_reschedule(tw, TCP_TIMEWAIT_LEN)).
                self.end(y).time_wait_ms = Some(0);
            }
            return;
        }
        if !h.rst && h.ack_flag {
            // Any other segment with an ACK restarts it too, answered or not
            // ("if (paws_reject || th->ack) inet_twsk_reschedule").
            self.end(y).time_wait_ms = Some(0);
        }
        if !h.rst && !self.oow_limited(y, &h) {
            self.send_ack(
                y,
                "TIME_WAIT answers a segment it did not expect: TCP_TW_ACK",
            );
        }
    }

    /// tcp_timewait_state_process for the FIN_WAIT2 mini-socket of an orphan.
    fn fin_wait2_arrives(&mut self, y: End, h: HeldSeg) {
        let rcv_nxt = self.wire_mut().seq[y.index()].rcv_nxt;
        let win_end = rcv_nxt + LINUX_WINDOW;
        // tcp_in_window.
        let in_window = h.seq == rcv_nxt
            || (h.end_seq() > rcv_nxt && h.seq < win_end)
            || (h.seq == win_end && h.seq == h.end_seq());
        if !in_window {
            if !self.oow_limited(y, &h) {
                self.send_ack(y, "outside the FIN_WAIT2 mini-socket's window: TCP_TW_ACK");
            }
            return;
        }
        if h.rst {
            Self::done(self.end(y), Conn::Gone);
            return;
        }
        if h.end_seq() <= rcv_nxt || h.end_seq() == h.seq {
            return;
        }
        if !h.fin || h.end_seq() != rcv_nxt + 1 {
            Self::done(self.end(y), Conn::Gone);
            self.emit(
                y,
                rst_reply(&h),
                "new data for the FIN_WAIT2 mini-socket of an orphan: TCP_TW_RST",
            );
            return;
        }
        self.wire_mut().seq[y.index()].rcv_nxt = rcv_nxt + 1;
        self.fin_arrives(y);
        self.send_ack(y, "FIN at the FIN_WAIT2 mini-socket: TIME_WAIT, TCP_TW_ACK");
    }
}

/// Linux's retransmission timer under `network held` (net/ipv4/tcp_timer.c, tcp_input.c
/// and tcp_output.c of 6.18), on the held wire's settings (the route's `rto_min` of 1 s,
/// locked; no timestamps, no SACK, no tail-loss probe):
///
/// - armed when new data or a FIN leaves with nothing outstanding
///   (tcp_event_new_data_sent), re-armed to a full RTO whenever an ACK takes a whole
///   segment off the retransmission queue (tcp_clean_rtx_queue sets
///   FLAG_SET_XMIT_TIMER, tcp_rearm_rto), stopped when nothing is left;
/// - the RTO is srtt + rttvar (__tcp_set_rto), rttvar never below rto_min
///   (tcp_rtt_estimator): 1 s plus the smoothed RTT, which on this wire is the time
///   segments were held, only sleeps counting. An ACK of a segment never retransmitted
///   gives an RTT sample and sets the RTO anew (and clears the backoff); an ACK of a
///   retransmitted one gives none (Karn, no timestamps), so a doubled RTO stays;
/// - on firing (tcp_retransmit_timer), tcp_enter_loss and one segment from SND.UNA:
///   tcp_retrans_try_collapse (tcp_retrans_collapse = 1) joins every later skb into
///   the head, the FIN too, as their clones were freed when the executor read them off
///   the TUN and all fit in one MSS (held scripts write at most 16 KiB an end); the RTO
///   doubles (icsk_backoff) and the timer is armed again.
///
/// A timer fires somewhere between its deadline and [`timer_late_ms`] after it, and
/// may be seen from [`TIMER_EARLY_MS`] before it; a sleep that ends in between leaves
/// both ways open: the model forks (see [`crate::model::alternatives`]) and the
/// segments the kernel sent in the sleep settle which.
///
/// Not modelled: the congestion window after a timeout (tcp_enter_loss: one segment,
/// so new data and the FIN wait until the retransmission is acknowledged, then slow
/// start from two; queued writes leave joined: [`TcpModel::held_send_uncertain`] tells
/// the generator to send nothing new on that end), the retry limits
/// (tcp_retries2, tcp_orphan_retries: far beyond the 70 s a script may sleep).
impl TcpModel {
    /// An ACK up to `ack` arrived at `y` (tcp_clean_rtx_queue and what follows it).
    fn rtx_acked(&mut self, y: End, ack: u64) {
        let w = self.wire_mut();
        let now = w.now_ms;
        let s = &mut w.seq[y.index()];
        let n = s.rto.rtx.iter().take_while(|t| t.end <= ack).count();
        if n == 0 {
            return;
        }
        let acked: Vec<Tx> = s.rto.rtx.drain(..n).collect();
        if !acked.iter().any(|t| t.retrans) {
            // seq_rtt_us: from the oldest skb this ACK took.
            let m = (now - acked[0].at) * 1000;
            rtt_estimator(s, m);
        }
        let r = &mut s.rto;
        r.armed = (!r.rtx.is_empty()).then_some(now);
    }

    /// When `x`'s retransmission timer fires next (model ms), if armed and the end
    /// still has a connection that runs it.
    fn rto_deadline(&self, x: End) -> Option<(u64, u64)> {
        let w = self.held.as_ref()?;
        let e = &self.ends[x.index()];
        if e.conn != Conn::Live || e.state == TcpState::Close {
            return None;
        }
        let r = &w.seq[x.index()].rto;
        let rto_ms = r.rto_us.div_ceil(1000);
        r.armed
            .filter(|_| !r.rtx.is_empty())
            .map(|a| (a + rto_ms, rto_ms))
    }

    /// `x`'s retransmission timer, due at `at`, fires (some time in `firing`).
    fn rto_fires(&mut self, x: End, at: u64, firing: Firing) {
        let state = self.ends[x.index()].state;
        let w = self.wire_mut();
        w.firing = Some(firing);
        w.now_ms = w.now_ms.max(at);
        let s = &mut w.seq[x.index()];
        let fin = s.fin_seq.filter(|&f| s.snd_una <= f);
        let data_end = fin.unwrap_or(s.snd_nxt);
        let end = s.rto.rtx.last().map_or(data_end, |t| t.end);
        s.rto.rtx = vec![Tx {
            end,
            at,
            retrans: true,
        }];
        s.rto.timed_out = true;
        // tcp_enter_loss: cwnd 1, slow start from there (not followed); Recovery, if
        // it was on, gives way to Loss until an ACK past what was sent.
        s.cwnd.exact = false;
        s.cwnd.rec = None;
        s.cwnd.loss = Some(s.snd_nxt);
        s.rto.rto_us = (s.rto.rto_us * 2).min(RTO_MAX_US);
        s.rto.armed = Some(at);
        let h = HeldSeg {
            seq: s.snd_una,
            ack: s.rcv_nxt,
            len: data_end.saturating_sub(s.snd_una),
            fin: fin.is_some()
                && matches!(
                    state,
                    TcpState::FinWait1 | TcpState::Closing | TcpState::LastAck
                ),
            rst: false,
            win: 0,
            ack_flag: true,
            urgent: None,
            syn: false,
        };
        self.emit(
            x,
            h,
            "retransmission timer: tcp_retransmit_timer resends from SND.UNA, the rest collapsed into it",
        );
        self.wire_mut().firing = None;
    }

    /// Time passes on the held wire until `until` (model ms): each retransmission
    /// timer that certainly fires by then does; one that may or may not have leaves a
    /// fork where it did (see the impl docs).
    pub(super) fn held_timers(&mut self, until: u64) {
        let from = self.held_now();
        self.held_timers_from(from, until);
    }

    /// [`Self::held_timers`] for a sleep that began at `from`.
    fn held_timers_from(&mut self, from: u64, until: u64) {
        for x in [End::A, End::B] {
            while let Some((d, rto_ms)) = self.rto_deadline(x) {
                if until + TIMER_EARLY_MS < d {
                    break;
                }
                // It fired inside the sleep, and inside the timer's own window.
                let firing = Firing {
                    earliest: d.saturating_sub(TIMER_EARLY_MS).max(from),
                    latest: (d + timer_late_ms(rto_ms)).min(until),
                };
                if until >= d + timer_late_ms(rto_ms) {
                    self.rto_fires(x, d, firing);
                    continue;
                }
                let mut fired = self.clone();
                fired.forks.clear();
                fired.rto_fires(x, d, firing);
                fired.held_timers_from(from, until);
                self.forks.extend(fired.take_forks());
                self.forks.push(fired);
                break;
            }
        }
        self.wire_mut().now_ms = until;
    }

    /// The model time under held (ms slept so far).
    pub(super) fn held_now(&self) -> u64 {
        self.held.as_ref().map_or(0, |w| w.now_ms)
    }

    /// Whether a sleep of `ms` ends where every retransmission timer certainly has or
    /// has not fired.
    pub(super) fn held_sleep_certain(&self, ms: u64) -> bool {
        if self.held_sleep_unfollowed().is_some() {
            return false;
        }
        let until = self.held_now() + ms;
        let mut m = self.clone();
        m.forks.clear();
        m.held_timers(until);
        m.forks.is_empty()
    }

    /// Why a sleep now may do what the model does not follow, if it may: the timers
    /// [`Self::held_sleep_certain`] declines for good, not a timer near its deadline
    /// (those are followed both ways).
    pub fn held_sleep_unfollowed(&self) -> Option<&'static str> {
        if self.held.is_none() {
            None
        } else if self.handshake_pending() {
            // TCP_TIMEOUT_INIT, then tcp_syn_linear_timeouts and doubling; the request's
            // tcp_synack_timer: not modelled.
            Some("a SYN or SYN-ACK not yet answered is resent by its own timer (from 1 s), which the model does not follow under held")
        } else if self.held_unsent() {
            // See [`cwnd`].
            Some("a retransmission timer that fires while the congestion window holds data back leaves the window in Loss, which the model does not follow")
        } else {
            None
        }
    }

    /// Whether a handshake of this connection is still under way: `a` in SYN_SENT, or
    /// the listener's side not done (its SYN or request pending).
    fn handshake_pending(&self) -> bool {
        self.held.as_ref().is_some_and(|w| w.shake != Shake::Done)
            || self.ends.iter().any(|e| e.state == TcpState::SynSent)
    }

    /// Whether the model cannot tell if new data or a FIN from `x` would leave now or
    /// wait for the congestion window: its timer has fired, or the window is known only
    /// as a lower bound (see [`cwnd`]) and the flight is at it or recovery is under way.
    pub fn held_send_uncertain(&self, x: End) -> bool {
        self.held.as_ref().is_some_and(|w| {
            let s = &w.seq[x.index()];
            s.rto.timed_out
                || (!s.cwnd.exact && (s.cwnd.rec.is_some() || s.in_flight() >= s.cwnd.cwnd))
        })
    }

    /// Whether `x` has data or a FIN the congestion window holds back.
    pub(super) fn held_unsent_at(&self, x: End) -> bool {
        self.held
            .as_ref()
            .is_some_and(|w| w.seq[x.index()].unsent.is_some())
    }

    /// Whether either end has data or a FIN the congestion window holds back.
    pub fn held_unsent(&self) -> bool {
        self.held
            .as_ref()
            .is_some_and(|w| w.seq.iter().any(|s| s.unsent.is_some()))
    }

    /// icsk_rto now, in ms (what tcp_fin_time and tcp_time_wait read).
    pub(super) fn held_rto_ms(&self, x: End) -> Option<u64> {
        self.held
            .as_ref()
            .map(|w| w.seq[x.index()].rto.rto_us.div_ceil(1000))
    }
}

/// tcp_rtt_estimator for a sample of `m` µs, then tcp_set_rto (icsk_backoff is
/// cleared with it: tcp_ack_update_rtt).
fn rtt_estimator(s: &mut SeqSpace, m_us: u64) {
    let r = &mut s.rto;
    let mut m = m_us as i64;
    let mut srtt = r.srtt_us as i64;
    let mdev = r.mdev_us as i64;
    m -= srtt >> 3;
    srtt += m;
    if m < 0 {
        m = -m;
        m -= mdev >> 2;
        if m > 0 {
            m >>= 3;
        }
    } else {
        m -= mdev >> 2;
    }
    r.mdev_us = (mdev + m).max(0) as u64;
    if r.mdev_us > r.mdev_max_us {
        r.mdev_max_us = r.mdev_us;
        r.rttvar_us = r.rttvar_us.max(r.mdev_max_us);
    }
    if s.snd_una > r.rtt_seq {
        if r.mdev_max_us < r.rttvar_us {
            r.rttvar_us -= (r.rttvar_us - r.mdev_max_us) >> 2;
        }
        r.rtt_seq = s.snd_nxt;
        r.mdev_max_us = RTO_MIN_US;
    }
    r.srtt_us = srtt.max(1) as u64;
    r.rto_us = ((r.srtt_us >> 3) + r.rttvar_us).min(RTO_MAX_US);
}
