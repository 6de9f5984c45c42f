//! The vocabulary shared by the model, the executor and scenario scripts:
//! which end acts, what it does, and what came of it.

use serde::{Deserialize, Serialize};
use std::fmt;

/// One side of one connection, inside a connection model: `A` is the side that
/// connected, `B` the accepted side. Scripts name sockets ([`Sock`]), not sides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum End {
    /// The connecting side.
    A,
    /// The accepted side.
    B,
}

/// A socket of a scenario, by its script name. `a` and `c` are clients, `b` and `d`
/// are accepted sockets (named by the `accept` step that creates them, or `b` is the
/// accepted end of a pair that starts connected), `l` is the listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum Sock {
    /// The first client: connects (or starts connected to `b`).
    A,
    /// The first accepted socket.
    B,
    /// The second client.
    C,
    /// The second accepted socket.
    D,
    /// The listener.
    L,
}

impl Sock {
    /// Every socket, in script order.
    pub const ALL: [Sock; 5] = [Sock::A, Sock::B, Sock::C, Sock::D, Sock::L];

    /// The script name.
    pub fn name(self) -> &'static str {
        match self {
            Sock::A => "a",
            Sock::B => "b",
            Sock::C => "c",
            Sock::D => "d",
            Sock::L => "l",
        }
    }

    /// Looks a script name up.
    pub fn from_name(s: &str) -> Option<Sock> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }

    /// A position in per-socket arrays such as [`Observation`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Which side of its connection this socket is: clients connect (`A`), accepted
    /// sockets are accepted (`B`); the listener is neither.
    pub fn side(self) -> Option<End> {
        match self {
            Sock::A | Sock::C => Some(End::A),
            Sock::B | Sock::D => Some(End::B),
            Sock::L => None,
        }
    }
}

impl fmt::Display for Sock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl End {
    /// Both ends, `A` first.
    pub const BOTH: [End; 2] = [End::A, End::B];

    /// The other end of the connection.
    pub fn peer(self) -> End {
        match self {
            End::A => End::B,
            End::B => End::A,
        }
    }

    /// 0 for `A`, 1 for `B`: an index into a connection's two sides.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Which direction `shutdown` closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Shut {
    /// `SHUT_RD`
    Rd,
    /// `SHUT_WR`
    Wr,
    /// `SHUT_RDWR`
    RdWr,
}

impl Shut {
    /// Whether this shutdown closes the receive direction.
    pub fn reads(self) -> bool {
        matches!(self, Shut::Rd | Shut::RdWr)
    }
    /// Whether this shutdown closes the send direction.
    pub fn writes(self) -> bool {
        matches!(self, Shut::Wr | Shut::RdWr)
    }
    fn name(self) -> &'static str {
        match self {
            Shut::Rd => "rd",
            Shut::Wr => "wr",
            Shut::RdWr => "rdwr",
        }
    }
}

/// One call on a socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Op {
    /// `send(fd, buf, N, 0)`: N bytes of the socket's byte pattern. Uses send with no
    /// flags rather than write(2) so that a zero-length write reaches the protocol
    /// (write(2) of 0 bytes returns 0 in the socket layer without looking at the
    /// connection) and so that no MSG_NOSIGNAL is ever set.
    Write(u32),
    /// `recv(fd, buf, N, 0)`; N = 0 is a zero-length recv.
    Read(u32),
    /// `shutdown(fd, how)`.
    Shutdown(Shut),
    /// `close(fd)`.
    Close,
    /// `SO_LINGER {on, 0}` then `close(fd)`: the abortive close that sends RST.
    Abort,
    /// Zero-timeout `poll` for `POLLIN|POLLOUT|POLLRDHUP`.
    Poll,
    /// `getsockopt(SO_ERROR)`, which also clears the pending error.
    Error,
    /// The TCP state from `TCP_INFO`; once the fd is closed, the state of what the
    /// kernel still holds for the connection (sock_diag: an orphan, a TIME_WAIT
    /// mini-socket) or `gone`.
    State,
    /// A non-blocking `connect` to the listener's address.
    Connect,
    /// A non-blocking `accept` on the listener; the step's socket names the result.
    Accept,
    /// `SO_LINGER {on, N}`: a later close lingers up to N seconds for unsent data (N = 0:
    /// the close is abortive, as `abort`).
    Linger(u32),
    /// `write N nosignal`: `send(fd, buf, N, MSG_NOSIGNAL)`: EPIPE without SIGPIPE.
    WriteNoSignal(u32),
    /// `read N peek`: `recv(fd, buf, N, MSG_PEEK)`: the data stays queued.
    Peek(u32),
    /// `inq`: `ioctl(SIOCINQ)`, the bytes waiting to be read.
    Inq,
    /// `write N oob`: `send(fd, buf, N, MSG_OOB)`: the last byte is urgent (TCP) or
    /// out-of-band (Unix stream).
    WriteOob(u32),
    /// `read N oob`: `recv(fd, buf, N, MSG_OOB)`: the urgent or out-of-band byte.
    ReadOob(u32),
    /// `outq`: `ioctl(SIOCOUTQ)`, what the send side still holds (TCP: bytes not yet
    /// acknowledged; Unix: the memory charged to the socket, skb truesize).
    Outq,
    /// `rcvbuf N`: `setsockopt(SO_RCVBUF, N)`.
    RcvBuf(u32),
    /// `sndbuf N`: `setsockopt(SO_SNDBUF, N)`.
    SndBuf(u32),
}

/// Which kind of call an [`Op`] is, without its argument: the key of [`CALLS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[allow(missing_docs)]
pub enum CallKind {
    Write,
    Read,
    Shutdown,
    Close,
    Abort,
    Poll,
    Error,
    State,
    Connect,
    Accept,
    Linger,
    WriteNoSignal,
    Peek,
    Inq,
    WriteOob,
    ReadOob,
    Outq,
    RcvBuf,
    SndBuf,
}

/// What a call's argument is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    /// No argument.
    None,
    /// A number from `min` to `max` (bytes, or seconds for `linger`).
    Count {
        /// The smallest allowed.
        min: u32,
        /// The largest allowed.
        max: u32,
        /// What the number counts, for messages.
        unit: &'static str,
    },
    /// `rd`, `wr` or `rdwr`.
    Shut,
}

/// What a call does to the world, for settling and generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Only looks: changes nothing anywhere.
    Looks,
    /// May change this socket and send to its peer.
    Sends,
    /// Gives up the descriptor (and may send).
    Closes,
    /// Sets an option: changes nothing until a later call.
    Configures,
}

/// Which results a call can have, besides an errno and `closed`, which any call can.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Returns {
    /// `ok` with nothing else (shutdown, close, connect, accept, linger).
    Done,
    /// `ok N`: a byte count (write, inq).
    Count,
    /// `data N` or `eof` (read).
    Data,
    /// `poll FLAGS`.
    Poll,
    /// `error 0|ERRNO`.
    SockError,
    /// A TCP state, or `n/a`; after close, the state of what the kernel still holds
    /// for the connection, or `gone`.
    State,
}

