//! Running cases on Linux 6.1: the [`worker`](super::worker) as the init process of a
//! User-mode Linux kernel (Debian's `user-mode-linux` package, `/usr/bin/linux.uml`),
//! an ordinary host process: no KVM, no root.
//!
//! [`Uml`] boots `linux.uml` once per executor with the host's root folder as the
//! guest's root, read-only over hostfs, so the guest runs the very binary that started
//! it: `init=WORKER -- ARGS --uml-init`. The guest's second console line (`con1`,
//! `/dev/tty1` inside) is joined to the host process's stdin and stdout, and the worker
//! serves cases on it exactly as under gVisor ([`super::remote`]); the first console,
//! where the guest kernel logs, goes to stderr, whose last lines explain a failure.
//! Every answer has a deadline; a guest that misses it is stopped (stdin closed, then
//! SIGTERM, then SIGKILL of its process group) and the next case boots a fresh one.
//!
//! Inside ([`guest_main`], PID 1): mount /proc, load the IPv6 module (Debian builds
//! it as a module, with the guest's modules under `/usr/lib/uml/modules/RELEASE`), bring
//! `lo` up, put the tty in raw mode, serve, and power off when the input ends.
//!
//! Pitfalls met on the way (Debian's 6.1.176um):
//! - the tty line discipline: in its default (canonical) mode a tty echoes what it
//!   reads, maps CR and LF, and cuts lines at 4095 bytes, so a request longer than that
//!   never arrives whole and the echo is read back as an answer (the pipe-driven
//!   prototype never got an answer); `cfmakeraw` on the guest's side of the line turns
//!   all of that off. Even raw, the line loses input when more than about 4 KiB of it
//!   waits for the reader (measured: a 4.5 KiB request sent in one write, or two 4,000
//!   byte writes, is never answered; 2,000-byte writes 20 ms apart are), so a longer
//!   request goes in acknowledged parts of 2 KiB ([`super::worker::CONTINUED`]).
//! - before the guest's init opens its line, what the host sends on it is dropped: the
//!   host waits for the init's greeting before its first request.
//! - on a host whose CPU has a large XSAVE area (AMX: 11 KiB), the guest's first return
//!   to user space fails with "ptrace set fp regs failed, errno = 14" and init dies:
//!   this UML release probes `PTRACE_GETREGSET NT_X86_XSTATE` once and, when it works,
//!   saves and restores FP state with a buffer of its own fixed size, while the host
//!   kernel's `PTRACE_SETREGSET` for that regset refuses any size but the full one
//!   (EFAULT). Later kernels ask the host for the size (`host_fp_size`). Here a seccomp
//!   filter on `linux.uml` makes the probe fail with EIO, and UML falls back to
//!   `PTRACE_GETFPREGS`/`SETFPREGS` (the 512-byte FXSAVE area). What that loses, the
//!   AVX state above it, matters only between threads of one guest process, and the
//!   worker has one thread.
//! - UML keeps its memory in a file in `$TMPDIR`; it is started with `TMPDIR=/dev/shm`
//!   (tmpfs) when that exists, and with `uml_dir` in a temporary folder removed after it.

use super::remote::{Launch, Remote};
use super::worker::Settle;
use super::{Case, Executor, KernelRun};

use crate::transport::Transport;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The environment variable that names the `linux.uml` binary, overriding the PATH search.
pub const LINUX_UML_ENV: &str = "CLOSEFUZZ_LINUX_UML";

/// The argument, last on the guest's init command line, that makes the worker binary
/// act as the guest's init ([`guest_main`]).
pub const GUEST_FLAG: &str = "--uml-init";

/// What the guest's init prints on its line once it reads requests, followed by the
/// guest's kernel release.
const GREETING: &str = "closefuzz-uml-ready";

