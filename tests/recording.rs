//! Recordings and docs/behavior.json cross machines: every errno, poll set and TCP state
//! in them is written by name, so a file from another OS (where ECONNRESET is 54, not
//! 104) reads back as the same errnos, and one it alone has keeps its name.

use closefuzz::matrix::{build, Matrix, Recording, SCHEMA};
use closefuzz::script::Scenario;
use closefuzz::step::{Errno, Outcome, PollSet, StateSet, StepResult, TcpState};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// What `closefuzz record` on a Mac would write for a two-step scenario: names only.
/// EPROCLIM and EAUTH are BSD errnos Linux does not have; errno106 is a number the
/// recording OS itself could not name.
const MACOS_LIKE: &str = r#"{
  "schema": 2,
  "os": "macos",
  "release": "23.1.0",
  "kernel_version": "Darwin Kernel Version 23.1.0",
  "runtime": "native",
  "measured": "2024-11-02",
  "unavailable": ["poll RDHUP (POLLRDHUP is Linux-only)"],
  "expectations": {"two.cfz": ["ECONNRESET", null, null, null, null]},
  "results": {
    "two.cfz": {
      "tcp4": [
        {"outcome": {"Err": "ECONNRESET"}, "sigpipe": false},
        {"outcome": {"SockError": "EPROCLIM"}, "sigpipe": false},
        {"outcome": {"Poll": "IN|OUT|HUP"}, "sigpipe": false},
        {"outcome": {"State": "CLOSE_WAIT"}, "sigpipe": false},
        {"outcome": {"Err": "errno106"}, "sigpipe": true}
      ]
    }
  }
}"#;

fn two() -> (Vec<PathBuf>, Vec<Scenario>) {
    let sc = Scenario::parse(
        "two.cfz",
        "a: read 1 => ECONNRESET\na: error\na: poll\na: state\na: write 1\n",
    )
    .unwrap();
    (vec![Path::new("two.cfz").to_path_buf()], vec![sc])
}

#[test]
fn a_recording_from_another_os_reads_back_by_name() {
    let rec = Recording::from_json(MACOS_LIKE).expect("a schema-2 recording parses");
    let steps = &rec.results["two.cfz"]["tcp4"];
    // The name means this machine's errno, whatever number the Mac used.
    assert_eq!(steps[0].outcome, Outcome::Err(Errno::ECONNRESET));
    assert_eq!(
        steps[2].outcome,
        Outcome::Poll(PollSet::parse("IN|HUP|OUT").unwrap())
    );
    assert_eq!(steps[3].outcome, Outcome::State(TcpState::CloseWait.into()));
    // A name this build does not know stays that name, and equals no local errno.
    let Outcome::SockError(Some(e)) = steps[1].outcome else {
        panic!("{:?}", steps[1].outcome)
    };
    assert!(e.is_foreign());
    assert_eq!(e.to_string(), "EPROCLIM");
    assert!(Errno::NAMES.iter().all(|(_, n)| Errno(*n) != e));
    assert_eq!(steps[4].to_string(), "errno106 sigpipe");

    // Shown by name in the tables, never as a number.
    let (files, scenarios) = two();
    let mut m = build(&files, &scenarios, vec![], vec![]);
    m.add_recording(&rec, "macos-23.1.0-native.json");
    let col = &m.columns[0];
    assert_eq!(col.name, "macos-23.1.0/tcp4");
    // No profile for macOS yet: its cells are shown, not checked against a model.
    assert_eq!(col.profile(), None);
    assert_eq!(col.measured, "2024-11-02");
    assert_eq!(col.version, "23.1.0");
    let md = m.to_markdown();
    for want in [
        "| 2 | `a: error` |  | error EPROCLIM |",
        "| 1 | `a: read 1` | ECONNRESET | ECONNRESET |",
        "| 3 | `a: poll` |  | poll IN\\|OUT\\|HUP |",
        "| 5 | `a: write 1` |  | errno106 sigpipe |",
    ] {
        assert!(md.contains(want), "no {want:?} in:\n{md}");
    }
    assert!(
        !md.contains("errno54"),
        "ECONNRESET shown as the Mac's number"
    );

    // And written back out by the same names.
    let again = serde_json::to_value(&m).unwrap();
    let cells = &again["scenarios"][0]["steps"];
    assert_eq!(
        cells[0]["cells"]["macos-23.1.0/tcp4"]["outcome"],
        json!({"Err": "ECONNRESET"})
    );
    assert_eq!(
        cells[1]["cells"]["macos-23.1.0/tcp4"]["outcome"],
        json!({"SockError": "EPROCLIM"})
    );
    assert_eq!(cells[0]["expect"], json!("ECONNRESET"));
}

#[test]
fn results_serialize_by_name_not_by_number_or_bits() {
    let cases = [
        (
            Outcome::Err(Errno::ECONNRESET),
            json!({"Err": "ECONNRESET"}),
        ),
        (
            Outcome::SockError(Some(Errno::EPIPE)),
            json!({"SockError": "EPIPE"}),
        ),
        (Outcome::SockError(None), json!({"SockError": null})),
        (
            Outcome::Poll(PollSet::IN.with_if(PollSet::OUT, true)),
            json!({"Poll": "IN|OUT"}),
        ),
        (Outcome::Poll(PollSet::NONE), json!({"Poll": "-"})),
        (
            Outcome::State(StateSet::one(TcpState::FinWait1).with(TcpState::FinWait2)),
            json!({"State": "FIN_WAIT1|FIN_WAIT2"}),
        ),
        (Outcome::Wrote(5), json!({"Wrote": 5})),
    ];
    for (outcome, want) in cases {
        let r = StepResult::plain(outcome.clone());
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["outcome"], want);
        let back: StepResult = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }
}

