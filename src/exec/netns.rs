//! A private network namespace per executing thread (Linux).
//!
//! Why: the kernel keeps closed TCP connections in TIME_WAIT for 60 s, and only
//! `net.ipv4.tcp_max_tw_buckets` of them per namespace. A campaign makes tens of
//! thousands of connections a second; once the table is full, a socket that should enter
//! TIME_WAIT (or the orphaned FIN_WAIT2 state, which uses the same table) is destroyed
//! instead, and a later segment for it draws an RST the model rightly does not predict
//! (found by the tcp6 property test at 100,000 cases: `TcpExtTCPTimeWaitOverflow`
//! counted 4,184 overflows). A fresh namespace starts with an empty table, so each
//! thread moves to a new one long before it could fill; the old one, and every
//! TIME_WAIT socket in it, is freed by the kernel once its last socket closes.
//!
//! It also keeps the executor's traffic on a loopback no other program uses.
//!
//! Without root there are two ways to the same result, because creating a network
//! namespace needs CAP_SYS_ADMIN in the user namespace that will own it:
//!
//! - a process that is still single-threaded (the `closefuzz` binary, at the top of
//!   `main`) calls [`enter_user_namespace`]: it becomes root in a user namespace of its
//!   own, and each thread then unshares a network namespace as root would;
//! - a process that already has threads (a `cargo test` binary: the harness starts them
//!   before any test runs) cannot, as `unshare(CLONE_NEWUSER)` and `setns` into a user
//!   namespace both fail with EINVAL there, and `setns` into a network namespace needs
//!   CAP_SYS_ADMIN in the caller's own user namespace too (EPERM). So each executing
//!   thread gets a *helper*: a child process cloned into a new user and network
//!   namespace that shares the thread's file descriptor table (`CLONE_FILES`) and makes
//!   the executor's sockets on request. A socket belongs to the namespace it was made
//!   in, whoever uses it afterwards, so the thread's connections are as private as if
//!   the thread had moved; sharing the table (rather than passing descriptors over a
//!   socket) means the helper never holds a copy of a descriptor, so a `close` in the
//!   thread is the last one, as the model assumes.
//!
//! Where neither works, the thread stays in the host's namespace and [`overflowed`]
//! tells whether a disagreement may be the table's doing.

use std::cell::Cell;

/// Connections a thread makes in one namespace before it moves to a fresh one: well
/// under the smallest default `tcp_max_tw_buckets` seen (the default scales with
/// memory; 131,072 here) even if every connection ends in TIME_WAIT.
pub const PAIRS_PER_NAMESPACE: u32 = 20_000;

/// Whether this thread's sockets are in a namespace of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    /// Not tried yet.
    Unknown,
    /// In a private namespace made by this thread (or by its helper, see the module
    /// docs).
    Private,
    /// Namespaces are not permitted here; using the host's.
    Host,
}