/// One call, described once: the script parser, the renderer, the generator and the
/// worker's settling all read this table.
#[derive(Clone, Copy, Debug)]
pub struct CallSpec {
    /// Which call.
    pub kind: CallKind,
    /// The script word.
    pub name: &'static str,
    /// A word after the argument that selects this call (`write N nosignal`).
    pub modifier: Option<&'static str>,
    /// Its argument.
    pub arg: Arg,
    /// What it does.
    pub effect: Effect,
    /// What it returns.
    pub returns: Returns,
}

/// The argument of `write N` and `write N nosignal`.
const WRITE_ARG: Arg = Arg::Count {
    min: 0,
    max: MAX_WRITE,
    unit: "byte count",
};

/// The argument of `read N` and `read N peek`.
const READ_ARG: Arg = Arg::Count {
    min: 0,
    max: MAX_READ,
    unit: "byte count",
};

/// The argument of `rcvbuf N` and `sndbuf N`.
const BUF_ARG: Arg = Arg::Count {
    min: 1,
    max: MAX_BUF,
    unit: "buffer size in bytes",
};

/// Every call closefuzz makes, in the order help texts list them.
pub const CALLS: [CallSpec; 19] = [
    CallSpec {
        kind: CallKind::Write,
        name: "write",
        modifier: None,
        arg: WRITE_ARG,
        effect: Effect::Sends,
        returns: Returns::Count,
    },
    CallSpec {
        kind: CallKind::Read,
        name: "read",
        modifier: None,
        arg: READ_ARG,
        effect: Effect::Sends,
        returns: Returns::Data,
    },
    CallSpec {
        kind: CallKind::Shutdown,
        name: "shutdown",
        modifier: None,
        arg: Arg::Shut,
        effect: Effect::Sends,
        returns: Returns::Done,
    },
    CallSpec {
        kind: CallKind::Close,
        name: "close",
        modifier: None,
        arg: Arg::None,
        effect: Effect::Closes,
        returns: Returns::Done,
    },
    CallSpec {
        kind: CallKind::Abort,
        name: "abort",
        modifier: None,
        arg: Arg::None,
        effect: Effect::Closes,
        returns: Returns::Done,
    },
    CallSpec {
        kind: CallKind::Poll,
        name: "poll",
        modifier: None,
        arg: Arg::None,
        effect: Effect::Looks,
        returns: Returns::Poll,
    },
    CallSpec {
        kind: CallKind::Error,
        name: "error",
        modifier: None,
        arg: Arg::None,
        effect: Effect::Looks,
        returns: Returns::SockError,
    },
    CallSpec {
        kind: CallKind::State,
        name: "state",
        modifier: None,
        arg: Arg::None,
        effect: Effect::Looks,
        returns: Returns::State,
    },
    CallSpec {
        kind: CallKind::Connect,
        name: "connect",
        modifier: None,
        arg: Arg::None,
        effect: Effect::Sends,
        returns: Returns::Done,
    },
    CallSpec {
        kind: CallKind::Accept,
        name: "accept",
        modifier: None,
        arg: Arg::None,
        effect: Effect::Sends,
        returns: Returns::Done,
    },
    CallSpec {
        kind: CallKind::Linger,
        name: "linger",
        modifier: None,
        arg: Arg::Count {
            min: 0,
            max: MAX_LINGER_S,
            unit: "number of seconds",
        },
        effect: Effect::Configures,
        returns: Returns::Done,
    },
    CallSpec {
        kind: CallKind::WriteNoSignal,
        name: "write",
        modifier: Some("nosignal"),
        arg: WRITE_ARG,
        effect: Effect::Sends,
        returns: Returns::Count,
    },
    CallSpec {
        kind: CallKind::Peek,
        name: "read",
        modifier: Some("peek"),
        arg: READ_ARG,
        effect: Effect::Looks,
        returns: Returns::Data,
    },
    CallSpec {
        kind: CallKind::Inq,
        name: "inq",
        modifier: None,
        arg: Arg::None,
        effect: Effect::Looks,
        returns: Returns::Count,
    },
    CallSpec {
        kind: CallKind::WriteOob,
        name: "write",
        modifier: Some("oob"),
        arg: WRITE_ARG,
        effect: Effect::Sends,
        returns: Returns::Count,
    },
    CallSpec {
        kind: CallKind::ReadOob,
        name: "read",
        modifier: Some("oob"),
        arg: READ_ARG,
        effect: Effect::Sends,
        returns: Returns::Data,
    },
    CallSpec {
        kind: CallKind::Outq,
        name: "outq",
        modifier: None,
        arg: Arg::None,
        effect: Effect::Looks,
        returns: Returns::Count,
    },
    CallSpec {
        kind: CallKind::RcvBuf,
        name: "rcvbuf",
        modifier: None,
        arg: BUF_ARG,
        effect: Effect::Configures,
        returns: Returns::Done,
    },
    CallSpec {
        kind: CallKind::SndBuf,
        name: "sndbuf",
        modifier: None,
        arg: BUF_ARG,
        effect: Effect::Configures,
        returns: Returns::Done,
    },
];

/// The most bytes one `write` may send (4 MiB).
pub const MAX_WRITE: u32 = 4 << 20;
/// The most bytes one `read` may ask for (4 MiB).
pub const MAX_READ: u32 = 4 << 20;
/// The largest `rcvbuf N` or `sndbuf N` (16 MiB; Linux caps the value at its
/// `net.core.[rw]mem_max` anyway).
pub const MAX_BUF: u32 = 16 << 20;
/// The longest `linger N`, in seconds: a close that lingers is bounded by it.
pub const MAX_LINGER_S: u32 = 5;

/// What a stack can be asked: its transports, its starts and its calls. A stack that
/// cannot make a call (smoltcp has no `shutdown rd`, lwIP no TCP_INFO) answers it `n/a`,
/// the model predicts `n/a` for it, and the generator never draws it: the generator
/// avoids only what a stack cannot be asked, never what it answers differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Surface {
    /// The transports it runs.
    pub transports: &'static [crate::transport::Transport],
    /// The starts it can set up.
    pub starts: &'static [Start],
    /// The calls it cannot make (a shutdown by direction: `cannot_shut`).
    pub cannot_call: &'static [CallKind],
    /// The shutdown directions it cannot make.
    pub cannot_shut: &'static [Shut],
    /// The network modes it runs (`network held` needs a stack whose segments the test
    /// can hold).
    pub networks: &'static [Network],
    /// Under `network held`, `sleep` runs: the model has the stack's retransmission
    /// timer (Linux's; smoltcp's is not modelled, so its held scripts cannot sleep).
    pub held_sleep: bool,
}

impl Surface {
    /// Every transport, start and call, on the instant network (Linux's surface: a
    /// kernel's segments cannot be held yet).
    pub const ALL: Surface = Surface {
        transports: &crate::transport::Transport::ALL,
        starts: &Start::ALL,
        cannot_call: &[],
        cannot_shut: &[],
        networks: &[Network::Instant],
        held_sleep: false,
    };

    /// Whether `op` can be asked.
    pub fn can_ask(&self, op: Op) -> bool {
        match op {
            Op::Shutdown(how) => {
                !self.cannot_call.contains(&CallKind::Shutdown) && !self.cannot_shut.contains(&how)
            }
            op => !self.cannot_call.contains(&op.kind()),
        }
    }

    /// Whether `transport` runs here.
    pub fn runs(&self, transport: crate::transport::Transport) -> bool {
        self.transports.contains(&transport)
    }

