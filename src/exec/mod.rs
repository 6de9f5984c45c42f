//! The executor: real sockets on the host kernel.
//!
//! [`Sockets::start`] makes a scenario's world: under `start connected` a fresh
//! connected pair (`a` connects, `b` is accepted, the listener is closed at once);
//! under `start listening` a listener `l` (backlog [`BACKLOG`]) and two unconnected
//! clients `a` and `c`. [`Sockets::step`] issues one call, and [`Sockets::observe`]
//! looks at every socket without changing it. Every descriptor is non-blocking and
//! every wait has a bound, so nothing here can hang.
//!
//! SIGPIPE is blocked in the executing thread (see [`signals`]) so that a write to
//! a broken connection raises it without killing the process; each step reports
//! whether it did.

pub mod gvisor;
pub mod lwip;
pub mod netns;
pub(crate) mod remote;
pub mod signals;
pub mod smoltcp;
pub mod sys;
pub mod uml;
#[cfg(target_os = "linux")]
pub mod wire;
#[cfg(not(target_os = "linux"))]
#[path = "wire_unsupported.rs"]
pub mod wire;
pub mod worker;

use crate::step::{
    pattern, Bufs, EndView, Errno, Network, Observation, Op, Outcome, PollSet, Shut, Sock, Start,
    Step, StepResult, BACKLOG,
};
use crate::transport::Transport;
use serde::{Deserialize, Serialize};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// How long creating a pair may wait for the accept, at most.
const ACCEPT_TIMEOUT_MS: i32 = 2000;

/// A scenario's real sockets, by name.
pub struct Sockets {
    transport: Transport,
    fds: [Option<OwnedFd>; 5],
    /// Whether each name was ever given a socket (to tell "not yet" from "closed").
    made: [bool; 5],
    /// Bytes each socket has written so far: where its pattern continues.
    sent: [u64; 5],
    /// The listener's address, for `connect`.
    addr: Option<sys::Addr>,
    /// The `rcvbuf`/`sndbuf` headers, set on every socket before it connects and on
    /// each accepted socket.
    bufs: Bufs,
    /// Each TCP socket's addresses once it had a peer: taken while the fd is open
    /// (getpeername fails once the socket is CLOSE, even while a TIME_WAIT mini-socket
    /// holds its connection), so that `state` after close can find the connection.
    tuples: [Option<sys::Tuple>; 5],
    /// Under `network held`: the wire between `a` and `b`. Last, so that it is dropped
    /// after the descriptors: its drop destroys what they leave behind.
    held: Option<wire::Held>,
}

fn apply_bufs(bufs: &Bufs, fd: RawFd) -> io::Result<()> {
    if let Some(n) = bufs.rcvbuf {
        set_buf(fd, libc::SO_RCVBUF, n)?;
    }
    if let Some(n) = bufs.sndbuf {
        set_buf(fd, libc::SO_SNDBUF, n)?;
    }
    Ok(())
}

fn set_buf(fd: RawFd, opt: libc::c_int, n: u32) -> io::Result<()> {
    let v = libc::c_int::try_from(n).unwrap_or(libc::c_int::MAX);
    set_socket_int_option(fd, libc::SOL_SOCKET, opt, v)
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn socket(domain: libc::c_int, ty: libc::c_int) -> io::Result<OwnedFd> {
    let fd = sys::cloexec_socket(domain, ty)?;
    Ok(fd)
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
    Ok(())
}

pub(crate) fn set_socket_int_option(
    fd: RawFd,
    level: libc::c_int,
    opt: libc::c_int,
    val: libc::c_int,
) -> io::Result<()> {
    // SAFETY: the option value is a valid int of the size given.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            &val as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// Nagle's algorithm holds a small write back while an earlier small segment is
/// unacknowledged, and Linux delays ACKs by a timer (40 ms at least) once a connection
/// looks interactive: with Nagle on, whether a write reaches the peer before the next
/// step depends on a clock. closefuzz studies close orderings, not send timing, so
/// every write goes out at once.
///
/// TCP_LINGER2 of 1 s bounds how long an orphan waits in FIN_WAIT2 (the model's
/// [`crate::model::tcp::FIN_WAIT2_TIMEOUT_MS`]), so a `sleep` can show the timeout.
/// It is per socket because gVisor has no tcp_fin_timeout sysctl but honours the
/// option, as Linux does (tcp_fin_time).
/// (Other systems have no such option: their FIN_WAIT2 timeout stays the system's.)
fn tcp_options(fd: RawFd) -> io::Result<()> {
    set_socket_int_option(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1)?;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    set_socket_int_option(fd, libc::IPPROTO_TCP, libc::TCP_LINGER2, 1)?;
    Ok(())
}

fn set_linger(fd: RawFd, secs: u32) -> io::Result<()> {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: libc::c_int::try_from(secs).unwrap_or(libc::c_int::MAX),
    };
    // SAFETY: a valid linger struct of the size given.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// Waits, bounded, for `fd` to become readable; used only while setting up a pair.
fn wait_readable(fd: RawFd, timeout_ms: i32) -> io::Result<()> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = cvt(unsafe { libc::poll(&mut pfd, 1, timeout_ms) })?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no connection to accept within {timeout_ms} ms"),
        ));
    }
    Ok(())
}

