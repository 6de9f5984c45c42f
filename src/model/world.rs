//! The world a scenario runs in: named sockets (`a b c d l`), the listener and its
//! accept queue, sockets that never connected, the connections between them, and a
//! clock.
//!
//! The world owns no protocol rules of its own beyond who is connected to whom: each
//! connection is a two-sided transport model ([`super::tcp`], [`super::unix`]), each
//! never-connected socket and the listener answer through their transport's rules
//! ([`super::tcp::loose_call`], [`super::unix::loose_call`], and the `listener_*`
//! functions beside them). The world routes a step to whichever of these the socket
//! currently is, and moves sockets between them: `connect` turns a never-connected
//! client into one side of a new connection queued on the listener, `accept` names
//! the queued side, closing the listener forgets the queue.

use super::alternatives::TcpAlternatives;
use super::common::Connection;
use super::profile::Profile;
use super::tcp::TcpModel;
use super::unix::{Kind, UnixModel};
use super::{Hint, Prediction, WireEvent};
use crate::step::{
    Bufs, End, EndView, Errno, Observation, Op, Outcome, PollSet, Sock, Start, Step, StepResult,
};
use crate::transport::Transport;
use std::collections::VecDeque;

/// One connection, as its transport models it.
#[derive(Clone, Debug)]
pub enum Conn {
    /// TCP over IPv4 or IPv6: the ways the connection may have gone.
    Tcp(TcpAlternatives),
    /// Unix stream or seqpacket.
    Unix(Box<UnixModel>),
}

impl Conn {
    fn model(&mut self) -> &mut dyn Connection {
        match self {
            Conn::Tcp(m) => m,
            Conn::Unix(m) => m.as_mut(),
        }
    }

    fn view(&self, end: End) -> EndView {
        match self {
            Conn::Tcp(m) => m.view_end(end),
            Conn::Unix(m) => m.view_end(end),
        }
    }

    fn describe(&self, end: End) -> String {
        match self {
            Conn::Tcp(m) => m.describe(end),
            Conn::Unix(m) => m.describe(end),
        }
    }

    /// The TCP connection, if this is one.
    fn tcp(&self) -> Option<&TcpAlternatives> {
        match self {
            Conn::Tcp(m) => Some(m),
            Conn::Unix(_) => None,
        }
    }

    /// The TCP connection, if this is one, to change.
    fn tcp_mut(&mut self) -> Option<&mut TcpAlternatives> {
        match self {
            Conn::Tcp(m) => Some(m),
            Conn::Unix(_) => None,
        }
    }
}

/// What a script name refers to right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// Not created yet (an accepted name before its accept, or a socket the start
    /// does not make).
    Absent,
    /// A socket that is not connected: never was, or a failed connect left it so.
    Loose,
    /// The listener.
    Listener,
    /// One side of a connection.
    Conn { conn: usize, end: End },
    /// Its descriptor was closed (loose sockets and the listener: connected sides
    /// stay `Conn`, whose model knows the fd is closed and what the kernel still holds).
    Closed,
}

/// A socket that is not connected: its own shutdown bits and error, which a later
/// connect carries into the connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Loose {
    /// sk_shutdown & RCV_SHUTDOWN.
    pub rcv_shut: bool,
    /// sk_shutdown & SEND_SHUTDOWN.
    pub snd_shut: bool,
    /// sk_err (gVisor's hardError).
    pub err: Option<Errno>,
    /// gVisor's lastError: a second copy of a failed connect's error, which SO_ERROR
    /// returns once the first is gone.
    pub last_err: Option<Errno>,
    /// TCP: a non-blocking connect is in progress or has failed (sock->state is
    /// SS_CONNECTING): the next connect reports how it ended.
    pub connecting: bool,
    /// TCP: a shutdown found it SS_CONNECTING and made it SS_DISCONNECTING, so every
    /// later connect is EINVAL (Linux).
    pub disconnecting: bool,
    /// Shutdown directions asked for (and refused) while not connected, which the
    /// profile applies only at the first shutdown after connecting.
    pub deferred_rd: bool,
    /// See `deferred_rd`.
    pub deferred_wr: bool,
    /// SO_LINGER set before connecting: the connection keeps it.
    pub linger: Option<u32>,
    /// SO_RCVBUF / SO_SNDBUF set before connecting: the connection keeps them.
    pub bufs: Bufs,
    /// TCP: what SIOCOUTQ says (write_seq - snd_una): 1 while a SYN no one answered
    /// is outstanding, and tcp_disconnect moves write_seq on by max_window + 2.
    pub outq: usize,
    /// TCP: the socket's pcb is gone and every event has fired: a full shutdown of a
    /// listener (`tcp.listener_shutdown_rdwr_fires_events`) or a refused connect
    /// (`tcp.refused_connect_resets`).
    pub released: bool,
    /// TCP: a reset's marker waits in the mailbox (`tcp.refused_connect_resets`).
    pub rst_marker: bool,
}

/// The listener: its accept queue and whether it still listens.
#[derive(Clone, Debug, Default)]
pub struct Listener {
    /// It is in LISTEN (a TCP `shutdown rd` stops that without closing the fd).
    pub listening: bool,
    /// sk_shutdown & RCV_SHUTDOWN (Unix: new connects are refused).
    pub rcv_shut: bool,
    /// sk_shutdown & SEND_SHUTDOWN.
    pub snd_shut: bool,
    /// Queued connections, oldest first, by index into the world's connections; the
    /// queued side is always `End::B`.
    pub queue: VecDeque<usize>,
    /// SO_LINGER set on the listener: a connection made after it inherits it (the child
    /// starts as a copy of the listener, sk_clone_lock).
    pub linger: Option<u32>,
    /// SO_RCVBUF / SO_SNDBUF set on the listener: a TCP child inherits them
    /// (sk_clone_lock); a Unix server socket is made fresh (unix_stream_connect).
    pub bufs: Bufs,
}

/// The reference model of a whole scenario.
#[derive(Clone, Debug)]
pub struct Model {
    transport: Transport,
    profile: Profile,
    start: Start,
    slots: [Slot; 5],
    loose: [Loose; 5],
    listener: Listener,
    conns: Vec<Conn>,
    /// Milliseconds of `sleep` so far.
    now_ms: u64,
    /// Where TCP connections come from when not the profile's plain model (a
    /// deliberately wrong rule, for tests/mutation.rs).
    tcp_template: Option<TcpModel>,
    /// The buffer-size headers.
    header_bufs: Bufs,
    /// The kernel's answer to the step being run, if known.
    hint: Option<(Hint, Observation)>,
    /// Whether segments wait for `deliver` steps.
    network: crate::step::Network,
    /// Held segments sent in the step so far by connections the world already asked
    /// (the listener's queued children reset in queue order), ahead of the rest.
    early_segs: Vec<crate::step::WireSeg>,
}

