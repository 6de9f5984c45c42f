//! What every stack that runs the [`worker`](super::worker) in another process shares:
//! start the process, talk to it over its stdin and stdout (one JSON line each way
//! per case, read by a thread so that every wait has a deadline), keep the tail of
//! its stderr for messages, stop it, and start a fresh one after a failure.
//!
//! A stack says how to start its process and what to call it ([`Launch`]); a
//! [`Remote`] does the rest. gVisor ([`super::gvisor`]) and User-mode Linux
//! ([`super::uml`]) are such stacks.
//!
//! Every process is started in a process group of its own: a Ctrl-C at the terminal
//! then reaches closefuzz alone, which stops between cases and ends its processes
//! itself, and a last-resort SIGKILL reaches whatever the process started (User-mode
//! Linux runs each guest address space as a host process of its own).

use super::worker::{Request, Response, Settle};
use super::{Case, KernelRun};

use crate::transport::Transport;
use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How many lines of the process's stderr are kept for error messages.
const STDERR_TAIL: usize = 20;

/// How a stack starts its worker process, and what messages call it.
pub(crate) trait Launch {
    /// The stack in messages about its worker: "the gVisor worker died".
    const NAME: &'static str;
    /// What did not start, in messages: "gVisor sandbox did not start".
    const WHAT: &'static str;

    /// The command that starts one worker process (stdin, stdout and stderr are set
    /// by the caller), and whatever must live as long as that process and be cleaned
    /// up after it (a temporary folder).
    fn command(&self) -> io::Result<(Command, Option<Box<dyn Send>>)>;

    /// The command line in short, for the message when it does not start.
    fn describe(&self) -> String;

    /// How long one case may take to be answered, beyond its own sleeps and lingers.
    fn answer_timeout(&self) -> Duration;

    /// How long the process may take to start and answer its first (empty) case.
    fn start_timeout(&self) -> Duration;

    /// How the worker settles after each step of a case over `transport`.
    fn settle(&self, transport: Transport) -> Settle;

    /// The start of the line the process prints once it reads requests, if it does:
    /// what is sent before then may be lost (a guest's console line drops input while
    /// nothing in the guest has it open).
    fn greeting(&self) -> Option<&'static str> {
        None
    }

    /// The longest line the process's input takes at once, if its channel has a
    /// limit: a longer request goes in parts (see [`super::worker::CONTINUED`]).
    fn line_limit(&self) -> Option<usize> {
        None
    }
}

/// A running worker process with its pipes.
struct Process {
    child: Child,
    stdin: Option<ChildStdin>,
    /// Answer lines from the worker's stdout, read by a thread; closed at EOF.
    answers: Receiver<io::Result<String>>,
    /// The last lines of the process's stderr.
    stderr: Arc<Mutex<VecDeque<String>>>,
    /// Lives as long as the process (see [`Launch::command`]); dropped after it is reaped.
    _guard: Option<Box<dyn Send>>,
}

enum Failure {
    Timeout(Duration),
    Exited(String),
    Protocol(String),
}

impl Process {
    fn spawn<L: Launch>(launch: &L) -> io::Result<Process> {
        let (mut command, guard) = launch.command()?;
        let program = command.get_program().to_string_lossy().into_owned();
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot run {program}: {e}")))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr_pipe = child.stderr.take().expect("stderr is piped");
        let (tx, answers) = mpsc::channel();
        std::thread::Builder::new()
            .name("worker-stdout".into())
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
            .name("worker-stderr".into())
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
        Ok(Process {
            child,
            stdin,
            answers,
            stderr,
            _guard: guard,
        })
    }