fn errno_of(e: io::Error) -> Outcome {
    Outcome::Err(Errno(e.raw_os_error().unwrap_or(libc::EIO)))
}

impl Sockets {
    fn empty(transport: Transport, bufs: Bufs) -> Sockets {
        Sockets {
            transport,
            fds: Default::default(),
            made: [false; 5],
            sent: [0; 5],
            addr: None,
            bufs,
            tuples: [None; 5],
            held: None,
        }
    }

    fn put(&mut self, s: Sock, fd: OwnedFd) {
        self.fds[s.index()] = Some(fd);
        self.made[s.index()] = true;
        self.note_tuple(s);
    }

    /// Remembers `s`'s addresses if it is a TCP socket with a peer now; keeps what it
    /// had otherwise (a connection that went CLOSE or TIME_WAIT has no peer to ask).
    fn note_tuple(&mut self, s: Sock) {
        if !self.transport.is_tcp() {
            return;
        }
        if let Some(t) = self.fds[s.index()].as_ref().and_then(sys::tuple_of) {
            self.tuples[s.index()] = Some(t);
        }
    }

    /// `state` on a closed TCP socket: what the kernel still holds for its connection
    /// (sock_diag), as TCP_INFO cannot be asked without the fd.
    fn closed_state(&mut self, sock: Sock) -> Outcome {
        if let Some(h) = &mut self.held {
            return h.closed_state(sock);
        }
        match sys::closed_tcp_state(self.tuples[sock.index()].as_ref()) {
            sys::DiagReading::State(s) => Outcome::State(s.into()),
            sys::DiagReading::Gone => Outcome::Gone,
            sys::DiagReading::Unavailable => Outcome::NotApplicable,
            sys::DiagReading::Failed(e) => Outcome::Err(e),
        }
    }

    /// Creates the world `start` begins with over `transport`.
    pub fn start(transport: Transport, start: Start) -> io::Result<Sockets> {
        Self::start_with(transport, start, Bufs::default())
    }

    /// The same, with buffer sizes set on every socket before it connects.
    pub fn start_with(transport: Transport, start: Start, bufs: Bufs) -> io::Result<Sockets> {
        Self::start_on(transport, start, bufs, Network::Instant)
    }

    /// The same, on `network` (see [`wire`] for `network held`).
    pub fn start_on(
        transport: Transport,
        start: Start,
        bufs: Bufs,
        network: Network,
    ) -> io::Result<Sockets> {
        if network == Network::Held {
            // No fresh namespace (netns::before_pair): the case runs in the thread's
            // wire pair, which destroys what each case leaves.
            signals::block_sigpipe_in_this_thread();
            signals::take_sigpipe();
            let mut w = Sockets::empty(transport, bufs);
            match start {
                Start::Connected => {
                    let (held, a, b) = wire::Held::connect(transport, &bufs)?;
                    w.held = Some(held);
                    w.put(Sock::A, a);
                    w.put(Sock::B, b);
                }
                Start::Listening => {
                    let backlog = BACKLOG;
                    let (held, l, a, c) = wire::Held::listening(transport, &bufs, backlog)?;
                    w.held = Some(held);
                    w.put(Sock::L, l);
                    w.put(Sock::A, a);
                    w.put(Sock::C, c);
                }
            }
            return Ok(w);
        }
        match start {
            Start::Connected => Sockets::connect_with(transport, bufs),
            Start::Listening => Sockets::listening_with(transport, bufs),
        }
    }

