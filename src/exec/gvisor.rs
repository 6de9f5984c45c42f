//! Running cases on gVisor's netstack: a [`worker`](super::worker) inside a
//! `runsc do` sandbox.
//!
//! [`Gvisor`] starts `runsc [--rootless] --network=none do WORKER` once (the sandbox has loopback
//! only), keeps its stdin and stdout pipes, and sends it one case per
//! [`Executor::run`] call. Every answer has a deadline: a worker that does not
//! answer in time is killed (SIGTERM, then SIGKILL, by its pid) and reaped, the case
//! fails with an error, and the next case starts a fresh sandbox.
//!
//! Known pitfalls of `runsc do` (release 20221219, Debian's `runsc` package):
//! - without `--rootless` it must run as root in the initial user namespace (it sets
//!   up cgroups); anyone else, including root in a user namespace of its own, needs
//!   `--rootless` (measured as `nobody`, directly and under `unshare -Ur`), and no
//!   other flag;
//! - the sandbox writes a redirected stdout *file* from offset 0, overwriting what was
//!   there, so its stdout must be a pipe (it is, here);
//! - SIGKILL of `runsc` leaves its bundle directory `/tmp/runsc-do*` behind, SIGTERM
//!   does not, so a stuck worker gets SIGTERM first;
//! - `--platform=kvm` hangs on some hosts; the default `ptrace` platform works.

use super::worker::{Request, Response, Settle};
use super::{Case, Executor, KernelRun};

use crate::transport::Transport;
use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The environment variable that names the `runsc` binary, overriding the PATH search.
pub const RUNSC_ENV: &str = "CLOSEFUZZ_RUNSC";

/// How many lines of the sandbox's stderr are kept for error messages.
const STDERR_TAIL: usize = 20;

/// How to start the sandbox and how long to wait for it.
#[derive(Clone, Debug)]
pub struct GvisorConfig {
    /// The `runsc` binary.
    pub runsc: PathBuf,
    /// Global `runsc` flags, before `do`.
    pub runsc_flags: Vec<OsString>,
    /// The worker command to run inside the sandbox: program (an absolute path) and
    /// arguments.
    pub worker: Vec<OsString>,
    /// How long one case may take to be answered.
    pub answer_timeout: Duration,
    /// How long the sandbox may take to start and answer its first (empty) case.
    pub start_timeout: Duration,
    /// How the worker settles after each step.
    pub settle: Settle,
}

impl GvisorConfig {
    /// The default flags: `--network=none` (loopback only), and `--rootless` unless
    /// this process is root in the initial user namespace (see
    /// [`netns::privileged`](super::netns::privileged)): without it runsc sets up
    /// cgroups, which only real root may (`cannot set up cgroup ... permission denied`).
    pub fn default_flags() -> Vec<OsString> {
        let mut flags: Vec<OsString> = vec![];
        if !super::netns::privileged() {
            flags.push("--rootless".into());
        }
        flags.push("--network=none".into());
        flags
    }

    /// A configuration that runs `worker` (program and arguments) under the `runsc`
    /// found by [`find_runsc`], with 10 s per answer and 30 s to start.
    pub fn new(worker: Vec<OsString>) -> io::Result<GvisorConfig> {
        Ok(GvisorConfig {
            runsc: find_runsc()?,
            runsc_flags: Self::default_flags(),
            worker,
            answer_timeout: Duration::from_secs(10),
            start_timeout: Duration::from_secs(30),
            settle: Settle::default(),
        })
    }
}

/// Finds `runsc`: [`RUNSC_ENV`] if set, else the first `runsc` on `PATH`. The error
/// says how to get it.
pub fn find_runsc() -> io::Result<PathBuf> {
    if let Some(p) = std::env::var_os(RUNSC_ENV) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{RUNSC_ENV}={} is not a file", p.display()),
            ))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("runsc"))
        .find(|p| is_executable(p))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("runsc (gVisor) not found on PATH: install it (Debian: apt-get install runsc) or set {RUNSC_ENV}"),
            )
        })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A running sandbox with its pipes.
struct Sandbox {
    child: Child,
    stdin: Option<ChildStdin>,
    /// Answer lines from the worker's stdout, read by a thread; closed at EOF.
    answers: Receiver<io::Result<String>>,
    /// The last lines of the sandbox's stderr.
    stderr: Arc<Mutex<VecDeque<String>>>,
}

