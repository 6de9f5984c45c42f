//! Scenario scripts: the human-readable form of a step sequence.
//!
//! ```text
//! # the motivating case
//! transport tcp4
//! a: write 5          => ok 5
//! b: read 100         => data 5
//! b: close            => ok
//! a: write 5          => ok 5
//! a: write 5          => EPIPE sigpipe
//! ```
//!
//! One step per line; blank lines and `#` comments anywhere; an optional
//! `transport NAME` header before the first step; an optional expectation after `=>`.
//!
//! # Expectations
//!
//! After `=>` comes what the step must return:
//!
//! - `ok` (a close, shutdown or write that succeeded), `ok N` (a write of N bytes),
//!   `data N` (a read of N bytes; the content is checked against the writer's byte
//!   pattern through the model), `eof`, an errno name (`EPIPE`, `ECONNRESET`, ...),
//!   `error 0` or `error ERRNO` (SO_ERROR), a TCP state or several joined by `|`
//!   (`FIN_WAIT1|FIN_WAIT2`), `n/a`, `closed` (no call made: the end was closed);
//! - for `poll`: `poll FLAGS` (exactly these revents; FLAGS among IN, OUT, ERR, HUP,
//!   RDHUP joined by `|`, or `-` for none), `poll has FLAGS` (all of these set, the
//!   rest not checked), `poll any FLAGS` (at least one of these set), `poll none FLAGS`
//!   (none of these set), `poll FLAGS within MASK` (of the flags in MASK, exactly FLAGS
//!   are set, `-` for none of them: what a test that polls for MASK and checks
//!   `revents` asserts);
//! - then optionally `sigpipe` (the step must raise SIGPIPE) or `sigpipe?` (SIGPIPE is
//!   not checked). Without either the step must not raise SIGPIPE.
//!
//! # Per-platform expectations
//!
//! Where platforms differ, the default expectation is followed by overrides, each
//! `; PLATFORM => EXPECTATION`:
//!
//! ```text
//! a: write 5          => EPIPE sigpipe; gvisor => EPIPE
//! ```
//!
//! # The network as steps (`network held`)
//!
//! ```text
//! transport tcp4
//! network held
//! a: close            => ok
//! b: close            => ok
//! held a>b            => FIN
//! deliver a>b         => ok
//! deliver b>a all     => ok
//! ```
//!
//! The header `network held` (TCP on a stack that can hold segments: the host kernel, between two network namespaces joined by TUN devices, see [`crate::exec::wire`]; smoltcp) makes
//! every segment wait in flight until a step moves it; `network instant` (the default)
//! delivers each inside the step that sent it. Under `start connected` the handshake is
//! delivered before the first step. Under `start listening` (where the stack has a
//! listener: the host kernel) the handshake is steps too: `a: connect` leaves `a` in
//! SYN_SENT with its SYN held `a>l`; delivered, the listener answers SYN-ACK `l>a`
//! (a request in SYN_RECV, not a socket: `b: accept` says EAGAIN); delivered, `a` is
//! ESTABLISHED and sends the ACK; the first segment with a valid ACK that reaches the
//! request (that ACK, or data sent after it) makes the child and queues it, and once
//! `b: accept` names it the direction is `a>b`. A segment is named by the ends' names
//! when the step runs: `l` for the server side until it is accepted. Sequence numbers
//! are relative to each end's ISN + 1 (the first data byte is 0); a SYN or SYN-ACK
//! is reported with sequence number 0 (its ISN), and so is an RST answering a SYN
//! (which carries 0). The steps, on lines of their own:
//!
//! - `deliver a>b`: the oldest segment held from `a` to `b` arrives; `deliver a>b K`
//!   the K-th oldest (K from 1 to 64: a reordering); `deliver a>b all` every segment
//!   held that way when the step begins, oldest first, each answered before the next.
//!   `=> ok`, or `=> n/a` when fewer than K segments are held (for `all`: none).
//! - `drop a>b`: the oldest segment held from `a` to `b` is lost. `=> ok` or `=> n/a`.
//! - `held a>b => NAMES`: what is in flight that way, oldest first, `-` for nothing. A
//!   segment is named by what it carries: `DATA(n)` (n payload bytes), `FIN`,
//!   `DATA(n)+FIN` (both on one segment), `RST`, `SYN`, `SYN-ACK`, and `ACK` for a
//!   segment that carries nothing else (the ACK of data or of a FIN, a window update, a
//!   duplicate ACK); the ACK flag the others carry is not named.
//!
//! A lost or held segment is resent only by the retransmission timer, which runs in
//! `sleep` steps. The model has Linux's (see the held rules in `src/model/tcp/held.rs`),
//! not smoltcp's: a held script that sleeps does not run on smoltcp (its surface's
//! `held_sleep`). `linger N` with N above 0 is refused under `network held` (the close
//! would wait for an ACK only a later step can deliver, while that timer fires), and so
//! are writes past [`HELD_MAX_BYTES_PER_END`] bytes per socket (beyond them segment
//! sizes and windows would decide what leaves, which the model does not follow).
//!
//! PLATFORM is a `--platform` name (`linux`, `gvisor`), at most one override each;
//! the default applies to every platform without one. Each part is checked against
//! the step like any expectation. An override states what that platform's kernel does
//! and its profile (`src/model/profile.rs`) explains, so the model still has to
//! predict it: an override never relaxes the comparison with the model.

use crate::exec::Case;
use crate::model::Platform;
use crate::step::{
    Arg, Bufs, CallKind, CallSpec, Dir, Errno, Network, Op, Outcome, PollSet, Returns, SegName,
    Shut, Sock, Start, StateSet, Step, StepResult, Which, CALLS, MAX_BUF, MAX_NTH, MAX_SLEEP_MS,
};
use crate::transport::Transport;
use std::fmt;
use std::path::Path;

pub use crate::step::MAX_WRITE;
/// The most bytes a script may ask one socket to write in all (each write is at most
/// [`crate::step::MAX_WRITE`]): a bound on the time a script can take, far past what
/// any socket buffer holds.
pub const MAX_BYTES_PER_END: u64 = 256 << 20;

/// The most bytes one socket may write in all under `network held`: every write is then
/// one segment (the loopback MSS is 65,475 bytes and more) and the peer's window never
/// limits what leaves (smoltcp's 64 KiB receive buffer keeps 48 KiB free, and never
/// doubles its window by a read, so it sends no window update).
pub const HELD_MAX_BYTES_PER_END: u64 = 16384;

/// What one expectation says a step must return.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expect {
    /// The outcome; for reads, `Data` holds only the expected length (the content is
    /// checked against the writer's pattern through the model).
    pub outcome: ExpectOutcome,
    /// What the step must do about SIGPIPE.
    pub sigpipe: Sigpipe,
}

/// The SIGPIPE part of an expectation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sigpipe {
    /// `sigpipe`: the step must raise it.
    Raised,
    /// Nothing written: the step must not raise it.
    NotRaised,
    /// `sigpipe?`: not checked.
    Unchecked,
}

/// The outcome part of an expectation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExpectOutcome {
    /// `ok`, or `ok N` for a write.
    Ok(Option<usize>),
    /// `ok N..M`: a count from N to M.
    OkRange(usize, usize),
    /// `data N`.
    Data(usize),
    /// Anything else, compared exactly.
    Exact(Outcome),
    /// `poll has FLAGS`: all of these set, the rest not checked.
    PollHas(PollSet),
    /// `poll any FLAGS`: at least one of these set.
    PollAny(PollSet),
    /// `poll none FLAGS`: none of these set.
    PollNone(PollSet),
    /// `poll FLAGS within MASK`: of the flags in `mask`, exactly `flags` are set.
    PollWithin {
        /// The flags of `mask` that must be set (a subset of `mask`).
        flags: PollSet,
        /// The flags looked at.
        mask: PollSet,
    },
}