impl Model {
    /// A pair that starts connected over `transport`, as `profile`'s platform behaves.
    pub fn new(transport: Transport, profile: Profile) -> Model {
        Model::with_start(transport, profile, Start::Connected)
    }

    /// The world `start` makes over `transport`.
    pub fn with_start(transport: Transport, profile: Profile, start: Start) -> Model {
        let mut m = Model {
            transport,
            profile,
            start,
            slots: [Slot::Absent; 5],
            loose: [Loose::default(); 5],
            listener: Listener::default(),
            conns: Vec::new(),
            now_ms: 0,
            tcp_template: None,
            header_bufs: Bufs::default(),
            hint: None,
            network: crate::step::Network::Instant,
            early_segs: Vec::new(),
        };
        match start {
            Start::Connected => {
                m.conns.push(m.new_conn());
                m.slots[Sock::A.index()] = Slot::Conn {
                    conn: 0,
                    end: End::A,
                };
                m.slots[Sock::B.index()] = Slot::Conn {
                    conn: 0,
                    end: End::B,
                };
            }
            Start::Listening => {
                m.slots[Sock::A.index()] = Slot::Loose;
                m.slots[Sock::C.index()] = Slot::Loose;
                m.slots[Sock::L.index()] = Slot::Listener;
                m.listener.listening = true;
            }
        }
        m
    }

    /// Replaces the TCP rules of every connection with `model`'s (a deliberately wrong
    /// rule: tests/mutation.rs only).
    #[doc(hidden)]
    pub fn with_tcp(mut self, model: TcpModel) -> Model {
        self.conns = self
            .conns
            .iter()
            .map(|_| Conn::Tcp(TcpAlternatives::new(model.clone())))
            .collect();
        self.tcp_template = Some(model);
        self
    }

    /// The transport.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// How the world started.
    pub fn start(&self) -> Start {
        self.start
    }

    fn new_conn(&self) -> Conn {
        match self.transport {
            Transport::Tcp4 => Conn::Tcp(TcpAlternatives::new(
                self.tcp_template
                    .clone()
                    .unwrap_or_else(|| TcpModel::with_profile(self.profile)),
            )),
            Transport::Tcp6 => Conn::Tcp(TcpAlternatives::new(
                self.tcp_template
                    .clone()
                    .unwrap_or_else(|| TcpModel::with_profile(self.profile))
                    .over_ipv6(),
            )),
            Transport::Unix => Conn::Unix(Box::new(UnixModel::with_profile(
                Kind::Stream,
                self.profile,
            ))),
            Transport::Seqpacket => Conn::Unix(Box::new(UnixModel::with_profile(
                Kind::Seqpacket,
                self.profile,
            ))),
        }
    }

    fn unix_kind(&self) -> Option<Kind> {
        match self.transport {
            Transport::Unix => Some(Kind::Stream),
            Transport::Seqpacket => Some(Kind::Seqpacket),
            _ => None,
        }
    }

    /// Buffer sizes set on every socket before it connects (the scenario's `rcvbuf N`
    /// and `sndbuf N` headers), as the executor sets them.
    pub fn with_bufs(mut self, mut bufs: Bufs) -> Model {
        if self.transport.is_tcp() && self.profile.tcp.sndbuf_enoprotoopt {
            // The executor's SO_SNDBUF is refused: the header sets nothing.
            bufs.sndbuf = None;
        }
        for l in &mut self.loose {
            l.bufs = bufs;
        }
        self.listener.bufs = bufs;
        self.header_bufs = bufs;
        for c in &mut self.conns {
            for end in End::BOTH {
                c.model().preset_bufs(end, bufs);
            }
        }
        self
    }

    /// Runs one step and lets the network settle.
    pub fn step(&mut self, step: Step) -> Prediction {
        self.step_seen(step, None)
    }

    /// Runs one step as [`Model::step`] does, where the kernel's result and view after
    /// it settle what the model leaves open (see [`super::Hint`]).
    pub fn step_seen(
        &mut self,
        step: Step,
        seen: Option<(&StepResult, &Observation)>,
    ) -> Prediction {
        let mut prediction = self.step_inner(step, seen);
        // A zero-length read that returns 0 says nothing about end of file: the
        // executor reports it as 0 bytes of data, whatever made it return (a stack
        // whose zero-length read reports EOF as such says so in its profile).
        let eof_reported = self.transport.is_tcp() && self.profile.tcp.zero_length_read_at_once;
        if let Step::Call {
            op: Op::Read(0) | Op::Peek(0) | Op::ReadOob(0),
            ..
        } = step
        {
            if eof_reported {
                return prediction;
            }
            if prediction.result.outcome == Outcome::Eof {
                prediction.result.outcome = Outcome::Data(Vec::new());
            }
        }
        prediction
    }

    fn step_inner(&mut self, step: Step, seen: Option<(&StepResult, &Observation)>) -> Prediction {
        let mut wire = vec![];
        let mut unfollowed = None;
        let result = match step {
            Step::Sleep { ms } => {
                unfollowed = self.conns.iter().find_map(|c| c.tcp()?.sleep_unfollowed());
                self.now_ms += u64::from(ms);
                for c in &mut self.conns {
                    if let Conn::Tcp(m) = c {
                        wire.extend(m.advance(ms));
                    }
                }
                StepResult::plain(Outcome::Ok)
            }
            // A call the stack cannot be asked is not made there (its executor answers
            // n/a), so nothing changes.
            Step::Deliver { dir, .. } | Step::Drop { dir } | Step::Held { dir } => {
                StepResult::plain(self.wire_step(dir, step, &mut wire))
            }
            Step::Call { op, .. } if !self.profile.surface.can_ask(op) => {
                StepResult::plain(Outcome::NotApplicable)
            }
            Step::Call { sock, op } => {
                let op = if self.profile.oob_ignored {
                    op.without_oob()
                } else {
                    op
                };
                self.hint = seen.map(|(r, after)| (Hint::of(r), *after));
                let r = self.call(sock, op, &mut wire);
                self.hint = None;
                r
            }
        };
        if self.network == crate::step::Network::Held {
            self.settle_handshakes();
        }
        let mut ways_dropped = 0;
        let (segs, segs_or) = if self.network == crate::step::Network::Held {
            let first = std::mem::take(&mut self.early_segs);
            let conns: Vec<_> = self
                .conns
                .iter_mut()
                .filter_map(|c| Some(c.tcp_mut()?.take_segs_all()))
                .collect();
            let (mut orders, dropped) = super::interleave::orders(&first, &conns);
            ways_dropped += dropped;
            let likeliest = if orders.is_empty() {
                vec![]
            } else {
                orders.remove(0)
            };
            (Some(likeliest), orders)
        } else {
            (None, vec![])
        };
        for c in &mut self.conns {
            if let Conn::Tcp(m) = c {
                ways_dropped += m.take_dropped();
            }
        }
        Prediction {
            result,
            after: self.view(),
            wire,
            segs,
            segs_or,
            ways_dropped,
            unfollowed,
        }
    }

