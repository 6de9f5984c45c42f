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

use super::remote::{Launch, Remote};
use super::worker::Settle;
use super::{Case, Executor, KernelRun};

use crate::transport::Transport;
use std::ffi::OsString;
use std::io;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// The environment variable that names the `runsc` binary, overriding the PATH search.
pub const RUNSC_ENV: &str = "CLOSEFUZZ_RUNSC";

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
    super::remote::find_program(
        RUNSC_ENV,
        "runsc",
        "runsc (gVisor)",
        "Debian: apt-get install runsc",
    )
}

impl Launch for GvisorConfig {
    const NAME: &'static str = "gVisor";
    const WHAT: &'static str = "gVisor sandbox";

    fn command(&self) -> io::Result<(Command, Option<Box<dyn Send>>)> {
        let Some((program, args)) = self.worker.split_first() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no worker command given",
            ));
        };
        let mut c = Command::new(&self.runsc);
        c.args(&self.runsc_flags).arg("do").arg(program).args(args);
        Ok((c, None))
    }

    fn describe(&self) -> String {
        format!(
            "{} {} do ...",
            self.runsc.display(),
            self.runsc_flags
                .iter()
                .map(|f| f.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ")
        )
    }

    fn answer_timeout(&self) -> Duration {
        self.answer_timeout
    }

    fn start_timeout(&self) -> Duration {
        self.start_timeout
    }

    fn settle(&self, transport: Transport) -> Settle {
        // gVisor's Unix sockets hand data and shutdowns to the peer inside the call
        // (pkg/sentry/socket/unix/transport: the queues are shared, no netstack
        // goroutine is involved), so only TCP needs to settle.
        if transport.is_tcp() {
            self.settle
        } else {
            Settle::NONE
        }
    }
}

/// Cases run by a worker in a gVisor sandbox. See the module docs.
pub struct Gvisor(Remote<GvisorConfig>);

impl Gvisor {
    /// Starts a sandbox and checks that it answers an empty case. The error is one
    /// line: `runsc` missing, or why the sandbox did not start.
    pub fn start(config: GvisorConfig) -> io::Result<Gvisor> {
        Remote::start(config).map(Gvisor)
    }

    /// Starts `worker` under the `runsc` on PATH with the default settings.
    pub fn with_worker(worker: Vec<OsString>) -> io::Result<Gvisor> {
        Gvisor::start(GvisorConfig::new(worker)?)
    }

    /// How long the last sandbox start took, up to its first answer.
    pub fn startup(&self) -> Duration {
        self.0.startup()
    }

    /// How many sandboxes were started (more than one after a timeout or crash).
    pub fn starts(&self) -> usize {
        self.0.starts()
    }

    /// The configuration in use.
    pub fn config(&self) -> &GvisorConfig {
        &self.0.launch
    }
}

impl Executor for Gvisor {
    fn run(&mut self, case: &Case) -> io::Result<KernelRun> {
        self.0.ask_case(case, false)
    }

    fn run_raw(&mut self, case: &Case) -> io::Result<()> {
        self.0.ask_case(case, true).map(|_| ())
    }

    fn settles(&self) -> bool {
        true
    }
}
