//! `network held` on the host kernel (src/exec/wire.rs), run through the executor
//! directly: the Linux model of held mode is written elsewhere, so every expected
//! segment, result and state here comes from the kernel's rules, cited step by step.
//!
//! Held mode needs root (/dev/net/tun, network namespaces): for an ordinary user each
//! test prints "skipped: network held needs root" and returns. As root every test
//! runs, and a pair that cannot be made fails it.

use closefuzz::exec::{run_local, wire, KernelRun, Sockets};
use closefuzz::script::Scenario;
use closefuzz::step::{wire_segs, Network, Op, Outcome, Sock, Start, Step};
use closefuzz::transport::Transport;
use std::time::{Duration, Instant};

fn root() -> bool {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("skipped: network held needs root");
    }
    root
}

const BOTH: [Transport; 2] = [Transport::Tcp4, Transport::Tcp6];

/// Runs `script` (step, expected result, expected segments sent during the step) under
/// `network held` over `t`, and fails listing every step that differs.
fn check(t: Transport, script: &[(&str, &str, &str)]) -> KernelRun {
    check_from("", t, script)
}

/// [`check`] after the header lines `head` (`start listening\n`).
fn check_from(head: &str, t: Transport, script: &[(&str, &str, &str)]) -> KernelRun {
    // A sleep is parsed as a placeholder line and put back once parsed (written
    // before held scripts could sleep; harmless).
    let text: String = std::iter::once(format!("{head}network held\n"))
        .chain(
            script
                .iter()
                .map(|(s, _, _)| match s.strip_prefix("sleep ") {
                    Some(_) => "held a>b\n".to_string(),
                    None => format!("{s}\n"),
                }),
        )
        .collect();
    let mut case = Scenario::parse("wire", &text).unwrap().case(t);
    for (i, (s, _, _)) in script.iter().enumerate() {
        if let Some(ms) = s.strip_prefix("sleep ") {
            case.steps[i] = Step::Sleep {
                ms: ms.parse().unwrap(),
            };
        }
    }
    assert_eq!(case.network, Network::Held);
    let run = run_local(&case).unwrap_or_else(|e| panic!("{t}: {e}"));
    let mut diffs = Vec::new();
    for (i, (step, outcome, segs)) in script.iter().enumerate() {
        let got_outcome = run.steps[i].0.outcome.to_string();
        let got_segs = wire_segs(&run.wire[i]);
        let line = format!("{step:<18} => {got_outcome:<12} {got_segs}");
        if got_outcome != *outcome || got_segs != *segs {
            diffs.push(format!(
                "{line}\n{:<18}    expected {outcome:<12} {segs}",
                ""
            ));
        } else {
            diffs.push(line);
        }
    }
    let bad = script.iter().enumerate().any(|(i, (_, o, s))| {
        run.steps[i].0.outcome.to_string() != *o || wire_segs(&run.wire[i]) != *s
    });
    assert!(!bad, "{t}:\n{}", diffs.join("\n"));
    run
}

/// Data and its acknowledgement, then the four-way close followed to its end: FIN_WAIT1
/// → FIN_WAIT2 → TIME_WAIT on a's side, CLOSE_WAIT → LAST_ACK → gone on b's, with
/// a's states read from sock_diag in A and b's in B once their descriptors are closed.
#[test]
fn data_ack_and_the_four_way_close() {
    if !root() {
        return;
    }
    for t in BOTH {
        check(
            t,
            &[
                // Nagle is off and nothing is in flight: tcp_write_xmit sends at once.
                // Numbers are relative to each end's ISN + 1.
                ("a: write 5", "ok 5", "a>b DATA(5) seq 0 ack 0"),
                ("held a>b", "DATA(5)", "-"),
                ("b: read 10", "EAGAIN", "-"),
                // The route's quickack metric: tcp_in_quickack_mode is true, so
                // __tcp_ack_snd_check sends the ACK now (tcp_send_ack), no delayed ACK.
                ("deliver a>b", "ok", "b>a ACK seq 0 ack 5"),
                ("held a>b", "-", "-"),
                ("held b>a", "ACK", "-"),
                ("b: read 10", "data 5", "-"),
                // Nothing is unacknowledged at a until the ACK arrives, but the FIN does
                // not wait for it: tcp_close -> tcp_send_fin, seq after the 5 bytes.
                ("a: close", "ok", "a>b FIN seq 5 ack 0"),
                ("a: state", "FIN_WAIT1", "-"),
                ("deliver b>a", "ok", "-"),
                ("a: state", "FIN_WAIT1", "-"),
                // The FIN: tcp_fin moves b to CLOSE_WAIT and ACKs it at once.
                ("deliver a>b", "ok", "b>a ACK seq 0 ack 6"),
                ("b: state", "CLOSE_WAIT", "-"),
                // The ACK of the FIN reaches the orphan in FIN_WAIT1: with linger2 below
                // TIME_WAIT's length, tcp_rcv_state_process hands it to a TIME_WAIT
                // mini-socket in substate FIN_WAIT2 (tcp_time_wait).
                ("deliver b>a", "ok", "-"),
                ("a: state", "FIN_WAIT2", "-"),
                ("b: close", "ok", "b>a FIN seq 0 ack 6"),
                ("b: state", "LAST_ACK", "-"),
                // tcp_timewait_state_process: a FIN in FIN_WAIT2 moves it to TIME_WAIT
                // and is ACKed (TCP_TW_ACK).
                ("deliver b>a", "ok", "a>b ACK seq 6 ack 1"),
                ("a: state", "TIME_WAIT", "-"),
                // LAST_ACK takes the ACK of its FIN: tcp_done, nothing is left of b.
                ("deliver a>b", "ok", "-"),
                ("b: state", "gone", "-"),
                ("a: state", "TIME_WAIT", "-"),
                ("held a>b", "-", "-"),
                ("held b>a", "-", "-"),
            ],
        );
    }
}