    /// The calls that cannot be asked, as scripts write them (`shutdown rd`, `state`),
    /// for tables and error messages.
    pub fn unasked(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .cannot_call
            .iter()
            .map(|k| CallSpec::of(*k).usage())
            .collect();
        out.extend(
            self.cannot_shut
                .iter()
                .map(|s| format!("shutdown {}", s.name())),
        );
        out
    }
}

impl CallSpec {
    /// The spec of `kind`.
    pub fn of(kind: CallKind) -> &'static CallSpec {
        CALLS
            .iter()
            .find(|c| c.kind == kind)
            .expect("every CallKind has a row in CALLS")
    }

    /// The call with this script word and modifier.
    pub fn named(name: &str, modifier: Option<&str>) -> Option<&'static CallSpec> {
        CALLS
            .iter()
            .find(|c| c.name == name && c.modifier == modifier)
    }

    /// How the call is written, e.g. `write N` or `shutdown rd|wr|rdwr`.
    pub fn usage(&self) -> String {
        let base = match self.arg {
            Arg::None => self.name.to_string(),
            Arg::Count { .. } => format!("{} N", self.name),
            Arg::Shut => format!("{} rd|wr|rdwr", self.name),
        };
        match self.modifier {
            Some(m) => format!("{base} {m}"),
            None => base,
        }
    }

    /// The op this call makes with argument `n` (the count) or `how` (for shutdown).
    pub fn op(&self, n: u32, how: Shut) -> Op {
        match self.kind {
            CallKind::Write => Op::Write(n),
            CallKind::Read => Op::Read(n),
            CallKind::Shutdown => Op::Shutdown(how),
            CallKind::Close => Op::Close,
            CallKind::Abort => Op::Abort,
            CallKind::Poll => Op::Poll,
            CallKind::Error => Op::Error,
            CallKind::State => Op::State,
            CallKind::Connect => Op::Connect,
            CallKind::Accept => Op::Accept,
            CallKind::Linger => Op::Linger(n),
            CallKind::WriteNoSignal => Op::WriteNoSignal(n),
            CallKind::Peek => Op::Peek(n),
            CallKind::Inq => Op::Inq,
            CallKind::WriteOob => Op::WriteOob(n),
            CallKind::ReadOob => Op::ReadOob(n),
            CallKind::Outq => Op::Outq,
            CallKind::RcvBuf => Op::RcvBuf(n),
            CallKind::SndBuf => Op::SndBuf(n),
        }
    }
}

impl Op {
    /// Which call this is.
    pub fn kind(self) -> CallKind {
        match self {
            Op::Write(_) => CallKind::Write,
            Op::Read(_) => CallKind::Read,
            Op::Shutdown(_) => CallKind::Shutdown,
            Op::Close => CallKind::Close,
            Op::Abort => CallKind::Abort,
            Op::Poll => CallKind::Poll,
            Op::Error => CallKind::Error,
            Op::State => CallKind::State,
            Op::Connect => CallKind::Connect,
            Op::Accept => CallKind::Accept,
            Op::Linger(_) => CallKind::Linger,
            Op::WriteNoSignal(_) => CallKind::WriteNoSignal,
            Op::Peek(_) => CallKind::Peek,
            Op::Inq => CallKind::Inq,
            Op::WriteOob(_) => CallKind::WriteOob,
            Op::ReadOob(_) => CallKind::ReadOob,
            Op::Outq => CallKind::Outq,
            Op::RcvBuf(_) => CallKind::RcvBuf,
            Op::SndBuf(_) => CallKind::SndBuf,
        }
    }

    /// This call's row of [`CALLS`].
    pub fn spec(self) -> &'static CallSpec {
        CallSpec::of(self.kind())
    }

    /// Whether this step gives up the descriptor.
    pub fn closes(self) -> bool {
        self.spec().effect == Effect::Closes
    }

    /// Whether this step only looks.
    pub fn looks(self) -> bool {
        self.spec().effect == Effect::Looks
    }

    /// The same call without MSG_OOB: what a stack that ignores the flag makes of it.
    pub fn without_oob(self) -> Op {
        match self {
            Op::WriteOob(n) => Op::Write(n),
            Op::ReadOob(n) => Op::Read(n),
            op => op,
        }
    }

    /// The bytes this call asks to send, if it is a write of any kind.
    pub fn write_len(self) -> Option<u32> {
        match self {
            Op::Write(n) | Op::WriteNoSignal(n) | Op::WriteOob(n) => Some(n),
            _ => None,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.spec().name;
        match self {
            Op::Write(n) | Op::Read(n) | Op::Linger(n) | Op::RcvBuf(n) | Op::SndBuf(n) => {
                write!(f, "{name} {n}")
            }
            Op::WriteNoSignal(n) | Op::Peek(n) | Op::WriteOob(n) | Op::ReadOob(n) => {
                write!(f, "{name} {n} {}", self.spec().modifier.unwrap_or(""))
            }
            Op::Shutdown(how) => write!(f, "{name} {}", how.name()),
            _ => f.write_str(name),
        }
    }
}

/// The longest `sleep` a script may hold in all, in milliseconds (more than TIME_WAIT's
/// 60 s, so that its end can be seen).
pub const MAX_SLEEP_MS: u32 = 70_000;

/// How segments travel between the ends of a case (the `network` header).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Network {
    /// Every segment arrives inside the step that sent it (loopback): today's behaviour.
    #[default]
    Instant,
    /// Every segment waits in flight until a `deliver` or `drop` step moves it; the
    /// handshake of `start connected` is delivered before the first step.
    Held,
}

impl Network {
    /// Both modes.
    pub const ALL: [Network; 2] = [Network::Instant, Network::Held];

    /// The header word (`network held`).
    pub fn name(self) -> &'static str {
        match self {
            Network::Instant => "instant",
            Network::Held => "held",
        }
    }

    /// Looks a header word up.
    pub fn from_name(s: &str) -> Option<Network> {
        Self::ALL.into_iter().find(|n| n.name() == s)
    }

    /// Whether this is [`Network::Instant`] (for serde's skip).
    pub fn is_instant(&self) -> bool {
        *self == Network::Instant
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Network {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Network::from_name(s)
            .ok_or_else(|| format!("unknown network '{s}': expected instant or held"))
    }
}

/// One direction of the wire: the segments `from` sent to `to` (`a>b`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Dir {
    /// The sender.
    pub from: Sock,
    /// The receiver.
    pub to: Sock,
}

impl Dir {
    /// `a>b` and `b>a`: the directions of a `start connected` pair.
    pub const PAIR: [Dir; 2] = [
        Dir {
            from: Sock::A,
            to: Sock::B,
        },
        Dir {
            from: Sock::B,
            to: Sock::A,
        },
    ];

    /// Parses `a>b`.
    pub fn parse(s: &str) -> Option<Dir> {
        let (f, t) = s.split_once('>')?;
        let (from, to) = (Sock::from_name(f)?, Sock::from_name(t)?);
        (from != to).then_some(Dir { from, to })
    }
}

impl fmt::Display for Dir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}>{}", self.from, self.to)
    }
}