    /// Under `network held`, what the last step changed in handshakes: a child made
    /// (tcp_check_req -> inet_csk_complete_hashdance) is queued on the listener; a
    /// client whose SYN drew an RST is an unconnected socket again, as a refused
    /// connect leaves it under `network instant`.
    fn settle_handshakes(&mut self) {
        for i in 0..self.conns.len() {
            let Conn::Tcp(m) = &mut self.conns[i] else {
                continue;
            };
            let (made, refused, client) = (m.take_child_made(), m.take_refused(), m.names()[0]);
            if made {
                self.listener.queue.push_back(i);
            }
            let here = Slot::Conn {
                conn: i,
                end: End::A,
            };
            if refused && self.slots[client.index()] == here {
                self.slots[client.index()] = Slot::Loose;
                let l = &mut self.loose[client.index()];
                l.connecting = true;
                l.err = Some(Errno::ECONNREFUSED);
                l.rcv_shut = true;
                l.snd_shut = true;
                // The SYN's sequence number stays unacknowledged.
                l.outq = 1;
            }
        }
    }

    /// The held connection whose ends are named as `dir` says now (the newest, where
    /// a client connected again), and the end `dir.from` is.
    fn held_conn(&self, dir: crate::step::Dir) -> Option<(usize, End)> {
        if self.network != crate::step::Network::Held {
            return None;
        }
        self.conns
            .iter()
            .enumerate()
            .rev()
            .find_map(|(i, c)| match c {
                Conn::Tcp(m) => {
                    let n = m.names();
                    if n == [dir.from, dir.to] {
                        Some((i, End::A))
                    } else if n == [dir.to, dir.from] {
                        Some((i, End::B))
                    } else {
                        None
                    }
                }
                Conn::Unix(_) => None,
            })
    }

    /// Under `network held`, after step `step`: the kernel's result and the segments it
    /// sent settle which way a timer went, where the model kept both (see
    /// [`super::alternatives`]).
    pub fn settle_held(&mut self, step: Step, result: &StepResult, segs: &[crate::step::WireSeg]) {
        if self.network != crate::step::Network::Held {
            return;
        }
        if let Step::Held { dir } = step {
            if let Some((conn, end)) = self.held_conn(dir) {
                if let Conn::Tcp(m) = &mut self.conns[conn] {
                    m.settle_wire(end, step, &result.outcome);
                }
            }
        }
        let names_of: Vec<[Sock; 2]> = self
            .conns
            .iter()
            .filter_map(|c| Some(c.tcp()?.names()))
            .collect();
        for m in self.conns.iter_mut().filter_map(Conn::tcp_mut) {
            let names = m.names();
            if names_of.iter().filter(|n| **n == names).count() > 1 {
                // A client that connected again: whose segments are whose is not
                // told apart by names, so nothing is settled by them.
                continue;
            }
            let mine: Vec<_> = segs
                .iter()
                .copied()
                .filter(|s| names.contains(&s.dir.from) && names.contains(&s.dir.to))
                .collect();
            m.settle_segs(&mine);
        }
    }

    /// Whether a sleep of `ms` now ends outside every window in which a timer may or
    /// may not have fired (see [`super::tcp::TcpModel::sleep_certain`]).
    pub fn sleep_certain(&self, ms: u64) -> bool {
        self.conns
            .iter()
            .all(|c| c.tcp().is_none_or(|m| m.sleep_certain(ms)))
    }

    /// A network step: on the held connection between `dir`'s ends.
    fn wire_step(
        &mut self,
        dir: crate::step::Dir,
        step: Step,
        wire: &mut Vec<WireEvent>,
    ) -> Outcome {
        let Some((conn, end)) = self.held_conn(dir) else {
            return Outcome::NotApplicable;
        };
        match &mut self.conns[conn] {
            Conn::Tcp(m) => {
                let o = m.wire_step(end, step);
                wire.append(m.wire_log());
                o
            }
            Conn::Unix(_) => Outcome::NotApplicable,
        }
    }

    /// Whether the model cannot tell whether new data or a FIN from `sock` would leave
    /// now or wait for the congestion window, under `network held` (see
    /// [`super::tcp::TcpModel::held_send_uncertain`]).
    pub fn held_send_uncertain(&self, sock: Sock) -> bool {
        match (self.slots[sock.index()], self.network) {
            (Slot::Conn { conn, end }, crate::step::Network::Held) => match &self.conns[conn] {
                Conn::Tcp(m) => m.held_send_uncertain(end),
                Conn::Unix(_) => false,
            },
            _ => false,
        }
    }

    /// Segments in flight in direction `dir` under `network held` (0 otherwise).
    pub fn held_count(&self, dir: crate::step::Dir) -> usize {
        match self.held_conn(dir) {
            Some((conn, end)) => match &self.conns[conn] {
                Conn::Tcp(m) => m.held_count(end),
                Conn::Unix(_) => 0,
            },
            None => 0,
        }
    }

    /// Every direction with segments in flight under `network held`, as the ends are
    /// named now.
    pub fn held_dirs(&self) -> Vec<crate::step::Dir> {
        let mut out = vec![];
        for c in self.conns.iter().rev() {
            if let Conn::Tcp(m) = c {
                let [x, y] = m.names();
                for d in [
                    crate::step::Dir { from: x, to: y },
                    crate::step::Dir { from: y, to: x },
                ] {
                    if !out.contains(&d) && self.held_count(d) > 0 {
                        out.push(d);
                    }
                }
            }
        }
        out
    }

    /// This world under `network` (held: TCP connections hold their segments).
    pub fn with_network(mut self, network: crate::step::Network) -> Model {
        self.network = network;
        if network == crate::step::Network::Held {
            self.conns = std::mem::take(&mut self.conns)
                .into_iter()
                .map(|c| match c {
                    Conn::Tcp(m) => Conn::Tcp(m.held()),
                    c => c,
                })
                .collect();
        }
        self
    }

    fn call(&mut self, sock: Sock, op: Op, wire: &mut Vec<WireEvent>) -> StepResult {
        if op == Op::Accept {
            return self.accept(sock);
        }
        if let Some(r) = self.answered_before_the_socket(sock, op) {
            return r;
        }
        match self.slots[sock.index()] {
            // A closed listener or never-connected socket holds no connection (the
            // listener's queued children were reset with it): `state` finds nothing.
            Slot::Closed if op == Op::State && self.transport.is_tcp() => {
                StepResult::plain(if self.profile.tcp.closed_state_unavailable {
                    Outcome::NotApplicable
                } else {
                    Outcome::Gone
                })
            }
            Slot::Absent | Slot::Closed => super::common::closed_result(),
            Slot::Conn { conn, end } => self.conn_call(sock, conn, end, op, wire),
            Slot::Loose => self.loose_call(sock, op, wire),
            Slot::Listener => self.listener_call(op, wire),
        }
    }

