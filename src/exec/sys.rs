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
/// The events the executor asks poll for. POLLRDHUP exists on Linux only.
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
    cloexec_socket_with(domain, ty, 0)
}

/// The same, with a protocol; made in this thread's private namespace like every
/// executor socket (see [`super::netns`]).
fn cloexec_socket_with(
    domain: libc::c_int,
    ty: libc::c_int,
    protocol: libc::c_int,
) -> io::Result<OwnedFd> {
    #[cfg(target_os = "linux")]
    if let Some(s) = super::netns::helper_socket(domain, ty, protocol) {
        return s;
    }
    #[cfg(any(target_os = "linux", target_os = "freebsd"))]
    {
        // SAFETY: plain syscall; the result is checked before it is owned.
        let fd = cvt(unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, protocol) })?;
        // SAFETY: fd was just created and is owned by nobody else.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
    #[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
    {
        // SAFETY: plain syscalls; the result is checked before it is owned.
        let fd = cvt(unsafe { libc::socket(domain, ty, protocol) })?;
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
pub(crate) fn bind_cycling_port(fd: RawFd, addr: &socket2::SockAddr) -> io::Result<()> {
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

/// A TCP connection's two addresses, as its socket saw them: where to look for it in
/// the kernel's tables once its descriptor is closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuple {
    /// getsockname.
    pub local: std::net::SocketAddr,
    /// getpeername.
    pub peer: std::net::SocketAddr,
}

/// The addresses of a connected TCP socket; `None` while it has no peer (never
/// connected, or CLOSE again: inet_getname says ENOTCONN there).
pub fn tuple_of(fd: &OwnedFd) -> Option<Tuple> {
    let s = socket2::SockRef::from(fd);
    let local = s.local_addr().ok()?.as_socket()?;
    let peer = s.peer_addr().ok()?.as_socket()?;
    Some(Tuple { local, peer })
}

/// What the kernel holds for a connection whose descriptor is closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiagReading {
    /// A socket holds it in this state: an orphan, or a TIME_WAIT mini-socket (whose
    /// FIN_WAIT2 or TIME_WAIT substate is what inet_diag reports).
    State(TcpState),
    /// No socket holds it.
    Gone,
    /// This system cannot be asked (no NETLINK_SOCK_DIAG: gVisor, other OSes).
    Unavailable,
    /// The question failed.
    Failed(Errno),
}

/// How long the kernel may take to answer (it answers inside the send; this bounds a
/// kernel or sandbox that does not).
#[cfg(target_os = "linux")]
const DIAG_TIMEOUT_MS: i32 = 500;

/// netlink and inet_diag constants (linux/netlink.h, linux/sock_diag.h,
/// linux/inet_diag.h), not in every libc version.
mod nl {
    #[cfg(target_os = "linux")]
    pub const NETLINK_SOCK_DIAG: libc::c_int = 4;
    pub const SOCK_DIAG_BY_FAMILY: u16 = 20;
    pub const NLMSG_ERROR: u16 = 2;
    pub const NLMSG_DONE: u16 = 3;
    pub const NLM_F_REQUEST: u16 = 1;
    /// sizeof(struct nlmsghdr).
    pub const HDR: usize = 16;
    /// sizeof(struct inet_diag_sockid).
    pub const SOCKID: usize = 48;
    /// sizeof(struct inet_diag_req_v2).
    pub const REQ: usize = 8 + SOCKID;
    /// The bytes of struct inet_diag_msg up to and including its sockid.
    pub const MSG_MIN: usize = 4 + SOCKID;
}

/// The inet_diag_sockid of a connection: ports big-endian, addresses in network order
/// (an IPv4 address in the first word), any interface, no cookie.
fn sockid(t: &Tuple) -> [u8; nl::SOCKID] {
    let mut id = [0u8; nl::SOCKID];
    id[0..2].copy_from_slice(&t.local.port().to_be_bytes());
    id[2..4].copy_from_slice(&t.peer.port().to_be_bytes());
    let put = |dst: &mut [u8], a: std::net::IpAddr| match a {
        std::net::IpAddr::V4(v4) => dst[..4].copy_from_slice(&v4.octets()),
        std::net::IpAddr::V6(v6) => dst[..16].copy_from_slice(&v6.octets()),
    };
    put(&mut id[4..20], t.local.ip());
    put(&mut id[20..36], t.peer.ip());
    // idiag_if 0; idiag_cookie INET_DIAG_NOCOOKIE (~0, ~0): no cookie check.
    id[40..48].fill(0xff);
    id
}