impl Expect {
    /// Whether a real result satisfies this expectation.
    pub fn matches(&self, got: &StepResult) -> bool {
        let sigpipe_ok = match self.sigpipe {
            Sigpipe::Raised => got.sigpipe,
            Sigpipe::NotRaised => !got.sigpipe,
            Sigpipe::Unchecked => true,
        };
        if !sigpipe_ok {
            return false;
        }
        match (&self.outcome, &got.outcome) {
            (ExpectOutcome::Ok(None), Outcome::Ok) => true,
            (ExpectOutcome::Ok(None), Outcome::Wrote(_) | Outcome::Queued(_)) => true,
            (ExpectOutcome::Ok(Some(n)), Outcome::Wrote(m) | Outcome::Queued(m)) => n == m,
            (ExpectOutcome::OkRange(lo, hi), Outcome::Wrote(m) | Outcome::Queued(m)) => {
                lo <= m && m <= hi
            }
            (ExpectOutcome::Data(n), Outcome::Data(d)) => *n == d.len(),
            (ExpectOutcome::Exact(o), got) => o.admits(got),
            (ExpectOutcome::PollHas(want), Outcome::Poll(p)) => p.contains(*want),
            (ExpectOutcome::PollAny(want), Outcome::Poll(p)) => p.0 & want.0 != 0,
            (ExpectOutcome::PollNone(want), Outcome::Poll(p)) => p.0 & want.0 == 0,
            (ExpectOutcome::PollWithin { flags, mask }, Outcome::Poll(p)) => {
                p.0 & mask.0 == flags.0
            }
            _ => false,
        }
    }
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            ExpectOutcome::Ok(None) => f.write_str("ok")?,
            ExpectOutcome::Ok(Some(n)) => write!(f, "ok {n}")?,
            ExpectOutcome::OkRange(lo, hi) => write!(f, "ok {lo}..{hi}")?,
            ExpectOutcome::Data(n) => write!(f, "data {n}")?,
            ExpectOutcome::Exact(o) => write!(f, "{o}")?,
            ExpectOutcome::PollHas(p) => write!(f, "poll has {p}")?,
            ExpectOutcome::PollAny(p) => write!(f, "poll any {p}")?,
            ExpectOutcome::PollNone(p) => write!(f, "poll none {p}")?,
            ExpectOutcome::PollWithin { flags, mask } => write!(f, "poll {flags} within {mask}")?,
        }
        match self.sigpipe {
            Sigpipe::Raised => f.write_str(" sigpipe"),
            Sigpipe::NotRaised => Ok(()),
            Sigpipe::Unchecked => f.write_str(" sigpipe?"),
        }
    }
}

/// Everything a script line says a step must return: a default expectation and, where
/// platforms differ, one override per platform (`EPIPE sigpipe; gvisor => EPIPE`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expectation {
    /// What every platform without an override must return.
    pub default: Expect,
    /// Overrides, in the order written; at most one per platform.
    pub overrides: Vec<(Platform, Expect)>,
}

impl Expectation {
    /// One expectation for every platform.
    pub fn everywhere(default: Expect) -> Expectation {
        Expectation {
            default,
            overrides: Vec::new(),
        }
    }

    /// The expectation that holds on `platform`.
    pub fn on(&self, platform: Platform) -> &Expect {
        self.overrides
            .iter()
            .find(|(p, _)| *p == platform)
            .map_or(&self.default, |(_, e)| e)
    }
}

impl fmt::Display for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.default)?;
        for (p, e) in &self.overrides {
            write!(f, "; {p} => {e}")?;
        }
        Ok(())
    }
}

/// One step line of a script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptStep {
    /// The step.
    pub step: Step,
    /// What it must return, if the line says: use [`ScriptStep::expect_on`] for the
    /// expectation that holds on a platform.
    pub expect: Option<Expectation>,
    /// 1-based line number in the file.
    pub line: usize,
}

impl ScriptStep {
    /// The expectation this line states for `platform`, if it states one.
    pub fn expect_on(&self, platform: Platform) -> Option<&Expect> {
        self.expect.as_ref().map(|e| e.on(platform))
    }
}

/// A parsed scenario.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scenario {
    /// Where it came from (a file name, or a label).
    pub name: String,
    /// The `transport` header, if any.
    pub transport: Option<Transport>,
    /// The `start` header (`connected` when absent).
    pub start: Start,
    /// The `network` header (`instant` when absent).
    pub network: Network,
    /// The `sigpipe` header: the SIGPIPE treatment the scenario's process is imagined
    /// with. The executor always blocks the signal and reports it, so the kernel's
    /// answers do not change; replay and explain say what such a process experienced.
    pub sigpipe: Option<Disposition>,
    /// The comment lines before the first step: what the scenario teaches.
    pub description: Vec<String>,
    /// The `rcvbuf N` and `sndbuf N` headers: sizes set on every socket before it
    /// connects.
    pub bufs: Bufs,
    /// The steps in order.
    pub steps: Vec<ScriptStep>,
}

/// How a process treats SIGPIPE (the article's programs had each of these).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// SIG_DFL: the signal kills the process.
    Default,
    /// SIG_IGN: the call returns EPIPE and the process goes on.
    Ignore,
    /// A handler: it runs, then the call returns EPIPE.
    Handler,
}

impl Disposition {
    /// Looks a header word up.
    pub fn from_name(s: &str) -> Option<Disposition> {
        match s {
            "default" => Some(Disposition::Default),
            "ignore" => Some(Disposition::Ignore),
            "handler" => Some(Disposition::Handler),
            _ => None,
        }
    }

    /// What a process with this treatment experiences at a call that raised SIGPIPE.
    pub fn at_sigpipe(self) -> &'static str {
        match self {
            Disposition::Default => {
                "the process would be killed here by SIGPIPE (exit status 141): the call never returns"
            }
            Disposition::Ignore => {
                "SIGPIPE is ignored: the call returns its error and the process goes on"
            }
            Disposition::Handler => {
                "the SIGPIPE handler runs, then the call returns its error and the process goes on"
            }
        }
    }
}

/// A parse or load error: file, line and what was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptError {
    /// The file (or label).
    pub file: String,
    /// 1-based line, or 0 when the error is about the whole file.
    pub line: usize,
    /// What was wrong and what was expected.
    pub message: String,
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        }
    }
}

impl std::error::Error for ScriptError {}

