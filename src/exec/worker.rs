//! The worker: runs whole cases on behalf of another process, one JSON line in, one
//! JSON line out.
//!
//! A sandboxed executor (see [`super::gvisor`]) starts the worker inside the sandbox
//! once and sends it every case over a pipe, so a case costs one round trip rather
//! than one sandbox start. The protocol is line-delimited JSON:
//!
//! - request: `{"case":{"transport":"Tcp4","start":"Connected","steps":[{"Call":{"sock":"A","op":{"Write":5}}}, ...]}}`,
//!   optionally with `"settle":{"max":{"secs":0,"nanos":2000000},"stable_for":...}`;
//! - answer: `{"Ok":{"steps":[...],"elapsed":...,"settle":...}}` (a
//!   [`KernelRun`]) or `{"Err":"why"}`.
//!
//! The worker loops until its input ends. Anything it cannot parse is answered with
//! an `Err` line, so the two sides never fall out of step.
//!
//! Settling: some network stacks (gVisor's netstack) deliver a segment on another
//! thread after the sending call returns, so the observation right after a step can
//! race the delivery. The worker therefore re-observes both ends after each step until
//! the observation has stayed the same for [`Settle::stable_for`] (three times that for
//! a step that sends something but has changed nothing yet), bounded by
//! [`Settle::max`], and reports the time spent in [`KernelRun::settle`]. Steps that only
//! look (poll, error, state) are not settled. gVisor 20221219 offers no way to ask
//! whether data is still in flight (SIOCOUTQ answers ENOPROTOOPT, TCP_INFO has no
//! unacked count), so the wait is by time; measured with 3,600 tcp4/tcp6 cases, no
//! disagreement needed a rerun with these bounds, against about 1 in 150 with a flat
//! 200 µs window.

use super::{Case, KernelRun, Sockets};
use crate::step::{Effect, Observation, Op, Step};
use serde::{Deserialize, Serialize};
use std::io::{self, BufRead, Write};
use std::time::{Duration, Instant};

/// How long to wait for the observation to stop changing after each step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settle {
    /// Give up waiting after this long (the step's observation is the last one made).
    pub max: Duration,
    /// The observation counts as settled once it has not changed for this long.
    pub stable_for: Duration,
    /// After each call, wait until the kernel's softirq daemons are asleep (see
    /// [`super::uml::drain_softirqs`]): on a one-CPU kernel before Linux 6.5 a
    /// softirq raised while `ksoftirqd` is runnable waits for it, so a loopback
    /// segment arrives only once the worker blocks.
    #[serde(default)]
    pub softirqs: bool,
}

impl Settle {
    /// No settling: one observation right after the step, as [`super::run_local`] does.
    pub const NONE: Settle = Settle {
        max: Duration::ZERO,
        stable_for: Duration::ZERO,
        softirqs: false,
    };
}

impl Default for Settle {
    /// 5 ms at most, settled after 200 µs without change.
    fn default() -> Self {
        Settle {
            max: Duration::from_millis(5),
            stable_for: Duration::from_micros(200),
            softirqs: false,
        }
    }
}

/// One case for the worker.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Request {
    /// The case.
    pub case: Case,
    /// How to settle after each step ([`Settle::default`] if absent).
    #[serde(default)]
    pub settle: Settle,
    /// Bare calls only: no observation, no settling, no SIGPIPE check; the answer has
    /// no steps. The benchmark's baseline.
    #[serde(default)]
    pub raw: bool,
}

/// The worker's answer to one [`Request`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Response {
    /// The case ran.
    Ok(KernelRun),
    /// It could not: why, in one line.
    Err(String),
}

