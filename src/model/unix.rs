//! The Unix-socket models: `AF_UNIX` `SOCK_STREAM` and `SOCK_SEQPACKET` on Linux, as
//! seen through the socket calls closefuzz makes.
//!
//! One model serves both types; a [`Kind`] says which, and the few places where they
//! differ are small match arms on it, each with the kernel function that explains it.
//! Rules were checked against `net/unix/af_unix.c` (unix_stream_sendmsg,
//! unix_seqpacket_sendmsg, unix_dgram_sendmsg, unix_stream_read_generic,
//! unix_seqpacket_recvmsg, __unix_dgram_recvmsg, unix_shutdown, unix_release_sock,
//! unix_poll, unix_dgram_poll, unix_writable), `net/core/datagram.c`
//! (__skb_try_recv_datagram) and `net/core/sock.c` (sock_alloc_send_pskb, sock_error,
//! the SO_ERROR case of sk_getsockopt).
//!
//! A Unix socket has no protocol on a wire: a send takes the peer's state lock and
//! queues the skb on the peer's receive queue, and close and shutdown write the peer's
//! `sk_shutdown` and `sk_err` directly. There is no handshake, no RST and no state
//! machine: both ends stay `TCP_ESTABLISHED` until their own close, so `state` is
//! [`Outcome::NotApplicable`]. The model still routes every effect on the peer through
//! an explicit queue drained by [`UnixModel::deliver_one`], like the TCP model, so the
//! wire log and the peer's changes come from one place; since the kernel does all of
//! it inside the sending call, [`UnixModel::run`] always drains the queue.
//!
//! Other platforms are Linux plus the differences in their profile's
//! [`UnixProfile`](super::profile::UnixProfile). gVisor's rules were read in
//! `pkg/sentry/socket/unix/unix.go` (socketOpsCommon.SendMsg),
//! `pkg/sentry/socket/unix/transport/connectioned.go` (connectionedEndpoint.Close,
//! Readiness), `transport/queue.go` (queue.Enqueue, Dequeue, CloseUnread) and
//! `pkg/sentry/mm/io.go` (MemoryManager.CopyInTo).

use super::common::Connection;
use super::memory::UnixMemory;
use super::profile::{Profile, UnixReset};
use super::world::{Listener, Loose};
use super::{SegmentKind, WireEvent};
use crate::step::{
    pattern, Bufs, End, EndView, Errno, Op, Outcome, PollSet, Shut, Sock, StepResult,
};
use std::collections::VecDeque;

/// Which Unix socket type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `SOCK_STREAM`: a byte stream (unix_stream_ops).
    Stream,
    /// `SOCK_SEQPACKET`: records with boundaries over a connection (unix_seqpacket_ops,
    /// which borrows the datagram send, receive and poll paths).
    Seqpacket,
}

impl Kind {
    /// Whether a write that fails with EPIPE raises SIGPIPE. unix_stream_sendmsg calls
    /// send_sig(SIGPIPE) on its EPIPE paths unless MSG_NOSIGNAL; the seqpacket path
    /// (unix_seqpacket_sendmsg -> unix_dgram_sendmsg, whose EPIPE comes from
    /// sock_alloc_send_pskb or the peer's RCV_SHUTDOWN check) never signals.
    fn epipe_raises_sigpipe(self) -> bool {
        match self {
            Kind::Stream => true,
            Kind::Seqpacket => false,
        }
    }

    /// Whether a pending `sk_err` is reported before anything else, queued data
    /// included. Seqpacket: unix_seqpacket_sendmsg starts with sock_error, and
    /// __skb_try_recv_datagram (under __unix_dgram_recvmsg) checks sock_error before it
    /// looks at the queue. Stream: unix_stream_read_generic returns queued data first
    /// and consults sock_error only on an empty queue; unix_stream_sendmsg fails on
    /// SEND_SHUTDOWN before sock_alloc_send_pskb could see the error.
    fn error_first(self) -> bool {
        match self {
            Kind::Stream => false,
            Kind::Seqpacket => true,
        }
    }

    /// Whether a zero-length write puts something on the peer's queue. Stream: the
    /// `while (sent < len)` loop of unix_stream_sendmsg never runs, so nothing is sent
    /// and the call returns 0. Seqpacket: unix_dgram_sendmsg queues an empty skb, a
    /// record of its own that a read returns as 0 bytes.
    fn zero_length_is_sent(self) -> bool {
        match self {
            Kind::Stream => false,
            Kind::Seqpacket => true,
        }
    }
}

/// One skb (Linux), message (gVisor) or record (seqpacket) on a receive queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Unit {
    /// The writer's stream offset of its first unread byte.
    offset: u64,
    /// Its unread bytes.
    len: usize,
    /// What it is charged to the writer until it is freed (see [`UnixMemory`]).
    charge: usize,
    /// Some of it was read already (unix_stream_read_generic's UNIXCB(skb).consumed).
    touched: bool,
    /// Its part in out-of-band data.
    oob: Oob,
}

/// A stream skb's part in out-of-band data (CONFIG_AF_UNIX_OOB).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Oob {
    /// Ordinary data (also a former OOB byte a later one replaced).
    No,
    /// The pending out-of-band byte (u->oob_skb).
    Pending,
    /// An out-of-band byte taken by `read oob`: a zero-length skb left in the queue
    /// until a normal read passes it.
    Taken,
}

/// An end's receive queue: the skbs (stream) or records (seqpacket) of the peer's
/// writes, oldest first. Bytes are never stored: the writer's pattern and each unit's
/// offset say what they are.
#[derive(Clone, Debug)]
struct RecvQueue {
    kind: Kind,
    units: VecDeque<Unit>,
}

impl RecvQueue {
    fn new(kind: Kind) -> RecvQueue {
        RecvQueue {
            kind,
            units: VecDeque::new(),
        }
    }

    /// Queues a unit of `len` bytes starting at the writer's stream offset `offset`.
    fn push(&mut self, offset: u64, len: usize, charge: usize) {
        if len == 0 && self.kind == Kind::Stream {
            return;
        }
        self.units.push_back(Unit {
            offset,
            len,
            charge,
            touched: false,
            oob: Oob::No,
        });
    }

    /// queue_oob: the one-byte skb of a `write N oob` becomes the pending OOB byte; a
    /// previous one stays queued as ordinary data.
    fn push_oob(&mut self, offset: u64, charge: usize) {
        for u in &mut self.units {
            if u.oob == Oob::Pending {
                u.oob = Oob::No;
            }
        }
        self.units.push_back(Unit {
            offset,
            len: 1,
            charge,
            touched: false,
            oob: Oob::Pending,
        });
    }

    /// unix_stream_recv_urg: the pending OOB byte, if any; without `peek` it is taken
    /// (the skb stays as a consumed one).
    fn take_oob(&mut self, writer: Sock, peek: bool) -> Option<u8> {
        let i = self.units.iter().position(|u| u.oob == Oob::Pending)?;
        let u = &mut self.units[i];
        let byte = crate::step::pattern_byte(writer, u.offset);
        if !peek {
            u.oob = Oob::Taken;
            u.len = 0;
            u.touched = true;
            // "af_unix: Don't leave consecutive consumed OOB skbs" (6.16): a taken OOB
            // skb right before this one is unlinked now.
            if i > 0 && self.units[i - 1].oob == Oob::Taken {
                self.units.remove(i - 1);
            }
        }
        Some(byte)
    }

