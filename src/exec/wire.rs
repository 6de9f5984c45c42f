//! `network held` on the host's Linux kernel: every TCP segment between `a` and `b`
//! waits in closefuzz's hands until a step delivers or drops it.
//!
//! **How.** Each executing thread makes one [`WirePair`], once, and reuses it for every
//! held case it runs (making one costs a few milliseconds; releasing a TUN device costs
//! ~34 ms): two private network namespaces, A for `a`'s end and B for `b`'s, each with a
//! TUN device ([`TUN_NAME`], `IFF_TUN | IFF_NO_PI`, MTU [`TUN_MTU`] so that every write
//! up to 64 KiB leaves as one segment, no offloads so every checksum is complete) and
//! nothing else but its loopback. A holds [`ADDR_V4`]`[0]` and [`ADDR_V6`]`[0]`, B the
//! others; each routes the other end's address, and only it, to its TUN. Nothing joins
//! the two TUNs but this module: what A's stack sends to B is read from A's TUN and
//! kept (`a>b`) until a `deliver a>b` writes it to B's TUN, where B's stack receives it
//! inside that write (tun_get_user hands the packet to netif_receive_skb with bottom
//! halves off) and answers inside it too; so after each step both TUNs are read until
//! they are empty and everything that left is known. Only TCP segments of the case's
//! connection are kept; anything else read from a TUN (ICMPv6, a reset sent by the
//! cleanup of the case before) is discarded.
//!
//! **A case** (`start connected`, TCP only): `b`'s listener is made in B on a fresh
//! port, `a` in A; `a` connects without blocking, and the executor moves the
//! handshake (SYN, SYN-ACK, ACK) before the first step, then accepts `b` and closes the
//! listener, as under `network instant`. A second `connect` of `a` then returns 0 and
//! marks it connected (`SS_CONNECTED`, __inet_stream_connect), as the blocking connect
//! of `network instant` leaves it. Every segment seen leaving during a step is reported
//! ([`crate::exec::KernelRun::wire`]) with its sequence and acknowledgement numbers
//! relative to each end's ISN + 1, as the smoltcp executor reports them. `state` on a
//! closed descriptor asks sock_diag in that end's namespace. At the end of the case
//! every socket left for its connection (an orphan, a TIME_WAIT mini-socket) is
//! destroyed in both namespaces (SOCK_DESTROY), so neither ports nor the TIME_WAIT table
//! fill over a long campaign, and both TUNs are emptied.
//!
//! **Determinism.** A held case is deterministic while no kernel timer fires: with the
//! settings below (see [`SYSCTLS`] and the route metrics) the only timers left are the
//! retransmission timer (at least [`RTO_MIN_MS`]) and the SYN retransmission (1 s).
//! A case's [`crate::exec::KernelRun::elapsed`] counts from before the handshake, so the
//! runner's existing check (`run::TIMER_FREE_BUDGET`, 25 ms: a disagreeing case that
//! took longer is run again, and said too slow if it always does) is the watchdog: no
//! disagreement is reported from a run in which one of those timers could have fired.
//!
//! **Lifetime.** The namespaces exist only as long as descriptors of this process
//! refer to them (the pair's namespace descriptors, its TUNs and sockets; no
//! namespace is ever bound to a path), and the TUN devices are not persistent: when
//! the process ends, however it ends (exit, SIGINT, a crash, SIGKILL), the kernel
//! closes them, and the namespaces, the devices and every socket in them go with them.
//! A thread's pair goes when the thread ends (a thread-local).
//!
//! **Who may.** Opening `/dev/net/tun` needs root (mode 0600 here; inside a user
//! namespace an ordinary user is not its owner), and making network namespaces needs
//! CAP_SYS_ADMIN: where either is refused the case fails with a one-line
//! [`io::Error`] saying why held mode is unavailable. As root it works in the closefuzz
//! binary and in a multithreaded test binary alike: each thread unshares its own
//! namespaces and moves between them with setns, which only moves that thread.

use super::sys::{self, Tuple};
use super::{apply_bufs, cvt, tcp_options};
use crate::step::{Bufs, Dir, Errno, Outcome, SegName, Sock, Step, TcpState, Which, WireSeg};
use crate::transport::Transport;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// `a`'s and `b`'s IPv4 addresses (in A and in B).
pub const ADDR_V4: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 213, 0, 1), Ipv4Addr::new(10, 213, 0, 2)];
/// `a`'s and `b`'s IPv6 addresses.
pub const ADDR_V6: [Ipv6Addr; 2] = [
    Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1),
    Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2),
];
/// The TUN device's name in each namespace.
pub const TUN_NAME: &str = "cfw0";
/// The TUN's MTU: the largest there is, so that a write of up to 64 KiB is one segment.
pub const TUN_MTU: i32 = 65535;
/// The shortest retransmission timeout (route metric `rto_min`, locked as `ip route
/// ... rto_min` locks it, and `tcp_rto_min_us` where the kernel has it).
pub const RTO_MIN_MS: u32 = 1000;
/// The most segments held one way: far more than any case sends (the congestion
/// window holds a sender to 10 segments until something is acknowledged).
pub const MAX_HELD: usize = 4096;
/// How long the handshake may wait for a segment to appear on a TUN. It appears inside
/// the call that sent it (the TUN has no queueing discipline), so this only bounds a
/// kernel that behaves otherwise.
const HANDSHAKE_WAIT_MS: i32 = 200;
/// How long rtnetlink and sock_diag may take to answer (they answer inside the send).
const NETLINK_TIMEOUT_MS: i32 = 1000;

/// The sysctls set in each namespace (paths under /proc/sys/net/), and why each is
/// needed for a held case to go the same way every time. The last field says whether
/// a kernel without the knob is refused (false: skipped where absent).
pub const SYSCTLS: &[(&str, &str, bool)] = &[
    // The host default (bbr here) paces segments by a timer; cubic grows the window by
    // elapsed time. Reno's window depends only on the ACKs delivered. (A child
    // namespace may only pick an allowed algorithm: reno is always allowed.)
    ("ipv4/tcp_congestion_control", "reno", true),
    // Timestamps carry a millisecond clock, and PAWS drops a segment whose timestamp is
    // older than the last one seen: a reordered pair would be dropped or not depending
    // on whether the clock ticked between them. Also keeps the header at 20 bytes.
    ("ipv4/tcp_timestamps", "0", true),
    // No SACK and no D-SACK: loss recovery by duplicate ACKs only (Reno), no RACK
    // reordering timers, no SACK blocks that depend on what was delivered when.
    ("ipv4/tcp_sack", "0", true),
    ("ipv4/tcp_dsack", "0", true),
    // RACK loss detection (on by default) arms a reordering timer from the measured RTT.
    ("ipv4/tcp_recovery", "0", true),
    // No tail loss probe: TLP sends a probe after ~2 RTT (a few ms on this wire),
    // long before the retransmission timeout.
    ("ipv4/tcp_early_retrans", "0", true),
    // Autocorking holds a small write back while an earlier one is still queued in the
    // device, which depends on how fast the TUN is read.
    ("ipv4/tcp_autocorking", "0", true),
    // No cwnd, ssthresh or RTT carried from one case to the next through the metrics
    // cache (both cases use the same addresses).
    ("ipv4/tcp_no_metrics_save", "1", true),
    // The window is not reset after an idle period (measured against the RTO: a
    // pause between steps would shrink it).
    ("ipv4/tcp_slow_start_after_idle", "0", true),
    // No ECN negotiation (the SYN's flags would differ from what the model names).
    ("ipv4/tcp_ecn", "0", true),
    // The minimum RTO for connections whose route has no rto_min (belt and braces:
    // the route has one). Newer kernels only.
    ("ipv4/tcp_rto_min_us", "1000000", false),
    // IPv6 on the TUN: no link-local address (so no router solicitations or MLD
    // reports from timers) and no duplicate address detection (a tentative address
    // cannot be bound for a second or two). The addresses are added with IFA_F_NODAD
    // too.
    ("ipv6/conf/default/addr_gen_mode", "1", false),
    ("ipv6/conf/default/accept_dad", "0", false),
    ("ipv6/conf/default/router_solicitations", "0", false),
];