thread_local! {
    static STATE: Cell<(Isolation, u32)> = const { Cell::new((Isolation::Unknown, 0)) };
    /// This thread's helper, once the thread could not unshare a namespace itself.
    #[cfg(target_os = "linux")]
    static HELPER: std::cell::RefCell<Option<helper::Helper>> = const { std::cell::RefCell::new(None) };
    /// The overflow counter when this thread's namespace was entered (or, in the host's
    /// namespace, when the thread made its first pair).
    static BASELINE: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Called before each new pair: moves the thread to a fresh private namespace on its
/// first pair and every [`PAIRS_PER_NAMESPACE`] pairs after.
pub fn before_pair() {
    STATE.with(|s| {
        let (iso, n) = s.get();
        let due = match iso {
            Isolation::Unknown => true,
            Isolation::Private => n >= PAIRS_PER_NAMESPACE,
            Isolation::Host => false,
        };
        if due {
            let iso = if enter_fresh_namespace() {
                Isolation::Private
            } else {
                Isolation::Host
            };
            BASELINE.with(|b| b.set(overflowed()));
            s.set((iso, 1));
            if std::env::var_os(SHOW_NAMESPACE_ENV).is_some() {
                show_namespace(iso);
            }
        } else {
            s.set((iso, n + 1));
        }
    });
}

/// Keeps this thread in the namespace it is in: for a worker already inside a sandbox,
/// which is a namespace of its own (gVisor's netstack cannot give a new namespace a
/// loopback).
pub fn stay_in_current_namespace() {
    STATE.with(|s| s.set((Isolation::Host, 0)));
    BASELINE.with(|b| b.set(None));
}

/// This thread's isolation.
pub fn isolation() -> Isolation {
    STATE.with(|s| s.get().0)
}

#[cfg(target_os = "linux")]
fn enter_fresh_namespace() -> bool {
    let rotated = HELPER.with(|slot| {
        let mut slot = slot.borrow_mut();
        let ok = slot.as_mut().is_some_and(|h| h.new_namespace().is_ok());
        if !ok {
            // A helper that cannot move on is of no more use: a fresh one is tried below.
            *slot = None;
        }
        ok
    });
    if rotated {
        return true;
    }
    // SAFETY: unshare affects only the calling thread's namespaces.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } == 0 {
        return loopback_up();
    }
    // Not permitted: an unprivileged process that already had threads when it could
    // have entered a user namespace (see the module docs).
    match helper::Helper::spawn() {
        Ok(h) => {
            HELPER.with(|slot| *slot.borrow_mut() = Some(h));
            true
        }
        Err(_) => false,
    }
}

/// A socket for the executor: made by this thread's helper, in its private namespace,
/// if the thread has one; `None` means "make it here as usual".
#[cfg(target_os = "linux")]
pub(crate) fn helper_socket(
    domain: libc::c_int,
    ty: libc::c_int,
    protocol: libc::c_int,
) -> Option<std::io::Result<std::os::fd::OwnedFd>> {
    HELPER.with(|h| {
        h.borrow_mut()
            .as_mut()
            .map(|h| h.socket_with(domain, ty, protocol))
    })
}

/// The environment variable that makes each thread print, on stderr, the network
/// namespace its sockets are made in whenever it enters one (for tests: the kernel's
/// answer, see [`socket_namespace`]).
pub const SHOW_NAMESPACE_ENV: &str = "CLOSEFUZZ_SHOW_NETNS";

/// The environment variable that makes [`enter_user_namespace`] do nothing, so that
/// the binary takes the path a multithreaded process takes (for tests).
pub const NO_USER_NAMESPACE_ENV: &str = "CLOSEFUZZ_NO_USERNS";

fn show_namespace(iso: Isolation) {
    let process = std::fs::read_link("/proc/self/ns/net")
        .map(|p| p.display().to_string())
        .unwrap_or_else(|e| format!("unreadable ({e})"));
    let sockets = socket_namespace()
        .map(|ino| format!("net:[{ino}]"))
        .unwrap_or_else(|e| format!("unknown ({e})"));
    #[cfg(target_os = "linux")]
    let by = if HELPER.with(|h| h.borrow().is_some()) {
        "helper"
    } else {
        "thread"
    };
    #[cfg(not(target_os = "linux"))]
    let by = "thread";
    eprintln!(
        "closefuzz netns: thread {:?} isolation {iso:?} by {by} sockets {sockets} process {process}",
        std::thread::current().id()
    );
}

/// The inode of the network namespace a socket made now by this thread's executor
/// would be in, as the kernel reports it (`SIOCGSKNS` on a probe socket), so tests can
/// check the isolation rather than trust this module's bookkeeping.
#[cfg(target_os = "linux")]
pub fn socket_namespace() -> std::io::Result<u64> {
    let probe = match helper_socket(libc::AF_INET, libc::SOCK_DGRAM, 0) {
        Some(s) => s?,
        None => super::sys::cloexec_socket(libc::AF_INET, libc::SOCK_DGRAM)?,
    };
    namespace_of(std::os::fd::AsFd::as_fd(&probe))
}