/// `start listening` under held: the handshake one segment at a time, each end's
/// numbers relative to its ISN + 1 and a SYN's (its ISN) reported as 0.
#[test]
fn the_handshake_step_by_step() {
    if !root() {
        return;
    }
    for t in BOTH {
        check_from(
            "start listening\n",
            t,
            &[
                // tcp_v4_connect -> tcp_connect: the SYN leaves inside the call.
                ("a: connect", "EINPROGRESS", "a>l SYN seq 0 no ack"),
                ("a: state", "SYN_SENT", "-"),
                // tcp_conn_request: a request (not a socket) answers SYN-ACK.
                ("deliver a>l", "ok", "l>a SYN-ACK seq 0 ack 0"),
                ("b: accept", "EAGAIN", "-"),
                // tcp_rcv_synsent_state_process: ESTABLISHED, the ACK at once.
                ("deliver l>a", "ok", "a>l ACK seq 0 ack 0"),
                ("a: state", "ESTABLISHED", "-"),
                ("a: write 3", "ok 3", "a>l DATA(3) seq 0 ack 0"),
                // The data overtakes the ACK: its valid ACK makes the child
                // (tcp_check_req), which takes the data and acknowledges it.
                ("deliver a>l 2", "ok", "l>a ACK seq 0 ack 3"),
                ("b: accept", "ok", "-"),
                // The late ACK ends before RCV.WUP: tcp_send_dupack.
                ("deliver a>b", "ok", "b>a ACK seq 0 ack 3"),
                ("b: read 10", "data 3", "-"),
                ("held a>b", "-", "-"),
            ],
        );
    }
}

/// A SYN that meets no listener draws an RST with sequence number 0 that
/// acknowledges it (tcp_v4_send_reset), which refuses the connect.
#[test]
fn a_syn_after_the_listener_closed_is_refused() {
    if !root() {
        return;
    }
    for t in BOTH {
        check_from(
            "start listening\n",
            t,
            &[
                ("a: connect", "EINPROGRESS", "a>l SYN seq 0 no ack"),
                ("l: close", "ok", "-"),
                ("deliver a>l", "ok", "l>a RST seq 0 ack 0"),
                ("deliver l>a", "ok", "-"),
                ("a: connect", "ECONNREFUSED", "-"),
            ],
        );
    }
}

/// Both FINs in flight at once: each end receives the other's FIN in FIN_WAIT1
/// (tcp_fin: FIN_WAIT1 -> CLOSING, ACK at once), then the ACK of its own FIN in
/// CLOSING (tcp_rcv_state_process: CLOSING -> tcp_time_wait(TIME_WAIT)).
#[test]
fn simultaneous_close_goes_through_closing_to_time_wait() {
    if !root() {
        return;
    }
    for t in BOTH {
        check(
            t,
            &[
                ("a: close", "ok", "a>b FIN seq 0 ack 0"),
                ("b: close", "ok", "b>a FIN seq 0 ack 0"),
                ("held a>b", "FIN", "-"),
                ("held b>a", "FIN", "-"),
                ("a: state", "FIN_WAIT1", "-"),
                ("b: state", "FIN_WAIT1", "-"),
                ("deliver a>b", "ok", "b>a ACK seq 1 ack 1"),
                ("b: state", "CLOSING", "-"),
                ("deliver b>a", "ok", "a>b ACK seq 1 ack 1"),
                ("a: state", "CLOSING", "-"),
                ("held a>b", "ACK", "-"),
                ("held b>a", "ACK", "-"),
                // The ACKs of the FINs, delivered in the other order.
                ("deliver b>a", "ok", "-"),
                ("a: state", "TIME_WAIT", "-"),
                ("deliver a>b", "ok", "-"),
                ("b: state", "TIME_WAIT", "-"),
            ],
        );
    }
}