    /// Creates a fresh connected pair over `transport`.
    pub fn connect(transport: Transport) -> io::Result<Sockets> {
        Self::connect_with(transport, Bufs::default())
    }

    fn connect_with(transport: Transport, bufs: Bufs) -> io::Result<Sockets> {
        Self::before_case();
        let (listener, addr) = sys::listener(transport, 1)?;
        // Before the connection arrives: a TCP connection's window comes from the
        // listener's receive buffer (tcp_openreq_init_rwin).
        apply_bufs(&bufs, listener.as_raw_fd())?;
        let a = socket(addr.family(), sys::sock_type(transport))?;
        apply_bufs(&bufs, a.as_raw_fd())?;
        // A blocking connect: on loopback and Unix sockets the handshake completes
        // inside the call, and it leaves the socket in the plain connected state
        // rather than the "connect in progress" one a non-blocking connect leaves.
        addr.connect(a.as_raw_fd())?;
        wait_readable(listener.as_raw_fd(), ACCEPT_TIMEOUT_MS)?;
        let b = sys::accept_nonblocking(listener.as_raw_fd())?;
        drop(listener);
        // A Unix server socket is made fresh by connect, with default buffers
        // (unix_stream_connect); TCP's inherited the listener's already.
        apply_bufs(&bufs, b.as_raw_fd())?;
        set_nonblocking(a.as_raw_fd())?;
        if transport.is_tcp() {
            for fd in [a.as_raw_fd(), b.as_raw_fd()] {
                tcp_options(fd)?;
            }
        }
        let mut w = Sockets::empty(transport, bufs);
        w.put(Sock::A, a);
        w.put(Sock::B, b);
        Ok(w)
    }

    /// Creates a listener (backlog [`BACKLOG`]) and two unconnected, non-blocking
    /// clients `a` and `c`.
    pub fn listening(transport: Transport) -> io::Result<Sockets> {
        Self::listening_with(transport, Bufs::default())
    }

    fn listening_with(transport: Transport, bufs: Bufs) -> io::Result<Sockets> {
        Self::before_case();
        let (listener, addr) = sys::listener(transport, BACKLOG)?;
        apply_bufs(&bufs, listener.as_raw_fd())?;
        set_nonblocking(listener.as_raw_fd())?;
        if transport.is_tcp() {
            // Accepted sockets start as copies of the listener (sk_clone_lock).
            tcp_options(listener.as_raw_fd())?;
        }
        let mut w = Sockets::empty(transport, bufs);
        for s in [Sock::A, Sock::C] {
            let fd = socket(addr.family(), sys::sock_type(transport))?;
            apply_bufs(&bufs, fd.as_raw_fd())?;
            set_nonblocking(fd.as_raw_fd())?;
            if transport.is_tcp() {
                tcp_options(fd.as_raw_fd())?;
            }
            w.put(s, fd);
        }
        w.put(Sock::L, listener);
        w.addr = Some(addr);
        Ok(w)
    }

    fn before_case() {
        netns::before_pair();
        signals::block_sigpipe_in_this_thread();
        // A SIGPIPE left pending by earlier unchecked calls in this thread (the
        // benchmark's bare loop) must not be blamed on this case's first step.
        signals::take_sigpipe();
    }