/// The inode of the network namespace `socket` belongs to.
#[cfg(target_os = "linux")]
fn namespace_of(socket: std::os::fd::BorrowedFd) -> std::io::Result<u64> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    /// From linux/sockios.h; not in the libc crate.
    const SIOCGSKNS: libc::c_ulong = 0x894C;
    // SAFETY: SIOCGSKNS takes no argument and returns a new descriptor, owned below.
    let ns = unsafe { libc::ioctl(socket.as_raw_fd(), SIOCGSKNS as _) };
    if ns < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: ns was just returned by the kernel and is owned by nobody else.
    let ns = unsafe { OwnedFd::from_raw_fd(ns) };
    use std::os::unix::fs::MetadataExt;
    Ok(std::fs::File::from(ns).metadata()?.ino())
}

/// Not available off Linux.
#[cfg(not(target_os = "linux"))]
pub fn socket_namespace() -> std::io::Result<u64> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

/// Whether this process runs as root in the initial user namespace: real root, which
/// is what tools such as `runsc` without `--rootless` need. Root inside a user
/// namespace of its own (after [`enter_user_namespace`]) is not.
pub fn privileged() -> bool {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return false;
    }
    #[cfg(target_os = "linux")]
    {
        // The initial user namespace maps every id to itself; any other maps less.
        let map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
        let fields: Vec<&str> = map.split_whitespace().collect();
        fields == ["0", "0", "4294967295"]
    }
    #[cfg(not(target_os = "linux"))]
    true
}

/// Makes an unprivileged process root in a user namespace of its own (mapping its
/// user and group to 0), so that its threads may create network namespaces. Call it
/// at the very start of `main`, before any thread exists: the kernel refuses
/// `unshare(CLONE_NEWUSER)` to a multithreaded process (EINVAL). Does nothing for
/// root, or if [`NO_USER_NAMESPACE_ENV`] is set; if the kernel refuses, the process
/// carries on as it was (its threads then use helpers or the host's namespace).
/// Returns whether the process is now in a new user namespace.
#[cfg(target_os = "linux")]
pub fn enter_user_namespace() -> bool {
    // SAFETY: plain id queries.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    if uid == 0 || std::env::var_os(NO_USER_NAMESPACE_ENV).is_some() {
        return false;
    }
    // SAFETY: unshare changes only this (single-threaded) process's namespaces.
    if unsafe { libc::unshare(libc::CLONE_NEWUSER) } != 0 {
        return false;
    }
    let write = |path: &str, text: String| std::fs::write(path, text).is_ok();
    // setgroups must be denied before an unprivileged process may write its gid_map.
    write("/proc/self/uid_map", format!("0 {uid} 1"))
        && write("/proc/self/setgroups", "deny".into())
        && write("/proc/self/gid_map", format!("0 {gid} 1"))
}

/// Not available off Linux: does nothing.
#[cfg(not(target_os = "linux"))]
pub fn enter_user_namespace() -> bool {
    false
}

#[cfg(not(target_os = "linux"))]
fn enter_fresh_namespace() -> bool {
    false
}

/// A new namespace's loopback is down: bring it up (SIOCSIFFLAGS on "lo").
#[cfg(target_os = "linux")]
pub(crate) fn loopback_up() -> bool {
    // SAFETY: a plain datagram socket used only for the ioctls, closed below; the ifreq
    // is zeroed and its name is a NUL-terminated "lo".
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return false;
        }
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (d, s) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
            *d = *s as libc::c_char;
        }
        let ok = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut ifr) == 0 && {
            ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            libc::ioctl(fd, libc::SIOCSIFFLAGS, &ifr) == 0
        };
        libc::close(fd);
        ok
    }
}