/// How to boot the guest and how long to wait for it.
#[derive(Clone, Debug)]
pub struct UmlConfig {
    /// The `linux.uml` binary.
    pub linux: PathBuf,
    /// The worker command (an absolute path on the host, and its arguments): run as
    /// the guest's init with [`GUEST_FLAG`] appended.
    pub worker: Vec<OsString>,
    /// The guest's memory, in MiB.
    pub mem_mib: u32,
    /// How long one case may take to be answered.
    pub answer_timeout: Duration,
    /// How long the guest may take to boot and answer its first (empty) case.
    pub start_timeout: Duration,
}

impl UmlConfig {
    /// A configuration that boots the `linux.uml` found by [`find_linux_uml`] with
    /// 256 MiB, 10 s per answer and 30 s to boot.
    pub fn new(worker: Vec<OsString>) -> io::Result<UmlConfig> {
        Ok(UmlConfig {
            linux: find_linux_uml()?,
            worker,
            mem_mib: 4096,
            answer_timeout: Duration::from_secs(10),
            start_timeout: Duration::from_secs(30),
        })
    }
}

/// Finds `linux.uml`: [`LINUX_UML_ENV`] if set, else the first `linux.uml` on `PATH`.
/// The error says how to get it.
pub fn find_linux_uml() -> io::Result<PathBuf> {
    super::remote::find_program(
        LINUX_UML_ENV,
        "linux.uml",
        "linux.uml (User-mode Linux)",
        "Debian: apt-get install user-mode-linux",
    )
}

/// The kernel release `linux` reports (`linux.uml --version`: "6.1.176"), waiting at
/// most 10 s.
pub fn release(linux: &Path) -> Option<String> {
    super::remote::first_line_of(Command::new(linux).arg("--version"))
}

/// The guest's kernel command line is split at spaces and has no escapes that UML
/// documents: a word that needs one is refused rather than mangled.
/// glibc's string functions in the guest keep off AVX: with the seccomp fallback UML 6.1
/// saves and restores a guest process's vector registers through PTRACE_GETFPREGS and
/// SETFPREGS, whose 512-byte FXSAVE area holds XMM only, and the host's xfpregs_set marks
/// the rest of the state as initial, so the upper halves of YMM (and ZMM) read as zeros
/// after any stop: an AVX memcpy interrupted by the guest's timer copies zeros. Measured:
/// answers with runs of NULs, and cases that disagreed once and not when rerun.
pub const GLIBC_NO_AVX: &str =
    "glibc.cpu.hwcaps=-AVX,-AVX2,-AVX512F,-AVX512VL,-AVX512BW,-AVX512DQ,-AVX512CD,-FMA,-F16C";

fn cmdline_word(w: &std::ffi::OsStr) -> io::Result<String> {
    match w.to_str() {
        Some(s) if !s.is_empty() && !s.contains(|c: char| c.is_whitespace() || c == '"') => {
            Ok(s.to_string())
        }
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cannot pass {w:?} on a User-mode Linux command line (no spaces or quotes)"),
        )),
    }
}

