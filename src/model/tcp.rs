//! The TCP model: Linux's TCP as seen through the socket calls closefuzz makes.
//!
//! Rules cite RFC 9293 (TCP), RFC 2525 (known TCP implementation problems) and the
//! Linux source they were checked against: `net/ipv4/tcp.c` (tcp_sendmsg_locked,
//! tcp_recvmsg_locked, __tcp_close, tcp_shutdown, tcp_disconnect, tcp_poll),
//! `net/ipv4/tcp_input.c` (tcp_fin, tcp_reset, tcp_rcv_state_process),
//! `net/ipv4/tcp_minisocks.c` (tcp_timewait_state_process), `net/ipv4/af_inet.c`
//! (inet_shutdown) and `net/core/stream.c` (sk_stream_error, sk_stream_wait_connect).
//!
//! One detail is left open on purpose: Linux delays the ACK of a FIN that arrives in
//! ESTABLISHED (tcp_fin enters "pingpong" mode), and whether a later read sends that
//! ACK early depends on delayed-ACK heuristics (quick-ACK credits, PSH counting,
//! window arithmetic) the model does not track. Until the FIN's receiver sends a
//! segment, the FIN's sender is predicted as `FIN_WAIT1|FIN_WAIT2`. No other
//! observable depends on that ACK: both states answer every later event alike.

use super::common::{Connection, StreamQueue};
use super::profile::{FinWait2Timer, Profile};
use super::world::{Listener, Loose};
use super::{SegmentKind, WireEvent};
use crate::step::{
    pattern, Bufs, End, EndView, Errno, Op, Outcome, PollSet, Shut, Sock, StateSet, StepResult,
    TcpState,
};
use std::collections::VecDeque;

mod held;
pub use held::{CWND_RELEASE_NOTE, FAST_RETRANSMIT_NOTE};

/// Whether the kernel still holds a connection for an end (with or without its fd).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Conn {
    /// A full socket holds the connection.
    Live,
    /// A TIME_WAIT mini-socket holds it (the fd's socket, if any, is already CLOSE).
    TimeWait,
    /// Nothing holds it: an arriving segment meets no socket.
    Gone,
}

/// One end's kernel socket.
#[derive(Clone, Debug, PartialEq, Eq)]
struct TcpEnd {
    fd_open: bool,
    /// The socket's state: what TCP_INFO reports while the fd is open, the orphan's
    /// state after close.
    state: TcpState,
    conn: Conn,
    /// sk_shutdown & RCV_SHUTDOWN.
    rcv_shut: bool,
    /// sk_shutdown & SEND_SHUTDOWN.
    snd_shut: bool,
    /// SOCK_DONE: the peer's FIN has arrived.
    fin_received: bool,
    /// sk_err: the pending socket error.
    err: Option<Errno>,
    rq: StreamQueue,
    /// Bytes read so far (not peeked, not discarded): under `network held` the
    /// receive buffer's fill, and so the window each segment advertises, follows it.
    taken: u64,
    /// Bytes written so far (where the pattern continues).
    sent: u64,
    /// Our FIN is out but the peer may still be delaying its ACK.
    fin_ack_uncertain: bool,
    /// Milliseconds slept since `fin_ack_uncertain` was set.
    fin_ack_waited_ms: u64,
    /// An orphan (fd closed) in FIN_WAIT2, or on its way there: milliseconds slept since
    /// its FIN_WAIT2 timer could have started (the close, or the FIN it sent).
    orphan_fw2_ms: Option<u64>,
    /// Milliseconds slept since a segment last arrived here while the read side was
    /// open (lwIP's pcb->tmr, which `tcp.fin_wait2_timer` counts from).
    rx_quiet_ms: u64,
    /// The FIN_WAIT2 timeout that timer runs for: tcp_fin_time, TCP_LINGER2 (1 s) or
    /// 3.5 RTOs if longer (the held wire's RTO is 1 s or more: 3.5 s).
    fw2_timeout_ms: u64,
    /// Milliseconds slept since the connection entered TIME_WAIT.
    time_wait_ms: Option<u64>,
    /// SO_LINGER {on, 0} is set.
    linger_zero: bool,
    /// SO_LINGER {on, N > 0} is set: close waits for the FIN's ACK.
    linger_wait: bool,
    /// shutdown(SHUT_RD) was called (gVisor's shutdownFlags & ShutdownRead; unlike
    /// `rcv_shut`, the peer's FIN does not set it).
    shut_rd: bool,
    /// shutdown(SHUT_WR) was called (gVisor's shutdownFlags & ShutdownWrite), perhaps
    /// before the socket connected.
    shut_wr: bool,
    /// The connection ended in error: an RST other than in CLOSE_WAIT, or an abort
    /// (gVisor's StateError, as against StateClose; Linux has CLOSE for both).
    errored: bool,
    /// SO_RCVBUF / SO_SNDBUF as set, before or after the connection was made.
    bufs: Bufs,
    /// Sizes of the peer's writes still (partly) unread here, oldest first: the
    /// segments this end's receive queue holds, which its receive memory is charged
    /// for.
    segs: VecDeque<usize>,
    /// The pending urgent mark (tp->urg_data != 0), at a stream offset of this end's
    /// receive stream.
    urg: Option<Urg>,
    /// The most SIOCOUTQ can say: bytes written (and the FIN) that the peer may not
    /// have acknowledged (write_seq - snd_una).
    outq_hi: usize,
    /// Our writes have gone past what the peer's receive queue certainly takes at once
    /// ([`TcpModel::sure_bytes`]): some of the unread bytes may still be in our send
    /// queue, or dropped and waiting for a retransmission.
    pressed: bool,
    /// Our writes have gone past what our send buffer certainly takes
    /// ([`TcpModel::sure_accepted`]): how much the next write takes, and POLLOUT, are
    /// left open.
    strained: bool,
    /// Our FIN waits in the send queue behind data the peer's window does not take yet.
    fin_held: bool,
    /// An urgent byte we wrote (its stream offset) that may wait in the send queue:
    /// its mark reaches the peer with the first held segment that leaves (each segment
    /// before snd_up carries the urgent pointer: tcp_transmit_skb).
    urg_held: Option<u64>,
    /// Our FIN reached the peer and was dropped there for want of receive memory
    /// (`tcp.bare_fin_needs_receive_memory`): the milliseconds slept since. Only the
    /// retransmission timer sends it again.
    fin_lost_ms: Option<u64>,
    /// The peer was pressed: this receive queue may hold fewer than `rq.len` bytes.
    rq_open: bool,
    /// lwIP owes the peer an ACK for data (TF_ACK_DELAY: tcp_in.c acks every second
    /// segment, the rest on its 250 ms timer, which fires only in a `sleep`); read by
    /// `tcp.abort_needs_unacked_data`.
    ack_owed: bool,
    /// The length of the segment `ack_owed` is for: the writer's send buffer still
    /// holds it (lwIP counts unacknowledged bytes against tcp_sndbuf).
    owed_len: usize,
    /// The mailbox reads of `tcp.reads_from_mailbox` (lwIP's recvmbox): what is left
    /// in it after the data.
    mbox: Mailbox,
    /// Bytes that arrived here were thrown away unread (shutdown(rd)'s drain): lwIP
    /// never gives that window back (no tcp_recved), which
    /// `tcp.full_close_resets_unread_when_open` looks at.
    unread_dropped: bool,
    /// `tcp.reads_by_pbuf`: the bytes left in each pbuf still unread here, the one
    /// at the read head first.
    pbufs: VecDeque<usize>,
    /// `tcp.reads_by_pbuf`: the pbuf at the read head was fetched by the socket (a
    /// read took part of it, or a peek looked at it): it sits in lwip_sock's lastdata,
    /// outside the mailbox.
    lastdata: bool,
    /// `tcp.inq_counts_drained`: bytes a drain of the mailbox threw away, which
    /// FIONREAD (recv_avail) still counts.
    inq_stale: usize,
    /// Some of `inq_stale` may never have arrived: the drain found the queue open
    /// (`rq_open`), part of it perhaps still in the peer's send queue.
    inq_stale_open: bool,
}

/// lwIP's receive mailbox after the data (api_msg.c recv_tcp and err_tcp post, and
/// api_lib.c netconn_recv_data_tcp takes), and its sticky error event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Mailbox {
    /// The FIN's marker was read and the read side closed: the mailbox is gone
    /// (netconn_close_shutdown RD, or shutdown(rd)).
    fin_taken: bool,
    /// The FIN's marker was taken out of the mailbox.
    fin_marker_read: bool,
    /// A full close of the netconn (shut_close in lwip_netconn_do_close_internal) let
    /// its pcb go: every later shutdown is ERR_CONN.
    pcb_released: bool,
    /// A reset's marker (lwip_netconn_err_to_msg(ERR_RST)) waits behind the rest.
    rst_marker: bool,
    /// The connection was reset (err_tcp: the netconn has no pcb any more).
    reset: bool,
    /// The socket's errevent: set by err_tcp or a full close, never cleared.
    err_event: bool,
    /// The connection ended in LAST_ACK with the netconn still reading: err_tcp got
    /// ERR_CLSD, whose pending error SO_ERROR reports as ENOTCONN and a read as EOF.
    clsd: bool,
    /// The close message err_tcp posted for an ended LAST_ACK was read: it went
    /// through handle_fin, whose NETCONN_EVT_RCVMINUS takes back err_tcp's RCVPLUS.
    clsd_read: bool,
}

impl TcpEnd {
    /// lwIP: the netconn has no pcb any more (err_tcp after a reset or the end of
    /// LAST_ACK, or an earlier full close: shut_close in
    /// lwip_netconn_do_close_internal), or the pcb is CLOSED.
    fn lost_pcb(&self) -> bool {
        self.mbox.reset || self.mbox.pcb_released || self.state == TcpState::Close
    }
}

/// An urgent mark on a receive stream (SO_OOBINLINE off).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Urg {
    /// Stream offset of the urgent byte (tp->urg_seq).
    at: u64,
    /// Taken by a `read oob` (TCP_URG_READ); it still sits in the stream until a
    /// normal read passes it.
    read: bool,
    /// The pointer may have arrived ahead of the byte, which waits in the sender's
    /// queue (TCP_URG_NOTYET): written past what the reader certainly takes.
    early: bool,
}