/// One thread's two namespaces and their devices (see the module docs).
pub struct WirePair {
    /// A's and B's network namespaces.
    ns: [OwnedFd; 2],
    /// A's and B's TUN devices, non-blocking.
    tun: [OwnedFd; 2],
    /// A NETLINK_SOCK_DIAG socket in each namespace.
    diag: [OwnedFd; 2],
    /// Where frames are read into.
    buf: Vec<u8>,
    /// Sequence numbers for sock_diag requests.
    seq: u32,
}

thread_local! {
    /// This thread's pair: made on the first held case, lent to each case in turn.
    static PAIR: RefCell<Slot> = const { RefCell::new(Slot::Untried) };
}

enum Slot {
    Untried,
    Ready(Box<WirePair>),
    Lent,
    Failed(String),
}

/// The error every held case of a thread gets once its pair could not be made.
fn unavailable(why: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("network held is unavailable here: {why}"),
    )
}

/// Borrows this thread's pair, making it on first use.
fn take_pair() -> io::Result<Box<WirePair>> {
    PAIR.with(|slot| {
        let mut slot = slot.borrow_mut();
        match std::mem::replace(&mut *slot, Slot::Lent) {
            Slot::Ready(p) => Ok(p),
            Slot::Untried => match WirePair::new() {
                Ok(p) => Ok(Box::new(p)),
                Err(e) => {
                    let why = e.to_string();
                    *slot = Slot::Failed(why.clone());
                    Err(io::Error::new(e.kind(), why))
                }
            },
            Slot::Failed(why) => {
                *slot = Slot::Failed(why.clone());
                Err(io::Error::new(io::ErrorKind::Unsupported, why))
            }
            Slot::Lent => Err(io::Error::other(
                "network held: this thread already runs a held case (one at a time per thread)",
            )),
        }
    })
}

fn give_back(p: Box<WirePair>) {
    PAIR.with(|slot| *slot.borrow_mut() = Slot::Ready(p));
}

/// This thread's network namespace, as a descriptor.
fn current_ns() -> io::Result<OwnedFd> {
    let f = std::fs::File::open("/proc/thread-self/ns/net")?;
    Ok(OwnedFd::from(f))
}

fn setns(fd: RawFd) -> io::Result<()> {
    // SAFETY: setns moves only the calling thread; fd is a namespace descriptor.
    cvt(unsafe { libc::setns(fd, libc::CLONE_NEWNET) })?;
    Ok(())
}