/// A temporary folder for UML's `uml_dir`, removed with everything in it when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> io::Result<TempDir> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let base = std::env::temp_dir();
        for _ in 0..100 {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let p = base.join(format!("closefuzz-uml-{}-{n}", std::process::id()));
            match std::fs::create_dir(&p) {
                Ok(()) => return Ok(TempDir(p)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("cannot create {}: {e}", p.display()),
                    ))
                }
            }
        }
        Err(io::Error::other(format!(
            "no free name for a folder in {}",
            base.display()
        )))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Launch for UmlConfig {
    const NAME: &'static str = "Linux 6.1";
    const WHAT: &'static str = "User-mode Linux";

    fn command(&self) -> io::Result<(Command, Option<Box<dyn Send>>)> {
        let Some((program, args)) = self.worker.split_first() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no worker command given",
            ));
        };
        if !Path::new(program).is_absolute() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the worker {program:?} must be an absolute path (the guest's root is the host's /)"),
            ));
        }
        let dir = TempDir::new()?;
        let mut c = Command::new(&self.linux);
        c.arg(format!("mem={}M", self.mem_mib))
            .args([
                "root=/dev/root",
                "rootfstype=hostfs",
                "rootflags=/",
                "ro",
                "quiet",
            ])
            // The guest's log on stderr; the worker's line on stdin and stdout.
            .args(["con0=null,fd:2", "con1=fd:0,fd:1", "con=null", "ssl=null"])
            .arg(format!("uml_dir={}", cmdline_word(dir.0.as_os_str())?))
            .arg(format!("{SYSCTLS_ENV}={}", host_sysctls()))
            // An environment word for the init: see GLIBC_NO_AVX.
            .arg(format!("GLIBC_TUNABLES={GLIBC_NO_AVX}"))
            .arg(format!("init={}", cmdline_word(program)?))
            .arg("--");
        for a in args {
            c.arg(cmdline_word(a)?);
        }
        c.arg(GUEST_FLAG);
        if Path::new("/dev/shm").is_dir() {
            c.env("TMPDIR", "/dev/shm");
        }
        // SAFETY: the closure makes only async-signal-safe calls (prctl, seccomp).
        unsafe {
            use std::os::unix::process::CommandExt;
            c.pre_exec(fp_state_fallback);
        }
        Ok((c, Some(Box::new(dir))))
    }

    fn describe(&self) -> String {
        format!("{} init=WORKER", self.linux.display())
    }

    fn answer_timeout(&self) -> Duration {
        self.answer_timeout
    }

    fn start_timeout(&self) -> Duration {
        self.start_timeout
    }

    fn greeting(&self) -> Option<&'static str> {
        Some(GREETING)
    }

    fn line_limit(&self) -> Option<usize> {
        // Half the guest tty's 4 KiB buffer (see the module docs).
        Some(2048)
    }

    fn settle(&self, transport: Transport) -> Settle {
        // Loopback delivers inside the sending call unless ksoftirqd is runnable (see
        // drain_softirqs); Unix sockets deliver without softirqs.
        Settle {
            softirqs: transport.is_tcp(),
            ..Settle::NONE
        }
    }
}

/// Makes `ptrace(PTRACE_GETREGSET, _, NT_X86_XSTATE, _)` fail with EIO in this process
/// and its children, so that UML saves FP state with `PTRACE_GETFPREGS` (see the
/// module docs). Called between fork and exec.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
fn fp_state_fallback() -> io::Result<()> {
    const PTRACE_GETREGSET: u32 = 0x4204;
    const NT_X86_XSTATE: u32 = 0x202;
    const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
    // Offsets in struct seccomp_data: nr, arch, then the six 64-bit arguments from 16
    // (the low half first on this little-endian machine).
    const NR: u32 = 0;
    const ARCH: u32 = 4;
    const ARG0: u32 = 16;
    const ARG2: u32 = 32;
    let ld = |k: u32| libc::sock_filter {
        code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
        jt: 0,
        jf: 0,
        k,
    };
    // If equal, go on; else jump `jf` instructions ahead.
    let jeq = |k: u32, jf: u8| libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt: 0,
        jf,
        k,
    };
    let ret = |k: u32| libc::sock_filter {
        code: (libc::BPF_RET | libc::BPF_K) as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let filter = [
        ld(ARCH),
        jeq(AUDIT_ARCH_X86_64, 7),
        ld(NR),
        jeq(libc::SYS_ptrace as u32, 5),
        ld(ARG0),
        jeq(PTRACE_GETREGSET, 3),
        ld(ARG2),
        jeq(NT_X86_XSTATE, 1),
        ret(libc::SECCOMP_RET_ERRNO | libc::EIO as u32),
        ret(libc::SECCOMP_RET_ALLOW),
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: prctl and seccomp with valid arguments; the filter outlives the call
    // (the kernel copies it).
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            || libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &prog as *const libc::sock_fprog,
            ) != 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Elsewhere UML's FP state is not an x86 XSAVE area: nothing to do.
#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
fn fp_state_fallback() -> io::Result<()> {
    Ok(())
}

/// Cases run by a worker inside User-mode Linux. See the module docs.
pub struct Uml(Remote<UmlConfig>);

impl Uml {
    /// Boots a guest and checks that it answers an empty case. The error is one
    /// line: `linux.uml` missing, or why the guest did not start.
    pub fn start(config: UmlConfig) -> io::Result<Uml> {
        Remote::start(config).map(Uml)
    }

    /// Boots `worker` under the `linux.uml` on PATH with the default settings.
    pub fn with_worker(worker: Vec<OsString>) -> io::Result<Uml> {
        Uml::start(UmlConfig::new(worker)?)
    }

    /// How long the last boot took, up to its first answer.
    pub fn startup(&self) -> Duration {
        self.0.startup()
    }

    /// How many guests were booted (more than one after a timeout or crash).
    pub fn starts(&self) -> usize {
        self.0.starts()
    }
}

impl Executor for Uml {
    fn run(&mut self, case: &Case) -> io::Result<KernelRun> {
        self.0.ask_case(case, false)
    }

    fn run_raw(&mut self, case: &Case) -> io::Result<()> {
        self.0.ask_case(case, true).map(|_| ())
    }
}

/// Whether this process was started as a guest's init ([`GUEST_FLAG`] among its
/// arguments).
pub fn is_guest() -> bool {
    std::env::args_os().any(|a| a == GUEST_FLAG)
}

/// The body of the guest's init: prepare the guest, serve cases on `/dev/tty1` until
/// the host closes it, then power the guest off. Never returns: PID 1 may not exit
/// (the kernel panics), so every failure is reported on the console (the host's
/// stderr) and ends in a power-off too.
#[cfg(target_os = "linux")]
pub fn guest_main() -> ! {
    match guest_serve() {
        Ok(()) => {}
        Err(e) => eprintln!("closefuzz uml init: {e}"),
    }
    // SAFETY: plain syscalls; nothing is left to flush (answers are flushed per line).
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF);
    }
    std::process::exit(1)
}