fn family_of(t: &Tuple) -> u8 {
    if t.local.is_ipv4() {
        libc::AF_INET as u8
    } else {
        libc::AF_INET6 as u8
    }
}

/// The SOCK_DIAG_BY_FAMILY request for exactly `t` (not a dump), every state asked for.
pub fn diag_request(t: &Tuple, seq: u32) -> Vec<u8> {
    let len = nl::HDR + nl::REQ;
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&nl::SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    m.extend_from_slice(&nl::NLM_F_REQUEST.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.push(family_of(t));
    m.push(libc::IPPROTO_TCP as u8);
    m.push(0); // idiag_ext: no extensions
    m.push(0);
    m.extend_from_slice(&u32::MAX.to_ne_bytes()); // idiag_states: all
    m.extend_from_slice(&sockid(t));
    m
}

/// Reads the kernel's answer to [`diag_request`] for `t` (sequence number `seq`): the
/// state of the socket that holds exactly `t`, or `Gone`. An exact request falls back
/// to a listener on the local port (inet_lookup), so a reply for any other tuple, or
/// for a listener, means nothing holds the connection. Odd replies are errors, never
/// panics.
pub fn parse_diag_reply(buf: &[u8], t: &Tuple, seq: u32) -> DiagReading {
    let mut rest = buf;
    let word = |b: &[u8], at: usize| u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    while rest.len() >= nl::HDR {
        let len = word(rest, 0) as usize;
        let ty = u16::from_ne_bytes([rest[4], rest[5]]);
        let mseq = word(rest, 8);
        if len < nl::HDR || len > rest.len() {
            return DiagReading::Failed(Errno(libc::EBADMSG));
        }
        let body = &rest[nl::HDR..len];
        // NLMSG_ALIGN: messages start on 4-byte boundaries.
        rest = &rest[((len + 3) & !3).min(rest.len())..];
        if mseq != seq {
            continue;
        }
        match ty {
            nl::NLMSG_ERROR => {
                // NLMSG_ERROR: a negative errno (0 is an acknowledgement).
                if body.len() < 4 {
                    return DiagReading::Failed(Errno(libc::EBADMSG));
                }
                let err = i32::from_ne_bytes([body[0], body[1], body[2], body[3]]);
                match err {
                    0 => continue,
                    e if e == -libc::ENOENT => return DiagReading::Gone,
                    e => return DiagReading::Failed(Errno(e.saturating_neg())),
                }
            }
            nl::NLMSG_DONE => return DiagReading::Gone,
            nl::SOCK_DIAG_BY_FAMILY => {
                if body.len() < nl::MSG_MIN {
                    return DiagReading::Failed(Errno(libc::EBADMSG));
                }
                let (family, state) = (body[0], body[1]);
                let id = &body[4..nl::MSG_MIN];
                let want = sockid(t);
                // Ports and addresses; idiag_if and the cookie are the kernel's own.
                if family != family_of(t) || id[..36] != want[..36] {
                    return DiagReading::Gone;
                }
                return match TcpState::from_linux(state) {
                    Some(TcpState::Listen) => DiagReading::Gone,
                    Some(s) => DiagReading::State(s),
                    None => DiagReading::Failed(Errno(libc::EBADMSG)),
                };
            }
            _ => continue,
        }
    }
    DiagReading::Failed(Errno(libc::EBADMSG))
}

/// Asks the kernel (NETLINK_SOCK_DIAG, in this thread's namespace, where its sockets
/// are) what holds the connection `t` now. `None`: the socket never had a peer, so
/// nothing can hold a connection of it; still `Unavailable` where nothing can be asked,
/// so a platform answers the same whatever the socket did.
#[cfg(target_os = "linux")]
pub fn closed_tcp_state(t: Option<&Tuple>) -> DiagReading {
    let fd = match cloexec_socket_with(libc::AF_NETLINK, libc::SOCK_DGRAM, nl::NETLINK_SOCK_DIAG) {
        Ok(fd) => fd,
        Err(e) => {
            return match e.raw_os_error() {
                Some(libc::EPROTONOSUPPORT | libc::EAFNOSUPPORT | libc::ESOCKTNOSUPPORT) => {
                    DiagReading::Unavailable
                }
                Some(n) => DiagReading::Failed(Errno(n)),
                None => DiagReading::Failed(Errno(libc::EIO)),
            }
        }
    };
    let Some(t) = t else {
        return DiagReading::Gone;
    };
    static SEQ: AtomicU64 = AtomicU64::new(1);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed) as u32;
    let req = diag_request(t, seq);
    // SAFETY: a zeroed sockaddr_nl is the kernel's address (pid 0, no groups).
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: req and kernel are valid for the lengths given.
    let r = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            req.as_ptr().cast(),
            req.len(),
            libc::MSG_DONTWAIT,
            &kernel as *const libc::sockaddr_nl as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return match Errno::last() {
            // gVisor-like stacks may make the socket but not serve the family.
            e if e.0 == libc::EOPNOTSUPP || e.0 == libc::EPROTONOSUPPORT => {
                DiagReading::Unavailable
            }
            e => DiagReading::Failed(e),
        };
    }
    let mut buf = vec![0u8; 8192];
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut pfd, 1, DIAG_TIMEOUT_MS) };
    if n <= 0 {
        return DiagReading::Failed(Errno(libc::ETIMEDOUT));
    }
    // SAFETY: buf is valid for its length.
    let r = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if r < 0 {
        return DiagReading::Failed(Errno::last());
    }
    parse_diag_reply(&buf[..r as usize], t, seq)
}

