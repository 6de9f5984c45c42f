//! The OS-specific corner of the executor: socket creation, addresses, TCP state.
//! Kept small and in one place, like `socket2`'s `sys` modules.

use crate::step::{Errno, PollSet, StateSet, TcpState};
use crate::transport::Transport;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};

use super::cvt;

/// The events the executor asks poll for. POLLRDHUP exists on Linux only.
#[cfg(target_os = "linux")]
pub const POLL_ASK: libc::c_short = libc::POLLIN | libc::POLLOUT | libc::POLLRDHUP;
#[cfg(not(target_os = "linux"))]
pub const POLL_ASK: libc::c_short = libc::POLLIN | libc::POLLOUT;

/// Maps poll's revents to the flags closefuzz reports.
pub fn revents_to_set(revents: libc::c_short) -> PollSet {
    let set = PollSet::NONE
        .with_if(PollSet::IN, revents & libc::POLLIN != 0)
        .with_if(PollSet::OUT, revents & libc::POLLOUT != 0)
        .with_if(PollSet::ERR, revents & libc::POLLERR != 0)
        .with_if(PollSet::HUP, revents & libc::POLLHUP != 0);
    #[cfg(target_os = "linux")]
    let set = set.with_if(PollSet::RDHUP, revents & libc::POLLRDHUP != 0);
    set
}

/// A socket with close-on-exec set, so a re-executed worker does not inherit it.
pub fn cloexec_socket(domain: libc::c_int, ty: libc::c_int) -> io::Result<OwnedFd> {
    #[cfg(target_os = "linux")]
    if let Some(s) = super::netns::helper_socket(domain, ty) {
        return s;
    }
    #[cfg(any(target_os = "linux", target_os = "freebsd"))]
    {
        // SAFETY: plain syscall; the result is checked before it is owned.
        let fd = cvt(unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, 0) })?;
        // SAFETY: fd was just created and is owned by nobody else.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
    #[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
    {
        // SAFETY: plain syscalls; the result is checked before it is owned.
        let fd = cvt(unsafe { libc::socket(domain, ty, 0) })?;
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) })?;
        Ok(owned)
    }
}

/// The socket type for a transport.
pub fn sock_type(t: Transport) -> libc::c_int {
    match t {
        Transport::Seqpacket => libc::SOCK_SEQPACKET,
        _ => libc::SOCK_STREAM,
    }
}

/// Where a listener listens.
pub enum Addr {
    /// An IPv4 or IPv6 socket address.
    Inet(socket2::SockAddr),
    /// A Unix socket address (abstract on Linux, a temporary path elsewhere).
    Unix(socket2::SockAddr, Option<std::path::PathBuf>),
}

impl Addr {
    /// The address family to create the connecting socket in.
    pub fn family(&self) -> libc::c_int {
        match self {
            Addr::Inet(a) => a.family() as libc::c_int,
            Addr::Unix(..) => libc::AF_UNIX,
        }
    }

    /// A blocking connect of `fd` to this address.
    pub fn connect(&self, fd: RawFd) -> io::Result<()> {
        // SAFETY: the address pointer and length come from a valid SockAddr.
        cvt(unsafe { libc::connect(fd, self.sockaddr().as_ptr(), self.sockaddr().len()) })?;
        Ok(())
    }

    /// The socket address.
    pub fn sockaddr(&self) -> &socket2::SockAddr {
        match self {
            Addr::Inet(a) | Addr::Unix(a, _) => a,
        }
    }
}