    /// A Unix pair made by socketpair(2) instead of listen/connect/accept: `a` is the
    /// first descriptor. Both non-blocking. Used to check that the two ways of making a
    /// Unix pair behave alike (tests/exec.rs).
    pub fn socketpair(transport: Transport) -> io::Result<Sockets> {
        if transport.is_tcp() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "socketpair makes Unix pairs only",
            ));
        }
        signals::block_sigpipe_in_this_thread();
        signals::take_sigpipe();
        let mut fds = [0; 2];
        // SAFETY: fds has room for the two descriptors socketpair returns.
        cvt(unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                sys::sock_type(transport),
                0,
                fds.as_mut_ptr(),
            )
        })?;
        // SAFETY: both descriptors were just created and are owned by nobody else.
        let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        for fd in [&a, &b] {
            set_nonblocking(fd.as_raw_fd())?;
            // SAFETY: fcntl on a descriptor we own.
            cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) })?;
        }
        let mut w = Sockets::empty(transport, Bufs::default());
        w.put(Sock::A, a);
        w.put(Sock::B, b);
        Ok(w)
    }

    /// The transport this world was made over.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The addresses of `sock`'s TCP connection, as last seen while its descriptor was
    /// open (what `state` asks sock_diag about once it is closed).
    pub fn tuple(&self, sock: Sock) -> Option<sys::Tuple> {
        self.tuples[sock.index()]
    }

    /// Whether `sock`'s descriptor is open.
    pub fn is_open(&self, sock: Sock) -> bool {
        self.fds[sock.index()].is_some()
    }

    /// Runs one step on the real sockets and reports its result.
    pub fn step(&mut self, step: Step) -> StepResult {
        if let Some(h) = &mut self.held {
            h.step_begins();
        }
        let outcome = match step {
            Step::Sleep { ms } => {
                match &mut self.held {
                    Some(h) => h.sleep(ms),
                    None => std::thread::sleep(std::time::Duration::from_millis(u64::from(ms))),
                }
                Outcome::Ok
            }
            Step::Call { sock, op } => self.call(sock, op),
            _ => match &mut self.held {
                Some(h) => h.wire_step(step),
                None => Outcome::NotApplicable,
            },
        };
        if let Some(h) = &mut self.held {
            h.after_step();
        }
        let sigpipe = signals::take_sigpipe();
        StepResult { outcome, sigpipe }
    }

    /// The bare call, with no observation and no SIGPIPE check: the baseline the
    /// benchmark compares the full loop against.
    pub fn call_raw(&mut self, step: Step) {
        match step {
            Step::Sleep { ms } => {
                std::thread::sleep(std::time::Duration::from_millis(u64::from(ms)))
            }
            Step::Call { sock, op } => {
                let _ = self.call(sock, op);
            }
            _ => {
                if let Some(h) = &mut self.held {
                    h.wire_step(step);
                }
            }
        }
        if let Some(h) = &mut self.held {
            h.after_step();
        }
    }

    /// Under `network held`: keep every packet from here on, for `--pcap` (the
    /// world's own handshake is kept already). Nothing otherwise.
    pub fn capture_packets(&mut self) {
        if let Some(h) = &mut self.held {
            h.capture();
        }
    }

    /// The packets kept since [`Sockets::capture_packets`] (see [`KernelRun::packets`]).
    pub fn take_packets(&mut self) -> Vec<Packet> {
        self.held.as_mut().map_or(vec![], |h| h.take_packets())
    }

    /// Under `network held`, the segments sent since the last call (see
    /// [`KernelRun::wire`]); empty otherwise. An error if the wire itself failed.
    pub fn take_wire(&mut self) -> io::Result<Vec<crate::step::WireSeg>> {
        match &mut self.held {
            Some(h) => h.take_seen(),
            None => Ok(Vec::new()),
        }
    }

    fn call(&mut self, sock: Sock, op: Op) -> Outcome {
        if op == Op::Accept {
            return self.accept(sock);
        }
        let i = sock.index();
        let Some(fd) = self.fds[i].as_ref().map(|f| f.as_raw_fd()) else {
            if op == Op::State && self.made[i] && self.transport.is_tcp() {
                return self.closed_state(sock);
            }
            return Outcome::Closed;
        };
        match op {
            // Flags 0: no MSG_NOSIGNAL, so a broken connection raises SIGPIPE.
            Op::Write(n) => self.send(sock, fd, n, 0),
            Op::WriteNoSignal(n) => match sys::MSG_NOSIGNAL {
                Some(flag) => self.send(sock, fd, n, flag),
                // macOS has no MSG_NOSIGNAL (only the SO_NOSIGPIPE socket option).
                None => Outcome::NotApplicable,
            },
            Op::Read(n) => recv(fd, n, 0),
            Op::Peek(n) => recv(fd, n, libc::MSG_PEEK),
            Op::WriteOob(n) => self.send(sock, fd, n, libc::MSG_OOB),
            Op::ReadOob(n) => recv(fd, n, libc::MSG_OOB),
            Op::Outq => match sys::outq(fd) {
                Some(Ok(n)) => Outcome::Queued(n),
                Some(Err(e)) => errno_of(e),
                None => Outcome::NotApplicable,
            },
            Op::RcvBuf(n) => match set_buf(fd, libc::SO_RCVBUF, n) {
                Ok(()) => Outcome::Ok,
                Err(e) => errno_of(e),
            },
            Op::SndBuf(n) => match set_buf(fd, libc::SO_SNDBUF, n) {
                Ok(()) => Outcome::Ok,
                Err(e) => errno_of(e),
            },
            Op::Inq => {
                let mut n: libc::c_int = 0;
                // SAFETY: FIONREAD (SIOCINQ) writes one int to a valid pointer.
                if unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) } < 0 {
                    Outcome::Err(Errno::last())
                } else {
                    Outcome::Queued(n.max(0) as usize)
                }
            }
            Op::Shutdown(how) => {
                let how = match how {
                    Shut::Rd => libc::SHUT_RD,
                    Shut::Wr => libc::SHUT_WR,
                    Shut::RdWr => libc::SHUT_RDWR,
                };
                // SAFETY: plain syscall on an open descriptor.
                if unsafe { libc::shutdown(fd, how) } < 0 {
                    Outcome::Err(Errno::last())
                } else {
                    Outcome::Ok
                }
            }
            Op::Close => self.close(sock),
            Op::Abort => {
                if let Err(e) = set_linger(fd, 0) {
                    // The descriptor is given up either way, as `abort` promises.
                    self.close(sock);
                    return errno_of(e);
                }
                self.close(sock)
            }
            Op::Linger(secs) => match set_linger(fd, secs) {
                Ok(()) => Outcome::Ok,
                Err(e) => errno_of(e),
            },
            Op::Poll => Outcome::Poll(poll_one(fd)),
            Op::Error => {
                let mut val: libc::c_int = 0;
                let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
                // SAFETY: val and len are valid for writing.
                let r = unsafe {
                    libc::getsockopt(
                        fd,
                        libc::SOL_SOCKET,
                        libc::SO_ERROR,
                        &mut val as *mut libc::c_int as *mut libc::c_void,
                        &mut len,
                    )
                };
                if r < 0 {
                    Outcome::Err(Errno::last())
                } else if val == 0 {
                    Outcome::SockError(None)
                } else {
                    Outcome::SockError(Some(Errno(val)))
                }
            }
            Op::State => {
                if !self.transport.is_tcp() {
                    return Outcome::NotApplicable;
                }
                match sys::tcp_state(fd) {
                    sys::StateReading::State(s) => Outcome::State(s),
                    sys::StateReading::Unavailable => Outcome::NotApplicable,
                    sys::StateReading::Failed(e) => Outcome::Err(e),
                }
            }
            Op::Connect => {
                let r = self.connect_to_listener(fd);
                if let (Some(h), Outcome::Err(Errno(libc::EINPROGRESS))) = (&mut self.held, &r) {
                    // A SYN left: the wire follows its connection from now on.
                    if let Err(e) = h.register(sock, fd) {
                        return errno_of(e);
                    }
                }
                self.note_tuple(sock);
                r
            }
            Op::Accept => unreachable!("handled above"),
        }
    }

    fn connect_to_listener(&self, fd: RawFd) -> Outcome {
        if let Some(h) = &self.held {
            // The closed listener's address, in B: the SYN is held like any segment.
            return match sys::Addr::Inet(h.listener_addr()).connect(fd) {
                Ok(()) => Outcome::Ok,
                Err(e) => errno_of(e),
            };
        }
        match &self.addr {
            // Under `start connected` the listener is gone; connect to an address
            // nobody listens on, as the model assumes, by making one up the same
            // way: a fresh listener's address, closed at once.
            None => match sys::listener(self.transport, 1) {
                Ok((l, addr)) => {
                    drop(l);
                    match addr.connect(fd) {
                        Ok(()) => Outcome::Ok,
                        Err(e) => errno_of(e),
                    }
                }
                Err(e) => errno_of(e),
            },
            Some(addr) => match addr.connect(fd) {
                Ok(()) => Outcome::Ok,
                Err(e) => errno_of(e),
            },
        }
    }

    /// `send` of `n` bytes of `sock`'s pattern with `flags`.
    fn send(&mut self, sock: Sock, fd: RawFd, n: u32, flags: libc::c_int) -> Outcome {
        let i = sock.index();
        let buf = pattern(sock, self.sent[i], n as usize);
        // SAFETY: buf is valid for n bytes.
        let r = unsafe { libc::send(fd, buf.as_ptr() as *const libc::c_void, buf.len(), flags) };
        if r < 0 {
            Outcome::Err(Errno::last())
        } else {
            self.sent[i] += r as u64;
            Outcome::Wrote(r as usize)
        }
    }

    /// `accept` on the listener, the result named `sock`.
    fn accept(&mut self, sock: Sock) -> Outcome {
        let Some(l) = self.fds[Sock::L.index()].as_ref().map(|f| f.as_raw_fd()) else {
            return Outcome::Closed;
        };
        if self.made[sock.index()] {
            return Outcome::NotApplicable;
        }
        match sys::accept_nonblocking(l) {
            Ok(fd) => {
                if let Some(h) = &mut self.held {
                    h.accepted(sock, fd.as_raw_fd());
                }
                if self.transport.is_tcp() {
                    let _ = tcp_options(fd.as_raw_fd());
                }
                let _ = apply_bufs(&self.bufs, fd.as_raw_fd());
                self.put(sock, fd);
                Outcome::Ok
            }
            Err(e) => errno_of(e),
        }
    }

    fn close(&mut self, sock: Sock) -> Outcome {
        // A connect that was still in progress when it returned may have finished since.
        if self.tuples[sock.index()].is_none() {
            self.note_tuple(sock);
        }
        let Some(fd) = self.fds[sock.index()].take() else {
            return Outcome::Closed;
        };
        let raw = fd.into_raw_fd();
        // SAFETY: we owned raw and give it up here, exactly once.
        if unsafe { libc::close(raw) } < 0 {
            Outcome::Err(Errno::last())
        } else {
            Outcome::Ok
        }
    }

    /// Every socket's TCP state and poll revents. Uses only poll and
    /// getsockopt(TCP_INFO), neither of which changes a socket.
    pub fn observe(&self) -> Observation {
        let mut pfds = [libc::pollfd {
            fd: -1,
            events: 0,
            revents: 0,
        }; 5];
        for s in Sock::ALL {
            if let Some(fd) = &self.fds[s.index()] {
                pfds[s.index()].fd = fd.as_raw_fd();
                pfds[s.index()].events = sys::POLL_ASK;
            }
        }
        // SAFETY: five valid pollfds; a negative fd is ignored by poll.
        unsafe { libc::poll(pfds.as_mut_ptr(), 5, 0) };
        let view = |s: Sock| -> EndView {
            match &self.fds[s.index()] {
                None if self.made[s.index()] => EndView::Closed,
                None => EndView::Absent,
                Some(fd) => EndView::Open {
                    state: if self.transport.is_tcp() {
                        match sys::tcp_state(fd.as_raw_fd()) {
                            sys::StateReading::State(st) => Some(st),
                            _ => None,
                        }
                    } else {
                        None
                    },
                    poll: sys::revents_to_set(pfds[s.index()].revents),
                },
            }
        };
        Sock::ALL.map(view)
    }
}

