//! `closefuzz explain --svg FILE`: the ladder as a picture, from a live run.

use closefuzz::model::{Model, Platform};
use closefuzz::run::predict;
use closefuzz::script::Scenario;
use closefuzz::step::StepResult;
use closefuzz::transport::Transport;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A temporary directory removed on drop, also when the test fails.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("closefuzz-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn explain(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_closefuzz"))
        .arg("explain")
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

#[test]
fn explain_draws_the_motivating_case_as_svg() {
    let dir = TempDir::new("svg");
    let file = dir.0.join("ladder.svg");
    let (code, out, err) = explain(&[
        "--svg",
        file.to_str().unwrap(),
        "scenarios/tcp-motivating-case.cfz",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("CLOSE_WAIT"),
        "the text ladder is still printed: {out}"
    );
    let svg = std::fs::read_to_string(&file).expect("the SVG was written");
    let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let labels: Vec<&str> = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("seg"))
        .filter_map(|n| n.text())
        .collect();
    assert_eq!(labels, ["DATA(5)", "FIN", "DATA(5)", "RST"]);
    for want in [
        "EPIPE sigpipe",
        "CLOSE_WAIT",
        "expect eof ✓",
        "tcp-motivating-case.cfz",
    ] {
        assert!(svg.contains(want), "no {want:?} in the SVG");
    }
}

#[test]
fn explain_svg_escapes_text_and_reports_an_unwritable_file() {
    let dir = TempDir::new("svg-esc");
    // '&' and '<' in a comment reach the picture's <desc>; they must be escaped.
    let script = dir.0.join("a&b<c.cfz");
    std::fs::write(&script, "# x < y && y > z\na: close => ok\n").unwrap();
    let file = dir.0.join("out.svg");
    let (code, out, err) = explain(&["--svg", file.to_str().unwrap(), script.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let svg = std::fs::read_to_string(&file).unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
    assert!(doc.descendants().any(|n| n.text() == Some("a&b<c.cfz")));
    let (code, _, err) = explain(&[
        "--svg",
        "/proc/no/such/dir/x.svg",
        "scenarios/tcp-motivating-case.cfz",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot write"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// The texts of an SVG's `<text>` elements, each with its spans joined.
fn texts(svg: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(svg).expect("well-formed SVG");
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| {
            n.descendants()
                .filter(|d| d.is_text())
                .filter_map(|d| d.text())
                .collect::<String>()
        })
        .collect()
}

/// A ladder judges each call by the expectation its line states for the ladder's own
/// platform. The motivating case's `EPIPE sigpipe; gvisor => EPIPE` reads `EPIPE sigpipe`
/// on Linux and `EPIPE` on gVisor, each met by that platform's result; on gVisor the
/// Linux result (with SIGPIPE) does not meet it.
#[test]
fn a_ladder_judges_each_line_by_its_own_platforms_expectation() {
    let sc = Scenario::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/tcp-motivating-case.cfz"),
    )
    .unwrap();
    let t = Transport::Tcp4;
    let results = |p: Platform| -> Vec<StepResult> {
        predict(&Model::of(t, p), &sc.step_list())
            .into_iter()
            .map(|p| p.result)
            .collect()
    };
    for (platform, want) in [
        (Platform::Linux, "expect EPIPE sigpipe ✓"),
        (Platform::Gvisor, "expect EPIPE ✓"),
    ] {
        let svg = closefuzz::svg::ladder(&sc, t, platform, &results(platform));
        let texts = texts(&svg);
        assert!(
            texts.iter().any(|x| x == want),
            "{platform}: no {want:?} in {texts:#?}"
        );
        assert!(
            !svg.contains("unmet") && !svg.contains("gvisor =&gt;"),
            "{platform}: an unmet or unresolved expectation in {texts:#?}"
        );
    }
    let svg = closefuzz::svg::ladder(&sc, t, Platform::Gvisor, &results(Platform::Linux));
    let texts = texts(&svg);
    assert!(
        texts.iter().any(|x| x == "expect EPIPE ✗ unmet"),
        "gVisor judged a SIGPIPE by Linux's expectation: {texts:#?}"
    );
}