impl Scenario {
    /// Reads and parses a script file; `-` reads standard input. A leading UTF-8 byte
    /// order mark is skipped. Refuses anything but a regular file (a FIFO or a device
    /// could block or never end) and more than [`MAX_SCRIPT_BYTES`]; text a line echoes
    /// in an error is cut to [`ECHO_CHARS`] characters.
    pub fn load(path: &Path) -> Result<Scenario, ScriptError> {
        let stdin = path == Path::new("-");
        let file = if stdin {
            "<stdin>".to_string()
        } else {
            path.display().to_string()
        };
        let fail = |message: String| ScriptError {
            file: file.clone(),
            line: 0,
            message,
        };
        let bytes = if stdin {
            read_capped(
                std::io::stdin().lock(),
                MAX_SCRIPT_BYTES,
                "a scenario script",
            )
        } else {
            read_regular(
                path,
                MAX_SCRIPT_BYTES,
                "a scenario file, or - for standard input",
            )
        }
        .map_err(|e| fail(format!("cannot read scenario: {e}")))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| fail("not UTF-8 text: expected a scenario script".into()))?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        Scenario::parse(&file, text).map_err(|e| ScriptError {
            message: clip_echoes(&e.message),
            ..e
        })
    }

    /// Parses script text; `name` labels errors.
    pub fn parse(name: &str, text: &str) -> Result<Scenario, ScriptError> {
        let mut sc = Scenario {
            name: name.to_string(),
            transport: None,
            start: Start::Connected,
            network: Network::Instant,
            sigpipe: None,
            description: Vec::new(),
            bufs: Bufs::default(),
            steps: Vec::new(),
        };
        let err = |line: usize, message: String| ScriptError {
            file: name.to_string(),
            line,
            message,
        };
        let mut written = [0u64; 5];
        let mut start_seen = false;
        let mut network_seen = false;
        let mut slept: u64 = 0;
        for (i, raw) in text.lines().enumerate() {
            let line_no = i + 1;
            let (code, comment) = match raw.find('#') {
                Some(p) => (&raw[..p], Some(raw[p + 1..].trim())),
                None => (raw, None),
            };
            let code = code.trim();
            if code.is_empty() {
                if let (Some(c), true) = (comment, sc.steps.is_empty()) {
                    sc.description.push(c.to_string());
                }
                continue;
            }
            if let Some(rest) = code.strip_prefix("transport") {
                if rest.is_empty() || rest.starts_with(char::is_whitespace) {
                    if !sc.steps.is_empty() {
                        return Err(err(
                            line_no,
                            "the transport header must come before the first step".into(),
                        ));
                    }
                    if sc.transport.is_some() {
                        return Err(err(
                            line_no,
                            "a second transport header: expected one at most".into(),
                        ));
                    }
                    let t = rest.trim();
                    let t = t.parse::<Transport>().map_err(|m| err(line_no, m))?;
                    sc.transport = Some(t);
                    continue;
                }
            }
            if let Some(rest) = code.strip_prefix("sigpipe") {
                if rest.is_empty() || rest.starts_with(char::is_whitespace) {
                    if !sc.steps.is_empty() || sc.sigpipe.is_some() {
                        return Err(err(
                            line_no,
                            "the sigpipe header comes once, before the first step".into(),
                        ));
                    }
                    let w = rest.trim();
                    sc.sigpipe = Some(Disposition::from_name(w).ok_or_else(|| {
                        err(
                            line_no,
                            format!(
                                "'{}': expected 'sigpipe default', 'sigpipe ignore' or 'sigpipe handler'",
                                clip_echo(w)
                            ),
                        )
                    })?);
                    continue;
                }
            }
            if let Some((word, rest)) = code.split_once(char::is_whitespace) {
                if matches!(word, "rcvbuf" | "sndbuf") && !rest.contains(':') {
                    if !sc.steps.is_empty() {
                        return Err(err(
                            line_no,
                            format!("the {word} header must come before the first step (a step on one socket is 's: {word} N')"),
                        ));
                    }
                    let slot = if word == "rcvbuf" {
                        &mut sc.bufs.rcvbuf
                    } else {
                        &mut sc.bufs.sndbuf
                    };
                    if slot.is_some() {
                        return Err(err(
                            line_no,
                            format!("a second {word} header: expected one at most"),
                        ));
                    }
                    let n = rest
                        .trim()
                        .parse::<u32>()
                        .ok()
                        .filter(|n| (1..=MAX_BUF).contains(n))
                        .ok_or_else(|| {
                            err(
                                line_no,
                                format!(
                                    "'{}': expected '{word} N' with N a buffer size in bytes from 1 to {MAX_BUF}",
                                    clip_echo(rest.trim())
                                ),
                            )
                        })?;
                    *slot = Some(n);
                    continue;
                }
            }
            if let Some(rest) = code.strip_prefix("network") {
                if rest.is_empty() || rest.starts_with(char::is_whitespace) {
                    if !sc.steps.is_empty() || network_seen {
                        return Err(err(
                            line_no,
                            "the network header comes once, before the first step".into(),
                        ));
                    }
                    let w = rest.trim();
                    sc.network = Network::from_name(w).ok_or_else(|| {
                        err(
                            line_no,
                            format!(
                                "'{}': expected 'network instant' or 'network held'",
                                clip_echo(w)
                            ),
                        )
                    })?;
                    network_seen = true;
                    continue;
                }
            }
            if let Some(rest) = code.strip_prefix("start") {
                if rest.is_empty() || rest.starts_with(char::is_whitespace) {
                    if !sc.steps.is_empty() {
                        return Err(err(
                            line_no,
                            "the start header must come before the first step".into(),
                        ));
                    }
                    if start_seen {
                        return Err(err(
                            line_no,
                            "a second start header: expected one at most".into(),
                        ));
                    }
                    let w = rest.trim();
                    sc.start = Start::from_name(w).ok_or_else(|| {
                        err(
                            line_no,
                            format!(
                                "'{}': expected 'start connected' or 'start listening'",
                                clip_echo(w)
                            ),
                        )
                    })?;
                    start_seen = true;
                    continue;
                }
            }
            let (step_text, expect_text) = match code.split_once("=>") {
                Some((s, e)) => (s.trim(), Some(e.trim())),
                None => (code, None),
            };
            let step = parse_step(step_text).map_err(|m| err(line_no, m))?;
            match step {
                Step::Call { sock, op } if op.write_len().is_some() => {
                    written[sock.index()] += u64::from(op.write_len().unwrap_or(0));
                    if sc.network == Network::Held && written[sock.index()] > HELD_MAX_BYTES_PER_END
                    {
                        return Err(err(
                            line_no,
                            format!(
                                "socket {sock} writes more than {HELD_MAX_BYTES_PER_END} bytes in all under network held: expected less (the model follows one segment per write)"
                            ),
                        ));
                    }
                    if written[sock.index()] > MAX_BYTES_PER_END {
                        return Err(err(
                            line_no,
                            format!(
                                "socket {sock} writes more than {MAX_BYTES_PER_END} bytes in all: expected less in one script"
                            ),
                        ));
                    }
                }
                Step::Call {
                    op: Op::Linger(n), ..
                } if n > 0 && sc.network == Network::Held => {
                    return Err(err(
                        line_no,
                        format!("'linger {n}' under network held: a lingering close waits for the ACK of its FIN, which only a later step can deliver, so the close would block for {n} s: expected 'linger 0' or none"),
                    ));
                }
                Step::Call {
                    op: Op::RcvBuf(_) | Op::SndBuf(_),
                    ..
                } if sc.network == Network::Held => {
                    return Err(err(
                        line_no,
                        "'rcvbuf'/'sndbuf' under network held: buffer sizes decide how much a write takes and what the window lets leave, which the held model does not follow: expected the default buffers".into(),
                    ));
                }
                Step::Sleep { ms } => {
                    slept += u64::from(ms);
                    if slept > u64::from(MAX_SLEEP_MS) {
                        return Err(err(
                            line_no,
                            format!("the sleeps add up to more than {MAX_SLEEP_MS} ms: expected less in one script"),
                        ));
                    }
                }
                _ => {}
            }
            if step.is_wire() && sc.network != Network::Held {
                return Err(err(
                    line_no,
                    format!("'{step}' moves held segments: expected a 'network held' header before the first step"),
                ));
            }
            if sc.network == Network::Held && !sc.bufs.is_default() {
                return Err(err(
                    line_no,
                    "'rcvbuf'/'sndbuf' headers under network held: buffer sizes decide how much a write takes and what the window lets leave, which the held model does not follow: expected the default buffers".into(),
                ));
            }
            if let Step::Deliver { dir, .. } | Step::Drop { dir } | Step::Held { dir } = step {
                let client = |s: Sock| matches!(s, Sock::A | Sock::C);
                let server = |s: Sock| matches!(s, Sock::L | Sock::B | Sock::D);
                let fits = match sc.start {
                    Start::Connected => Dir::PAIR.contains(&dir),
                    Start::Listening => {
                        (client(dir.from) && server(dir.to)) || (server(dir.from) && client(dir.to))
                    }
                };
                if !fits {
                    let want = match sc.start {
                        Start::Connected => "a>b or b>a, the directions of the connected pair",
                        Start::Listening => "a client (a or c) and the listener or an accepted socket (l, b or d), like a>l or b>a",
                    };
                    return Err(err(line_no, format!("'{dir}': expected {want}")));
                }
            }
            if sc.start == Start::Connected {
                if let Step::Call { sock, .. } = step {
                    if !Start::Connected.initial().contains(&sock) {
                        return Err(err(
                            line_no,
                            format!("'{sock}' does not exist when the scenario starts connected: expected a or b, or a 'start listening' header"),
                        ));
                    }
                }
            }
            let expect = match (expect_text, step) {
                (None, _) => None,
                (Some(_), Step::Sleep { .. }) => {
                    return Err(err(
                        line_no,
                        "'sleep' has no result: expected no '=>'".into(),
                    ))
                }
                (Some(e), Step::Call { op, .. }) => {
                    Some(parse_expectation(e, op).map_err(|m| err(line_no, m))?)
                }
                (Some(e), wire) => Some(
                    parse_overridden(e, |text, _| parse_wire_expect(text, wire))
                        .map_err(|m| err(line_no, m))?,
                ),
            };
            sc.steps.push(ScriptStep {
                step,
                expect,
                line: line_no,
            });
        }
        if sc.steps.is_empty() {
            return Err(err(0, "no steps: expected lines like 'a: write 5'".into()));
        }
        Ok(sc)
    }

    /// The bare step sequence.
    pub fn step_list(&self) -> Vec<Step> {
        self.steps.iter().map(|s| s.step).collect()
    }

    /// The scenario as a case to run; its transport header wins over `default`.
    pub fn case(&self, default: Transport) -> Case {
        Case::new(
            self.transport.unwrap_or(default),
            self.start,
            self.step_list(),
        )
        .with_bufs(self.bufs)
        .with_network(self.network)
    }

    /// Why a stack that can be asked `surface` cannot set up this scenario's world over
    /// `transport` (its transport, start or buffer headers); `None` when it can. Its
    /// steps then run, and those the stack cannot be asked answer `n/a`.
    pub fn world_unrunnable_on(
        &self,
        surface: &crate::step::Surface,
        transport: Transport,
    ) -> Option<String> {
        if !surface.runs(transport) {
            return Some(format!("transport {transport} does not run there"));
        }
        if !surface.starts.contains(&self.start) {
            return Some(format!("start {} does not run there", self.start));
        }
        if !self.bufs.is_default() && !surface.can_ask(Op::RcvBuf(1)) {
            return Some("buffer sizes cannot be set there".into());
        }
        if !surface.networks.contains(&self.network) {
            return Some(format!(
                "network {} does not run there (its segments cannot be held)",
                self.network
            ));
        }
        if self.network == Network::Held && !transport.is_tcp() {
            return Some(format!("network held runs TCP only, not {transport}"));
        }
        if self.network == Network::Held
            && !surface.held_sleep
            && self
                .steps
                .iter()
                .any(|s| matches!(s.step, Step::Sleep { .. }))
        {
            return Some(
                "'sleep' under network held does not run there (its retransmission timer is not modelled)"
                    .into(),
            );
        }
        None
    }

    /// Why a stack that can be asked `surface` cannot run this scenario over
    /// `transport` (its transport, start or buffer headers, or a step with a written
    /// expectation that the stack cannot be asked); `None` when it can.
    pub fn unrunnable_on(
        &self,
        surface: &crate::step::Surface,
        transport: Transport,
    ) -> Option<String> {
        if let Some(why) = self.world_unrunnable_on(surface, transport) {
            return Some(why);
        }
        self.steps.iter().find_map(|s| match s.step.as_call() {
            Some((_, op)) if s.expect.is_some() && !surface.can_ask(op) => {
                Some(format!("line {}: {op} cannot be asked there", s.line))
            }
            _ => None,
        })
    }
}