    /// A read of up to `n` bytes written by `writer`: `None` when nothing is queued.
    /// Stream: unix_stream_read_generic copies across skb boundaries (credentials never
    /// split it: SO_PASSCRED is off and both ends are in one process) and frees each skb
    /// it empties; `release_on_touch`: a unit's charge goes at its first byte read
    /// (gVisor dequeues the whole message then). Seqpacket: __unix_dgram_recvmsg returns
    /// one record, truncated to `n` (the rest is lost); an empty record gives
    /// `Some(empty)`. `consumed_ends`: see
    /// [`UnixProfile::consumed_oob_ends_read`](super::profile::UnixProfile::consumed_oob_ends_read).
    fn take(
        &mut self,
        writer: Sock,
        n: usize,
        release_on_touch: bool,
        consumed_ends: bool,
    ) -> Option<Vec<u8>> {
        if self.units.is_empty() {
            return None;
        }
        if self.kind == Kind::Seqpacket {
            let u = self.units.pop_front()?;
            return Some(pattern(writer, u.offset, n.min(u.len)));
        }
        if n == 0 {
            return Some(Vec::new());
        }
        let mut out = Vec::new();
        let pending = self.units.iter().any(|u| u.oob == Oob::Pending);
        while out.len() < n {
            let Some(u) = self.units.front_mut() else {
                break;
            };
            // manage_oob: a read that has copied something stops before the pending
            // OOB byte, and before a taken one unless another is pending; one that has
            // not drops the pending byte (unlinked, unread) and passes a taken one.
            match u.oob {
                // Linux 6.1's manage_oob: an empty skb at the head is unlinked and the
                // read ends, copied or not.
                Oob::Taken if consumed_ends => {
                    self.units.pop_front();
                    break;
                }
                Oob::Pending if !out.is_empty() => break,
                Oob::Taken if !out.is_empty() && !pending => break,
                Oob::Pending | Oob::Taken => {
                    self.units.pop_front();
                    continue;
                }
                Oob::No => {}
            }
            let k = (n - out.len()).min(u.len);
            out.extend(pattern(writer, u.offset, k));
            u.offset += k as u64;
            u.len -= k;
            u.touched = true;
            if release_on_touch {
                u.charge = 0;
            }
            if u.len == 0 {
                self.units.pop_front();
            }
        }
        (!out.is_empty()).then_some(out)
    }

    /// What [`RecvQueue::take`] would return, left queued (MSG_PEEK): the stream's
    /// first bytes (unix_stream_read_generic peeks across skbs; with `one_write`, only
    /// what is left of the oldest unit), or the oldest record truncated but kept whole.
    /// `passes_consumed`: see
    /// [`UnixProfile::peek_passes_consumed_oob`](super::profile::UnixProfile::peek_passes_consumed_oob).
    fn peek(
        &self,
        writer: Sock,
        n: usize,
        one_write: bool,
        passes_consumed: bool,
    ) -> Option<Vec<u8>> {
        let first = self.units.front()?;
        if self.kind == Kind::Seqpacket || one_write {
            return Some(pattern(writer, first.offset, n.min(first.len)));
        }
        if n == 0 {
            return Some(Vec::new());
        }
        // As a read, without taking or dropping anything.
        let pending = self.units.iter().any(|u| u.oob == Oob::Pending);
        let mut out = Vec::new();
        // Linux 6.1: whether manage_oob looks at this skb. It does at the head and after
        // a copied chunk, not at the skb its skip loop steps to past an empty one.
        let mut checked = true;
        for u in &self.units {
            if out.len() >= n {
                break;
            }
            if passes_consumed {
                match u.oob {
                    Oob::Taken => {
                        checked = false;
                        continue;
                    }
                    Oob::Pending if checked && !out.is_empty() => break,
                    Oob::Pending if checked => continue,
                    Oob::Pending | Oob::No => checked = true,
                }
            } else {
                match u.oob {
                    Oob::Pending if !out.is_empty() => break,
                    Oob::Taken if !out.is_empty() && !pending => break,
                    Oob::Pending | Oob::Taken => continue,
                    Oob::No => {}
                }
            }
            let k = (n - out.len()).min(u.len);
            out.extend(pattern(writer, u.offset, k));
        }
        (!out.is_empty()).then_some(out)
    }

    /// The bytes queued, in all units (unix_inq_len).
    fn bytes(&self) -> usize {
        self.units.iter().map(|u| u.len).sum()
    }

    /// What the queue still charges its writer.
    fn charged(&self) -> usize {
        self.units.iter().map(|u| u.charge).sum()
    }

    /// Whether the queue holds no skb (an empty record is still one).
    fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    /// Whether closing with this queue resets the peer. unix_release_sock sets the
    /// peer's sk_err to ECONNRESET when its receive queue holds an skb, but (since the
    /// 2025 fix "af_unix: Don't set -ECONNRESET for consumed OOB skb", under
    /// CONFIG_AF_UNIX_OOB, which distributions enable) it first skips a head skb with
    /// no unread bytes, taking it for a consumed OOB byte. Streams never queue such an
    /// skb without MSG_OOB; on seqpacket an empty record at the head is skipped the
    /// same way, so a lone unread empty record does not reset the peer, while an empty
    /// record followed by any other does.
    fn resets_peer_on_close(&self) -> bool {
        match self.units.front() {
            None => false,
            Some(u) if u.len == 0 => self.units.len() > 1,
            Some(_) => true,
        }
    }

    /// Frees everything queued.
    fn purge(&mut self) {
        self.units.clear();
    }

    fn describe(&self) -> Option<String> {
        if self.units.is_empty() {
            return None;
        }
        Some(match self.kind {
            Kind::Stream => format!("{} unread", self.bytes()),
            Kind::Seqpacket => format!("{} unread in {} records", self.bytes(), self.units.len()),
        })
    }
}

/// One end's socket.
#[derive(Clone, Debug)]
struct UnixEnd {
    /// The descriptor is open. Closing it releases the socket at once
    /// (unix_release -> unix_release_sock): no orphan outlives the fd.
    fd_open: bool,
    /// sk_shutdown & RCV_SHUTDOWN: set by our own SHUT_RD, or by the peer's SHUT_WR or
    /// close.
    rcv_shut: bool,
    /// sk_shutdown & SEND_SHUTDOWN: set by our own SHUT_WR, or by the peer's SHUT_RD or
    /// close.
    snd_shut: bool,
    /// sk_err: only ever ECONNRESET, set when the peer closes with unread data.
    err: Option<Errno>,
    /// The receive queue is marked "closed with unread data" (gVisor's queue.unread,
    /// set by the peer's close when the profile puts the reset there): once the queue
    /// is drained, every read fails with ECONNRESET. Never cleared.
    reset_mark: bool,
    rq: RecvQueue,
    /// Bytes written so far (where the pattern continues).
    sent: u64,
    /// SO_RCVBUF / SO_SNDBUF as set (only the send buffer matters on a Unix socket).
    bufs: Bufs,
    /// Linux's cached count of unread stream bytes (unix_sk(sk)->inq_len, what
    /// SIOCINQ returns since 6.16): up with every skb queued, down with every byte a
    /// read copies and with a taken OOB byte, but not when a read drops a pending OOB
    /// byte (manage_oob unlinks it without updating the count).
    inq_len: usize,
    /// What the peer's queue held of ours when the peer closed, where the profile
    /// keeps counting it for SIOCOUTQ (gVisor's write queue outlives the reader).
    gone_charge: usize,
}

impl UnixEnd {
    fn connected(kind: Kind) -> UnixEnd {
        UnixEnd {
            fd_open: true,
            rcv_shut: false,
            snd_shut: false,
            err: None,
            reset_mark: false,
            rq: RecvQueue::new(kind),
            sent: 0,
            bufs: Bufs::default(),
            inq_len: 0,
            gone_charge: 0,
        }
    }
}