/// `recv` of up to `n` bytes with `flags`. A zero-length recv that returns 0 says
/// nothing about end of file: it is `data 0`, not `eof`.
fn recv(fd: RawFd, n: u32, flags: libc::c_int) -> Outcome {
    let mut buf = vec![0u8; n as usize];
    // SAFETY: buf is valid for n bytes.
    let r = unsafe { libc::recv(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), flags) };
    if r < 0 {
        Outcome::Err(Errno::last())
    } else if r == 0 && n == 0 {
        Outcome::Data(Vec::new())
    } else if r == 0 {
        Outcome::Eof
    } else {
        buf.truncate(r as usize);
        Outcome::Data(buf)
    }
}

/// Zero-timeout poll of one descriptor.
fn poll_one(fd: RawFd) -> PollSet {
    let mut pfd = libc::pollfd {
        fd,
        events: sys::POLL_ASK,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut pfd, 1, 0) };
    sys::revents_to_set(pfd.revents)
}

/// One case: the transport, how the world starts, and the steps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    /// The transport to run over.
    pub transport: Transport,
    /// How the world starts.
    #[serde(default)]
    pub start: Start,
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// Buffer sizes set on every socket before it connects.
    #[serde(default, skip_serializing_if = "Bufs::is_default")]
    pub bufs: Bufs,
    /// Whether segments arrive at once or wait for `deliver` steps (absent in JSON
    /// written before held mode existed: instant).
    #[serde(default, skip_serializing_if = "Network::is_instant")]
    pub network: Network,
    /// Keep every packet's bytes and what became of it ([`KernelRun::packets`], for
    /// `--pcap`); executors that cannot capture leave that empty. Not sent to a
    /// worker: only in-process stacks capture.
    #[serde(skip)]
    pub capture: bool,
}

