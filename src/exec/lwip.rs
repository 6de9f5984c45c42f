//! lwIP 2.1.3 (Debian's `liblwip-dev`), in this process: `--platform lwip`.
//!
//! lwIP runs as the library's own tcpip thread with one network interface, 10.0.0.1/24
//! and fd00::1, whose link drops everything: a connection to the interface's own
//! address is looped back by lwIP itself (`netif_loop_output`). Sockets are lwIP's
//! (`lwip_socket`, `lwip_send`, ...): its own descriptor space and its own errno, mapped
//! name by name to closefuzz's [`Errno`](crate::step::Errno) (the table in `lwip_shim.c` and `errno_of`).
//! lwIP raises no signals, so no step raises SIGPIPE. The C side, `lwip_shim.c`, is
//! built by build.rs against /usr/include/lwip; without it `--platform lwip` says
//! "lwIP not found: apt-get install liblwip-dev".
//!
//! - Transports: tcp4 and tcp6 (the Debian build has IPv6); no Unix sockets.
//! - Starts: connected (the listener is closed after accept) and listening (backlog
//!   [`BACKLOG`](crate::step::BACKLOG)). Every socket is non-blocking and has TCP_NODELAY. lwIP has no
//!   TCP_LINGER2: an orphan in FIN_WAIT_2 waits TCP_FIN_WAIT_TIMEOUT (20 s).
//! - Every call is asked as a program written for Linux would ask it: SIOCOUTQ by
//!   Linux's number (lwIP answers ENOSYS), MSG_OOB and MSG_NOSIGNAL as flags.
//! - `state` and the observed states: lwIP has no TCP_INFO, so the state is the one
//!   lwIP's pcb holds for the socket's connection (its netconn's pcb, or the pcb with
//!   the connection's ports in lwIP's active and TIME_WAIT lists once the netconn has
//!   let it go, as sock_diag finds a Linux orphan), CLOSE when there is none; on a closed
//!   descriptor, that pcb's state or `gone`.
//! - Settling: after each step the shim delivers every looped-back segment, and what
//!   answers them, itself (`netif_poll` under lwIP's core lock) until the loop queue is
//!   empty: deterministic, no waiting.
//! - Time is virtual: lwIP's clock (`sys_now`) is the shim's, and moves only in a
//!   `sleep` step, which runs lwIP's timers in 10 ms steps (no real time passes). So no
//!   timer (the 250 ms tcp_fasttmr's delayed ACK, retransmission, TIME_WAIT) fires
//!   between two steps, exactly as the model assumes.
//! - lwIP is one per process: cases are serialized on a lock, and after each case every
//!   descriptor is closed, every connection left (orphans, TIME_WAIT) aborted, and the
//!   count of lwIP's pcbs checked to be zero.

use super::{Case, Executor, KernelRun};
use std::io;

/// TCP_SND_BUF and TCP_WND of Debian's lwipopts.h (both 0xFFFF): what a socket's send
/// buffer and its receive window hold.
pub const TCP_SND_BUF: u32 = 0xFFFF;

/// The one line `--platform lwip` prints where lwIP is not built in.
pub const NOT_FOUND: &str = "lwIP not found: apt-get install liblwip-dev";

/// lwIP in this process.
#[derive(Debug)]
pub struct Lwip {
    _started: (),
}

impl Lwip {
    /// Starts lwIP (once per process) and checks that its clock is closefuzz's.
    pub fn new() -> io::Result<Lwip> {
        imp::start()?;
        Ok(Lwip { _started: () })
    }
}

impl Executor for Lwip {
    fn run(&mut self, case: &Case) -> io::Result<KernelRun> {
        imp::run(case, true).map(|r| r.expect("observed run"))
    }

    fn run_raw(&mut self, case: &Case) -> io::Result<()> {
        imp::run(case, false).map(|_| ())
    }
}

