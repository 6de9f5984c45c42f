//! The smoltcp executor: the [smoltcp](https://crates.io/crates/smoltcp) crate's TCP,
//! in this process, on a clock of its own (`--platform smoltcp`).
//!
//! **How it runs.** One [`Interface`] (medium IP) on smoltcp's own [`Loopback`](smoltcp::phy::Loopback) device,
//! holding 127.0.0.1/8 and ::1/128: the two ends of a case are two sockets of one host,
//! as on Linux loopback, so one interface with one address per family is the faithful
//! picture (two interfaces joined by queues would add a route between two hosts that
//! the Linux cases do not have). Nothing moves until the interface is polled: after
//! every step it is polled until a poll changes nothing (at most [`MAX_POLLS`] polls).
//! Time is a number, not a clock: it starts at 0 and only `sleep MS` advances it, by
//! polling at every timer smoltcp asks for on the way ([`Interface::poll_delay`]) and
//! at the end. No threads, no real clock: a case runs the same way every time.
//!
//! **What it runs.** `start connected` over `tcp4` and `tcp6`: `b` listens on port
//! [`PORT`], `a` connects from [`CLIENT_PORT`], and the handshake is polled through; `b`
//! is then the connection (smoltcp's listening socket becomes the connection it
//! accepts, so there is no listener left to close). Every socket has a receive and a
//! send buffer of [`BUF`] bytes, Nagle off and no delayed ACK (as closefuzz sets
//! TCP_NODELAY on Linux: every write leaves at once, and an ACK does not wait for a
//! timer that only a `sleep` would run). `start listening` is not run: smoltcp has no
//! accept queue (a listening socket turns into the one connection it accepts), and
//! standing a pool of listening sockets in for Linux's backlog would test the pool,
//! not smoltcp. Unix transports do not exist in smoltcp.
//!
#![doc = include_str!("smoltcp-calls.md")]
//!
//! **`network held`.** The interface's device is [`Wire`], one of our own: what the
//! stack transmits is put in the device's receive queue at once under `network
//! instant` (a loopback), and under `network held` is parsed and kept in one queue per
//! direction (`a>b`: from [`CLIENT_PORT`], `b>a`: from [`PORT`]), where `deliver`
//! hands the K-th oldest to the stack and polls until quiet (what it answers is held in
//! turn), `drop` forgets the oldest, and `held` names what waits, as the model names
//! segments ([`SegName`]). Every segment the stack sends during a step is also
//! reported ([`KernelRun::wire`]: direction, name, sequence and acknowledgement numbers
//! relative to each end's first data byte, from the ISNs the handshake showed), and
//! compared with the model's, one by one. The handshake is delivered before the first step. Time
//! does not pass without `sleep`, which held scripts do not have, so no retransmission
//! timer fires.

use super::{Case, Executor, KernelRun, Packet, PacketEvent};

/// How each closefuzz call is made on smoltcp: the table of this module's docs, which
/// `closefuzz matrix` also puts in docs/behavior.md.
pub const CALL_TABLE: &str = include_str!("smoltcp-calls.md");
use crate::step::{
    pattern, Dir, EndView, Errno, Network, Observation, Op, Outcome, PollSet, SegName, Shut, Sock,
    Start, StateSet, Step, StepResult, TcpState, Which, WireSeg,
};
use crate::transport::Transport;
use smoltcp::iface::{Config, Interface, PollResult, SocketHandle, SocketSet, SocketStorage};
use smoltcp::phy::{self, ChecksumCapabilities, Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp::{self, RecvError, State};
use smoltcp::time::{Duration as SmolDuration, Instant as SmolInstant};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, Ipv4Address, Ipv6Address};
use std::collections::VecDeque;
use std::io;
use std::time::{Duration, Instant};

/// Each socket's receive and send buffer, in bytes.
pub const BUF: usize = 65_536;
/// The port `b` listens on.
pub const PORT: u16 = 7000;
/// The port `a` connects from.
pub const CLIENT_PORT: u16 = 49_152;
/// The most polls after one step: far more than any case's segments need (a 4 MiB write
/// is 64 segments of 64 KiB); past it the stack is called busy.
pub const MAX_POLLS: usize = 10_000;
/// The most timer wake-ups one `sleep` runs.
const MAX_TIMER_POLLS: usize = 10_000;