impl Case {
    /// A case.
    pub fn new(transport: Transport, start: Start, steps: Vec<Step>) -> Case {
        Case {
            transport,
            start,
            steps,
            bufs: Bufs::default(),
            network: Network::Instant,
            capture: false,
        }
    }

    /// The same case, its packets kept (see [`Case::capture`]).
    pub fn capturing(mut self) -> Case {
        self.capture = true;
        self
    }

    /// The same case on `network`.
    pub fn with_network(mut self, network: Network) -> Case {
        self.network = network;
        self
    }

    /// The same case with buffer sizes set before connecting.
    pub fn with_bufs(mut self, bufs: Bufs) -> Case {
        self.bufs = bufs;
        self
    }

    /// The longest the case may legitimately take beyond its calls: every `sleep`,
    /// and every close that may linger (at most its `linger N` seconds).
    pub fn time_bound(&self) -> Duration {
        let mut ms: u64 = 0;
        let mut linger: u64 = 0;
        for s in &self.steps {
            match s {
                Step::Sleep { ms: m } => ms += u64::from(*m),
                Step::Call {
                    op: Op::Linger(n), ..
                } => linger = linger.max(u64::from(*n) * 1000),
                Step::Call { op, .. } if op.closes() => ms += linger,
                _ => {}
            }
        }
        Duration::from_millis(ms)
    }
}

