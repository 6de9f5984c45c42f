//! The executor: real sockets on the host kernel.
//!
//! [`Pair::connect`] makes a fresh connected pair (end `a` connects, end `b` is
//! accepted, the listener is closed at once), [`Pair::step`] issues one call, and
//! [`Pair::observe`] looks at both ends without changing them. Every descriptor is
//! non-blocking and every wait has a bound, so nothing here can hang.
//!
//! SIGPIPE is blocked in the executing thread (see [`signals`]) so that a write to
//! a broken connection raises it without killing the process; each step reports
//! whether it did.

pub mod gvisor;
pub mod netns;
pub mod signals;
mod sys;
pub mod worker;

use crate::step::{
    pattern, End, EndView, Errno, Observation, Op, Outcome, PollSet, Shut, Step, StepResult,
};
use crate::transport::Transport;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

/// How long creating a pair may wait for the accept, at most.
const ACCEPT_TIMEOUT_MS: i32 = 2000;

/// A connected pair of real sockets, one per [`End`].
pub struct Pair {
    transport: Transport,
    fds: [Option<OwnedFd>; 2],
    /// Bytes each end has written so far: where its pattern continues.
    sent: [u64; 2],
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

impl Pair {
    /// Creates a fresh connected pair over `transport`.
    pub fn connect(transport: Transport) -> io::Result<Pair> {
        netns::before_pair();
        signals::block_sigpipe_in_this_thread();
        // A SIGPIPE left pending by earlier unchecked calls in this thread (the
        // benchmark's bare loop) must not be blamed on this case's first step.
        signals::take_sigpipe();
        let (listener, addr) = sys::listener(transport)?;
        let a = socket(addr.family(), sys::sock_type(transport))?;
        // A blocking connect: on loopback and Unix sockets the handshake completes
        // inside the call, and it leaves the socket in the plain connected state
        // rather than the "connect in progress" one a non-blocking connect leaves.
        addr.connect(a.as_raw_fd())?;
        wait_readable(listener.as_raw_fd(), ACCEPT_TIMEOUT_MS)?;
        let b = sys::accept_nonblocking(listener.as_raw_fd())?;
        drop(listener);
        set_nonblocking(a.as_raw_fd())?;
        if transport.is_tcp() {
            // Nagle's algorithm holds a small write back while an earlier small
            // segment is unacknowledged, and Linux delays ACKs by a timer (40 ms at
            // least) once a connection looks interactive: with Nagle on, whether a
            // write reaches the peer before the next step depends on a clock. closefuzz
            // studies close orderings, not send timing, so every write goes out at once.
            for fd in [a.as_raw_fd(), b.as_raw_fd()] {
                set_socket_int_option(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1)?;
            }
        }
        Ok(Pair {
            transport,
            fds: [Some(a), Some(b)],
            sent: [0, 0],
        })
    }

    /// A Unix pair made by socketpair(2) instead of listen/connect/accept: `a` is the
    /// first descriptor. Both non-blocking. Used to check that the two ways of making a
    /// Unix pair behave alike (tests/exec.rs).
    pub fn socketpair(transport: Transport) -> io::Result<Pair> {
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
        Ok(Pair {
            transport,
            fds: [Some(a), Some(b)],
            sent: [0, 0],
        })
    }

    /// The transport this pair was made over.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// Whether `end`'s descriptor is still open.
    pub fn is_open(&self, end: End) -> bool {
        self.fds[end.index()].is_some()
    }

    /// Runs one step on the real socket and reports its result.
    pub fn step(&mut self, step: Step) -> StepResult {
        let outcome = self.call(step);
        let sigpipe = signals::take_sigpipe();
        StepResult { outcome, sigpipe }
    }

    /// The bare call, with no observation and no SIGPIPE check: the baseline the
    /// benchmark compares the full loop against.
    pub fn call_raw(&mut self, step: Step) {
        let _ = self.call(step);
    }

    fn call(&mut self, step: Step) -> Outcome {
        let i = step.end.index();
        let Some(fd) = self.fds[i].as_ref().map(|f| f.as_raw_fd()) else {
            return Outcome::Closed;
        };
        match step.op {
            Op::Write(n) => {
                let buf = pattern(step.end, self.sent[i], n as usize);
                // SAFETY: buf is valid for n bytes. Flags are 0: no MSG_NOSIGNAL.
                let r =
                    unsafe { libc::send(fd, buf.as_ptr() as *const libc::c_void, buf.len(), 0) };
                if r < 0 {
                    Outcome::Err(Errno::last())
                } else {
                    self.sent[i] += r as u64;
                    Outcome::Wrote(r as usize)
                }
            }
            Op::Read(n) => {
                let mut buf = vec![0u8; n as usize];
                // SAFETY: buf is valid for n bytes.
                let r =
                    unsafe { libc::recv(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0) };
                if r < 0 {
                    Outcome::Err(Errno::last())
                } else if r == 0 {
                    Outcome::Eof
                } else {
                    buf.truncate(r as usize);
                    Outcome::Data(buf)
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
            Op::Close => self.close(step.end),
            Op::Abort => {
                let linger = libc::linger {
                    l_onoff: 1,
                    l_linger: 0,
                };
                // SAFETY: a valid linger struct of the size given.
                let r = unsafe {
                    libc::setsockopt(
                        fd,
                        libc::SOL_SOCKET,
                        libc::SO_LINGER,
                        &linger as *const libc::linger as *const libc::c_void,
                        std::mem::size_of::<libc::linger>() as libc::socklen_t,
                    )
                };
                if r < 0 {
                    let e = Errno::last();
                    // The descriptor is given up either way, as `abort` promises.
                    self.close(step.end);
                    return Outcome::Err(e);
                }
                self.close(step.end)
            }
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
        }
    }

    fn close(&mut self, end: End) -> Outcome {
        let Some(fd) = self.fds[end.index()].take() else {
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

    /// Both ends' TCP state and poll revents. Uses only poll and getsockopt(TCP_INFO),
    /// neither of which changes a socket.
    pub fn observe(&self) -> Observation {
        let mut pfds: [libc::pollfd; 2] = [libc::pollfd {
            fd: -1,
            events: 0,
            revents: 0,
        }; 2];
        for end in End::BOTH {
            if let Some(fd) = &self.fds[end.index()] {
                pfds[end.index()].fd = fd.as_raw_fd();
                pfds[end.index()].events = sys::POLL_ASK;
            }
        }
        // SAFETY: two valid pollfds; a negative fd is ignored by poll.
        unsafe { libc::poll(pfds.as_mut_ptr(), 2, 0) };
        let view = |end: End| -> EndView {
            match &self.fds[end.index()] {
                None => EndView::Closed,
                Some(fd) => EndView::Open {
                    state: if self.transport.is_tcp() {
                        match sys::tcp_state(fd.as_raw_fd()) {
                            sys::StateReading::State(s) => Some(s),
                            _ => None,
                        }
                    } else {
                        None
                    },
                    poll: sys::revents_to_set(pfds[end.index()].revents),
                },
            }
        };
        [view(End::A), view(End::B)]
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