/// Two segments delivered in reverse order: the later one is out of order at b
/// (tcp_data_queue -> tcp_data_queue_ofo), and with data in the out-of-order queue
/// __tcp_ack_snd_check ACKs at once: a duplicate ACK of 0. The earlier one fills the
/// hole; tcp_ofo_queue moves the queued one in and the ACK covers both (7).
#[test]
fn reordered_data_draws_a_duplicate_ack() {
    if !root() {
        return;
    }
    for t in BOTH {
        check(
            t,
            &[
                ("a: write 3", "ok 3", "a>b DATA(3) seq 0 ack 0"),
                ("a: write 4", "ok 4", "a>b DATA(4) seq 3 ack 0"),
                ("held a>b", "DATA(3) DATA(4)", "-"),
                ("deliver a>b 2", "ok", "b>a ACK seq 0 ack 0"),
                ("b: read 10", "EAGAIN", "-"),
                ("deliver a>b", "ok", "b>a ACK seq 0 ack 7"),
                ("b: read 10", "data 7", "-"),
                ("held b>a", "ACK ACK", "-"),
                ("deliver b>a all", "ok", "-"),
                ("a: outq", "ok 0", "-"),
                ("deliver a>b 2", "n/a", "-"),
            ],
        );
    }
}

/// A dropped segment is gone: nothing is sent again before the retransmission timer,
/// whose floor is the route's locked rto_min of 1 s (tcp_rto_min; the kernel's default
/// floor of 200 ms would resend within the first sleep, and so would a tail loss probe,
/// off by tcp_early_retrans 0). After it, the timer resends the data
/// (tcp_retransmit_timer) and its delivery is ACKed. (The first sleep is short so that
/// a loaded machine oversleeping it cannot reach the timer.)
#[test]
fn a_dropped_segment_waits_for_the_one_second_timer() {
    if !root() {
        return;
    }
    check(
        Transport::Tcp4,
        &[
            ("a: write 5", "ok 5", "a>b DATA(5) seq 0 ack 0"),
            ("drop a>b", "ok", "-"),
            ("held a>b", "-", "-"),
            ("drop a>b", "n/a", "-"),
            ("sleep 300", "ok", "-"),
            ("b: read 10", "EAGAIN", "-"),
            ("a: outq", "ok 5", "-"),
            ("sleep 1000", "ok", "a>b DATA(5) seq 0 ack 0"),
            ("deliver a>b", "ok", "b>a ACK seq 0 ack 5"),
            ("b: read 10", "data 5", "-"),
        ],
    );
}

/// A FIN overtaking its data: b queues the FIN out of order (it is past rcv_nxt) and
/// sends a duplicate ACK; the data then fills the hole and the FIN is processed from
/// the queue (tcp_ofo_queue -> tcp_fin): one ACK of both, CLOSE_WAIT, eof after the data.
#[test]
fn a_fin_before_its_data() {
    if !root() {
        return;
    }
    check(
        Transport::Tcp6,
        &[
            ("a: write 4", "ok 4", "a>b DATA(4) seq 0 ack 0"),
            ("a: shutdown wr", "ok", "a>b FIN seq 4 ack 0"),
            ("deliver a>b 2", "ok", "b>a ACK seq 0 ack 0"),
            ("b: state", "ESTABLISHED", "-"),
            ("deliver a>b", "ok", "b>a ACK seq 0 ack 5"),
            ("b: state", "CLOSE_WAIT", "-"),
            ("b: read 10", "data 4", "-"),
            ("b: read 10", "eof", "-"),
        ],
    );
}