impl TcpEnd {
    fn established() -> TcpEnd {
        TcpEnd {
            fd_open: true,
            state: TcpState::Established,
            conn: Conn::Live,
            rcv_shut: false,
            snd_shut: false,
            fin_received: false,
            err: None,
            rq: StreamQueue::default(),
            taken: 0,
            sent: 0,
            fin_ack_uncertain: false,
            fin_ack_waited_ms: 0,
            orphan_fw2_ms: None,
            rx_quiet_ms: 0,
            fw2_timeout_ms: FIN_WAIT2_TIMEOUT_MS,
            time_wait_ms: None,
            linger_zero: false,
            linger_wait: false,
            shut_rd: false,
            shut_wr: false,
            errored: false,
            bufs: Bufs::default(),
            segs: VecDeque::new(),
            pbufs: VecDeque::new(),
            lastdata: false,
            inq_stale: 0,
            inq_stale_open: false,
            urg: None,
            outq_hi: 0,
            pressed: false,
            strained: false,
            fin_held: false,
            urg_held: None,
            fin_lost_ms: None,
            rq_open: false,
            ack_owed: false,
            owed_len: 0,
            mbox: Mailbox::default(),
            unread_dropped: false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seg {
    /// `urgent`: the last byte is urgent (the segment carries URG and the pointer).
    Data {
        offset: u64,
        len: usize,
        urgent: bool,
    },
    Fin,
    Rst,
    Ack,
    /// Data counted as sent earlier ([`TcpModel::hold`]) that reaches the peer now.
    Held,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct InFlight {
    from: End,
    seg: Seg,
    /// The sender had received the receiver's FIN when it sent this, so the segment's
    /// cumulative ACK covers that FIN.
    acks_fin: bool,
}

/// A deliberately wrong rule, switched on only to show that the property test catches
/// and shrinks a wrong model (tests/mutation.rs). Never used otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[doc(hidden)]
pub enum Mutation {
    /// An RST in CLOSE_WAIT reports ECONNRESET (Linux: EPIPE).
    ResetInCloseWaitIsEconnreset,
    /// Closing with unread data sends a FIN (Linux: RST).
    CloseWithUnreadDataSendsFin,
    /// EPIPE from a write raises no SIGPIPE.
    NoSigpipe,
    /// A read after the peer's FIN returns a pending error before EOF.
    ErrorBeforeEof,
}

impl Mutation {
    /// Looks a mutation up by its name (`NoSigpipe`).
    pub fn from_name(name: &str) -> Option<Mutation> {
        Self::ALL.into_iter().find(|m| format!("{m:?}") == name)
    }

    /// Every mutation.
    pub const ALL: [Mutation; 4] = [
        Mutation::ResetInCloseWaitIsEconnreset,
        Mutation::CloseWithUnreadDataSendsFin,
        Mutation::NoSigpipe,
        Mutation::ErrorBeforeEof,
    ];
}

/// How long after a FIN arrives in ESTABLISHED its delayed ACK has certainly left:
/// TCP_DELACK_MAX (200 ms) plus the timer wheel's slack and scheduling, with margin.
pub const FIN_ACK_DELAY_MAX_MS: u64 = 300;

/// Whether the retransmission timer of a FIN dropped at time 0 certainly, and
/// possibly, fires between `from` and `to` milliseconds (of sleep) after it. The k-th
/// firing comes between 200 * 2^(k-1) and 400 * 2^(k-1) ms: the first is the tail
/// loss probe (2 * srtt + TCP_RTO_MIN for a lone segment in flight,
/// tcp_schedule_loss_probe) or the RTO (TCP_RTO_MIN on loopback), then the RTO
/// doubles each time (tcp_retransmit_timer); the upper bounds leave room for jiffies
/// (HZ=100 on the 6.1 guest) and for the time the steps themselves take.
fn retransmission_fires(from: u64, to: u64) -> (bool, bool) {
    let (mut surely, mut maybe) = (false, false);
    let mut lo = 200u64;
    while lo <= to {
        let hi = 2 * lo;
        surely |= lo > from && hi <= to;
        maybe |= hi > from;
        lo *= 2;
    }
    (surely, maybe)
}

/// The FIN_WAIT2 timeout of an orphan: the executor sets TCP_LINGER2 to 1 s on every TCP
/// socket (tcp_fin_time; Linux and gVisor both honour it, gVisor has no tcp_fin_timeout
/// sysctl).
pub const FIN_WAIT2_TIMEOUT_MS: u64 = 1000;

/// When an orphan's FIN_WAIT2 timer has certainly fired, counted from the close (or
/// from its FIN): the timeout, plus the delayed ACK that may start the timer up to
/// TCP_DELACK_MAX (200 ms) after the FIN, plus timer slack. Between
/// [`FIN_WAIT2_TIMEOUT_MS`] and this the model cannot say; the generator's sleeps never
/// end there.
pub const FIN_WAIT2_GONE_MS: u64 = 1250;

/// The unread bytes of one direction every write up to which is certainly accepted
/// whole and queued at the reader at once (see [`TcpModel`]'s `sure_bytes`).
pub const SURE_BYTES: usize = 16384;

/// The unread writes of one direction the reader's queue certainly holds at once.
pub const SURE_SEGMENTS: usize = 16;

/// The unread bytes of one direction every write up to which an autotuned send buffer
/// certainly takes whole.
pub const SURE_ACCEPTED: usize = 1_000_000;

/// TCP_TIMEWAIT_LEN (60 s, a constant in Linux, DefaultTCPTimeWaitTimeout in gVisor),
/// with a second of margin after which TIME_WAIT has certainly ended.
pub const TIME_WAIT_GONE_MS: u64 = 61_000;

/// A model of one TCP connection between ends `a` and `b` on Linux.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpModel {
    ends: [TcpEnd; 2],
    /// The sockets' script names (the accepted side is `l` until accepted).
    names: [Sock; 2],
    wire: VecDeque<InFlight>,
    log: Vec<WireEvent>,
    profile: Profile,
    mutation: Option<Mutation>,
    /// The kernel's answer to the step being run, which settles what the model leaves
    /// open (see [`super::Hint`]).
    hint: Option<super::Hint>,
    /// lwIP's segment size on this connection (TCP_MSS 1460 over IPv4; 1440 over IPv6,
    /// tcp_eff_send_mss for its longer header): where its pbufs and delayed ACKs fall.
    mss: usize,
    /// Other ways the step being run may have gone (a segment that left or waited in
    /// the send queue), for [`super::alternatives`] to keep until the kernel's answers
    /// tell them apart.
    forks: Vec<TcpModel>,
    /// Under `network held`: the segments in flight and the sequence spaces (see
    /// [`held`]); `None` under `network instant`.
    held: Option<Box<held::HeldWire>>,
}

impl Default for TcpModel {
    fn default() -> Self {
        Self::new()
    }
}

impl TcpModel {
    /// Both ends ESTABLISHED with nothing queued: the state right after accept, on Linux.
    pub fn new() -> TcpModel {
        TcpModel::with_profile(Profile::linux())
    }

    /// The same, as `profile`'s platform behaves.
    pub fn with_profile(profile: Profile) -> TcpModel {
        TcpModel {
            ends: [TcpEnd::established(), TcpEnd::established()],
            names: [Sock::A, Sock::B],
            wire: VecDeque::new(),
            log: Vec::new(),
            profile,
            mutation: None,
            hint: None,
            forks: Vec::new(),
            held: None,
            mss: 1460,
        }
    }

    /// This model with lwIP's segment size for IPv6 (see `mss`).
    pub fn over_ipv6(mut self) -> TcpModel {
        self.mss = 1440;
        self
    }

    /// This model with one deliberately wrong rule (for tests/mutation.rs only).
    #[doc(hidden)]
    pub fn with_mutation(mut self, m: Mutation) -> TcpModel {
        self.mutation = Some(m);
        self
    }

    fn mutated(&self, m: Mutation) -> bool {
        self.mutation == Some(m)
    }

    fn end(&mut self, e: End) -> &mut TcpEnd {
        &mut self.ends[e.index()]
    }

    /// Runs one call on `end`, then delivers everything in flight (Linux loopback
    /// delivers a segment inside the syscall that sends it: the softirq runs before it
    /// returns); returns the result and the segments sent.
    pub fn run(&mut self, end: End, op: Op) -> (StepResult, Vec<WireEvent>) {
        self.log.clear();
        let r = self.drive(end, op);
        (r, std::mem::take(&mut self.log))
    }

    fn send(&mut self, from: End, seg: Seg, note: &'static str) {
        if self.held.is_some() {
            return self.hold_segment(from, seg, note);
        }
        let acks_fin = self.ends[from.index()].fin_received;
        self.ends[from.index()].ack_owed = false;
        let kind = match seg {
            Seg::Data { len, .. } => SegmentKind::Data(len),
            Seg::Fin => SegmentKind::Fin,
            Seg::Rst => SegmentKind::Rst,
            Seg::Ack => SegmentKind::Ack,
            Seg::Held => SegmentKind::Data(0),
        };
        self.log.push(WireEvent {
            from: self.names[from.index()],
            to: self.names[from.peer().index()],
            kind,
            note,
        });
        self.wire.push_back(InFlight {
            from,
            seg,
            acks_fin,
        });
    }

    fn call(&mut self, x: End, op: Op) -> StepResult {
        let r = self.call_op(x, op);
        self.fork_departures();
        r
    }

    fn call_op(&mut self, x: End, op: Op) -> StepResult {
        if self.ends[x.index()].state == TcpState::SynSent {
            if let Some(r) = self.syn_sent_call(x, op) {
                return r;
            }
        }
        match op {
            Op::Write(n) => self.write(x, n as usize, false),
            // MSG_NOSIGNAL: sk_stream_error skips send_sig; the result is the same.
            Op::WriteNoSignal(n) => StepResult {
                sigpipe: false,
                ..self.write(x, n as usize, false)
            },
            // MSG_OOB: tcp_sendmsg_locked as any write, then tcp_mark_urg makes the last
            // byte sent urgent (snd_up = write_seq).
            Op::WriteOob(n) => self.write(x, n as usize, true),
            Op::Read(n) => StepResult::plain(self.read(x, n as usize, false)),
            Op::Peek(n) => StepResult::plain(self.read(x, n as usize, true)),
            Op::ReadOob(n) => StepResult::plain(self.read_urgent(x, n as usize)),
            Op::Inq => StepResult::plain(self.inq(x)),
            // tcp_ioctl SIOCOUTQ: write_seq - snd_una, the bytes (and FIN) not yet
            // acknowledged; whether the peer's delayed ACK has left is not tracked, so
            // anything from 0 to what may be unacknowledged.
            // lwIP's lwip_ioctl knows FIONREAD and FIONBIO only.
            Op::Outq if self.profile.tcp.outq_enosys => {
                StepResult::plain(Outcome::Err(Errno::ENOSYS))
            }
            Op::Outq if self.profile.tcp.outq_unsupported => {
                StepResult::plain(Outcome::Err(Errno::ENOPROTOOPT))
            }
            // Held: every ACK is followed, so the count is exact.
            Op::Outq if self.held.is_some() => {
                StepResult::plain(Outcome::Queued(self.held_outq(x)))
            }
            Op::Outq => StepResult::plain(match self.ends[x.index()].outq_hi {
                0 => Outcome::Queued(0),
                hi => Outcome::QueuedBetween { lo: 0, hi },
            }),
            // sk_setsockopt: SO_SNDBUF takes effect at the next allocation, SO_RCVBUF
            // at the next window; the window agreed at connect time stays.
            Op::RcvBuf(v) => {
                let e = self.end(x);
                e.bufs.rcvbuf = Some(v);
                StepResult::plain(Outcome::Ok)
            }
            Op::SndBuf(v) => {
                let e = self.end(x);
                e.bufs.sndbuf = Some(v);
                // What is queued or unacknowledged may now be past two thirds of the
                // smaller buffer: POLLOUT is left open.
                e.strained |= e.outq_hi > 0;
                StepResult::plain(Outcome::Ok)
            }
            Op::Shutdown(how) => StepResult::plain(self.shutdown(x, how)),
            Op::Close => StepResult::plain(self.close(x)),
            Op::Abort => {
                self.end(x).linger_zero = true;
                StepResult::plain(self.close(x))
            }
            Op::Poll => StepResult::plain(Outcome::Poll(self.poll(x))),
            // SO_ERROR returns sk_err and clears it (sock_error in net/core/sock.c).
            Op::Error => StepResult::plain(Outcome::SockError(self.end(x).err.take())),
            Op::State => StepResult::plain(Outcome::State(self.state_view(x))),
            // lwIP's lwip_netconn_do_connect: a netconn without its pcb is ERR_CLSD.
            Op::Connect if self.profile.tcp.connect_by_pcb && self.ends[x.index()].lost_pcb() => {
                StepResult::plain(Outcome::Err(Errno::ENOTCONN))
            }
            // __inet_stream_connect: a socket in SS_CONNECTED (which it stays after a
            // reset or a close handshake) is EISCONN; so is lwIP's pcb past CLOSED
            // (tcp_connect).
            Op::Connect => StepResult::plain(Outcome::Err(Errno::EISCONN)),
            // inet_csk_accept on anything but a listener (never reached: the world
            // makes accept a call on the listener).
            Op::Accept => StepResult::plain(Outcome::Err(Errno::EINVAL)),
            Op::Linger(secs) => {
                let e = self.end(x);
                e.linger_zero = secs == 0;
                e.linger_wait = secs > 0;
                StepResult::plain(Outcome::Ok)
            }
        }
    }

    fn write(&mut self, x: End, n: usize, urgent: bool) -> StepResult {
        let no_sigpipe = self.mutated(Mutation::NoSigpipe) || !self.profile.sigpipe_on_epipe;
        let clears_error = self.profile.tcp.failed_write_clears_error;
        let e = self.end(x);
        // tcp_sendmsg_locked: outside ESTABLISHED and CLOSE_WAIT, sk_stream_wait_connect
        // returns the pending error if there is one, else EPIPE; with SEND_SHUTDOWN or
        // sk_err set it fails the same way. sk_stream_error then turns EPIPE into
        // SIGPIPE (no MSG_NOSIGNAL). RFC 9293 3.10.2: SEND in FIN-WAIT/CLOSING/LAST-ACK/
        // TIME-WAIT is "connection closing"; Linux says EPIPE.
        if !matches!(e.state, TcpState::Established | TcpState::CloseWait)
            || e.snd_shut
            || e.err.is_some()
        {
            // gVisor (isEndpointWritableLocked in tcp/endpoint.go) takes the pending
            // error only in StateError; a connection closed without error (StateClose:
            // after an RST in CLOSE_WAIT) fails with ErrClosedForSend, EPIPE, and leaves
            // the error for SO_ERROR.
            let takes = e.errored || clears_error;
            // lwIP's tcp_write (tcp_out.c tcp_write_checks) refuses every state but
            // ESTABLISHED, CLOSE_WAIT and the handshake with ERR_CONN: ENOTCONN.
            let closed = if self.profile.tcp.closed_write_enotconn {
                Errno::ENOTCONN
            } else {
                Errno::EPIPE
            };
            let e = self.end(x);
            let err = takes.then(|| e.err.take()).flatten().unwrap_or(closed);
            return StepResult {
                outcome: Outcome::Err(err),
                sigpipe: err == Errno::EPIPE && !no_sigpipe,
            };
        }
        if n == 0 {
            // Nothing copied: no segment, and no urgent mark (tcp_push is not reached).
            return StepResult::plain(Outcome::Wrote(0));
        }
        let y = x.peer();
        let unread = self.ends[y.index()].rq.len;
        let segs = self.ends[y.index()].segs.len();
        let (sure, sure_segs) = (self.sure_bytes(x), self.sure_segments(x));
        let (pressed, strained) = {
            let e = &self.ends[x.index()];
            (e.pressed, e.strained)
        };
        let accepted = self.sure_accepted(x);
        let (outcome, k) =
            if !strained && unread + n <= accepted && segs < self.sure_accepted_segments(x) {
                (Outcome::Wrote(n), n)
            } else {
                // Past what the send buffer certainly takes: tcp_sendmsg_locked stops when
                // sk_wmem_queued (unsent and unacknowledged skbs, truesize) reaches
                // sk_sndbuf, and how far the window and the delayed ACKs let it go is not
                // tracked: from what certainly fits (nothing once strained: EAGAIN) to all.
                let lo = if strained {
                    0
                } else {
                    accepted.saturating_sub(unread).min(n)
                };
                let k = match self.hint.as_ref().and_then(|h| h.count()) {
                    Some(c) if c >= lo && c <= n => c,
                    _ => lo,
                };
                self.end(x).strained = true;
                (Outcome::WroteBetween { lo, hi: n }, k)
            };
        if pressed || segs >= sure_segs || unread + k > sure {
            // Past what the reader's queue certainly holds: some of it may wait in
            // our send queue, or have been dropped for a retransmission.
            self.end(x).pressed = true;
            self.end(y).rq_open = true;
        }
        if k > 0 {
            let e = self.end(x);
            let offset = e.sent;
            e.sent += k as u64;
            e.outq_hi += k;
            // TCP_NODELAY is set, so the data leaves at once (RFC 9293 3.7.4 lets Nagle
            // hold it; the executor turns Nagle off, see exec::Pair::connect).
            let note = if urgent {
                "write oob: the last byte is urgent (tcp_mark_urg, RFC 9293 3.8.5)"
            } else {
                "write"
            };
            let seg = Seg::Data {
                offset,
                len: k,
                urgent,
            };
            if self.ends[x.index()].pressed {
                // Past what the peer certainly takes, the segment may leave now or wait
                // in the send queue for the window: the kernel's views after the step
                // (an ACK of a FIN it carries, an RST it draws) tell which.
                let mut sent = self.clone();
                sent.send(x, seg, note);
                sent.deliver_all();
                self.hold(x, k);
                if urgent {
                    self.end(x).urg_held = Some(offset + k as u64 - 1);
                }
                self.fork(sent);
            } else {
                self.send(x, seg, note);
            }
        }
        StepResult::plain(outcome)
    }

    /// Bytes of `x` that wait in its send queue: counted as unread by the peer (they
    /// are on their way), with none of a segment's effects.
    fn hold(&mut self, x: End, k: usize) {
        self.log.push(WireEvent {
            from: self.names[x.index()],
            to: self.names[x.peer().index()],
            kind: SegmentKind::Data(k),
            note: "written past what the peer certainly takes: it may wait in the send queue for the window",
        });
        let drops_on_shutdown = self.profile.tcp.shutdown_rd_drops_data;
        let y = self.end(x.peer());
        let reads_on = match y.state {
            TcpState::Established => true,
            TcpState::FinWait1 | TcpState::FinWait2 => !y.rcv_shut,
            _ => false,
        };
        // lwIP's drained reader (tcp.shutdown_rd_drops_data) never queues it: when it
        // leaves, it aborts the connection.
        let drained = drops_on_shutdown && y.shut_rd;
        if y.conn == Conn::Live && reads_on && !drained {
            y.rq.push(k);
            y.segs.push_back(k);
            y.rq_open = true;
            self.push_pbufs(x.peer(), k);
        }
    }

    /// The step may also have gone as `other`: kept as an alternative (see
    /// [`super::alternatives`], which also drops the copies of earlier ones it carries).
    fn fork(&mut self, mut other: TcpModel) {
        self.forks.extend(other.take_forks());
        self.forks.push(other);
    }

    /// Takes the alternatives the last step left.
    pub fn take_forks(&mut self) -> Vec<TcpModel> {
        std::mem::take(&mut self.forks)
    }

    /// The unread bytes of `x`'s stream that the peer's receive queue certainly takes
    /// at once, so that every write up to them is accepted whole and readable at once.
    /// Measured on Linux 6.18 loopback (notes/buffers): the receive queue stops taking
    /// segments at about 34 small ones (default buffers), 16 (SO_RCVBUF 4096), and
    /// bytes at half the window (rcvbuf / 4 of the doubled value); a small SO_SNDBUF
    /// stops the writer while its segments wait for delayed ACKs (13 one-byte writes
    /// with SO_SNDBUF 4096). Half of each, as a margin. A receive buffer made smaller
    /// on the connected socket keeps the window already advertised but not the memory,
    /// which the same bounds cover (measured: 34 small segments, or 8,192 bytes in
    /// 4,096-byte writes, with SO_RCVBUF 4096 set after connecting).
    fn sure_bytes(&self, x: End) -> usize {
        let (w, r) = (&self.ends[x.index()], &self.ends[x.peer().index()]);
        if let Some(b) = self.profile.tcp.fixed_buffers {
            // smoltcp advertises its free receive buffer (rounded down to the window
            // scale, a byte here) but sends a window update only once the window has
            // doubled (Socket::window_to_update): up to half a buffer read since the
            // last ACK may be unknown to the writer.
            return b as usize / 2 - 1;
        }
        let mut sure = SURE_BYTES;
        if let Some(rb) = r.bufs.rcvbuf {
            sure = sure.min(rb as usize / 2);
        }
        if let Some(sb) = w.bufs.sndbuf {
            sure = sure.min(sb as usize / 2);
        }
        sure
    }

    /// The unread bytes of `x`'s stream every write up to which its send buffer
    /// certainly takes whole: with an autotuned send buffer (none set), a million
    /// (measured: one write of 1,000,000 bytes, or 4,000 small ones, all taken whole on
    /// loopback, with any receive buffer); with a small SO_SNDBUF, unacknowledged
    /// segments fill it (see [`TcpModel::sure_bytes`]).
    fn sure_accepted(&self, x: End) -> usize {
        let (w, r) = (&self.ends[x.index()], &self.ends[x.peer().index()]);
        // Data the peer does not take draws an RST, which the writer sees in the middle
        // of a long write (its backlog is processed every 16 skbs) and stops there.
        let peer_takes = r.conn == Conn::Live
            && match r.state {
                TcpState::Established => true,
                TcpState::FinWait1 | TcpState::FinWait2 => !r.rcv_shut,
                _ => false,
            };
        if let Some(b) = self.profile.tcp.fixed_buffers {
            // smoltcp's send_slice takes what its send buffer has free; the segments
            // leave at the next poll, after the call. lwIP's tcp_sndbuf also counts
            // a segment whose ACK the peer delays (and a window update on a read may
            // have freed it: not tracked, so past this the write is a range).
            let owed = if r.ack_owed { r.owed_len } else { 0 };
            return b as usize - owed;
        }
        match w.bufs.sndbuf {
            None if peer_takes => SURE_ACCEPTED,
            None => SURE_BYTES,
            Some(sb) => SURE_BYTES.min(sb as usize / 2),
        }
    }

    /// The unread writes of `x` its send buffer certainly takes.
    fn sure_accepted_segments(&self, x: End) -> usize {
        match self.ends[x.index()].bufs.sndbuf {
            None => usize::MAX,
            Some(sb) => sb as usize / 1024,
        }
    }

    /// The unread writes of `x` the peer's queue certainly holds (see
    /// [`TcpModel::sure_bytes`]).
    fn sure_segments(&self, x: End) -> usize {
        let (w, r) = (&self.ends[x.index()], &self.ends[x.peer().index()]);
        let mut sure = SURE_SEGMENTS;
        if r.bufs.rcvbuf.is_some() {
            sure = sure.min(SURE_SEGMENTS / 2);
        }
        if let Some(sb) = w.bufs.sndbuf {
            sure = sure.min(sb as usize / 1024);
        }
        sure
    }

    /// The peer's writes unread here have all been read: whatever it held back has
    /// arrived, and a FIN held behind them follows.
    fn drained(&mut self, y: End) {
        let x = y.peer();
        self.end(y).rq_open = false;
        self.end(x).pressed = false;
        self.end(x).strained = false;
        // Arrived, unobserved: the mark's moment is not known; forgotten.
        self.end(x).urg_held = None;
        if std::mem::take(&mut self.end(x).fin_held) && self.ends[x.index()].conn == Conn::Live {
            self.send_held_fin(
                x,
                "the FIN queued behind the data leaves once the window takes the rest",
            );
        }
    }

    /// A FIN that waited behind data leaves (where the profile keeps the state until
    /// then, the state changes now).
    fn send_held_fin(&mut self, x: End, why: &'static str) {
        let keeps = self.profile.tcp.queued_fin_keeps_state;
        let e = self.end(x);
        e.fin_held = false;
        if keeps {
            e.state = match e.state {
                TcpState::Established => TcpState::FinWait1,
                TcpState::CloseWait => TcpState::LastAck,
                s => s,
            };
        }
        self.send(x, Seg::Fin, why);
    }

    /// Data (and a FIN behind it) waiting in a pressed sender's queue may have left
    /// during this step, as the window opened: kept as alternatives.
    fn fork_departures(&mut self) {
        for x in End::BOTH {
            if !self.ends[x.index()].pressed || self.ends[x.index()].conn != Conn::Live {
                continue;
            }
            let mut keep = self.clone();
            keep.deliver_all();
            let mut arrives = keep.clone();
            arrives.send(
                x,
                Seg::Held,
                "data waiting in the send queue leaves: the window opened",
            );
            arrives.deliver_all();
            let fin = keep.ends[x.index()].fin_held;
            // Linux was also seen to deliver a held FIN to an end shut for reading
            // with no RST for the data before it (the data had arrived already, and
            // only the FIN waited): kept as one more way.
            let mut with_fin = keep.clone();
            if fin {
                with_fin.send_held_fin(
                    x,
                    "the FIN queued behind the data leaves: the window took the rest",
                );
                with_fin.deliver_all();
            }
            let whole = self.departed_whole(&arrives, x);
            *self = keep;
            if arrives != *self {
                self.fork(arrives);
            }
            if fin {
                self.fork(with_fin);
            }
            for w in whole {
                self.fork(w);
            }
        }
    }

    /// `tcp.abort_needs_unacked_data`: lwIP's abort looks at what is unsent, so the
    /// way in which everything `x` held back left (the window took the rest whole,
    /// tcp_output) is kept as ways of their own: `x` has nothing unsent, the peer's
    /// queue is exact, and the peer owes an ACK or not (tcp_in.c's tcp_ack: every
    /// second segment is ACKed at once, and how many segments the rest made is not
    /// tracked). The owed segment is taken as a whole one, the most it can be.
    fn departed_whole(&self, arrives: &TcpModel, x: End) -> Vec<TcpModel> {
        let y = x.peer();
        if !self.profile.tcp.abort_needs_unacked_data
            || !arrives.ends[x.index()].pressed
            || arrives.ends[x.index()].conn != Conn::Live
            || arrives.ends[y.index()].conn != Conn::Live
        {
            return vec![];
        }
        [false, true]
            .into_iter()
            .map(|owed| {
                let mut w = arrives.clone();
                w.end(y).ack_owed = owed;
                w.end(y).owed_len = if owed { w.mss } else { 0 };
                w.drained(y);
                w.deliver_all();
                w
            })
            .collect()
    }

    /// A read; with `peek` (MSG_PEEK) queued data is copied and left queued, and
    /// everything else is as a read: tcp_recvmsg_locked takes a pending error
    /// (sock_error) with or without MSG_PEEK. Where the peer was pressed, how much of
    /// the unread data is in the queue is left open, and settled by the kernel's
    /// answer: some of it (a read never returns more than its queue held when it
    /// began, though the window update it sends refills the queue within the call), or
    /// none, when what the queue gives empty follows (EAGAIN while the rest is on its
    /// way; the peer's reset, when its RST threw the rest away).
    fn read(&mut self, x: End, n: usize, peek: bool) -> Outcome {
        let e = &self.ends[x.index()];
        if !e.rq_open || e.rq.is_empty() || n == 0 {
            return self.read_exact(x, n, peek);
        }
        let full = self.clone().read_exact(x, n, peek);
        let empty = {
            let mut m = self.clone();
            m.clear_queue(x);
            m.read_exact(x, n, peek)
        };
        let predicted = match &full {
            Outcome::Data(d) if !d.is_empty() => Outcome::DataPrefix {
                bytes: d.clone(),
                lo: 1,
            },
            other => other.clone(),
        };
        match self.hint.as_ref().map(|h| h.count()) {
            Some(Some(k)) if k >= 1 => {
                self.read_exact(x, k.min(n), peek);
                if k < n && !peek && self.profile.tcp.reads_from_mailbox {
                    // lwIP's read came back short: its mailbox had no more (the rest
                    // is still in the writer's queue), and lwip_recv_tcp's extra fetch
                    // took the next message.
                    Self::fetch_after_data(self.end(x));
                }
            }
            Some(_) => {
                let got = self.hint.as_ref().map(|h| h.result.clone());
                // EAGAIN, or end of file from our own shutdown(rd) (no window update
                // goes out then, tcp_cleanup_rbuf): the rest is still on its way. An
                // error is the reset that threw it away.
                let on_its_way = !matches!(empty, Outcome::Err(e) if e != Errno::EAGAIN);
                if got.is_some_and(|g| full.admits(&g.outcome)) {
                    // What was there gave this (an urgent byte skipped, say).
                    self.read_exact(x, n, peek);
                } else if !on_its_way {
                    self.clear_queue(x);
                    self.read_exact(x, n, peek);
                }
            }
            None => {
                self.read_exact(x, n, peek);
            }
        }
        if predicted == empty {
            predicted
        } else {
            Outcome::Either(Box::new(predicted), Box::new(empty))
        }
    }

    /// Forgets what is queued for `x` to read (the peer's reset threw it away).
    fn clear_queue(&mut self, x: End) {
        let e = self.end(x);
        e.rq.discard();
        e.segs.clear();
        e.urg = None;
        e.rq_open = false;
        self.end(x.peer()).pressed = false;
        self.end(x.peer()).strained = false;
        self.end(x.peer()).urg_held = None;
    }

    /// Takes `k` bytes off the front of `x`'s queue, with its segment sizes.
    fn consume(e: &mut TcpEnd, k: usize) {
        e.taken += k as u64;
        e.rq.start += k as u64;
        e.rq.len -= k;
        let mut left = k;
        while left > 0 {
            let Some(front) = e.segs.front_mut() else {
                break;
            };
            let c = left.min(*front);
            *front -= c;
            left -= c;
            if *front == 0 {
                e.segs.pop_front();
            }
        }
        // lwip_recv_tcp takes whole pbufs, and keeps the rest of the last one it began
        // in lastdata.
        let mut left = k;
        while left > 0 {
            let Some(front) = e.pbufs.front_mut() else {
                break;
            };
            let c = left.min(*front);
            *front -= c;
            left -= c;
            e.lastdata = *front > 0;
            if *front == 0 {
                e.pbufs.pop_front();
            }
        }
    }

    /// lwIP's receiver gets a write of `len` bytes as pbufs of one segment each.
    fn push_pbufs(&mut self, y: End, len: usize) {
        if !self.profile.tcp.reads_by_pbuf {
            return;
        }
        let mss = self.mss;
        let e = self.end(y);
        let mut left = len;
        while left > 0 {
            let k = left.min(mss);
            e.pbufs.push_back(k);
            left -= k;
        }
    }

    /// `read N oob`: tcp_recv_urg, after tcp_recvmsg_locked's listener check (the
    /// world's): no urgent byte, or one already taken, is EINVAL ("Yes this is right
    /// !"); a connection reset before any FIN is ENOTCONN; else the urgent byte, which
    /// stays in the stream for normal reads to skip.
    fn read_urgent(&mut self, x: End, n: usize) -> Outcome {
        let writer = self.names[x.peer().index()];
        let e = self.end(x);
        let Some(u) = e.urg.filter(|u| !u.read) else {
            return Outcome::Err(Errno::EINVAL);
        };
        if e.state == TcpState::Close && !e.fin_received {
            return Outcome::Err(Errno::ENOTCONN);
        }
        let byte = Outcome::Data(pattern(writer, u.at, n.min(1)));
        // TCP_URG_NOTYET: 0 once nothing more can come, else EAGAIN.
        let not_yet = if e.state == TcpState::Close || e.rcv_shut {
            Outcome::Eof
        } else {
            Outcome::Err(Errno::EAGAIN)
        };
        if u.early && self.held.is_some() {
            // Under held the model knows: the pointer came, the byte has not.
            return not_yet;
        }
        let e = self.end(x);
        if u.early && e.rq_open {
            let arrived = match self.hint.as_ref().map(|h| h.result.clone()) {
                Some(r) => matches!(r.outcome, Outcome::Data(_)),
                None => true,
            };
            if arrived && n > 0 {
                self.end(x).urg = Some(Urg {
                    read: true,
                    early: false,
                    ..u
                });
            }
            return Outcome::Either(Box::new(byte), Box::new(not_yet));
        }
        e.urg = Some(Urg { read: true, ..u });
        byte
    }

    /// SIOCINQ: tcp_inq, the unread bytes less the FIN's sequence number; while an
    /// urgent mark waits in the queue, only the bytes before it.
    fn inq(&self, x: End) -> Outcome {
        let e = &self.ends[x.index()];
        if e.inq_stale_open {
            return Outcome::QueuedBetween {
                lo: if e.rq_open { 0 } else { e.rq.len },
                hi: e.rq.len + e.inq_stale,
            };
        }
        if e.rq_open && !e.rq.is_empty() {
            return Outcome::QueuedBetween {
                lo: e.inq_stale,
                hi: e.rq.len + e.inq_stale,
            };
        }
        match e.urg {
            Some(u) if u.at >= e.rq.start && u.at < e.rq.start + e.rq.len as u64 => {
                Outcome::Queued((u.at - e.rq.start) as usize)
            }
            _ => Outcome::Queued(e.rq.len + e.inq_stale),
        }
    }

    fn read_exact(&mut self, x: End, n: usize, peek: bool) -> Outcome {
        let writer = self.names[x.peer().index()];
        let error_first = self.mutated(Mutation::ErrorBeforeEof);
        let errored_first = self.profile.tcp.read_error_before_eof;
        let no_fin_enotconn = self.profile.tcp.read_without_fin_enotconn;
        let zero_at_once = self.profile.tcp.zero_length_read_at_once;
        let mailbox = self.profile.tcp.reads_from_mailbox;
        let by_pbuf = self.profile.tcp.reads_by_pbuf;
        let drops_on_shutdown = self.profile.tcp.shutdown_rd_drops_data;
        let e = self.end(x);
        // smoltcp's recv_slice: recv_error_check (may_recv: ESTABLISHED or FIN_WAIT, or
        // data queued) comes before the length, so a zero-length read of an open
        // receive half is 0 bytes at once; otherwise it falls through to the FIN
        // (Finished) and the rest below.
        if n == 0
            && zero_at_once
            && matches!(
                e.state,
                TcpState::Established | TcpState::FinWait1 | TcpState::FinWait2
            )
        {
            return Outcome::Data(Vec::new());
        }
        // tcp_recvmsg_locked copies queued data first, whatever the state: data that
        // arrived before a FIN or even an RST stays readable (tcp_reset purges only the
        // write queue). An urgent mark stops a read that has copied anything before it;
        // a read that starts at it skips the urgent byte (urg_hole) and goes on.
        if n == 0 && !e.rq.is_empty() {
            return Outcome::Data(Vec::new());
        }
        if !e.rq.is_empty() {
            let (start, len) = (e.rq.start, e.rq.len);
            let mark = e
                .urg
                .map(|u| u.at)
                .filter(|&at| at >= start && at < start + len as u64);
            let (skip, mut limit) = match mark {
                Some(at) if at == start => (1, n.min(len - 1)),
                Some(at) => (0, n.min((at - start) as usize)),
                None => (0, n.min(len)),
            };
            // lwip_recv_tcp's loop stops after one pbuf when peeking, and keeps that
            // pbuf in lastdata.
            if peek && by_pbuf {
                if let Some(&head) = e.pbufs.front() {
                    limit = limit.min(head);
                    e.lastdata = true;
                }
            }
            if limit > 0 {
                let data = pattern(writer, start + skip as u64, limit);
                if !peek {
                    Self::consume(e, skip + limit);
                    if skip > 0 {
                        e.urg = None;
                    }
                    if mailbox && limit < n && e.rq.is_empty() {
                        Self::fetch_after_data(e);
                    }
                    // After lwIP's drain (tcp.shutdown_rd_drops_data) what is read is
                    // lastdata: what the writer still holds has not come any nearer.
                    let drained_early = drops_on_shutdown && e.shut_rd;
                    if e.rq.is_empty() && !drained_early {
                        self.drained(x);
                    }
                }
                return Outcome::Data(data);
            }
            // Only the urgent byte: skipped, and then nothing is left to read.
            if !peek {
                Self::consume(e, skip);
                e.urg = None;
                if self.ends[x.index()].rq.is_empty() {
                    self.drained(x);
                }
            }
        }
        let e = self.end(x);
        if mailbox {
            return Self::read_mailbox(e);
        }
        // Then, in this order: SOCK_DONE (FIN seen) gives EOF even with an error
        // pending; a pending error is returned and cleared; RCV_SHUTDOWN gives EOF;
        // CLOSE without any of those is ENOTCONN; otherwise there is nothing yet.
        if error_first && e.err.is_some() {
            return Outcome::Err(e.err.take().unwrap_or(Errno::EIO));
        }
        // gVisor (checkReadLocked in tcp/endpoint.go): in StateError with nothing
        // queued, the hard error comes first, FIN or not; then ErrClosedForReceive (EOF).
        if errored_first && e.errored {
            if let Some(err) = e.err.take() {
                return Outcome::Err(err);
            }
        }
        if e.fin_received {
            Outcome::Eof
        } else if let Some(err) = e.err.take() {
            Outcome::Err(err)
        } else if no_fin_enotconn && e.state == TcpState::Close {
            // smoltcp's recv_error_check: not ESTABLISHED or FIN_WAIT and nothing
            // queued is Finished only if a FIN came (rx_fin_received), else
            // InvalidState, which the executor reports as ENOTCONN.
            Outcome::Err(Errno::ENOTCONN)
        } else if e.rcv_shut {
            Outcome::Eof
        } else if e.state == TcpState::Close {
            Outcome::Err(Errno::ENOTCONN)
        } else {
            Outcome::Err(Errno::EAGAIN)
        }
    }

    /// lwip_recv_tcp took all the data and wants more: it fetches once more without
    /// waiting (NETCONN_DONTBLOCK | NETCONN_NOFIN) and returns the data whatever that
    /// fetch says. A FIN or a close message is put back (NETCONN_FIN_RX_PENDING); a
    /// reset's marker is taken (its error stays pending); an empty mailbox makes
    /// netconn_recv_data take the pending error (netconn_err), which is lost.
    fn fetch_after_data(e: &mut TcpEnd) {
        if e.mbox.fin_taken || (e.fin_received && !e.mbox.fin_marker_read) {
            return;
        }
        if e.mbox.rst_marker {
            if !e.mbox.clsd {
                e.mbox.rst_marker = false;
            }
            return;
        }
        e.err = None;
    }

    /// A read with no data left, from lwIP's mailbox (`tcp.reads_from_mailbox`):
    /// netconn_recv_data_tcp and netconn_recv_data (api_lib.c).
    fn read_mailbox(e: &mut TcpEnd) -> Outcome {
        if e.mbox.fin_taken {
            // The mailbox is gone: "calling this function more than once *after*
            // receiving FIN" is ERR_CONN, whatever error is pending.
            return Outcome::Err(Errno::ENOTCONN);
        }
        if e.fin_received && !e.mbox.fin_marker_read {
            // The FIN's marker (handle_fin): when a reset has taken the pcb since, the
            // pending error, else ERR_RST, and the mailbox stays; EOF otherwise, and the
            // read side is shut and the mailbox gone.
            e.mbox.fin_marker_read = true;
            if e.mbox.reset {
                return Self::pending_or(e, Errno::ECONNRESET);
            }
            e.mbox.fin_taken = true;
            // netconn_close_shutdown(SHUT_RD) closes the netconn in CLOSING (shut_close).
            if e.state == TcpState::Closing {
                e.mbox.pcb_released = true;
                e.mbox.err_event = true;
            }
            return Outcome::Eof;
        }
        if e.mbox.rst_marker {
            e.mbox.rst_marker = false;
            // A close message goes through handle_fin as the FIN's marker does.
            if e.mbox.clsd {
                e.mbox.clsd_read = true;
                return Self::pending_or(e, Errno::ECONNRESET);
            }
            return Outcome::Err(Errno::ECONNRESET);
        }
        if e.mbox.reset {
            // MBOXCLOSED and empty: the pending error once, then ERR_CONN.
            return Self::pending_or(e, Errno::ENOTCONN);
        }
        Outcome::Err(Errno::EAGAIN)
    }

    /// The pending error a read takes (netconn_err), else `otherwise`; ERR_CLSD
    /// (ENOTCONN from an ended LAST_ACK) reads as EOF (lwip_recv_tcp returns 0).
    fn pending_or(e: &mut TcpEnd, otherwise: Errno) -> Outcome {
        match e.err.take() {
            Some(Errno::ENOTCONN) if e.mbox.clsd => Outcome::Eof,
            Some(err) => Outcome::Err(err),
            None => Outcome::Err(otherwise),
        }
    }

    fn shutdown(&mut self, x: End, how: Shut) -> Outcome {
        // As close_now's: our data unsent, or the peer's ACK owed.
        let unacked = self.ends[x.peer().index()].ack_owed
            || self.ends[x.index()].pressed
            || self.ends[x.index()].fin_held;
        let unread_resets = self.profile.tcp.shutdown_with_unread_resets;
        let deferred = self.profile.tcp.unconnected_shutdown_deferred;
        let tcp = self.profile.tcp;
        let e = self.end(x);
        // lwIP's lwip_netconn_do_close_internal (api_msg.c): a connection whose
        // netconn has no pcb any more (reset, or closed by an earlier full shutdown)
        // is ERR_CONN; so is shutdown(wr) after the FIN (tcp_shutdown: only SYN_RCVD,
        // ESTABLISHED and CLOSE_WAIT can still send one).
        // A pcb in TIME_WAIT (or LAST_ACK) that the netconn still holds takes a
        // shutdown(rd) (tcp_shutdown only sets TF_RXCLOSED), and then a shutdown(wr),
        // which is a full close (tcp_close) in every state.
        if tcp.shutdown_wr_after_fin_enotconn
            && (e.lost_pcb()
                || (how == Shut::Wr
                    && !(e.shut_rd || e.mbox.fin_taken)
                    && !matches!(e.state, TcpState::Established | TcpState::CloseWait)))
        {
            return Outcome::Err(Errno::ENOTCONN);
        }
        if tcp.shutdown_rd_drops_data && how.reads() {
            // netconn_drain: the mailbox and what it holds are gone (TF_RXCLOSED); a
            // pbuf the socket keeps in lastdata is not in it (tcp.reads_by_pbuf), and
            // recv_avail is not lowered (tcp.inq_counts_drained).
            e.mbox.fin_taken = true;
            let kept = match e.pbufs.front() {
                Some(&head) if tcp.reads_by_pbuf && e.lastdata => head.min(e.rq.len),
                _ => 0,
            };
            let dropped = e.rq.len - kept;
            // What lastdata keeps can still be read (and given back, tcp_recved).
            e.unread_dropped |= dropped > 0;
            if tcp.inq_counts_drained {
                e.inq_stale += dropped;
                e.inq_stale_open |= e.rq_open && dropped > 0;
            }
            e.rq.len = kept;
            e.pbufs.truncate(usize::from(kept > 0));
            e.segs.clear();
            if kept > 0 {
                e.segs.push_back(kept);
            }
            e.urg = None;
            e.rq_open = false;
        }
        // A shutdown that leaves both directions shut is a close for lwIP's netconn
        // (shut_close): it raises the socket's error event.
        // (lwIP's read side is also closed once EOF was read: TF_RXCLOSED.)
        // shut_close: both directions at once, the read side in FIN_WAIT_1, FIN_WAIT_2
        // or CLOSING, or the write side once TF_RXCLOSED is set.
        let shut_close = how == Shut::RdWr
            || (how.reads()
                && matches!(
                    e.state,
                    TcpState::FinWait1 | TcpState::FinWait2 | TcpState::Closing
                ))
            || (how.writes() && (e.shut_rd || e.mbox.fin_taken));
        if shut_close {
            e.mbox.pcb_released = true;
            e.mbox.err_event |= tcp.poll_err_sticky;
        }
        // lwip_netconn_do_close_internal checks SO_LINGER for every shut_close, a
        // shutdown's too: {on, 0} with segments unsent or unacknowledged is tcp_abort
        // instead of tcp_close, an RST that no callback hears (tcp_err was set NULL).
        if shut_close
            && tcp.abort_needs_unacked_data
            && e.linger_zero
            && unacked
            && !matches!(e.state, TcpState::Close | TcpState::TimeWait)
        {
            Self::shutdown_aborts(e, how, tcp.reads_by_pbuf);
            e.pressed = false;
            e.strained = false;
            e.fin_held = false;
            e.urg_held = None;
            self.send(
                x,
                Seg::Rst,
                "shutdown that closes, SO_LINGER 0, data unacknowledged: lwIP tcp_abort",
            );
            return Outcome::Ok;
        }
        // lwIP's lwip_netconn_do_close_internal: a shutdown that leaves both directions
        // shut is tcp_close, and tcp_close_shutdown resets in ESTABLISHED or CLOSE_WAIT
        // when not all that arrived was read (rcv_wnd != TCP_WND_MAX).
        let full_close =
            (e.shut_rd || e.mbox.fin_taken || how.reads()) && (e.shut_wr || how.writes());
        if tcp.full_close_resets_unread_when_open
            && full_close
            && matches!(e.state, TcpState::Established | TcpState::CloseWait)
            && (e.unread_dropped || !e.rq.is_empty())
        {
            Self::shutdown_aborts(e, how, tcp.reads_by_pbuf);
            self.send(
                x,
                Seg::Rst,
                "full shutdown with unread data: lwIP tcp_close_shutdown",
            );
            return Outcome::Ok;
        }
        e.shut_rd |= how.reads();
        e.shut_wr |= how.writes();
        // inet_shutdown ORs the flags in whatever the state, but reports ENOTCONN on a
        // CLOSE socket (RFC 9293 3.10.4: CLOSE on a closed connection is an error).
        // gVisor's shutdownLocked acts on every direction ever asked for, including one
        // asked for (and refused) before the socket connected.
        let (rd, wr) = if deferred {
            (e.shut_rd, e.shut_wr)
        } else {
            (how.reads(), how.writes())
        };
        e.rcv_shut |= rd;
        e.snd_shut |= wr;
        let closed = matches!(e.state, TcpState::Close | TcpState::TimeWait);
        // gVisor (shutdownLocked in tcp/endpoint.go) works on the accumulated flags in
        // every connected state, TIME_WAIT included: once both SHUT_RD and SHUT_WR
        // were asked for and unread data is queued, resetConnectionLocked(
        // ErrConnectionAborted) sends RST and the call succeeds. The queued data stays
        // readable; ECONNABORTED comes after it.
        if unread_resets
            && e.state != TcpState::Close
            && e.shut_rd
            && e.snd_shut
            && !e.rq.is_empty()
        {
            e.err = Some(Errno::ECONNABORTED);
            e.errored = true;
            e.fin_ack_uncertain = false;
            Self::done(e, Conn::Gone);
            self.send(
                x,
                Seg::Rst,
                "shutdown of both directions with unread data: gVisor shutdownLocked",
            );
            return Outcome::Ok;
        }
        // A TIME_WAIT socket (seen only where TCP_INFO shows it, see fin_arrives) has
        // sent its FIN: gVisor's shutdownLocked says ErrNotConnected, as Linux does.
        // smoltcp's close(), which `shutdown wr` is there, returns nothing: in CLOSED
        // and TIME_WAIT it does nothing (Socket::close).
        // (lwIP's answer depends on the netconn's pcb alone, decided above.)
        if closed && !self.profile.tcp.shutdown_never_fails && !tcp.shutdown_wr_after_fin_enotconn {
            return Outcome::Err(Errno::ENOTCONN);
        }
        // tcp_shutdown sends a FIN only for SEND_SHUTDOWN, and only once: from
        // ESTABLISHED (-> FIN_WAIT1) or CLOSE_WAIT (-> LAST_ACK) (RFC 9293 3.10.4).
        // SHUT_RD alone sends nothing: Linux keeps accepting data (RFC 9293 leaves
        // shutdown of the receive side to the implementation).
        if wr {
            self.send_fin_from_open_state(x, "shutdown(wr) sends FIN: RFC 9293 3.10.4");
        }
        // lwIP's FIN_WAIT2 timer also ends a pcb that a full shutdown closed (its
        // TF_RXCLOSED is set); Linux's ends orphans only.
        if shut_close && self.profile.tcp.fin_wait2_timer == FinWait2Timer::LwipSlowTimer {
            let e = self.end(x);
            if matches!(e.state, TcpState::FinWait1 | TcpState::FinWait2) {
                let start = e.rx_quiet_ms;
                e.orphan_fw2_ms.get_or_insert(start);
            }
        }
        Outcome::Ok
    }

    /// tcp_close_state + tcp_send_fin: ESTABLISHED -> FIN_WAIT1, CLOSE_WAIT -> LAST_ACK.
    fn send_fin_from_open_state(&mut self, x: End, why: &'static str) {
        let e = self.end(x);
        let next = match e.state {
            TcpState::Established => TcpState::FinWait1,
            TcpState::CloseWait => TcpState::LastAck,
            _ => return,
        };
        e.state = next;
        e.outq_hi += 1;
        // tcp_send_fin puts the FIN on the last skb of the write queue: where data
        // waits there for the peer's window, the FIN waits behind it.
        let pressed = e.pressed;
        let y = x.peer();
        // lwIP's shutdown(rd) drains the reader's mailbox, not what still waits in
        // our send queue for its window (tcp.shutdown_rd_drops_data).
        let drained_early = self.profile.tcp.shutdown_rd_drops_data
            && (self.ends[y.index()].shut_rd || !self.ends[y.index()].fd_open);
        if pressed && (!self.ends[y.index()].rq.is_empty() || drained_early) {
            let mut sent = self.clone();
            sent.send(x, Seg::Fin, why);
            sent.deliver_all();
            let keeps_state = self.profile.tcp.queued_fin_keeps_state;
            let e = self.end(x);
            e.fin_held = true;
            if keeps_state {
                // gVisor changes state when the FIN is sent, not when it is queued.
                e.state = match next {
                    TcpState::FinWait1 => TcpState::Established,
                    _ => TcpState::CloseWait,
                };
            }
            self.fork(sent);
            return;
        }
        self.send(x, Seg::Fin, why);
    }

    fn close(&mut self, x: End) -> Outcome {
        let e = &self.ends[x.index()];
        if e.rq_open && !e.rq.is_empty() {
            // What is unread may all be still on its way: then nothing is unread here
            // and the close is not the RST of RFC 2525 2.17.
            let mut none_here = self.clone();
            {
                let z = none_here.end(x);
                z.rq.discard();
                z.segs.clear();
                z.urg = None;
            }
            none_here.close_now(x);
            self.forks.push(none_here);
        }
        self.close_now(x)
    }

    fn close_now(&mut self, x: End) -> Outcome {
        let fin_instead_of_rst = self.mutated(Mutation::CloseWithUnreadDataSendsFin);
        if self.profile.tcp.close_is_half_close {
            // smoltcp's close() (socket/tcp.rs, Socket::close) only closes the transmit
            // half: a FIN from ESTABLISHED or CLOSE_WAIT, unread data or not; the
            // receive half stays open and the socket, no orphan with a timer, goes on
            // taking data into a buffer no one reads. An abort is abort(): an RST in
            // every state but CLOSED (Socket::abort, then dispatch in CLOSED).
            let e = self.end(x);
            e.fd_open = false;
            if e.linger_zero {
                if e.state != TcpState::Close {
                    e.err = None;
                    Self::done(e, Conn::Gone);
                    self.send(x, Seg::Rst, "abort(): smoltcp Socket::abort");
                }
                return Outcome::Ok;
            }
            if matches!(e.state, TcpState::Close | TcpState::TimeWait) {
                return Outcome::Ok;
            }
            self.send_fin_from_open_state(x, "close() is a half close: smoltcp Socket::close");
            return Outcome::Ok;
        }
        // lwIP's lwip_netconn_do_close_internal: linger 0 aborts only "if there is
        // untransmitted data left" (unsent, or unacked: the peer owes its ACK, or our
        // data waits for the window).
        let lwip_abort = self.profile.tcp.abort_needs_unacked_data;
        let open_only = self.profile.tcp.full_close_resets_unread_when_open;
        let unacked = self.ends[x.peer().index()].ack_owed
            || self.ends[x.index()].pressed
            || self.ends[x.index()].fin_held;
        // lwip_netconn_do_delconn: a netconn whose pcb an earlier full shutdown let go
        // (shut_close) is freed without lwip_netconn_do_close_internal's linger check.
        let disarmed =
            self.profile.tcp.full_close_disarms_abort && self.ends[x.index()].mbox.pcb_released;
        let e = self.end(x);
        e.fd_open = false;
        // __tcp_close: sk_shutdown = SHUTDOWN_MASK, then the receive queue is purged.
        e.rcv_shut = true;
        e.snd_shut = true;
        let unread = e.rq.discard();
        e.segs.clear();
        e.urg = None;
        e.rq_open = false;
        if matches!(e.state, TcpState::Close | TcpState::TimeWait) {
            // Already reset or in TIME_WAIT: nothing left to tell the peer.
            return Outcome::Ok;
        }
        // tcp_need_reset, and (tcp_disconnect) CLOSING or LAST_ACK with data or a FIN
        // not yet sent (snd_nxt != write_seq: "discrepancy of Linux wrt. RFC states"),
        // held back by a full window or, under held, the congestion window.
        let unsent = e.fin_held || self.held_unsent_at(x);
        let e = self.end(x);
        let need_reset = matches!(
            e.state,
            TcpState::Established | TcpState::CloseWait | TcpState::FinWait1 | TcpState::FinWait2
        ) || (matches!(e.state, TcpState::Closing | TcpState::LastAck) && unsent);
        // lwIP's tcp_close_shutdown resets for unread data (rcv_wnd != TCP_WND_MAX, so
        // data shutdown(rd) dropped counts) in ESTABLISHED and CLOSE_WAIT only.
        let unread_resets = if open_only {
            (unread > 0 || e.unread_dropped)
                && matches!(e.state, TcpState::Established | TcpState::CloseWait)
        } else {
            unread > 0
        };
        if unread_resets && !fin_instead_of_rst {
            // RFC 2525 2.17 and RFC 9293 3.10.4: closing with unread data loses it, so
            // the connection is reset rather than closed (__tcp_close, data_was_unread).
            e.state = TcpState::Close;
            e.conn = Conn::Gone;
            self.send(x, Seg::Rst, "close with unread data: RFC 2525 2.17");
        } else if e.linger_zero && (unacked || !lwip_abort) && !disarmed {
            // SO_LINGER {on, 0}: tcp_disconnect, the ABORT of RFC 9293 3.10.5. An RST
            // only where tcp_need_reset says the peer still expects data or a FIN.
            e.state = TcpState::Close;
            e.conn = Conn::Gone;
            if need_reset {
                self.send(x, Seg::Rst, "abort (SO_LINGER 0): RFC 9293 3.10.5");
            }
        } else {
            // A graceful close sends a FIN if none was sent yet; the socket lives on as
            // an orphan until the close handshake ends (RFC 9293 3.10.4). An orphan in
            // (or bound for) FIN_WAIT2 lives at most tcp_fin_time (tcp_close's
            // FIN_WAIT2 branch, or tcp_rcv_state_process when the ACK arrives).
            self.send_fin_from_open_state(x, "close sends FIN: RFC 9293 3.10.4");
            // Under held the ACK of the FIN takes as long as a step says, and the timer
            // starts with it (see held's arrives): only FIN_WAIT2 starts it here.
            let from_fw1 = self.held.is_none();
            let e = self.end(x);
            if e.state == TcpState::FinWait2 || (from_fw1 && e.state == TcpState::FinWait1) {
                self.start_fw2_timer(x);
            }
        }
        Outcome::Ok
    }

    /// Where an end's FIN_WAIT2 timer stands when it starts (see `tcp.fin_wait2_timer`):
    /// Linux's at the close; lwIP's counts from the last segment received before.
    fn fw2_timer_start(timer: FinWait2Timer, e: &TcpEnd) -> u64 {
        match timer {
            FinWait2Timer::Linger2 => 0,
            FinWait2Timer::LwipSlowTimer => e.rx_quiet_ms,
        }
    }

    /// The orphan `x` starts its FIN_WAIT2 timer (tcp_close's FIN_WAIT2 branch, or
    /// tcp_rcv_state_process when the FIN's ACK arrives): tcp_fin_time, at least
    /// 3.5 times the RTO (`(rto << 2) - (rto >> 1)`), which matters only on the held
    /// wire (rto_min 1 s; loopback's RTO is 200 ms).
    fn start_fw2_timer(&mut self, x: End) {
        let rto = self.held_rto_ms(x).unwrap_or(0);
        let timer = self.profile.tcp.fin_wait2_timer;
        let e = self.end(x);
        e.orphan_fw2_ms = Some(Self::fw2_timer_start(timer, e));
        e.fw2_timeout_ms = FIN_WAIT2_TIMEOUT_MS.max((rto << 2) - (rto >> 1));
    }

    /// When `x`'s FIN_WAIT2 timer may have fired, and when it certainly has, counted
    /// from its start: the profile's timer (see `tcp.fin_wait2_timer`), or under held
    /// tcp_fin_time on the held wire.
    fn fw2_window(&self, x: End) -> (u64, u64) {
        let t = self.ends[x.index()].fw2_timeout_ms;
        if self.held.is_some() {
            (t, t + held::timer_late_ms(t))
        } else {
            self.profile.tcp.fin_wait2_timer.window_ms()
        }
    }

    /// Whether a sleep of `ms` ends outside every window in which a timer may or may
    /// not have fired (a retransmission timer under held, an orphan's FIN_WAIT2
    /// timeout, the end of TIME_WAIT): the generator draws only such sleeps.
    pub fn sleep_certain(&self, ms: u64) -> bool {
        if self.held.is_some() && !self.held_sleep_certain(ms) {
            return false;
        }
        End::BOTH.iter().all(|&x| {
            let e = &self.ends[x.index()];
            let fw2 = match e.orphan_fw2_ms {
                Some(t) if e.state == TcpState::FinWait2 && e.conn == Conn::Live => {
                    let (from, gone) = self.fw2_window(x);
                    !(from..gone).contains(&(t + ms))
                }
                _ => true,
            };
            let tw = match e.time_wait_ms {
                Some(t) if e.conn == Conn::TimeWait => {
                    !(TIME_WAIT_GONE_MS - 1000..TIME_WAIT_GONE_MS).contains(&(t + ms))
                }
                _ => true,
            };
            fw2 && tw
        })
    }

    /// Time passes: the timers that can fire in `ms` milliseconds do. Returns the
    /// segments they sent.
    pub fn advance(&mut self, ms: u32) -> Vec<WireEvent> {
        self.log.clear();
        if self.held.is_some() {
            self.held_timers(self.held_now() + u64::from(ms));
            self.oow_expires();
        }
        for x in [End::A, End::B] {
            let e = self.end(x);
            if !e.fin_ack_uncertain {
                continue;
            }
            e.fin_ack_waited_ms += u64::from(ms);
            if e.fin_ack_waited_ms >= FIN_ACK_DELAY_MAX_MS {
                // The peer's delayed-ACK timer (tcp_delack_timer) has fired: in
                // pingpong mode tcp_send_delayed_ack caps its timeout at
                // TCP_DELACK_MAX (200 ms); FIN_ACK_DELAY_MAX_MS adds the timer wheel's
                // slack.
                self.send(
                    x.peer(),
                    Seg::Ack,
                    "delayed ACK of the FIN: tcp_delack_timer",
                );
            }
        }
        self.deliver_all();
        self.resend_lost_fins(ms);
        let time_wait_shows = self.profile.tcp.time_wait_on_open_fd;
        let mut may_be_gone = vec![];
        for x in [End::A, End::B] {
            let (may_ms, gone_ms) = self.fw2_window(x);
            let e = self.end(x);
            e.rx_quiet_ms += u64::from(ms);
            if let Some(t) = e.orphan_fw2_ms.as_mut() {
                *t += u64::from(ms);
                let waits = e.state == TcpState::FinWait2 && e.conn == Conn::Live;
                if *t >= gone_ms && waits {
                    // The FIN_WAIT2 timer (or the FIN_WAIT2 substate of the TIME_WAIT
                    // mini-socket tcp_time_wait made) expired: the connection is gone
                    // without a segment; the peer's next one meets no socket.
                    Self::done(e, Conn::Gone);
                } else if *t >= may_ms && waits {
                    may_be_gone.push(x);
                }
            }
            if let Some(t) = e.time_wait_ms.as_mut() {
                *t += u64::from(ms);
                if *t >= TIME_WAIT_GONE_MS && e.conn == Conn::TimeWait {
                    // inet_twsk_kill / gVisor's timeWaitTimer: TIME_WAIT is over. An fd
                    // that showed TIME_WAIT (gVisor) shows CLOSE from now on.
                    e.conn = Conn::Gone;
                    e.time_wait_ms = None;
                    if time_wait_shows {
                        e.state = TcpState::Close;
                    }
                }
            }
        }
        // Inside the timer's window the connection may be gone already: kept as a way
        // of its own, which the kernel's next answers settle.
        for x in may_be_gone {
            let mut gone = self.clone();
            gone.forks.clear();
            Self::done(gone.end(x), Conn::Gone);
            self.fork(gone);
        }
        std::mem::take(&mut self.log)
    }

    /// A FIN the peer dropped (`tcp.bare_fin_needs_receive_memory`) goes again when
    /// the sender's retransmission timer fires during `ms` milliseconds of sleep; the
    /// peer's memory then decides again (see [`TcpModel::fin_fits`]).
    fn resend_lost_fins(&mut self, ms: u32) {
        for x in End::BOTH {
            let Some(before) = self.ends[x.index()].fin_lost_ms else {
                continue;
            };
            let after = before + u64::from(ms);
            self.end(x).fin_lost_ms = Some(after);
            let (surely, maybe) = retransmission_fires(before, after);
            if !maybe {
                continue;
            }
            let mut again = self.clone();
            again.forks.clear();
            again.send(
                x,
                Seg::Fin,
                "the dropped FIN again: the retransmission timer (tail loss probe or RTO)",
            );
            again.deliver_all();
            if surely {
                let earlier = self.take_forks();
                *self = again;
                self.forks.extend(earlier);
            } else if again != *self {
                self.fork(again);
            }
        }
    }

    /// The script names of the two ends now (`l` for a side not yet accepted).
    pub fn names(&self) -> [Sock; 2] {
        self.names
    }

    /// How a connect in progress ended, asked by a second connect: `None` if the
    /// connection is up (or was closed gracefully), else the error it reports
    /// (sock_error, or ECONNABORTED without one), after which the socket is
    /// disconnected and can connect again.
    pub fn connect_failed(&mut self, x: End) -> Option<Errno> {
        let e = self.end(x);
        if e.state != TcpState::Close {
            return None;
        }
        e.fd_open = false;
        Some(e.err.take().unwrap_or(Errno::ECONNABORTED))
    }

    /// The server side `x` was accepted: its socket is made now. lwIP's lwip_accept
    /// makes it with no error event (alloc_socket: errevent 0), since event_callback
    /// counted only the receive events of a netconn that had no socket yet
    /// (`tcp.errors_before_accept_not_polled`).
    pub fn accepted(&mut self, x: End) {
        if self.profile.tcp.errors_before_accept_not_polled {
            self.end(x).mbox.err_event = false;
        }
    }

    /// Shutdowns a socket asked for before it connected and that the profile defers to
    /// its next shutdown call (gVisor's shutdownFlags).
    pub fn preset_deferred_shutdown(&mut self, x: End, rd: bool, wr: bool) {
        let e = self.end(x);
        e.shut_rd |= rd;
        e.shut_wr |= wr;
    }

    /// A step on `x` after its fd was closed: no call, except `state`, which reports
    /// what the kernel still holds for the connection (the executor asks sock_diag):
    /// the orphan's state, TIME_WAIT for the mini-socket, or `gone`. Where a timer
    /// may or may not have ended it by now (the orphan's FIN_WAIT2 timeout, the end of
    /// TIME_WAIT), both.
    pub fn call_closed(&mut self, x: End, op: Op) -> StepResult {
        if op != Op::State {
            return super::common::closed_result();
        }
        if self.profile.tcp.closed_state_unavailable {
            return StepResult::plain(Outcome::NotApplicable);
        }
        StepResult::plain(self.closed_state(x))
    }

    fn closed_state(&self, x: End) -> Outcome {
        let e = &self.ends[x.index()];
        let or_gone = |o: Outcome| Outcome::Either(Box::new(o), Box::new(Outcome::Gone));
        match e.conn {
            Conn::Gone => Outcome::Gone,
            // inet_twsk_diag_fill reports the mini-socket's substate; the FIN_WAIT2
            // substate is modelled as a live orphan in FIN_WAIT2.
            Conn::TimeWait => {
                let tw = Outcome::State(TcpState::TimeWait.into());
                if e.time_wait_ms.unwrap_or(0) + 1000 >= TIME_WAIT_GONE_MS {
                    or_gone(tw)
                } else {
                    tw
                }
            }
            Conn::Live if e.state == TcpState::Close => Outcome::Gone,
            Conn::Live => {
                let set = self.state_view(x);
                let s = Outcome::State(set);
                // The FIN_WAIT2 timer may have fired from FIN_WAIT2_TIMEOUT_MS on, and
                // certainly has at FIN_WAIT2_GONE_MS (then `advance` made it Gone).
                let from = self.fw2_window(x).0;
                let timing_out =
                    e.orphan_fw2_ms.is_some_and(|t| t >= from) && set.contains(TcpState::FinWait2);
                if timing_out {
                    or_gone(s)
                } else {
                    s
                }
            }
        }
    }

    /// An unaccepted child whose listener stops: inet_csk_listen_stop ->
    /// inet_child_forget -> tcp_disconnect, which sends RST where tcp_need_reset says
    /// the client still expects data or a FIN (an unaccepted child can only be
    /// ESTABLISHED, CLOSE_WAIT, or CLOSE after the client's RST), then the child is
    /// destroyed.
    pub fn forget_unaccepted(&mut self, x: End) {
        let e = self.end(x);
        e.fd_open = false;
        e.rcv_shut = true;
        e.snd_shut = true;
        e.rq.discard();
        let need_reset = matches!(e.state, TcpState::Established | TcpState::CloseWait);
        e.state = TcpState::Close;
        e.conn = Conn::Gone;
        if need_reset {
            self.send(
                x,
                Seg::Rst,
                "listener stopped with this connection queued: inet_child_forget -> tcp_disconnect",
            );
        }
    }

    /// Delivers the oldest segment in flight; false if none was.
    pub fn deliver_one(&mut self) -> bool {
        if self.held.is_some() {
            // Held segments move only at `deliver` steps.
            return false;
        }
        let Some(f) = self.wire.pop_front() else {
            return false;
        };
        let y = f.from.peer();
        match self.ends[y.index()].conn {
            Conn::Gone => {
                // No socket: RFC 9293 3.10.7.1 (CLOSED) answers anything but an RST with
                // an RST (tcp_v4_send_reset when no socket matches).
                if f.seg != Seg::Rst {
                    self.send(
                        y,
                        Seg::Rst,
                        "segment for a connection that no longer exists: RFC 9293 3.10.7.1",
                    );
                }
                return true;
            }
            Conn::TimeWait => {
                // tcp_timewait_state_process: an RST kills the TIME_WAIT socket
                // (net.ipv4.tcp_rfc1337 = 0, the default; RFC 1337 describes the hazard).
                // Nothing else can arrive: the peer has sent its FIN and had it ACKed.
                if f.seg == Seg::Rst {
                    self.end(y).conn = Conn::Gone;
                }
                return true;
            }
            Conn::Live => {}
        }
        if f.seg == Seg::Rst {
            if self.ends[y.index()].rq_open {
                // Data of the sender's may have been dropped at this end (its receive
                // memory full) and never arrived: the RST's sequence number is then
                // past rcv_nxt, and tcp_validate_incoming answers it with a challenge
                // ACK instead of a reset (RFC 5961 3.2).
                let ignored = self.clone();
                self.forks.push(ignored);
            }
            self.reset(y);
            return true;
        }
        let e = self.end(y);
        if e.fd_open && !e.shut_rd && !e.mbox.fin_taken {
            e.rx_quiet_ms = 0;
        }
        if f.acks_fin {
            self.fin_acked(y);
        }
        // Every segment but an RST acknowledges what its sender has received: all of
        // the receiver's data that reached it.
        let acked_rest = if self.ends[y.index()].pressed {
            self.ends[f.from.index()].rq.len
        } else {
            0
        };
        let e = self.end(y);
        e.outq_hi = acked_rest + usize::from(e.fin_held);
        match f.seg {
            Seg::Data {
                offset,
                len,
                urgent,
            } => self.data_arrives(y, offset, len, urgent),
            Seg::Fin => self.fin_arrives(y),
            Seg::Held => self.held_arrives(y),
            Seg::Ack | Seg::Rst => {}
        }
        true
    }

    /// tcp_reset: the error depends on the state the RST finds (EPIPE in CLOSE_WAIT,
    /// as BSD does, ECONNRESET otherwise; RFC 9293 3.10.7.4), then tcp_done closes.
    fn reset(&mut self, y: End) {
        let always_econnreset = self.mutated(Mutation::ResetInCloseWaitIsEconnreset)
            || self.profile.tcp.reset_always_econnreset;
        let no_error = self.profile.tcp.reset_leaves_no_error;
        let unhooked = self.profile.tcp.full_close_unhooks_errors;
        let e = self.end(y);
        if e.state == TcpState::Close {
            return;
        }
        if unhooked && e.mbox.pcb_released {
            // lwIP's lwip_netconn_do_close_internal set tcp_err(NULL) at the full
            // close: the RST's TCP_EVENT_ERR in tcp_input tells no one.
            e.fin_ack_uncertain = false;
            e.pressed = false;
            e.strained = false;
            e.fin_held = false;
            e.urg_held = None;
            Self::done(e, Conn::Gone);
            return;
        }
        // lwIP's err_tcp (api_msg.c): the pending error is ERR_RST in every state, an
        // error message is posted behind whatever the mailbox holds (unless the FIN
        // was read and the mailbox is gone), and the error event is raised.
        e.mbox.reset = true;
        e.mbox.rst_marker = !e.mbox.fin_taken;
        e.mbox.err_event = true;
        e.err = (!no_error).then_some(if e.state == TcpState::CloseWait && !always_econnreset {
            Errno::EPIPE
        } else {
            Errno::ECONNRESET
        });
        // gVisor's handleReset: CLOSE_WAIT goes to StateClose (with ErrAborted, EPIPE),
        // every other state to StateError (ErrConnectionReset).
        e.errored = e.state != TcpState::CloseWait;
        e.fin_ack_uncertain = false;
        // tcp_write_queue_purge: what waited to be sent is gone (SIOCOUTQ still counts
        // it: snd_una does not move).
        e.pressed = false;
        e.strained = false;
        e.fin_held = false;
        e.urg_held = None;
        Self::done(e, Conn::Gone);
    }

    /// A shutdown that lwIP turns into an abort (tcp_abort or tcp_close_shutdown's
    /// RST): the directions asked are shut, what was queued is dropped (the socket's
    /// lastdata outlives the connection where reads go by pbuf), the connection ends.
    fn shutdown_aborts(e: &mut TcpEnd, how: Shut, reads_by_pbuf: bool) {
        e.shut_rd |= how.reads();
        e.shut_wr |= how.writes();
        if !reads_by_pbuf {
            e.rq.discard();
            e.segs.clear();
        }
        e.urg = None;
        e.rq_open = false;
        e.fin_ack_uncertain = false;
        Self::done(e, Conn::Gone);
    }

    /// tcp_done: state CLOSE and sk_shutdown = SHUTDOWN_MASK.
    fn done(e: &mut TcpEnd, conn: Conn) {
        e.fin_lost_ms = None;
        e.state = TcpState::Close;
        e.conn = conn;
        e.rcv_shut = true;
        e.snd_shut = true;
        e.orphan_fw2_ms = None;
        e.time_wait_ms = (conn == Conn::TimeWait).then_some(0);
    }

    /// The ACK of our FIN arrived (RFC 9293 3.10.7.4, "ACK bit" for FIN-WAIT-1,
    /// CLOSING and LAST-ACK).
    fn fin_acked(&mut self, y: End) {
        let (mailbox, sticky) = (
            self.profile.tcp.reads_from_mailbox,
            self.profile.tcp.poll_err_sticky,
        );
        let e = self.end(y);
        e.fin_ack_uncertain = false;
        match e.state {
            TcpState::FinWait1 => e.state = TcpState::FinWait2,
            // LAST_ACK -> CLOSED: the connection is over (tcp_done).
            TcpState::LastAck => {
                // lwIP's tcp_input tells a netconn that still reads (no TF_RXCLOSED)
                // with TCP_EVENT_ERR(ERR_CLSD): err_tcp as for a reset, with ERR_CLSD.
                if mailbox && !(e.mbox.fin_taken || e.shut_rd) {
                    e.mbox.reset = true;
                    e.mbox.rst_marker = true;
                    e.mbox.clsd = true;
                    e.mbox.err_event |= sticky;
                    e.err.get_or_insert(Errno::ENOTCONN);
                }
                Self::done(e, Conn::Gone)
            }
            // CLOSING -> TIME_WAIT: tcp_time_wait hands the connection to a TIME_WAIT
            // mini-socket and tcp_done()s the full socket, so TCP_INFO says CLOSE.
            TcpState::Closing => {
                Self::done(e, Conn::TimeWait);
                self.time_wait_shows(y);
            }
            _ => {}
        }
    }

    /// gVisor keeps TIME_WAIT in the endpoint the fd points to (handleTimeWaitSegment
    /// in tcp/rcv.go serves it), so TCP_INFO reports it; Linux's fd socket is CLOSE.
    fn time_wait_shows(&mut self, y: End) {
        if self.profile.tcp.time_wait_on_open_fd {
            self.end(y).state = TcpState::TimeWait;
        }
    }

    fn data_arrives(&mut self, y: End, offset: u64, len: usize, urgent: bool) {
        let aborts = self.profile.tcp.data_after_shutdown_aborts;
        let rx_closed_aborts = self.profile.tcp.shutdown_rd_drops_data;
        let mss = self.mss;
        let by_pbuf = self.profile.tcp.reads_by_pbuf;
        let e = self.end(y);
        // lwIP's tcp_ack (tcp_priv.h): the second segment of a pair is ACKed at once,
        // the first waits for the delayed-ACK timer. Segments are `mss` long.
        let segments = len.div_ceil(mss);
        let owed = (usize::from(e.ack_owed) + segments) % 2 == 1;
        let acks_now = usize::from(e.ack_owed) + segments >= 2;
        if rx_closed_aborts
            && e.shut_rd
            && matches!(
                e.state,
                TcpState::Established
                    | TcpState::CloseWait
                    | TcpState::FinWait1
                    | TcpState::FinWait2
            )
        {
            // lwIP's tcp_input: "received data although already closed -> abort (send
            // RST)" for a pcb with TF_RXCLOSED; tcp_abort tells the netconn ERR_ABRT,
            // unless a full close let the pcb go (tcp_err(NULL)): then no one hears.
            if !e.mbox.pcb_released {
                e.err = Some(Errno::ECONNABORTED);
                e.errored = true;
                e.mbox.reset = true;
                e.mbox.err_event = true;
            }
            Self::done(e, Conn::Gone);
            self.send(
                y,
                Seg::Rst,
                "data after shutdown(rd): lwIP tcp_input aborts",
            );
            return;
        }
        if self.profile.tcp.abort_needs_unacked_data {
            if acks_now {
                // The ACK goes out at once (tcp_ack_now): it is all lwIP's abort looks
                // at, so it is not put on the model's wire.
                self.ends[y.index()].ack_owed = false;
            }
            self.ends[y.index()].ack_owed = owed;
            // The owed ACK is for the last segment of this write.
            self.ends[y.index()].owed_len = len.saturating_sub(1) % mss + 1;
        }
        let e = self.end(y);
        // tcp_urg runs before the segment's text is processed (RFC 9293 3.10.7.4,
        // "sixth, check the URG bit"), so the mark is set even where the text then
        // draws an RST. The urgent pointer is one mark (tcp_check_urg): an old urgent
        // byte at the read head is dropped (copied_seq++); one further on becomes
        // ordinary data.
        let queues = match e.state {
            TcpState::Established => true,
            TcpState::FinWait1 | TcpState::FinWait2 => !e.rcv_shut,
            _ => false,
        };
        if urgent {
            let early = e.rq_open;
            Self::mark_urgent(e, offset + len as u64 - 1, early);
        }
        if queues {
            e.segs.push_back(len);
            // recv_tcp posts each segment's pbuf to the mailbox.
            let mut left = if by_pbuf { len } else { 0 };
            while left > 0 {
                let k = left.min(mss);
                e.pbufs.push_back(k);
                left -= k;
            }
        }
        match e.state {
            TcpState::Established => {
                // Queued even after shutdown(SHUT_RD): the established fast path
                // (tcp_rcv_established) does not look at RCV_SHUTDOWN.
                debug_assert_eq!(e.rq.start + e.rq.len as u64, offset);
                e.rq.push(len);
            }
            TcpState::FinWait1 | TcpState::FinWait2 => {
                if e.rcv_shut {
                    // tcp_rcv_state_process: "RFC 1122 says we MUST send a reset": new
                    // data for a socket that will not read it again (closed, or shut
                    // down for reading) resets the connection (RFC 9293 3.10.7.4,
                    // RFC 2525 2.17). For an orphan in FIN_WAIT2 the TIME_WAIT
                    // mini-socket does the same (TCP_TW_RST).
                    // gVisor (handleRcvdSegmentClosing in tcp/rcv.go) returns
                    // ErrConnectionAborted here, so the error is ECONNABORTED.
                    e.err = Some(if aborts {
                        Errno::ECONNABORTED
                    } else {
                        Errno::ECONNRESET
                    });
                    e.errored = true;
                    Self::done(e, Conn::Gone);
                    self.send(
                        y,
                        Seg::Rst,
                        "data after this end stopped reading: RFC 9293 3.10.7.4 / RFC 1122",
                    );
                } else {
                    // Half-close: the FIN sender still receives (RFC 9293 3.6).
                    e.rq.push(len);
                }
            }
            // The peer has sent its FIN, so it cannot send data: unreachable in order.
            _ => {}
        }
    }

    /// tcp_check_urg: a new urgent pointer replaces the mark; an old urgent byte at the
    /// read head is dropped (copied_seq++), one further on becomes ordinary data.
    fn mark_urgent(e: &mut TcpEnd, at: u64, early: bool) {
        if let Some(old) = e.urg {
            if old.at == e.rq.start && !e.rq.is_empty() {
                Self::consume(e, 1);
            }
        }
        e.urg = Some(Urg {
            at,
            read: false,
            early,
        });
    }

    /// Under held, Linux: a segment with the URG flag pointing at `at` arrives at `y`
    /// (in order or not): tcp_urg takes its pointer before the text, unless it points at
    /// what was already received or is not past the mark there is (tcp_check_urg). The
    /// mark is TCP_URG_NOTYET until a segment that `carries` the byte arrives, then
    /// TCP_URG_VALID, even ahead of a hole.
    pub(super) fn urgent_arrives(&mut self, y: End, at: u64, received: u64, carries: bool) {
        let e = self.end(y);
        if at < received {
            return;
        }
        if let Some(u) = e.urg {
            if at == u.at && carries && u.early {
                e.urg = Some(Urg { early: false, ..u });
            }
            if at <= u.at {
                return;
            }
        }
        Self::mark_urgent(e, at, !carries);
    }

    /// Held data reaching its receiver: counted there already, but at an end that
    /// stopped reading it draws the RST new data draws (see
    /// [`TcpModel::data_arrives`]).
    fn held_arrives(&mut self, y: End) {
        if let Some(at) = self.end(y.peer()).urg_held.take() {
            // tcp_urg before the text: the mark is set (early while more may wait),
            // unless one at or past it is there already (tcp_check_urg).
            let e = self.end(y);
            let live = matches!(
                e.state,
                TcpState::Established | TcpState::FinWait1 | TcpState::FinWait2
            );
            if live && e.urg.is_none_or(|u| at > u.at) {
                let early = e.rq_open;
                Self::mark_urgent(e, at, early);
            }
        }
        let e = &self.ends[y.index()];
        if matches!(e.state, TcpState::FinWait1 | TcpState::FinWait2) && e.rcv_shut {
            self.data_arrives(y, e.rq.start + e.rq.len as u64, 0, false);
        }
    }

    fn fin_arrives(&mut self, y: End) {
        let peer = y.peer();
        if self.profile.tcp.bare_fin_needs_receive_memory {
            let lost = self.ends[peer.index()].fin_lost_ms.unwrap_or(0);
            match self.fin_fits(y) {
                Some(true) => {}
                Some(false) => {
                    self.end(peer).fin_lost_ms = Some(lost);
                    return;
                }
                None => {
                    let mut dropped = self.clone();
                    dropped.forks.clear();
                    dropped.end(peer).fin_lost_ms = Some(lost);
                    self.fork(dropped);
                }
            }
            self.end(peer).fin_lost_ms = None;
        }
        let e = self.end(y);
        e.fin_received = true;
        e.rcv_shut = true;
        match e.state {
            TcpState::Established => {
                // tcp_fin: ESTABLISHED -> CLOSE_WAIT (RFC 9293 3.10.7.4), and the ACK is
                // delayed (inet_csk_enter_pingpong_mode): the FIN's sender stays in
                // FIN_WAIT1 until this end sends something, or a delayed-ACK heuristic
                // sends the ACK on its own (see the module docs).
                e.state = TcpState::CloseWait;
                // Under held the executor's route has `quickack`: no ACK is delayed, and
                // the held rules send it.
                if self.profile.tcp.delayed_fin_ack && self.held.is_none() {
                    self.end(peer).fin_ack_uncertain = true;
                    self.end(peer).fin_ack_waited_ms = 0;
                } else {
                    // gVisor ACKs at once (handleSegmentsLocked sends an ACK whenever
                    // RcvNxt moved past the last ACK sent).
                    self.send(
                        y,
                        Seg::Ack,
                        "ACK of FIN, at once: gVisor handleSegmentsLocked",
                    );
                }
            }
            TcpState::FinWait1 => {
                // Simultaneous close: FIN_WAIT1 -> CLOSING, ACK at once (tcp_fin).
                e.state = TcpState::Closing;
                self.send(
                    y,
                    Seg::Ack,
                    "ACK of FIN in FIN_WAIT1 (simultaneous close): tcp_fin",
                );
            }
            TcpState::FinWait2 => {
                // FIN_WAIT2 -> TIME_WAIT with an immediate ACK (tcp_fin, tcp_time_wait).
                // An open fd's socket is tcp_done()d: TCP_INFO reports CLOSE, not
                // TIME_WAIT, which only the mini-socket holds.
                Self::done(e, Conn::TimeWait);
                self.time_wait_shows(y);
                self.send(
                    y,
                    Seg::Ack,
                    "ACK of FIN, entering TIME_WAIT: RFC 9293 3.10.7.4",
                );
            }
            _ => {}
        }
    }

    /// `tcp.bare_fin_needs_receive_memory`: whether `y`'s receive memory takes a bare
    /// FIN now (`None`: the model cannot say). Linux 6.1's tcp_data_queue charges it
    /// like data: an empty receive queue takes it (sk_forced_mem_schedule), otherwise
    /// tcp_try_rmem_schedule drops it while sk_rmem_alloc stays above sk_rcvbuf after
    /// tcp_prune_queue. The memory is the queued skbs' truesize, which the model does
    /// not track; it is more than the unread bytes, so a queue holding sk_rcvbuf bytes
    /// or more certainly drops it (measured on 6.1 with SO_RCVBUF 4096, sk_rcvbuf 8192:
    /// one unread write of 6,500 bytes took it, 7,000 did not). An autotuned buffer
    /// is never filled while the writer is not pressed: the window keeps the queue
    /// below it.
    fn fin_fits(&self, y: End) -> Option<bool> {
        let e = &self.ends[y.index()];
        if e.rq.is_empty() {
            return Some(true);
        }
        let Some(v) = e.bufs.rcvbuf else {
            return Some(true);
        };
        // sock_setsockopt: sk_rcvbuf = max(2 * SO_RCVBUF, SOCK_MIN_RCVBUF), the
        // minimum 2 * (2048 + the aligned struct sk_buff) on 64-bit builds.
        let rcvbuf = (2 * v as usize).max(4608);
        if e.rq.len >= rcvbuf && !e.rq_open {
            Some(false)
        } else {
            None
        }
    }

    fn state_view(&self, x: End) -> StateSet {
        let e = &self.ends[x.index()];
        let set = StateSet::one(e.state);
        if e.state == TcpState::FinWait1 && e.fin_ack_uncertain {
            set.with(TcpState::FinWait2)
        } else {
            set
        }
    }

    /// tcp_poll, for the events closefuzz asks about.
    fn poll(&self, x: End) -> PollSet {
        let e = &self.ends[x.index()];
        if e.state == TcpState::SynSent {
            return self.syn_sent_poll(x);
        }
        let tcp = &self.profile.tcp;
        // gVisor's Readiness (tcp/endpoint.go) answers every event for StateClose,
        // StateError and StateTimeWait, and only IN/OUT for a connected endpoint.
        let closed = matches!(e.state, TcpState::Close | TcpState::TimeWait);
        // lwip_pollscan (sockets.c) knows IN, OUT and ERR only; its ERR is the
        // socket's errevent, which event_callback sets and nothing clears.
        let hup = !tcp.poll_no_hup
            && (closed || (tcp.poll_hup_when_shut_both_ways && e.rcv_shut && e.snd_shut));
        let err = if tcp.poll_err_when_closed {
            closed
        } else if tcp.poll_err_sticky {
            e.mbox.err_event
        } else {
            e.err.is_some()
        };
        // IN needs one byte past an urgent mark at the read head (tcp_poll's target).
        let at_mark = e
            .urg
            .is_some_and(|u| u.at == e.rq.start && !e.rq.is_empty());
        let readable = e.rq.len > usize::from(at_mark);
        // lwip_pollscan's IN is rcvevent > 0 (or a pbuf kept in lastdata): every data
        // pbuf and the FIN's marker (recv_tcp), and err_tcp, add one; reading a pbuf or
        // going through handle_fin (the FIN's or a close message) takes one back; a
        // reset's marker read (ERR_RST, ERR_ABRT) does not, nor does a drained mailbox,
        // and a completed shutdown of the read side (netconn_close_shutdown after EOF
        // too) adds one for good.
        let read_event = if tcp.poll_in_counts_events {
            readable
                || (e.fin_received && !e.mbox.fin_marker_read)
                || e.shut_rd
                || e.mbox.fin_taken
                || (e.mbox.reset && !e.mbox.clsd_read)
        } else {
            e.rcv_shut || readable
        };
        let mut p = PollSet::OUT // writable in every state past SYN_SENT while the buffer has room
            .with_if(PollSet::HUP, hup)
            .with_if(PollSet::IN, read_event)
            .with_if(PollSet::RDHUP, e.rcv_shut && self.profile.poll_rdhup)
            .with_if(PollSet::ERR, err);
        // Where the writer was strained, its queue may be past two thirds of
        // sk_sndbuf (__sk_stream_is_writeable), and the reader's queue may be empty
        // for now.
        if e.strained && !closed && !e.snd_shut {
            p = p.with_maybe(PollSet::OUT);
        }
        if e.rq_open && readable && !e.rcv_shut {
            p = p.with_maybe(PollSet::IN);
        }
        p
    }

    /// One side's TCP state and poll revents.
    pub fn view_end(&self, x: End) -> EndView {
        if self.ends[x.index()].fd_open {
            EndView::Open {
                state: Some(self.state_view(x)),
                poll: self.poll(x),
            }
        } else {
            EndView::Closed
        }
    }

    /// A one-line account of an end, for `explain`.
    pub fn describe(&self, x: End) -> String {
        let e = &self.ends[x.index()];
        let mut parts = vec![];
        parts.push(if e.fd_open {
            "fd open".to_string()
        } else {
            "fd closed".to_string()
        });
        let conn = match e.conn {
            Conn::Live => self.state_view(x).to_string(),
            Conn::TimeWait if e.fd_open && e.state == TcpState::TimeWait => "TIME_WAIT".to_string(),
            Conn::TimeWait if e.fd_open => "CLOSE (connection in TIME_WAIT)".to_string(),
            Conn::TimeWait => "TIME_WAIT".to_string(),
            Conn::Gone if e.fd_open => "CLOSE".to_string(),
            Conn::Gone => "gone".to_string(),
        };
        parts.push(conn);
        if e.rq.len > 0 {
            parts.push(format!("{} unread", e.rq.len));
        }
        if e.fin_received {
            parts.push("FIN received".into());
        }
        match (e.rcv_shut, e.snd_shut) {
            (true, true) => parts.push("shut rdwr".into()),
            (true, false) => parts.push("shut rd".into()),
            (false, true) => parts.push("shut wr".into()),
            _ => {}
        }
        if let Some(err) = e.err {
            parts.push(format!("error {err}"));
        }
        parts.join(", ")
    }
}

super::common::impl_connection!(TcpModel);

/// A TCP socket in no connection (never connected, or a connect that failed): state
/// CLOSE. Rules from tcp_sendmsg_locked, tcp_recvmsg_locked, inet_shutdown and
/// tcp_poll, which see the same CLOSE socket as after a reset.
pub fn loose_call(l: &mut Loose, op: Op, profile: &Profile) -> StepResult {
    let r = |o| StepResult::plain(o);
    match op {
        // sk_stream_wait_connect: the pending error, else EPIPE for any state but
        // SYN_SENT/SYN_RECV; sk_stream_error raises SIGPIPE for EPIPE only.
        Op::Write(_) | Op::WriteNoSignal(_) | Op::WriteOob(_) => match l.err.take() {
            Some(e) => r(Outcome::Err(e)),
            // lwIP's tcp_write_checks: a CLOSED pcb is ERR_CONN.
            None if profile.tcp.unconnected_write_enotconn => r(Outcome::Err(Errno::ENOTCONN)),
            None => StepResult {
                outcome: Outcome::Err(Errno::EPIPE),
                sigpipe: profile.sigpipe_on_epipe && !matches!(op, Op::WriteNoSignal(_)),
            },
        },
        // tcp_recv_urg: no urgent data was ever received.
        Op::ReadOob(_) => r(Outcome::Err(Errno::EINVAL)),
        // tcp_ioctl SIOCOUTQ on a CLOSE socket: write_seq - snd_una (see Loose::outq).
        Op::Outq if profile.tcp.outq_enosys => r(Outcome::Err(Errno::ENOSYS)),
        Op::Outq if profile.tcp.outq_unsupported => r(Outcome::Err(Errno::ENOPROTOOPT)),
        Op::Outq => r(Outcome::Queued(l.outq)),
        // The world keeps them until the socket connects.
        Op::RcvBuf(_) | Op::SndBuf(_) => r(Outcome::Ok),
        // tcp_recvmsg_locked: the error, then RCV_SHUTDOWN (0), then CLOSE: ENOTCONN.
        // lwIP's netconn_recv_data takes the mailbox's reset marker before the
        // pending error (a peek takes it too: lwip_recv_tcp peeks only at data).
        Op::Read(_) | Op::Peek(_) if l.rst_marker => {
            l.rst_marker = false;
            r(Outcome::Err(Errno::ECONNRESET))
        }
        Op::Read(_) | Op::Peek(_) => r(match l.err.take() {
            Some(e) => Outcome::Err(e),
            // lwIP's netconn_recv_data: the full close, or a shutdown(rd), left no
            // mailbox (ERR_CONN).
            None if l.released => Outcome::Err(Errno::ENOTCONN),
            None if l.rcv_shut && profile.tcp.unconnected_shutdown_by_pcb => {
                Outcome::Err(Errno::ENOTCONN)
            }
            None if l.rcv_shut => Outcome::Eof,
            // lwIP's netconn_recv_data: a never-connected netconn has an empty mailbox.
            None if profile.tcp.unconnected_read_eagain => Outcome::Err(Errno::EAGAIN),
            None => Outcome::Err(Errno::ENOTCONN),
        }),
        // inet_shutdown on TCP_CLOSE: ENOTCONN, but the bits are ORed in anyway ("hack
        // to wake up other listeners"). gVisor's shutdownLocked keeps nothing for a
        // socket that never connected.
        // lwIP's lwip_netconn_do_close_internal on the CLOSED pcb of a netconn that
        // never connected: shutdown(rd) is tcp_shutdown's TF_RXCLOSED (and the mailbox
        // drained, with a receive event), shutdown(wr) alone is ERR_CONN, and one that
        // leaves both shut is tcp_close, which lets the pcb go.
        Op::Shutdown(how) if profile.tcp.unconnected_shutdown_by_pcb => {
            if l.released || l.connecting {
                return r(Outcome::Err(Errno::ENOTCONN));
            }
            if how == Shut::RdWr || (how.writes() && l.rcv_shut) {
                l.released = true;
                r(Outcome::Ok)
            } else if how.reads() {
                l.rcv_shut = true;
                r(Outcome::Ok)
            } else {
                r(Outcome::Err(Errno::ENOTCONN))
            }
        }
        Op::Shutdown(how) => {
            // inet_shutdown: a socket still SS_CONNECTING whose sk_state is SYN_SENT,
            // SYN_RECV or CLOSE becomes SS_DISCONNECTING (a failed connect here).
            if l.connecting && !profile.tcp.connect_ignores_shutdown {
                l.disconnecting = true;
            }
            if profile.tcp.unconnected_shutdown_deferred && !l.connecting {
                l.deferred_rd |= how.reads();
                l.deferred_wr |= how.writes();
            } else {
                l.rcv_shut |= how.reads();
                l.snd_shut |= how.writes();
            }
            r(Outcome::Err(Errno::ENOTCONN))
        }
        Op::Poll => r(Outcome::Poll(loose_tcp_poll(l, profile))),
        // tcp_inq of a socket that never received anything.
        Op::Inq => r(Outcome::Queued(0)),
        // SO_ERROR: sk_err (gVisor's LastError: hardError, then lastError).
        Op::Error => r(Outcome::SockError(
            l.err.take().or_else(|| l.last_err.take()),
        )),
        Op::State => r(Outcome::State(TcpState::Close.into())),
        // SO_LINGER is an option of the socket, kept when it connects (sk_lingertime
        // and SOCK_LINGER are not touched by connect).
        Op::Linger(secs) => {
            l.linger = Some(secs);
            r(Outcome::Ok)
        }
        // The world handles these.
        Op::Close | Op::Abort | Op::Connect | Op::Accept => r(Outcome::Ok),
    }
}

/// tcp_poll for a CLOSE socket: HUP (state CLOSE), OUT (not SYN_SENT), IN and RDHUP
/// on RCV_SHUTDOWN, ERR while an error is pending. gVisor's Readiness says HUP alone
/// for a socket that never connected (StateInitial), and answers every event (no
/// RDHUP) for one whose connect failed (StateError), error or not.
fn loose_tcp_poll(l: &Loose, profile: &Profile) -> PollSet {
    // lwip_netconn_do_close_internal after a full close: API_EVENT ERROR, RCVPLUS and
    // SENDPLUS, and lwip_pollscan reports each event from then on.
    if l.released {
        return PollSet(PollSet::IN.0 | PollSet::OUT.0 | PollSet::ERR.0);
    }
    if !l.connecting && profile.tcp.unconnected_poll_hup_only {
        return PollSet::HUP;
    }
    // lwIP's alloc_socket: a TCP socket not yet connected has no sendevent, and no
    // other event has happened to it.
    if !l.connecting && profile.tcp.unconnected_poll_empty {
        // ... but a shutdown(rd) fires a receive event (NETCONN_EVT_RCVPLUS).
        return PollSet::NONE.with_if(PollSet::IN, l.rcv_shut);
    }
    let p = super::world::loose_poll(l, true, true, profile.poll_rdhup);
    p.with_if(
        PollSet::ERR,
        l.connecting && profile.tcp.poll_err_when_closed,
    )
}

/// A never-connected TCP socket as poll and TCP_INFO see it.
pub fn loose_view(l: &Loose, profile: &Profile) -> EndView {
    EndView::Open {
        state: Some(TcpState::Close.into()),
        poll: loose_tcp_poll(l, profile),
    }
}

/// A call on the TCP listener (close, shutdown and accept are the world's).
pub fn listener_call(lst: &Listener, queued: bool, op: Op, profile: &Profile) -> StepResult {
    let keeps_listen = profile.tcp.listener_shutdown_keeps_listen;
    let r = |o| StepResult::plain(o);
    match op {
        // lwIP's lwip_netconn_do_write: a netconn not in NETCONN_NONE (a listener is
        // NETCONN_LISTEN) is "connecting, closing or in blocking write".
        Op::Write(_) | Op::WriteNoSignal(_) | Op::WriteOob(_)
            if profile.tcp.listener_write_einprogress =>
        {
            r(Outcome::Err(Errno::EINPROGRESS))
        }
        // sk_stream_wait_connect: LISTEN (or the CLOSE left by shutdown) is EPIPE.
        Op::Write(_) | Op::WriteNoSignal(_) | Op::WriteOob(_) => StepResult {
            outcome: Outcome::Err(Errno::EPIPE),
            sigpipe: profile.sigpipe_on_epipe && !matches!(op, Op::WriteNoSignal(_)),
        },
        // tcp_recvmsg_locked: "if (sk->sk_state == TCP_LISTEN) goto out" with ENOTCONN,
        // before it looks at MSG_OOB; a stopped listener is CLOSE: ENOTCONN too.
        Op::Read(_) | Op::Peek(_) | Op::ReadOob(_) => r(Outcome::Err(Errno::ENOTCONN)),
        // tcp_ioctl: SIOCOUTQ on a listener is EINVAL, as SIOCINQ.
        Op::Outq if profile.tcp.outq_enosys => r(Outcome::Err(Errno::ENOSYS)),
        Op::Outq if profile.tcp.outq_unsupported => r(Outcome::Err(Errno::ENOPROTOOPT)),
        Op::Outq => r(Outcome::Err(Errno::EINVAL)),
        Op::RcvBuf(_) | Op::SndBuf(_) => r(Outcome::Ok),
        Op::Poll => r(Outcome::Poll(listener_poll(lst, queued, keeps_listen))),
        Op::Error => r(Outcome::SockError(None)),
        Op::State => r(Outcome::State(listener_state(lst, keeps_listen).into())),
        // __inet_stream_connect, SS_UNCONNECTED but not CLOSE: EISCONN.
        Op::Connect => r(Outcome::Err(Errno::EISCONN)),
        // lwIP's lwip_ioctl FIONREAD: recv_avail, in every state (0 here).
        Op::Inq if profile.tcp.listener_inq_zero => r(Outcome::Queued(0)),
        // tcp_ioctl: SIOCINQ on a listener is EINVAL.
        Op::Inq => r(Outcome::Err(Errno::EINVAL)),
        Op::Linger(_) | Op::Shutdown(_) | Op::Close | Op::Abort | Op::Accept => r(Outcome::Ok),
    }
}

/// LISTEN; a listener stopped by `shutdown rd` is CLOSE on Linux, still LISTEN where
/// the profile keeps it so.
fn listener_state(lst: &Listener, keeps_listen: bool) -> TcpState {
    if lst.listening || keeps_listen {
        TcpState::Listen
    } else {
        TcpState::Close
    }
}

/// tcp_poll: a listener answers inet_csk_listen_poll (IN while a connection waits);
/// one stopped by `shutdown rd` is, on Linux, a plain CLOSE socket with no shutdown
/// bits (tcp_disconnect cleared them): OUT|HUP (the world makes it a loose socket
/// then, see `super::world`).
fn listener_poll(lst: &Listener, queued: bool, keeps_listen: bool) -> PollSet {
    if lst.listening || keeps_listen {
        PollSet::NONE.with_if(PollSet::IN, queued)
    } else {
        PollSet(PollSet::OUT.0 | PollSet::HUP.0)
    }
}

/// The TCP listener as poll and TCP_INFO see it.
pub fn listener_view(lst: &Listener, queued: bool, profile: &Profile) -> EndView {
    let keeps_listen = profile.tcp.listener_shutdown_keeps_listen;
    EndView::Open {
        state: Some(listener_state(lst, keeps_listen).into()),
        poll: listener_poll(lst, queued, keeps_listen),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::End::{A, B};

    fn run(m: &mut TcpModel, end: End, op: Op) -> StepResult {
        m.run(end, op).0
    }

    #[test]
    fn motivating_case_second_write_raises_sigpipe() {
        let mut m = TcpModel::new();
        assert_eq!(run(&mut m, A, Op::Write(5)).outcome, Outcome::Wrote(5));
        assert_eq!(
            run(&mut m, B, Op::Read(100)).outcome,
            Outcome::Data(b"ABCDE".to_vec())
        );
        assert_eq!(run(&mut m, B, Op::Close).outcome, Outcome::Ok);
        let (result, wire) = m.run(A, Op::Write(5));
        assert_eq!(result.outcome, Outcome::Wrote(5));
        assert_eq!(
            wire.iter().map(|w| w.kind).collect::<Vec<_>>(),
            vec![SegmentKind::Data(5), SegmentKind::Rst]
        );
        assert_eq!(
            run(&mut m, A, Op::Write(5)),
            StepResult {
                outcome: Outcome::Err(Errno::EPIPE),
                sigpipe: true
            }
        );
        assert_eq!(run(&mut m, A, Op::Read(10)).outcome, Outcome::Eof);
        assert_eq!(
            run(&mut m, A, Op::State).outcome,
            Outcome::State(TcpState::Close.into())
        );
    }

    #[test]
    fn reset_in_established_reports_econnreset_once_then_eof() {
        let mut m = TcpModel::new();
        run(&mut m, A, Op::Write(3));
        run(&mut m, B, Op::Close);
        assert_eq!(
            run(&mut m, A, Op::Read(1)).outcome,
            Outcome::Err(Errno::ECONNRESET)
        );
        assert_eq!(run(&mut m, A, Op::Read(1)).outcome, Outcome::Eof);
    }

    #[test]
    fn fin_wait2_then_fin_reports_close_not_time_wait() {
        let mut m = TcpModel::new();
        run(&mut m, A, Op::Shutdown(Shut::Wr));
        assert_eq!(
            run(&mut m, A, Op::State).outcome,
            Outcome::State(StateSet::one(TcpState::FinWait1).with(TcpState::FinWait2))
        );
        run(&mut m, B, Op::Shutdown(Shut::Wr));
        assert_eq!(
            run(&mut m, A, Op::State).outcome,
            Outcome::State(TcpState::Close.into())
        );
        assert_eq!(
            run(&mut m, B, Op::State).outcome,
            Outcome::State(TcpState::Close.into())
        );
    }

    /// `state` after close follows the four-way close in what the kernel still holds:
    /// the orphan's FIN_WAIT1|FIN_WAIT2 (delayed ACK), FIN_WAIT2, the peer's close
    /// giving TIME_WAIT here and nothing there; any other step stays `closed`.
    #[test]
    fn state_after_close_follows_the_close_to_the_end() {
        let fw2 = || Outcome::State(TcpState::FinWait2.into());
        let mut m = TcpModel::new();
        run(&mut m, A, Op::Close);
        assert_eq!(
            run(&mut m, A, Op::State).outcome,
            Outcome::State(StateSet::one(TcpState::FinWait1).with(TcpState::FinWait2))
        );
        m.advance(420);
        assert_eq!(run(&mut m, A, Op::State).outcome, fw2());
        assert_eq!(run(&mut m, A, Op::Write(1)).outcome, Outcome::Closed);
        run(&mut m, B, Op::Close);
        assert_eq!(
            run(&mut m, A, Op::State).outcome,
            Outcome::State(TcpState::TimeWait.into())
        );
        assert_eq!(run(&mut m, B, Op::State).outcome, Outcome::Gone);
        // The view of a closed fd is unchanged.
        assert_eq!(m.view_end(A), EndView::Closed);
        // gVisor cannot be asked.
        let mut g = TcpModel::with_profile(Profile::gvisor());
        run(&mut g, A, Op::Close);
        assert_eq!(run(&mut g, A, Op::State).outcome, Outcome::NotApplicable);
    }

    /// Linux 6.1 (`tcp.bare_fin_needs_receive_memory`): a FIN that finds the receive
    /// queue past a receive buffer made smaller drops, and stays away (the reader sees
    /// neither RDHUP nor CLOSE_WAIT, the writer stays FIN_WAIT1) until the writer's
    /// retransmission timer brings it again to a queue that takes it. Linux 6.18 takes
    /// it at once.
    #[test]
    fn a_bare_fin_over_a_shrunk_receive_buffer_waits_for_the_timer_on_6_1() {
        let state = |s: TcpState| Outcome::State(s.into());
        let steps = |m: &mut TcpModel| {
            run(m, A, Op::Write(8192));
            run(m, B, Op::RcvBuf(4096));
            run(m, A, Op::Shutdown(Shut::Wr));
        };
        let mut new = TcpModel::new();
        steps(&mut new);
        assert_eq!(
            run(&mut new, B, Op::State).outcome,
            state(TcpState::CloseWait)
        );
        let mut old = TcpModel::with_profile(Profile::linux_6_1());
        steps(&mut old);
        assert!(old.take_forks().is_empty(), "8192 unread: certainly over");
        assert_eq!(
            run(&mut old, B, Op::State).outcome,
            state(TcpState::Established)
        );
        assert_eq!(
            run(&mut old, A, Op::State).outcome,
            state(TcpState::FinWait1)
        );
        assert_eq!(
            run(&mut old, B, Op::Poll).outcome,
            Outcome::Poll(PollSet(PollSet::IN.0 | PollSet::OUT.0))
        );
        // Reading everything sends no FIN: only the timer does.
        assert!(matches!(
            run(&mut old, B, Op::Read(10_000)).outcome,
            Outcome::Data(d) if d.len() == 8192
        ));
        assert_eq!(
            run(&mut old, B, Op::State).outcome,
            state(TcpState::Established)
        );
        assert_eq!(
            run(&mut old, B, Op::Read(1)).outcome,
            Outcome::Err(Errno::EAGAIN)
        );
        // The first retransmission (the tail loss probe, or the RTO) is certainly
        // within a long sleep, and the queue is empty now.
        old.advance(420);
        assert!(old.take_forks().is_empty());
        assert_eq!(
            run(&mut old, B, Op::State).outcome,
            state(TcpState::CloseWait)
        );
        assert_eq!(run(&mut old, B, Op::Read(1)).outcome, Outcome::Eof);
    }

    /// An orphan alone in FIN_WAIT2 may be gone from its FIN_WAIT2 timeout on, and is
    /// gone once the timer has certainly fired: the model says both in between.
    #[test]
    fn state_after_close_leaves_the_fin_wait2_timeout_open() {
        let fw2 = Outcome::State(TcpState::FinWait2.into());
        let mut m = TcpModel::new();
        run(&mut m, A, Op::Close);
        m.advance(420);
        m.advance(420);
        assert_eq!(run(&mut m, A, Op::State).outcome, fw2);
        m.advance((FIN_WAIT2_TIMEOUT_MS - 840) as u32);
        assert_eq!(
            run(&mut m, A, Op::State).outcome,
            Outcome::Either(Box::new(fw2), Box::new(Outcome::Gone))
        );
        m.advance((FIN_WAIT2_GONE_MS - FIN_WAIT2_TIMEOUT_MS) as u32);
        assert_eq!(run(&mut m, A, Op::State).outcome, Outcome::Gone);
    }
}