/// smoltcp in this process. Holds the four socket buffers, reused by every case so
/// that a case allocates none.
pub struct Smoltcp {
    mem: Vec<u8>,
}

impl Default for Smoltcp {
    fn default() -> Self {
        Self::new()
    }
}

impl Smoltcp {
    /// An executor with its buffers.
    pub fn new() -> Smoltcp {
        Smoltcp {
            mem: vec![0; 4 * BUF],
        }
    }
}

impl Executor for Smoltcp {
    fn run(&mut self, case: &Case) -> io::Result<KernelRun> {
        let began = Instant::now();
        let mut w = World::start(case, &mut self.mem)?;
        let mut steps = Vec::with_capacity(case.steps.len());
        let mut wire = Vec::with_capacity(case.steps.len());
        for (i, &s) in case.steps.iter().enumerate() {
            w.step_no = Some(i);
            let r = w.step(s)?;
            steps.push((r, w.observe()));
            wire.push(std::mem::take(&mut w.seen));
        }
        Ok(KernelRun {
            steps,
            wire,
            packets: std::mem::take(&mut w.packets),
            elapsed: began.elapsed(),
            // Time here is the stack's own: a sleep costs no wall time.
            slept: Duration::ZERO,
            settle: Duration::ZERO,
        })
    }

    fn run_raw(&mut self, case: &Case) -> io::Result<()> {
        let mut w = World::start(case, &mut self.mem)?;
        for &s in &case.steps {
            w.step(s)?;
        }
        Ok(())
    }
}

/// The interface's device: frames the stack sent (`sent`) and frames it is to receive
/// (`inbox`). Who moves them from one to the other is the executor's business: at once
/// (a loopback), or when a step says (held).
#[derive(Debug, Default)]
pub struct Wire {
    inbox: VecDeque<Vec<u8>>,
    sent: VecDeque<Vec<u8>>,
}

/// The IP MTU of [`Wire`], as smoltcp's own loopback has.
pub const MTU: usize = 65535;

impl Device for Wire {
    type RxToken<'a> = RxToken;
    type TxToken<'a> = TxToken<'a>;

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.max_transmission_unit = MTU;
        caps.medium = Medium::Ip;
        caps.checksum = ChecksumCapabilities::ignored();
        caps
    }

    fn receive(&mut self, _now: SmolInstant) -> Option<(RxToken, TxToken<'_>)> {
        let buffer = self.inbox.pop_front()?;
        Some((
            RxToken { buffer },
            TxToken {
                out: &mut self.sent,
            },
        ))
    }

    fn transmit(&mut self, _now: SmolInstant) -> Option<TxToken<'_>> {
        Some(TxToken {
            out: &mut self.sent,
        })
    }
}

/// A frame handed to the stack.
#[doc(hidden)]
pub struct RxToken {
    buffer: Vec<u8>,
}

impl phy::RxToken for RxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.buffer)
    }
}

/// Room for a frame the stack sends.
#[doc(hidden)]
pub struct TxToken<'a> {
    out: &'a mut VecDeque<Vec<u8>>,
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buffer = vec![0; len];
        let r = f(&mut buffer);
        self.out.push_back(buffer);
        r
    }
}

/// A TCP segment's name from its IP packet, and the direction it travels (0: `a>b`,
/// from [`CLIENT_PORT`]; 1: `b>a`); `None` for anything that is not such a segment.
pub fn segment_of(frame: &[u8]) -> Option<(usize, SegName)> {
    header_of(frame).map(|h| (h.dir, h.name))
}

/// What the executor reads of a TCP segment.
struct Header {
    /// 0: `a>b`, 1: `b>a`.
    dir: usize,
    name: SegName,
    seq: u32,
    /// The acknowledgement number, if the ACK flag is set.
    ack: Option<u32>,
}