/// What the kernel did in one case: each step's result and every socket afterwards.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KernelRun {
    /// Per step: the result and the observation after it.
    pub steps: Vec<(StepResult, Observation)>,
    /// Wall time from the created world to the last observation.
    pub elapsed: Duration,
    /// Of `elapsed`, the time spent sleeping in `sleep` steps.
    #[serde(default)]
    pub slept: Duration,
    /// Of `elapsed`, the time spent waiting for observations to settle after each
    /// step (zero where the executor does not settle: see [`worker::Settle`]).
    #[serde(default)]
    pub settle: Duration,
    /// Per step, under `network held`: every segment the stack sent during it, in
    /// order (empty where the executor does not capture segments).
    #[serde(default)]
    pub wire: Vec<Vec<crate::step::WireSeg>>,
    /// Under `network held`, when the case asked to capture: every packet, in the
    /// order things happened to it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packets: Vec<Packet>,
}

/// What happened to a packet on a held wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PacketEvent {
    /// The stack sent it; it waits in flight.
    Emitted,
    /// A step handed it to its receiver (the handshake's, before the first step).
    Delivered,
    /// A `drop` step threw it away.
    Dropped,
}

impl PacketEvent {
    /// The word for it in a capture's comments.
    pub fn name(self) -> &'static str {
        match self {
            PacketEvent::Emitted => "emitted",
            PacketEvent::Delivered => "delivered",
            PacketEvent::Dropped => "dropped",
        }
    }
}

/// One packet's moment on a held wire, as `--pcap` writes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Packet {
    /// The index of the step during which it happened; `None` before the first step
    /// (the handshake).
    pub step: Option<usize>,
    /// What happened to it.
    pub event: PacketEvent,
    /// Its name and numbers, as the comparison sees it.
    pub seg: crate::step::WireSeg,
    /// The IP packet (IPv4 or IPv6 header, TCP header, payload).
    pub bytes: Vec<u8>,
    /// When, from the start of the case.
    pub at: Duration,
}

/// The executor contract: something that can run a whole case on real sockets (the
/// host kernel in this process, or a worker in a sandbox). A whole case at a time, so
/// that a remote executor costs one round trip per case, not per step.
pub trait Executor {
    /// Runs `case` on fresh sockets, observing every socket after each step.
    fn run(&mut self, case: &Case) -> io::Result<KernelRun>;

    /// Runs `case` as bare calls: no observation, no SIGPIPE check. The benchmark's
    /// baseline.
    fn run_raw(&mut self, case: &Case) -> io::Result<()> {
        run_local_raw(case).map(|_| ())
    }

