//! The command line: exit codes and one-line errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn closefuzz(args: &[&str]) -> (i32, String, String) {
    closefuzz_in(Path::new(env!("CARGO_MANIFEST_DIR")), args)
}

fn closefuzz_in(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_closefuzz"));
    cmd.args(args).current_dir(dir);
    result(cmd.output().expect("running closefuzz"))
}

fn result(out: Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A folder of this test's own under the system temp dir, removed when dropped (also
/// when the test fails), so `cargo test` leaves nothing behind.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("closefuzz-cli-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// A file in the folder holding `text`.
    fn file(&self, name: &str, text: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed and reaped when dropped, so a failing test leaves none.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Child {
    /// The child's exit code, or None if it is still running after `limit`.
    fn wait_for(&mut self, limit: Duration) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = self.0.try_wait().unwrap() {
                return Some(status.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    fn stdout(&mut self) -> String {
        let mut s = String::new();
        std::io::Read::read_to_string(self.0.stdout.as_mut().unwrap(), &mut s).unwrap();
        s
    }

    fn stderr(&mut self) -> String {
        let mut s = String::new();
        std::io::Read::read_to_string(self.0.stderr.as_mut().unwrap(), &mut s).unwrap();
        s
    }
}

#[test]
fn replay_passes_the_motivating_case() {
    let (code, out, _) = closefuzz(&["replay", "scenarios/tcp-motivating-case.cfz"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("EPIPE sigpipe"), "{out}");
    assert!(out.contains("1 passed, 0 failed"), "{out}");
}

#[test]
fn replay_fails_on_an_unmet_expectation() {
    let dir = TempDir::new("unmet");
    let p = dir.file(
        "wrong.cfz",
        b"a: write 5 => ok 5\nb: close => ok\na: write 5 => EPIPE sigpipe\n",
    );
    let (code, out, _) = closefuzz(&["replay", p.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("EXPECTATION UNMET"), "{out}");
}

#[test]
fn replay_json_is_parseable() {
    let (code, out, _) = closefuzz(&["replay", "--json", "scenarios/tcp-motivating-case.cfz"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v[0]["pass"], true);
    assert_eq!(v[0]["steps"][6]["kernel"], "EPIPE sigpipe");
}

#[test]
fn bad_input_is_one_line_naming_file_and_line() {
    let dir = TempDir::new("bad-input");
    let p = dir.file("bad.cfz", b"a: write 5\na: wobble\n");
    let (code, out, err) = closefuzz(&["replay", p.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(out.is_empty(), "nothing runs on bad input: {out}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("bad.cfz:2: 'wobble': expected one of"),
        "{err}"
    );

    let (code, _, err) = closefuzz(&["replay", "no/such/file.cfz"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("no/such/file.cfz: cannot read scenario"),
        "{err}"
    );

    let p = dir.file("conflict.cfz", b"transport tcp4\na: close\n");
    let (code, _, err) = closefuzz(&["replay", "--transport", "unix", p.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("--transport says unix"), "{err}");
}

#[test]
fn fuzz_is_clean_and_reports_its_seed() {
    let dir = TempDir::new("fuzz-clean");
    let out_dir = dir.0.join("out");
    let (code, out, err) = closefuzz(&[
        "fuzz",
        "--cases",
        "300",
        "--seed",
        "5",
        "--threads",
        "2",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("--seed 5"), "{out}");
    assert!(out.contains("300 cases, 0 mismatches"), "{out}");
    // --out was made to check it could be written, and nothing was: it is gone.
    assert!(!out_dir.exists());
}

#[test]
fn explain_draws_the_rst() {
    let (code, out, _) = closefuzz(&["explain", "scenarios/tcp-motivating-case.cfz"]);
    assert_eq!(code, 0);
    assert!(out.contains("RST"), "{out}");
    assert!(out.contains("CLOSE_WAIT"), "{out}");
}

/// A seeded campaign against a model whose CLOSE_WAIT reset rule is wrong.
fn fuzz_wrong_close_wait_rule(out: &Path) -> (i32, String, String) {
    closefuzz(&[
        "fuzz",
        "--cases",
        "5000",
        "--seed",
        "3",
        "--mutation",
        "ResetInCloseWaitIsEconnreset",
        "--out",
        out.to_str().unwrap(),
    ])
}

/// The command line a campaign prints first, as arguments (without `closefuzz`).
fn repro_args(stdout: &str) -> Vec<String> {
    let line = stdout
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("closefuzz "))
        .unwrap_or_else(|| panic!("no command line first: {stdout}"));
    line.split_whitespace().map(String::from).collect()
}

#[test]
fn fuzz_shrinks_and_saves_a_disagreement() {
    let dir = TempDir::new("fuzz-saves");
    let out = dir.0.join("out");
    let (code, stdout, err) = fuzz_wrong_close_wait_rule(&out);
    assert_eq!(code, 1, "{stdout}{err}");
    assert!(stdout.contains("MISMATCH"), "{stdout}");
    // The file is named by everything that selects the cases it came from.
    let saved = out.join("tcp4-both-linux-ResetInCloseWaitIsEconnreset-seed3-t0.cfz");
    let text = std::fs::read_to_string(&saved).expect("the shrunk script is saved");
    assert!(
        text.contains("# model: ") && text.contains("ECONNRESET"),
        "{text}"
    );
    // The saved script is a valid scenario that the real model replays clean.
    let (code, replay_out, _) = closefuzz(&["replay", saved.to_str().unwrap()]);
    assert_eq!(code, 0, "{replay_out}");
}

#[test]
fn the_printed_command_reruns_the_same_cases() {
    let dir = TempDir::new("fuzz-repro");
    let out = dir.0.join("out");
    let (code, stdout, err) = fuzz_wrong_close_wait_rule(&out);
    assert_eq!(code, 1, "{stdout}{err}");
    let args = repro_args(&stdout);
    for flag in [
        "--cases",
        "--seed",
        "--threads",
        "--transport",
        "--max-steps",
        "--platform",
        "--mutation",
    ] {
        assert!(args.iter().any(|a| a == flag), "{flag} missing: {args:?}");
    }
    let saved = std::fs::read_to_string(
        out.join("tcp4-both-linux-ResetInCloseWaitIsEconnreset-seed3-t0.cfz"),
    )
    .unwrap();
    assert!(
        saved.starts_with(&format!("# found by: closefuzz {}\n", args.join(" "))),
        "{saved}"
    );
    // Run exactly the printed line, in a folder of its own so its default --out
    // lands there: it finds and shrinks to the same script.
    let again = dir.0.join("again");
    std::fs::create_dir(&again).unwrap();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, stdout2, err) = closefuzz_in(&again, &args);
    assert_eq!(code, 1, "{stdout2}{err}");
    let rerun = std::fs::read_to_string(
        again.join("closefuzz-failures/tcp4-both-linux-ResetInCloseWaitIsEconnreset-seed3-t0.cfz"),
    )
    .unwrap();
    assert_eq!(rerun, saved);
}

#[test]
fn an_unwritable_out_is_refused_before_the_campaign() {
    // Nothing would ever be written here: the campaign is clean.
    let (code, out, err) = closefuzz(&["fuzz", "--cases", "5", "--out", "/proc/nope"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.is_empty(), "nothing runs: {out}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--out /proc/nope: cannot create"), "{err}");
}

#[test]
fn a_finding_that_cannot_be_written_is_still_printed() {
    let dir = TempDir::new("fuzz-unwritable");
    let out = dir.0.join("out");
    // The folder is writable (the check before the campaign passes), but the
    // finding's own file name is taken by a folder.
    std::fs::create_dir_all(out.join("tcp4-both-linux-ResetInCloseWaitIsEconnreset-seed3-t0.cfz"))
        .unwrap();
    let (code, stdout, err) = fuzz_wrong_close_wait_rule(&out);
    assert_eq!(code, 1, "a mismatch, not bad input: {stdout}{err}");
    assert!(stdout.contains("# found by: closefuzz fuzz"), "{stdout}");
    assert!(stdout.contains("ECONNRESET"), "{stdout}");
    assert!(stdout.contains("# model: "), "{stdout}");
    assert!(err.contains("cannot write"), "{err}");
}

#[test]
fn every_number_is_bounded() {
    for (args, expected) in [
        (
            &[
                "fuzz",
                "--max-steps",
                "18446744073709551615",
                "--cases",
                "3",
            ][..],
            "--max-steps 18446744073709551615: expected 1 to 256",
        ),
        (
            &["fuzz", "--max-steps", "0"],
            "--max-steps 0: expected 1 to 256",
        ),
        (
            &["fuzz", "--threads", "18446744073709551615", "--cases", "3"],
            "--threads 18446744073709551615: expected 1 to 64",
        ),
        (&["fuzz", "--threads", "0"], "--threads 0: expected 1 to 64"),
        (
            &["fuzz", "--cases", "0"],
            "--cases 0: expected 1 to 1000000000",
        ),
        (
            &["fuzz", "--cases", "18446744073709551615"],
            "--cases 18446744073709551615: expected 1 to 1000000000",
        ),
        (
            &["bench", "--cases", "1"],
            "--cases 1: expected 2 to 100000",
        ),
        (
            &["bench", "--cases", "18446744073709551615"],
            "--cases 18446744073709551615: expected 2 to 100000",
        ),
    ] {
        let start = Instant::now();
        let (code, out, err) = closefuzz(args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: {err}");
        assert!(start.elapsed() < Duration::from_secs(2), "{args:?}");
    }
}

#[test]
fn never_more_threads_than_cases() {
    let dir = TempDir::new("fuzz-threads");
    let (code, out, err) = closefuzz(&[
        "fuzz",
        "--cases",
        "3",
        "--threads",
        "64",
        "--seed",
        "1",
        "--out",
        dir.0.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("--threads 64 but only 3 cases: running 3 threads"),
        "{err}"
    );
    // The printed command says what ran.
    assert!(out.starts_with("closefuzz fuzz --cases 3 "), "{out}");
    assert!(out.contains("--threads 3 "), "{out}");
    assert!(out.contains("3 cases, 0 mismatches"), "{out}");
}

#[test]
fn the_shrunk_script_is_one_minimal() {
    let dir = TempDir::new("fuzz-minimal");
    let (code, out, err) = closefuzz(&[
        "fuzz",
        "--seed",
        "42",
        "--mutation",
        "NoSigpipe",
        "--out",
        dir.0.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}{err}");
    // proptest's shrink alone left repeated identical steps here (three `a: write 0`
    // where one shows the missing SIGPIPE); the greedy pass removes every step that can
    // go (tests/mutation.rs checks that no single step can): what is left is short,
    // has no repeats, and ends in the write whose SIGPIPE the wrong model denies.
    let script =
        std::fs::read_to_string(dir.0.join("tcp4-both-linux-NoSigpipe-seed42-t0.cfz")).unwrap();
    let steps: Vec<&str> = script
        .lines()
        .filter(|l| l.starts_with("a:") || l.starts_with("b:"))
        .collect();
    assert!(
        script.contains(&format!("# shrunk to {} steps", steps.len())),
        "{script}"
    );
    assert!(steps.len() <= 3, "{script}");
    assert!(steps.windows(2).all(|w| w[0] != w[1]), "{script}");
    // The case as first found stays in the file, commented out, longer than the shrunk.
    let (_, found) = script
        .split_once("# as it first disagreed, before shrinking:\n")
        .expect("the unshrunk case");
    let found_steps = found
        .lines()
        .filter(|l| l.starts_with("# a:") || l.starts_with("# b:"))
        .count();
    assert!(found_steps > steps.len(), "{script}");
    let last = steps.last().unwrap();
    assert!(
        last.contains(": write")
            && last.contains("EPIPE sigpipe")
            && last.contains("# model: EPIPE"),
        "{script}"
    );
}

#[test]
fn sigint_stops_a_campaign_with_a_summary() {
    let dir = TempDir::new("fuzz-sigint");
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_closefuzz"))
            .args([
                "fuzz",
                "--cases",
                "1000000000",
                "--seed",
                "9",
                "--threads",
                "2",
            ])
            .current_dir(&dir.0)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting closefuzz"),
    );
    std::thread::sleep(Duration::from_secs(1));
    // SAFETY: kill on the pid of a child we have not reaped yet.
    assert_eq!(
        unsafe { libc::kill(child.0.id() as libc::pid_t, libc::SIGINT) },
        0
    );
    let code = child.wait_for(Duration::from_secs(10));
    let (out, err) = (child.stdout(), child.stderr());
    assert_eq!(code, Some(130), "{out}{err}");
    let repro = "closefuzz fuzz --cases 1000000000 --max-steps 24 --seed 9 --threads 2 --transport tcp4 --start both --platform linux";
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[0], repro);
    let run: u64 = lines[1]
        .strip_prefix("interrupted: ")
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(run > 0, "{out}");
    assert!(
        lines[1].contains(" of 1000000000 cases run, 0 mismatches"),
        "{out}"
    );
    assert_eq!(lines[2], format!("to run these cases again: {repro}"));
}

#[test]
fn bench_flags_and_shows_disagreements() {
    let (code, out, err) = closefuzz(&["bench", "--cases", "40", "--mutation", "NoSigpipe"]);
    assert_eq!(code, 1, "a disagreement that shows again fails: {out}{err}");
    let at = out.find("mismatches").expect("a mismatch count");
    let after = &out[at..];
    assert!(after.contains("disagreed again when run again"), "{out}");
    assert!(after.contains("EPIPE sigpipe   # model: EPIPE"), "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("targets")),
        "a summary of the targets: {out}"
    );
}

#[test]
fn replay_skips_a_byte_order_mark() {
    // As some editors write.
    let dir = TempDir::new("replay-bom");
    let p = dir.file("bom.cfz", b"\xef\xbb\xbfa: close => ok\n");
    let (code, out, err) = closefuzz(&["replay", p.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn replay_does_not_echo_a_long_line_whole() {
    let dir = TempDir::new("replay-long");
    let mut long = b"a: ".to_vec();
    long.extend(std::iter::repeat_n(b'x', 1 << 20));
    let p = dir.file("long.cfz", &long);
    let (code, _, err) = closefuzz(&["replay", p.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert_eq!(err.lines().count(), 1, "{}", &err[..err.len().min(500)]);
    assert!(err.len() < 500, "{} bytes: {}", err.len(), &err[..500]);
    assert!(err.contains("long.cfz:1: 'xxxxxxxx"), "{err}");
    assert!(err.contains("x…': expected one of"), "{err}");
}

#[test]
fn replay_refuses_a_device() {
    let start = Instant::now();
    let (code, _, err) = closefuzz(&["replay", "/dev/zero"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("/dev/zero: cannot read scenario: not a regular file"),
        "{err}"
    );
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[test]
fn replay_refuses_a_fifo_without_blocking() {
    let dir = TempDir::new("replay-fifo");
    let fifo = dir.0.join("fifo.cfz");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo on a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_closefuzz"))
            .args(["replay", fifo.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    assert_eq!(
        child.wait_for(Duration::from_secs(5)),
        Some(2),
        "a FIFO with no writer must not block"
    );
    assert!(child.stderr().contains("not a regular file"));
}

#[test]
fn replay_reads_standard_input_up_to_16_mib() {
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_closefuzz"))
            .args(["replay", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    std::io::Write::write_all(&mut child.0.stdin.take().unwrap(), b"a: close => ok\n").unwrap();
    assert_eq!(
        child.wait_for(Duration::from_secs(5)),
        Some(0),
        "{}",
        child.stderr()
    );
    assert!(child.stdout().contains("1 passed, 0 failed"));
    // No more of it than 16 MiB.
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_closefuzz"))
            .args(["replay", "-"])
            .stdin(std::fs::File::open("/dev/zero").unwrap())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    assert_eq!(child.wait_for(Duration::from_secs(5)), Some(2));
    assert!(child
        .stderr()
        .contains("<stdin>: cannot read scenario: larger than 16 MiB"));
}

#[test]
fn record_writes_nothing_into_the_current_folder() {
    let dir = TempDir::new("record-default");
    let cwd = dir.0.join("cwd");
    let tmp = dir.0.join("tmp");
    std::fs::create_dir(&cwd).unwrap();
    std::fs::create_dir(&tmp).unwrap();
    let scenarios = few_scenarios(&dir.0);
    let out = Command::new(env!("CARGO_BIN_EXE_closefuzz"))
        .args(["record", "--scenarios", scenarios.to_str().unwrap()])
        .current_dir(&cwd)
        .env("TMPDIR", &tmp)
        .output()
        .unwrap();
    let (code, out, err) = result(out);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(std::fs::read_dir(&cwd).unwrap().count(), 0, "{out}");
    let written: Vec<PathBuf> = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(written.len(), 1, "{written:?}");
    assert!(written[0].to_str().unwrap().ends_with("-native.json"));
    assert!(
        out.contains(written[0].to_str().unwrap()),
        "the path is printed: {out}"
    );
}

#[test]
fn record_then_matrix_add_gives_that_machine_a_column() {
    let tmp = TempDir::new("matrix");
    let dir = &tmp.0;
    let rec = dir.join("othermachine-1.0-native.json");
    let scenarios = few_scenarios(dir);
    let scenarios = scenarios.to_str().unwrap();
    let (code, out, err) = closefuzz(&[
        "record",
        "--scenarios",
        scenarios,
        "--out",
        rec.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    // Pretend it came from another OS, so its columns are told apart from this one's.
    let text = std::fs::read_to_string(&rec).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["os"] = "othermachine".into();
    v["release"] = "1.0".into();
    std::fs::write(&rec, v.to_string()).unwrap();
    let docs = dir.join("docs");
    let matrix = |extra: &[&str]| {
        let mut args = vec![
            "matrix",
            "--platform",
            "linux",
            "--scenarios",
            scenarios,
            "--out",
            docs.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        closefuzz(&args)
    };
    let (code, out, err) = matrix(&["--add", rec.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let md = std::fs::read_to_string(docs.join("behavior.md")).unwrap();
    assert!(
        md.contains("| othermachine-1.0/tcp4 |"),
        "no column for the recording"
    );
    assert!(
        docs.join("recordings/othermachine-1.0-native.json")
            .is_file(),
        "the recording is kept"
    );
    // A later run without --add keeps the column.
    let (code, _, _) = matrix(&[]);
    assert_eq!(code, 0);
    let md = std::fs::read_to_string(docs.join("behavior.md")).unwrap();
    assert!(md.contains("othermachine-1.0/seqpacket"));
    // A file that is not a recording is refused with one line naming it.
    let bad = dir.join("bad.json");
    std::fs::write(&bad, "{\"os\": 3}").unwrap();
    let (code, _, err) = matrix(&["--add", bad.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("bad.json:1: not a closefuzz recording"),
        "{err}"
    );
    // A device or a file past 64 MiB is refused before it is read whole.
    let start = Instant::now();
    let (code, _, err) = matrix(&["--add", "/dev/zero"]);
    assert_eq!(code, 2);
    assert!(err.contains("not a regular file"), "{err}");
    let big = dir.join("big.json");
    std::fs::File::create(&big)
        .unwrap()
        .set_len((64 << 20) + 1)
        .unwrap();
    let (code, _, err) = matrix(&["--add", big.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("larger than 64 MiB"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(start.elapsed() < Duration::from_secs(10));
}

/// A folder under `dir` with a few of the committed scenarios (a connected pair, a
/// listener, a Unix one): enough for `record` and `matrix` to show their columns in
/// seconds rather than replaying every scenario on every transport.
fn few_scenarios(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let dst = dir.join("scenarios");
    std::fs::create_dir_all(&dst).unwrap();
    for f in [
        "tcp-motivating-case.cfz",
        "tcp-listener-close-queued.cfz",
        "unix-close-with-unread-data.cfz",
    ] {
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
    }
    dst
}

/// A file in a temporary folder of its own, removed with the guard (also when the test
/// fails).
struct TempScript(std::path::PathBuf);

impl TempScript {
    fn new(name: &str, text: &str) -> TempScript {
        let dir = std::env::temp_dir().join(format!(
            "closefuzz-cli-explain-{}-{name}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        TempScript(p)
    }
    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempScript {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[test]
fn explain_shows_expectations_and_fails_when_one_is_unmet() {
    // The last write is written down wrongly: on Linux it fails with EPIPE + SIGPIPE.
    let wrong = TempScript::new(
        "wrong.cfz",
        "transport tcp4\na: write 5 => ok 5\nb: read 100 => data 5\nb: close => ok\na: write 5 => ok 5\na: write 5 => ok 5\n",
    );
    let (code, out, err) = closefuzz(&["explain", wrong.path()]);
    assert_eq!(
        code, 1,
        "an unmet expectation fails explain as it fails replay\n{out}{err}"
    );
    assert!(
        out.contains(
            "expect: ok 5   kernel: EPIPE sigpipe   model: EPIPE sigpipe   <-- EXPECTATION UNMET"
        ),
        "{out}"
    );
    assert!(out.contains("FAIL (line 6: expectation unmet)"), "{out}");

    // A met expectation, with an override for another platform: the one for the
    // platform run is shown, and the verdict is PASS.
    let right = TempScript::new(
        "right.cfz",
        "transport tcp4\na: write 5 => ok 5\nb: read 100 => data 5\nb: close => ok\na: write 5 => ok 5\na: write 5 => EPIPE sigpipe; gvisor => EPIPE\n",
    );
    let (code, out, err) = closefuzz(&["explain", right.path()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("expect: EPIPE sigpipe   kernel: EPIPE sigpipe   model: EPIPE sigpipe\n"),
        "{out}"
    );
    assert!(out.trim_end().ends_with("PASS"), "{out}");
}

/// `replay` on a folder replays its scenarios (the README's `replay scenarios/*` names
/// the subfolders too); a folder without any is bad input.
#[test]
fn replay_takes_a_folder_of_scenarios() {
    let dir = TempDir::new("replay-folder");
    let scenarios = few_scenarios(&dir.0);
    let (code, out, err) = closefuzz(&["replay", scenarios.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("3 passed, 0 failed"), "{out}");
    let empty = dir.0.join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (code, out, err) = closefuzz(&["replay", empty.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}");
    assert!(err.contains("no .cfz scenario files"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// Output names the client and the server where a scenario starts from a listener (the
/// accepted side is the server's), and keeps plain a/b for a connected start.
#[test]
fn listening_output_says_client_and_server() {
    let f = "scenarios/tcp-listener-close-queued.cfz";
    let (code, out, err) = closefuzz(&["replay", f]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("start listening: clients a and c; the server's listener l"),
        "{out}"
    );
    let (code, out, err) = closefuzz(&["explain", f]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("client a c") && out.contains("server l b d"),
        "{out}"
    );
    let dir = TempDir::new("explain-roles");
    let svg = dir.0.join("l.svg");
    let (code, out, err) = closefuzz(&["explain", "--svg", svg.to_str().unwrap(), f]);
    assert_eq!(code, 0, "{out}{err}");
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(
        text.contains("client: a, c") && text.contains("server: l, b, d"),
        "{text}"
    );
    let (_, out, _) = closefuzz(&["replay", "scenarios/tcp-motivating-case.cfz"]);
    assert!(!out.contains("client"), "{out}");
}

/// Under a `sigpipe` header, replay says in words what such a process experienced at
/// the step that raised SIGPIPE; without one it says nothing of the kind.
#[test]
fn a_sigpipe_header_tells_what_the_process_experienced() {
    let (code, out, err) = closefuzz(&["replay", "scenarios/tcp-remedy-sigpipe-default.cfz"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("would be killed here by SIGPIPE (exit status 141)"),
        "{out}"
    );
    let (code, out, _) = closefuzz(&["explain", "scenarios/tcp-remedy-sigpipe-ignore.cfz"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("SIGPIPE is ignored"), "{out}");
    let (_, out, _) = closefuzz(&["replay", "scenarios/tcp-motivating-case.cfz"]);
    assert!(!out.contains("killed"), "{out}");
}

/// A reader that goes away (`closefuzz replay ... | head -1`) ends the process as
/// SIGPIPE would (exit 141), with no panic message: closefuzz blocks SIGPIPE, so its
/// write fails with EPIPE instead.
#[test]
fn a_closed_standard_output_ends_quietly() {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_closefuzz"))
        .args(["replay", "scenarios/ported"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains(".cfz"), "{first}");
    // The reader is dropped here: the next writes meet a closed pipe.
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(141), "{err}");
}

/// Arguments clap refuses are one line too, naming what was wrong, exit 2; help still
/// prints whole.
#[test]
fn refused_arguments_are_one_line() {
    for (args, expected) in [
        (&["fuzz", "--bogus"][..], "'--bogus'"),
        (&["fuzz", "--cases", "abc"][..], "'abc'"),
        (&["frob"][..], "'frob'"),
        (&["replay", "--platform", "bsd", "x.cfz"][..], "bsd"),
    ] {
        let (code, _, err) = closefuzz(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    let (code, out, _) = closefuzz(&["fuzz", "--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("--cases"), "{out}");
}

/// `--pcap` writes a held scenario's packets as pcapng: every segment the comparison
/// saw leave is there as emitted, every `deliver` and `drop` step moved one, each with
/// its comment; an instant scenario is refused in one line, nothing written.
#[test]
fn pcap_writes_the_held_wire_with_comments() {
    use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketOption;
    use pcap_file::pcapng::{Block, PcapNgReader};
    let dir = TempDir::new("pcap");
    let script = std::fs::read_to_string("scenarios/wire/four-way-close.cfz").unwrap();
    let delivers = script.lines().filter(|l| l.starts_with("deliver")).count();
    // smoltcp shows the handshake as delivered only (it is polled through before the
    // first step); the host kernel's wire holds each of its segments too.
    for (platform, handshake) in [("smoltcp", 3), ("linux", 6)] {
        let out = dir.0.join(format!("four-way-{platform}.pcapng"));
        let (code, stdout, stderr) = closefuzz(&[
            "explain",
            "--platform",
            platform,
            "--pcap",
            out.to_str().unwrap(),
            "scenarios/wire/four-way-close.cfz",
        ]);
        assert_eq!(code, 0, "{stdout}{stderr}");
        let bytes = std::fs::read(&out).unwrap();
        let mut r = PcapNgReader::new(&bytes[..]).unwrap();
        let mut comments = vec![];
        while let Some(b) = r.next_block() {
            if let Block::EnhancedPacket(p) = b.unwrap() {
                assert!(matches!(p.data[0] >> 4, 4 | 6), "an IP packet");
                for o in &p.options {
                    if let EnhancedPacketOption::Comment(c) = o {
                        comments.push(c.to_string());
                    }
                }
            }
        }
        let count = |w: &str| comments.iter().filter(|c| c.contains(w)).count();
        // The handshake's, then at least one per deliver step.
        assert_eq!(count("handshake"), handshake, "{platform}: {comments:#?}");
        assert!(
            count(": delivered: ") >= 3 + delivers,
            "{platform}: {comments:#?}"
        );
        assert!(
            count("emitted, held") >= delivers,
            "{platform}: {comments:#?}"
        );
        assert!(
            comments.iter().any(|c| c.contains("a>b FIN seq 5 ack 0")),
            "{platform}: {comments:#?}"
        );
    }

    let plain = dir.0.join("plain.pcapng");
    let (code, _, stderr) = closefuzz(&[
        "replay",
        "--pcap",
        plain.to_str().unwrap(),
        "scenarios/tcp-connect-then-accept.cfz",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("not `network held`"), "{stderr}");
    assert!(!plain.exists());
}

/// Two connections' retransmission timers due together fire in one sleep in an order
/// the model cannot know: explain shows the order the kernel took as the model's and
/// the other one beside it, and the step agrees.
#[test]
fn explain_shows_both_orders_of_timers_firing_together() {
    let (code, stdout, stderr) = closefuzz(&[
        "explain",
        "scenarios/wire/timers-of-two-connections-in-one-sleep.cfz",
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let sleep = stdout
        .split("\n\n")
        .find(|b| b.contains("sleep 1500"))
        .expect("the sleep's block");
    let line = |p: &str| {
        sleep
            .lines()
            .find_map(|l| l.trim().strip_prefix(p))
            .unwrap_or_else(|| panic!("{p} in {sleep}"))
            .trim()
            .to_string()
    };
    let (kernel, model, other) = (
        line("sent, kernel:"),
        line("sent, model:"),
        line("or, model:"),
    );
    let a = "a>l DATA(1) seq 0 ack 0";
    let b = "b>c DATA(1) seq 0 ack 0";
    assert_eq!(kernel, model, "{sleep}");
    let both = [format!("{a}, {b}"), format!("{b}, {a}")];
    assert!(both.contains(&kernel), "{sleep}");
    assert!(both.contains(&other) && other != kernel, "{sleep}");
}

/// A sleep while a held SYN is unanswered lets the kernel resend it, which the model
/// does not follow: the disagreement is reported with the reason beside it, at that
/// step only, and the replay fails.
#[test]
fn a_sleep_the_model_does_not_follow_says_why() {
    let dir = TempDir::new("unfollowed");
    let script = dir.0.join("syn-resent.cfz");
    std::fs::write(
        &script,
        "transport tcp4\nstart listening\nnetwork held\na: connect => EINPROGRESS\n\
         drop a>l => ok\nsleep 1500\na: state => SYN_SENT\n",
    )
    .unwrap();
    let (code, stdout, stderr) = closefuzz(&["replay", script.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    let why = "not followed by the model here: a SYN or SYN-ACK not yet answered";
    assert_eq!(stdout.matches(why).count(), 1, "{stdout}");
    let sleep = stdout
        .lines()
        .position(|l| l.contains("sleep 1500"))
        .unwrap();
    let note = stdout.lines().position(|l| l.contains(why)).unwrap();
    assert_eq!(note, sleep + 1, "{stdout}");
    assert!(
        stdout.lines().nth(sleep).unwrap().contains("MODEL DIFFERS"),
        "{stdout}"
    );
}