    /// Calls a TCP stack answers from the descriptor alone, whatever the socket's
    /// state: lwIP's netconn_write_vectors_partly returns ERR_OK for size 0 before it
    /// looks at the connection, and lwip_setsockopt_impl has no SO_SNDBUF.
    fn answered_before_the_socket(&mut self, sock: Sock, op: Op) -> Option<StepResult> {
        let tcp = self.profile.tcp;
        if !self.transport.is_tcp() {
            return None;
        }
        let fd_open = match self.slots[sock.index()] {
            Slot::Absent | Slot::Closed => false,
            Slot::Conn { conn, end } => self.conns[conn].model().fd_open(end),
            Slot::Loose | Slot::Listener => true,
        };
        match op {
            Op::Write(0) | Op::WriteNoSignal(0) | Op::WriteOob(0)
                if fd_open && tcp.zero_length_write_returns_zero =>
            {
                Some(StepResult::plain(Outcome::Wrote(0)))
            }
            Op::SndBuf(_) if fd_open && tcp.sndbuf_enoprotoopt => {
                Some(StepResult::plain(Outcome::Err(Errno::ENOPROTOOPT)))
            }
            _ => None,
        }
    }

    fn run_on(&mut self, conn: usize, end: End, op: Op, wire: &mut Vec<WireEvent>) -> StepResult {
        let hint = self.hint.clone().map(|(mut h, after)| {
            for s in Sock::ALL {
                if let Slot::Conn { conn: c, end: e } = self.slots[s.index()] {
                    if c == conn {
                        h.after[e.index()] = Some(after[s.index()]);
                    }
                }
            }
            h
        });
        let m = self.conns[conn].model();
        m.wire_log().clear();
        m.set_hint(hint);
        let r = m.drive(end, op);
        m.set_hint(None);
        wire.append(m.wire_log());
        r
    }

    fn conn_call(
        &mut self,
        sock: Sock,
        conn: usize,
        end: End,
        op: Op,
        wire: &mut Vec<WireEvent>,
    ) -> StepResult {
        if let Conn::Tcp(m) = &mut self.conns[conn] {
            if m.syn_sent(end) {
                match op {
                    // __inet_stream_connect in SS_CONNECTING, still SYN_SENT.
                    Op::Connect => return StepResult::plain(Outcome::Err(Errno::EALREADY)),
                    // inet_shutdown in TCP_SYN_SENT, whatever the direction:
                    // tcp_disconnect (no segment from SYN_SENT, sk_err ECONNRESET,
                    // sk_shutdown 0, write_seq moved on by max_window + 2) and
                    // SS_UNCONNECTED: an unconnected CLOSE socket again.
                    Op::Shutdown(_) => {
                        m.disconnect_syn_sent(end);
                        self.slots[sock.index()] = Slot::Loose;
                        let old = self.loose[sock.index()];
                        self.loose[sock.index()] = Loose {
                            bufs: old.bufs,
                            linger: old.linger,
                            err: Some(Errno::ECONNRESET),
                            outq: 3,
                            ..Loose::default()
                        };
                        return StepResult::plain(Outcome::Ok);
                    }
                    _ => {}
                }
            }
        }
        let fd_open = self.conns[conn].model().fd_open(end);
        if fd_open && op == Op::Connect {
            if self.unix_kind().is_some() {
                // unix_stream_connect looks the listener up before it looks at its own
                // socket: no listener is ECONNREFUSED even for a connected socket.
                if let Err(e) = self.unix_listener_admits() {
                    return StepResult::plain(Outcome::Err(e));
                }
            } else if self.profile.tcp.connect_by_pcb {
                // lwIP's lwip_netconn_do_connect looks at the pcb alone (the connection
                // says EISCONN or ENOTCONN).
                self.loose[sock.index()].connecting = false;
            } else if self.loose[sock.index()].connecting {
                // __inet_stream_connect in SS_CONNECTING: the handshake has ended, so
                // a connection that is not CLOSE becomes SS_CONNECTED (0); a CLOSE one
                // (reset) reports its error and is disconnected (sock_error path).
                self.loose[sock.index()].connecting = false;
                if let Conn::Tcp(m) = &mut self.conns[conn] {
                    if let Some(err) = m.connect_failed(end) {
                        self.slots[sock.index()] = Slot::Loose;
                        let old = self.loose[sock.index()];
                        self.loose[sock.index()] = if self.profile.tcp.refused_connect_no_retry {
                            // gVisor's endpoint stays in its error state, as after a
                            // refused connect: every later connect fails.
                            Loose {
                                bufs: old.bufs,
                                connecting: true,
                                rcv_shut: true,
                                snd_shut: true,
                                ..Loose::default()
                            }
                        } else {
                            Loose {
                                bufs: old.bufs,
                                outq: old.outq + 2,
                                ..Loose::default()
                            }
                        };
                        return StepResult::plain(Outcome::Err(err));
                    }
                }
                return StepResult::plain(Outcome::Ok);
            }
        }
        self.run_on(conn, end, op, wire)
    }

    /// unix_stream_connect's checks of the listener, in its order.
    fn unix_listener_admits(&self) -> Result<(), Errno> {
        if self.slots[Sock::L.index()] != Slot::Listener || self.listener.rcv_shut {
            // unix_find_other finds no socket at a released abstract address; a
            // listener shut for reading (sk_shutdown & RCV_SHUTDOWN) refuses.
            return Err(Errno::ECONNREFUSED);
        }
        Ok(())
    }

    fn loose_call(&mut self, sock: Sock, op: Op, wire: &mut Vec<WireEvent>) -> StepResult {
        match op {
            Op::Connect => self.connect(sock, wire),
            Op::Close | Op::Abort => {
                self.slots[sock.index()] = Slot::Closed;
                StepResult::plain(Outcome::Ok)
            }
            // Kept until the connect, which carries them into the connection.
            Op::RcvBuf(n) => {
                self.loose[sock.index()].bufs.rcvbuf = Some(n);
                StepResult::plain(Outcome::Ok)
            }
            Op::SndBuf(n) => {
                self.loose[sock.index()].bufs.sndbuf = Some(n);
                StepResult::plain(Outcome::Ok)
            }
            _ => {
                let kind = self.unix_kind();
                let l = &mut self.loose[sock.index()];
                match kind {
                    None => super::tcp::loose_call(l, op, &self.profile),
                    Some(kind) => super::unix::loose_call(l, kind, op, &self.profile),
                }
            }
        }
    }