/// What a call did to the peer, on its way there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Msg {
    /// An skb (stream) or a record (seqpacket) for the peer's receive queue, and what
    /// it is charged to its writer.
    Data {
        offset: u64,
        len: usize,
        charge: usize,
        oob: bool,
    },
    /// The sender's close or shutdown marks the peer: sk_shutdown bits to OR in, and
    /// where ECONNRESET goes, if anywhere.
    Mark {
        rcv: bool,
        snd: bool,
        reset: Option<UnixReset>,
    },
}

#[derive(Clone, Copy, Debug)]
struct InFlight {
    from: End,
    msg: Msg,
}

/// A model of one Unix-socket connection between ends `a` and `b` on Linux.
#[derive(Clone, Debug)]
pub struct UnixModel {
    kind: Kind,
    profile: Profile,
    ends: [UnixEnd; 2],
    /// The sockets' script names (the accepted side is `l` until accepted).
    names: [Sock; 2],
    wire: VecDeque<InFlight>,
    log: Vec<WireEvent>,
    /// The kernel's answer to the step being run (unused: every Unix rule is exact).
    hint: Option<super::Hint>,
}

impl UnixModel {
    /// A freshly connected pair of `kind` with nothing queued: the state right after
    /// accept (both ends TCP_ESTABLISHED, each the other's unix_peer).
    pub fn new(kind: Kind) -> UnixModel {
        UnixModel::with_profile(kind, Profile::linux())
    }

    /// A fresh pair as `profile`'s platform behaves.
    pub fn with_profile(kind: Kind, profile: Profile) -> UnixModel {
        UnixModel {
            kind,
            profile,
            ends: [UnixEnd::connected(kind), UnixEnd::connected(kind)],
            names: [Sock::A, Sock::B],
            wire: VecDeque::new(),
            log: Vec::new(),
            hint: None,
        }
    }