/// Observes `pair` until the observation has been the same for `settle.stable_for`,
/// or `settle.max` has passed. Returns the last observation and the time spent after
/// the first one.
fn settled_observe(
    pair: &Sockets,
    settle: Settle,
    sends: bool,
    handshake: bool,
) -> (Observation, Duration) {
    let mut last = pair.observe();
    let start = Instant::now();
    let mut since = start;
    let mut changed = false;
    // A handshake is three segments, each waiting for one of the stack's threads, and
    // the listener queues its child only after the last: it gets longer bounds, and
    // is not settled while any socket is still in SYN_SENT or SYN_RECV.
    let (factor, max) = if handshake {
        (HANDSHAKE_FACTOR, settle.max * HANDSHAKE_FACTOR)
    } else {
        (1, settle.max)
    };
    loop {
        let now = Instant::now();
        // A step that puts something on the wire but has changed nothing yet is given
        // longer: its segment may still be waiting for one of the stack's threads.
        let window = if sends && !changed {
            settle.stable_for * UNCHANGED_FACTOR * factor
        } else {
            settle.stable_for * factor
        };
        let mid_handshake = handshake && last.iter().any(in_handshake);
        if (now.duration_since(since) >= window && !mid_handshake)
            || now.duration_since(start) >= max
        {
            return (last, now.duration_since(start));
        }
        // Yield rather than sleep: under gVisor a sleep of any length lasts tens of
        // microseconds or more (measured: settling took 5x as long with 25 µs sleeps).
        std::thread::yield_now();
        let obs = pair.observe();
        if obs != last {
            last = obs;
            since = Instant::now();
            changed = true;
        }
    }
}

/// How many times [`Settle::stable_for`] a sending step waits while nothing has changed.
const UNCHANGED_FACTOR: u32 = 3;

/// How many times longer the bounds are after a connect or an accept.
const HANDSHAKE_FACTOR: u32 = 4;

fn in_handshake(v: &crate::step::EndView) -> bool {
    use crate::step::{EndView, TcpState};
    matches!(v, EndView::Open { state: Some(s), .. }
        if s.contains(TcpState::SynSent) || s.contains(TcpState::SynRecv))
}

/// Runs `case` on fresh local sockets, settling after each step (see the module docs).
pub fn run_settled(case: &Case, settle: Settle) -> io::Result<KernelRun> {
    let began = Instant::now();
    let mut w = Sockets::start_on(case.transport, case.start, case.bufs, case.network)?;
    let held = case.network == crate::step::Network::Held;
    if case.capture {
        w.capture_packets();
    }
    // Under network held the handshake's SYN timer runs from before the world is made:
    // the case's time, which the runner holds against its timer-free budget, counts it.
    let start = if held { began } else { Instant::now() };
    let mut settle_time = Duration::ZERO;
    if settle.softirqs {
        // The handshake that made the world (measured: a first step's FIN waited).
        settle_time += super::uml::drain_softirqs();
    }
    let mut slept = Duration::ZERO;
    let mut out = Vec::with_capacity(case.steps.len());
    let mut wire = Vec::new();
    for &step in &case.steps {
        let t = Instant::now();
        let r = w.step(step);
        if held {
            wire.push(w.take_wire()?);
        }
        // What the step can have set in motion, from the call table: a call that only
        // looks or configures sends nothing, so there is nothing to wait for (the
        // previous step has already settled). A sleep has let everything arrive.
        let handshake = matches!(
            step,
            Step::Call {
                op: Op::Connect | Op::Accept,
                ..
            }
        );
        let (settles, sends) = match step {
            Step::Sleep { .. } => {
                slept += t.elapsed();
                (false, false)
            }
            // Only the host kernel holds segments, and it delivers inside the step.
            Step::Deliver { .. } | Step::Drop { .. } | Step::Held { .. } => (false, false),
            Step::Call { op, .. } => match op.spec().effect {
                Effect::Looks | Effect::Configures => (false, false),
                Effect::Closes => (true, true),
                Effect::Sends => (
                    true,
                    match op {
                        Op::Read(_) => false,
                        _ => op.write_len().is_none_or(|n| n > 0),
                    },
                ),
            },
        };
        if settle.softirqs && matches!(step, Step::Call { .. }) {
            // After every call, not only those that send: the next call then starts
            // with the daemon asleep, and its own softirqs run inside it as on the host.
            settle_time += super::uml::drain_softirqs();
        }
        let (obs, waited) = settled_observe(
            &w,
            if settles { settle } else { Settle::NONE },
            sends,
            handshake,
        );
        settle_time += waited;
        out.push((r, obs));
    }
    let elapsed = start.elapsed();
    let packets = w.take_packets();
    drop(w);
    Ok(KernelRun {
        packets,
        steps: out,
        elapsed,
        slept,
        settle: settle_time,
        wire,
    })
}