/// Which held segments a `deliver` step moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Which {
    /// The K-th oldest (1 is the oldest; 2 and on reorder).
    Nth(u8),
    /// Every segment in flight that way when the step begins, oldest first.
    All,
}

/// The most a `deliver a>b K` may reach past the oldest segment.
pub const MAX_NTH: u8 = 64;

/// A segment as scripts and the model name it (`held a>b => DATA(5) FIN`), by what it
/// carries: its payload and the flags that take sequence space, or RST; the ACK flag
/// that every segment after the handshake carries is not named, so a segment with no
/// payload, SYN, FIN or RST is `ACK` (the ACK of data or of a FIN, a window update, a
/// duplicate ACK). Data with a FIN on the same segment is `DATA(n)+FIN`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SegName {
    /// SYN.
    Syn,
    /// SYN-ACK.
    SynAck,
    /// `DATA(n)`: n payload bytes.
    Data(u32),
    /// `DATA(n)+FIN`: n payload bytes and the FIN.
    DataFin(u32),
    /// FIN with no payload.
    Fin,
    /// RST (with or without ACK).
    Rst,
    /// Nothing but an acknowledgement (and a window).
    Ack,
}

impl SegName {
    /// The name of a TCP segment with header flags `flags` (the 13th byte: FIN 1, SYN
    /// 2, RST 4, ACK 16) and `len` payload bytes, as every executor that captures
    /// segments reports it.
    pub fn of_tcp(flags: u8, len: u32) -> SegName {
        let (fin, syn, rst, ack) = (
            flags & 1 != 0,
            flags & 2 != 0,
            flags & 4 != 0,
            flags & 16 != 0,
        );
        match (syn, rst, fin, len) {
            (true, _, _, _) if ack => SegName::SynAck,
            (true, _, _, _) => SegName::Syn,
            (_, true, _, _) => SegName::Rst,
            (_, _, true, 0) => SegName::Fin,
            (_, _, true, n) => SegName::DataFin(n),
            (_, _, false, 0) => SegName::Ack,
            (_, _, false, n) => SegName::Data(n),
        }
    }

    /// Parses one name (`DATA(5)`, `FIN`, `DATA(5)+FIN`).
    pub fn parse(s: &str) -> Option<SegName> {
        let data = |d: &str| {
            d.strip_prefix("DATA(")?
                .strip_suffix(')')?
                .parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
        };
        Some(match s {
            "SYN" => SegName::Syn,
            "SYN-ACK" => SegName::SynAck,
            "FIN" => SegName::Fin,
            "RST" => SegName::Rst,
            "ACK" => SegName::Ack,
            s => match s.strip_suffix("+FIN") {
                Some(d) => SegName::DataFin(data(d)?),
                None => SegName::Data(data(s)?),
            },
        })
    }

    /// Parses a list, oldest first, separated by spaces; `-` is the empty list.
    pub fn parse_list(s: &str) -> Option<Vec<SegName>> {
        if s.trim() == "-" {
            return Some(vec![]);
        }
        let v: Option<Vec<SegName>> = s.split_whitespace().map(SegName::parse).collect();
        v.filter(|v| !v.is_empty())
    }
}

impl fmt::Display for SegName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SegName::Syn => f.write_str("SYN"),
            SegName::SynAck => f.write_str("SYN-ACK"),
            SegName::Data(n) => write!(f, "DATA({n})"),
            SegName::DataFin(n) => write!(f, "DATA({n})+FIN"),
            SegName::Fin => f.write_str("FIN"),
            SegName::Rst => f.write_str("RST"),
            SegName::Ack => f.write_str("ACK"),
        }
    }
}

/// One segment seen leaving an end under `network held`, as the model and the executor
/// both report it so that every segment is compared: its direction, its name (flags and
/// payload length), and its sequence and acknowledgement numbers relative to each end's
/// first data byte (0; a FIN after n bytes is n). `ack` is `None` on a segment without
/// the ACK flag (smoltcp's `rst_reply` to a segment that had one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WireSeg {
    /// Who sent it, to whom.
    pub dir: Dir,
    /// What it carries.
    pub name: SegName,
    /// Its sequence number, relative.
    pub seq: u64,
    /// Its acknowledgement number, relative, if it has the ACK flag.
    pub ack: Option<u64>,
}

impl fmt::Display for WireSeg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} seq {}", self.dir, self.name, self.seq)?;
        match self.ack {
            Some(a) => write!(f, " ack {a}"),
            None => f.write_str(" no ack"),
        }
    }
}

/// Segments as one line: `a>b FIN seq 5 ack 0, b>a ACK seq 0 ack 6`, or `-`.
pub fn wire_segs(v: &[WireSeg]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    v.iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A list of segments as a script writes it: names oldest first, or `-`.
pub fn seg_list(v: &[SegName]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    v.iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// One line of a scenario: a call on a socket, time passing, or (under `network held`)
/// the network moving or showing segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Step {
    /// `SOCK: OP`.
    Call {
        /// The socket (for `accept`: the name the accepted socket gets).
        sock: Sock,
        /// The call.
        op: Op,
    },
    /// `sleep MS`: real time passes and the kernel's timers run.
    Sleep {
        /// Milliseconds.
        ms: u32,
    },
    /// `deliver a>b`, `deliver a>b K`, `deliver a>b all`: held segments arrive.
    Deliver {
        /// The direction.
        dir: Dir,
        /// Which of its segments.
        which: Which,
    },
    /// `drop a>b`: the oldest segment held that way is lost.
    Drop {
        /// The direction.
        dir: Dir,
    },
    /// `held a>b`: what is in flight that way, oldest first (an observation).
    Held {
        /// The direction.
        dir: Dir,
    },
}

impl Step {
    /// A call step.
    pub fn call(sock: Sock, op: Op) -> Step {
        Step::Call { sock, op }
    }

    /// The call, if this step is one.
    pub fn as_call(self) -> Option<(Sock, Op)> {
        match self {
            Step::Call { sock, op } => Some((sock, op)),
            _ => None,
        }
    }

    /// Whether the step acts on the network rather than on a socket or the clock.
    pub fn is_wire(self) -> bool {
        matches!(
            self,
            Step::Deliver { .. } | Step::Drop { .. } | Step::Held { .. }
        )
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Call { sock, op } => write!(f, "{sock}: {op}"),
            Step::Sleep { ms } => write!(f, "sleep {ms}"),
            Step::Deliver {
                dir,
                which: Which::Nth(1),
            } => write!(f, "deliver {dir}"),
            Step::Deliver {
                dir,
                which: Which::Nth(k),
            } => write!(f, "deliver {dir} {k}"),
            Step::Deliver {
                dir,
                which: Which::All,
            } => write!(f, "deliver {dir} all"),
            Step::Drop { dir } => write!(f, "drop {dir}"),
            Step::Held { dir } => write!(f, "held {dir}"),
        }
    }
}

/// Socket buffer sizes a scenario's header asks for, set on every socket of the world
/// before it connects (`SO_RCVBUF`/`SO_SNDBUF`; the kernel doubles the value).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Bufs {
    /// `rcvbuf N`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rcvbuf: Option<u32>,
    /// `sndbuf N`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sndbuf: Option<u32>,
}

impl Bufs {
    /// Whether neither size is set.
    pub fn is_default(&self) -> bool {
        *self == Bufs::default()
    }
}