    /// Which socket type this models.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    fn end(&mut self, e: End) -> &mut UnixEnd {
        &mut self.ends[e.index()]
    }

    /// Runs one call on `end`, then delivers everything in flight (the kernel does
    /// all of it inside the call, under the peer's state lock); returns the result and
    /// what crossed to the peer.
    pub fn run(&mut self, end: End, op: Op) -> (StepResult, Vec<WireEvent>) {
        self.log.clear();
        let r = self.drive(end, op);
        (r, std::mem::take(&mut self.log))
    }

    fn send(&mut self, from: End, msg: Msg, note: &'static str) {
        let kind = match msg {
            Msg::Data { len, .. } => SegmentKind::Data(len),
            Msg::Mark { .. } => SegmentKind::PeerGone,
        };
        self.log.push(WireEvent {
            from: self.names[from.index()],
            to: self.names[from.peer().index()],
            kind,
            note,
        });
        self.wire.push_back(InFlight { from, msg });
    }

    fn call(&mut self, x: End, op: Op) -> StepResult {
        match op {
            Op::Write(n) => self.write(x, n as usize, false),
            // MSG_NOSIGNAL: unix_stream_sendmsg skips send_sig; the result is the same.
            Op::WriteNoSignal(n) => StepResult {
                sigpipe: false,
                ..self.write(x, n as usize, false)
            },
            Op::WriteOob(n) => self.write(x, n as usize, true),
            Op::Read(n) => StepResult::plain(self.read(x, n as usize, false)),
            Op::Peek(n) => StepResult::plain(self.read(x, n as usize, true)),
            Op::ReadOob(n) => StepResult::plain(self.read_oob(x, n as usize)),
            // unix_ioctl SIOCINQ -> unix_inq_len: the stream's cached count (or, on
            // 6.1, the bytes of every queued skb), or the bytes of every queued record.
            Op::Inq => StepResult::plain(Outcome::Queued(match self.kind {
                Kind::Stream if !self.profile.unix.inq_counts_queue => self.ends[x.index()].inq_len,
                Kind::Stream | Kind::Seqpacket => self.ends[x.index()].rq.bytes(),
            })),
            // unix_outq_len: sk_wmem_alloc, what our skbs still unread by the peer are
            // charged (gVisor: the bytes of its write queue).
            Op::Outq => StepResult::plain(Outcome::Queued(
                self.ends[x.peer().index()].rq.charged() + self.ends[x.index()].gone_charge,
            )),
            // Only SO_SNDBUF matters, from the next write on.
            Op::RcvBuf(v) => {
                self.end(x).bufs.rcvbuf = Some(v);
                StepResult::plain(Outcome::Ok)
            }
            Op::SndBuf(v) => {
                self.end(x).bufs.sndbuf = Some(v);
                StepResult::plain(Outcome::Ok)
            }
            Op::Shutdown(how) => StepResult::plain(self.shutdown(x, how)),
            // SO_LINGER is a generic socket option (sk_setsockopt accepts it on any
            // socket) and unix_release ignores it: with no RST to send, an abortive
            // close is a plain close.
            Op::Close | Op::Abort => StepResult::plain(self.close(x)),
            Op::Poll => StepResult::plain(Outcome::Poll(self.poll(x))),
            // SO_ERROR returns sk_err and clears it (sock_error, from sk_getsockopt).
            Op::Error => StepResult::plain(Outcome::SockError(self.end(x).err.take())),
            // No TCP_INFO on a Unix socket; the executor makes no call either.
            Op::State => StepResult::plain(Outcome::NotApplicable),
            // unix_stream_connect on a connected socket, once the listener checks
            // passed (the world makes those): EISCONN.
            Op::Connect => StepResult::plain(Outcome::Err(Errno::EISCONN)),
            // unix_accept on a socket that is not listening (never reached: the world
            // makes accept a call on the listener).
            Op::Accept => StepResult::plain(Outcome::Err(Errno::EINVAL)),
            // SO_LINGER is accepted (sk_setsockopt) and never read by unix_release.
            Op::Linger(_) => StepResult::plain(Outcome::Ok),
        }
    }

    fn write(&mut self, x: End, n: usize, oob: bool) -> StepResult {
        let kind = self.kind;
        // unix_stream_sendmsg: MSG_OOB with no byte to make urgent is EOPNOTSUPP before
        // anything is looked at.
        if oob && n == 0 && kind == Kind::Stream {
            return StepResult::plain(Outcome::Err(Errno::EOPNOTSUPP));
        }
        let peer_refuses = {
            // Whether the peer socket is dead or shut for reading: unix_stream_sendmsg
            // and unix_dgram_sendmsg check both under the peer's lock. Never reached in
            // practice: the peer's close and SHUT_RD both set our SEND_SHUTDOWN first
            // (unix_release_sock, unix_shutdown), which fails earlier.
            let p = &self.ends[x.peer().index()];
            !p.fd_open || p.rcv_shut
        };
        let sigpipe = kind.epipe_raises_sigpipe() && self.profile.sigpipe_on_epipe;
        if n == 0 && !self.profile.unix.zero_length_send_reaches_socket {
            // gVisor: socketOpsCommon.SendMsg copies the payload in with
            // src.CopyInTo, and MemoryManager.CopyInTo returns (0, nil) for an empty
            // range before calling the endpoint writer: nothing is checked or sent.
            return StepResult::plain(Outcome::Wrote(0));
        }
        let mem = self.profile.unix.memory;
        let shut_first = self.profile.unix.oversize_record_after_shutdown_epipe;
        let e = self.end(x);
        let epipe = StepResult {
            outcome: Outcome::Err(Errno::EPIPE),
            sigpipe,
        };
        if kind.error_first() {
            // unix_seqpacket_sendmsg: a pending error (ECONNRESET from the peer's
            // close with unread data) is returned, and cleared, before anything else.
            if let Some(err) = e.err.take() {
                return StepResult::plain(Outcome::Err(err));
            }
            // unix_dgram_sendmsg: "if (msg->msg_flags&MSG_OOB) return -EOPNOTSUPP",
            // before the length and the connection are looked at.
            if oob {
                return StepResult::plain(Outcome::Err(Errno::EOPNOTSUPP));
            }
        }
        let sndbuf = mem.sndbuf(e.bufs.sndbuf);
        // unix_dgram_sendmsg: a record longer than the buffer can ever hold is EMSGSIZE,
        // checked before anything about the connection.
        if kind == Kind::Seqpacket && n > mem.max_record(sndbuf) && !(e.snd_shut && shut_first) {
            return StepResult::plain(Outcome::Err(Errno::EMSGSIZE));
        }
        // SEND_SHUTDOWN (ours, or set by the peer's SHUT_RD or close) fails with EPIPE,
        // whatever the length: unix_stream_sendmsg checks it before its send loop (and
        // signals), sock_alloc_send_pskb fails the seqpacket path with it (silently).
        if e.snd_shut {
            return epipe;
        }
        if n == 0 && !kind.zero_length_is_sent() {
            return StepResult::plain(Outcome::Wrote(0));
        }
        if peer_refuses {
            return epipe;
        }
        let mut charged = self.ends[x.peer().index()].rq.charged();
        if kind == Kind::Seqpacket {
            // A record that finds the buffer full is EAGAIN (sock_alloc_send_pskb,
            // non-blocking): whole or not at all.
            let fits = match mem {
                UnixMemory::Truesize => mem.room(charged, sndbuf) > 0,
                UnixMemory::Bytes => mem.room(charged, sndbuf) >= n,
            };
            if !fits {
                return StepResult::plain(Outcome::Err(Errno::EAGAIN));
            }
            let e = self.end(x);
            let offset = e.sent;
            e.sent += n as u64;
            let note = if n == 0 {
                "write 0: an empty record, read back as 0 bytes (unix_dgram_sendmsg)"
            } else {
                "write: one record on the peer's receive queue (unix_dgram_sendmsg)"
            };
            let charge = mem.record_charge(n);
            self.send(
                x,
                Msg::Data {
                    offset,
                    len: n,
                    charge,
                    oob: false,
                },
                note,
            );
            return StepResult::plain(Outcome::Wrote(n));
        }
        // unix_stream_sendmsg: skb after skb while the charge is below the send buffer
        // (checked before each allocation, so the last skb overshoots it); a full buffer
        // ends the call with what was sent, or EAGAIN if nothing was.
        // MSG_OOB: all but the last byte go as ordinary skbs; the last is queue_oob's.
        let ordinary = if oob { n - 1 } else { n };
        let mut sent = 0;
        while sent < ordinary {
            let room = mem.room(charged, sndbuf);
            if room == 0 {
                break;
            }
            let mut c = mem.stream_chunk(sndbuf, ordinary - sent);
            if mem == UnixMemory::Bytes {
                c = c.min(room);
            }
            let charge = mem.stream_charge(c);
            charged += charge;
            let e = self.end(x);
            let offset = e.sent;
            e.sent += c as u64;
            sent += c;
            self.send(
                x,
                Msg::Data {
                    offset,
                    len: c,
                    charge,
                    oob: false,
                },
                "write: one skb on the peer's receive queue (unix_stream_sendmsg)",
            );
        }
        // queue_oob allocates its one-byte skb with the same check; a full buffer ends
        // the call with the ordinary bytes sent, and no OOB byte.
        if oob && sent == ordinary && mem.room(charged, sndbuf) > 0 {
            let charge = mem.stream_charge(1);
            let e = self.end(x);
            let offset = e.sent;
            e.sent += 1;
            sent += 1;
            self.send(
                x,
                Msg::Data {
                    offset,
                    len: 1,
                    charge,
                    oob: true,
                },
                "write oob: the last byte becomes the peer's out-of-band byte (queue_oob)",
            );
        }
        if sent == 0 {
            return StepResult::plain(Outcome::Err(Errno::EAGAIN));
        }
        StepResult::plain(Outcome::Wrote(sent))
    }

    /// A read; with `peek` (MSG_PEEK) the data is left queued, and a pending error is
    /// still taken (sock_error, as without MSG_PEEK).
    fn read(&mut self, x: End, n: usize, peek: bool) -> Outcome {
        let kind = self.kind;
        if n == 0 && self.profile.unix.zero_length_recv_returns_zero {
            // gVisor: an empty receive returns 0 before the socket is looked at.
            return Outcome::Eof;
        }
        let one_write_peek = self.profile.unix.peek_stops_at_one_write;
        let passes_consumed = self.profile.unix.peek_passes_consumed_oob;
        let consumed_ends = self.profile.unix.consumed_oob_ends_read;
        let release_on_touch = self.profile.unix.memory == UnixMemory::Bytes;
        let writer = self.names[x.peer().index()];
        let e = self.end(x);
        // Seqpacket: __skb_try_recv_datagram returns sock_error before it looks at the
        // queue, so ECONNRESET comes out ahead of data still queued.
        if kind.error_first() {
            if let Some(err) = e.err.take() {
                return Outcome::Err(err);
            }
        }
        // Queued data is readable whatever the shutdown state: neither our SHUT_RD nor
        // the peer's close purges this queue.
        let data = if peek {
            if release_on_touch && kind == Kind::Stream {
                // gVisor's stream receiver takes the first message off the queue into
                // its own buffer to peek at it: its charge is released.
                if let Some(u) = e.rq.units.front_mut() {
                    u.charge = 0;
                }
            }
            e.rq.peek(writer, n, one_write_peek, passes_consumed)
        } else {
            e.rq.take(writer, n, release_on_touch, consumed_ends)
        };
        if let (Some(d), false, Kind::Stream) = (&data, peek, kind) {
            e.inq_len = e.inq_len.saturating_sub(d.len());
        }
        if let Some(data) = data {
            // An empty seqpacket record reads as 0: indistinguishable from EOF.
            return if data.is_empty() {
                Outcome::Eof
            } else {
                Outcome::Data(data)
            };
        }
        // Stream, empty queue: "POSIX 1003.1g mandates this order" in
        // unix_stream_read_generic: sock_error, then RCV_SHUTDOWN (0 bytes), then EAGAIN.
        if let Some(err) = e.err.take() {
            return Outcome::Err(err);
        }
        // RCV_SHUTDOWN with nothing queued reads 0 (seqpacket: the "Signal EOF on
        // disconnected non-blocking SEQPACKET socket" rule of __unix_dgram_recvmsg).
        // A queue marked by the peer's close with unread data fails instead, every
        // time (gVisor's queue.Dequeue: ErrConnectionReset when closed and unread).
        if e.rcv_shut {
            if e.reset_mark {
                Outcome::Err(Errno::ECONNRESET)
            } else {
                Outcome::Eof
            }
        } else {
            Outcome::Err(Errno::EAGAIN)
        }
    }

    /// `read N oob`: seqpacket has no out-of-band data (__unix_dgram_recvmsg:
    /// EOPNOTSUPP, before the error and the queue); a stream returns the pending OOB
    /// byte (unix_stream_recv_urg), whatever the shutdowns and the error, or EINVAL.
    fn read_oob(&mut self, x: End, n: usize) -> Outcome {
        if self.kind == Kind::Seqpacket {
            return Outcome::Err(Errno::EOPNOTSUPP);
        }
        let writer = self.names[x.peer().index()];
        let e = self.end(x);
        match e.rq.take_oob(writer, false) {
            Some(byte) => {
                e.inq_len = e.inq_len.saturating_sub(1);
                Outcome::Data(if n == 0 { vec![] } else { vec![byte] })
            }
            None => Outcome::Err(Errno::EINVAL),
        }
    }

    fn shutdown(&mut self, x: End, how: Shut) -> Outcome {
        let peer = x.peer();
        // unix_shutdown ORs the bits into our sk_shutdown and always succeeds: a
        // connected socket keeps its unix_peer pointer even after the peer's close, so
        // there is no ENOTCONN as on a closed TCP socket.
        let e = self.end(x);
        e.rcv_shut |= how.reads();
        e.snd_shut |= how.writes();
        // Then it mirrors them into the peer: our SHUT_RD is the peer's SEND_SHUTDOWN,
        // our SHUT_WR the peer's RCV_SHUTDOWN. A peer that has closed is marked too, to
        // no effect (its socket is dead); the log shows only marks someone can see.
        if self.ends[peer.index()].fd_open {
            let note = match how {
                Shut::Rd => "shutdown(rd) sets the peer's SEND_SHUTDOWN (unix_shutdown)",
                Shut::Wr => "shutdown(wr) sets the peer's RCV_SHUTDOWN (unix_shutdown)",
                Shut::RdWr => {
                    "shutdown(rdwr) sets both of the peer's shutdown bits (unix_shutdown)"
                }
            };
            let mark = Msg::Mark {
                rcv: how.writes(),
                snd: how.reads(),
                reset: None,
            };
            self.send(x, mark, note);
        }
        Outcome::Ok
    }

    fn close(&mut self, x: End) -> Outcome {
        self.release(x, false);
        Outcome::Ok
    }

    /// A step on a closed descriptor: no call is made (Unix sockets have no state to
    /// ask for afterwards).
    pub fn call_closed(&mut self, _x: End, _op: Op) -> StepResult {
        super::common::closed_result()
    }

    /// An unaccepted server side whose listener closes: unix_release_sock(embryo, 1)
    /// gives the client SHUTDOWN_MASK and, because it is an embryo, ECONNRESET
    /// whatever was queued (where the profile says so; gVisor's
    /// connectionedEndpoint.Close treats it as any close).
    pub fn forget_unaccepted(&mut self, x: End) {
        self.release(x, true);
    }

    /// unix_release_sock: our sk_shutdown = SHUTDOWN_MASK, state TCP_CLOSE, and the
    /// receive queue is freed after the peer is told.
    fn release(&mut self, x: End, embryo: bool) {
        let peer = x.peer();
        let e = self.end(x);
        e.fd_open = false;
        e.rcv_shut = true;
        e.snd_shut = true;
        let unread = e.rq.resets_peer_on_close();
        let charged = e.rq.charged();
        e.rq.purge();
        if !self.ends[peer.index()].fd_open {
            return;
        }
        if self.profile.unix.outq_outlives_reader {
            // gVisor: the peer's write queue is this socket's read queue, which the close
            // leaves in place (CloseUnread only marks it): SIOCOUTQ still counts it.
            self.end(peer).gone_charge = charged;
        }
        // "No more writes": the peer gets SHUTDOWN_MASK, and ECONNRESET if we had
        // unread data (see RecvQueue::resets_peer_on_close for what counts), or were an
        // embryo. Linux puts it in the peer's sk_err; gVisor's
        // connectionedEndpoint.Close calls CloseUnread on the peer's receive queue when
        // RecvQueuedSize() > 0 (bytes: the same test here, since no empty record ever
        // reaches a gVisor queue), and has no socket error for Unix sockets at all.
        let embryo_resets = embryo && self.profile.unix.listener_close_resets_queued;
        let reset = (unread || embryo_resets).then_some(self.profile.unix.reset_on_unread_close);
        let note = match (embryo, reset) {
            (true, Some(_)) if embryo_resets => {
                "listener closed with this connection queued: the client gets SHUTDOWN_MASK and ECONNRESET (unix_release_sock, embrion)"
            }
            (true, None) => {
                "listener closed with this connection queued: the client's peer is gone, no error"
            }
            (_, Some(UnixReset::SockError)) => {
                "close with unread data: peer gets SHUTDOWN_MASK and sk_err ECONNRESET (unix_release_sock)"
            }
            (_, Some(UnixReset::ReadQueue)) => {
                "close with unread data: peer's queue closed and marked unread, its reads end in ECONNRESET (connectionedEndpoint.Close)"
            }
            (false, None) => "close: peer gets SHUTDOWN_MASK (unix_release_sock)",
        };
        let mark = Msg::Mark {
            rcv: true,
            snd: true,
            reset,
        };
        self.send(x, mark, note);
    }

    /// Applies the oldest effect in flight to its receiver; false if none was.
    pub fn deliver_one(&mut self) -> bool {
        let Some(f) = self.wire.pop_front() else {
            return false;
        };
        let y = self.end(f.from.peer());
        if !y.fd_open {
            // A dead socket: the sender's checks refuse data for it, and marks on it
            // change nothing anyone can observe.
            return true;
        }
        match f.msg {
            Msg::Data {
                offset,
                len,
                charge,
                oob,
            } => {
                y.inq_len += len;
                if oob {
                    y.rq.push_oob(offset, charge);
                } else {
                    y.rq.push(offset, len, charge);
                }
            }
            Msg::Mark { rcv, snd, reset } => {
                y.rcv_shut |= rcv;
                y.snd_shut |= snd;
                match reset {
                    Some(UnixReset::SockError) => y.err = Some(Errno::ECONNRESET),
                    Some(UnixReset::ReadQueue) => y.reset_mark = true,
                    None => {}
                }
            }
        }
        true
    }

    /// unix_poll (stream) and unix_dgram_poll (seqpacket), for the events closefuzz
    /// asks about. They agree on everything a connected pair can show here:
    /// - ERR while sk_err is set (dgram also looks at the error queue, never used);
    /// - HUP when sk_shutdown == SHUTDOWN_MASK (the extra HUP for TCP_CLOSE needs our
    ///   own close, after which nobody polls);
    /// - IN and RDHUP on RCV_SHUTDOWN, IN on a non-empty queue (an empty record too);
    /// - OUT from unix_writable: our unread skbs' truesize stays far below a quarter
    ///   of sk_sndbuf at the sizes closefuzz writes. Shutdown does not clear it ("we
    ///   set writable also when the other side has shut down"). unix_dgram_poll's extra
    ///   test (peer not connected back to us and its queue over max_dgram_qlen) can
    ///   hold only once the peer has closed, and its queue is purged then.
    ///
    /// gVisor's connectionedEndpoint.Readiness reports only IN (receiver.Readable: the
    /// queue is closed or holds a message) and OUT (connected.Writable); RDHUP is a
    /// common difference, HUP a Unix one, and ERR never arises there (no sk_err).
    fn poll(&self, x: End) -> PollSet {
        let e = &self.ends[x.index()];
        let mem = self.profile.unix.memory;
        let charged = self.ends[x.peer().index()].rq.charged();
        let closed_writable = e.snd_shut && self.profile.unix.shut_queue_writable;
        PollSet::NONE
            .with_if(
                PollSet::OUT,
                closed_writable || mem.writable(charged, mem.sndbuf(e.bufs.sndbuf)),
            )
            .with_if(PollSet::ERR, e.err.is_some())
            .with_if(
                PollSet::HUP,
                e.rcv_shut && e.snd_shut && self.profile.unix.poll_hup,
            )
            .with_if(PollSet::IN, e.rcv_shut || !e.rq.is_empty())
            .with_if(PollSet::RDHUP, e.rcv_shut && self.profile.poll_rdhup)
    }

    /// One side's poll revents (no TCP state on a Unix socket).
    pub fn view_end(&self, x: End) -> EndView {
        if self.ends[x.index()].fd_open {
            EndView::Open {
                state: None,
                poll: self.poll(x),
            }
        } else {
            EndView::Closed
        }
    }

    /// A one-line account of an end, for `explain`.
    pub fn describe(&self, x: End) -> String {
        let e = &self.ends[x.index()];
        let mut parts = vec![match self.kind {
            Kind::Stream => "unix stream".to_string(),
            Kind::Seqpacket => "unix seqpacket".to_string(),
        }];
        if !e.fd_open {
            parts.push("fd closed (socket released)".into());
            return parts.join(", ");
        }
        parts.push("fd open".into());
        if let Some(q) = e.rq.describe() {
            parts.push(q);
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
        if e.reset_mark {
            parts.push("reads end in ECONNRESET".into());
        }
        parts.join(", ")
    }
}