    fn connect(&mut self, sock: Sock, wire: &mut Vec<WireEvent>) -> StepResult {
        let listening = self.slots[Sock::L.index()] == Slot::Listener && self.listener.listening;
        let pre = self.loose[sock.index()];
        if self.unix_kind().is_some() {
            if let Err(e) = self.unix_listener_admits() {
                return StepResult::plain(Outcome::Err(e));
            }
            // unix_stream_connect: the server side is created at once and queued on the
            // listener; the client is connected when the call returns.
            self.make_queued_conn(sock, pre, wire, None);
            return StepResult::plain(Outcome::Ok);
        }
        let no_retry = self.profile.tcp.refused_connect_no_retry;
        let l = &mut self.loose[sock.index()];
        if l.released {
            // lwIP's lwip_netconn_do_connect: the netconn has no pcb any more.
            return StepResult::plain(Outcome::Err(Errno::ENOTCONN));
        }
        if l.disconnecting {
            // __inet_stream_connect's `default:` case: SS_DISCONNECTING is none of
            // UNCONNECTED, CONNECTING or CONNECTED, so EINVAL, the error left pending.
            return StepResult::plain(Outcome::Err(Errno::EINVAL));
        }
        if l.connecting {
            // SS_CONNECTING after a refused handshake: sock_error, then disconnect, and
            // the next connect starts afresh. gVisor's endpoint stays in its error state:
            // every later connect fails.
            let err = l.err.take().unwrap_or(Errno::ECONNABORTED);
            if !no_retry {
                // tcp_disconnect: write_seq += max_window + 2 (0 for a connection that
                // never got a window).
                *l = Loose {
                    bufs: l.bufs,
                    outq: l.outq + 2,
                    ..Loose::default()
                };
            }
            return StepResult::plain(Outcome::Err(err));
        }
        l.connecting = true;
        if self.network == crate::step::Network::Held {
            // The SYN waits in flight: what meets it is decided when it is delivered.
            self.make_queued_conn(sock, pre, wire, Some(listening));
            return StepResult::plain(Outcome::Err(Errno::EINPROGRESS));
        }
        if !listening {
            // No socket listens on the port: the SYN draws an RST (tcp_v4_send_reset),
            // processed from the backlog after connect returned EINPROGRESS; tcp_reset
            // in SYN_SENT says ECONNREFUSED and tcp_done shuts both ways.
            l.err = Some(Errno::ECONNREFUSED);
            if self.profile.tcp.refused_connect_resets {
                // lwIP's tcp_process in SYN_SENT takes the RST as any reset: err_tcp
                // gets ERR_RST, leaves it pending, posts its marker to the mailbox,
                // fires every event and lets the pcb go.
                l.err = Some(Errno::ECONNRESET);
                l.rst_marker = true;
                l.released = true;
            }
            if self.profile.tcp.refused_connect_error_twice {
                // handshakeFailed sets both lastError and hardError.
                l.last_err = Some(Errno::ECONNREFUSED);
            }
            l.rcv_shut = true;
            l.snd_shut = true;
            // The SYN's sequence number stays unacknowledged.
            l.outq = 1;
            wire.push(WireEvent {
                from: sock,
                to: Sock::L,
                kind: super::SegmentKind::Syn,
                note: "connect sends SYN",
            });
            wire.push(WireEvent {
                from: Sock::L,
                to: sock,
                kind: super::SegmentKind::Rst,
                note: "no listener on the port: RST (RFC 9293 3.10.7.1)",
            });
            return StepResult::plain(Outcome::Err(Errno::EINPROGRESS));
        }
        // On loopback the handshake completes while connect holds the socket lock:
        // the SYN-ACK is processed from the backlog at release_sock, after
        // __inet_stream_connect returned EINPROGRESS for a non-blocking socket.
        self.make_queued_conn(sock, pre, wire, None);
        StepResult::plain(Outcome::Err(Errno::EINPROGRESS))
    }