    /// The last non-empty stderr line, or a note that there was none.
    fn last_stderr(&self) -> String {
        // Give the stderr thread a moment to read what a dying process printed.
        std::thread::sleep(Duration::from_millis(50));
        let t = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
        t.iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| l.trim().to_string())
            .unwrap_or_else(|| "no message on stderr".into())
    }

    /// Sends one request (in parts of at most `limit` bytes, each acknowledged, if
    /// given) and waits, at most `timeout` in all, for its answer line.
    fn ask(
        &mut self,
        req: &Request,
        limit: Option<usize>,
        timeout: Duration,
    ) -> Result<String, Failure> {
        let line = serde_json::to_string(req).map_err(|e| Failure::Protocol(e.to_string()))?;
        self.ask_line(&line, limit, Instant::now() + timeout)
            .map_err(|f| match f {
                Failure::Timeout(_) => Failure::Timeout(timeout),
                f => f,
            })
    }

    fn ask_line(
        &mut self,
        line: &str,
        limit: Option<usize>,
        deadline: Instant,
    ) -> Result<String, Failure> {
        let limit = limit.unwrap_or(usize::MAX).max(2);
        // JSON is ASCII outside strings, and a case has no strings: bytes are chars.
        let mut rest = line;
        while rest.len() > limit {
            let (part, more) = rest.split_at(limit - 1);
            self.send(&format!("{}{part}\n", super::worker::CONTINUED))?;
            match self.receive(deadline)? {
                ack if ack == "+" => {}
                other => return Ok(other),
            }
            rest = more;
        }
        self.send(&format!("{rest}\n"))?;
        self.receive(deadline)
    }

    fn send(&mut self, text: &str) -> Result<(), Failure> {
        let stdin = self
            .stdin
            .as_mut()
            .expect("stdin is open while the process runs");
        if let Err(e) = stdin
            .write_all(text.as_bytes())
            .and_then(|()| stdin.flush())
        {
            return Err(Failure::Exited(format!(
                "cannot send the case ({e}): {}",
                self.last_stderr()
            )));
        }
        Ok(())
    }

    /// The next line from the worker, waiting until `deadline` at most.
    fn receive(&mut self, deadline: Instant) -> Result<String, Failure> {
        let now = Instant::now();
        let timeout = deadline.saturating_duration_since(now);
        match self.answers.recv_timeout(timeout) {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(Failure::Exited(format!("reading its answer failed: {e}"))),
            Err(RecvTimeoutError::Timeout) => Err(Failure::Timeout(timeout)),
            // Not reaped here: stop() sweeps its process group first (see wait_for).
            Err(RecvTimeoutError::Disconnected) => Err(Failure::Exited(format!(
                "the sandbox closed its output: {}",
                self.last_stderr()
            ))),
        }
    }

    /// Waits, at most `timeout`, for the line that starts with `greeting`.
    fn greeting(&mut self, greeting: &str, timeout: Duration) -> Result<(), Failure> {
        match self.answers.recv_timeout(timeout) {
            Ok(Ok(line)) if line.starts_with(greeting) => Ok(()),
            Ok(Ok(line)) => Err(Failure::Exited(format!(
                "expected '{greeting}', read '{line}'"
            ))),
            Ok(Err(e)) => Err(Failure::Exited(format!(
                "reading its first line failed: {e}"
            ))),
            Err(RecvTimeoutError::Timeout) => Err(Failure::Timeout(timeout)),
            Err(RecvTimeoutError::Disconnected) => Err(Failure::Exited(format!(
                "the sandbox exited: {}",
                self.last_stderr()
            ))),
        }
    }

    /// Waits up to `d` for the child to exit; whether it did. An exited child is
    /// reaped only after the rest of its process group is killed: while it is a
    /// zombie its pid, and so the group's id, cannot be reused by another process.
    /// (User-mode Linux leaves its host processes behind when it dies abruptly.)
    fn wait_for(&mut self, d: Duration) -> bool {
        let until = Instant::now() + d;
        let pid = self.child.id() as libc::pid_t;
        loop {
            // SAFETY: siginfo_t is plain data; WNOWAIT leaves the child unreaped.
            let exited = unsafe {
                let mut info: libc::siginfo_t = std::mem::zeroed();
                libc::waitid(
                    libc::P_PID,
                    pid as libc::id_t,
                    &mut info,
                    libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
                ) == 0
                    && info.si_pid() != 0
            };
            if exited {
                // SAFETY: the group our unreaped child leads (process_group(0)).
                unsafe { libc::kill(-pid, libc::SIGKILL) };
                let _ = self.child.wait();
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops the process and reaps it. `graceful`: first close stdin, which ends the
    /// worker and so the process. Then SIGTERM (runsc cleans up its bundle, User-mode
    /// Linux its host processes), then SIGKILL to the whole process group.
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
        // SAFETY: as above, the group of our unreaped child.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// Cases run by a worker in a process a [`Launch`] starts, one round trip per case.
/// A worker that does not answer in time is stopped (see [`Process::stop`]), the case
/// fails with an error, and the next case starts a fresh process.
pub(crate) struct Remote<L: Launch> {
    /// How to start the process.
    pub(crate) launch: L,
    process: Option<Process>,
    startup: Duration,
    starts: usize,
}

impl<L: Launch> Remote<L> {
    /// Starts a process and checks that it answers an empty case. The error is one
    /// line: why the process did not start.
    pub(crate) fn start(launch: L) -> io::Result<Remote<L>> {
        let mut r = Remote {
            launch,
            process: None,
            startup: Duration::ZERO,
            starts: 0,
        };
        r.ensure_started()?;
        Ok(r)
    }

    /// How long the last start took, up to its first answer.
    pub(crate) fn startup(&self) -> Duration {
        self.startup
    }

    /// How many processes were started (more than one after a timeout or crash).
    pub(crate) fn starts(&self) -> usize {
        self.starts
    }

    fn ensure_started(&mut self) -> io::Result<&mut Process> {
        if self.process.is_none() {
            let t = Instant::now();
            let mut p = Process::spawn(&self.launch)?;
            self.starts += 1;
            let probe = Request {
                case: Case::new(Transport::Tcp4, crate::step::Start::Connected, vec![]),
                settle: Settle::NONE,
                raw: false,
            };
            let greeted = match self.launch.greeting() {
                None => Ok(()),
                Some(g) => p.greeting(g, self.launch.start_timeout()),
            };
            let left = self.launch.start_timeout().saturating_sub(t.elapsed());
            let limit = self.launch.line_limit();
            let checked = match greeted.and_then(|()| p.ask(&probe, limit, left)) {
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
                p.stop(false);
                return Err(io::Error::other(format!(
                    "{} did not start ({}): {m}",
                    L::WHAT,
                    self.launch.describe()
                )));
            }
            self.startup = t.elapsed();
            self.process = Some(p);
        }
        Ok(self.process.as_mut().expect("just started"))
    }

    /// Runs one case (bare calls if `raw`) in the worker.
    pub(crate) fn ask_case(&mut self, case: &Case, raw: bool) -> io::Result<KernelRun> {
        let name = L::NAME;
        // Sleeps and lingering closes are time the case asks for, on top of the bound.
        let timeout = self.launch.answer_timeout() + case.time_bound();
        let steps = &case.steps;
        let req = Request {
            case: case.clone(),
            settle: self.launch.settle(case.transport),
            raw,
        };
        let expect = if raw { 0 } else { steps.len() };
        let limit = self.launch.line_limit();
        let p = self.ensure_started()?;
        let failure = match p.ask(&req, limit, timeout) {
            Ok(line) => match serde_json::from_str::<Response>(&line) {
                Ok(Response::Ok(run)) if run.steps.len() == expect => return Ok(run),
                Ok(Response::Ok(run)) => format!(
                    "the {name} worker answered {} steps for a case of {}",
                    run.steps.len(),
                    steps.len()
                ),
                // The worker is fine; only this case failed.
                Ok(Response::Err(e)) => {
                    return Err(io::Error::other(format!("{name} worker: {e}")))
                }
                Err(e) => format!("unreadable answer from the {name} worker ({e}): {line}"),
            },
            Err(Failure::Timeout(d)) => format!(
                "the {name} worker gave no answer within {:.1} s; sandbox killed",
                d.as_secs_f64()
            ),
            Err(Failure::Exited(m)) => format!("the {name} worker died: {m}"),
            Err(Failure::Protocol(m)) => format!("cannot encode the case: {m}"),
        };
        // The worker is out of step or gone: stop it; the next case starts a fresh one.
        if let Some(p) = self.process.take() {
            p.stop(false);
        }
        Err(io::Error::other(failure))
    }
}

impl<L: Launch> Drop for Remote<L> {
    fn drop(&mut self) {
        if let Some(p) = self.process.take() {
            p.stop(true);
        }
    }
}

/// Finds a program: the file `env` names if that variable is set, else the first
/// executable `name` on `PATH`. The error names it as `label` and says how to get it
/// (`install`).
pub(crate) fn find_program(
    env: &str,
    name: &str,
    label: &str,
    install: &str,
) -> io::Result<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{env}={} is not a file", p.display()),
            ))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{label} not found on PATH: install it ({install}) or set {env}"),
            )
        })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The first line `command` prints on stdout, trimmed, waiting at most 10 s for it to
/// exit (then it is killed): a program's `--version`.
pub(crate) fn first_line_of(command: &mut Command) -> Option<String> {
    use std::io::Read;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let mut out = String::new();
    child.stdout.take()?.read_to_string(&mut out).ok()?;
    Some(out.lines().next()?.trim().to_string())
}