/// lwIP's errno, as the shim codes it, by name (the shim's `cf_code` table).
#[cfg_attr(not(closefuzz_lwip), allow(dead_code))]
fn errno_of(code: std::ffi::c_long) -> crate::step::Errno {
    use crate::step::Errno;
    match code {
        2 => Errno::EPIPE,
        3 => Errno::ECONNRESET,
        4 => Errno::ENOTCONN,
        5 => Errno::EAGAIN,
        6 => Errno::EBADF,
        7 => Errno::EINVAL,
        8 => Errno::ECONNREFUSED,
        9 => Errno::ECONNABORTED,
        10 => Errno::ETIMEDOUT,
        11 => Errno::EOPNOTSUPP,
        12 => Errno::EISCONN,
        13 => Errno::EINPROGRESS,
        14 => Errno::EALREADY,
        15 => Errno::EHOSTUNREACH,
        16 => Errno::EIO,
        17 => Errno::ENOBUFS,
        18 => Errno::ENOMEM,
        19 => Errno::ENOPROTOOPT,
        20 => Errno::EADDRINUSE,
        21 => Errno::ENOSYS,
        22 => Errno::ENFILE,
        23 => Errno::EMSGSIZE,
        24 => Errno::ENOTSOCK,
        25 => Errno::EAFNOSUPPORT,
        26 => Errno::EADDRNOTAVAIL,
        27 => Errno::ENETUNREACH,
        28 => Errno::ESHUTDOWN,
        // An errno the table does not name: a foreign one, so it equals no prediction.
        _ => Errno::from_any_name("ELWIPUNNAMED").unwrap_or(Errno::EIO),
    }
}

#[cfg(not(closefuzz_lwip))]
mod imp {
    use super::{Case, KernelRun, NOT_FOUND};
    use std::io;

    pub(super) fn start() -> io::Result<()> {
        Err(io::Error::new(io::ErrorKind::Unsupported, NOT_FOUND))
    }

    pub(super) fn run(_: &Case, _: bool) -> io::Result<Option<KernelRun>> {
        Err(io::Error::new(io::ErrorKind::Unsupported, NOT_FOUND))
    }
}

#[cfg(closefuzz_lwip)]
mod imp {
    use super::{errno_of, Case, KernelRun};
    use crate::step::{
        pattern, Bufs, EndView, Observation, Op, Outcome, PollSet, Shut, Sock, Start, StateSet,
        Step, StepResult, TcpState, BACKLOG,
    };
    use std::io;
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    mod ffi {
        use std::ffi::{c_int, c_long, c_void};
        extern "C" {
            pub fn cf_init() -> c_int;
            pub fn cf_settle() -> c_int;
            pub fn cf_advance(ms: u32) -> c_int;
            pub fn cf_socket(v6: c_int) -> c_long;
            pub fn cf_listen(fd: c_int, v6: c_int, backlog: c_int, port: *mut u16) -> c_long;
            pub fn cf_connect(fd: c_int, v6: c_int, port: u16) -> c_long;
            pub fn cf_accept(fd: c_int) -> c_long;
            pub fn cf_send(fd: c_int, buf: *const c_void, n: usize, flags: c_int) -> c_long;
            pub fn cf_recv(
                fd: c_int,
                buf: *mut c_void,
                n: usize,
                peek: c_int,
                oob: c_int,
            ) -> c_long;
            pub fn cf_shutdown(fd: c_int, rd: c_int, wr: c_int) -> c_long;
            pub fn cf_close(fd: c_int) -> c_long;
            pub fn cf_linger(fd: c_int, on: c_int, secs: c_int) -> c_long;
            pub fn cf_nonblocking(fd: c_int) -> c_long;
            pub fn cf_nodelay(fd: c_int) -> c_long;
            pub fn cf_setbuf(fd: c_int, rcv: c_int, n: c_int) -> c_long;
            pub fn cf_so_error(fd: c_int, code: *mut c_int) -> c_long;
            pub fn cf_inq(fd: c_int, n: *mut c_int) -> c_long;
            pub fn cf_outq(fd: c_int, n: *mut c_int) -> c_long;
            pub fn cf_poll(fd: c_int) -> c_long;
            pub fn cf_tcp_state(
                fd: c_int,
                state: *mut c_int,
                local: *mut u16,
                remote: *mut u16,
            ) -> c_long;
            pub fn cf_tuple_state(local: u16, remote: u16) -> c_int;
            pub fn cf_pcbs() -> c_int;
            pub fn cf_abort_all() -> c_int;
        }
    }

    /// lwIP is one per process (one tcpip thread, one interface, global pcb lists):
    /// one case at a time.
    static LWIP: Mutex<()> = Mutex::new(());