impl Sandbox {
    fn spawn(config: &GvisorConfig) -> io::Result<Sandbox> {
        let Some((program, args)) = config.worker.split_first() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no worker command given",
            ));
        };
        let mut child = Command::new(&config.runsc)
            .args(&config.runsc_flags)
            .arg("do")
            .arg(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot run {}: {e}", config.runsc.display()),
                )
            })?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr_pipe = child.stderr.take().expect("stderr is piped");
        let (tx, answers) = mpsc::channel();
        std::thread::Builder::new()
            .name("gvisor-stdout".into())
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let stop = line.is_err();
                    if tx.send(line).is_err() || stop {
                        return;
                    }
                }
            })?;
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let tail = Arc::clone(&stderr);
        std::thread::Builder::new()
            .name("gvisor-stderr".into())
            .spawn(move || {
                for line in BufReader::new(stderr_pipe).lines() {
                    let Ok(line) = line else { return };
                    let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
                    if t.len() == STDERR_TAIL {
                        t.pop_front();
                    }
                    t.push_back(line);
                }
            })?;
        Ok(Sandbox {
            child,
            stdin,
            answers,
            stderr,
        })
    }

    /// The last non-empty stderr line, or a note that there was none.
    fn last_stderr(&self) -> String {
        // Give the stderr thread a moment to read what a dying sandbox printed.
        std::thread::sleep(Duration::from_millis(50));
        let t = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
        t.iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| l.trim().to_string())
            .unwrap_or_else(|| "no message on stderr".into())
    }

    /// Sends one request and waits, at most `timeout`, for its answer line.
    fn ask(&mut self, req: &Request, timeout: Duration) -> Result<String, Failure> {
        let mut line = serde_json::to_string(req).map_err(|e| Failure::Protocol(e.to_string()))?;
        line.push('\n');
        let stdin = self
            .stdin
            .as_mut()
            .expect("stdin is open while the sandbox runs");
        if let Err(e) = stdin
            .write_all(line.as_bytes())
            .and_then(|()| stdin.flush())
        {
            return Err(Failure::Exited(format!(
                "cannot send the case ({e}): {}",
                self.last_stderr()
            )));
        }
        match self.answers.recv_timeout(timeout) {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(Failure::Exited(format!("reading its answer failed: {e}"))),
            Err(RecvTimeoutError::Timeout) => Err(Failure::Timeout(timeout)),
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.child.try_wait().ok().flatten();
                let how = status.map(|s| format!(" ({s})")).unwrap_or_default();
                Err(Failure::Exited(format!(
                    "the sandbox exited{how}: {}",
                    self.last_stderr()
                )))
            }
        }
    }

    /// Waits up to `d` for the child to exit; whether it did (and was reaped).
    fn wait_for(&mut self, d: Duration) -> bool {
        let until = Instant::now() + d;
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops the sandbox and reaps `runsc`. `graceful`: first close stdin, which ends
    /// the worker and so the sandbox. Then SIGTERM (runsc cleans up its bundle), then
    /// SIGKILL.
    fn stop(mut self, graceful: bool) {
        self.stdin = None;
        if graceful && self.wait_for(Duration::from_secs(2)) {
            return;
        }
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: signals our own child, which has not been reaped yet (so the pid
        // cannot have been reused).
        unsafe { libc::kill(pid, libc::SIGTERM) };
        if self.wait_for(Duration::from_secs(2)) {
            return;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

enum Failure {
    Timeout(Duration),
    Exited(String),
    Protocol(String),
}

/// Cases run by a worker in a gVisor sandbox. See the module docs.
pub struct Gvisor {
    config: GvisorConfig,
    sandbox: Option<Sandbox>,
    startup: Duration,
    starts: usize,
}

impl Gvisor {
    /// Starts a sandbox and checks that it answers an empty case. The error is one
    /// line: `runsc` missing, or why the sandbox did not start.
    pub fn start(config: GvisorConfig) -> io::Result<Gvisor> {
        let mut g = Gvisor {
            config,
            sandbox: None,
            startup: Duration::ZERO,
            starts: 0,
        };
        g.ensure_started()?;
        Ok(g)
    }

    /// Starts `worker` under the `runsc` on PATH with the default settings.
    pub fn with_worker(worker: Vec<OsString>) -> io::Result<Gvisor> {
        Gvisor::start(GvisorConfig::new(worker)?)
    }

    /// How long the last sandbox start took, up to its first answer.
    pub fn startup(&self) -> Duration {
        self.startup
    }

    /// How many sandboxes were started (more than one after a timeout or crash).
    pub fn starts(&self) -> usize {
        self.starts
    }

    /// The configuration in use.
    pub fn config(&self) -> &GvisorConfig {
        &self.config
    }

    fn ensure_started(&mut self) -> io::Result<&mut Sandbox> {
        if self.sandbox.is_none() {
            let t = Instant::now();
            let mut sb = Sandbox::spawn(&self.config)?;
            self.starts += 1;
            let probe = Request {
                case: Case::new(Transport::Tcp4, crate::step::Start::Connected, vec![]),
                settle: Settle::NONE,
                raw: false,
            };
            let checked = match sb.ask(&probe, self.config.start_timeout) {
                Ok(line) => match serde_json::from_str::<Response>(&line) {
                    Ok(Response::Ok(_)) => Ok(()),
                    Ok(Response::Err(e)) => {
                        Err(format!("the worker cannot create a TCP pair: {e}"))
                    }
                    Err(_) => Err(format!("unexpected output from the sandbox: {line}")),
                },
                Err(Failure::Timeout(d)) => {
                    Err(format!("no answer within {:.1} s", d.as_secs_f64()))
                }
                Err(Failure::Exited(m)) | Err(Failure::Protocol(m)) => Err(m),
            };
            if let Err(m) = checked {
                sb.stop(false);
                return Err(io::Error::other(format!(
                    "gVisor sandbox did not start ({} {} do ...): {m}",
                    self.config.runsc.display(),
                    self.config
                        .runsc_flags
                        .iter()
                        .map(|f| f.to_string_lossy())
                        .collect::<Vec<_>>()
                        .join(" "),
                )));
            }
            self.startup = t.elapsed();
            self.sandbox = Some(sb);
        }
        Ok(self.sandbox.as_mut().expect("just started"))
    }
}

impl Gvisor {
    fn ask_case(&mut self, case: &Case, raw: bool) -> io::Result<KernelRun> {
        // Sleeps and lingering closes are time the case asks for, on top of the bound.
        let timeout = self.config.answer_timeout + case.time_bound();
        let transport = case.transport;
        let steps = &case.steps;
        let req = Request {
            case: case.clone(),
            // gVisor's Unix sockets hand data and shutdowns to the peer inside the call
            // (pkg/sentry/socket/unix/transport: the queues are shared, no netstack
            // goroutine is involved), so only TCP needs to settle.
            settle: if transport.is_tcp() {
                self.config.settle
            } else {
                Settle::NONE
            },
            raw,
        };
        let expect = if raw { 0 } else { steps.len() };
        let sb = self.ensure_started()?;
        let failure = match sb.ask(&req, timeout) {
            Ok(line) => match serde_json::from_str::<Response>(&line) {
                Ok(Response::Ok(run)) if run.steps.len() == expect => return Ok(run),
                Ok(Response::Ok(run)) => format!(
                    "the gVisor worker answered {} steps for a case of {}",
                    run.steps.len(),
                    steps.len()
                ),
                // The worker is fine; only this case failed.
                Ok(Response::Err(e)) => {
                    return Err(io::Error::other(format!("gVisor worker: {e}")))
                }
                Err(e) => format!("unreadable answer from the gVisor worker ({e}): {line}"),
            },
            Err(Failure::Timeout(d)) => format!(
                "the gVisor worker gave no answer within {:.1} s; sandbox killed",
                d.as_secs_f64()
            ),
            Err(Failure::Exited(m)) => format!("the gVisor worker died: {m}"),
            Err(Failure::Protocol(m)) => format!("cannot encode the case: {m}"),
        };
        // The worker is out of step or gone: stop it; the next case starts a fresh one.
        if let Some(sb) = self.sandbox.take() {
            sb.stop(false);
        }
        Err(io::Error::other(failure))
    }
}

impl Executor for Gvisor {
    fn run(&mut self, case: &Case) -> io::Result<KernelRun> {
        self.ask_case(case, false)
    }

    fn run_raw(&mut self, case: &Case) -> io::Result<()> {
        self.ask_case(case, true).map(|_| ())
    }

    fn settles(&self) -> bool {
        true
    }
}

impl Drop for Gvisor {
    fn drop(&mut self) {
        if let Some(sb) = self.sandbox.take() {
            sb.stop(true);
        }
    }
}
