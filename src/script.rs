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

use crate::exec::Case;
use crate::step::{
    Arg, CallKind, CallSpec, Errno, Op, Outcome, PollSet, Returns, Shut, Sock, Start, StateSet,
    Step, StepResult, CALLS, MAX_SLEEP_MS,
};
use crate::transport::Transport;
use std::fmt;
use std::path::Path;

pub use crate::step::MAX_WRITE;
/// The most bytes a script may write from one socket in all. Below every default socket
/// buffer on the platforms closefuzz knows, so the model can predict every write in
/// full instead of guessing how much a full buffer takes.
pub const MAX_BYTES_PER_END: u64 = 16384;

/// What a script line says the step must return.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expect {
    /// The outcome; for reads, `Data` holds only the expected length (the content is
    /// checked against the writer's pattern through the model).
    pub outcome: ExpectOutcome,
    /// Whether the step must raise SIGPIPE (an expectation without `sigpipe` means it must not).
    pub sigpipe: bool,
}

/// The outcome part of an expectation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExpectOutcome {
    /// `ok`, or `ok N` for a write.
    Ok(Option<usize>),
    /// `data N`.
    Data(usize),
    /// Anything else, compared exactly.
    Exact(Outcome),
}

impl Expect {
    /// Whether a real result satisfies this expectation.
    pub fn matches(&self, got: &StepResult) -> bool {
        if self.sigpipe != got.sigpipe {
            return false;
        }
        match (&self.outcome, &got.outcome) {
            (ExpectOutcome::Ok(None), Outcome::Ok) => true,
            (ExpectOutcome::Ok(None), Outcome::Wrote(_)) => true,
            (ExpectOutcome::Ok(Some(n)), Outcome::Wrote(m)) => n == m,
            (ExpectOutcome::Data(n), Outcome::Data(d)) => *n == d.len(),
            (ExpectOutcome::Exact(o), got) => o.admits(got),
            _ => false,
        }
    }
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            ExpectOutcome::Ok(None) => f.write_str("ok")?,
            ExpectOutcome::Ok(Some(n)) => write!(f, "ok {n}")?,
            ExpectOutcome::Data(n) => write!(f, "data {n}")?,
            ExpectOutcome::Exact(o) => write!(f, "{o}")?,
        }
        if self.sigpipe {
            f.write_str(" sigpipe")?;
        }
        Ok(())
    }
}

/// One step line of a script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptStep {
    /// The step.
    pub step: Step,
    /// What it must return, if the line says.
    pub expect: Option<Expect>,
    /// 1-based line number in the file.
    pub line: usize,
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
    /// The comment lines before the first step: what the scenario teaches.
    pub description: Vec<String>,
    /// The steps in order.
    pub steps: Vec<ScriptStep>,
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
    /// Reads and parses a script file.
    pub fn load(path: &Path) -> Result<Scenario, ScriptError> {
        let file = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| ScriptError {
            file: file.clone(),
            line: 0,
            message: format!("cannot read scenario: {e}"),
        })?;
        let text = String::from_utf8(bytes).map_err(|_| ScriptError {
            file: file.clone(),
            line: 0,
            message: "not UTF-8 text: expected a scenario script".into(),
        })?;
        Scenario::parse(&file, &text)
    }

    /// Parses script text; `name` labels errors.
    pub fn parse(name: &str, text: &str) -> Result<Scenario, ScriptError> {
        let mut sc = Scenario {
            name: name.to_string(),
            transport: None,
            start: Start::Connected,
            description: Vec::new(),
            steps: Vec::new(),
        };
        let err = |line: usize, message: String| ScriptError {
            file: name.to_string(),
            line,
            message,
        };
        let mut written = [0u64; 5];
        let mut start_seen = false;
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
                            format!("'{}': expected 'start connected' or 'start listening'", cut(w)),
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
                Step::Call {
                    sock,
                    op: Op::Write(n),
                } => {
                    written[sock.index()] += n as u64;
                    if written[sock.index()] > MAX_BYTES_PER_END {
                        return Err(err(
                            line_no,
                            format!(
                                "socket {sock} writes more than {MAX_BYTES_PER_END} bytes in all: expected less, so that no socket buffer fills"
                            ),
                        ));
                    }
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
                    return Err(err(line_no, "'sleep' has no result: expected no '=>'".into()))
                }
                (Some(e), Step::Call { op, .. }) => {
                    Some(parse_expect(e, op).map_err(|m| err(line_no, m))?)
                }
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
    }
}

/// `s`, cut to a length an error message can echo.
fn cut(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head}…")
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