super::common::impl_connection!(UnixModel);

/// A Unix socket in no connection: TCP_CLOSE, no peer.
pub fn loose_call(l: &mut Loose, kind: Kind, op: Op, profile: &Profile) -> StepResult {
    let r = |o| StepResult::plain(o);
    match op {
        // gVisor: an empty send returns 0 before the socket sees it.
        Op::Write(0) | Op::WriteNoSignal(0) if !profile.unix.zero_length_send_reaches_socket => {
            r(Outcome::Wrote(0))
        }
        Op::WriteOob(0) if kind == Kind::Stream => peerless_call(kind, op, profile),
        Op::Read(_) | Op::Peek(_) | Op::ReadOob(_) | Op::Outq | Op::RcvBuf(_) | Op::SndBuf(_) => {
            peerless_call(kind, op, profile)
        }
        Op::Write(_) | Op::WriteNoSignal(_) | Op::WriteOob(_) => match kind {
            // unix_stream_sendmsg: no unix_peer is ENOTCONN, before the shutdown check.
            Kind::Stream => r(Outcome::Err(Errno::ENOTCONN)),
            // unix_seqpacket_sendmsg: sock_error, then "not ESTABLISHED" is ENOTCONN.
            Kind::Seqpacket => r(Outcome::Err(l.err.take().unwrap_or(Errno::ENOTCONN))),
        },
        // unix_shutdown ORs the bits in and succeeds, peer or not (gVisor: ENOTCONN).
        Op::Shutdown(how) => {
            if profile.unix.shutdown_needs_connection {
                return r(Outcome::Err(Errno::ENOTCONN));
            }
            l.rcv_shut |= how.reads();
            l.snd_shut |= how.writes();
            r(Outcome::Ok)
        }
        Op::Poll => r(Outcome::Poll(loose_unix_poll(l, profile))),
        // unix_inq_len: nothing queued (gVisor: no peer, ENOTCONN).
        Op::Inq if profile.unix.unconnected_inq_enotconn => r(Outcome::Err(Errno::ENOTCONN)),
        Op::Inq => r(Outcome::Queued(0)),
        Op::Error => r(Outcome::SockError(l.err.take())),
        Op::State => r(Outcome::NotApplicable),
        Op::Linger(_) => r(Outcome::Ok),
        Op::Close | Op::Abort | Op::Connect | Op::Accept => r(Outcome::Ok),
    }
}