/// User-mode Linux guests are Linux: elsewhere there is nothing to serve.
#[cfg(not(target_os = "linux"))]
pub fn guest_main() -> ! {
    eprintln!("closefuzz uml init: only a Linux build can be a User-mode Linux guest's init");
    std::process::exit(2)
}

#[cfg(target_os = "linux")]
fn guest_serve() -> io::Result<()> {
    use std::ffi::CString;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let proc_ = CString::new("proc").expect("no NUL");
    let target = CString::new("/proc").expect("no NUL");
    // SAFETY: valid NUL-terminated strings; a mount that is already there fails harmlessly.
    unsafe {
        libc::mount(
            proc_.as_ptr(),
            target.as_ptr(),
            proc_.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    // The host's settings, from the kernel command line (see SYSCTLS).
    let host = std::env::var(SYSCTLS_ENV).unwrap_or_default();
    for kv in host.split(';').filter(|kv| !kv.is_empty()) {
        let (k, v) = kv.split_once(':').unwrap_or((kv, ""));
        if let Err(e) = std::fs::write(Path::new("/proc/sys").join(k), v.replace(',', " ")) {
            eprintln!("closefuzz uml init: cannot set {k}: {e}");
        }
    }
    load_ipv6();
    prefault_heap();
    // drain_softirqs sleeps 1 µs at a time: without the default 50 µs of slack.
    // SAFETY: prctl with plain integer arguments.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1, 0, 0, 0) };
    if !super::netns::loopback_up() {
        return Err(io::Error::other("cannot bring lo up"));
    }
    let tty = CString::new("/dev/tty1").expect("no NUL");
    // SAFETY: open of a valid path; the descriptor is owned below.
    let fd = unsafe {
        libc::open(
            tty.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("cannot open /dev/tty1: {e}"),
        ));
    }
    // SAFETY: fd was just opened and is owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: termios is plain data, filled by tcgetattr before use.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(fd.as_raw_fd(), &mut t) != 0 {
            return Err(io::Error::last_os_error());
        }
        libc::cfmakeraw(&mut t);
        if libc::tcsetattr(fd.as_raw_fd(), libc::TCSANOW, &t) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let mut out = StableOut::new(std::fs::File::from(fd.try_clone()?));
    {
        use std::io::Write;
        out.write_all(format!("{GREETING} {}\n", kernel_release()).as_bytes())?;
    }
    let input = io::BufReader::new(std::fs::File::from(fd));
    super::worker::serve(input, out)
}