/// The calls as a help text lists them: `write N, read N, …`.
pub fn call_usage() -> String {
    CALLS
        .iter()
        .map(|c| c.usage())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The most bytes [`Scenario::load`] reads: far more than any script needs, far less
/// than would hurt to hold.
pub const MAX_SCRIPT_BYTES: u64 = 16 << 20;

/// The most characters of a script's own text that an error quotes.
pub const ECHO_CHARS: usize = 80;

/// The most characters in a load error's message (its quotes already cut).
const MAX_MESSAGE_CHARS: usize = 400;

/// Reads `path`, a regular file of at most `max` bytes; `expected` (what it should be)
/// goes into the error otherwise. For every file a user names: scripts, recordings.
pub fn read_regular(path: &Path, max: u64, expected: &str) -> std::io::Result<Vec<u8>> {
    open_regular(path, expected).and_then(|f| read_capped(f, max, expected))
}

/// Opens `path` only if it is a regular file. Checked before opening, since opening a
/// FIFO with no writer blocks; and opened non-blocking, so that a FIFO swapped in
/// between the check and the open cannot block either.
fn open_regular(path: &Path, expected: &str) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let kind = |m: &std::fs::Metadata| {
        let t = m.file_type();
        if t.is_file() {
            None
        } else if t.is_dir() {
            Some("a folder")
        } else {
            Some("not a regular file (a FIFO, socket or device)")
        }
    };
    if let Some(what) = kind(&std::fs::metadata(path)?) {
        return Err(std::io::Error::other(format!(
            "{what}: expected {expected}"
        )));
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    if let Some(what) = kind(&f.metadata()?) {
        return Err(std::io::Error::other(format!(
            "{what}: expected {expected}"
        )));
    }
    Ok(f)
}

/// Reads at most `max` bytes, and says so if there is more.
fn read_capped(r: impl std::io::Read, max: u64, expected: &str) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = vec![];
    r.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(std::io::Error::other(format!(
            "larger than {} MiB: expected {expected}",
            max >> 20
        )));
    }
    Ok(bytes)
}