/// The rules a never-connected socket and the listener share, having no peer (for
/// reads, `outq`, buffer sizes and an empty `write oob`; other calls are each one's
/// own).
fn peerless_call(kind: Kind, op: Op, profile: &Profile) -> StepResult {
    let r = StepResult::plain;
    match op {
        // unix_stream_sendmsg: MSG_OOB with no byte is EOPNOTSUPP before anything else.
        Op::WriteOob(0) if kind == Kind::Stream => r(Outcome::Err(Errno::EOPNOTSUPP)),
        // gVisor: an empty receive returns 0 before the socket is looked at.
        Op::Read(0) | Op::Peek(0) if profile.unix.zero_length_recv_returns_zero => r(Outcome::Eof),
        // unix_stream_read_generic checks the state before MSG_OOB (EINVAL);
        // unix_seqpacket_recvmsg says ENOTCONN.
        Op::Read(_) | Op::Peek(_) | Op::ReadOob(_) => {
            r(Outcome::Err(unconnected_read_error(kind, profile)))
        }
        // unix_outq_len: nothing of ours is queued anywhere (gVisor: no peer, ENOTCONN).
        Op::Outq if profile.unix.unconnected_inq_enotconn => r(Outcome::Err(Errno::ENOTCONN)),
        Op::Outq => r(Outcome::Queued(0)),
        // Kept by the world until a connect.
        Op::RcvBuf(_) | Op::SndBuf(_) => r(Outcome::Ok),
        _ => r(Outcome::NotApplicable),
    }
}

/// A read on a socket with no peer: unix_stream_read_generic checks the state first
/// (not ESTABLISHED: EINVAL), unix_seqpacket_recvmsg says ENOTCONN (and gVisor says
/// ENOTCONN for both).
fn unconnected_read_error(kind: Kind, profile: &Profile) -> Errno {
    match kind {
        Kind::Stream if !profile.unix.unconnected_stream_read_enotconn => Errno::EINVAL,
        _ => Errno::ENOTCONN,
    }
}

/// unix_poll / unix_dgram_poll for an unconnected socket: HUP (connection-based and
/// TCP_CLOSE), OUT (unix_writable: not listening, nothing queued), IN and RDHUP on
/// RCV_SHUTDOWN, ERR while an error is pending. gVisor: nothing at all.
fn loose_unix_poll(l: &Loose, profile: &Profile) -> PollSet {
    if profile.unix.unconnected_poll_empty {
        return PollSet::NONE;
    }
    super::world::loose_poll(l, true, true, profile.poll_rdhup)
}

/// An unconnected Unix socket as poll sees it.
pub fn loose_view(l: &Loose, _kind: Kind, profile: &Profile) -> EndView {
    EndView::Open {
        state: None,
        poll: loose_unix_poll(l, profile),
    }
}

/// A call on the Unix listener (close, shutdown, connect and accept are the world's).
pub fn listener_call(
    lst: &Listener,
    kind: Kind,
    queued: bool,
    op: Op,
    profile: &Profile,
) -> StepResult {
    let r = |o| StepResult::plain(o);
    match op {
        Op::Write(0) | Op::WriteNoSignal(0) if !profile.unix.zero_length_send_reaches_socket => {
            r(Outcome::Wrote(0))
        }
        Op::WriteOob(0) if kind == Kind::Stream => peerless_call(kind, op, profile),
        Op::Read(_) | Op::Peek(_) | Op::ReadOob(_) | Op::Outq | Op::RcvBuf(_) | Op::SndBuf(_) => {
            peerless_call(kind, op, profile)
        }
        // No peer: ENOTCONN on both send paths.
        Op::Write(_) | Op::WriteNoSignal(_) | Op::WriteOob(_) => r(Outcome::Err(Errno::ENOTCONN)),
        Op::Poll => r(Outcome::Poll(listener_poll(lst, queued, profile))),
        // unix_inq_len: "if (sk->sk_state == TCP_LISTEN) return -EINVAL" (gVisor: no
        // peer, ENOTCONN).
        Op::Inq if profile.unix.unconnected_inq_enotconn => r(Outcome::Err(Errno::ENOTCONN)),
        Op::Inq => r(Outcome::Err(Errno::EINVAL)),
        Op::Error => r(Outcome::SockError(None)),
        Op::State => r(Outcome::NotApplicable),
        Op::Linger(_) | Op::Shutdown(_) | Op::Close | Op::Abort | Op::Connect | Op::Accept => {
            r(Outcome::Ok)
        }
    }
}