/// A socket made now, in the thread's current namespace.
fn raw_socket(domain: libc::c_int, ty: libc::c_int, proto: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; the result is checked before it is owned.
    let fd = cvt(unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) })?;
    // SAFETY: fd was just created and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl WirePair {
    /// Makes both namespaces and their devices; the thread ends where it began.
    pub fn new() -> io::Result<WirePair> {
        let home = current_ns()
            .map_err(|e| unavailable(format!("cannot read /proc/thread-self/ns/net ({e})")))?;
        let mut made = Vec::with_capacity(2);
        for side in 0..2 {
            // SAFETY: unshare moves only the calling thread to a new namespace.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                let e = io::Error::last_os_error();
                return Err(unavailable(format!(
                    "cannot make a network namespace ({e}): held mode needs root"
                )));
            }
            let r = current_ns().and_then(|ns| setup_namespace(side).map(|(t, d)| (ns, t, d)));
            // Back home before anything else, also after a failure.
            setns(home.as_raw_fd())?;
            made.push(r?);
        }
        let (b, a) = (made.pop().expect("two"), made.pop().expect("two"));
        let mut p = WirePair {
            ns: [a.0, b.0],
            tun: [a.1, b.1],
            diag: [a.2, b.2],
            buf: vec![0; 65536 + 64],
            seq: 1,
        };
        for ip in [IpAddr::V4(ADDR_V4[1]), IpAddr::V6(ADDR_V6[1])] {
            for from in 0..2 {
                p.wait_ready(&home, from, ip)?;
            }
        }
        p.discard()?;
        Ok(p)
    }

    /// Waits, bounded, until a datagram from `from` to the other end (`ip`'s family)
    /// crosses the wire: read from `from`'s TUN, written to the other's, received.
    /// IPv6 sets itself up asynchronously (addrconf's work items: the address stops
    /// being tentative, then its local route is inserted) even without DAD; once
    /// seen, a first tcp6 handshake was still lost now and then in the tests right
    /// after a build (a loaded machine): every path a case uses is proven first.
    fn wait_ready(&mut self, home: &OwnedFd, from: usize, ip: IpAddr) -> io::Result<()> {
        let to = 1 - from;
        let (family, dst, src) = match ip {
            IpAddr::V4(_) => (
                libc::AF_INET,
                IpAddr::V4(ADDR_V4[to]),
                IpAddr::V4(ADDR_V4[from]),
            ),
            IpAddr::V6(_) => (
                libc::AF_INET6,
                IpAddr::V6(ADDR_V6[to]),
                IpAddr::V6(ADDR_V6[from]),
            ),
        };
        let deadline = Instant::now() + Duration::from_millis(TENTATIVE_MS);
        let mut last = String::from("nothing tried");
        while Instant::now() < deadline {
            let made = (|| {
                setns(self.ns[to].as_raw_fd())?;
                let rx = raw_socket(family, libc::SOCK_DGRAM | libc::SOCK_NONBLOCK, 0)?;
                setns(self.ns[from].as_raw_fd())?;
                let tx = raw_socket(family, libc::SOCK_DGRAM | libc::SOCK_NONBLOCK, 0)?;
                Ok::<_, io::Error>((rx, tx))
            })();
            setns(home.as_raw_fd())?;
            let (rx, tx) = made?;
            match self.probe(&rx, &tx, src, dst, from) {
                Ok(true) => return Ok(()),
                Ok(false) => last = "the datagram did not arrive".into(),
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Err(io::Error::other(format!(
            "network held: the wire from {src} to {dst} did not work within {TENTATIVE_MS} ms ({last})"
        )))
    }

    fn probe(
        &mut self,
        rx: &OwnedFd,
        tx: &OwnedFd,
        src: IpAddr,
        dst: IpAddr,
        from: usize,
    ) -> io::Result<bool> {
        let rx_ref = socket2::SockRef::from(rx);
        rx_ref.bind(&SocketAddr::new(dst, 0).into())?;
        let port = rx_ref.local_addr()?.as_socket().map_or(0, |a| a.port());
        let tx_ref = socket2::SockRef::from(tx);
        tx_ref.bind(&SocketAddr::new(src, 0).into())?;
        tx_ref.send_to(b"closefuzz", &SocketAddr::new(dst, port).into())?;
        let mut pfd = libc::pollfd {
            fd: self.tun[from].as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, 20) };
        let mut crossed = false;
        while let Some(n) = self.read(from)? {
            let frame = self.buf[..n].to_vec();
            self.write(1 - from, &frame)?;
            crossed = true;
        }
        if !crossed {
            return Ok(false);
        }
        let mut got = [0u8; 16];
        // SAFETY: got is valid for its length.
        let n = unsafe {
            libc::recv(
                rx.as_raw_fd(),
                got.as_mut_ptr().cast(),
                got.len(),
                libc::MSG_DONTWAIT,
            )
        };
        Ok(n == 9)
    }

    /// Reads one frame from `side`'s TUN into the buffer; `None` when it is empty.
    fn read(&mut self, side: usize) -> io::Result<Option<usize>> {
        // SAFETY: buf is valid for its length.
        let n = unsafe {
            libc::read(
                self.tun[side].as_raw_fd(),
                self.buf.as_mut_ptr().cast(),
                self.buf.len(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN) => Ok(None),
                _ => Err(e),
            };
        }
        Ok(Some(n as usize))
    }

    /// Hands `frame` to `side`'s stack (which processes it inside this call).
    fn write(&self, side: usize, frame: &[u8]) -> io::Result<()> {
        // SAFETY: frame is valid for its length.
        let n = unsafe {
            libc::write(
                self.tun[side].as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n as usize != frame.len() {
            return Err(io::Error::other("a short write to a TUN device"));
        }
        Ok(())
    }

    /// Empties both TUNs, discarding what they held.
    fn discard(&mut self) -> io::Result<u64> {
        let mut n = 0;
        for side in 0..2 {
            while self.read(side)?.is_some() {
                n += 1;
            }
        }
        Ok(n)
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    /// What holds connection `t` in `side`'s namespace: its state and cookie.
    fn lookup(&mut self, side: usize, t: &Tuple) -> io::Result<Option<(u8, [u8; 8])>> {
        let seq = self.next_seq();
        let req = sys::diag_request(t, seq);
        match netlink_ask(self.diag[side].as_raw_fd(), &req, seq, false) {
            Ok(reply) => Ok(diag_found(&reply, t, seq)),
            // Nothing holds it (and no listener to fall back to).
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Destroys whatever holds `t` in `side`'s namespace (not a listener: an exact
    /// lookup with no match falls back to the listener of the local port, so the
    /// destroy names the cookie of the socket found). Returns how many went.
    fn destroy(&mut self, side: usize, t: &Tuple) -> io::Result<u32> {
        let mut gone = 0;
        // One socket holds a 4-tuple at a time; the loop bounds a kernel that would
        // keep answering.
        for _ in 0..4 {
            let Some((state, cookie)) = self.lookup(side, t)? else {
                return Ok(gone);
            };
            if state == LINUX_LISTEN {
                return Ok(gone);
            }
            let seq = self.next_seq();
            let mut req = sys::diag_request(t, seq);
            req[4..6].copy_from_slice(&SOCK_DESTROY.to_ne_bytes());
            req[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
            req[COOKIE_AT..COOKIE_AT + 8].copy_from_slice(&cookie);
            match netlink_ask(self.diag[side].as_raw_fd(), &req, seq, true) {
                Ok(_) => gone += 1,
                // Gone by itself between the lookup and the destroy.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other(format!(
            "network held: sock_diag keeps finding a socket for {} -> {}",
            t.local, t.peer
        )))
    }
}

/// inet_diag's numbering of LISTEN.
const LINUX_LISTEN: u8 = 10;
/// linux/sock_diag.h.
const SOCK_DESTROY: u16 = 21;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
/// Where the cookie lies in a [`sys::diag_request`]: nlmsghdr (16), the request's
/// family, protocol, ext, pad and states (8), then the sockid's ports and addresses
/// and interface (40).
const COOKIE_AT: usize = 16 + 8 + 40;

/// The state and cookie of the socket an exact sock_diag reply names, if it is `t`'s.
fn diag_found(reply: &[u8], t: &Tuple, seq: u32) -> Option<(u8, [u8; 8])> {
    let mut rest = reply;
    while rest.len() >= 16 {
        let len = u32::from_ne_bytes(rest[0..4].try_into().ok()?) as usize;
        let ty = u16::from_ne_bytes([rest[4], rest[5]]);
        let mseq = u32::from_ne_bytes(rest[8..12].try_into().ok()?);
        if len < 16 || len > rest.len() {
            return None;
        }
        let body = &rest[16..len];
        rest = &rest[((len + 3) & !3).min(rest.len())..];
        if mseq != seq || ty != 20 || body.len() < 4 + 48 {
            continue;
        }
        let id = &body[4..52];
        let want = &sys::diag_request(t, seq)[24..24 + 36];
        if id[..36] != *want {
            return None;
        }
        return Some((body[1], id[40..48].try_into().ok()?));
    }
    None
}

/// Sends a netlink request (in the socket's namespace) and reads the answer until
/// the kernel's acknowledgement or error for `seq`; returns the messages before it.
/// With `ack`, a request that was given NLM_F_ACK: the answer ends with its
/// NLMSG_ERROR (0 or an error). Without, a sock_diag lookup: one message or an error.
fn netlink_ask(fd: RawFd, req: &[u8], seq: u32, ack: bool) -> io::Result<Vec<u8>> {
    // SAFETY: a zeroed sockaddr_nl is the kernel's address.
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: req and kernel are valid for the lengths given.
    cvt(unsafe {
        libc::sendto(
            fd,
            req.as_ptr().cast(),
            req.len(),
            0,
            &kernel as *const libc::sockaddr_nl as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        ) as libc::c_int
    })?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 16384];
    let deadline = Instant::now() + Duration::from_millis(NETLINK_TIMEOUT_MS as u64);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, left.as_millis() as i32) };
        if r <= 0 {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "netlink did not answer in time",
            ));
        }
        // SAFETY: buf is valid for its length.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let got = &buf[..n as usize];
        let mut rest = got;
        while rest.len() >= 16 {
            let len = u32::from_ne_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
            let ty = u16::from_ne_bytes([rest[4], rest[5]]);
            let mseq = u32::from_ne_bytes(rest[8..12].try_into().expect("4 bytes"));
            if len < 16 || len > rest.len() {
                return Err(io::Error::other("a malformed netlink answer"));
            }
            let msg = &rest[..len];
            rest = &rest[((len + 3) & !3).min(rest.len())..];
            if mseq != seq {
                continue;
            }
            match ty {
                NLMSG_ERROR => {
                    let e = msg
                        .get(16..20)
                        .map(|b| i32::from_ne_bytes(b.try_into().expect("4 bytes")))
                        .unwrap_or(-libc::EBADMSG);
                    if e != 0 {
                        return Err(io::Error::from_raw_os_error(-e));
                    }
                    return Ok(out);
                }
                NLMSG_DONE => return Ok(out),
                _ => {
                    out.extend_from_slice(msg);
                    // A lookup without NLM_F_ACK answers with this one message.
                    if !ack {
                        return Ok(out);
                    }
                }
            }
        }
    }
}

/// Writes a sysctl of the calling thread's namespace.
fn sysctl(path: &str, value: &str) -> io::Result<()> {
    std::fs::write(format!("/proc/sys/net/{path}"), value)
}