/// How a scenario's world begins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Start {
    /// `a` connected to `b` (accepted), the listener already closed.
    #[default]
    Connected,
    /// `l` bound and listening (backlog [`BACKLOG`]); `a` and `c` unconnected clients.
    Listening,
}

/// The listener's backlog under `start listening`.
pub const BACKLOG: i32 = 4;

impl Start {
    /// Both starts.
    pub const ALL: [Start; 2] = [Start::Connected, Start::Listening];

    /// The header word.
    pub fn name(self) -> &'static str {
        match self {
            Start::Connected => "connected",
            Start::Listening => "listening",
        }
    }

    /// Looks a header word up.
    pub fn from_name(s: &str) -> Option<Start> {
        Self::ALL.into_iter().find(|x| x.name() == s)
    }

    /// The sockets that exist before the first step.
    pub fn initial(self) -> &'static [Sock] {
        match self {
            Start::Connected => &[Sock::A, Sock::B],
            Start::Listening => &[Sock::A, Sock::C, Sock::L],
        }
    }
}

impl fmt::Display for Start {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An errno value, named portably through `libc`'s constants.
///
/// In JSON (recordings, docs/behavior.json, the sandbox worker's answers) an errno is
/// its name, `"ECONNRESET"`, never its number: numbers differ between systems
/// (ECONNRESET is 104 on Linux, 54 on macOS and FreeBSD). A name this build does not
/// know (an errno only another OS has, or `errnoN` for a number the recording OS could
/// not name) is kept as a *foreign* errno: it reads and prints as that name and equals
/// no local errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

/// Names of foreign errnos, indexed by `-1 - Errno.0`. Interned so that [`Errno`] stays
/// a `Copy` number; bounded, because the names come from files.
static FOREIGN_ERRNOS: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());

/// The most distinct foreign errno names one process keeps.
const MAX_FOREIGN_ERRNOS: usize = 256;

macro_rules! errno_table {
    ($($name:ident),* $(,)?) => {
        /// Every errno name scripts may use, with this OS's number for it.
        pub const NAMES: &'static [(&'static str, i32)] = &[$((stringify!($name), libc::$name)),*];
        $(
            #[allow(missing_docs)]
            pub const $name: Errno = Errno(libc::$name);
        )*
    };
}

impl Errno {
    errno_table!(
        EPIPE,
        ECONNRESET,
        ENOTCONN,
        EAGAIN,
        EBADF,
        EINVAL,
        ECONNREFUSED,
        ECONNABORTED,
        ETIMEDOUT,
        EOPNOTSUPP,
        EMSGSIZE,
        ENOTSOCK,
        EISCONN,
        EINPROGRESS,
        EALREADY,
        EHOSTUNREACH,
        ENETUNREACH,
        EIO,
        EINTR,
        ENOBUFS,
        ENOMEM,
        EPROTO,
        ENOPROTOOPT,
        EADDRINUSE,
        EACCES,
        EPERM,
        EFAULT,
        EADDRNOTAVAIL,
        EAFNOSUPPORT,
        EPROTONOSUPPORT,
        EPROTOTYPE,
        EDESTADDRREQ,
        ENETDOWN,
        ENETRESET,
        ESHUTDOWN,
        EHOSTDOWN,
        EMFILE,
        ENFILE,
        ENOENT,
        ENOSPC,
        ENOSYS,
        ENODEV,
        ENXIO,
        ESRCH,
        EEXIST,
        EBUSY,
        ERANGE,
        EDEADLK,
        ENOTSUP,
    );

    /// The symbolic name (`EPIPE`); a foreign errno's name as it was read; `errnoN`
    /// for a local number outside the table.
    pub fn name(self) -> String {
        if self.0 < 0 {
            let foreign = FOREIGN_ERRNOS.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(name) = foreign.get((-1 - self.0) as usize) {
                return name.to_string();
            }
        }
        Self::NAMES
            .iter()
            .find(|(_, n)| *n == self.0)
            .map(|(s, _)| s.to_string())
            .unwrap_or_else(|| format!("errno{}", self.0))
    }

    /// An errno read from a file, by name: this OS's errno of that name, or a foreign
    /// errno that keeps the name (see [`Errno`]). `None` for text that is no errno name
    /// (`E` or `errno` followed by letters, digits or `_`, at most 32 characters in
    /// all), or once too many distinct foreign names were read.
    pub fn from_any_name(name: &str) -> Option<Errno> {
        if let Some(e) = Self::from_name(name) {
            return Some(e);
        }
        let well_formed = name.len() <= 32
            && (name.starts_with('E') || name.starts_with("errno"))
            && name.len() > 1
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !well_formed {
            return None;
        }
        let mut foreign = FOREIGN_ERRNOS.lock().unwrap_or_else(|e| e.into_inner());
        let i = match foreign.iter().position(|n| *n == name) {
            Some(i) => i,
            None if foreign.len() < MAX_FOREIGN_ERRNOS => {
                foreign.push(Box::leak(name.to_string().into_boxed_str()));
                foreign.len() - 1
            }
            None => return None,
        };
        Some(Errno(-1 - i as i32))
    }

    /// Whether this errno came from another system by a name this build does not know.
    pub fn is_foreign(self) -> bool {
        self.0 < 0
    }

    /// Looks a symbolic name up (`EWOULDBLOCK` is accepted for `EAGAIN`).
    pub fn from_name(name: &str) -> Option<Errno> {
        if name == "EWOULDBLOCK" {
            return Some(Errno::EAGAIN);
        }
        Self::NAMES
            .iter()
            .find(|(s, _)| *s == name)
            .map(|(_, n)| Errno(*n))
    }

    /// The errno of the last failed libc call on this thread.
    pub fn last() -> Errno {
        Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl Serialize for Errno {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

impl<'de> Deserialize<'de> for Errno {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Errno, D::Error> {
        let name = String::deserialize(d)?;
        Errno::from_any_name(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "'{name}' is not an errno name: expected a name such as \"ECONNRESET\""
            ))
        })
    }
}

/// Serde for the flag sets: as their script text (`"IN|OUT"`, `"FIN_WAIT1|FIN_WAIT2"`),
/// never as bits, which are this program's internal encoding.
macro_rules! serde_as_text {
    ($t:ty, $parse:expr, $what:literal) => {
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_string())
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<$t, D::Error> {
                let text = String::deserialize(d)?;
                $parse(&text).ok_or_else(|| {
                    serde::de::Error::custom(format!("'{text}': expected {}", $what))
                })
            }
        }
    };
}

serde_as_text!(
    PollSet,
    PollSet::parse,
    "poll flags among IN, OUT, ERR, HUP, RDHUP joined by '|', or '-' for none"
);
serde_as_text!(
    StateSet,
    |s: &str| if s == "-" {
        Some(StateSet(0))
    } else {
        StateSet::parse(s)
    },
    "TCP states joined by '|' (\"FIN_WAIT1|FIN_WAIT2\"), or '-' for none"
);

/// TCP states as Linux's `tcpi_state` numbers them (`include/net/tcp_states.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum TcpState {
    Established = 1,
    SynSent = 2,
    SynRecv = 3,
    FinWait1 = 4,
    FinWait2 = 5,
    TimeWait = 6,
    Close = 7,
    CloseWait = 8,
    LastAck = 9,
    Listen = 10,
    Closing = 11,
}