/// unix_poll / unix_dgram_poll on a listener: IN while an embryo is queued, IN|RDHUP on
/// RCV_SHUTDOWN, HUP on both bits, never OUT (unix_writable is false in LISTEN).
fn listener_poll(lst: &Listener, queued: bool, profile: &Profile) -> PollSet {
    PollSet::NONE
        .with_if(PollSet::IN, queued || lst.rcv_shut)
        .with_if(PollSet::RDHUP, lst.rcv_shut && profile.poll_rdhup)
        .with_if(
            PollSet::HUP,
            lst.rcv_shut && lst.snd_shut && profile.unix.poll_hup,
        )
}

/// The Unix listener as poll sees it.
pub fn listener_view(lst: &Listener, _kind: Kind, queued: bool, profile: &Profile) -> EndView {
    EndView::Open {
        state: None,
        poll: listener_poll(lst, queued, profile),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::End::{A, B};

    fn run(m: &mut UnixModel, end: End, op: Op) -> StepResult {
        m.run(end, op).0
    }

    fn poll_of(m: &UnixModel, end: End) -> PollSet {
        match m.view_end(end) {
            EndView::Open { poll, .. } => poll,
            v => panic!("{end:?} is {v}"),
        }
    }

    fn flags(s: &str) -> PollSet {
        PollSet::parse(s).unwrap()
    }

    fn err(e: Errno, sigpipe: bool) -> StepResult {
        StepResult {
            outcome: Outcome::Err(e),
            sigpipe,
        }
    }

    #[test]
    fn first_write_after_peer_close_fails_stream_signals_seqpacket_does_not() {
        for (kind, sigpipe) in [(Kind::Stream, true), (Kind::Seqpacket, false)] {
            let mut m = UnixModel::new(kind);
            let (_, p_wire) = m.run(B, Op::Close);
            assert_eq!(
                p_wire.iter().map(|w| w.kind).collect::<Vec<_>>(),
                vec![SegmentKind::PeerGone]
            );
            // Unlike TCP, whose first write after the peer's close still succeeds.
            assert_eq!(
                run(&mut m, A, Op::Write(5)),
                err(Errno::EPIPE, sigpipe),
                "{kind:?}"
            );
            assert_eq!(run(&mut m, A, Op::Read(5)).outcome, Outcome::Eof);
            assert_eq!(poll_of(&m, A), flags("IN|OUT|HUP|RDHUP"));
        }
    }

    #[test]
    fn zero_length_write_stream_sends_nothing_seqpacket_sends_an_empty_record() {
        let mut m = UnixModel::new(Kind::Stream);
        let (p_result, p_wire) = m.run(A, Op::Write(0));
        assert_eq!(p_result.outcome, Outcome::Wrote(0));
        assert!(p_wire.is_empty());
        assert_eq!(
            run(&mut m, B, Op::Read(10)).outcome,
            Outcome::Err(Errno::EAGAIN)
        );

        let mut m = UnixModel::new(Kind::Seqpacket);
        let (_, p_wire) = m.run(A, Op::Write(0));
        assert_eq!(
            p_wire.iter().map(|w| w.kind).collect::<Vec<_>>(),
            vec![SegmentKind::Data(0)]
        );
        assert_eq!(poll_of(&m, B), flags("IN|OUT"));
        assert_eq!(run(&mut m, B, Op::Read(10)).outcome, Outcome::Eof);
        assert_eq!(
            run(&mut m, B, Op::Read(10)).outcome,
            Outcome::Err(Errno::EAGAIN)
        );
    }

    #[test]
    fn zero_length_write_after_shutdown_still_fails() {
        let mut m = UnixModel::new(Kind::Stream);
        run(&mut m, A, Op::Shutdown(Shut::Wr));
        assert_eq!(run(&mut m, A, Op::Write(0)), err(Errno::EPIPE, true));
    }

    #[test]
    fn seqpacket_short_read_discards_the_rest_of_the_record() {
        // Same writes and reads; only the second read differs: seqpacket dropped the
        // rest of the first record, stream joins the writes.
        for (kind, second) in [
            (Kind::Seqpacket, &b"KLMN"[..]),
            (Kind::Stream, &b"DEFGHIJKLMN"[..]),
        ] {
            let mut m = UnixModel::new(kind);
            run(&mut m, A, Op::Write(10));
            run(&mut m, A, Op::Write(4));
            assert_eq!(
                run(&mut m, B, Op::Read(3)).outcome,
                Outcome::Data(b"ABC".to_vec())
            );
            assert_eq!(
                run(&mut m, B, Op::Read(100)).outcome,
                Outcome::Data(second.to_vec()),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn close_with_unread_data_resets_the_peer_stream_after_its_data_seqpacket_before() {
        for kind in [Kind::Stream, Kind::Seqpacket] {
            let mut m = UnixModel::new(kind);
            run(&mut m, A, Op::Write(5));
            run(&mut m, B, Op::Write(3));
            run(&mut m, B, Op::Close);
            assert_eq!(poll_of(&m, A), flags("IN|OUT|ERR|HUP|RDHUP"));
            let (first, second) = match kind {
                Kind::Stream => (
                    Outcome::Data(b"abc".to_vec()),
                    Outcome::Err(Errno::ECONNRESET),
                ),
                Kind::Seqpacket => (
                    Outcome::Err(Errno::ECONNRESET),
                    Outcome::Data(b"abc".to_vec()),
                ),
            };
            assert_eq!(run(&mut m, A, Op::Read(10)).outcome, first, "{kind:?}");
            assert_eq!(run(&mut m, A, Op::Read(10)).outcome, second, "{kind:?}");
            assert_eq!(run(&mut m, A, Op::Read(10)).outcome, Outcome::Eof);
            assert_eq!(run(&mut m, A, Op::Error).outcome, Outcome::SockError(None));
        }
    }

    #[test]
    fn a_lone_unread_empty_record_does_not_reset_the_peer_two_do() {
        for (writes, reset) in [
            (&[0u32][..], false),
            (&[0, 0], true),
            (&[3, 0], true),
            (&[0, 3], true),
        ] {
            let mut m = UnixModel::new(Kind::Seqpacket);
            for &n in writes {
                run(&mut m, B, Op::Write(n));
            }
            run(&mut m, A, Op::Close);
            let want = if reset { Some(Errno::ECONNRESET) } else { None };
            assert_eq!(
                run(&mut m, B, Op::Error).outcome,
                Outcome::SockError(want),
                "{writes:?}"
            );
        }
    }

    #[test]
    fn write_after_reset_stream_says_epipe_seqpacket_reports_the_error_first() {
        let mut m = UnixModel::new(Kind::Stream);
        run(&mut m, A, Op::Write(5));
        run(&mut m, B, Op::Abort);
        assert_eq!(run(&mut m, A, Op::Write(1)), err(Errno::EPIPE, true));
        assert_eq!(
            run(&mut m, A, Op::Error).outcome,
            Outcome::SockError(Some(Errno::ECONNRESET))
        );

        let mut m = UnixModel::new(Kind::Seqpacket);
        run(&mut m, A, Op::Write(5));
        run(&mut m, B, Op::Abort);
        assert_eq!(run(&mut m, A, Op::Write(1)), err(Errno::ECONNRESET, false));
        assert_eq!(run(&mut m, A, Op::Write(1)), err(Errno::EPIPE, false));
    }

    #[test]
    fn wire_log_and_describe_say_what_happened() {
        let mut m = UnixModel::new(Kind::Seqpacket);
        run(&mut m, B, Op::Write(4));
        run(&mut m, B, Op::Write(0));
        assert_eq!(
            m.describe(A),
            "unix seqpacket, fd open, 4 unread in 2 records"
        );
        let (_, p_wire) = m.run(A, Op::Shutdown(Shut::Rd));
        assert_eq!(p_wire.len(), 1);
        assert_eq!(
            (p_wire[0].from, p_wire[0].kind),
            (Sock::A, SegmentKind::PeerGone)
        );
        assert!(
            p_wire[0].note.contains("SEND_SHUTDOWN"),
            "{}",
            p_wire[0].note
        );
        assert_eq!(m.describe(B), "unix seqpacket, fd open, shut wr");
        let (_, p_wire) = m.run(A, Op::Close);
        assert!(p_wire[0].note.contains("ECONNRESET"), "{}", p_wire[0].note);
        assert_eq!(
            m.describe(B),
            "unix seqpacket, fd open, shut rdwr, error ECONNRESET"
        );
        assert_eq!(m.describe(A), "unix seqpacket, fd closed (socket released)");
        // Nobody is left to mark: no wire event.
        assert!(m.run(B, Op::Close).1.is_empty());
    }

    #[test]
    fn gvisor_marks_the_queue_instead_of_setting_an_error() {
        for kind in [Kind::Stream, Kind::Seqpacket] {
            let mut m = UnixModel::with_profile(kind, Profile::gvisor());
            run(&mut m, A, Op::Write(5));
            run(&mut m, B, Op::Write(3));
            let (_, p_wire) = m.run(B, Op::Close);
            assert!(
                p_wire[0].note.contains("marked unread"),
                "{}",
                p_wire[0].note
            );
            assert_eq!(poll_of(&m, A), flags("IN|OUT"), "{kind:?}");
            assert_eq!(run(&mut m, A, Op::Error).outcome, Outcome::SockError(None));
            assert_eq!(run(&mut m, A, Op::Write(1)), err(Errno::EPIPE, false));
            // Data first on both kinds, then ECONNRESET for good.
            assert_eq!(
                run(&mut m, A, Op::Read(10)).outcome,
                Outcome::Data(b"abc".to_vec())
            );
            for _ in 0..2 {
                assert_eq!(
                    run(&mut m, A, Op::Read(10)).outcome,
                    Outcome::Err(Errno::ECONNRESET),
                    "{kind:?}"
                );
            }
            assert!(
                m.describe(A).ends_with("reads end in ECONNRESET"),
                "{}",
                m.describe(A)
            );
        }
    }

    #[test]
    fn gvisor_zero_length_send_never_reaches_the_socket() {
        for kind in [Kind::Stream, Kind::Seqpacket] {
            let mut m = UnixModel::with_profile(kind, Profile::gvisor());
            let (p_result, p_wire) = m.run(A, Op::Write(0));
            assert_eq!(p_result.outcome, Outcome::Wrote(0));
            assert!(p_wire.is_empty());
            assert_eq!(poll_of(&m, B), flags("OUT"));
            run(&mut m, A, Op::Shutdown(Shut::RdWr));
            assert_eq!(run(&mut m, A, Op::Write(0)).outcome, Outcome::Wrote(0));
            assert_eq!(run(&mut m, A, Op::Write(1)), err(Errno::EPIPE, false));
            // No HUP on either end, though both are shut both ways.
            assert_eq!(poll_of(&m, A), flags("IN|OUT"));
            assert_eq!(poll_of(&m, B), flags("IN|OUT"));
        }
    }

    #[test]
    fn shutdown_mirrors_into_the_peer_and_never_fails() {
        let mut m = UnixModel::new(Kind::Stream);
        run(&mut m, A, Op::Shutdown(Shut::Rd));
        assert_eq!(poll_of(&m, A), flags("IN|OUT|RDHUP"));
        assert_eq!(poll_of(&m, B), flags("OUT"));
        assert_eq!(run(&mut m, B, Op::Write(3)), err(Errno::EPIPE, true));
        assert_eq!(run(&mut m, A, Op::Write(3)).outcome, Outcome::Wrote(3));
        run(&mut m, A, Op::Shutdown(Shut::Wr));
        assert_eq!(poll_of(&m, B), flags("IN|OUT|HUP|RDHUP"));
        run(&mut m, B, Op::Close);
        assert_eq!(
            run(&mut m, A, Op::Shutdown(Shut::RdWr)).outcome,
            Outcome::Ok
        );
        assert_eq!(run(&mut m, A, Op::State).outcome, Outcome::NotApplicable);
    }

    #[test]
    fn linux_6_1_stops_reads_at_a_consumed_oob_byte_and_peeks_past_it() {
        // msg_oob.c's ex_oob_break: "hell" "o", "wo" "r" (OOB), "ld"; the OOB byte is
        // read; then 6.18 reads "ld", 6.1's read frees the empty skb and says EAGAIN.
        // A peek before it: 6.18 stops at the empty skb (nothing: EAGAIN), 6.1 passes it.
        let data = |n: usize| Outcome::Data(pattern(Sock::A, 8, n));
        for (profile, peek, read) in [
            (
                Profile::linux(),
                Outcome::Data(pattern(Sock::A, 8, 2)),
                data(2),
            ),
            (Profile::linux_6_1(), data(2), Outcome::Err(Errno::EAGAIN)),
        ] {
            let mut m = UnixModel::with_profile(Kind::Stream, profile);
            run(&mut m, A, Op::WriteOob(5));
            run(&mut m, A, Op::WriteOob(3));
            run(&mut m, A, Op::Write(2));
            assert_eq!(
                run(&mut m, B, Op::Read(10)).outcome,
                Outcome::Data(pattern(Sock::A, 0, 7))
            );
            assert_eq!(
                run(&mut m, B, Op::ReadOob(1)).outcome,
                Outcome::Data(pattern(Sock::A, 7, 1))
            );
            let p = run(&mut m, B, Op::Peek(10)).outcome;
            assert_eq!(p, peek, "{:?}", profile.platform);
            assert_eq!(
                run(&mut m, B, Op::Read(2)).outcome,
                read,
                "{:?}",
                profile.platform
            );
            // SIOCINQ: both count the 2 bytes the 6.1 read left.
            let left = if profile.unix.consumed_oob_ends_read {
                2
            } else {
                0
            };
            assert_eq!(run(&mut m, B, Op::Inq).outcome, Outcome::Queued(left));
        }
    }

    #[test]
    fn linux_6_1_inq_counts_the_queue_after_a_dropped_oob_byte() {
        for (profile, inq) in [(Profile::linux(), 1), (Profile::linux_6_1(), 0)] {
            let mut m = UnixModel::with_profile(Kind::Stream, profile);
            run(&mut m, A, Op::WriteOob(1));
            run(&mut m, A, Op::Write(2));
            assert_eq!(
                run(&mut m, B, Op::Read(10)).outcome,
                Outcome::Data(pattern(Sock::A, 1, 2))
            );
            assert_eq!(
                run(&mut m, B, Op::Inq).outcome,
                Outcome::Queued(inq),
                "{:?}",
                profile.platform
            );
        }
    }
}