    pub(super) fn start() -> io::Result<()> {
        // SAFETY: cf_init takes no arguments and starts lwIP once (pthread_once).
        match unsafe { ffi::cf_init() } {
            0 => Ok(()),
            -2 => Err(io::Error::other(
                "lwIP does not use closefuzz's clock (sys_now is not exported by this binary)",
            )),
            -3 => Err(io::Error::other(
                "lwIP would wake its tcpip thread for every looped-back segment \
                 (tcpip_try_callback is not exported by this binary)",
            )),
            _ => Err(io::Error::other("lwIP could not start its interface")),
        }
    }

    /// A result: the count, or lwIP's errno.
    fn res(r: std::ffi::c_long) -> Result<usize, Outcome> {
        if r < 0 {
            Err(Outcome::Err(errno_of(-r)))
        } else {
            Ok(r as usize)
        }
    }

    fn io_err(what: &str, r: std::ffi::c_long) -> io::Error {
        io::Error::other(format!("lwIP {what}: {}", errno_of(-r).name()))
    }

    fn check(what: &str, r: std::ffi::c_long) -> io::Result<std::ffi::c_long> {
        if r < 0 {
            Err(io_err(what, r))
        } else {
            Ok(r)
        }
    }

    fn settle() -> io::Result<()> {
        // SAFETY: no arguments; takes lwIP's core lock itself.
        if unsafe { ffi::cf_settle() } < 0 {
            return Err(io::Error::other("lwIP: looped-back traffic did not stop"));
        }
        Ok(())
    }

    /// One case's sockets, by name.
    struct World {
        v6: i32,
        fds: [Option<i32>; 5],
        made: [bool; 5],
        sent: [u64; 5],
        /// The listener's port (`start listening`).
        port: Option<u16>,
        /// Each socket's connection, once it had one: (local port, remote port).
        ports: [Option<(u16, u16)>; 5],
        bufs: Bufs,
    }

    fn setup(fd: i32, bufs: &Bufs) -> io::Result<()> {
        // SAFETY: plain calls on a descriptor of lwIP's.
        unsafe {
            check("fcntl O_NONBLOCK", ffi::cf_nonblocking(fd))?;
            check("TCP_NODELAY", ffi::cf_nodelay(fd))?;
        }
        apply_bufs(fd, bufs);
        Ok(())
    }

    fn apply_bufs(fd: i32, bufs: &Bufs) {
        // A size lwIP refuses (SO_SNDBUF: ENOPROTOOPT) is what the `sndbuf` call
        // answers; the header only asks.
        // SAFETY: plain calls on a descriptor of lwIP's.
        unsafe {
            if let Some(n) = bufs.rcvbuf {
                ffi::cf_setbuf(fd, 1, i32::try_from(n).unwrap_or(i32::MAX));
            }
            if let Some(n) = bufs.sndbuf {
                ffi::cf_setbuf(fd, 0, i32::try_from(n).unwrap_or(i32::MAX));
            }
        }
    }

    impl World {
        fn new(v6: bool, bufs: Bufs) -> World {
            World {
                v6: i32::from(v6),
                fds: [None; 5],
                made: [false; 5],
                sent: [0; 5],
                port: None,
                ports: [None; 5],
                bufs,
            }
        }

        fn put(&mut self, s: Sock, fd: i32) {
            self.fds[s.index()] = Some(fd);
            self.made[s.index()] = true;
        }

        fn socket(&mut self) -> io::Result<i32> {
            // SAFETY: no pointers.
            let fd = check("socket", unsafe { ffi::cf_socket(self.v6) })? as i32;
            Ok(fd)
        }

        /// Makes a listener on an ephemeral port; returns it and the port.
        fn listener(&mut self, backlog: i32) -> io::Result<(i32, u16)> {
            let l = self.socket()?;
            let mut port = 0u16;
            // SAFETY: port is valid for writing.
            if let Err(e) = check("listen", unsafe {
                ffi::cf_listen(l, self.v6, backlog, &mut port)
            }) {
                // SAFETY: our descriptor, given up once.
                unsafe { ffi::cf_close(l) };
                return Err(e);
            }
            Ok((l, port))
        }