impl Drop for Addr {
    fn drop(&mut self) {
        if let Addr::Unix(_, Some(path)) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

static UNIX_COUNTER: AtomicU64 = AtomicU64::new(0);

fn unix_addr() -> io::Result<Addr> {
    let n = UNIX_COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = format!("closefuzz-{}-{}", std::process::id(), n);
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // An abstract address: nothing on disk, so nothing to clean up.
        let mut bytes = vec![0u8];
        bytes.extend_from_slice(name.as_bytes());
        let addr = abstract_unix(&bytes)?;
        Ok(Addr::Unix(addr, None))
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let path = std::env::temp_dir().join(name);
        let _ = std::fs::remove_file(&path);
        let addr = socket2::SockAddr::unix(&path)?;
        Ok(Addr::Unix(addr, Some(path)))
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn abstract_unix(name: &[u8]) -> io::Result<socket2::SockAddr> {
    // SAFETY: we fill a zeroed sockaddr_un within its bounds and report its length.
    unsafe {
        socket2::SockAddr::try_init(|storage, len| {
            let sun = storage as *mut libc::sockaddr_un;
            (*sun).sun_family = libc::AF_UNIX as libc::sa_family_t;
            let path = &mut (*sun).sun_path;
            if name.len() > path.len() {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, "name too long"));
            }
            for (d, s) in path.iter_mut().zip(name) {
                *d = *s as libc::c_char;
            }
            *len = (std::mem::size_of::<libc::sa_family_t>() + name.len()) as libc::socklen_t;
            Ok(())
        })
        .map(|(_, a)| a)
    }
}

/// A listening socket for `t` and the address to connect to.
pub fn listener(t: Transport, backlog: i32) -> io::Result<(OwnedFd, Addr)> {
    let addr = match t {
        Transport::Tcp4 => Addr::Inet(socket2::SockAddr::from(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            0,
        )))),
        Transport::Tcp6 => Addr::Inet(socket2::SockAddr::from(std::net::SocketAddr::from((
            std::net::Ipv6Addr::LOCALHOST,
            0,
        )))),
        Transport::Unix | Transport::Seqpacket => unix_addr()?,
    };
    let l = cloexec_socket(addr.family(), sock_type(t))?;
    let fd = l.as_raw_fd();
    if t.is_tcp() {
        // Lets bind reuse a port whose earlier connection lingers in TIME_WAIT, so
        // long campaigns do not run out of ports.
        super::set_socket_int_option(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    }
    match &addr {
        Addr::Inet(a) => bind_cycling_port(fd, a)?,
        Addr::Unix(a, _) => {
            // SAFETY: address from a valid SockAddr.
            cvt(unsafe { libc::bind(fd, a.as_ptr(), a.len()) })?;
        }
    }
    cvt(unsafe { libc::listen(fd, backlog) })?;
    let addr = match addr {
        Addr::Inet(_) => {
            // Read back the port the kernel chose.
            let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            // SAFETY: storage and len are valid for writing.
            cvt(unsafe {
                libc::getsockname(fd, &mut storage as *mut _ as *mut libc::sockaddr, &mut len)
            })?;
            // SAFETY: the kernel filled storage with len valid bytes.
            Addr::Inet(unsafe { socket2::SockAddr::new(storage, len) })
        }
        unix => unix,
    };
    Ok((l, addr))
}

/// Listener ports come from this range, below Linux's ephemeral range (32768-60999),
/// so they never collide with the ports `connect` picks.
const PORT_FIRST: u16 = 10000;
const PORT_COUNT: u16 = 22000;
static NEXT_PORT: AtomicU64 = AtomicU64::new(0);

/// Binds a TCP listener to the next port of a cycling range. bind(port 0) would do,
/// but it skips every port a TIME_WAIT socket still holds, and a long campaign leaves
/// tens of thousands of those (each for 60 s): the ephemeral range runs dry. An
/// explicit port with SO_REUSEADDR may be bound over TIME_WAIT sockets.
fn bind_cycling_port(fd: RawFd, addr: &socket2::SockAddr) -> io::Result<()> {
    let mut sa = addr.as_socket().expect("an inet address");
    // Processes start at different points of the range so they rarely meet.
    let offset = std::process::id() as u64 * 7919;
    let mut last = None;
    for _ in 0..64 {
        let n = (offset + NEXT_PORT.fetch_add(1, Ordering::Relaxed)) % PORT_COUNT as u64;
        sa.set_port(PORT_FIRST + n as u16);
        let a = socket2::SockAddr::from(sa);
        // SAFETY: address from a valid SockAddr.
        match cvt(unsafe { libc::bind(fd, a.as_ptr(), a.len()) }) {
            Ok(_) => return Ok(()),
            // Another listener (another thread or process) has this port: try the next.
            Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free listener port")))
}

/// Accepts one connection as a non-blocking, close-on-exec descriptor.
pub fn accept_nonblocking(listener: RawFd) -> io::Result<OwnedFd> {
    #[cfg(any(target_os = "linux", target_os = "freebsd"))]
    {
        // SAFETY: plain syscall; null address arguments are allowed.
        let fd = cvt(unsafe {
            libc::accept4(
                listener,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            )
        })?;
        // SAFETY: fd was just created.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
    #[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
    {
        // SAFETY: plain syscalls, results checked.
        let fd =
            cvt(unsafe { libc::accept(listener, std::ptr::null_mut(), std::ptr::null_mut()) })?;
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) })?;
        super::set_nonblocking(fd)?;
        Ok(owned)
    }
}