#[test]
fn numbers_and_old_schemas_are_refused_with_a_reason() {
    let numeric: Result<StepResult, _> =
        serde_json::from_value(json!({"outcome": {"Err": 104}, "sigpipe": false}));
    assert!(
        numeric.is_err(),
        "an errno number means different errnos on different OSes"
    );
    let bits: Result<StepResult, _> =
        serde_json::from_value(json!({"outcome": {"Poll": 3}, "sigpipe": false}));
    assert!(bits.is_err());
    let not_a_name: Result<StepResult, _> =
        serde_json::from_value(json!({"outcome": {"Err": "<script>"}, "sigpipe": false}));
    assert!(not_a_name.is_err());

    let mut v: Value = serde_json::from_str(MACOS_LIKE).unwrap();
    v.as_object_mut().unwrap().remove("schema");
    let e = Recording::from_json(&v.to_string()).unwrap_err();
    assert!(e.contains("schema"), "{e}");
    v["schema"] = json!(1);
    let e = Recording::from_json(&v.to_string()).unwrap_err();
    assert!(
        e.contains("says schema 1") && e.contains(&format!("to {SCHEMA}")),
        "{e}"
    );
    // A wrong field names its line.
    let e = Recording::from_json("{\"schema\": 2,\n\"os\": 3}").unwrap_err();
    assert!(e.starts_with("2: not a closefuzz recording"), "{e}");
}

/// docs/behavior.json keeps to the names: no errno, poll set or state in it is a number.
#[test]
fn the_committed_json_has_names_only() {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/behavior.json"))
            .unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let mut named = 0;
    let mut numbers = vec![];
    fn walk(v: &Value, named: &mut usize, numbers: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                for (k, x) in o {
                    if ["Err", "SockError", "Poll", "State"].contains(&k.as_str()) {
                        if x.is_number() {
                            numbers.push(format!("{k}: {x}"));
                        } else {
                            *named += 1;
                        }
                    }
                    walk(x, named, numbers);
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, named, numbers)),
            _ => {}
        }
    }
    walk(&v, &mut named, &mut numbers);
    assert!(numbers.is_empty(), "numbers in behavior.json: {numbers:?}");
    assert!(named > 100, "only {named} named values");
    let m = Matrix::from_json(&text).unwrap();
    assert_eq!(m.schema, SCHEMA);
    assert!(m
        .columns
        .iter()
        .all(|c| !c.measured.is_empty() && !c.version.is_empty()));
}

/// A line's expectation describes the scenario, not one column: the JSON's `expect`,
/// a recording's `expectations` and the Markdown's `expect` column hold all of it, the
/// per-platform override included, so a reader (or another tool) can judge each
/// column by its own platform's part.
#[test]
fn expectations_keep_their_per_platform_overrides() {
    let sc = Scenario::parse(
        "over.cfz",
        "a: read 1 => eof; gvisor => data 5\na: poll => poll IN|OUT; gvisor => poll OUT\na: close\n",
    )
    .unwrap();
    let files = vec![Path::new("over.cfz").to_path_buf()];
    let m = build(&files, std::slice::from_ref(&sc), vec![], vec![]);
    let v = serde_json::to_value(&m).unwrap();
    let steps = &v["scenarios"][0]["steps"];
    assert_eq!(steps[0]["expect"], json!("eof; gvisor => data 5"));
    assert_eq!(steps[1]["expect"], json!("poll IN|OUT; gvisor => poll OUT"));
    assert_eq!(steps[2]["expect"], Value::Null);
    let rec = Recording::here(&files, &[sc]);
    assert_eq!(
        rec.expectations["over.cfz"],
        [
            Some("eof; gvisor => data 5".to_string()),
            Some("poll IN|OUT; gvisor => poll OUT".to_string()),
            None
        ]
    );
    let md = m.to_markdown();
    for want in [
        "| 1 | `a: read 1` | eof; gvisor => data 5 |",
        "| 2 | `a: poll` | poll IN\\|OUT; gvisor => poll OUT |",
    ] {
        assert!(md.contains(want), "no {want:?} in:\n{md}");
    }
}

/// A column is a (stack, profile) pair, apart from the OS that recorded it: a recording
/// made on Linux names the Linux profile, and its columns are checked against it.
#[test]
fn a_linux_recording_names_its_profile() {
    let (files, scenarios) = two();
    let mut rec = Recording::here(&files, &scenarios);
    if std::env::consts::OS != "linux" {
        assert_eq!(rec.profile, None);
        return;
    }
    assert_eq!(rec.profile.as_deref(), Some("linux"));
    rec.os = "otherlinux".into();
    rec.release = "6.1.0".into();
    rec.results.insert("two.cfz".into(), Default::default());
    rec.results
        .get_mut("two.cfz")
        .unwrap()
        .insert("tcp4".into(), vec![]);
    let text = serde_json::to_string(&rec).unwrap();
    let back = Recording::from_json(&text).unwrap();
    assert_eq!(back.profile.as_deref(), Some("linux"));
    let mut m = build(&files, &scenarios, vec![], vec![]);
    m.add_recording(&back, "otherlinux-6.1.0-native.json");
    assert_eq!(m.columns[0].name, "otherlinux-6.1.0/tcp4");
    assert_eq!(
        m.columns[0].profile(),
        Some(closefuzz::model::Platform::Linux)
    );
}