impl TcpState {
    /// Every state, in `tcpi_state` order.
    pub const ALL: [TcpState; 11] = [
        TcpState::Established,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::FinWait1,
        TcpState::FinWait2,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::Listen,
        TcpState::Closing,
    ];

    /// From Linux's `tcpi_state` number.
    pub fn from_linux(n: u8) -> Option<TcpState> {
        Self::ALL.iter().copied().find(|s| *s as u8 == n)
    }

    /// The name used in scripts and output (`FIN_WAIT2`).
    pub fn name(self) -> &'static str {
        match self {
            TcpState::Established => "ESTABLISHED",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::FinWait1 => "FIN_WAIT1",
            TcpState::FinWait2 => "FIN_WAIT2",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::Listen => "LISTEN",
            TcpState::Closing => "CLOSING",
        }
    }

    /// Parses a script name (`CLOSED` is accepted for `CLOSE`).
    pub fn from_name(s: &str) -> Option<TcpState> {
        if s == "CLOSED" {
            return Some(TcpState::Close);
        }
        Self::ALL.iter().copied().find(|st| st.name() == s)
    }
}

/// A set of TCP states. The kernel always reports exactly one; the model predicts a
/// set of more than one only where it knowingly leaves a detail open (and says why).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct StateSet(pub u16);

impl StateSet {
    /// The set holding just `s`.
    pub fn one(s: TcpState) -> StateSet {
        StateSet(1 << s as u16)
    }
    /// This set with `s` added.
    pub fn with(self, s: TcpState) -> StateSet {
        StateSet(self.0 | 1 << s as u16)
    }
    /// Whether `s` is in the set.
    pub fn contains(self, s: TcpState) -> bool {
        self.0 & (1 << s as u16) != 0
    }
    /// Whether every state of `other` is in `self`.
    pub fn covers(self, other: StateSet) -> bool {
        self.0 & other.0 == other.0
    }
    /// The states in the set, in `tcpi_state` order.
    pub fn states(self) -> impl Iterator<Item = TcpState> {
        TcpState::ALL.into_iter().filter(move |s| self.contains(*s))
    }
    /// The single state, if the set holds exactly one.
    pub fn single(self) -> Option<TcpState> {
        let mut it = self.states();
        match (it.next(), it.next()) {
            (Some(s), None) => Some(s),
            _ => None,
        }
    }
    /// Parses `FIN_WAIT1` or `FIN_WAIT1|FIN_WAIT2`.
    pub fn parse(s: &str) -> Option<StateSet> {
        let mut set = StateSet(0);
        for part in s.split('|') {
            set = set.with(TcpState::from_name(part)?);
        }
        Some(set)
    }
}

impl fmt::Display for StateSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.states().map(|s| s.name()).collect();
        if names.is_empty() {
            return f.write_str("-");
        }
        f.write_str(&names.join("|"))
    }
}

impl From<TcpState> for StateSet {
    fn from(s: TcpState) -> StateSet {
        StateSet::one(s)
    }
}

impl fmt::Display for TcpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of poll events among IN, OUT, ERR, HUP and RDHUP. The kernel's are always
/// definite; a model prediction may also mark flags as open (`OUT?`: set or not, the
/// model cannot say), in the high byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct PollSet(pub u16);

impl PollSet {
    /// Readable (`POLLIN`).
    pub const IN: PollSet = PollSet(1);
    /// Writable (`POLLOUT`).
    pub const OUT: PollSet = PollSet(2);
    /// Pending socket error (`POLLERR`).
    pub const ERR: PollSet = PollSet(4);
    /// Hung up (`POLLHUP`).
    pub const HUP: PollSet = PollSet(8);
    /// Peer closed its sending side, or we shut down reading (`POLLRDHUP`).
    pub const RDHUP: PollSet = PollSet(16);
    const NAMED: [(PollSet, &'static str); 5] = [
        (PollSet::IN, "IN"),
        (PollSet::OUT, "OUT"),
        (PollSet::ERR, "ERR"),
        (PollSet::HUP, "HUP"),
        (PollSet::RDHUP, "RDHUP"),
    ];

    /// The empty set.
    pub const NONE: PollSet = PollSet(0);

    /// Whether every flag of `other` is in `self`.
    pub fn contains(self, other: PollSet) -> bool {
        self.0 & other.0 == other.0
    }

    /// The flags that are certainly set.
    pub fn sure(self) -> PollSet {
        PollSet(self.0 & 0xff)
    }

    /// The flags the prediction leaves open.
    pub fn maybe(self) -> PollSet {
        PollSet(self.0 >> 8)
    }

    /// `self` with `other`'s flags marked open (set or not).
    pub fn with_maybe(self, other: PollSet) -> PollSet {
        PollSet((self.0 & !other.0) | (other.0 << 8))
    }

    /// Whether a predicted set admits a kernel's definite one: equal outside the open
    /// flags.
    pub fn admits(self, got: PollSet) -> bool {
        let open = self.maybe().0;
        (self.sure().0 & !open) == (got.0 & !open)
    }

    /// `self` with `other`'s flags added when `cond` holds.
    pub fn with_if(self, other: PollSet, cond: bool) -> PollSet {
        if cond {
            PollSet(self.0 | other.0)
        } else {
            self
        }
    }

    /// Parses `IN|OUT` (any order) or `-` for none.
    pub fn parse(s: &str) -> Option<PollSet> {
        if s == "-" {
            return Some(PollSet::NONE);
        }
        let mut set = PollSet::NONE;
        for part in s.split('|') {
            let (name, open) = match part.strip_suffix('?') {
                Some(n) => (n, true),
                None => (part, false),
            };
            let (flag, _) = Self::NAMED.iter().find(|(_, n)| *n == name)?;
            set.0 |= if open { flag.0 << 8 } else { flag.0 };
        }
        Some(set)
    }
}

impl fmt::Display for PollSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = Self::NAMED
            .iter()
            .filter_map(|(flag, n)| {
                if self.maybe().contains(*flag) {
                    Some(format!("{n}?"))
                } else if self.contains(*flag) {
                    Some(n.to_string())
                } else {
                    None
                }
            })
            .collect();
        if names.is_empty() {
            f.write_str("-")
        } else {
            f.write_str(&names.join("|"))
        }
    }
}

/// How read data is written in JSON: the bytes as text (`"ABC"`), and a run of one of
/// the writers' alphabets longer than [`data_text::RUN_MIN`] as its first byte and
/// length (`"K~4096"`: `K`, `L`, ... `Z`, `A`, ... 4,096 bytes), so that a 4 MiB read
/// takes a few bytes. Bytes that are not printable ASCII are a list of numbers, the
/// form recordings of schema 2 use, which is still read.
pub mod data_text {
    use serde::de::{self, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};
    use std::fmt;

    /// Runs at least this long are written as `first~length`.
    pub const RUN_MIN: usize = 32;

    fn next(b: u8) -> Option<u8> {
        Some(match b {
            b'Z' => b'A',
            b'z' => b'a',
            b'9' => b'0',
            b'A'..=b'Y' | b'a'..=b'y' | b'0'..=b'8' => b + 1,
            _ => return None,
        })
    }