fn header_of(frame: &[u8]) -> Option<Header> {
    let (ip_len, total) = match frame.first()? >> 4 {
        4 => (
            usize::from(frame[0] & 0x0f) * 4,
            usize::from(u16::from_be_bytes([*frame.get(2)?, *frame.get(3)?])),
        ),
        6 => (
            40,
            40 + usize::from(u16::from_be_bytes([*frame.get(4)?, *frame.get(5)?])),
        ),
        _ => return None,
    };
    let tcp = frame.get(ip_len..total.min(frame.len()))?;
    let src = u16::from_be_bytes([*tcp.first()?, *tcp.get(1)?]);
    let hdr = usize::from(tcp.get(12)? >> 4) * 4;
    let flags = *tcp.get(13)?;
    let word =
        |i: usize| -> Option<u32> { Some(u32::from_be_bytes(tcp.get(i..i + 4)?.try_into().ok()?)) };
    let (seq, ack_no) = (word(4)?, word(8)?);
    let len = u32::try_from(tcp.len().checked_sub(hdr)?).ok()?;
    let ack = flags & 16 != 0;
    let name = SegName::of_tcp(flags, len);
    let dir = match src {
        CLIENT_PORT => 0,
        PORT => 1,
        _ => return None,
    };
    Some(Header {
        dir,
        name,
        seq,
        ack: ack.then_some(ack_no),
    })
}

fn dir_index(dir: Dir) -> Option<usize> {
    Dir::PAIR.iter().position(|d| *d == dir)
}

/// One case's stack: the interface, its device, its sockets and its clock.
struct World<'a> {
    iface: Interface,
    dev: Wire,
    /// Under `network held`, the frames in flight each way (`a>b`, `b>a`), oldest
    /// first; `None` under `network instant`.
    held: Option<[VecDeque<Vec<u8>>; 2]>,
    set: SocketSet<'a>,
    /// The handle of `a` and `b` while the test still holds them.
    handles: [Option<SocketHandle>; 2],
    /// Bytes each end has written so far: where its pattern continues.
    sent: [u64; 2],
    now: SmolInstant,
    /// Each end's initial sequence number, from the handshake: numbers are reported
    /// relative to the first data byte (ISN + 1), as the model counts them.
    isn: [Option<u32>; 2],
    /// Under `network held`: the segments sent since the step began.
    seen: Vec<WireSeg>,
    /// Whether to keep every packet ([`Case::capture`]), and those kept.
    capture: bool,
    packets: Vec<Packet>,
    /// The step being run (`None`: setting up).
    step_no: Option<usize>,
    began: Instant,
}

fn unsupported(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, what)
}

fn side(sock: Sock) -> Option<usize> {
    match sock {
        Sock::A => Some(0),
        Sock::B => Some(1),
        _ => None,
    }
}