/// Sets up the namespace the thread is in as `side` (0: A, 1: B): the loopback, the
/// sysctls, the TUN with its addresses and routes, and a sock_diag socket.
fn setup_namespace(side: usize) -> io::Result<(OwnedFd, OwnedFd)> {
    if !super::netns::loopback_up() {
        return Err(io::Error::other("cannot bring up the loopback"));
    }
    for &(path, value, needed) in SYSCTLS {
        match sysctl(path, value) {
            Ok(()) => {}
            Err(e) if !needed && e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("network held: cannot set net.{path}={value} ({e})"),
                ))
            }
        }
    }
    let tun = open_tun().map_err(|e| {
        unavailable(format!(
            "cannot open /dev/net/tun ({e}): held mode needs root (the device is mode 0600 here, and a user namespace does not make its owner)"
        ))
    })?;
    let ctl = raw_socket(libc::AF_INET, libc::SOCK_DGRAM, 0)?;
    let mut ifr = ifreq(TUN_NAME);
    ifr.ifr_ifru.ifru_mtu = TUN_MTU;
    // SAFETY: a valid ifreq naming our device.
    cvt(unsafe { libc::ioctl(ctl.as_raw_fd(), libc::SIOCSIFMTU, &ifr) })?;
    let mut ifr = ifreq(TUN_NAME);
    // SAFETY: a valid ifreq; the kernel fills the flags.
    cvt(unsafe { libc::ioctl(ctl.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) })?;
    // SAFETY: the union's flags member, which SIOCGIFFLAGS just filled.
    unsafe { ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: a valid ifreq.
    cvt(unsafe { libc::ioctl(ctl.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) })?;
    let mut ifr = ifreq(TUN_NAME);
    // SAFETY: a valid ifreq; the kernel fills the index.
    cvt(unsafe { libc::ioctl(ctl.as_raw_fd(), libc::SIOCGIFINDEX, &mut ifr) })?;
    // SAFETY: the member SIOCGIFINDEX filled.
    let index = unsafe { ifr.ifr_ifru.ifru_ifindex };
    let rtnl = raw_socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE)?;
    let peer = 1 - side;
    let mut seq: u32 = 1;
    let mut ask = |msg: Vec<u8>, what: &str| -> io::Result<()> {
        seq += 1;
        let mut msg = msg;
        msg[8..12].copy_from_slice(&seq.to_ne_bytes());
        netlink_ask(rtnl.as_raw_fd(), &msg, seq, true)
            .map(|_| ())
            .map_err(|e| io::Error::new(e.kind(), format!("network held: {what}: {e}")))
    };
    // A TUN gets the host's default qdisc (pfifo_fast here). A qdisc may leave a
    // segment queued for the NET_TX softirq (when it finds itself already running, or
    // its quota spent), so the segment would reach the TUN after the call that sent
    // it. noqueue hands it to the driver inside the call (dev_queue_xmit).
    ask(
        qdisc_noqueue(index),
        "cannot set the TUN's qdisc to noqueue",
    )?;
    ask(
        new_addr(index, IpAddr::V4(ADDR_V4[side])),
        "cannot add the IPv4 address",
    )?;
    ask(
        new_addr(index, IpAddr::V6(ADDR_V6[side])),
        "cannot add the IPv6 address",
    )?;
    ask(
        new_route(index, IpAddr::V4(ADDR_V4[peer])),
        "cannot add the IPv4 route",
    )?;
    ask(
        new_route(index, IpAddr::V6(ADDR_V6[peer])),
        "cannot add the IPv6 route",
    )?;
    wait_usable(ADDR_V6[side])?;
    /// linux/sock_diag.h.
    const NETLINK_SOCK_DIAG: libc::c_int = 4;
    let diag = raw_socket(libc::AF_NETLINK, libc::SOCK_DGRAM, NETLINK_SOCK_DIAG)?;
    Ok((tun, diag))
}

/// How long a new IPv6 address may stay tentative.
const TENTATIVE_MS: u64 = 2000;