    /// The run of `len` bytes that starts with `first`.
    pub fn run(first: u8, len: usize) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(len);
        let mut b = first;
        for i in 0..len {
            if i > 0 {
                b = next(b)?;
            }
            out.push(b);
        }
        Some(out)
    }

    /// Writes `d` as described in the module docs.
    pub fn serialize<S: Serializer>(d: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let is_run = d.len() >= RUN_MIN && d.windows(2).all(|w| next(w[0]) == Some(w[1]));
        if is_run {
            return s.serialize_str(&format!("{}~{}", d[0] as char, d.len()));
        }
        if d.iter().all(|b| b.is_ascii_graphic() && *b != b'~') {
            return s.serialize_str(std::str::from_utf8(d).unwrap_or_default());
        }
        s.collect_seq(d)
    }

    struct DataVisitor;

    impl<'de> Visitor<'de> for DataVisitor {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("read data: text, \"X~N\" for a run, or a list of byte values")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
            if let Some((first, len)) = v.split_once('~') {
                let len: usize = len
                    .parse()
                    .ok()
                    .filter(|n| *n <= crate::step::MAX_READ as usize)
                    .ok_or_else(|| {
                        E::custom(format!("'{v}': a run's length is a count up to 4 MiB"))
                    })?;
                let first = match first.as_bytes() {
                    [b] => *b,
                    _ => return Err(E::custom(format!("'{v}': a run starts with one byte"))),
                };
                return run(first, len)
                    .ok_or_else(|| E::custom(format!("'{v}': a run is of A-Z, a-z or 0-9")));
            }
            Ok(v.as_bytes().to_vec())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::new();
            while let Some(b) = seq.next_element::<u8>()? {
                if out.len() >= crate::step::MAX_READ as usize {
                    return Err(de::Error::custom("more read data than any read returns"));
                }
                out.push(b);
            }
            Ok(out)
        }
    }

    /// Reads what [`serialize`] writes, and schema 2's lists of numbers.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_any(DataVisitor)
    }

    #[cfg(test)]
    mod tests {
        use crate::step::Outcome;

        #[test]
        fn data_is_text_and_long_runs_are_short() {
            let long = crate::step::pattern(crate::step::Sock::A, 10, 4096);
            let j = serde_json::to_string(&Outcome::Data(long.clone())).unwrap();
            assert_eq!(j, r#"{"Data":"K~4096"}"#);
            assert_eq!(
                serde_json::from_str::<Outcome>(&j).unwrap(),
                Outcome::Data(long)
            );
            let short = Outcome::Data(b"abd".to_vec());
            let j = serde_json::to_string(&short).unwrap();
            assert_eq!(j, r#"{"Data":"abd"}"#);
            assert_eq!(serde_json::from_str::<Outcome>(&j).unwrap(), short);
            // A run broken by a skipped urgent byte stays text.
            let broken: Vec<u8> = (b'A'..=b'Z').chain(b'B'..=b'Z').collect();
            let j = serde_json::to_string(&Outcome::Data(broken.clone())).unwrap();
            assert!(!j.contains('~'), "{j}");
            assert_eq!(
                serde_json::from_str::<Outcome>(&j).unwrap(),
                Outcome::Data(broken)
            );
            // Schema 2's numbers, and bytes that are not text.
            let old: Outcome = serde_json::from_str(r#"{"Data":[65,66,67]}"#).unwrap();
            assert_eq!(old, Outcome::Data(b"ABC".to_vec()));
            let odd = Outcome::Data(vec![0, 126, 200]);
            let j = serde_json::to_string(&odd).unwrap();
            assert_eq!(serde_json::from_str::<Outcome>(&j).unwrap(), odd);
            assert!(serde_json::from_str::<Outcome>(r#"{"Data":"A~99999999"}"#).is_err());
            assert!(serde_json::from_str::<Outcome>(r#"{"Data":"?~5"}"#).is_err());
        }
    }
}

/// What a step returned. The same type for model predictions and kernel observations.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Outcome {
    /// Success with nothing to report (close, abort, shutdown).
    Ok,
    /// A write accepted this many bytes.
    Wrote(usize),
    /// SIOCINQ: this many bytes wait to be read.
    Queued(usize),
    /// A read returned these bytes (empty only for a zero-length read; an empty
    /// read of N > 0 bytes is `Eof`). In JSON as text (see [`data_text`]).
    Data(#[serde(with = "data_text")] Vec<u8>),
    /// A read returned 0.
    Eof,
    /// The call failed with this errno.
    Err(Errno),
    /// Model only: a write accepts from `lo` to `hi` bytes, where the kernel's memory
    /// accounting (skb truesize, window rounding) decides the exact count; `lo` = 0
    /// means it may also accept none (EAGAIN).
    WroteBetween {
        /// The fewest bytes (0: EAGAIN is possible).
        lo: usize,
        /// The most bytes.
        hi: usize,
    },
    /// Model only: an ioctl count from `lo` to `hi`.
    QueuedBetween {
        /// The smallest count.
        lo: usize,
        /// The largest count.
        hi: usize,
    },
    /// Model only: either of two outcomes, where the model cannot tell which the
    /// kernel's accounting gives (say, more queued data or the error behind it).
    Either(Box<Outcome>, Box<Outcome>),
    /// Model only, inside [`Outcome::Either`]: this outcome with SIGPIPE raised, where
    /// the alternatives differ in it.
    WithSigpipe(Box<Outcome>),
    /// Model only: a read returns a prefix of `bytes` at least `lo` (≥ 1) bytes long,
    /// where how much has arrived depends on window updates the model does not track.
    DataPrefix {
        /// The longest possible return.
        bytes: Vec<u8>,
        /// The shortest.
        lo: usize,
    },
    /// poll's revents.
    Poll(PollSet),
    /// SO_ERROR's value (`None` for 0).
    SockError(Option<Errno>),
    /// TCP_INFO's state, or after close sock_diag's (a single state from the kernel;
    /// possibly several from the model).
    State(StateSet),
    /// The observation does not exist for this transport or OS (e.g. `state` on a Unix socket).
    NotApplicable,
    /// The end's descriptor was already closed, so no call was made: descriptor numbers
    /// are reused (also by other threads), and a call on a stale one could touch an
    /// unrelated socket.
    Closed,
    /// `state` on a closed TCP socket: the kernel holds nothing for its connection any
    /// more (no orphan, no TIME_WAIT mini-socket; sock_diag finds none).
    Gone,
    /// `held a>b`: the segments in flight that way, oldest first.
    Segments(Vec<SegName>),
}

impl Outcome {
    /// Whether a model prediction `self` admits the kernel's `got`: equal, or a state
    /// set that contains the reported state.
    pub fn admits(&self, got: &Outcome) -> bool {
        match (self, got) {
            (Outcome::State(want), Outcome::State(have)) => want.covers(*have),
            (Outcome::Poll(want), Outcome::Poll(have)) => want.admits(*have),
            (Outcome::WroteBetween { lo, hi }, Outcome::Wrote(n)) => lo <= n && n <= hi,
            (Outcome::WroteBetween { lo: 0, .. }, Outcome::Err(e)) => *e == Errno::EAGAIN,
            (Outcome::QueuedBetween { lo, hi }, Outcome::Queued(n)) => lo <= n && n <= hi,
            (Outcome::DataPrefix { bytes, lo }, Outcome::Data(d)) => {
                d.len() >= *lo && bytes.starts_with(d)
            }
            (Outcome::Either(a, b), got) => a.admits(got) || b.admits(got),
            (Outcome::WithSigpipe(a), got) => a.admits(got),
            _ => self == got,
        }
    }

    /// Whether this prediction leaves a count or a flag open (a range, a prefix, a
    /// poll flag that may or may not be set, or more than one TCP state).
    pub fn is_range(&self) -> bool {
        match self {
            Outcome::WroteBetween { .. }
            | Outcome::QueuedBetween { .. }
            | Outcome::DataPrefix { .. }
            | Outcome::Either(..)
            | Outcome::WithSigpipe(_) => true,
            Outcome::Poll(p) => p.maybe() != PollSet::NONE,
            _ => false,
        }
    }
}

impl EndView {
    /// Whether a predicted view admits an observed one (see [`Outcome::admits`]).
    pub fn admits(&self, got: &EndView) -> bool {
        match (self, got) {
            (
                EndView::Open {
                    state: Some(w),
                    poll: wp,
                },
                EndView::Open {
                    state: Some(h),
                    poll: hp,
                },
            ) => w.covers(*h) && wp.admits(*hp),
            (
                EndView::Open {
                    state: None,
                    poll: wp,
                },
                EndView::Open {
                    state: None,
                    poll: hp,
                },
            ) => wp.admits(*hp),
            _ => self == got,
        }
    }
}

impl StepResult {
    /// Whether a predicted result admits an observed one: one of its alternatives
    /// admits the outcome, with the same SIGPIPE.
    pub fn admits(&self, got: &StepResult) -> bool {
        let mut alts = vec![];
        self.outcome.alternatives(self.sigpipe, &mut alts);
        alts.iter()
            .any(|(o, sigpipe)| *sigpipe == got.sigpipe && o.admits(&got.outcome))
    }
}

impl Outcome {
    /// The alternatives of an [`Outcome::Either`], each with whether it raises SIGPIPE
    /// (`sigpipe` unless marked [`Outcome::WithSigpipe`]).
    fn alternatives<'a>(&'a self, sigpipe: bool, out: &mut Vec<(&'a Outcome, bool)>) {
        match self {
            Outcome::Either(a, b) => {
                a.alternatives(sigpipe, out);
                b.alternatives(sigpipe, out);
            }
            Outcome::WithSigpipe(a) => a.alternatives(true, out),
            o => out.push((o, sigpipe)),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Ok => f.write_str("ok"),
            Outcome::Wrote(n) | Outcome::Queued(n) => write!(f, "ok {n}"),
            Outcome::Data(d) => write!(f, "data {}", d.len()),
            Outcome::Eof => f.write_str("eof"),
            Outcome::Err(e) => write!(f, "{e}"),
            Outcome::WroteBetween { lo: 0, hi } => write!(f, "EAGAIN or ok 1..{hi}"),
            Outcome::WroteBetween { lo, hi } | Outcome::QueuedBetween { lo, hi } => {
                write!(f, "ok {lo}..{hi}")
            }
            Outcome::DataPrefix { bytes, lo } => write!(f, "data {lo}..{}", bytes.len()),
            Outcome::Either(a, b) => write!(f, "{a} or {b}"),
            Outcome::WithSigpipe(a) => write!(f, "{a} sigpipe"),
            Outcome::Poll(p) => write!(f, "poll {p}"),
            Outcome::SockError(None) => f.write_str("error 0"),
            Outcome::SockError(Some(e)) => write!(f, "error {e}"),
            Outcome::State(s) => write!(f, "{s}"),
            Outcome::NotApplicable => f.write_str("n/a"),
            Outcome::Closed => f.write_str("closed"),
            Outcome::Gone => f.write_str("gone"),
            Outcome::Segments(v) => f.write_str(&seg_list(v)),
        }
    }
}

/// A step's full result: its return and whether it raised SIGPIPE.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StepResult {
    /// What the call returned.
    pub outcome: Outcome,
    /// Whether the call raised SIGPIPE.
    pub sigpipe: bool,
}

impl StepResult {
    /// A result that raised no SIGPIPE.
    pub fn plain(outcome: Outcome) -> StepResult {
        StepResult {
            outcome,
            sigpipe: false,
        }
    }
}

impl fmt::Display for StepResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.outcome)?;
        if self.sigpipe {
            f.write_str(" sigpipe")?;
        }
        Ok(())
    }
}

/// What can be seen of one socket without changing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EndView {
    /// The socket does not exist (yet): nothing to observe.
    Absent,
    /// The descriptor is closed: nothing to observe.
    Closed,
    /// The descriptor is open.
    Open {
        /// TCP state, or `None` where the transport has none.
        state: Option<StateSet>,
        /// poll revents for `POLLIN|POLLOUT|POLLRDHUP`.
        poll: PollSet,
    },
}

impl fmt::Display for EndView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndView::Absent => f.write_str("-"),
            EndView::Closed => f.write_str("closed"),
            EndView::Open { state, poll } => {
                if let Some(s) = state {
                    write!(f, "{s} ")?;
                }
                write!(f, "poll {poll}")
            }
        }
    }
}