impl<'a> World<'a> {
    fn start(case: &Case, mem: &'a mut [u8]) -> io::Result<World<'a>> {
        if case.start != Start::Connected {
            return Err(unsupported(format!(
                "smoltcp runs start connected only, not start {}",
                case.start
            )));
        }
        let server: IpAddress = match case.transport {
            Transport::Tcp4 => Ipv4Address::new(127, 0, 0, 1).into(),
            Transport::Tcp6 => Ipv6Address::LOCALHOST.into(),
            t => {
                return Err(unsupported(format!(
                    "smoltcp runs tcp4 and tcp6 only, not {t}"
                )))
            }
        };
        if !case.bufs.is_default() {
            return Err(unsupported(
                "smoltcp's buffers are fixed (64 KiB): rcvbuf and sndbuf headers cannot be set"
                    .into(),
            ));
        }
        let now = SmolInstant::from_millis(0);
        let mut dev = Wire::default();
        let mut iface = Interface::new(Config::new(HardwareAddress::Ip), &mut dev, now);
        iface.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::new(Ipv4Address::new(127, 0, 0, 1).into(), 8));
            let _ = a.push(IpCidr::new(Ipv6Address::LOCALHOST.into(), 128));
        });
        let storage: Vec<SocketStorage<'a>> = vec![SocketStorage::EMPTY, SocketStorage::EMPTY];
        let mut set = SocketSet::new(storage);
        let mut bufs = mem.chunks_mut(BUF);
        let mut sock = || {
            let rx = tcp::SocketBuffer::new(bufs.next().expect("four buffers"));
            let tx = tcp::SocketBuffer::new(bufs.next().expect("four buffers"));
            let mut s = tcp::Socket::new(rx, tx);
            s.set_nagle_enabled(false);
            s.set_ack_delay(None);
            s
        };
        let (mut a, mut b) = (sock(), sock());
        b.listen(PORT)
            .map_err(|e| io::Error::other(format!("smoltcp listen: {e}")))?;
        a.connect(iface.context(), (server, PORT), CLIENT_PORT)
            .map_err(|e| io::Error::other(format!("smoltcp connect: {e}")))?;
        let ha = set.add(a);
        let hb = set.add(b);
        let mut w = World {
            iface,
            dev,
            held: None,
            set,
            handles: [Some(ha), Some(hb)],
            sent: [0; 2],
            now,
            isn: [None; 2],
            seen: vec![],
            capture: case.capture && case.network == Network::Held,
            packets: vec![],
            step_no: None,
            began: Instant::now(),
        };
        w.settle()?;
        let established = |h| w.set.get::<tcp::Socket>(h).state() == State::Established;
        if !established(ha) || !established(hb) {
            return Err(io::Error::other(
                "smoltcp: the handshake did not complete on the loopback interface",
            ));
        }
        if case.network == Network::Held {
            w.held = Some(Default::default());
        }
        Ok(w)
    }

    /// Polls until a poll changes nothing.
    fn settle(&mut self) -> io::Result<()> {
        let mut quiet = 0;
        for _ in 0..MAX_POLLS {
            let r = self.iface.poll(self.now, &mut self.dev, &mut self.set);
            // What was sent arrives now (instant), or waits for a step (held).
            match &mut self.held {
                None => {
                    if self.isn.contains(&None) {
                        for h in self.dev.sent.iter().filter_map(|f| header_of(f)) {
                            if matches!(h.name, SegName::Syn | SegName::SynAck) {
                                self.isn[h.dir] = Some(h.seq);
                            }
                        }
                    }
                    if self.capture {
                        // The handshake, delivered before the first step.
                        let sent: Vec<Vec<u8>> = self.dev.sent.iter().cloned().collect();
                        for f in sent {
                            self.keep(PacketEvent::Delivered, &f);
                        }
                    }
                    self.dev.inbox.append(&mut self.dev.sent);
                }
                Some(_) => {
                    while let Some(f) = self.dev.sent.pop_front() {
                        if let Some((dir, seg)) = self.wire_seg(&f) {
                            self.seen.push(seg);
                            self.keep(PacketEvent::Emitted, &f);
                            if let Some(held) = &mut self.held {
                                held[dir].push_back(f);
                            }
                        }
                    }
                }
            }
            match r {
                // A poll that changed nothing may still have queued a segment on the
                // loopback for the next one: two quiet polls in a row end it.
                PollResult::None => {
                    quiet += 1;
                    if quiet == 2 {
                        return Ok(());
                    }
                }
                PollResult::SocketStateChanged => quiet = 0,
            }
        }
        Err(io::Error::other(format!(
            "smoltcp still busy after {MAX_POLLS} polls"
        )))
    }

    /// Lets `ms` of the stack's time pass, running every timer that falls due.
    fn sleep(&mut self, ms: u32) -> io::Result<()> {
        let end = self.now + SmolDuration::from_millis(u64::from(ms));
        for _ in 0..MAX_TIMER_POLLS {
            let next = match self.iface.poll_delay(self.now, &self.set) {
                Some(d) => self.now + d,
                None => end,
            };
            if next >= end {
                break;
            }
            // A timer due now has been run by the last settle; step past it.
            self.now = if next > self.now {
                next
            } else {
                self.now + SmolDuration::from_millis(1)
            };
            self.settle()?;
        }
        self.now = end;
        self.settle()
    }

    fn held_mut(&mut self, dir: Dir) -> io::Result<&mut VecDeque<Vec<u8>>> {
        let i = dir_index(dir)
            .ok_or_else(|| unsupported(format!("smoltcp holds a>b and b>a only, not {dir}")))?;
        match &mut self.held {
            Some(h) => Ok(&mut h[i]),
            None => Err(unsupported(format!(
                "'{dir}' segments are held only under network held"
            ))),
        }
    }

    /// Frame `f` as the comparison names it (numbers relative to each end's first data
    /// byte), with its direction's index.
    fn wire_seg(&self, f: &[u8]) -> Option<(usize, WireSeg)> {
        let h = header_of(f)?;
        let rel = |n: u32, d: usize| {
            let first = self.isn[d].unwrap_or(0).wrapping_add(1);
            u64::from(n.wrapping_sub(first))
        };
        Some((
            h.dir,
            WireSeg {
                dir: Dir::PAIR[h.dir],
                name: h.name,
                seq: rel(h.seq, h.dir),
                ack: h.ack.map(|a| rel(a, 1 - h.dir)),
            },
        ))
    }

    /// Keeps frame `f` and what happened to it, when the case captures.
    fn keep(&mut self, event: PacketEvent, f: &[u8]) {
        if !self.capture {
            return;
        }
        if let Some((_, seg)) = self.wire_seg(f) {
            self.packets.push(Packet {
                step: self.step_no,
                event,
                seg,
                bytes: f.to_vec(),
                at: self.began.elapsed(),
            });
        }
    }

    /// Hands held segments to the stack, each answered (polled until quiet) before
    /// the next.
    fn deliver(&mut self, dir: Dir, which: Which) -> io::Result<Outcome> {
        let picks = match which {
            Which::Nth(k) => {
                let q = self.held_mut(dir)?;
                match q.remove(usize::from(k) - 1) {
                    Some(f) => vec![f],
                    None => return Ok(Outcome::NotApplicable),
                }
            }
            Which::All => self.held_mut(dir)?.drain(..).collect(),
        };
        if picks.is_empty() {
            // Nothing in flight that way: as the host kernel's wire says.
            return Ok(Outcome::NotApplicable);
        }
        for f in picks {
            self.keep(PacketEvent::Delivered, &f);
            self.dev.inbox.push_back(f);
            self.settle()?;
        }
        Ok(Outcome::Ok)
    }

    fn socket(&mut self, i: usize) -> Option<&mut tcp::Socket<'a>> {
        let h = self.handles[i]?;
        Some(self.set.get_mut::<tcp::Socket>(h))
    }

    fn step(&mut self, step: Step) -> io::Result<StepResult> {
        let outcome = match step {
            Step::Sleep { ms } => {
                self.sleep(ms)?;
                Outcome::Ok
            }
            Step::Call { sock, op } => {
                let o = self.call(sock, op);
                self.settle()?;
                o
            }
            Step::Deliver { dir, which } => self.deliver(dir, which)?,
            Step::Drop { dir } => match self.held_mut(dir)?.pop_front() {
                Some(f) => {
                    self.keep(PacketEvent::Dropped, &f);
                    Outcome::Ok
                }
                None => Outcome::NotApplicable,
            },
            Step::Held { dir } => Outcome::Segments(
                self.held_mut(dir)?
                    .iter()
                    .filter_map(|f| segment_of(f).map(|(_, n)| n))
                    .collect(),
            ),
        };
        Ok(StepResult::plain(outcome))
    }

    fn call(&mut self, sock: Sock, op: Op) -> Outcome {
        let profile = crate::model::profile::Profile::smoltcp();
        if !profile.surface.can_ask(op) {
            return Outcome::NotApplicable;
        }
        let Some(i) = side(sock) else {
            // No listener, no second pair: those sockets never exist here.
            return Outcome::Closed;
        };
        let offset = self.sent[i];
        let Some(s) = self.socket(i) else {
            if op == Op::State {
                // The handle was given up at close; the test asks it nothing more.
                return Outcome::NotApplicable;
            }
            return Outcome::Closed;
        };
        let out = match op {
            Op::Write(n) | Op::WriteNoSignal(n) => {
                // send_slice takes at most what the send buffer has room for: make no
                // more of the pattern than that (a 4 MiB write would cost 4 MiB).
                let room = s.send_capacity() - s.send_queue();
                let buf = pattern(sock, offset, (n as usize).min(room.max(1)));
                match s.send_slice(&buf) {
                    Ok(0) if n > 0 => Outcome::Err(Errno::EAGAIN),
                    Ok(k) => {
                        self.sent[i] += k as u64;
                        Outcome::Wrote(k)
                    }
                    Err(tcp::SendError::InvalidState) => Outcome::Err(Errno::EPIPE),
                }
            }
            Op::Read(n) => {
                let mut buf = vec![0; n as usize];
                recv_outcome(s.recv_slice(&mut buf), buf, n)
            }
            Op::Peek(n) => match s.peek(0) {
                Err(e) => recv_outcome(Err(e), vec![], n),
                Ok(_) => {
                    let mut buf = vec![0; n as usize];
                    let k = s.peek_slice(&mut buf);
                    recv_outcome(k.map_err(|_| RecvError::InvalidState), buf, n)
                }
            },
            Op::Shutdown(Shut::Wr) => {
                s.close();
                Outcome::Ok
            }
            Op::Close => {
                s.close();
                self.handles[i] = None;
                Outcome::Ok
            }
            Op::Abort => {
                s.abort();
                self.handles[i] = None;
                Outcome::Ok
            }
            Op::Poll => Outcome::Poll(poll_of(s)),
            Op::State => Outcome::State(StateSet::one(state_of(s.state()))),
            Op::Inq => Outcome::Queued(s.recv_queue()),
            Op::Outq => Outcome::Queued(s.send_queue()),
            // The surface has ruled the rest out above.
            _ => Outcome::NotApplicable,
        };
        out
    }

    fn observe(&mut self) -> Observation {
        let mut obs = [EndView::Absent; 5];
        for (i, sock) in [Sock::A, Sock::B].into_iter().enumerate() {
            obs[sock.index()] = match self.socket(i) {
                None => EndView::Closed,
                Some(s) => EndView::Open {
                    state: Some(StateSet::one(state_of(s.state()))),
                    poll: poll_of(s),
                },
            };
        }
        obs
    }
}