/// Why results of this thread's recent cases may not be the kernel's normal behaviour:
/// the TIME_WAIT table overflowed since the thread entered its namespace.
pub fn interference() -> Option<String> {
    let base = BASELINE.with(|b| b.get())?;
    let now = overflowed()?;
    (now > base).then(|| {
        format!(
            "the kernel destroyed {} sockets that should have lingered in this network namespace ({}): a full TIME_WAIT table, or orphans killed by tcp_check_oom (TcpExt TCPTimeWaitOverflow, TCPAbortOnMemory); no verdict",
            now - base,
            match isolation() {
                Isolation::Private => "a private one",
                _ => "the host's: neither network nor user namespaces are permitted here",
            }
        )
    })
}

/// How many sockets this thread's namespace destroyed that should have lingered: TIME_WAIT
/// sockets refused because the table was full (`TcpExtTCPTimeWaitOverflow`), and
/// orphans reset at close because there were too many orphans, or too little memory,
/// in the whole system (`TcpExtTCPAbortOnMemory`, tcp_check_oom: a campaign's orphans,
/// in namespaces it left, count too). `None` if it cannot be read.
pub fn overflowed() -> Option<u64> {
    #[cfg(target_os = "linux")]
    let path = HELPER
        .with(|h| h.borrow().as_ref().map(|h| h.netstat_path()))
        .unwrap_or_else(|| "/proc/thread-self/net/netstat".into());
    #[cfg(not(target_os = "linux"))]
    let path = "/proc/thread-self/net/netstat";
    let text = std::fs::read_to_string(path).ok()?;
    lingering_destroyed(&text)
}

/// TCPTimeWaitOverflow plus TCPAbortOnMemory from the text of /proc/net/netstat (pairs
/// of lines: names, then values).
fn lingering_destroyed(netstat: &str) -> Option<u64> {
    let mut lines = netstat.lines();
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        if !names.starts_with("TcpExt:") {
            continue;
        }
        let count = |name: &str| -> Option<u64> {
            let i = names.split_whitespace().position(|n| n == name)?;
            values.split_whitespace().nth(i)?.parse().ok()
        };
        return Some(count("TCPTimeWaitOverflow")? + count("TCPAbortOnMemory")?);
    }
    None
}

#[cfg(test)]
mod lingering_tests {
    #[test]
    fn both_counters_are_read_from_tcpext() {
        let text = "TcpExt: SyncookiesSent TCPAbortOnMemory TCPTimeWaitOverflow\nTcpExt: 9 2 3\nIpExt: InNoRoutes\nIpExt: 7\n";
        assert_eq!(super::lingering_destroyed(text), Some(5));
        assert_eq!(super::lingering_destroyed("IpExt: A\nIpExt: 1\n"), None);
    }
}

/// The helper process of a thread that cannot unshare a network namespace itself (see
/// the module docs).
#[cfg(target_os = "linux")]
mod helper {
    use std::io;
    use std::os::fd::{FromRawFd, OwnedFd, RawFd};
    use std::time::{Duration, Instant};

    /// Request: make [`BATCH`] sockets of `[_, domain, type, protocol]`; the answer is
    /// their descriptors.
    const OP_SOCKET: i32 = 1;
    /// Sockets made per request: a round trip to the helper costs about as much as a
    /// short case, so a thread asks for several at once.
    const BATCH: usize = 8;
    /// Request: move to a fresh network namespace; the answer is 0.
    const OP_NEW_NAMESPACE: i32 = 2;
    /// How long the helper may take to answer (it only makes a syscall or two).
    const ANSWER_TIMEOUT_MS: i32 = 5_000;

    /// A child process in a user and network namespace of its own that shares this
    /// thread's descriptor table and makes sockets on request.
    pub struct Helper {
        pid: libc::pid_t,
        /// Our end and the helper's end of the request channel (both in the shared
        /// table; only we ever close them).
        ours: RawFd,
        theirs: RawFd,
        /// Sockets made but not yet used, with their domain, type and protocol.
        spare: Vec<((i32, i32, i32), OwnedFd)>,
    }