    /// Something outside the cases that may have changed their results (asked only
    /// when a case disagrees with the model); `None` when there is no such sign.
    fn interference(&mut self) -> Option<String> {
        None
    }

    /// Whether this executor's stack delivers on threads of its own, so observations
    /// are taken after a bounded settle and a slow delivery can outlast it.
    fn settles(&self) -> bool {
        false
    }
}

impl<T: Executor + ?Sized> Executor for Box<T> {
    fn run(&mut self, case: &Case) -> io::Result<KernelRun> {
        (**self).run(case)
    }
    fn interference(&mut self) -> Option<String> {
        (**self).interference()
    }
    fn settles(&self) -> bool {
        (**self).settles()
    }
    fn run_raw(&mut self, case: &Case) -> io::Result<()> {
        (**self).run_raw(case)
    }
}

/// The stacks closefuzz can run cases on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Stack {
    /// The host's kernel, in this process.
    Host,
    /// gVisor's netstack, in a `runsc` sandbox running `closefuzz worker`.
    Gvisor,
    /// The smoltcp crate, in this process (see [`smoltcp`]).
    Smoltcp,
    /// lwIP, in this process ([`lwip`]).
    Lwip,
    /// Linux 6.1 as User-mode Linux, running `closefuzz worker` as its init.
    Uml,
}

impl Stack {
    /// How each call is made, where the stack's API is not BSD sockets: a Markdown
    /// table (smoltcp's).
    pub fn call_table(self) -> Option<&'static str> {
        match self {
            Stack::Smoltcp => Some(smoltcp::CALL_TABLE),
            _ => None,
        }
    }

    /// How the stack is run, in a phrase for the tables.
    pub fn how_run(self) -> &'static str {
        match self {
            Stack::Host => "the host's kernel, sockets made in the closefuzz process",
            Stack::Gvisor => {
                "`runsc --network=none do closefuzz worker`: the worker inside a gVisor sandbox, one case per JSON line over its stdin and stdout"
            }
            Stack::Smoltcp => {
                "the smoltcp crate in the closefuzz process: one interface on a device of closefuzz's own (a loopback under network instant, one queue per direction that steps deliver from under network held), polled after every step until nothing moves, time advanced only by sleep steps"
            }
            Stack::Uml => {
                "Debian's user-mode-linux (Linux 6.1 as an ordinary process, no KVM) booted with the host's root read-only and closefuzz as its init, serving one case per JSON line over its console"
            }
            Stack::Lwip => {
                "Debian's liblwip in the closefuzz process through a C shim: one netif looping back its own addresses, polled until its loop queue is empty after every step, lwIP's clock advanced only by sleep steps"
            }
        }
    }
}

/// The executor for `stack`. `worker` is the command that serves cases inside a
/// sandbox (`closefuzz worker`), used by sandboxed stacks only.
pub fn executor_for(
    stack: Stack,
    worker: &[std::ffi::OsString],
) -> io::Result<Box<dyn Executor + Send>> {
    Ok(match stack {
        Stack::Host => Box::new(Local),
        Stack::Gvisor => Box::new(gvisor::Gvisor::with_worker(worker.to_vec())?),
        Stack::Smoltcp => Box::new(smoltcp::Smoltcp::new()),
        Stack::Lwip => Box::new(lwip::Lwip::new()?),
        Stack::Uml => Box::new(uml::Uml::with_worker(worker.to_vec())?),
    })
}

/// The host kernel, in this thread.
#[derive(Default, Clone, Copy, Debug)]
pub struct Local;

impl Executor for Local {
    fn run(&mut self, case: &Case) -> io::Result<KernelRun> {
        run_local(case)
    }

    fn interference(&mut self) -> Option<String> {
        netns::interference()
    }
}

/// Runs `case` on fresh local sockets, observing after each step (the host kernel
/// delivers inside each call, so nothing needs to settle).
pub fn run_local(case: &Case) -> io::Result<KernelRun> {
    worker::run_settled(case, worker::Settle::NONE)
}

/// Runs `case` as bare calls on fresh local sockets; returns the time they took.
pub fn run_local_raw(case: &Case) -> io::Result<Duration> {
    let start = Instant::now();
    let mut w = Sockets::start_on(case.transport, case.start, case.bufs, case.network)?;
    for &s in &case.steps {
        w.call_raw(s);
    }
    drop(w);
    Ok(start.elapsed())
}