/// Elsewhere there is no sock_diag to ask.
#[cfg(not(target_os = "linux"))]
pub fn closed_tcp_state(_t: Option<&Tuple>) -> DiagReading {
    DiagReading::Unavailable
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple4() -> Tuple {
        Tuple {
            local: "127.0.0.1:10001".parse().unwrap(),
            peer: "127.0.0.1:40000".parse().unwrap(),
        }
    }

    /// A reply as the kernel writes it: nlmsghdr, then inet_diag_msg (its sockid, and
    /// the expires/queues/uid/inode words after it).
    fn reply(ty: u16, seq: u32, body: &[u8]) -> Vec<u8> {
        let len = 16 + body.len();
        let mut m = Vec::new();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&ty.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(body);
        while m.len() % 4 != 0 {
            m.push(0);
        }
        m
    }

    fn diag_msg(t: &Tuple, state: u8) -> Vec<u8> {
        let mut b = vec![family_of(t), state, 0, 0];
        let mut id = sockid(t);
        // The kernel fills in the interface and its own cookie.
        id[36..40].copy_from_slice(&1u32.to_ne_bytes());
        id[40..48].copy_from_slice(&[7, 0, 0, 0, 0, 0, 0, 0]);
        b.extend_from_slice(&id);
        b.extend_from_slice(&[0u8; 20]);
        b
    }

    #[test]
    fn request_is_exact_and_asks_every_state() {
        let t = tuple4();
        let r = diag_request(&t, 9);
        assert_eq!(r.len(), 72);
        assert_eq!(u32::from_ne_bytes(r[0..4].try_into().unwrap()), 72);
        assert_eq!(u16::from_ne_bytes([r[4], r[5]]), 20);
        // NLM_F_REQUEST only: an exact lookup, not a dump.
        assert_eq!(u16::from_ne_bytes([r[6], r[7]]), 1);
        assert_eq!(u32::from_ne_bytes(r[8..12].try_into().unwrap()), 9);
        assert_eq!(
            (r[16], r[17]),
            (libc::AF_INET as u8, libc::IPPROTO_TCP as u8)
        );
        assert_eq!(&r[20..24], &[0xff; 4]);
        // sport, dport big-endian; src then dst in network order; no cookie.
        assert_eq!(&r[24..28], &[0x27, 0x11, 0x9c, 0x40]);
        assert_eq!(&r[28..32], &[127, 0, 0, 1]);
        assert_eq!(&r[44..48], &[127, 0, 0, 1]);
        assert_eq!(&r[64..72], &[0xff; 8]);
        let t6 = Tuple {
            local: "[::1]:10001".parse().unwrap(),
            peer: "[::1]:40000".parse().unwrap(),
        };
        let r = diag_request(&t6, 1);
        assert_eq!(r[16], libc::AF_INET6 as u8);
        assert_eq!(r[28 + 15], 1);
        assert_eq!(r[44 + 15], 1);
    }

    #[test]
    fn replies_give_the_state_or_gone() {
        let t = tuple4();
        // An orphan and a TIME_WAIT mini-socket (tw_substate).
        for (n, s) in [
            (4, TcpState::FinWait1),
            (5, TcpState::FinWait2),
            (6, TcpState::TimeWait),
            (9, TcpState::LastAck),
            (11, TcpState::Closing),
        ] {
            let r = reply(20, 3, &diag_msg(&t, n));
            assert_eq!(parse_diag_reply(&r, &t, 3), DiagReading::State(s));
        }
        // ENOENT: nothing holds the connection.
        let r = reply(2, 3, &(-libc::ENOENT).to_ne_bytes());
        assert_eq!(parse_diag_reply(&r, &t, 3), DiagReading::Gone);
        // The exact lookup's listener fallback: another tuple, or LISTEN, is not ours.
        let other = Tuple {
            peer: "127.0.0.1:40001".parse().unwrap(),
            ..t
        };
        let r = reply(20, 3, &diag_msg(&other, 6));
        assert_eq!(parse_diag_reply(&r, &t, 3), DiagReading::Gone);
        let r = reply(20, 3, &diag_msg(&t, 10));
        assert_eq!(parse_diag_reply(&r, &t, 3), DiagReading::Gone);
        // A message of another request is skipped; an ack, then ours.
        let mut r = reply(20, 2, &diag_msg(&t, 6));
        r.extend(reply(2, 3, &0i32.to_ne_bytes()));
        r.extend(reply(20, 3, &diag_msg(&t, 9)));
        assert_eq!(
            parse_diag_reply(&r, &t, 3),
            DiagReading::State(TcpState::LastAck)
        );
        // Another error is reported as it is.
        let r = reply(2, 3, &(-libc::EPERM).to_ne_bytes());
        assert_eq!(
            parse_diag_reply(&r, &t, 3),
            DiagReading::Failed(Errno(libc::EPERM))
        );
    }

    #[test]
    fn odd_replies_are_errors_not_panics() {
        let t = tuple4();
        let bad = DiagReading::Failed(Errno(libc::EBADMSG));
        let good = reply(20, 3, &diag_msg(&t, 6));
        // Every truncation, a length past the buffer, a length below the header, a
        // short body, an unknown state, and nothing at all.
        for n in 0..good.len() {
            let r = parse_diag_reply(&good[..n], &t, 3);
            assert_eq!(r, bad, "truncated to {n}");
        }
        let mut long = good.clone();
        long[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert_eq!(parse_diag_reply(&long, &t, 3), bad);
        let mut tiny = good.clone();
        tiny[0..4].copy_from_slice(&3u32.to_ne_bytes());
        assert_eq!(parse_diag_reply(&tiny, &t, 3), bad);
        assert_eq!(parse_diag_reply(&reply(20, 3, &[4, 6]), &t, 3), bad);
        assert_eq!(parse_diag_reply(&reply(2, 3, &[1]), &t, 3), bad);
        assert_eq!(
            parse_diag_reply(&reply(20, 3, &diag_msg(&t, 99)), &t, 3),
            bad
        );
        assert_eq!(parse_diag_reply(&[], &t, 3), bad);
    }

    /// On this machine's kernel: a connection's orphan, then nothing once it is gone,
    /// as the executor sees them (in its private namespace).
    #[cfg(target_os = "linux")]
    #[test]
    fn the_kernel_answers_for_a_closed_connection() {
        use crate::step::{Op, Outcome, Sock, Start, Step};
        let mut w = super::super::Sockets::start(Transport::Tcp4, Start::Connected).unwrap();
        let step = |w: &mut super::super::Sockets, s, op| w.step(Step::call(s, op)).outcome;
        assert_eq!(step(&mut w, Sock::A, Op::Close), Outcome::Ok);
        match step(&mut w, Sock::A, Op::State) {
            Outcome::State(s) => assert!(
                s.contains(TcpState::FinWait1) || s.contains(TcpState::FinWait2),
                "{s}"
            ),
            other => panic!("expected the orphan's state, got {other}"),
        }
        assert_eq!(step(&mut w, Sock::B, Op::Abort), Outcome::Ok);
        // b's RST ended a's orphan, and b's abort left nothing.
        assert_eq!(step(&mut w, Sock::A, Op::State), Outcome::Gone);
        assert_eq!(step(&mut w, Sock::B, Op::State), Outcome::Gone);
    }
}