/// The longest [`drain_softirqs`] waits; then the step is observed as it is, and a
/// late segment shows as a disagreement rather than a hang.
pub const DRAIN_MAX: Duration = Duration::from_millis(20);

/// Waits, at most [`DRAIN_MAX`], until no `ksoftirqd` thread of this kernel is
/// runnable, blocking in 1 µs sleeps so that the scheduler runs them; returns the time
/// spent. Outside a User-mode Linux guest (no `/proc/PID/stat` of a `ksoftirqd`
/// found) it returns at once.
///
/// Why: from 4.9 to 6.4 (4cd13c21b207 "softirq: Let ksoftirqd do its job", reverted
/// by d15121be7485 in 6.5), `do_softirq` and `invoke_softirq` in kernel/softirq.c run
/// no NET_RX softirq inline while `ksoftirqd_running()`. The guest has one CPU and
/// PREEMPT_NONE, so a woken ksoftirqd runs only when the worker blocks, and a segment
/// that loopback's `netif_rx` queued meanwhile waits in the per-CPU backlog for steps.
/// Measured in the guest (6.1.176um, tcp4): right after a write whose peer saw nothing,
/// `/proc/net/softnet_stat` showed one packet in the backlog (its 12th column) and
/// ksoftirqd/0 in state R since before the call; after the worker blocked, ksoftirqd
/// ran once, the packet was processed and the peer became readable. In 28,000
/// observed steps every late segment had ksoftirqd runnable, and none arrived late
/// while it slept. A sleeping ksoftirqd leaves no NET_RX work behind: a softirq raised
/// outside interrupt context with no daemon running wakes it or runs at once.
#[cfg(target_os = "linux")]
pub fn drain_softirqs() -> Duration {
    use std::cell::RefCell;
    use std::time::Instant;
    thread_local! {
        // Each ksoftirqd's /proc/PID/stat, open for the worker's life: one pread a look.
        static DAEMONS: RefCell<Option<Vec<std::fs::File>>> = const { RefCell::new(None) };
    }
    DAEMONS.with(|d| {
        let mut d = d.borrow_mut();
        let daemons = d.get_or_insert_with(softirq_daemons);
        if daemons.is_empty() {
            return Duration::ZERO;
        }
        let start = Instant::now();
        while daemons.iter().any(runnable) && start.elapsed() < DRAIN_MAX {
            std::thread::sleep(Duration::from_micros(1));
        }
        start.elapsed()
    })
}

/// Elsewhere there is no guest kernel to wait for.
#[cfg(not(target_os = "linux"))]
pub fn drain_softirqs() -> Duration {
    Duration::ZERO
}

/// `/proc/PID/stat` of every `ksoftirqd/N` thread, open.
#[cfg(target_os = "linux")]
fn softirq_daemons() -> Vec<std::fs::File> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    dir.flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter(|e| {
            std::fs::read(e.path().join("comm")).is_ok_and(|c| c.starts_with(b"ksoftirqd/"))
        })
        .filter_map(|e| std::fs::File::open(e.path().join("stat")).ok())
        .collect()
}

/// Whether the thread whose `/proc/PID/stat` is `stat` is runnable (state `R`, the
/// first field after the parenthesised name). A thread that cannot be read counts as
/// asleep: it is gone.
#[cfg(target_os = "linux")]
fn runnable(stat: &std::fs::File) -> bool {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 128];
    let n = stat.read_at(&mut buf, 0).unwrap_or(0);
    stat_state(&buf[..n]) == Some(b'R')
}