/// Every socket's view after a step, indexed by [`Sock::index`].
pub type Observation = [EndView; 5];

/// The byte socket `sock` sends at stream offset `offset`. Each socket has its own
/// pattern so a reader can tell whose bytes it got, and where in the stream they sit:
/// clients write capitals, accepted sockets small letters, `c` and `d` starting half
/// way through the alphabet.
pub fn pattern_byte(sock: Sock, offset: u64) -> u8 {
    // Keep pattern()'s period in step with the spans here.
    let (base, shift) = match sock {
        Sock::A => (b'A', 0),
        Sock::B => (b'a', 0),
        Sock::C => (b'A', 13),
        Sock::D => (b'a', 13),
        Sock::L => (b'0', 0),
    };
    let span = if sock == Sock::L { 10 } else { 26 };
    base + ((offset + shift) % span) as u8
}

/// `len` pattern bytes of `sock`'s stream starting at `offset`.
pub fn pattern(sock: Sock, offset: u64, len: usize) -> Vec<u8> {
    // One period of the pattern, then copies of it: large writes make megabytes.
    let span = if sock == Sock::L { 10 } else { 26 };
    let period: Vec<u8> = (0..span).map(|i| pattern_byte(sock, offset + i)).collect();
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let take = (len - out.len()).min(period.len());
        out.extend_from_slice(&period[..take]);
    }
    out
}

#[cfg(test)]
mod pattern_tests {
    use super::*;

    /// The copied periods are the bytes pattern_byte gives, at any offset and length.
    #[test]
    fn pattern_is_pattern_byte_at_every_offset() {
        for sock in Sock::ALL {
            for offset in [0u64, 1, 9, 25, 26, 27, 1 << 40] {
                for len in [0usize, 1, 10, 26, 27, 100, 5000] {
                    let slow: Vec<u8> = (0..len as u64)
                        .map(|i| pattern_byte(sock, offset + i))
                        .collect();
                    assert_eq!(pattern(sock, offset, len), slow, "{sock:?} {offset} {len}");
                }
            }
        }
    }
}