/// The result of asking for a TCP state.
pub enum StateReading {
    /// The state.
    State(StateSet),
    /// This OS has no way to ask.
    #[allow(dead_code)]
    Unavailable,
    /// The call failed.
    Failed(Errno),
}

/// The TCP state from TCP_INFO. Only its first byte, `tcpi_state`, is read; the
/// kernel copies min(len, sizeof tcp_info) bytes, so a short buffer is fine.
#[cfg(target_os = "linux")]
pub fn tcp_state(fd: RawFd) -> StateReading {
    let mut buf = [0u8; 8];
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: buf and len are valid for writing.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            buf.as_mut_ptr() as *mut libc::c_void,
            &mut len,
        )
    };
    if r < 0 {
        return StateReading::Failed(Errno::last());
    }
    match TcpState::from_linux(buf[0]) {
        Some(s) => StateReading::State(StateSet::one(s)),
        None => StateReading::Unavailable,
    }
}

/// BSD `TCPS_*` numbering (`netinet/tcp_fsm.h`), shared by FreeBSD and macOS.
#[cfg(any(target_os = "freebsd", target_os = "macos"))]
fn bsd_state(n: u8) -> Option<TcpState> {
    Some(match n {
        0 => TcpState::Close,
        1 => TcpState::Listen,
        2 => TcpState::SynSent,
        3 => TcpState::SynRecv,
        4 => TcpState::Established,
        5 => TcpState::CloseWait,
        6 => TcpState::FinWait1,
        7 => TcpState::Closing,
        8 => TcpState::LastAck,
        9 => TcpState::FinWait2,
        10 => TcpState::TimeWait,
        _ => return None,
    })
}

/// FreeBSD's TCP_INFO and macOS's TCP_CONNECTION_INFO both start with a u8
/// `tcpi_state` in BSD numbering.
#[cfg(any(target_os = "freebsd", target_os = "macos"))]
pub fn tcp_state(fd: RawFd) -> StateReading {
    #[cfg(target_os = "freebsd")]
    let opt = libc::TCP_INFO;
    #[cfg(target_os = "macos")]
    let opt = libc::TCP_CONNECTION_INFO;
    // Both structs are over 100 bytes; the kernels copy min(len, size) (macOS refuses
    // a short buffer, so give the whole size generously).
    let mut buf = [0u8; 512];
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: buf and len are valid for writing.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            opt,
            buf.as_mut_ptr() as *mut libc::c_void,
            &mut len,
        )
    };
    if r < 0 {
        return StateReading::Failed(Errno::last());
    }
    match bsd_state(buf[0]) {
        Some(s) => StateReading::State(StateSet::one(s)),
        None => StateReading::Unavailable,
    }
}

/// Elsewhere there is no TCP state to ask for: report the observation as unavailable
/// rather than guess.
#[cfg(not(any(target_os = "linux", target_os = "freebsd", target_os = "macos")))]
pub fn tcp_state(_fd: RawFd) -> StateReading {
    StateReading::Unavailable
}

/// `MSG_NOSIGNAL`, where the OS has it (macOS has only the SO_NOSIGPIPE option).
#[cfg(not(target_vendor = "apple"))]
pub const MSG_NOSIGNAL: Option<libc::c_int> = Some(libc::MSG_NOSIGNAL);
/// `MSG_NOSIGNAL`, where the OS has it (macOS has only the SO_NOSIGPIPE option).
#[cfg(target_vendor = "apple")]
pub const MSG_NOSIGNAL: Option<libc::c_int> = None;

/// `ioctl(SIOCOUTQ)`: what the send side holds; `None` where the OS has no such ioctl.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn outq(fd: RawFd) -> Option<io::Result<usize>> {
    let mut n: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one int to a valid pointer.
    if unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut n) } < 0 {
        Some(Err(io::Error::last_os_error()))
    } else {
        Some(Ok(n.max(0) as usize))
    }
}

/// `ioctl(SIOCOUTQ)`: what the send side holds; `None` where the OS has no such ioctl.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn outq(_fd: RawFd) -> Option<io::Result<usize>> {
    None
}