/// `s` cut to `max` characters (with '…' when cut), control characters escaped so
/// that an error stays on one line.
fn clip(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .take(max)
        .flat_map(|c| {
            let e: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            e
        })
        .collect();
    if s.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

/// An error message with every quoted piece of the script's text cut to
/// [`ECHO_CHARS`], and the whole cut to a few lines' worth: a 50 MB line is not echoed.
fn clip_echoes(message: &str) -> String {
    let cut: Vec<String> = message
        .split('\'')
        .enumerate()
        .map(|(i, piece)| {
            if i % 2 == 1 {
                clip(piece, ECHO_CHARS)
            } else {
                clip(piece, MAX_MESSAGE_CHARS)
            }
        })
        .collect();
    clip(&cut.join("'"), MAX_MESSAGE_CHARS)
}

/// Parses `deliver a>b [K|all]`, `drop a>b` and `held a>b`; `None` when `words` is no
/// network step.
fn parse_wire_step(s: &str, words: &[&str]) -> Option<Result<Step, String>> {
    let (verb, rest) = words.split_first()?;
    if !matches!(*verb, "deliver" | "drop" | "held") {
        return None;
    }
    let usage = match *verb {
        "deliver" => "'deliver a>b', 'deliver a>b K' (K from 1 to 64) or 'deliver a>b all'",
        "drop" => "'drop a>b'",
        _ => "'held a>b'",
    };
    let bad = || {
        format!(
            "'{}': expected {usage}, with a direction of two different sockets among a, b, c, d, l",
            clip_echo(s)
        )
    };
    let Some(dir) = rest.first().and_then(|d| Dir::parse(d)) else {
        return Some(Err(bad()));
    };
    Some(match (*verb, &rest[1..]) {
        ("deliver", []) => Ok(Step::Deliver {
            dir,
            which: Which::Nth(1),
        }),
        ("deliver", ["all"]) => Ok(Step::Deliver {
            dir,
            which: Which::All,
        }),
        ("deliver", [k]) => match k.parse::<u8>() {
            Ok(k) if (1..=MAX_NTH).contains(&k) => Ok(Step::Deliver {
                dir,
                which: Which::Nth(k),
            }),
            _ => Err(bad()),
        },
        ("drop", []) => Ok(Step::Drop { dir }),
        ("held", []) => Ok(Step::Held { dir }),
        _ => Err(bad()),
    })
}

/// Parses the expectation of a network step: `ok` or `n/a` for `deliver` and `drop`,
/// segment names oldest first (or `-`) for `held` (stacks that hold segments differ
/// in what they send: `held b>a => FIN RST; smoltcp => FIN ACK`).
fn parse_wire_expect(s: &str, step: Step) -> Result<Expect, String> {
    let outcome = match (step, s.trim()) {
        (Step::Held { .. }, names) => {
            ExpectOutcome::Exact(Outcome::Segments(SegName::parse_list(names).ok_or_else(
                || {
                    format!(
                        "'{}': expected segment names oldest first, among DATA(n), DATA(n)+FIN, FIN, RST, ACK, SYN, SYN-ACK (n > 0), or '-' for none",
                        clip_echo(names)
                    )
                },
            )?))
        }
        (_, "ok") => ExpectOutcome::Ok(None),
        (_, "n/a") => ExpectOutcome::Exact(Outcome::NotApplicable),
        (_, other) => {
            return Err(format!(
                "'{}': expected ok (the segment moved) or n/a (not that many held) after '{step}'",
                clip_echo(other)
            ))
        }
    };
    Ok(Expect {
        outcome,
        sigpipe: Sigpipe::NotRaised,
    })
}

/// Parses `a: write 5`, `b: accept`, `sleep 300`, `deliver a>b` and the like.
pub fn parse_step(s: &str) -> Result<Step, String> {
    let words: Vec<&str> = s.split_whitespace().collect();
    if let Some(wire) = parse_wire_step(s, &words) {
        return wire;
    }
    if let ["sleep", rest @ ..] = words.as_slice() {
        let ms = match rest {
            [n] => n.parse::<u32>().ok().filter(|ms| *ms <= MAX_SLEEP_MS),
            _ => None,
        };
        return ms.map(|ms| Step::Sleep { ms }).ok_or_else(|| {
            format!(
                "'{}': expected 'sleep MS' with MS from 0 to {MAX_SLEEP_MS}",
                clip_echo(s)
            )
        });
    }
    let (name, call) = s.split_once(':').ok_or_else(|| {
        format!(
            "'{}': expected a step like 'a: write 5' (a socket, a colon, a call), 'sleep MS', or under network held 'deliver a>b', 'drop a>b', 'held a>b'",
            clip_echo(s)
        )
    })?;
    let sock = Sock::from_name(name.trim()).ok_or_else(|| {
        format!(
            "'{}': expected a socket among a, b, c, d, l",
            clip_echo(name.trim())
        )
    })?;
    let words: Vec<&str> = call.split_whitespace().collect();
    let bad_call = || {
        format!(
            "'{}': expected one of: {}",
            clip_echo(call.trim()),
            call_usage()
        )
    };
    let (word, mut args) = words.split_first().ok_or_else(bad_call)?;
    // A modifier word after a count (`write 5 nosignal`) selects that call's variant.
    let mut spec = CallSpec::named(word, None).ok_or_else(bad_call)?;
    if let (Arg::Count { .. }, [n, m]) = (spec.arg, args) {
        spec = CallSpec::named(word, Some(m)).ok_or_else(|| {
            let known: Vec<String> = CALLS
                .iter()
                .filter(|c| c.name == *word && c.modifier.is_some())
                .map(|c| c.usage())
                .collect();
            format!(
                "'{}': expected {} or {}",
                clip_echo(call.trim()),
                spec.usage(),
                known.join(" or ")
            )
        })?;
        args = std::slice::from_ref(n);
    }
    let op = match (spec.arg, args) {
        (Arg::None, []) => spec.op(0, Shut::Rd),
        (Arg::Count { min, max, unit }, [w]) => match w.parse::<u32>() {
            Ok(n) if n >= min && n <= max => spec.op(n, Shut::Rd),
            _ => {
                return Err(format!(
                    "'{}': expected a {unit} from {min} to {max} after '{}'",
                    clip_echo(w),
                    spec.name
                ))
            }
        },
        (Arg::Count { unit, .. }, []) => {
            return Err(format!(
                "'{}' needs a {unit}: expected '{}'",
                spec.name,
                spec.usage()
            ))
        }
        (Arg::Shut, [how]) => spec.op(
            0,
            match *how {
                "rd" => Shut::Rd,
                "wr" => Shut::Wr,
                "rdwr" => Shut::RdWr,
                other => {
                    return Err(format!(
                        "'{}': expected shutdown rd, wr or rdwr",
                        clip_echo(other)
                    ))
                }
            },
        ),
        _ => return Err(bad_call()),
    };
    match (spec.kind, sock) {
        (CallKind::Accept, Sock::B | Sock::D) => {}
        (CallKind::Accept, _) => {
            return Err(format!(
                "'{sock}: accept': accept names the socket it creates: expected 'b: accept' or 'd: accept'"
            ))
        }
        (CallKind::Connect, Sock::L) => {
            return Err("'l: connect': the listener does not connect: expected a client (a or c)".into())
        }
        _ => {}
    }
    Ok(Step::Call { sock, op })
}

/// Parses the whole text after a step's `=>`: a default expectation, then zero or more
/// `; PLATFORM => EXPECTATION` overrides, each checked against `op`.
pub fn parse_expectation(s: &str, op: Op) -> Result<Expectation, String> {
    parse_overridden(s, |text, platform| match platform {
        None => parse_expect(text, op),
        // A stack whose zero-length read reports EOF may say so in its own override.
        Some(p) => parse_expect_on(
            text,
            op,
            crate::model::profile::Profile::of(p)
                .tcp
                .zero_length_read_at_once,
        ),
    })
}

/// A default expectation and `; PLATFORM => EXPECTATION` overrides, each part parsed
/// by `one` (given the override's platform, `None` for the default).
fn parse_overridden(
    s: &str,
    one: impl Fn(&str, Option<Platform>) -> Result<Expect, String>,
) -> Result<Expectation, String> {
    let mut parts = s.split(';');
    let default = one(parts.next().unwrap_or("").trim(), None)?;
    let mut overrides: Vec<(Platform, Expect)> = Vec::new();
    for part in parts {
        let part = part.trim();
        let (name, text) = part.split_once("=>").ok_or_else(|| {
            format!(
                "'{}': expected 'PLATFORM => EXPECTATION' after ';' (like '; gvisor => EPIPE')",
                clip_echo(part)
            )
        })?;
        let name = name.trim();
        let platform = Platform::from_name(name).ok_or_else(|| {
            let known: Vec<&str> = Platform::ALL.iter().map(|p| p.name()).collect();
            format!(
                "'{}': unknown platform: expected one of {}",
                clip_echo(name),
                known.join(", ")
            )
        })?;
        if overrides.iter().any(|(p, _)| *p == platform) {
            return Err(format!(
                "a second override for {platform}: expected one per platform"
            ));
        }
        overrides.push((platform, one(text.trim(), Some(platform))?));
    }
    Ok(Expectation { default, overrides })
}

/// Echoed user text, cut so that an error stays one short line.
fn clip_echo(s: &str) -> String {
    clip(s, 60)
}

/// Parses one expectation (the text after `=>`, or after `PLATFORM =>`) for a step
/// doing `op`.
pub fn parse_expect(s: &str, op: Op) -> Result<Expect, String> {
    parse_expect_on(s, op, false)
}

/// [`parse_expect`] for a platform whose zero-length read may report EOF
/// (`eof_after_zero_read`: the profile's `tcp.zero_length_read_at_once`).
fn parse_expect_on(s: &str, op: Op, eof_after_zero_read: bool) -> Result<Expect, String> {
    let mut words: Vec<&str> = s.split_whitespace().collect();
    let sigpipe = match words.last() {
        Some(&"sigpipe") => Sigpipe::Raised,
        Some(&"sigpipe?") => Sigpipe::Unchecked,
        _ => Sigpipe::NotRaised,
    };
    if sigpipe != Sigpipe::NotRaised {
        words.pop();
    }
    let bad = || {
        format!(
            "'{}': expected ok, ok N, ok N..M, data N, eof, an errno name (EPIPE, ECONNRESET, ...), poll FLAGS, poll has|any|none FLAGS, poll FLAGS within MASK, error 0|ERRNO, a TCP state, n/a or closed, optionally followed by sigpipe or sigpipe?",
            clip_echo(s)
        )
    };
    let count = |w: &str| {
        w.parse::<usize>()
            .map_err(|_| format!("'{}': expected a byte count", clip_echo(w)))
    };
    let zero_read = matches!(op, Op::Read(0) | Op::Peek(0) | Op::ReadOob(0));
    let flags = |w: &str| {
        PollSet::parse(w).filter(|p| p.maybe() == PollSet::NONE).ok_or_else(|| {
            format!("'{}': expected poll flags among IN, OUT, ERR, HUP, RDHUP joined by '|', or '-' for none", clip_echo(w))
        })
    };
    // A poll form that holds for every result, or for none, states nothing a test
    // could mean: refuse it rather than let it pass or fail silently.
    let some_flags = |form: &str, w: &str| {
        let set = flags(w)?;
        if set == PollSet::NONE {
            return Err(format!(
                "'poll {form} -': expected at least one flag after '{form}'"
            ));
        }
        Ok(set)
    };
    let outcome = match words.as_slice() {
        ["ok"] => ExpectOutcome::Ok(None),
        ["ok", n] if n.contains("..") => {
            let (lo, hi) = n.split_once("..").unwrap_or((n, n));
            let (lo, hi) = (count(lo)?, count(hi)?);
            if lo > hi {
                return Err(format!("'ok {lo}..{hi}': expected the smaller count first"));
            }
            ExpectOutcome::OkRange(lo, hi)
        }
        ["ok", n] => ExpectOutcome::Ok(Some(count(n)?)),
        // A zero-length read returns 0 bytes whatever the socket holds: `data 0`,
        // never `eof`; any other read that returns 0 is `eof`.
        ["data", "0"] if zero_read => ExpectOutcome::Data(0),
        ["data", n] => {
            let n = count(n)?;
            if n == 0 {
                return Err(
                    "'data 0': a read of N > 0 bytes that returns 0 is 'eof' ('data 0' is for 'read 0')".into(),
                );
            }
            ExpectOutcome::Data(n)
        }
        ["eof"] if zero_read && !eof_after_zero_read => {
            return Err(
                "'eof' after a zero-length read: it returns 'data 0' whatever the socket holds"
                    .into(),
            )
        }
        ["eof"] => ExpectOutcome::Exact(Outcome::Eof),
        ["n/a"] => ExpectOutcome::Exact(Outcome::NotApplicable),
        ["closed"] => ExpectOutcome::Exact(Outcome::Closed),
        ["gone"] => ExpectOutcome::Exact(Outcome::Gone),
        ["poll", "has", f] => ExpectOutcome::PollHas(some_flags("has", f)?),
        ["poll", "any", f] => ExpectOutcome::PollAny(some_flags("any", f)?),
        ["poll", "none", f] => ExpectOutcome::PollNone(some_flags("none", f)?),
        ["poll", f, "within", m] => {
            let (f, mask) = (flags(f)?, flags(m)?);
            if mask == PollSet::NONE {
                return Err(format!(
                    "'poll {f} within -': expected at least one flag in the mask"
                ));
            }
            if !mask.contains(f) {
                return Err(format!(
                    "'poll {f} within {mask}': expected the flags to be among the mask's, which alone are looked at"
                ));
            }
            ExpectOutcome::PollWithin { flags: f, mask }
        }
        ["poll", f] => ExpectOutcome::Exact(Outcome::Poll(flags(f)?)),
        ["error", "0"] => ExpectOutcome::Exact(Outcome::SockError(None)),
        ["error", e] => ExpectOutcome::Exact(Outcome::SockError(Some(
            Errno::from_name(e).ok_or_else(|| {
                format!(
                    "'{}': expected 0 or an errno name after 'error'",
                    clip_echo(e)
                )
            })?,
        ))),
        [w] => {
            if let Some(e) = Errno::from_name(w) {
                ExpectOutcome::Exact(Outcome::Err(e))
            } else if let Some(st) = StateSet::parse(w) {
                ExpectOutcome::Exact(Outcome::State(st))
            } else {
                return Err(bad());
            }
        }
        _ => return Err(bad()),
    };
    // Which results each call can have comes from its row of the call table; an errno
    // and `closed` fit any call, and `n/a` any (a step that cannot be made).
    let fits = matches!(
        (&outcome, op.spec().returns),
        (
            ExpectOutcome::Exact(Outcome::Err(_) | Outcome::Closed | Outcome::NotApplicable),
            _
        ) | (
            ExpectOutcome::Ok(Some(_)) | ExpectOutcome::OkRange(..),
            Returns::Count
        ) | (ExpectOutcome::Ok(None), Returns::Count | Returns::Done)
            | (
                ExpectOutcome::Data(_) | ExpectOutcome::Exact(Outcome::Eof),
                Returns::Data
            )
            | (
                ExpectOutcome::Exact(Outcome::Poll(_))
                    | ExpectOutcome::PollHas(_)
                    | ExpectOutcome::PollAny(_)
                    | ExpectOutcome::PollNone(_)
                    | ExpectOutcome::PollWithin { .. },
                Returns::Poll,
            )
            | (
                ExpectOutcome::Exact(Outcome::SockError(_)),
                Returns::SockError
            )
            | (
                ExpectOutcome::Exact(Outcome::State(_) | Outcome::Gone),
                Returns::State
            )
    );
    if !fits {
        return Err(format!("'{}' cannot be the result of '{op}'", clip_echo(s)));
    }
    Ok(Expect { outcome, sigpipe })
}

/// The expectation that a result, written into a script, would state exactly.
pub fn expect_of(r: &StepResult) -> Expect {
    let outcome = match &r.outcome {
        Outcome::Ok => ExpectOutcome::Ok(None),
        Outcome::Wrote(n) | Outcome::Queued(n) => ExpectOutcome::Ok(Some(*n)),
        Outcome::Data(d) => ExpectOutcome::Data(d.len()),
        o => ExpectOutcome::Exact(o.clone()),
    };
    Expect {
        outcome,
        sigpipe: if r.sigpipe {
            Sigpipe::Raised
        } else {
            Sigpipe::NotRaised
        },
    }
}

/// Writes steps and their results as a script, aligned for reading.
pub fn render(
    transport: Transport,
    start: Start,
    comments: &[String],
    lines: &[(Step, Option<StepResult>, Option<String>)],
) -> String {
    render_with(transport, start, Bufs::default(), comments, lines)
}

/// [`render`], with the buffer-size headers.
pub fn render_with(
    transport: Transport,
    start: Start,
    bufs: Bufs,
    comments: &[String],
    lines: &[(Step, Option<StepResult>, Option<String>)],
) -> String {
    render_on(transport, start, bufs, Network::Instant, comments, lines)
}

/// [`render_with`], with the network header.
pub fn render_on(
    transport: Transport,
    start: Start,
    bufs: Bufs,
    network: Network,
    comments: &[String],
    lines: &[(Step, Option<StepResult>, Option<String>)],
) -> String {
    let mut out = String::new();
    for c in comments {
        out.push_str(&format!("# {c}\n"));
    }
    out.push_str(&format!("transport {}\n", transport.name()));
    if start != Start::Connected {
        out.push_str(&format!("start {start}\n"));
    }
    if network != Network::Instant {
        out.push_str(&format!("network {network}\n"));
    }
    if let Some(n) = bufs.rcvbuf {
        out.push_str(&format!("rcvbuf {n}\n"));
    }
    if let Some(n) = bufs.sndbuf {
        out.push_str(&format!("sndbuf {n}\n"));
    }
    for (step, result, note) in lines {
        let s = step.to_string();
        match (result, step) {
            (Some(_), Step::Sleep { .. }) | (None, _) => out.push_str(&s),
            (Some(r), _) => out.push_str(&format!("{s:<20}=> {}", expect_of(r))),
        }
        if let Some(n) = note {
            out.push_str(&format!("   # {n}"));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOTIVATING: &str = "# the motivating case\ntransport tcp4\na: write 5          => ok 5\nb: read 100         => data 5\nb: close            => ok\na: write 5          => ok 5\na: write 5          => EPIPE sigpipe\na: read 10          => eof\na: state            => CLOSE\n";

    #[test]
    fn parses_the_motivating_case() {
        let sc = Scenario::parse("m", MOTIVATING).unwrap();
        assert_eq!(sc.transport, Some(Transport::Tcp4));
        assert_eq!(sc.description, vec!["the motivating case".to_string()]);
        assert_eq!(sc.steps.len(), 7);
        let epipe = &sc.steps[4];
        assert_eq!(epipe.line, 7);
        assert_eq!(epipe.step, Step::call(Sock::A, Op::Write(5)));
        assert_eq!(
            epipe.expect,
            Some(Expectation::everywhere(Expect {
                outcome: ExpectOutcome::Exact(Outcome::Err(Errno::EPIPE)),
                sigpipe: Sigpipe::Raised
            }))
        );
    }

    #[test]
    fn rendering_parses_back_to_the_same_steps() {
        let sc = Scenario::parse("m", MOTIVATING).unwrap();
        let lines: Vec<_> = sc.steps.iter().map(|s| (s.step, None, None)).collect();
        let again =
            Scenario::parse("r", &render(Transport::Tcp4, Start::Connected, &[], &lines)).unwrap();
        assert_eq!(again.step_list(), sc.step_list());
    }

    const HELD: &str = "transport tcp4\nnetwork held\na: write 5          => ok 5\nheld a>b            => DATA(5)\ndeliver a>b         => ok\nheld b>a            => ACK\ndeliver b>a 2       => n/a\ndeliver b>a all     => ok\ndrop a>b            => n/a\na: close            => ok\nheld a>b            => FIN\nheld b>a            => -\n";

    /// Under start listening the handshake's directions parse (the listener's side is
    /// `l` until accepted).
    #[test]
    fn network_held_listening_parses_handshake_directions() {
        let sc = Scenario::parse(
            "h",
            "start listening\nnetwork held\na: connect => EINPROGRESS\nheld a>l => SYN\ndeliver a>l\nheld l>a => SYN-ACK\ndeliver c>l all\ndrop b>a\n",
        )
        .unwrap();
        assert_eq!(sc.start, Start::Listening);
        assert_eq!(sc.network, Network::Held);
        assert_eq!(sc.steps.len(), 6);
    }

    /// The held-network header and steps parse as issue 11 spells them, and print back
    /// to the same text.
    #[test]
    fn network_held_steps_parse_and_print_back() {
        let sc = Scenario::parse("h", HELD).unwrap();
        assert_eq!(sc.network, Network::Held);
        assert_eq!(sc.case(Transport::Tcp4).network, Network::Held);
        let ab = Dir {
            from: Sock::A,
            to: Sock::B,
        };
        let ba = Dir {
            from: Sock::B,
            to: Sock::A,
        };
        assert_eq!(sc.steps[1].step, Step::Held { dir: ab });
        assert_eq!(
            sc.steps[4].step,
            Step::Deliver {
                dir: ba,
                which: Which::Nth(2)
            }
        );
        assert_eq!(
            sc.steps[5].step,
            Step::Deliver {
                dir: ba,
                which: Which::All
            }
        );
        assert_eq!(sc.steps[6].step, Step::Drop { dir: ab });
        let held = |i: usize| sc.steps[i].expect.as_ref().unwrap().default.outcome.clone();
        assert_eq!(
            held(1),
            ExpectOutcome::Exact(Outcome::Segments(vec![SegName::Data(5)]))
        );
        assert_eq!(held(9), ExpectOutcome::Exact(Outcome::Segments(vec![])));
        let lines: Vec<_> = sc
            .steps
            .iter()
            .map(|s| {
                let r = match &s.expect.as_ref().unwrap().default.outcome {
                    ExpectOutcome::Ok(None) => Outcome::Ok,
                    ExpectOutcome::Ok(Some(n)) => Outcome::Wrote(*n),
                    ExpectOutcome::Exact(o) => o.clone(),
                    o => panic!("{o:?}"),
                };
                (s.step, Some(StepResult::plain(r)), None)
            })
            .collect();
        let text = render_on(
            Transport::Tcp4,
            Start::Connected,
            Bufs::default(),
            Network::Held,
            &[],
            &lines,
        );
        assert_eq!(text, HELD);
        // Stacks that hold segments may differ in what they send.
        let sc = Scenario::parse(
            "o",
            "network held\nheld b>a => FIN RST; smoltcp => FIN ACK\n",
        )
        .unwrap();
        let e = sc.steps[0].expect.as_ref().unwrap();
        assert_eq!(
            e.default.outcome,
            ExpectOutcome::Exact(Outcome::Segments(vec![SegName::Fin, SegName::Rst]))
        );
        assert_eq!(
            e.overrides,
            vec![(
                Platform::Smoltcp,
                Expect {
                    outcome: ExpectOutcome::Exact(Outcome::Segments(vec![
                        SegName::Fin,
                        SegName::Ack
                    ])),
                    sigpipe: Sigpipe::NotRaised,
                }
            )]
        );
        assert_eq!(
            SegName::parse_list("DATA(5)+FIN RST"),
            Some(vec![SegName::DataFin(5), SegName::Rst])
        );
    }

    /// A held script that sleeps runs where the model has the stack's retransmission
    /// timer (Linux), and nowhere else (smoltcp), with the reason said.
    #[test]
    fn held_sleep_runs_only_where_the_timer_is_modelled() {
        use crate::model::profile::Profile;
        let sc = Scenario::parse("f", "network held\na: shutdown wr\nsleep 1500\n").unwrap();
        let on = |p: Profile| sc.world_unrunnable_on(&p.surface, Transport::Tcp4);
        assert_eq!(on(Profile::linux()), None);
        let why = on(Profile::smoltcp()).expect("smoltcp cannot sleep under held");
        assert!(why.contains("'sleep' under network held"), "{why}");
        let plain = Scenario::parse("f", "network held\na: shutdown wr\n").unwrap();
        assert_eq!(
            plain.world_unrunnable_on(&Profile::smoltcp().surface, Transport::Tcp4),
            None
        );
    }

    /// Network steps outside `network held`, big writes under it, bad
    /// directions and bad names are one-line errors naming the line.
    #[test]
    fn network_held_errors_name_the_line() {
        let cases = [
            ("deliver a>b\n", 1, "expected a 'network held' header"),
            (
                "network held\na: linger 1\n",
                2,
                "'linger 1' under network held",
            ),
            (
                "network held\na: sndbuf 4096\n",
                2,
                "'rcvbuf'/'sndbuf' under network held",
            ),
            ("network held\na: linger 1\n", 2, "would block for 1 s"),
            ("network held\ndeliver a>a\n", 2, "expected 'deliver a>b'"),
            (
                "start listening\nnetwork held\ndeliver a>c\n",
                3,
                "expected a client (a or c) and the listener",
            ),
            ("network held\ndeliver a>b 0\n", 2, "K from 1 to 64"),
            ("network held\ndrop a>b 2\n", 2, "expected 'drop a>b'"),
            ("network held\nheld c>d\n", 2, "expected a>b or b>a"),
            (
                "network held\nheld a>b => DATA(0)\n",
                2,
                "expected segment names",
            ),
            (
                "network held\nheld a>b => FIN; smoltcp => DATA(0)\n",
                2,
                "expected segment names",
            ),
            (
                "network held\nheld a>b => FIN; tcp => -\n",
                2,
                "unknown platform",
            ),
            ("network held\ndeliver a>b => eof\n", 2, "expected ok"),
            (
                "network slow\na: close\n",
                1,
                "expected 'network instant' or 'network held'",
            ),
            (
                "a: close\nnetwork held\n",
                2,
                "comes once, before the first step",
            ),
            (
                "network held\na: write 10000\na: write 10000\n",
                3,
                "more than 16384 bytes in all under network held",
            ),
        ];
        for (text, line, want) in cases {
            let e = Scenario::parse("f", text).unwrap_err();
            assert_eq!(e.line, line, "{text}: {e}");
            assert!(e.to_string().contains(want), "{text}: {e}");
            assert!(!e.to_string().contains('\n'));
        }
    }

    /// Only a stack whose surface has held mode runs a held scenario.
    #[test]
    fn network_held_is_unrunnable_where_segments_cannot_be_held() {
        let sc = Scenario::parse("h", HELD).unwrap();
        let uml = crate::model::profile::Profile::linux_6_1().surface;
        let gvisor = crate::model::profile::Profile::gvisor().surface;
        for cannot in [uml, gvisor] {
            assert!(sc
                .world_unrunnable_on(&cannot, Transport::Tcp4)
                .unwrap()
                .contains("network held does not run there"));
        }
        for can in [
            crate::model::profile::Profile::linux().surface,
            crate::model::profile::Profile::smoltcp().surface,
        ] {
            assert_eq!(sc.world_unrunnable_on(&can, Transport::Tcp4), None);
        }
        // The matrix runs every scenario over every transport: held is TCP's only.
        let linux = crate::model::profile::Profile::linux().surface;
        assert!(sc
            .world_unrunnable_on(&linux, Transport::Unix)
            .unwrap()
            .contains("TCP only"));
    }

    #[test]
    fn errors_name_the_line_and_what_was_expected() {
        let e = Scenario::parse("f.cfz", "a: write 5\n\nc: close\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(
            e.to_string()
                .starts_with("f.cfz:3: 'c' does not exist when the scenario starts connected"),
            "{e}"
        );
        let e = Scenario::parse("f.cfz", "x: close\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("f.cfz:1: 'x': expected a socket among a, b, c, d, l"),
            "{e}"
        );
        let e = Scenario::parse("f", "start listening\na: accept\n").unwrap_err();
        assert!(
            e.to_string()
                .contains("expected 'b: accept' or 'd: accept'"),
            "{e}"
        );
        let e = Scenario::parse("f", "start listening\nl: connect\n").unwrap_err();
        assert!(
            e.to_string().contains("the listener does not connect"),
            "{e}"
        );
        let e = Scenario::parse("f", "a: close\nsleep 5 => ok\n").unwrap_err();
        assert!(e.to_string().contains("'sleep' has no result"), "{e}");
        let e = Scenario::parse("f", "sleep 40000\nsleep 40000\n").unwrap_err();
        assert!(e.to_string().contains("more than 70000 ms"), "{e}");
        let e = Scenario::parse("f", "start nowhere\na: close\n").unwrap_err();
        assert!(
            e.to_string()
                .contains("'start connected' or 'start listening'"),
            "{e}"
        );
        let e = Scenario::parse("f", "transport carrier-pigeon\na: close\n").unwrap_err();
        assert!(e.to_string().contains("unknown transport"), "{e}");
        let e = Scenario::parse("f", "a: read 5 => ok 3\n").unwrap_err();
        assert!(
            e.to_string().contains("cannot be the result of 'read 5'"),
            "{e}"
        );
        let e = Scenario::parse("f", "a: poll => poll IN|BOGUS\n").unwrap_err();
        assert!(e.to_string().contains("poll flags"), "{e}");
        let e = Scenario::parse("f", "a: write 4194305\n").unwrap_err();
        assert!(e.to_string().contains("from 0 to 4194304"), "{e}");
        let e = Scenario::parse("f", "a: write 5 => ok 6..5\n").unwrap_err();
        assert!(e.to_string().contains("smaller count first"), "{e}");
        let e = Scenario::parse("f", "a: read 0 => eof\n").unwrap_err();
        assert!(e.to_string().contains("data 0"), "{e}");
        let e = Scenario::parse("f", "a: read 5 => data 0\n").unwrap_err();
        assert!(e.to_string().contains("is 'eof'"), "{e}");
        let e = Scenario::parse("f", "a: poll => poll IN|OUT?\n").unwrap_err();
        assert!(e.to_string().contains("poll flags"), "{e}");
        let e = Scenario::parse("f", "rcvbuf 0\na: close\n").unwrap_err();
        assert!(e.to_string().contains("from 1 to 16777216"), "{e}");
        let e = Scenario::parse("f", "a: close\nsndbuf 4096\n").unwrap_err();
        assert!(e.to_string().contains("before the first step"), "{e}");
        let e = Scenario::parse("f", "# nothing\n").unwrap_err();
        assert!(e.to_string().contains("no steps"), "{e}");
        let e = Scenario::parse("f", "a: close\ntransport tcp4\n").unwrap_err();
        assert_eq!(e.line, 2);
    }

    #[test]
    fn expectations_match_only_what_they_say() {
        let e = parse_expect("EPIPE sigpipe", Op::Write(1)).unwrap();
        assert!(e.matches(&StepResult {
            outcome: Outcome::Err(Errno::EPIPE),
            sigpipe: true
        }));
        assert!(!e.matches(&StepResult::plain(Outcome::Err(Errno::EPIPE))));
        let e = parse_expect("data 3", Op::Read(9)).unwrap();
        assert!(e.matches(&StepResult::plain(Outcome::Data(b"abc".to_vec()))));
        assert!(!e.matches(&StepResult::plain(Outcome::Data(b"ab".to_vec()))));
        let e = parse_expect("poll OUT|IN", Op::Poll).unwrap();
        assert!(e.matches(&StepResult::plain(Outcome::Poll(PollSet(
            PollSet::IN.0 | PollSet::OUT.0
        )))));
    }

    fn poll(flags: &str) -> StepResult {
        StepResult::plain(Outcome::Poll(PollSet::parse(flags).unwrap()))
    }

    /// Which of these revents sets the expectation admits, as a string of 0/1.
    fn admitted(expect: &str, sets: &[&str]) -> String {
        let e = parse_expect(expect, Op::Poll).unwrap_or_else(|m| panic!("{m}"));
        sets.iter()
            .map(|f| if e.matches(&poll(f)) { '1' } else { '0' })
            .collect()
    }

    const SETS: [&str; 6] = ["-", "IN", "OUT", "IN|OUT", "IN|OUT|HUP", "ERR|HUP"];

    #[test]
    fn poll_has_needs_every_flag_and_ignores_the_rest() {
        assert_eq!(admitted("poll has IN|OUT", &SETS), "000110");
        assert_eq!(admitted("poll has HUP", &SETS), "000011");
        assert_eq!(
            parse_expect("poll has IN|OUT", Op::Poll)
                .unwrap()
                .to_string(),
            "poll has IN|OUT"
        );
    }

    #[test]
    fn poll_any_needs_one_flag() {
        assert_eq!(admitted("poll any ERR|HUP", &SETS), "000011");
        assert_eq!(admitted("poll any IN", &SETS), "010110");
        assert_eq!(
            parse_expect("poll any HUP|ERR", Op::Poll)
                .unwrap()
                .to_string(),
            "poll any ERR|HUP"
        );
    }

    #[test]
    fn poll_none_refuses_every_flag() {
        assert_eq!(admitted("poll none HUP", &SETS), "111100");
        assert_eq!(admitted("poll none IN|ERR", &SETS), "101000");
        assert_eq!(
            parse_expect("poll none HUP", Op::Poll).unwrap().to_string(),
            "poll none HUP"
        );
    }

    #[test]
    fn poll_within_looks_only_at_the_mask() {
        assert_eq!(admitted("poll IN within IN|HUP", &SETS), "010100");
        assert_eq!(admitted("poll - within IN|HUP", &SETS), "101000");
        assert_eq!(admitted("poll IN|HUP within IN|HUP", &SETS), "000010");
        assert_eq!(
            parse_expect("poll - within HUP|IN", Op::Poll)
                .unwrap()
                .to_string(),
            "poll - within IN|HUP"
        );
    }

    #[test]
    fn poll_forms_that_state_nothing_or_cannot_hold_are_refused() {
        for (text, want) in [
            ("poll has -", "at least one flag after 'has'"),
            ("poll any -", "at least one flag after 'any'"),
            ("poll none -", "at least one flag after 'none'"),
            ("poll IN within -", "at least one flag in the mask"),
            ("poll IN|OUT within IN", "among the mask's"),
            ("poll has BOGUS", "poll flags"),
            ("poll IN within IN|NOPE", "poll flags"),
            ("poll IN within", "expected ok"),
            ("poll some IN", "poll has|any|none FLAGS"),
        ] {
            let e = parse_expect(text, Op::Poll).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
        let e = parse_expect("poll has IN", Op::Read(5)).unwrap_err();
        assert!(e.contains("cannot be the result of 'read 5'"), "{e}");
        let e = parse_expect("poll IN within IN", Op::Write(5)).unwrap_err();
        assert!(e.contains("cannot be the result of 'write 5'"), "{e}");
    }

    #[test]
    fn sigpipe_is_required_forbidden_or_unchecked() {
        let raised = StepResult {
            outcome: Outcome::Err(Errno::EPIPE),
            sigpipe: true,
        };
        let silent = StepResult::plain(Outcome::Err(Errno::EPIPE));
        let check = |text: &str| {
            let e = parse_expect(text, Op::Write(1)).unwrap();
            assert_eq!(e.to_string(), text);
            (e.matches(&raised), e.matches(&silent))
        };
        assert_eq!(check("EPIPE sigpipe"), (true, false));
        assert_eq!(check("EPIPE"), (false, true));
        assert_eq!(check("EPIPE sigpipe?"), (true, true));
        // `ok` without `sigpipe` still means no SIGPIPE.
        let e = parse_expect("ok", Op::Write(1)).unwrap();
        assert!(!e.matches(&StepResult {
            outcome: Outcome::Wrote(1),
            sigpipe: true
        }));
        // `sigpipe?` checks only the signal: the outcome must still match.
        let e = parse_expect("ok 1 sigpipe?", Op::Write(1)).unwrap();
        assert!(!e.matches(&silent));
        for bad in [
            "sigpipe?",
            "EPIPE sigpipe? sigpipe",
            "EPIPE sigpipe sigpipe?",
        ] {
            assert!(parse_expect(bad, Op::Write(1)).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_override_holds_on_its_platform_and_the_default_elsewhere() {
        let sc = Scenario::parse(
            "f",
            "a: write 5          => EPIPE sigpipe; gvisor => EPIPE\nb: poll => poll IN; linux => poll IN|RDHUP ;gvisor=>poll has IN\n",
        )
        .unwrap();
        let w = &sc.steps[0];
        assert_eq!(
            w.expect_on(Platform::Linux).unwrap().to_string(),
            "EPIPE sigpipe"
        );
        assert_eq!(w.expect_on(Platform::Gvisor).unwrap().to_string(), "EPIPE");
        assert_eq!(
            w.expect.as_ref().unwrap().to_string(),
            "EPIPE sigpipe; gvisor => EPIPE"
        );
        let p = &sc.steps[1];
        assert_eq!(
            p.expect_on(Platform::Linux).unwrap().to_string(),
            "poll IN|RDHUP"
        );
        assert_eq!(
            p.expect_on(Platform::Gvisor).unwrap().to_string(),
            "poll has IN"
        );
        // What Display writes parses back to the same expectation.
        let again = Scenario::parse(
            "g",
            &format!("a: write 5 => {}\n", w.expect.as_ref().unwrap()),
        )
        .unwrap();
        assert_eq!(again.steps[0].expect, w.expect);
    }

    #[test]
    fn bad_overrides_are_one_line_errors_naming_the_line() {
        for (text, want) in [
            (
                "a: close => ok\na: write 5 => EPIPE; bsd => EPIPE\n",
                "f:2: 'bsd': unknown platform: expected one of linux, gvisor",
            ),
            (
                "a: write 5 => EPIPE; gvisor => EPIPE; gvisor => ok 5\n",
                "f:1: a second override for gvisor",
            ),
            (
                "a: write 5 => EPIPE; gvisor EPIPE\n",
                "f:1: 'gvisor EPIPE': expected 'PLATFORM => EXPECTATION'",
            ),
            (
                "a: write 5 => EPIPE;\n",
                "f:1: '': expected 'PLATFORM => EXPECTATION'",
            ),
            ("a: write 5 => ; gvisor => EPIPE\n", "f:1: '': expected ok"),
            (
                "a: write 5 => EPIPE; gvisor => data 5\n",
                "f:1: 'data 5' cannot be the result of 'write 5'",
            ),
            ("a: write 5 => EPIPE; gvisor =>\n", "f:1: '': expected ok"),
        ] {
            let e = Scenario::parse("f", text).unwrap_err().to_string();
            assert!(e.starts_with(want), "{text:?}: {e}");
            assert_eq!(e.lines().count(), 1, "{e}");
        }
    }

    #[test]
    fn modifiers_pick_the_call_and_bad_ones_are_named() {
        let sc = Scenario::parse(
            "m",
            "a: write 5 nosignal => EPIPE\nb: read 3 peek => data 3\na: write 2 => ok 2\n",
        )
        .unwrap();
        assert_eq!(sc.steps[0].step, Step::call(Sock::A, Op::WriteNoSignal(5)));
        assert_eq!(sc.steps[1].step, Step::call(Sock::B, Op::Peek(3)));
        assert_eq!(sc.steps[0].step.to_string(), "a: write 5 nosignal");
        assert_eq!(sc.steps[1].step.to_string(), "b: read 3 peek");
        let e = Scenario::parse("f", "a: write 5 loudly\n").unwrap_err();
        assert!(
            e.to_string()
                .contains("expected write N or write N nosignal or write N oob"),
            "{e}"
        );
        let e = Scenario::parse("f", "a: read 5 nosignal\n").unwrap_err();
        assert!(e.to_string().contains("read N peek"), "{e}");
        // MSG_NOSIGNAL and MSG_OOB bytes count against the socket's budget like any
        // write.
        let e = Scenario::parse("f", &"a: write 4194304 nosignal\n".repeat(65)).unwrap_err();
        assert!(e.to_string().contains("more than 268435456 bytes"), "{e}");
        let e = Scenario::parse("f", &"a: write 4194304 oob\n".repeat(65)).unwrap_err();
        assert_eq!(e.line, 65, "{e}");
        let sc = Scenario::parse(
            "f",
            "rcvbuf 4096\nsndbuf 8192\na: write 5 oob => ok 1..5\nb: read 1 oob => data 1\nb: outq => ok 0\nb: read 0 => data 0\n",
        )
        .unwrap();
        assert_eq!(sc.bufs.rcvbuf, Some(4096));
        assert_eq!(sc.bufs.sndbuf, Some(8192));
        assert_eq!(sc.steps[0].step, Step::call(Sock::A, Op::WriteOob(5)));
        assert_eq!(sc.steps[1].step, Step::call(Sock::B, Op::ReadOob(1)));
    }

    #[test]
    fn the_sigpipe_header_names_a_disposition_once() {
        let sc = Scenario::parse("s", "sigpipe ignore\na: close\n").unwrap();
        assert_eq!(sc.sigpipe, Some(Disposition::Ignore));
        let e = Scenario::parse("s", "sigpipe sometimes\na: close\n").unwrap_err();
        assert!(
            e.to_string()
                .contains("'sigpipe default', 'sigpipe ignore' or 'sigpipe handler'"),
            "{e}"
        );
        let e = Scenario::parse("s", "a: close\nsigpipe default\n").unwrap_err();
        assert!(e.to_string().contains("once, before the first step"), "{e}");
    }
}