        fn start(&mut self, start: Start) -> io::Result<()> {
            match start {
                Start::Connected => {
                    let (l, port) = self.listener(1)?;
                    self.put(Sock::L, l);
                    apply_bufs(l, &self.bufs);
                    let a = self.socket()?;
                    self.put(Sock::A, a);
                    setup(a, &self.bufs)?;
                    // SAFETY: plain calls on lwIP's descriptors.
                    let r = unsafe { ffi::cf_connect(a, self.v6, port) };
                    if r < 0 && errno_of(-r) != crate::step::Errno::EINPROGRESS {
                        return Err(io_err("connect", r));
                    }
                    settle()?;
                    // SAFETY: as above.
                    let b = check("accept", unsafe { ffi::cf_accept(l) })? as i32;
                    self.put(Sock::B, b);
                    setup(b, &self.bufs)?;
                    // SAFETY: as above.
                    check("close listener", unsafe { ffi::cf_close(l) })?;
                    self.fds[Sock::L.index()] = None;
                    self.made[Sock::L.index()] = false;
                    settle()?;
                    self.note_ports(Sock::A);
                    self.note_ports(Sock::B);
                }
                Start::Listening => {
                    let (l, port) = self.listener(BACKLOG)?;
                    self.put(Sock::L, l);
                    // No TCP_NODELAY: a listen pcb has no such flag (EINVAL), and lwIP's
                    // accepted pcbs start without it whatever the listener had: each
                    // accepted socket gets it at accept.
                    // SAFETY: a plain call on the listener.
                    check("fcntl O_NONBLOCK", unsafe { ffi::cf_nonblocking(l) })?;
                    apply_bufs(l, &self.bufs);
                    self.port = Some(port);
                    for s in [Sock::A, Sock::C] {
                        let fd = self.socket()?;
                        self.put(s, fd);
                        setup(fd, &self.bufs)?;
                    }
                }
            }
            Ok(())
        }

        /// The state lwIP holds for `s`'s connection, and remembers its ports.
        fn state_of(&mut self, s: Sock, fd: i32) -> Option<TcpState> {
            let (mut st, mut local, mut remote) = (0, 0u16, 0u16);
            // SAFETY: the three pointers are valid for writing.
            if unsafe { ffi::cf_tcp_state(fd, &mut st, &mut local, &mut remote) } < 0 {
                return None;
            }
            if local != 0 && remote != 0 {
                self.ports[s.index()] = Some((local, remote));
            }
            if st == 0 {
                // The netconn let its pcb go (a full close or shutdown rdwr hands it to
                // tcp_close); the connection may still live on.
                if let Some((l, r)) = self.ports[s.index()] {
                    // SAFETY: no pointers.
                    let t = unsafe { ffi::cf_tuple_state(l, r) };
                    if t >= 0 {
                        return lwip_state(t);
                    }
                }
            }
            lwip_state(st)
        }

        fn note_ports(&mut self, s: Sock) {
            if let Some(fd) = self.fds[s.index()] {
                self.state_of(s, fd);
            }
        }

        fn observe(&mut self) -> Observation {
            let mut out = [EndView::Absent; 5];
            for s in Sock::ALL {
                out[s.index()] = match self.fds[s.index()] {
                    None if self.made[s.index()] => EndView::Closed,
                    None => EndView::Absent,
                    Some(fd) => EndView::Open {
                        state: self.state_of(s, fd).map(StateSet::one),
                        poll: poll(fd),
                    },
                };
            }
            out
        }

        fn step(&mut self, step: Step) -> Outcome {
            match step {
                Step::Sleep { ms } => {
                    // SAFETY: no pointers.
                    if unsafe { ffi::cf_advance(ms) } < 0 {
                        return Outcome::Err(crate::step::Errno::EIO);
                    }
                    Outcome::Ok
                }
                Step::Call { sock, op } => self.call(sock, op),
                // lwIP's segments cannot be held here: cases under `network held` are
                // refused before they run (Surface::networks).
                _ => Outcome::NotApplicable,
            }
        }