/// A receive's result as closefuzz reports it (see the module's table).
fn recv_outcome(r: Result<usize, RecvError>, mut buf: Vec<u8>, n: u32) -> Outcome {
    match r {
        Ok(0) if n > 0 => Outcome::Err(Errno::EAGAIN),
        Ok(k) => {
            buf.truncate(k);
            Outcome::Data(buf)
        }
        Err(RecvError::Finished) => Outcome::Eof,
        Err(RecvError::InvalidState) => Outcome::Err(Errno::ENOTCONN),
    }
}

/// smoltcp's state by Linux's name.
fn state_of(s: State) -> TcpState {
    match s {
        State::Closed => TcpState::Close,
        State::Listen => TcpState::Listen,
        State::SynSent => TcpState::SynSent,
        State::SynReceived => TcpState::SynRecv,
        State::Established => TcpState::Established,
        State::FinWait1 => TcpState::FinWait1,
        State::FinWait2 => TcpState::FinWait2,
        State::CloseWait => TcpState::CloseWait,
        State::Closing => TcpState::Closing,
        State::LastAck => TcpState::LastAck,
        State::TimeWait => TcpState::TimeWait,
    }
}

/// poll's flags from smoltcp's predicates (see the module's table).
fn poll_of(s: &tcp::Socket) -> PollSet {
    let rx_closed = matches!(
        s.state(),
        State::CloseWait | State::LastAck | State::Closing | State::TimeWait | State::Closed
    );
    let both_closed = matches!(
        s.state(),
        State::LastAck | State::Closing | State::TimeWait | State::Closed
    );
    PollSet::NONE
        .with_if(PollSet::IN, s.can_recv() || !s.may_recv())
        .with_if(PollSet::OUT, s.can_send() || !s.may_send())
        .with_if(PollSet::RDHUP, rx_closed)
        .with_if(PollSet::HUP, both_closed)
}