/// Parses `a: write 5`, `b: accept`, `sleep 300` and the like.
pub fn parse_step(s: &str) -> Result<Step, String> {
    let words: Vec<&str> = s.split_whitespace().collect();
    if let ["sleep", rest @ ..] = words.as_slice() {
        let ms = match rest {
            [n] => n.parse::<u32>().ok().filter(|ms| *ms <= MAX_SLEEP_MS),
            _ => None,
        };
        return ms.map(|ms| Step::Sleep { ms }).ok_or_else(|| {
            format!(
                "'{}': expected 'sleep MS' with MS from 0 to {MAX_SLEEP_MS}",
                cut(s)
            )
        });
    }
    let (name, call) = s.split_once(':').ok_or_else(|| {
        format!(
            "'{}': expected a step like 'a: write 5' (a socket, a colon, a call) or 'sleep MS'",
            cut(s)
        )
    })?;
    let sock = Sock::from_name(name.trim()).ok_or_else(|| {
        format!(
            "'{}': expected a socket among a, b, c, d, l",
            cut(name.trim())
        )
    })?;
    let words: Vec<&str> = call.split_whitespace().collect();
    let bad_call = || {
        format!(
            "'{}': expected one of: {}",
            cut(call.trim()),
            call_usage()
        )
    };
    let (word, args) = words.split_first().ok_or_else(bad_call)?;
    let spec = CallSpec::named(word).ok_or_else(bad_call)?;
    let op = match (spec.arg, args) {
        (Arg::None, []) => spec.op(0, Shut::Rd),
        (Arg::Count { min, max, unit }, [w]) => match w.parse::<u16>() {
            Ok(n) if n >= min && n <= max => spec.op(n, Shut::Rd),
            _ => {
                return Err(format!(
                    "'{}': expected a {unit} from {min} to {max} after '{}'",
                    cut(w),
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
                        cut(other)
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

/// Parses the text after `=>` for a step doing `op`.
pub fn parse_expect(s: &str, op: Op) -> Result<Expect, String> {
    let mut words: Vec<&str> = s.split_whitespace().collect();
    let sigpipe = words.last() == Some(&"sigpipe");
    if sigpipe {
        words.pop();
    }
    let bad = || {
        format!(
            "'{s}': expected ok, ok N, data N, eof, an errno name (EPIPE, ECONNRESET, ...), poll FLAGS, error 0|ERRNO, a TCP state, n/a or closed, optionally followed by sigpipe"
        )
    };
    let count = |w: &str| {
        w.parse::<usize>()
            .map_err(|_| format!("'{w}': expected a byte count"))
    };
    let outcome = match words.as_slice() {
        ["ok"] => ExpectOutcome::Ok(None),
        ["ok", n] => ExpectOutcome::Ok(Some(count(n)?)),
        ["data", n] => {
            let n = count(n)?;
            if n == 0 {
                return Err("'data 0': a read of 0 bytes is 'eof'".into());
            }
            ExpectOutcome::Data(n)
        }
        ["eof"] => ExpectOutcome::Exact(Outcome::Eof),
        ["n/a"] => ExpectOutcome::Exact(Outcome::NotApplicable),
        ["closed"] => ExpectOutcome::Exact(Outcome::Closed),
        ["poll", flags] => ExpectOutcome::Exact(Outcome::Poll(PollSet::parse(flags).ok_or_else(|| {
            format!("'{flags}': expected poll flags among IN, OUT, ERR, HUP, RDHUP joined by '|', or '-' for none")
        })?)),
        ["error", "0"] => ExpectOutcome::Exact(Outcome::SockError(None)),
        ["error", e] => ExpectOutcome::Exact(Outcome::SockError(Some(
            Errno::from_name(e).ok_or_else(|| format!("'{e}': expected 0 or an errno name after 'error'"))?,
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
    let fits = match (&outcome, op.spec().returns) {
        (ExpectOutcome::Exact(Outcome::Err(_) | Outcome::Closed | Outcome::NotApplicable), _) => {
            true
        }
        (ExpectOutcome::Ok(Some(_)), Returns::Count) => true,
        (ExpectOutcome::Ok(None), Returns::Count | Returns::Done) => true,
        (ExpectOutcome::Data(_) | ExpectOutcome::Exact(Outcome::Eof), Returns::Data) => true,
        (ExpectOutcome::Exact(Outcome::Poll(_)), Returns::Poll) => true,
        (ExpectOutcome::Exact(Outcome::SockError(_)), Returns::SockError) => true,
        (ExpectOutcome::Exact(Outcome::State(_)), Returns::State) => true,
        _ => false,
    };
    if !fits {
        return Err(format!("'{s}' cannot be the result of '{op}'"));
    }
    Ok(Expect { outcome, sigpipe })
}

/// The expectation that a result, written into a script, would state exactly.
pub fn expect_of(r: &StepResult) -> Expect {
    let outcome = match &r.outcome {
        Outcome::Ok => ExpectOutcome::Ok(None),
        Outcome::Wrote(n) => ExpectOutcome::Ok(Some(*n)),
        Outcome::Data(d) => ExpectOutcome::Data(d.len()),
        o => ExpectOutcome::Exact(o.clone()),
    };
    Expect {
        outcome,
        sigpipe: r.sigpipe,
    }
}

/// Writes steps and their results as a script, aligned for reading.
pub fn render(
    transport: Transport,
    start: Start,
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
    for (step, result, note) in lines {
        let s = step.to_string();
        match (result, step) {
            (Some(r), Step::Call { .. }) => out.push_str(&format!("{s:<20}=> {}", expect_of(r))),
            _ => out.push_str(&s),
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
        assert_eq!(
            epipe.step,
            Step {
                end: End::A,
                op: Op::Write(5)
            }
        );
        assert_eq!(
            epipe.expect,
            Some(Expect {
                outcome: ExpectOutcome::Exact(Outcome::Err(Errno::EPIPE)),
                sigpipe: true
            })
        );
    }

    #[test]
    fn rendering_parses_back_to_the_same_steps() {
        let sc = Scenario::parse("m", MOTIVATING).unwrap();
        let lines: Vec<_> = sc.steps.iter().map(|s| (s.step, None, None)).collect();
        let again = Scenario::parse("r", &render(Transport::Tcp4, &[], &lines)).unwrap();
        assert_eq!(again.step_list(), sc.step_list());
    }

    #[test]
    fn errors_name_the_line_and_what_was_expected() {
        let e = Scenario::parse("f.cfz", "a: write 5\n\nc: close\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(
            e.to_string()
                .starts_with("f.cfz:3: 'c': expected end 'a' or 'b'"),
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
        let e = Scenario::parse("f", "a: write 70000\n").unwrap_err();
        assert!(e.to_string().contains("from 0 to 4096"), "{e}");
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
}
