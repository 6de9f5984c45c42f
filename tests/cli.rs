//! The command line: exit codes and one-line errors.

use std::process::Command;

fn closefuzz(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_closefuzz"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("running closefuzz");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn temp_script(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("closefuzz-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
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
    let p = temp_script(
        "wrong.cfz",
        "a: write 5 => ok 5\nb: close => ok\na: write 5 => EPIPE sigpipe\n",
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
    let p = temp_script("bad.cfz", "a: write 5\na: wobble\n");
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

    let p = temp_script("conflict.cfz", "transport tcp4\na: close\n");
    let (code, _, err) = closefuzz(&["replay", "--transport", "unix", p.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("--transport says unix"), "{err}");
}

#[test]
fn fuzz_is_clean_and_reports_its_seed() {
    let (code, out, err) = closefuzz(&["fuzz", "--cases", "300", "--seed", "5", "--threads", "2"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("--seed 5"), "{out}");
    assert!(out.contains("300 cases, 0 mismatches"), "{out}");
}

#[test]
fn explain_draws_the_rst() {
    let (code, out, _) = closefuzz(&["explain", "scenarios/tcp-motivating-case.cfz"]);
    assert_eq!(code, 0);
    assert!(out.contains("RST"), "{out}");
    assert!(out.contains("CLOSE_WAIT"), "{out}");
}

/// A seeded campaign against a model whose CLOSE_WAIT reset rule is wrong.
fn fuzz_wrong_close_wait_rule(out: &std::path::Path) -> (i32, String, String) {
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

#[test]
fn fuzz_shrinks_and_saves_a_disagreement() {
    let out = std::env::temp_dir().join(format!("closefuzz-cli-fail-{}", std::process::id()));
    let (code, stdout, err) = fuzz_wrong_close_wait_rule(&out);
    assert_eq!(code, 1, "{stdout}{err}");
    assert!(stdout.contains("MISMATCH"), "{stdout}");
    let saved = out.join("tcp4-seed3-t0.cfz");
    let text = std::fs::read_to_string(&saved).expect("the shrunk script is saved");
    assert!(
        text.contains("# model: ") && text.contains("ECONNRESET"),
        "{text}"
    );
    // The saved script is a valid scenario that the real model replays clean.
    let (code, replay_out, _) = closefuzz(&["replay", saved.to_str().unwrap()]);
    assert_eq!(code, 0, "{replay_out}");
    // The same seed finds and shrinks to the same script.
    let again = out.join("again");
    let (code, _, _) = fuzz_wrong_close_wait_rule(&again);
    assert_eq!(code, 1);
    assert_eq!(
        std::fs::read_to_string(again.join("tcp4-seed3-t0.cfz")).unwrap(),
        text
    );
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn record_then_matrix_add_gives_that_machine_a_column() {
    let dir = std::env::temp_dir().join(format!("closefuzz-cli-matrix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rec = dir.join("othermachine-1.0-native.json");
    let (code, out, err) = closefuzz(&["record", "--out", rec.to_str().unwrap()]);
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
    std::fs::remove_dir_all(&dir).unwrap();
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
