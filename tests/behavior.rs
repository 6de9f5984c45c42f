//! docs/behavior.json, docs/behavior.md, scenarios/ and the model cannot drift apart:
//! every live cell is what the model predicts for its platform and transport, the
//! Markdown is exactly the rendering of the JSON, and the JSON covers exactly the
//! scenarios on disk, step for step.

use closefuzz::matrix::{scenario_files, Matrix};
use closefuzz::run::predict_given;
use closefuzz::script::Scenario;
use closefuzz::step::Outcome;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn matrix() -> Matrix {
    let text = std::fs::read_to_string(root().join("docs/behavior.json"))
        .expect("docs/behavior.json is committed");
    Matrix::from_json(&text).expect("docs/behavior.json parses")
}

#[test]
fn the_model_predicts_every_live_cell() {
    let m = matrix();
    // A scenario is named by its file name alone, also when it lives in a subfolder
    // (scenarios/ported/): find its path among the files the tables are made from.
    let files = scenario_files(&root().join("scenarios")).unwrap();
    let path_of = |name: &str| {
        files
            .iter()
            .find(|f| f.file_name().is_some_and(|n| n == name))
            .unwrap_or_else(|| panic!("{name}: in docs/behavior.json but not in scenarios/"))
    };
    let mut checked = 0;
    let mut wrong = vec![];
    // Profiles that do not cover every scenario yet (lwIP's; Linux 6.1's older af_unix
    // MSG_OOB): the scenarios with cells the model does not predict on that platform are
    // listed in tests/PLATFORM-known-matrix-gaps.txt, exactly (a listed one that is
    // predicted now must come off the list).
    let mut gaps: std::collections::BTreeSet<(&str, String)> = Default::default();
    for p in closefuzz::model::Platform::ALL {
        let file = root().join(format!("tests/{}-known-matrix-gaps.txt", p.name()));
        if let Ok(text) = std::fs::read_to_string(&file) {
            for l in text.lines().map(str::trim) {
                if !l.is_empty() && !l.starts_with('#') {
                    gaps.insert((p.name(), l.to_string()));
                }
            }
        }
    }
    let mut gaps_seen = std::collections::BTreeSet::new();
    for c in &m.columns {
        let Some(platform) = c.profile() else {
            continue; // a recorded machine with no model profile
        };
        for sc in &m.scenarios {
            let parsed = Scenario::load(path_of(&sc.file)).expect("scenario parses");
            let profile = closefuzz::model::profile::Profile::of(platform);
            // A world the stack cannot set up is n/a in every cell of its column.
            if parsed
                .world_unrunnable_on(&profile.surface, c.transport)
                .is_some()
            {
                for row in &sc.steps {
                    checked += 1;
                    if row.cells[&c.name].outcome != Outcome::NotApplicable {
                        wrong.push(format!(
                            "{} line {} on {}: a world {platform} cannot set up, yet {}",
                            sc.file, row.line, c.name, row.cells[&c.name]
                        ));
                    }
                }
                continue;
            }
            // The model as replay and matrix build it: the scenario's world over the
            // column's transport.
            let case = closefuzz::exec::Case {
                transport: c.transport,
                ..parsed.case(c.transport)
            };
            let model = closefuzz::run::model_for(&case, platform);
            let cells: Vec<_> = sc.steps.iter().map(|r| r.cells[&c.name].clone()).collect();
            let predictions = predict_given(&model, &parsed.step_list(), &cells);
            for (row, p) in sc.steps.iter().zip(&predictions) {
                let cell = &row.cells[&c.name];
                checked += 1;
                if !p.result.admits(cell) && gaps.contains(&(platform.name(), sc.file.clone())) {
                    gaps_seen.insert((platform.name(), sc.file.clone()));
                    continue;
                }
                if !p.result.admits(cell) {
                    wrong.push(format!(
                        "{} line {} `{}` on {}: table {cell}, model {}",
                        sc.file, row.line, row.step, c.name, p.result
                    ));
                }
            }
        }
    }
    for (p, g) in gaps.difference(&gaps_seen) {
        wrong.push(format!(
            "{g}: every {p} cell is predicted now: take it off tests/{p}-known-matrix-gaps.txt"
        ));
    }
    assert!(checked > 100, "only {checked} cells checked");
    assert!(
        wrong.is_empty(),
        "{} cells the model does not predict:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn the_markdown_is_the_rendering_of_the_json() {
    let md = std::fs::read_to_string(root().join("docs/behavior.md"))
        .expect("docs/behavior.md is committed");
    assert!(
        md == matrix().to_markdown(),
        "docs/behavior.md is stale: run `closefuzz matrix`"
    );
}

#[test]
fn the_json_covers_every_scenario_step_for_step() {
    let m = matrix();
    let files = scenario_files(&root().join("scenarios")).unwrap();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let in_json: Vec<String> = m.scenarios.iter().map(|s| s.file.clone()).collect();
    assert_eq!(
        names, in_json,
        "docs/behavior.json is stale: run `closefuzz matrix`"
    );
    for (f, sc) in files.iter().zip(&m.scenarios) {
        let parsed = Scenario::load(f).unwrap();
        let steps: Vec<String> = parsed.steps.iter().map(|s| s.step.to_string()).collect();
        let in_json: Vec<String> = sc.steps.iter().map(|r| r.step.clone()).collect();
        assert_eq!(
            steps, in_json,
            "{}: steps changed since docs/behavior.json was made",
            sc.file
        );
        for row in &sc.steps {
            for c in &m.columns {
                assert!(
                    row.cells.contains_key(&c.name),
                    "{} line {}: no cell for {}",
                    sc.file,
                    row.line,
                    c.name
                );
            }
        }
    }
}

/// Every table of a GFM document, as the GitHub-flavoured parser sees it: the heading
/// above it, its header cells and its rows' cells, each cell as its plain text.
struct GfmTable {
    heading: String,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

fn gfm_tables(md: &str) -> Vec<GfmTable> {
    use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};
    let mut tables = vec![];
    let mut heading = String::new();
    let mut in_heading = false;
    let mut cell: Option<String> = None;
    let mut row: Vec<String> = vec![];
    for ev in Parser::new_ext(md, Options::ENABLE_TABLES) {
        match ev {
            Event::Start(Tag::Heading { .. }) => {
                heading.clear();
                in_heading = true;
            }
            Event::End(TagEnd::Heading(_)) => in_heading = false,
            Event::Start(Tag::Table(_)) => tables.push(GfmTable {
                heading: heading.clone(),
                header: vec![],
                rows: vec![],
            }),
            Event::Start(Tag::TableHead) | Event::Start(Tag::TableRow) => row.clear(),
            Event::Start(Tag::TableCell) => cell = Some(String::new()),
            Event::End(TagEnd::TableCell) => row.extend(cell.take()),
            Event::End(TagEnd::TableHead) => {
                tables.last_mut().expect("in a table").header = std::mem::take(&mut row)
            }
            Event::End(TagEnd::TableRow) => tables
                .last_mut()
                .expect("in a table")
                .rows
                .push(std::mem::take(&mut row)),
            Event::Text(t) | Event::Code(t) => {
                if let Some(c) = cell.as_mut() {
                    c.push_str(&t);
                } else if in_heading {
                    heading.push_str(&t);
                }
            }
            _ => {}
        }
    }
    tables
}

/// What GitHub shows is what the JSON holds: a GFM parser (pulldown-cmark with tables,
/// as GitHub's cmark-gfm) finds, in each scenario's table, one cell per column on every
/// row, each with the JSON's text. An unescaped `|` in a cell (`poll IN|OUT`) splits it,
/// and the parser then drops the row's last cells.
#[test]
fn github_renders_every_table_cell_as_the_json_says() {
    let md = std::fs::read_to_string(root().join("docs/behavior.md"))
        .expect("docs/behavior.md is committed");
    let m = matrix();
    let tables = gfm_tables(&md);
    let mut wrong = vec![];
    let mut seen = 0;
    for sc in &m.scenarios {
        let Some(t) = tables.iter().find(|t| t.heading == sc.file) else {
            wrong.push(format!("{}: no table", sc.file));
            continue;
        };
        seen += 1;
        let mut header = vec!["line".to_string(), "step".to_string(), "expect".to_string()];
        header.extend(m.columns.iter().map(|c| c.name.clone()));
        assert_eq!(t.header, header, "{}: table header", sc.file);
        assert_eq!(
            t.rows.len(),
            sc.steps.len(),
            "{}: one row per step",
            sc.file
        );
        for (cells, row) in t.rows.iter().zip(&sc.steps) {
            let mut want = vec![
                row.line.to_string(),
                row.step.clone(),
                row.expect.clone().unwrap_or_default(),
            ];
            want.extend(m.columns.iter().map(|c| row.cells[&c.name].to_string()));
            if *cells != want {
                wrong.push(format!(
                    "{} line {}: GitHub shows {cells:?}, the JSON says {want:?}",
                    sc.file, row.line
                ));
            }
        }
    }
    assert_eq!(seen, m.scenarios.len());
    let columns = tables
        .iter()
        .find(|t| t.heading == "Columns")
        .expect("a table of columns");
    let want: Vec<Vec<String>> = m
        .columns
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                c.stack.clone(),
                c.version.clone(),
                c.kernel.clone(),
                c.measured.clone(),
                c.source.clone(),
            ]
        })
        .collect();
    assert_eq!(columns.rows, want, "the table of columns");
    let vs = tables
        .iter()
        .find(|t| t.heading == "Linux versus gVisor")
        .expect("a Linux versus gVisor table");
    let want: Vec<Vec<String>> = m
        .stack_differences("linux", "gvisor")
        .into_iter()
        .map(|d| {
            let ts: Vec<&str> = d.transports.iter().map(|t| t.name()).collect();
            vec![
                d.file,
                d.line.to_string(),
                d.step,
                ts.join(", "),
                d.base,
                d.other,
            ]
        })
        .collect();
    assert!(!want.is_empty());
    assert_eq!(vs.rows, want, "the Linux versus gVisor table");
    assert!(
        wrong.is_empty(),
        "{} rows render wrongly:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// The Linux versus gVisor section compares stacks only: each of its entries is one
/// transport's linux and gvisor columns disagreeing, never two transports.
#[test]
fn stack_differences_compare_one_transport_on_two_stacks() {
    let m = matrix();
    let diffs = m.stack_differences("linux", "gvisor");
    assert!(
        !diffs.is_empty(),
        "gVisor is known to differ (see its profile)"
    );
    for d in &diffs {
        let sc = m.scenarios.iter().find(|s| s.file == d.file).unwrap();
        let row = sc.steps.iter().find(|r| r.line == d.line).unwrap();
        for t in &d.transports {
            let l = row.cells[&format!("linux/{t}")].to_string();
            let g = row.cells[&format!("gvisor/{t}")].to_string();
            assert_eq!(
                (l.as_str(), g.as_str()),
                (d.base.as_str(), d.other.as_str())
            );
            assert_ne!(l, g);
        }
    }
}

/// docs/ladders/ holds exactly the pictures the JSON names, each the drawing of its
/// scenario from the model and the JSON's Linux cells, each well-formed XML; and the
/// Markdown shows each one.
#[test]
fn ladder_pictures_are_fresh_well_formed_and_embedded() {
    let m = matrix();
    let files = scenario_files(&root().join("scenarios")).unwrap();
    let scenarios: Vec<Scenario> = files.iter().map(|f| Scenario::load(f).unwrap()).collect();
    let ladders = m.ladders(&scenarios);
    let md = std::fs::read_to_string(root().join("docs/behavior.md")).unwrap();
    let mut on_disk: Vec<String> = std::fs::read_dir(root().join("docs/ladders"))
        .expect("docs/ladders/ is committed")
        .map(|e| format!("ladders/{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    on_disk.sort();
    let mut named: Vec<String> = ladders.iter().map(|(p, _)| p.clone()).collect();
    named.sort();
    assert_eq!(
        on_disk, named,
        "docs/ladders/ is stale: run `closefuzz matrix`"
    );
    for (path, svg) in &ladders {
        let committed = std::fs::read_to_string(root().join("docs").join(path)).unwrap();
        assert!(
            committed == *svg,
            "docs/{path} is stale: run `closefuzz matrix`"
        );
        roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(
            md.contains(&format!("]({path})")),
            "behavior.md does not show {path}"
        );
    }
    // The motivating case, and the four-way closes and resets, are drawn.
    for name in [
        "tcp-motivating-case",
        "tcp-abort-so-linger-zero",
        "tcp-both-shutdown-wr",
        "tcp-close-with-unread-data-sends-rst",
        "unix-abort-is-close",
    ] {
        assert!(
            named.contains(&format!("ladders/{name}.svg")),
            "{name} has no ladder"
        );
    }
}

/// The motivating case's picture says what the article says: DATA(5) over, FIN back,
/// the second DATA(5) answered by RST, the write after it EPIPE with SIGPIPE, and the
/// states on the way (CLOSE_WAIT, then CLOSE), each call with its expectation met.
#[test]
fn the_motivating_ladder_shows_segments_states_and_results() {
    let svg = std::fs::read_to_string(root().join("docs/ladders/tcp-motivating-case.svg"))
        .expect("the motivating case has a ladder");
    let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
    let texts: Vec<String> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| {
            n.descendants()
                .filter(|d| d.is_text())
                .filter_map(|d| d.text())
                .collect::<String>()
        })
        .collect();
    let segments: Vec<&str> = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("seg"))
        .filter_map(|n| n.text())
        .collect();
    assert_eq!(segments, ["DATA(5)", "FIN", "DATA(5)", "RST"]);
    for want in [
        "a (connects)",
        "b (accepted)",
        "write 5  →  ok 5  line 12",
        "close  →  ok  line 14",
        "write 5  →  EPIPE sigpipe  line 18",
        "expect EPIPE sigpipe ✓",
        "CLOSE_WAIT, FIN received, shut rd",
        "fd closed, FIN_WAIT1|FIN_WAIT2, shut rdwr",
    ] {
        assert!(
            texts.iter().any(|t| t == want),
            "no text {want:?} in the picture; texts: {texts:#?}"
        );
    }
    assert!(!svg.contains("unmet"), "every expectation is met on Linux");
}