/// The state letter of a `/proc/PID/stat` line: `12 (ksoftirqd/0) S 2 ...` gives `S`.
#[cfg(target_os = "linux")]
fn stat_state(line: &[u8]) -> Option<u8> {
    let close = line.iter().rposition(|&b| b == b')')?;
    line[close + 1..]
        .iter()
        .copied()
        .find(|b| !b.is_ascii_whitespace())
}

/// The host's settings that shape socket buffers, copied into the guest so that the
/// two kernels are compared under one configuration: the guest's defaults scale with
/// its memory, and a host may have raised them (here `rmem_max` and `tcp_rmem` were:
/// a 4 MiB write took 3 MB on the host and 1.9 MB in a guest with its defaults). A new
/// network namespace copies `tcp_rmem` and `tcp_wmem` from the initial one, on both.
/// They travel on the guest's command line, which the kernel hands to init as the
/// environment variable [`SYSCTLS_ENV`]: `KEY:V1,V2;KEY:V` (no spaces allowed there).
const SYSCTLS: [&str; 6] = [
    "net/core/rmem_default",
    "net/core/rmem_max",
    "net/core/wmem_default",
    "net/core/wmem_max",
    "net/ipv4/tcp_rmem",
    "net/ipv4/tcp_wmem",
];

/// See [`SYSCTLS`].
const SYSCTLS_ENV: &str = "CLOSEFUZZ_SYSCTLS";

/// The host's [`SYSCTLS`] as the value of [`SYSCTLS_ENV`]; those it cannot read are
/// left out (the guest keeps its default).
fn host_sysctls() -> String {
    let mut out = vec![];
    for k in SYSCTLS {
        if let Ok(v) = std::fs::read_to_string(Path::new("/proc/sys").join(k)) {
            let v: Vec<&str> = v.split_whitespace().collect();
            if !v.is_empty() && v.iter().all(|w| w.bytes().all(|b| b.is_ascii_digit())) {
                out.push(format!("{k}:{}", v.join(",")));
            }
        }
    }
    out.join(";")
}

/// Loads the guest's IPv6 module and the one it needs, from the guest's module tree
/// on the host (Debian: `/usr/lib/uml/modules/RELEASE`). Without it tcp6 cases fail
/// with EAFNOSUPPORT, which says why; a failure here is logged, not fatal.
#[cfg(target_os = "linux")]
fn load_ipv6() {
    use std::os::fd::AsRawFd;
    let release = kernel_release();
    for m in ["kernel/lib/crc-ccitt.ko", "kernel/net/ipv6/ipv6.ko"] {
        let found = ["/usr/lib/uml/modules", "/lib/modules"]
            .iter()
            .map(|d| Path::new(d).join(&release).join(m))
            .find(|p| p.is_file());
        let Some(path) = found else {
            continue; // built in, or not there at all: socket() will say.
        };
        let loaded = std::fs::File::open(&path).and_then(|f| {
            // SAFETY: finit_module on an open file with an empty, NUL-terminated
            // parameter string.
            let r =
                unsafe { libc::syscall(libc::SYS_finit_module, f.as_raw_fd(), c"".as_ptr(), 0) };
            if r == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        });
        match loaded {
            Err(e) if e.raw_os_error() != Some(libc::EEXIST) => {
                eprintln!("closefuzz uml init: cannot load {}: {e}", path.display())
            }
            _ => {}
        }
    }
}

/// How much heap the guest's init touches before it serves: more than any case
/// allocates (a write or read takes at most 4 MiB, the largest allocation).
#[cfg(target_os = "linux")]
const PREFAULT_HEAP: usize = 64 << 20;