        fn call(&mut self, sock: Sock, op: Op) -> Outcome {
            if op == Op::Accept {
                return self.accept(sock);
            }
            let i = sock.index();
            let Some(fd) = self.fds[i] else {
                if op == Op::State && self.made[i] {
                    return match self.ports[i] {
                        // SAFETY: no pointers.
                        Some((l, r)) => match unsafe { ffi::cf_tuple_state(l, r) } {
                            t if t >= 0 => lwip_state(t)
                                .map(|s| Outcome::State(s.into()))
                                .unwrap_or(Outcome::Gone),
                            _ => Outcome::Gone,
                        },
                        None => Outcome::Gone,
                    };
                }
                return Outcome::Closed;
            };
            let ok = |r| res(r).map(|_| Outcome::Ok).unwrap_or_else(|e| e);
            // SAFETY (every call below): lwIP calls on a descriptor of lwIP's, with
            // buffers valid for the lengths given.
            match op {
                Op::Write(n) => self.send(sock, fd, n, 0),
                Op::WriteNoSignal(n) => self.send(sock, fd, n, 2),
                Op::WriteOob(n) => self.send(sock, fd, n, 1),
                Op::Read(n) => recv(fd, n, false, false),
                Op::Peek(n) => recv(fd, n, true, false),
                Op::ReadOob(n) => recv(fd, n, false, true),
                Op::Shutdown(how) => ok(unsafe {
                    ffi::cf_shutdown(fd, i32::from(how != Shut::Wr), i32::from(how != Shut::Rd))
                }),
                Op::Close => self.close(sock, fd),
                Op::Abort => {
                    let r = unsafe { ffi::cf_linger(fd, 1, 0) };
                    let closed = self.close(sock, fd);
                    match res(r) {
                        Err(e) => e,
                        Ok(_) => closed,
                    }
                }
                Op::Linger(secs) => {
                    ok(unsafe { ffi::cf_linger(fd, 1, i32::try_from(secs).unwrap_or(i32::MAX)) })
                }
                Op::Poll => Outcome::Poll(poll(fd)),
                Op::Error => {
                    let mut code = 0;
                    match res(unsafe { ffi::cf_so_error(fd, &mut code) }) {
                        Err(e) => e,
                        Ok(_) if code == 0 => Outcome::SockError(None),
                        Ok(_) => Outcome::SockError(Some(errno_of(std::ffi::c_long::from(code)))),
                    }
                }
                Op::State => match self.state_of(sock, fd) {
                    Some(s) => Outcome::State(s.into()),
                    None => Outcome::Err(crate::step::Errno::EBADF),
                },
                Op::Inq => {
                    let mut n = 0;
                    match res(unsafe { ffi::cf_inq(fd, &mut n) }) {
                        Err(e) => e,
                        Ok(_) => Outcome::Queued(n.max(0) as usize),
                    }
                }
                Op::Outq => {
                    let mut n = 0;
                    match res(unsafe { ffi::cf_outq(fd, &mut n) }) {
                        Err(e) => e,
                        Ok(_) => Outcome::Queued(n.max(0) as usize),
                    }
                }
                Op::RcvBuf(n) => {
                    ok(unsafe { ffi::cf_setbuf(fd, 1, i32::try_from(n).unwrap_or(i32::MAX)) })
                }
                Op::SndBuf(n) => {
                    ok(unsafe { ffi::cf_setbuf(fd, 0, i32::try_from(n).unwrap_or(i32::MAX)) })
                }
                Op::Connect => {
                    // Under `start connected` nobody listens: a port of our address
                    // that no listener has (lwIP answers the SYN with RST).
                    let port = self.port.unwrap_or(1);
                    ok(unsafe { ffi::cf_connect(fd, self.v6, port) })
                }
                Op::Accept => unreachable!("handled above"),
            }
        }

        fn send(&mut self, sock: Sock, fd: i32, n: u32, flags: i32) -> Outcome {
            let i = sock.index();
            let buf = pattern(sock, self.sent[i], n as usize);
            // SAFETY: buf is valid for its length.
            match res(unsafe { ffi::cf_send(fd, buf.as_ptr().cast(), buf.len(), flags) }) {
                Err(e) => e,
                Ok(w) => {
                    self.sent[i] += w as u64;
                    Outcome::Wrote(w)
                }
            }
        }

        fn accept(&mut self, sock: Sock) -> Outcome {
            let Some(l) = self.fds[Sock::L.index()] else {
                return Outcome::Closed;
            };
            if self.made[sock.index()] {
                return Outcome::NotApplicable;
            }
            // SAFETY: a plain call on the listener.
            match res(unsafe { ffi::cf_accept(l) }) {
                Err(e) => e,
                Ok(fd) => {
                    let fd = fd as i32;
                    self.put(sock, fd);
                    let _ = setup(fd, &self.bufs);
                    self.note_ports(sock);
                    Outcome::Ok
                }
            }
        }