    /// `held`: under `network held`, whether a listener is there for the SYN; the
    /// connection then starts in SYN_SENT and is queued only when its child is made
    /// (see `settle_handshakes`).
    fn make_queued_conn(
        &mut self,
        sock: Sock,
        pre: Loose,
        wire: &mut Vec<WireEvent>,
        held: Option<bool>,
    ) {
        let mut c = self.new_conn();
        let idx = self.conns.len();
        {
            let m = c.model();
            m.set_name(End::A, sock);
            m.set_name(End::B, Sock::L);
            // lwIP's pcb keeps TF_RXCLOSED (and its drained mailbox) from a shutdown(rd)
            // made before it connected: the connection starts as one shut so (below).
            let by_pcb = self.transport.is_tcp() && self.profile.tcp.unconnected_shutdown_by_pcb;
            m.preset_shutdown(End::A, pre.rcv_shut && !by_pcb, pre.snd_shut);
            m.preset_bufs(End::A, pre.bufs);
            // The server side: a TCP child is a copy of the listener (sk_clone_lock);
            // a Unix one is made fresh by unix_stream_connect, and gets the header's
            // sizes only because the executor sets them on every accepted socket.
            let server = if self.transport.is_tcp() {
                self.listener.bufs
            } else {
                self.header_bufs
            };
            m.preset_bufs(End::B, server);
        }
        if let Conn::Tcp(m) = &mut c {
            m.preset_deferred_shutdown(End::A, pre.deferred_rd, pre.deferred_wr);
            if pre.rcv_shut && self.profile.tcp.unconnected_shutdown_by_pcb {
                m.run(End::A, Op::Shutdown(crate::step::Shut::Rd));
            }
            if let Some(secs) = pre.linger {
                m.run(End::A, Op::Linger(secs));
            }
            if let Some(secs) = self.listener.linger {
                if !self.profile.tcp.linger_not_inherited {
                    m.run(End::B, Op::Linger(secs));
                }
            }
        }
        if let (Some(listening), Conn::Tcp(m)) = (held, &mut c) {
            let mut m = std::mem::replace(m, TcpAlternatives::new(TcpModel::new()))
                .held_connecting(listening);
            wire.append(m.wire_log());
            self.conns.push(Conn::Tcp(m));
            self.slots[sock.index()] = Slot::Conn {
                conn: idx,
                end: End::A,
            };
            return;
        }
        self.conns.push(c);
        self.listener.queue.push_back(idx);
        self.slots[sock.index()] = Slot::Conn {
            conn: idx,
            end: End::A,
        };
        let kinds: &[(super::SegmentKind, &'static str)] = if self.transport.is_tcp() {
            &[
                (super::SegmentKind::Syn, "connect sends SYN"),
                (
                    super::SegmentKind::SynAck,
                    "listener answers SYN-ACK (child queued when the ACK arrives)",
                ),
                (super::SegmentKind::Ack, "handshake ends: ESTABLISHED"),
            ]
        } else {
            &[(
                super::SegmentKind::Connect,
                "unix_stream_connect: server socket created and queued on the listener",
            )]
        };
        for (i, (kind, note)) in kinds.iter().enumerate() {
            let (from, to) = if i == 1 {
                (Sock::L, sock)
            } else {
                (sock, Sock::L)
            };
            wire.push(WireEvent {
                from,
                to,
                kind: *kind,
                note,
            });
        }
    }

    fn accept(&mut self, sock: Sock) -> StepResult {
        let listening = match self.slots[Sock::L.index()] {
            // Listening, unless a shutdown stopped it (where the profile keeps it LISTEN).
            Slot::Listener => self.listener.listening,
            // A TCP listener that a shutdown stopped: a plain CLOSE socket now.
            Slot::Loose => false,
            // The call is made on the listener, which is closed or never existed.
            _ => return super::common::closed_result(),
        };
        if self.slots[sock.index()] != Slot::Absent {
            // The name is taken: no call is made.
            return StepResult::plain(Outcome::NotApplicable);
        }
        if !listening {
            // inet_csk_accept on a socket that is not in LISTEN.
            return StepResult::plain(Outcome::Err(Errno::EINVAL));
        }
        let Some(conn) = self.listener.queue.pop_front() else {
            return StepResult::plain(Outcome::Err(Errno::EAGAIN));
        };
        self.conns[conn].model().set_name(End::B, sock);
        if let Conn::Tcp(m) = &mut self.conns[conn] {
            m.accepted(End::B);
        }
        self.slots[sock.index()] = Slot::Conn { conn, end: End::B };
        StepResult::plain(Outcome::Ok)
    }

    fn listener_call(&mut self, op: Op, wire: &mut Vec<WireEvent>) -> StepResult {
        let tcp = self.transport.is_tcp();
        match op {
            Op::Close | Op::Abort => {
                self.slots[Sock::L.index()] = Slot::Closed;
                self.forget_queue(wire);
                StepResult::plain(Outcome::Ok)
            }
            Op::Shutdown(how)
                if tcp
                    && how != crate::step::Shut::RdWr
                    && self.profile.tcp.listener_half_shutdown_enotconn =>
            {
                // lwIP's lwip_netconn_do_close: "LISTEN doesn't support half
                // shutdown": ERR_CONN, and the listener stays as it was.
                StepResult::plain(Outcome::Err(Errno::ENOTCONN))
            }
            Op::Shutdown(how) => {
                if tcp {
                    // inet_shutdown on TCP_LISTEN: without RCV_SHUTDOWN nothing happens;
                    // with it, tcp_disconnect stops listening (inet_csk_listen_stop
                    // resets the queue) and leaves a fresh CLOSE socket.
                    if how.reads() {
                        self.listener.listening = false;
                        self.forget_queue(wire);
                        // tcp_disconnect leaves a fresh CLOSE socket (sk_shutdown 0), which
                        // answers every later call as a never-connected one. gVisor's
                        // stays a (refusing) listener.
                        if !self.profile.tcp.listener_shutdown_keeps_listen {
                            self.slots[Sock::L.index()] = Slot::Loose;
                            self.loose[Sock::L.index()] = Loose {
                                bufs: self.listener.bufs,
                                outq: 2,
                                released: how == crate::step::Shut::RdWr
                                    && self.profile.tcp.listener_shutdown_rdwr_fires_events,
                                ..Loose::default()
                            };
                        }
                    }
                } else if self.profile.unix.shutdown_needs_connection {
                    // gVisor's baseEndpoint.Shutdown: not connected.
                    return StepResult::plain(Outcome::Err(Errno::ENOTCONN));
                } else {
                    // unix_shutdown ORs the bits in; the queue stays acceptable.
                    self.listener.rcv_shut |= how.reads();
                    self.listener.snd_shut |= how.writes();
                }
                StepResult::plain(Outcome::Ok)
            }
            Op::Linger(secs) if tcp => {
                self.listener.linger = Some(secs);
                StepResult::plain(Outcome::Ok)
            }
            // sk_setsockopt takes SO_RCVBUF/SO_SNDBUF on any socket; a TCP child
            // starts as a copy of the listener.
            Op::RcvBuf(n) => {
                self.listener.bufs.rcvbuf = Some(n);
                StepResult::plain(Outcome::Ok)
            }
            Op::SndBuf(n) => {
                self.listener.bufs.sndbuf = Some(n);
                StepResult::plain(Outcome::Ok)
            }
            Op::Connect if !tcp => StepResult::plain(Outcome::Err(
                self.unix_listener_admits().err().unwrap_or(Errno::EINVAL),
            )),
            _ => {
                let queued = !self.listener.queue.is_empty();
                match self.unix_kind() {
                    None => super::tcp::listener_call(&self.listener, queued, op, &self.profile),
                    Some(kind) => {
                        super::unix::listener_call(&self.listener, kind, queued, op, &self.profile)
                    }
                }
            }
        }
    }

    /// The listener stops: every queued connection is dropped, as the transport drops
    /// an unaccepted child (TCP: inet_csk_listen_stop -> inet_child_forget ->
    /// tcp_disconnect; Unix: unix_release_sock(embryo, 1)).
    fn forget_queue(&mut self, wire: &mut Vec<WireEvent>) {
        while let Some(conn) = self.listener.queue.pop_front() {
            let m = self.conns[conn].model();
            m.wire_log().clear();
            m.forget_unaccepted(End::B);
            m.deliver_all();
            wire.append(m.wire_log());
            if let Conn::Tcp(m) = &mut self.conns[conn] {
                let sent = m.take_segs_all().into_iter().next().unwrap_or_default();
                self.early_segs.extend(sent.into_iter().map(|s| s.seg));
            }
        }
        // Handshakes not yet done: their SYN or request finds no listener now.
        for c in &mut self.conns {
            if let Conn::Tcp(m) = c {
                m.listener_stopped();
            }
        }
    }

    /// Every socket as it is now.
    pub fn view(&self) -> Observation {
        let mut out = [EndView::Absent; 5];
        for s in Sock::ALL {
            out[s.index()] = self.view_of(s);
        }
        out
    }

    fn view_of(&self, s: Sock) -> EndView {
        match self.slots[s.index()] {
            Slot::Absent => EndView::Absent,
            Slot::Closed => EndView::Closed,
            Slot::Conn { conn, end } => self.conns[conn].view(end),
            Slot::Loose => {
                let l = &self.loose[s.index()];
                match self.unix_kind() {
                    None => super::tcp::loose_view(l, &self.profile),
                    Some(kind) => super::unix::loose_view(l, kind, &self.profile),
                }
            }
            Slot::Listener => {
                let queued = !self.listener.queue.is_empty();
                match self.unix_kind() {
                    None => super::tcp::listener_view(&self.listener, queued, &self.profile),
                    Some(kind) => {
                        super::unix::listener_view(&self.listener, kind, queued, &self.profile)
                    }
                }
            }
        }
    }

    /// A one-line account of a socket's internal state, for `explain`.
    pub fn describe(&self, s: Sock) -> String {
        match self.slots[s.index()] {
            Slot::Absent => "not created".into(),
            Slot::Closed => "fd closed".into(),
            Slot::Conn { conn, end } => {
                let queued = self.listener.queue.contains(&conn) && end == End::B;
                let d = self.conns[conn].describe(end);
                if queued {
                    format!("queued on l, {d}")
                } else {
                    d
                }
            }
            Slot::Loose => {
                let l = &self.loose[s.index()];
                let mut parts = vec!["not connected".to_string()];
                if l.connecting {
                    parts.push("connect failed".into());
                }
                if l.rcv_shut || l.snd_shut {
                    parts.push(format!(
                        "shut{}{}",
                        if l.rcv_shut { " rd" } else { "" },
                        if l.snd_shut { " wr" } else { "" }
                    ));
                }
                if let Some(e) = l.err {
                    parts.push(format!("error {e}"));
                }
                parts.join(", ")
            }
            Slot::Listener => {
                let mut d = if self.listener.listening {
                    format!("listening, {} queued", self.listener.queue.len())
                } else {
                    // Only a profile that keeps a stopped listener in LISTEN gets here
                    // (Linux's becomes a loose CLOSE socket).
                    "LISTEN, but stopped by shutdown rd: refuses and resets".to_string()
                };
                if self.listener.rcv_shut {
                    d.push_str(", shut rd");
                }
                d
            }
        }
    }

    /// Milliseconds slept so far.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }
}

/// poll's answer for a socket that is in no connection, built from its flags; shared by
/// the transports' loose-socket rules.
pub fn loose_poll(l: &Loose, hup: bool, out: bool, rdhup: bool) -> PollSet {
    PollSet::NONE
        .with_if(PollSet::OUT, out)
        .with_if(PollSet::HUP, hup)
        .with_if(PollSet::IN, l.rcv_shut)
        .with_if(PollSet::RDHUP, l.rcv_shut && rdhup)
        .with_if(PollSet::ERR, l.err.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::{Shut, StateSet, TcpState};

    fn held_linux() -> Model {
        Model::new(Transport::Tcp4, Profile::linux()).with_network(crate::step::Network::Held)
    }

    fn seg_names(p: &Prediction) -> Vec<Vec<crate::step::SegName>> {
        let first = p.segs.clone().unwrap_or_default();
        std::iter::once(first)
            .chain(p.segs_or.iter().cloned())
            .map(|v| v.into_iter().map(|w| w.name).collect())
            .collect()
    }

    /// A lost FIN under held on Linux is resent by the retransmission timer, 1 s (the
    /// route's rto_min) after it left: not in a sleep that ends well before, certainly
    /// in one that ends well after, and either way in one that ends near it, where the
    /// segments the kernel sent settle which.
    #[test]
    fn held_retransmission_timer_fires_at_the_rto() {
        use crate::step::{Dir, SegName};
        let lost_fin = || {
            let mut m = held_linux();
            m.step(Step::Call {
                sock: Sock::A,
                op: Op::Shutdown(Shut::Wr),
            });
            m.step(Step::Drop { dir: Dir::PAIR[0] });
            m
        };
        let mut m = lost_fin();
        assert!(m.sleep_certain(500) && m.sleep_certain(1500) && !m.sleep_certain(1200));
        assert_eq!(seg_names(&m.step(Step::Sleep { ms: 500 })), vec![vec![]]);
        assert_eq!(
            seg_names(&m.step(Step::Sleep { ms: 1000 })),
            vec![vec![SegName::Fin]]
        );
        // Backed off: the next one 2 s after the first resend, not 1 s.
        m.step(Step::Drop { dir: Dir::PAIR[0] });
        assert!(!m.sleep_certain(1500) && m.sleep_certain(1000) && m.sleep_certain(2100));
        assert_eq!(seg_names(&m.step(Step::Sleep { ms: 1000 })), vec![vec![]]);
        assert_eq!(
            seg_names(&m.step(Step::Sleep { ms: 1100 })),
            vec![vec![SegName::Fin]]
        );

        let mut m = lost_fin();
        let p = m.step(Step::Sleep { ms: 1200 });
        assert_eq!(seg_names(&p), vec![vec![], vec![SegName::Fin]]);
        let held = Step::Held { dir: Dir::PAIR[0] };
        let either = m.clone().step(held).result.outcome;
        assert!(either.is_range(), "{either}");
        // The kernel sent the FIN in the sleep: only that way is kept.
        let fin = p.segs_or[0].clone();
        m.settle_held(
            Step::Sleep { ms: 1200 },
            &StepResult::plain(Outcome::Ok),
            &fin,
        );
        assert_eq!(
            m.step(held).result.outcome,
            Outcome::Segments(vec![SegName::Fin])
        );
    }

    /// Smoltcp's held model has no timer: its surface does not let held scripts sleep
    /// (see crate::script), so the generator never asks it to.
    #[test]
    fn only_linux_runs_held_sleeps() {
        assert!(Profile::linux().surface.held_sleep);
        assert!(!Profile::smoltcp().surface.held_sleep);
    }

    fn listening(t: Transport, profile: Profile) -> Model {
        Model::with_start(t, profile, Start::Listening)
    }

    fn run(m: &mut Model, sock: Sock, op: Op) -> Outcome {
        m.step(Step::call(sock, op)).result.outcome
    }

    #[test]
    fn accept_names_the_oldest_queued_connection() {
        let mut m = listening(Transport::Tcp4, Profile::linux());
        assert_eq!(
            run(&mut m, Sock::B, Op::Accept),
            Outcome::Err(Errno::EAGAIN)
        );
        assert_eq!(
            run(&mut m, Sock::C, Op::Connect),
            Outcome::Err(Errno::EINPROGRESS)
        );
        assert_eq!(
            run(&mut m, Sock::A, Op::Connect),
            Outcome::Err(Errno::EINPROGRESS)
        );
        assert_eq!(run(&mut m, Sock::C, Op::Write(3)), Outcome::Wrote(3));
        // b gets c's connection (first in), and reads c's bytes.
        assert_eq!(run(&mut m, Sock::B, Op::Accept), Outcome::Ok);
        assert_eq!(
            run(&mut m, Sock::B, Op::Read(10)),
            Outcome::Data(crate::step::pattern(Sock::C, 0, 3))
        );
        assert_eq!(run(&mut m, Sock::D, Op::Accept), Outcome::Ok);
        // A name already taken makes no call.
        assert_eq!(run(&mut m, Sock::B, Op::Accept), Outcome::NotApplicable);
        assert!(m.describe(Sock::L).starts_with("listening, 0 queued"));
    }

    /// A call the stack cannot be asked is n/a and changes nothing: the shutdown that
    /// would have sent a FIN leaves the peer reading no EOF.
    #[test]
    fn a_call_the_stack_cannot_be_asked_is_not_made() {
        let profile = Profile {
            surface: crate::step::Surface {
                cannot_shut: &[Shut::Wr],
                ..crate::step::Surface::ALL
            },
            ..Profile::linux()
        };
        let mut m = Model::new(Transport::Tcp4, profile);
        assert_eq!(
            run(&mut m, Sock::A, Op::Shutdown(Shut::Wr)),
            Outcome::NotApplicable
        );
        assert_eq!(
            run(&mut m, Sock::B, Op::Read(1)),
            Outcome::Err(Errno::EAGAIN)
        );
        assert_eq!(run(&mut m, Sock::A, Op::Close), Outcome::Ok);
        assert_eq!(run(&mut m, Sock::B, Op::Read(1)), Outcome::Eof);
    }

    #[test]
    fn closing_the_listener_resets_what_is_queued_not_what_was_accepted() {
        let mut m = listening(Transport::Tcp4, Profile::linux());
        run(&mut m, Sock::A, Op::Connect);
        run(&mut m, Sock::B, Op::Accept);
        run(&mut m, Sock::C, Op::Connect);
        let p = m.step(Step::call(Sock::L, Op::Close));
        assert_eq!(p.wire.len(), 1, "{:?}", p.wire);
        assert_eq!((p.wire[0].from, p.wire[0].to), (Sock::L, Sock::C));
        assert_eq!(
            run(&mut m, Sock::C, Op::Read(1)),
            Outcome::Err(Errno::ECONNRESET)
        );
        assert_eq!(
            run(&mut m, Sock::A, Op::State),
            Outcome::State(TcpState::Established.into())
        );
        // No listener: a later accept makes no call.
        assert_eq!(run(&mut m, Sock::D, Op::Accept), Outcome::Closed);
    }

    #[test]
    fn a_refused_connect_retries_on_linux_and_stays_failed_on_gvisor() {
        for (profile, third) in [
            (Profile::linux(), Outcome::Err(Errno::EINPROGRESS)),
            (Profile::gvisor(), Outcome::Err(Errno::ECONNABORTED)),
        ] {
            let mut m = listening(Transport::Tcp4, profile);
            run(&mut m, Sock::L, Op::Close);
            assert_eq!(
                run(&mut m, Sock::A, Op::Connect),
                Outcome::Err(Errno::EINPROGRESS)
            );
            assert_eq!(
                run(&mut m, Sock::A, Op::Error),
                Outcome::SockError(Some(Errno::ECONNREFUSED))
            );
            assert_eq!(
                run(&mut m, Sock::A, Op::Connect),
                Outcome::Err(Errno::ECONNABORTED)
            );
            assert_eq!(
                run(&mut m, Sock::A, Op::Connect),
                third,
                "{:?}",
                profile.platform
            );
        }
    }

    #[test]
    fn a_unix_listener_shut_for_reading_still_hands_out_its_queue() {
        let mut m = listening(Transport::Unix, Profile::linux());
        assert_eq!(run(&mut m, Sock::A, Op::Connect), Outcome::Ok);
        assert_eq!(run(&mut m, Sock::L, Op::Shutdown(Shut::Rd)), Outcome::Ok);
        assert_eq!(
            run(&mut m, Sock::C, Op::Connect),
            Outcome::Err(Errno::ECONNREFUSED)
        );
        assert_eq!(run(&mut m, Sock::B, Op::Accept), Outcome::Ok);
    }

    /// Under network held a listening world's handshake is steps: the child is queued
    /// only when a segment with a valid ACK reaches the request, and the directions
    /// are named by the ends' current names.
    #[test]
    fn held_handshake_queues_the_child_when_its_ack_arrives() {
        use crate::step::{Dir, Network, Which};
        let mut m = listening(Transport::Tcp4, Profile::linux()).with_network(Network::Held);
        let dir = |f: Sock, t: Sock| Dir { from: f, to: t };
        let deliver = |m: &mut Model, d: Dir| {
            m.step(Step::Deliver {
                dir: d,
                which: Which::Nth(1),
            })
        };
        assert_eq!(
            run(&mut m, Sock::A, Op::Connect),
            Outcome::Err(Errno::EINPROGRESS)
        );
        assert_eq!(
            run(&mut m, Sock::A, Op::State),
            Outcome::State(TcpState::SynSent.into())
        );
        assert_eq!(m.held_count(dir(Sock::A, Sock::L)), 1);
        let p = deliver(&mut m, dir(Sock::A, Sock::L));
        assert_eq!(
            crate::step::wire_segs(&p.segs.unwrap()),
            "l>a SYN-ACK seq 0 ack 0"
        );
        assert_eq!(
            run(&mut m, Sock::B, Op::Accept),
            Outcome::Err(Errno::EAGAIN)
        );
        deliver(&mut m, dir(Sock::L, Sock::A));
        assert_eq!(
            run(&mut m, Sock::A, Op::State),
            Outcome::State(TcpState::Established.into())
        );
        assert_eq!(
            run(&mut m, Sock::B, Op::Accept),
            Outcome::Err(Errno::EAGAIN)
        );
        deliver(&mut m, dir(Sock::A, Sock::L));
        assert_eq!(run(&mut m, Sock::B, Op::Accept), Outcome::Ok);
        assert_eq!(run(&mut m, Sock::A, Op::Write(2)), Outcome::Wrote(2));
        assert_eq!(m.held_dirs(), vec![dir(Sock::A, Sock::B)]);
    }

    /// A held SYN that meets no listener is answered by an RST, which refuses the
    /// connect as under network instant.
    #[test]
    fn held_syn_after_the_listener_closed_is_refused() {
        use crate::step::{Dir, Network, Which};
        let mut m = listening(Transport::Tcp4, Profile::linux()).with_network(Network::Held);
        run(&mut m, Sock::A, Op::Connect);
        run(&mut m, Sock::L, Op::Close);
        for d in [
            Dir {
                from: Sock::A,
                to: Sock::L,
            },
            Dir {
                from: Sock::L,
                to: Sock::A,
            },
        ] {
            m.step(Step::Deliver {
                dir: d,
                which: Which::Nth(1),
            });
        }
        assert_eq!(
            run(&mut m, Sock::A, Op::Connect),
            Outcome::Err(Errno::ECONNREFUSED)
        );
    }

    #[test]
    fn sleeping_past_the_delayed_ack_settles_fin_wait1_or_2() {
        let mut m = Model::new(Transport::Tcp4, Profile::linux());
        run(&mut m, Sock::A, Op::Shutdown(Shut::Wr));
        let open = StateSet::one(TcpState::FinWait1).with(TcpState::FinWait2);
        assert_eq!(run(&mut m, Sock::A, Op::State), Outcome::State(open));
        m.step(Step::Sleep { ms: 100 });
        assert_eq!(run(&mut m, Sock::A, Op::State), Outcome::State(open));
        m.step(Step::Sleep { ms: 250 });
        assert_eq!(
            run(&mut m, Sock::A, Op::State),
            Outcome::State(TcpState::FinWait2.into())
        );
        assert_eq!(m.now_ms(), 350);
    }
}