/// Waits, bounded, until `ip` can be bound and reached. Even without duplicate address
/// detection (IFA_F_NODAD) a new IPv6 address is tentative until addrconf's work item
/// has run (addrconf_dad_work -> addrconf_dad_begin), which a loaded machine may delay
/// by milliseconds, and its local route (what delivers a packet to it) is inserted
/// only after the tentative flag is cleared (addrconf_dad_completed ->
/// ipv6_ifa_notify): until both, a SYN to it is not received (seen: 1 run in ~10 of
/// the tests lost a tcp6 handshake), and one from it cannot be sent. A UDP socket
/// bound to it (not tentative) that connects to it (the local route) shows both.
fn wait_usable(ip: Ipv6Addr) -> io::Result<()> {
    let deadline = Instant::now() + Duration::from_millis(TENTATIVE_MS);
    let addr = socket2::SockAddr::from(SocketAddr::new(IpAddr::V6(ip), 9));
    loop {
        let s = raw_socket(libc::AF_INET6, libc::SOCK_DGRAM, 0)?;
        // SAFETY: addresses from a valid SockAddr.
        let r = unsafe {
            if libc::bind(s.as_raw_fd(), addr.as_ptr(), addr.len()) == 0 {
                libc::connect(s.as_raw_fd(), addr.as_ptr(), addr.len())
            } else {
                -1
            }
        };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        let waiting = matches!(
            e.raw_os_error(),
            Some(libc::EADDRNOTAVAIL | libc::ENETUNREACH | libc::EHOSTUNREACH)
        );
        if !waiting || Instant::now() >= deadline {
            return Err(io::Error::new(
                e.kind(),
                format!("network held: {ip} did not become usable ({e})"),
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: an all-zero ifreq is valid.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    ifr
}

/// TUNSETIFF: _IOW('T', 202, int).
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;

fn open_tun() -> io::Result<OwnedFd> {
    // SAFETY: a NUL-terminated path; the result is checked before it is owned.
    let fd = cvt(unsafe {
        libc::open(
            c"/dev/net/tun".as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: fd was just opened and is owned by nobody else.
    let tun = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut ifr = ifreq(TUN_NAME);
    // No TUNSETOFFLOAD: the device then offers no checksum or segmentation offload, so
    // every packet read is complete, checksums included, and no larger than the MTU.
    ifr.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: a valid ifreq; TUNSETIFF attaches the device to this descriptor (the
    // device goes with the descriptor: not persistent).
    cvt(unsafe { libc::ioctl(tun.as_raw_fd(), TUNSETIFF as _, &ifr) })?;
    Ok(tun)
}

/// A netlink message: header (length, type, flags; the sequence is set when sent),
/// then `body`.
fn nlmsg(ty: u16, flags: u16, body: &[u8]) -> Vec<u8> {
    let len = 16 + body.len();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&ty.to_ne_bytes());
    m.extend_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(body);
    m
}

/// A route attribute (type, payload), padded to 4 bytes.
fn rta(ty: u16, data: &[u8]) -> Vec<u8> {
    let len = 4 + data.len();
    let mut a = Vec::with_capacity((len + 3) & !3);
    a.extend_from_slice(&(len as u16).to_ne_bytes());
    a.extend_from_slice(&ty.to_ne_bytes());
    a.extend_from_slice(data);
    while a.len() % 4 != 0 {
        a.push(0);
    }
    a
}

fn ip_bytes(ip: IpAddr) -> (u8, Vec<u8>, u8) {
    match ip {
        IpAddr::V4(v4) => (libc::AF_INET as u8, v4.octets().to_vec(), 32),
        IpAddr::V6(v6) => (libc::AF_INET6 as u8, v6.octets().to_vec(), 128),
    }
}

const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const RTM_NEWQDISC: u16 = 36;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;

/// RTM_NEWADDR: `ip` as a host address on the device, without duplicate address
/// detection (IFA_F_NODAD; meaningful for IPv6 only).
fn new_addr(index: i32, ip: IpAddr) -> Vec<u8> {
    let (family, bytes, plen) = ip_bytes(ip);
    const IFA_ADDRESS: u16 = 1;
    const IFA_LOCAL: u16 = 2;
    const IFA_F_NODAD: u8 = 0x02;
    let mut body = vec![family, plen, IFA_F_NODAD, 0];
    body.extend_from_slice(&(index as u32).to_ne_bytes());
    body.extend(rta(IFA_LOCAL, &bytes));
    body.extend(rta(IFA_ADDRESS, &bytes));
    nlmsg(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &body)
}

/// RTM_NEWROUTE: the peer's address through the device, with the metrics that keep
/// timers out of a case: `quickack 1` (tcp_in_quickack_mode: every ACK at once, never
/// the delayed-ACK timer) and `rto_min` [`RTO_MIN_MS`] ms, locked (tcp_rto_min reads
/// the metric only when it is locked, as `ip route ... rto_min` sets it).
fn new_route(index: i32, peer: IpAddr) -> Vec<u8> {
    let (family, bytes, plen) = ip_bytes(peer);
    const RT_TABLE_MAIN: u8 = 254;
    const RTPROT_BOOT: u8 = 3;
    const RT_SCOPE_LINK: u8 = 253;
    const RTN_UNICAST: u8 = 1;
    const RTA_DST: u16 = 1;
    const RTA_OIF: u16 = 4;
    const RTA_METRICS: u16 = 8;
    const RTAX_LOCK: u16 = 1;
    const RTAX_RTO_MIN: u16 = 13;
    const RTAX_QUICKACK: u16 = 15;
    let mut body = vec![
        family,
        plen,
        0,
        0,
        RT_TABLE_MAIN,
        RTPROT_BOOT,
        RT_SCOPE_LINK,
        RTN_UNICAST,
    ];
    body.extend_from_slice(&0u32.to_ne_bytes());
    body.extend(rta(RTA_DST, &bytes));
    body.extend(rta(RTA_OIF, &(index as u32).to_ne_bytes()));
    let mut metrics = Vec::new();
    metrics.extend(rta(RTAX_LOCK, &(1u32 << RTAX_RTO_MIN).to_ne_bytes()));
    metrics.extend(rta(RTAX_RTO_MIN, &RTO_MIN_MS.to_ne_bytes()));
    metrics.extend(rta(RTAX_QUICKACK, &1u32.to_ne_bytes()));
    body.extend(rta(RTA_METRICS, &metrics));
    nlmsg(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, &body)
}

/// RTM_NEWQDISC: `noqueue` as the device's root qdisc (`tc qdisc replace dev X root
/// noqueue`).
fn qdisc_noqueue(index: i32) -> Vec<u8> {
    const TC_H_ROOT: u32 = 0xffff_ffff;
    const TCA_KIND: u16 = 1;
    let mut body = vec![libc::AF_UNSPEC as u8, 0, 0, 0];
    body.extend_from_slice(&index.to_ne_bytes());
    body.extend_from_slice(&0u32.to_ne_bytes()); // handle: the kernel picks
    body.extend_from_slice(&TC_H_ROOT.to_ne_bytes());
    body.extend_from_slice(&0u32.to_ne_bytes()); // info
    body.extend(rta(TCA_KIND, b"noqueue\0"));
    nlmsg(RTM_NEWQDISC, NLM_F_CREATE | NLM_F_REPLACE, &body)
}

/// What the executor reads of a TCP segment in an IP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Its name, as the model names segments.
    pub name: SegName,
    /// Sequence number (absolute).
    pub seq: u32,
    /// Acknowledgement number, if the ACK flag is set.
    pub ack: Option<u32>,
}

/// Parses an IPv4 or IPv6 packet carrying TCP (no IPv6 extension headers: this wire
/// has none); `None` for anything else or anything short.
pub fn parse_segment(frame: &[u8]) -> Option<Segment> {
    let (ip_len, total) = match frame.first()? >> 4 {
        4 if *frame.get(9)? == libc::IPPROTO_TCP as u8 => (
            usize::from(frame[0] & 0x0f) * 4,
            usize::from(u16::from_be_bytes([*frame.get(2)?, *frame.get(3)?])),
        ),
        6 if *frame.get(6)? == libc::IPPROTO_TCP as u8 => (
            40,
            40 + usize::from(u16::from_be_bytes([*frame.get(4)?, *frame.get(5)?])),
        ),
        _ => return None,
    };
    if total > frame.len() || ip_len < 20 {
        return None;
    }
    let tcp = frame.get(ip_len..total)?;
    let word =
        |i: usize| -> Option<u32> { Some(u32::from_be_bytes(tcp.get(i..i + 4)?.try_into().ok()?)) };
    let sport = u16::from_be_bytes([*tcp.first()?, *tcp.get(1)?]);
    let dport = u16::from_be_bytes([*tcp.get(2)?, *tcp.get(3)?]);
    let hdr = usize::from(tcp.get(12)? >> 4) * 4;
    let flags = *tcp.get(13)?;
    let len = u32::try_from(tcp.len().checked_sub(hdr)?).ok()?;
    let ack = flags & 16 != 0;
    let name = SegName::of_tcp(flags, len);
    Some(Segment {
        sport,
        dport,
        name,
        seq: word(4)?,
        ack: ack.then_some(word(8)?),
    })
}

/// One connection on the wire: a client in A, its server side in B.
struct WireConn {
    /// The client's port and the server's (the listener's).
    ports: [u16; 2],
    /// Each end's ISN, from its SYN or SYN-ACK once seen.
    isn: [Option<u32>; 2],
    /// In flight client to server and server to client, oldest first.
    queues: [VecDeque<Vec<u8>>; 2],
    /// The ends' script names now: the client's, and the server side's (`l` until it
    /// is accepted).
    names: [Sock; 2],
    /// The child's socket cookie, once sock_diag found it in B: how `accept` tells
    /// which connection it took when the child was reset before (a CLOSE socket has
    /// no peer name, inet_getname).
    child_cookie: Option<u64>,
}

impl WireConn {
    fn new(names: [Sock; 2], ports: [u16; 2]) -> WireConn {
        WireConn {
            ports,
            isn: [None; 2],
            queues: Default::default(),
            names,
            child_cookie: None,
        }
    }

    fn names(&self, side: usize) -> String {
        crate::step::seg_list(
            &self.queues[side]
                .iter()
                .filter_map(|f| parse_segment(f).map(|s| s.name))
                .collect::<Vec<_>>(),
        )
    }

    fn dir(&self, side: usize) -> Dir {
        Dir {
            from: self.names[side],
            to: self.names[1 - side],
        }
    }

    /// Segment `s`, sent from `side`, as the comparison names it: its numbers relative
    /// to each end's ISN + 1; a SYN's own number is its ISN, reported as 0; before an
    /// end's ISN is known (the RST that answers a SYN, which carries 0), the number as
    /// it is.
    fn wire_seg(&self, side: usize, s: &Segment) -> WireSeg {
        let syn = matches!(s.name, SegName::Syn | SegName::SynAck);
        let rel = |d: usize, v: u32, syn: bool| {
            u64::from(match self.isn[d] {
                Some(i) if syn => v.wrapping_sub(i),
                Some(i) => v.wrapping_sub(i.wrapping_add(1)),
                None => v,
            })
        };
        WireSeg {
            dir: self.dir(side),
            name: s.name,
            seq: rel(side, s.seq, syn),
            ack: s.ack.map(|a| rel(1 - side, a, false)),
        }
    }
}

/// One held case's wire: the thread's pair (lent for the case), its connections and
/// the segments in flight each way on each. Dropping it ends the case: every socket
/// left for a connection is destroyed and the pair goes back to the thread.
pub(crate) struct Held {
    pair: Option<Box<WirePair>>,
    v6: bool,
    /// The listener's port, in B.
    lport: u16,
    /// Every connection the case made, oldest first.
    conns: Vec<WireConn>,
    /// Segments seen leaving since the last [`Held::take_seen`].
    seen: Vec<WireSeg>,
    /// Frames read that were not the case's connections'.
    stray: u64,
    /// A failure of the wire itself (a TUN that cannot be read or written): the case
    /// is void, and says so at its end.
    fault: Option<String>,
    /// Every packet's moment, for `--pcap`: always while the world is made (the
    /// handshake: a few frames, kept before anyone could ask), then only if the case
    /// asked ([`Held::capture`]).
    packets: Vec<super::Packet>,
    /// Whether the case asked to keep its packets.
    capture: bool,
    /// The step running (`None` while the world is made).
    step_no: Option<usize>,
    /// When the world began to be made.
    began: Instant,
}

/// How many times a held `start connected` case tries its handshake. The handshake is
/// not part of the case: if the host stalls this thread past the SYN's 1 s
/// retransmission timer between the connect and the read of its TUN, a second SYN
/// appears; that attempt's sockets are destroyed and a fresh pair of ports tries
/// again. (Seen once in 2,000,000 cases on a loaded machine.)
const HANDSHAKE_TRIES: usize = 3;

impl Held {
    fn new(transport: Transport) -> io::Result<Held> {
        let v6 = match transport {
            Transport::Tcp4 => false,
            Transport::Tcp6 => true,
            t => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("network held runs TCP only, not {t}"),
                ))
            }
        };
        let mut h = Held {
            pair: Some(take_pair()?),
            v6,
            lport: 0,
            conns: Vec::new(),
            seen: Vec::new(),
            stray: 0,
            fault: None,
            packets: Vec::new(),
            capture: false,
            step_no: None,
            began: Instant::now(),
        };
        // Whatever the last case's cleanup sent (resets of destroyed sockets).
        h.pair_mut().discard()?;
        Ok(h)
    }

    /// A listener in B (bound to a fresh port, `backlog`), and `clients` sockets in A;
    /// all non-blocking.
    fn make_sockets(
        &mut self,
        backlog: i32,
        clients: usize,
        bufs: &Bufs,
    ) -> io::Result<(OwnedFd, Vec<OwnedFd>)> {
        let family = if self.v6 {
            libc::AF_INET6
        } else {
            libc::AF_INET
        };
        let ty = libc::SOCK_STREAM | libc::SOCK_NONBLOCK;
        let home = current_ns()?;
        let made = (|| {
            setns(self.pair().ns[1].as_raw_fd())?;
            let l = raw_socket(family, ty, 0)?;
            setns(self.pair().ns[0].as_raw_fd())?;
            let cs = (0..clients)
                .map(|_| raw_socket(family, ty, 0))
                .collect::<io::Result<Vec<_>>>()?;
            Ok::<_, io::Error>((l, cs))
        })();
        setns(home.as_raw_fd())?;
        let (l, cs) = made?;
        let laddr = socket2::SockAddr::from(SocketAddr::new(self.addr(1), 0));
        super::set_socket_int_option(l.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
        sys::bind_cycling_port(l.as_raw_fd(), &laddr)?;
        // SAFETY: a bound socket of ours.
        cvt(unsafe { libc::listen(l.as_raw_fd(), backlog) })?;
        self.lport = socket2::SockRef::from(&l)
            .local_addr()?
            .as_socket()
            .map_or(0, |s| s.port());
        // Before a connection arrives: its window comes from the listener's buffer
        // (tcp_openreq_init_rwin), as under network instant.
        apply_bufs(bufs, l.as_raw_fd())?;
        for c in &cs {
            apply_bufs(bufs, c.as_raw_fd())?;
            tcp_options(c.as_raw_fd())?;
        }
        Ok((l, cs))
    }

    /// The world of a held `start connected` case: `a` (in A) connected to `b` (in B),
    /// the handshake delivered, the listener closed.
    pub(crate) fn connect(
        transport: Transport,
        bufs: &Bufs,
    ) -> io::Result<(Held, OwnedFd, OwnedFd)> {
        let mut tries = 1;
        loop {
            match Held::connect_once(transport, bufs) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted && tries < HANDSHAKE_TRIES => {
                    tries += 1;
                }
                r => return r,
            }
        }
    }

    fn connect_once(transport: Transport, bufs: &Bufs) -> io::Result<(Held, OwnedFd, OwnedFd)> {
        let mut h = Held::new(transport)?;
        let (l, mut cs) = h.make_sockets(1, 1, bufs)?;
        let a = cs.pop().expect("one client");
        let laddr = h.listener_addr();
        match socket2::SockRef::from(&a).connect(&laddr) {
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
            Ok(()) => {
                return Err(io::Error::other(
                    "network held: connect completed without a handshake",
                ))
            }
        }
        h.register(Sock::A, a.as_raw_fd())?;
        h.conns[0].names[1] = Sock::B;
        h.handshake()?;
        let b = sys::accept_nonblocking(l.as_raw_fd())?;
        drop(l);
        apply_bufs(bufs, b.as_raw_fd())?;
        tcp_options(b.as_raw_fd())?;
        // A non-blocking connect leaves `a` SS_CONNECTING; asking again once it is
        // ESTABLISHED returns 0 and makes it SS_CONNECTED (__inet_stream_connect), as
        // the blocking connect of network instant leaves it (a later connect then says
        // EISCONN there as here).
        socket2::SockRef::from(&a).connect(&laddr)?;
        let c = &h.conns[0];
        if c.queues.iter().any(|q| !q.is_empty()) {
            // Interrupted: a timer fired in it (see HANDSHAKE_TRIES).
            return Err(io::Error::new(
                io::ErrorKind::Interrupted,
                format!(
                    "network held: segments in flight after the handshake: a>b {}, b>a {}",
                    c.names(0),
                    c.names(1)
                ),
            ));
        }
        h.seen.clear();
        Ok((h, a, b))
    }

    /// The world of a held `start listening` case: the listener `l` (in B, backlog
    /// `backlog`) and the clients `a` and `c` (in A), none connected: every segment of
    /// a handshake is a step's to move.
    pub(crate) fn listening(
        transport: Transport,
        bufs: &Bufs,
        backlog: i32,
    ) -> io::Result<(Held, OwnedFd, OwnedFd, OwnedFd)> {
        let mut h = Held::new(transport)?;
        let (l, mut cs) = h.make_sockets(backlog, 2, bufs)?;
        // Accepted sockets start as copies of the listener (sk_clone_lock).
        tcp_options(l.as_raw_fd())?;
        let c = cs.pop().expect("two clients");
        let a = cs.pop().expect("two clients");
        Ok((h, l, a, c))
    }

    /// `sock`'s connect has sent a SYN: its connection is followed from now on.
    pub(crate) fn register(&mut self, sock: Sock, fd: RawFd) -> io::Result<()> {
        let local = socket2::SockRef::from(&fd_ref(fd)).local_addr()?;
        let port = local.as_socket().map_or(0, |s| s.port());
        self.conns
            .push(WireConn::new([sock, Sock::L], [port, self.lport]));
        Ok(())
    }

    /// `sock` was accepted: the connection whose client it is connected to takes its
    /// name (segments are named by it from now on).
    pub(crate) fn accepted(&mut self, sock: Sock, fd: RawFd) {
        let peer = socket2::SockRef::from(&fd_ref(fd))
            .peer_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .map(|a| a.port());
        let cookie = socket_cookie(fd);
        let found = self.conns.iter_mut().rev().find(|c| match peer {
            Some(p) => c.ports[0] == p,
            None => c.child_cookie.is_some() && c.child_cookie == cookie,
        });
        if let Some(c) = found {
            c.names[1] = sock;
        }
    }

    /// After a segment reached B on connection `c`: the child's cookie, if the segment
    /// just made it (see [`WireConn::child_cookie`]).
    fn note_child(&mut self, c: usize) -> io::Result<()> {
        let conn = &self.conns[c];
        if conn.names[1] != Sock::L || conn.child_cookie.is_some() {
            return Ok(());
        }
        let t = self.tuple(conn, 1);
        if let Some((state, cookie)) = self.pair_mut().lookup(1, &t)? {
            // Not the request (SYN_RECV, or TCP_NEW_SYN_RECV) nor the listener.
            if !matches!(state, 3 | 12 | LINUX_LISTEN) {
                let lo = u32::from_ne_bytes(cookie[0..4].try_into().expect("4 bytes"));
                let hi = u32::from_ne_bytes(cookie[4..8].try_into().expect("4 bytes"));
                self.conns[c].child_cookie = Some(u64::from(lo) | (u64::from(hi) << 32));
            }
        }
        Ok(())
    }

    fn pair(&self) -> &WirePair {
        self.pair.as_ref().expect("lent for the whole case")
    }

    fn pair_mut(&mut self) -> &mut WirePair {
        self.pair.as_mut().expect("lent for the whole case")
    }

    fn addr(&self, side: usize) -> IpAddr {
        if self.v6 {
            IpAddr::V6(ADDR_V6[side])
        } else {
            IpAddr::V4(ADDR_V4[side])
        }
    }

    /// Connection `c` as `side` sees it.
    fn tuple(&self, c: &WireConn, side: usize) -> Tuple {
        Tuple {
            local: SocketAddr::new(self.addr(side), c.ports[side]),
            peer: SocketAddr::new(self.addr(1 - side), c.ports[1 - side]),
        }
    }

    /// The listener's address (under `start connected` nobody listens there after the
    /// start): where a `connect` goes.
    pub(crate) fn listener_addr(&self) -> socket2::SockAddr {
        socket2::SockAddr::from(SocketAddr::new(self.addr(1), self.lport))
    }

    /// SYN, SYN-ACK, ACK of the first connection, each delivered as it appears.
    fn handshake(&mut self) -> io::Result<()> {
        for (side, want) in [(0, SegName::Syn), (1, SegName::SynAck), (0, SegName::Ack)] {
            if self.conns[0].queues[side].is_empty() {
                self.wait_for(side)?;
                self.drain()?;
            }
            let c = &self.conns[0];
            let first = c.queues[side].front().and_then(|f| parse_segment(f));
            if !matches!(first, Some(s) if s.name == want && c.queues[side].len() == 1) {
                // Interrupted: a timer fired in it (see HANDSHAKE_TRIES).
                return Err(io::Error::new(io::ErrorKind::Interrupted, format!(
                    "network held: the handshake expected {want} {}, found {} (and {} the other way)",
                    Dir::PAIR[side],
                    c.names(side),
                    c.names(1 - side)
                )));
            }
            self.deliver_one(0, side, 0)?;
        }
        Ok(())
    }

    /// Waits, bounded, for `side`'s TUN to have something to read.
    fn wait_for(&self, side: usize) -> io::Result<()> {
        let mut pfd = libc::pollfd {
            fd: self.pair().tun[side].as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = cvt(unsafe { libc::poll(&mut pfd, 1, HANDSHAKE_WAIT_MS) })?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "network held: nothing left {} within {HANDSHAKE_WAIT_MS} ms during the handshake",
                    if side == 0 { "a" } else { "b" }
                ),
            ));
        }
        Ok(())
    }

    /// Reads both TUNs until they are empty, keeping the connections' segments.
    fn drain(&mut self) -> io::Result<()> {
        for side in 0..2 {
            while let Some(n) = self.pair_mut().read(side)? {
                let pair = self.pair.as_ref().expect("lent");
                let frame = &pair.buf[..n];
                let Some(s) = parse_segment(frame) else {
                    self.stray += 1;
                    continue;
                };
                // The newest connection with these ports (a client that connects
                // again may get its old port back).
                let Some(c) = self.conns.iter_mut().rev().find(|c| {
                    s.sport == c.ports[side] && s.dport == c.ports[1 - side] && c.ports[0] != 0
                }) else {
                    self.stray += 1;
                    continue;
                };
                if c.queues[side].len() >= MAX_HELD {
                    return Err(io::Error::other(format!(
                        "network held: more than {MAX_HELD} segments in flight {}",
                        c.dir(side)
                    )));
                }
                if matches!(s.name, SegName::Syn | SegName::SynAck) {
                    c.isn[side] = Some(s.seq);
                }
                let seg = c.wire_seg(side, &s);
                c.queues[side].push_back(frame.to_vec());
                self.seen.push(seg);
                if self.keeping() {
                    let frame = frame.to_vec();
                    self.keep(super::PacketEvent::Emitted, seg, frame);
                }
            }
        }
        Ok(())
    }

    /// Whether packets are kept now: while the world is made, or when the case asked.
    fn keeping(&self) -> bool {
        self.capture || self.step_no.is_none()
    }

    /// Keeps a packet's moment (see [`Held::packets`]).
    fn keep(&mut self, event: super::PacketEvent, seg: WireSeg, bytes: Vec<u8>) {
        if self.keeping() {
            self.packets.push(super::Packet {
                step: self.step_no,
                event,
                seg,
                bytes,
                at: self.began.elapsed(),
            });
        }
    }

    /// Keeps what a step did to frame `f` of side `side` of connection `c`.
    fn keep_moved(&mut self, c: usize, side: usize, event: super::PacketEvent, f: &[u8]) {
        if !self.keeping() {
            return;
        }
        if let Some(s) = parse_segment(f) {
            let seg = self.conns[c].wire_seg(side, &s);
            self.keep(event, seg, f.to_vec());
        }
    }

    /// From here on every packet is kept, for `--pcap` (with the world's own, kept
    /// already).
    pub(crate) fn capture(&mut self) {
        self.capture = true;
    }

    /// The packets kept (empty unless [`Held::capture`] was asked).
    pub(crate) fn take_packets(&mut self) -> Vec<super::Packet> {
        if self.capture {
            std::mem::take(&mut self.packets)
        } else {
            Vec::new()
        }
    }

    /// A step begins: what follows belongs to it.
    pub(crate) fn step_begins(&mut self) {
        self.step_no = Some(self.step_no.map_or(0, |n| n + 1));
    }

    /// Hands the `k`-th oldest segment held from `side` of connection `c` to the other
    /// end, and collects what that made either end send.
    fn deliver_one(&mut self, c: usize, side: usize, k: usize) -> io::Result<bool> {
        let Some(f) = self.conns[c].queues[side].remove(k) else {
            return Ok(false);
        };
        self.keep_moved(c, side, super::PacketEvent::Delivered, &f);
        self.pair().write(1 - side, &f)?;
        self.drain()?;
        if side == 0 {
            self.note_child(c)?;
        }
        Ok(true)
    }

    /// A `sleep`: `ms` of real time, reading both TUNs as segments leave, so that what
    /// the two ends' timers send is collected in the order it left (both TUNs' read in
    /// one wake-up, side 0 first, is the only order not seen: segments that left
    /// within the same moment).
    pub(crate) fn sleep(&mut self, ms: u32) {
        let until = Instant::now() + Duration::from_millis(u64::from(ms));
        while self.fault.is_none() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let pair = self.pair.as_ref().expect("lent");
            let mut pfd = [0, 1].map(|side| libc::pollfd {
                fd: pair.tun[side].as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
            // Rounded up, so that the loop ends by the deadline, not by spinning; at
            // most 200 ms at a time, because poll's wake-up may be late by a thousandth
            // of its timeout (select_estimate_accuracy: 65 ms in a 65 s sleep, past the
            // budget a case's calls have), a sleep's is not.
            let wait = left.min(Duration::from_millis(200));
            let wait = i32::try_from(wait.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
            // SAFETY: two valid pollfds.
            let r = unsafe { libc::poll(pfd.as_mut_ptr(), 2, wait) };
            if r < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                self.fault = Some(format!(
                    "network held: poll: {}",
                    io::Error::last_os_error()
                ));
            } else if r > 0 {
                if let Err(e) = self.drain() {
                    self.fault = Some(e.to_string());
                }
            }
        }
        // A fault ends the wait early; the rest of the sleep still passes.
        std::thread::sleep(until.saturating_duration_since(Instant::now()));
    }

    /// Collects what the last call or sleep sent.
    pub(crate) fn after_step(&mut self) {
        if self.fault.is_none() {
            if let Err(e) = self.drain() {
                self.fault = Some(e.to_string());
            }
        }
    }

    /// The newest connection whose ends are named as `dir` says, and the side
    /// `dir.from` is.
    fn conn_of(&self, dir: Dir) -> Option<(usize, usize)> {
        self.conns
            .iter()
            .enumerate()
            .rev()
            .find_map(|(i, c)| (0..2).find(|s| c.dir(*s) == dir).map(|s| (i, s)))
    }

    /// `deliver`, `drop` and `held`.
    pub(crate) fn wire_step(&mut self, step: Step) -> Outcome {
        let dir = match step {
            Step::Deliver { dir, .. } | Step::Drop { dir } | Step::Held { dir } => dir,
            _ => return Outcome::NotApplicable,
        };
        let Some((c, side)) = self.conn_of(dir) else {
            // No connection between those names (yet).
            return Outcome::NotApplicable;
        };
        let r = match step {
            Step::Deliver {
                which: Which::Nth(k),
                ..
            } => self.deliver_one(c, side, usize::from(k.max(1)) - 1),
            Step::Deliver {
                which: Which::All, ..
            } => {
                // What was in flight when the step began: a delivery makes only the
                // other end answer, but the count is fixed first all the same.
                let n = self.conns[c].queues[side].len();
                (0..n)
                    .try_fold(false, |_, _| self.deliver_one(c, side, 0))
                    .map(|_| n > 0)
            }
            Step::Drop { .. } => match self.conns[c].queues[side].pop_front() {
                Some(f) => {
                    self.keep_moved(c, side, super::PacketEvent::Dropped, &f);
                    Ok(true)
                }
                None => Ok(false),
            },
            Step::Held { .. } => {
                return Outcome::Segments(
                    self.conns[c].queues[side]
                        .iter()
                        .filter_map(|f| parse_segment(f).map(|s| s.name))
                        .collect(),
                )
            }
            _ => unreachable!("matched above"),
        };
        match r {
            Ok(true) => Outcome::Ok,
            Ok(false) => Outcome::NotApplicable,
            Err(e) => {
                self.fault.get_or_insert(e.to_string());
                Outcome::NotApplicable
            }
        }
    }

    /// `state` of `sock` once its descriptor is closed: sock_diag in its end's
    /// namespace, for the newest connection it is an end of (none: gone; a closed
    /// listener holds no connection).
    pub(crate) fn closed_state(&mut self, sock: Sock) -> Outcome {
        if sock == Sock::L {
            return Outcome::Gone;
        }
        let Some((c, side)) = self
            .conns
            .iter()
            .enumerate()
            .rev()
            .find_map(|(i, c)| c.names.iter().position(|n| *n == sock).map(|s| (i, s)))
        else {
            return Outcome::Gone;
        };
        let t = self.tuple(&self.conns[c], side);
        match self.pair_mut().lookup(side, &t) {
            Ok(None) => Outcome::Gone,
            Ok(Some((LINUX_LISTEN, _))) => Outcome::Gone,
            Ok(Some((n, _))) => match TcpState::from_linux(n) {
                Some(s) => Outcome::State(s.into()),
                None => Outcome::Err(Errno(libc::EBADMSG)),
            },
            Err(e) => Outcome::Err(Errno(e.raw_os_error().unwrap_or(libc::EIO))),
        }
    }

    /// The segments seen leaving since the last call, or why the wire failed.
    pub(crate) fn take_seen(&mut self) -> io::Result<Vec<WireSeg>> {
        if let Some(why) = &self.fault {
            return Err(io::Error::other(format!("network held: {why}")));
        }
        Ok(std::mem::take(&mut self.seen))
    }
}

/// SO_COOKIE of a socket (sock_gen_cookie, as sock_diag reports it).
fn socket_cookie(fd: RawFd) -> Option<u64> {
    let mut v: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: v and len are valid for writing; SO_COOKIE writes a u64.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_COOKIE,
            (&mut v as *mut u64).cast(),
            &mut len,
        )
    };
    (r == 0).then_some(v)
}