        fn close(&mut self, sock: Sock, fd: i32) -> Outcome {
            self.note_ports(sock);
            // SAFETY: our descriptor.
            match res(unsafe { ffi::cf_close(fd) }) {
                // lwIP keeps the descriptor when close fails (a lingering close of a
                // non-blocking socket with unacknowledged data: EWOULDBLOCK).
                Err(e) => e,
                Ok(_) => {
                    self.fds[sock.index()] = None;
                    Outcome::Ok
                }
            }
        }

        /// Gives back everything the case holds: every descriptor, then every
        /// connection lwIP still keeps; checks that no pcb is left.
        fn finish(&mut self) -> io::Result<()> {
            for s in Sock::ALL {
                if let Some(fd) = self.fds[s.index()].take() {
                    // SO_LINGER off: the close cannot refuse (EWOULDBLOCK).
                    // SAFETY: our descriptor, given up once.
                    unsafe {
                        ffi::cf_linger(fd, 0, 0);
                        ffi::cf_close(fd);
                    }
                }
            }
            settle()?;
            // SAFETY: no arguments.
            unsafe { ffi::cf_abort_all() };
            settle()?;
            // SAFETY: no arguments.
            let left = unsafe { ffi::cf_pcbs() };
            if left != 0 {
                return Err(io::Error::other(format!(
                    "lwIP still holds {left} pcbs after the case"
                )));
            }
            Ok(())
        }
    }

    /// lwIP's `enum tcp_state` (tcpbase.h: CLOSED = 0 .. TIME_WAIT = 10) by name.
    fn lwip_state(n: i32) -> Option<TcpState> {
        Some(match n {
            0 => TcpState::Close,
            1 => TcpState::Listen,
            2 => TcpState::SynSent,
            3 => TcpState::SynRecv,
            4 => TcpState::Established,
            5 => TcpState::FinWait1,
            6 => TcpState::FinWait2,
            7 => TcpState::CloseWait,
            8 => TcpState::Closing,
            9 => TcpState::LastAck,
            10 => TcpState::TimeWait,
            _ => return None,
        })
    }

    fn poll(fd: i32) -> PollSet {
        // SAFETY: a plain call.
        let r = unsafe { ffi::cf_poll(fd) };
        let r = r.max(0);
        PollSet::NONE
            .with_if(PollSet::IN, r & 1 != 0)
            .with_if(PollSet::OUT, r & 2 != 0)
            .with_if(PollSet::ERR, r & 4 != 0)
            .with_if(PollSet::HUP, r & 8 != 0)
            .with_if(PollSet::RDHUP, r & 16 != 0)
    }

    fn recv(fd: i32, n: u32, peek: bool, oob: bool) -> Outcome {
        let mut buf = vec![0u8; n as usize];
        // SAFETY: buf is valid for its length.
        let r = unsafe {
            ffi::cf_recv(
                fd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                i32::from(peek),
                i32::from(oob),
            )
        };
        match res(r) {
            Err(e) => e,
            Ok(0) if n == 0 => Outcome::Data(Vec::new()),
            Ok(0) => Outcome::Eof,
            Ok(k) => {
                buf.truncate(k);
                Outcome::Data(buf)
            }
        }
    }

    /// Runs `case`; with `observe`, observes every socket after each step.
    pub(super) fn run(case: &Case, observe: bool) -> io::Result<Option<KernelRun>> {
        if !case.transport.is_tcp() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("lwIP runs TCP only, not {}", case.transport),
            ));
        }
        let _one = LWIP.lock().unwrap_or_else(|p| p.into_inner());
        let v6 = case.transport == crate::transport::Transport::Tcp6;
        let mut w = World::new(v6, case.bufs);
        let started = w.start(case.start);
        let result = started.and_then(|()| {
            let start = Instant::now();
            let mut slept = Duration::ZERO;
            let mut steps = Vec::with_capacity(if observe { case.steps.len() } else { 0 });
            for &step in &case.steps {
                let t = Instant::now();
                let outcome = w.step(step);
                settle()?;
                if matches!(step, Step::Sleep { .. }) {
                    slept += t.elapsed();
                }
                if observe {
                    steps.push((StepResult::plain(outcome), w.observe()));
                }
            }
            Ok(observe.then(|| KernelRun {
                packets: vec![],
                steps,
                elapsed: start.elapsed(),
                slept,
                settle: Duration::ZERO,
                wire: vec![],
            }))
        });
        // Cleaned up whatever happened, so the next case starts from nothing.
        let finished = w.finish();
        let run = result?;
        finished?;
        Ok(run)
    }
}