/// Keeps the worker off pages it has never touched: every allocation comes from the
/// heap (no mmap below 32 MiB), the heap is never given back (no trim), and
/// [`PREFAULT_HEAP`] of it is written once, a byte a page, before the first case. Why:
/// answers came back with 16-byte runs of NULs (or of stale bytes) at offsets 16 and
/// 48; checked in the guest, the JSON text held them already before any write, and
/// with the heap touched beforehand the campaign that showed them every time (seed 8,
/// two threads) ran clean. The likely mechanism: a page fault on fresh heap in the
/// middle of glibc's SSE2 memcpy (a `String` growing) comes back with XMM registers
/// that are not the ones the copy loaded.
#[cfg(target_os = "linux")]
fn prefault_heap() {
    // SAFETY: mallopt with documented parameters, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX);
    }
    // Chunks below the mmap threshold, all alive at once so that they stack up in the
    // heap, then freed together: the heap keeps the touched pages for later use.
    let chunks: Vec<Vec<u8>> = (0..PREFAULT_HEAP / (8 << 20))
        .map(|_| {
            let mut v: Vec<u8> = Vec::with_capacity(8 << 20);
            let p = v.as_mut_ptr();
            for i in (0..v.capacity()).step_by(4096) {
                // SAFETY: i is within the capacity; volatile so the write happens.
                unsafe { std::ptr::write_volatile(p.add(i), 1) };
            }
            v
        })
        .collect();
    drop(chunks);
}

/// This kernel's release (`uname -r`).
#[cfg(target_os = "linux")]
fn kernel_release() -> String {
    // SAFETY: utsname is plain data, filled by uname.
    unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        libc::uname(&mut u);
        std::ffi::CStr::from_ptr(u.release.as_ptr())
            .to_string_lossy()
            .into_owned()
    }
}

/// Writes through one buffer whose pages were all written before first use and are
/// never freed. (See the module docs: what the guest kernel reads from a user page
/// met for the first time can be zeros.)
#[cfg(target_os = "linux")]
struct StableOut {
    file: std::fs::File,
    buf: Box<[u8]>,
}

#[cfg(target_os = "linux")]
impl StableOut {
    const SIZE: usize = 64 * 1024;

    fn new(file: std::fs::File) -> StableOut {
        let mut buf = vec![0u8; Self::SIZE].into_boxed_slice();
        for b in buf.iter_mut() {
            // SAFETY: a valid, aligned u8 in the buffer; volatile so that every page
            // is written (a zeroed allocation may not have been).
            unsafe { std::ptr::write_volatile(b, 0x20) };
        }
        StableOut { file, buf }
    }
}

#[cfg(target_os = "linux")]
impl io::Write for StableOut {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(self.buf.len());
        self.buf[..n].copy_from_slice(&data[..n]);
        self.file.write_all(&self.buf[..n])?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_letter_follows_the_last_parenthesis() {
        assert_eq!(stat_state(b"12 (ksoftirqd/0) R 2 0 0"), Some(b'R'));
        assert_eq!(stat_state(b"12 (ksoftirqd/0) S 2 0 0"), Some(b'S'));
        // A name may hold ") ": the state is after the last one.
        assert_eq!(stat_state(b"7 (a) b) D 1"), Some(b'D'));
        assert_eq!(stat_state(b""), None);
        assert_eq!(stat_state(b"12 (cut"), None);
    }

    /// TCP cases wait for the guest's softirq daemon after each call (see
    /// drain_softirqs); Unix sockets deliver without softirqs and do not.
    #[test]
    fn tcp_cases_drain_softirqs_and_unix_cases_do_not() {
        let c = UmlConfig {
            linux: PathBuf::from("/nonexistent/linux.uml"),
            worker: vec![],
            mem_mib: 64,
            answer_timeout: Duration::from_secs(1),
            start_timeout: Duration::from_secs(1),
        };
        for t in Transport::ALL {
            assert_eq!(c.settle(t).softirqs, t.is_tcp(), "{t}");
            assert_eq!(c.settle(t).max, Duration::ZERO, "{t}: no waiting by time");
        }
    }

    /// Outside a guest (no ksoftirqd's stat is readable as such, or it sleeps) the
    /// drain returns within its bound.
    #[test]
    fn a_drain_is_bounded() {
        assert!(drain_softirqs() <= DRAIN_MAX + Duration::from_millis(50));
    }
}