/// Every case destroys what it leaves: an orphan in FIN_WAIT1 (its FIN held forever),
/// TIME_WAIT mini-sockets on both sides. While the case runs sock_diag finds them (so
/// the check below can fail); once it ends, nothing is left for any earlier case's
/// connection in either namespace, and ports did not repeat.
#[test]
fn nothing_is_left_of_earlier_cases() {
    if !root() {
        return;
    }
    let mut tuples = Vec::new();
    for i in 0..30 {
        let t = BOTH[i % 2];
        let mut w = Sockets::start_on(t, Start::Connected, Default::default(), Network::Held)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut step = |s: Step| w.step(s).outcome;
        let (ab, ba) = (closefuzz::step::Dir::PAIR[0], closefuzz::step::Dir::PAIR[1]);
        if i % 3 == 0 {
            // a's FIN never arrives: a is an orphan in FIN_WAIT1, b is ESTABLISHED.
            assert_eq!(step(Step::call(Sock::A, Op::Close)), Outcome::Ok);
            assert_eq!(step(Step::call(Sock::B, Op::Close)), Outcome::Ok);
            let st = step(Step::call(Sock::A, Op::State)).to_string();
            assert_eq!(st, "FIN_WAIT1");
        } else {
            // Simultaneous close: both in TIME_WAIT.
            for s in [
                Step::call(Sock::A, Op::Close),
                Step::call(Sock::B, Op::Close),
                Step::Deliver {
                    dir: ab,
                    which: closefuzz::step::Which::All,
                },
                Step::Deliver {
                    dir: ba,
                    which: closefuzz::step::Which::All,
                },
                Step::Deliver {
                    dir: ab,
                    which: closefuzz::step::Which::All,
                },
            ] {
                assert_eq!(step(s), Outcome::Ok, "{s}");
            }
            for s in [Sock::A, Sock::B] {
                assert_eq!(step(Step::call(s, Op::State)).to_string(), "TIME_WAIT");
            }
        }
        let (ta, tb) = (w.tuple(Sock::A).unwrap(), w.tuple(Sock::B).unwrap());
        assert_eq!((ta.local, ta.peer), (tb.peer, tb.local));
        drop(w);
        tuples.push(ta);
        for (j, t) in tuples.iter().enumerate() {
            for (side, (l, p)) in [(0, (t.local, t.peer)), (1, (t.peer, t.local))] {
                let left = wire::sockets_left(side, l, p).unwrap();
                assert_eq!(left, 0, "after case {i}: case {j}'s {l} -> {p} still held");
            }
        }
    }
    let mut ports: Vec<_> = tuples
        .iter()
        .map(|t| (t.local.port(), t.peer.port()))
        .collect();
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), tuples.len(), "a connection's ports came again");
}

/// The settings each namespace gets, read back inside it (a namespace where they did
/// not take would run cases the model's held rules do not describe).
#[test]
fn each_namespace_has_the_deterministic_settings() {
    if !root() {
        return;
    }
    // Make the pair.
    check(
        Transport::Tcp4,
        &[("a: close", "ok", "a>b FIN seq 0 ack 0")],
    );
    for side in 0..2 {
        for &(path, value, needed) in wire::SYSCTLS {
            match wire::sysctl_in(side, path) {
                Ok(v) => assert_eq!(v, value, "side {side}: {path}"),
                Err(e) => assert!(!needed, "side {side}: {path}: {e}"),
            }
        }
    }
    // The host's own settings are untouched (the thread went home after each switch).
    let host = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_sack").unwrap();
    let ours = wire::sysctl_in(0, "ipv4/tcp_sack").unwrap();
    assert_eq!(ours, "0");
    eprintln!("host tcp_sack {} (ours 0)", host.trim());
}

/// The benchmark and determinism check: a 15-step case with 8 deliveries (and the
/// three of the handshake) run many times on one thread; every run must give the same
/// results, views and segments as the first. Prints cases per second and the time one
/// pair takes to make.
#[test]
fn held_cases_per_second_and_every_run_alike() {
    if !root() {
        return;
    }
    let text = "network held
a: write 10
deliver a>b
deliver b>a
b: read 10
b: write 5
deliver b>a
deliver a>b
a: close
b: close
deliver a>b
deliver b>a
deliver a>b
deliver b>a
a: state
b: state
";
    let case = Scenario::parse("bench", text)
        .unwrap()
        .case(Transport::Tcp4);
    assert_eq!(case.steps.len(), 15);
    let first = run_local(&case).unwrap();
    let n = 2000;
    let t = Instant::now();
    let mut slowest = Duration::ZERO;
    for i in 0..n {
        let run = run_local(&case).unwrap();
        slowest = slowest.max(run.elapsed);
        assert_eq!(run.steps, first.steps, "run {i} differs from the first");
        assert_eq!(run.wire, first.wire, "run {i} sent other segments");
    }
    let took = t.elapsed();
    let setup = std::thread::spawn(wire::time_setup)
        .join()
        .unwrap()
        .unwrap();
    eprintln!(
        "network held: {n} cases in {:.3} s = {:.0} cases/s ({:.1} us/case, slowest {:.2} ms); a pair takes {:.2} ms to make",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        took.as_secs_f64() * 1e6 / n as f64,
        slowest.as_secs_f64() * 1e3,
        setup.as_secs_f64() * 1e3
    );
}