    fn last_errno() -> i32 {
        // SAFETY: errno is a thread-local int, readable at any time.
        unsafe { *libc::__errno_location() }
    }

    impl Helper {
        /// Clones the helper and waits (bounded) for it to report its namespace ready.
        pub fn spawn() -> io::Result<Helper> {
            let mut sv = [0; 2];
            // SAFETY: sv has room for the two descriptors.
            if unsafe {
                libc::socketpair(
                    libc::AF_UNIX,
                    libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                    0,
                    sv.as_mut_ptr(),
                )
            } != 0
            {
                return Err(io::Error::last_os_error());
            }
            // Everything the child needs is prepared here: after the clone it may only
            // make raw syscalls (another thread may have held the allocator's lock).
            // SAFETY: plain id queries.
            let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
            let uid_map = format!("0 {uid} 1");
            let gid_map = format!("0 {gid} 1");
            // SAFETY: plain id query.
            let parent = unsafe { libc::getpid() };
            // A raw clone: the glibc wrapper wants a separate stack; without CLONE_VM
            // the child runs on a copy of ours, as after fork. CLONE_FILES shares the
            // descriptor table (the point of the helper); CLONE_NEWUSER with
            // CLONE_NEWNET creates the user namespace first, so it owns the network one.
            let flags = libc::CLONE_FILES | libc::CLONE_NEWUSER | libc::CLONE_NEWNET;
            // SAFETY: a fork-like clone; the child branch below makes raw syscalls only
            // and never returns.
            let pid = unsafe {
                libc::syscall(
                    libc::SYS_clone,
                    (flags | libc::SIGCHLD) as libc::c_ulong,
                    0usize,
                    0usize,
                    0usize,
                    0usize,
                )
            };
            if pid == 0 {
                // SAFETY: the child: raw syscalls on memory prepared before the clone.
                unsafe { child(sv[1], parent, uid_map.as_bytes(), gid_map.as_bytes()) }
            }
            if pid < 0 {
                let e = io::Error::last_os_error();
                // SAFETY: both ends are ours and no one else has them.
                unsafe {
                    libc::close(sv[0]);
                    libc::close(sv[1]);
                }
                return Err(e);
            }
            let mut h = Helper {
                pid: pid as libc::pid_t,
                ours: sv[0],
                theirs: sv[1],
                spare: Vec::new(),
            };
            // The helper says 0 once its loopback is up, or why not.
            h.receive()?;
            Ok(h)
        }

        /// Sends a request and returns the answer: at least one non-negative number.
        fn ask(&mut self, req: [i32; 4]) -> io::Result<Vec<i32>> {
            // SAFETY: 16 bytes from a live array, on our descriptor.
            let n = unsafe { libc::write(self.ours, req.as_ptr().cast(), 16) };
            if n != 16 {
                return Err(io::Error::other(format!(
                    "the network namespace helper is gone ({})",
                    io::Error::last_os_error()
                )));
            }
            self.receive()
        }