/// A borrowed descriptor, for socket2's lookups.
fn fd_ref(fd: RawFd) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: only used within the call that passed fd, while its owner holds it open.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}

impl Drop for Held {
    fn drop(&mut self) {
        let Some(mut pair) = self.pair.take() else {
            return;
        };
        // The descriptors are closed by now (Sockets drops them first): what is left
        // is orphans, TIME_WAIT mini-sockets, requests and, after a failed start, a
        // connecting socket. Destroying them sends resets into the TUNs: emptied below,
        // and again when the next case starts.
        let mut ok = true;
        for c in self
            .conns
            .iter()
            .filter(|c| c.ports.iter().all(|p| *p != 0))
        {
            for side in 0..2 {
                let t = self.tuple(c, side);
                ok &= pair.destroy(side, &t).is_ok();
            }
        }
        ok &= pair.discard().is_ok();
        if ok {
            give_back(pair);
        } else {
            // A pair that cannot be cleaned is not reused: the next case makes a new one.
            PAIR.with(|slot| *slot.borrow_mut() = Slot::Untried);
        }
    }
}

/// How many sockets the thread's pair holds for `tuple` in `side`'s namespace
/// (0: A, 1: B), not counting a listener: for tests of the cleanup.
pub fn sockets_left(side: usize, local: SocketAddr, peer: SocketAddr) -> io::Result<usize> {
    let mut p = take_pair()?;
    let r = p
        .lookup(side, &Tuple { local, peer })
        .map(|f| usize::from(f.is_some_and(|(s, _)| s != LINUX_LISTEN)));
    give_back(p);
    r
}

/// The value of a sysctl (path under /proc/sys/net/) in `side`'s namespace of this
/// thread's pair, for tests of the setup.
pub fn sysctl_in(side: usize, path: &str) -> io::Result<String> {
    let p = take_pair()?;
    let home = current_ns();
    let r = home.and_then(|home| {
        setns(p.ns[side].as_raw_fd())?;
        let v = std::fs::read_to_string(format!("/proc/sys/net/{path}"));
        setns(home.as_raw_fd())?;
        v
    });
    give_back(p);
    r.map(|s| s.trim().to_string())
}

/// How long this thread takes to make a pair from nothing (it keeps the new one).
pub fn time_setup() -> io::Result<Duration> {
    let t = Instant::now();
    let p = WirePair::new()?;
    let took = t.elapsed();
    give_back(Box::new(p));
    Ok(took)
}
