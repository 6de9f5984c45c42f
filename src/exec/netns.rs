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
//! It also keeps the executor's traffic on a loopback no other program uses. Where
//! namespaces are not permitted (no CAP_SYS_ADMIN), the thread stays in the host's
//! namespace and [`overflowed`] tells whether a disagreement may be the table's doing.

use std::cell::Cell;

/// Connections a thread makes in one namespace before it moves to a fresh one: well
/// under the smallest default `tcp_max_tw_buckets` seen (the default scales with
/// memory; 131,072 here) even if every connection ends in TIME_WAIT.
pub const PAIRS_PER_NAMESPACE: u32 = 20_000;

/// Whether this thread is in a namespace of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    /// Not tried yet.
    Unknown,
    /// In a private namespace made by this thread.
    Private,
    /// Namespaces are not permitted here; using the host's.
    Host,
}

thread_local! {
    static STATE: Cell<(Isolation, u32)> = const { Cell::new((Isolation::Unknown, 0)) };
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
    // SAFETY: unshare affects only the calling thread's namespaces.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return false;
    }
    loopback_up()
}

#[cfg(not(target_os = "linux"))]
fn enter_fresh_namespace() -> bool {
    false
}

/// A new namespace's loopback is down: bring it up (SIOCSIFFLAGS on "lo").
#[cfg(target_os = "linux")]
fn loopback_up() -> bool {
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
            "the TIME_WAIT table overflowed {} times in this network namespace ({}), so sockets that should linger were destroyed; no verdict",
            now - base,
            match isolation() {
                Isolation::Private => "a private one",
                _ => "the host's: network namespaces are not permitted here",
            }
        )
    })
}

/// How many times this thread's namespace refused a TIME_WAIT socket because its table
/// was full (`TcpExtTCPTimeWaitOverflow`), or `None` if it cannot be read.
pub fn overflowed() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/net/netstat").ok()?;
    let mut lines = text.lines();
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        if !names.starts_with("TcpExt:") {
            continue;
        }
        let i = names
            .split_whitespace()
            .position(|n| n == "TCPTimeWaitOverflow")?;
        return values.split_whitespace().nth(i)?.parse().ok();
    }
    None
}