        fn receive(&mut self) -> io::Result<Vec<i32>> {
            let mut pfd = libc::pollfd {
                fd: self.ours,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let r = unsafe { libc::poll(&mut pfd, 1, ANSWER_TIMEOUT_MS) };
            if r <= 0 {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the network namespace helper did not answer within {ANSWER_TIMEOUT_MS} ms"
                    ),
                ));
            }
            let mut answer = [0i32; BATCH];
            // SAFETY: reads at most the array's size; SEQPACKET keeps one answer whole.
            let n = unsafe {
                libc::read(
                    self.ours,
                    answer.as_mut_ptr().cast(),
                    std::mem::size_of_val(&answer),
                )
            };
            let n = if n > 0 { n as usize / 4 } else { 0 };
            match answer[..n] {
                [] => Err(io::Error::other("the network namespace helper exited")),
                [e, ..] if e < 0 => Err(io::Error::from_raw_os_error(-e)),
                _ => Ok(answer[..n].to_vec()),
            }
        }

        /// A socket made in the helper's namespace, close-on-exec like the others.
        #[cfg(test)]
        pub fn socket(&mut self, domain: libc::c_int, ty: libc::c_int) -> io::Result<OwnedFd> {
            self.socket_with(domain, ty, 0)
        }

        /// The same, with a protocol (a netlink family, say).
        pub fn socket_with(
            &mut self,
            domain: libc::c_int,
            ty: libc::c_int,
            protocol: libc::c_int,
        ) -> io::Result<OwnedFd> {
            let kind = (domain, ty, protocol);
            if let Some(i) = self.spare.iter().position(|(k, _)| *k == kind) {
                return Ok(self.spare.swap_remove(i).1);
            }
            let fds = self.ask([OP_SOCKET, domain, ty, protocol])?;
            // SAFETY: the helper made these in our shared table for us and forgot them.
            let mut fds = fds
                .into_iter()
                .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) });
            let first = fds.next().expect("ask answers at least one number");
            self.spare.extend(fds.map(|fd| (kind, fd)));
            Ok(first)
        }

        /// Moves the helper, and so the sockets made from now on, to a fresh namespace.
        pub fn new_namespace(&mut self) -> io::Result<()> {
            // Spares belong to the old namespace.
            self.spare.clear();
            self.ask([OP_NEW_NAMESPACE, 0, 0, 0]).map(|_| ())
        }

        /// The helper's process id.
        #[cfg(test)]
        pub fn pid(&self) -> libc::pid_t {
            self.pid
        }

        /// Where the helper's namespace counts its TIME_WAIT overflows.
        pub fn netstat_path(&self) -> String {
            format!("/proc/{}/net/netstat", self.pid)
        }
    }

    impl Drop for Helper {
        fn drop(&mut self) {
            // Closing our end ends the helper's read; SIGKILL if it does not go.
            // SAFETY: our descriptor, closed once.
            unsafe { libc::close(self.ours) };
            let deadline = Instant::now() + Duration::from_secs(1);
            let mut killed = false;
            loop {
                let mut status = 0;
                // SAFETY: our own unreaped child.
                let r = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
                if r != 0 {
                    break;
                }
                if Instant::now() >= deadline && !killed {
                    // SAFETY: our own child, not yet reaped, so the pid is still its.
                    unsafe { libc::kill(self.pid, libc::SIGKILL) };
                    killed = true;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            // Only now: while the helper ran, closing its end would have let the number
            // be reused under it.
            // SAFETY: the helper's descriptor, which it never closes.
            unsafe { libc::close(self.theirs) };
        }
    }

    /// The helper's body, after the clone. Only raw syscalls and no allocation: the
    /// clone copied a multithreaded process.
    ///
    /// # Safety
    /// Call only in the child of the clone in [`Helper::spawn`].
    unsafe fn child(chan: RawFd, parent: libc::pid_t, uid_map: &[u8], gid_map: &[u8]) -> ! {
        // Die with the thread that made us; checked after, in case it already went.
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
        if libc::getppid() != parent {
            libc::_exit(0);
        }
        let answer = |v: &[i32]| {
            libc::write(chan, v.as_ptr().cast(), std::mem::size_of_val(v));
        };
        let write_file = |path: &std::ffi::CStr, data: &[u8]| -> bool {
            let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return false;
            }
            let ok = libc::write(fd, data.as_ptr().cast(), data.len()) == data.len() as isize;
            libc::close(fd);
            ok
        };
        // Map our ids, as `unshare -Ur` does, so nothing here runs as the overflow id.
        let mapped = write_file(c"/proc/self/uid_map", uid_map)
            && write_file(c"/proc/self/setgroups", b"deny")
            && write_file(c"/proc/self/gid_map", gid_map);
        if !mapped {
            answer(&[-libc::EPERM]);
            libc::_exit(1);
        }
        answer(&[if super::loopback_up() { 0 } else { -libc::EIO }]);
        loop {
            let mut req = [0i32; 4];
            let n = libc::read(chan, req.as_mut_ptr().cast(), 16);
            if n != 16 {
                // Our thread closed its end (or is gone).
                libc::_exit(0);
            }
            let mut v = [0i32; BATCH];
            let n = match req[0] {
                OP_SOCKET => {
                    let mut n = 0;
                    while n < BATCH {
                        let fd = libc::socket(req[1], req[2] | libc::SOCK_CLOEXEC, req[3]);
                        if fd < 0 {
                            break;
                        }
                        v[n] = fd;
                        n += 1;
                    }
                    if n == 0 {
                        v[0] = -last_errno();
                        n = 1;
                    }
                    n
                }
                OP_NEW_NAMESPACE => {
                    v[0] = if libc::unshare(libc::CLONE_NEWNET) != 0 {
                        -last_errno()
                    } else if super::loopback_up() {
                        0
                    } else {
                        -libc::EIO
                    };
                    1
                }
                _ => {
                    v[0] = -libc::EINVAL;
                    1
                }
            };
            answer(&v[..n]);
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::helper::Helper;
    use super::namespace_of;
    use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

    /// The helper's sockets are in its namespace, not the host's; a TCP connection
    /// works between them; a new namespace gives new sockets elsewhere; dropping the
    /// helper reaps it. Root and ordinary users alike may clone a user namespace.
    #[test]
    fn helper_makes_sockets_in_fresh_namespaces_and_is_reaped() {
        use std::os::unix::fs::MetadataExt;
        let host = std::fs::metadata("/proc/self/ns/net").unwrap().ino();
        let mut h = Helper::spawn().unwrap();
        let pid = h.pid();
        let l = h.socket(libc::AF_INET, libc::SOCK_STREAM).unwrap();
        let a = h.socket(libc::AF_INET, libc::SOCK_STREAM).unwrap();
        let first = namespace_of(l.as_fd()).unwrap();
        assert_eq!(namespace_of(a.as_fd()).unwrap(), first);
        assert_ne!(first, host);
        // A connection over the helper's loopback (which it brought up).
        let addr = socket2::SockAddr::from(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
        // SAFETY: valid descriptors and addresses throughout; results checked.
        unsafe {
            assert_eq!(libc::bind(l.as_raw_fd(), addr.as_ptr(), addr.len()), 0);
            assert_eq!(libc::listen(l.as_raw_fd(), 1), 0);
            let mut storage: libc::sockaddr_storage = std::mem::zeroed();
            let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            assert_eq!(
                libc::getsockname(l.as_raw_fd(), &mut storage as *mut _ as *mut _, &mut len),
                0
            );
            assert_eq!(
                libc::connect(a.as_raw_fd(), &storage as *const _ as *const _, len),
                0
            );
            let b = libc::accept4(
                l.as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_CLOEXEC,
            );
            assert!(b >= 0);
            let b = OwnedFd::from_raw_fd(b);
            assert_eq!(namespace_of(b.as_fd()).unwrap(), first);
        }
        h.new_namespace().unwrap();
        let c = h.socket(libc::AF_INET, libc::SOCK_STREAM).unwrap();
        let second = namespace_of(c.as_fd()).unwrap();
        assert_ne!(
            second, first,
            "a new namespace, not a spare from the old one"
        );
        drop(h);
        // Reaped: no longer our child.
        // SAFETY: waitpid on a pid we no longer own only asks; ECHILD is the answer.
        let r = unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
        assert_eq!(r, -1, "the helper was not reaped");
    }
}