/// Answers one request line.
pub fn answer(line: &str) -> Response {
    match serde_json::from_str::<Request>(line) {
        Err(e) => Response::Err(format!("bad request: {e}")),
        Ok(req) if req.raw => match super::run_local_raw(&req.case) {
            Ok(elapsed) => Response::Ok(KernelRun {
                packets: vec![],
                steps: vec![],
                elapsed,
                slept: Duration::ZERO,
                settle: Duration::ZERO,
                wire: vec![],
            }),
            Err(e) => Response::Err(format!("cannot create a connected pair: {e}")),
        },
        Ok(req) => match run_settled(&req.case, req.settle) {
            Ok(run) => Response::Ok(run),
            Err(e) => Response::Err(format!("cannot create a connected pair: {e}")),
        },
    }
}

/// A request line that starts with this is the first part of a longer request, to be
/// continued by the next line: the worker answers it with this character alone on a
/// line, so the sender can wait before sending more. (A channel with a small buffer
/// needs it: a User-mode Linux console line loses what arrives beyond about 4 KiB
/// ahead of its reader.) A request line proper starts with `{`.
pub const CONTINUED: char = '+';

/// Serves requests from `input` until it ends, one answer line per request line
/// (parts of a request sent as [`CONTINUED`] lines each get a `+` line). Blank lines
/// are skipped. Returns when the input ends or the output breaks.
pub fn serve(input: impl BufRead, mut output: impl Write) -> io::Result<()> {
    let mut pending = String::new();
    for line in input.lines() {
        let line = line?;
        if let Some(part) = line.strip_prefix(CONTINUED) {
            pending.push_str(part);
            output.write_all(b"+\n")?;
            output.flush()?;
            continue;
        }
        let line = if pending.is_empty() {
            line
        } else {
            std::mem::take(&mut pending) + &line
        };
        if line.trim().is_empty() {
            continue;
        }
        let resp = answer(&line);
        let mut text = serde_json::to_string(&resp).map_err(io::Error::other)?;
        text.push('\n');
        output.write_all(text.as_bytes())?;
        output.flush()?;
    }
    Ok(())
}

/// Serves on this process's stdin and stdout: the body of the worker binary. Returns
/// the process exit code (0 at the end of input, 1 after an I/O error, reported on stderr).
pub fn main() -> i32 {
    // The sandbox is the namespace: stay in it (see exec::netns).
    crate::exec::netns::stay_in_current_namespace();
    let stdin = io::stdin().lock();
    let stdout = io::stdout().lock();
    match serve(stdin, stdout) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("closefuzz worker: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::{Op, Outcome, Sock, Start};
    use crate::transport::Transport;

    #[test]
    fn serves_a_case_and_a_bad_line() {
        let req = Request {
            case: Case::new(
                Transport::Tcp4,
                Start::Connected,
                vec![
                    Step::call(Sock::A, Op::Write(3)),
                    Step::call(Sock::B, Op::Read(10)),
                ],
            ),
            settle: Settle::default(),
            raw: false,
        };
        let input = format!("{}\n\nnot json\n", serde_json::to_string(&req).unwrap());
        let mut out = Vec::new();
        serve(input.as_bytes(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        let Response::Ok(run) = serde_json::from_str(lines[0]).unwrap() else {
            panic!("first answer is an error: {}", lines[0]);
        };
        assert_eq!(run.steps[0].0.outcome, Outcome::Wrote(3));
        assert_eq!(run.steps[1].0.outcome, Outcome::Data(b"ABC".to_vec()));
        assert!(matches!(
            serde_json::from_str(lines[1]).unwrap(),
            Response::Err(_)
        ));
    }

    #[test]
    fn a_request_without_settle_gets_the_default() {
        let req: Request =
            serde_json::from_str(r#"{"case":{"transport":"Unix","steps":[]}}"#).unwrap();
        assert_eq!(req.settle, Settle::default());
    }
}
