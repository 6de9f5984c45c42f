//! docs/behavior.json, docs/behavior.md, scenarios/ and the model cannot drift apart:
//! every live cell is what the model predicts for its platform and transport, the
//! Markdown is exactly the rendering of the JSON, and the JSON covers exactly the
//! scenarios on disk, step for step.

use closefuzz::matrix::{scenario_files, Matrix};
use closefuzz::model::{Model, Platform};
use closefuzz::run::predict;
use closefuzz::script::Scenario;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn matrix() -> Matrix {
    let text = std::fs::read_to_string(root().join("docs/behavior.json"))
        .expect("docs/behavior.json is committed");
    serde_json::from_str(&text).expect("docs/behavior.json parses")
}

#[test]
fn the_model_predicts_every_live_cell() {
    let m = matrix();
    let mut checked = 0;
    let mut wrong = vec![];
    for c in &m.columns {
        let Some(platform) = Platform::from_name(&c.platform) else {
            continue; // a recorded machine with no model profile
        };
        for sc in &m.scenarios {
            let parsed =
                Scenario::load(&root().join("scenarios").join(&sc.file)).expect("scenario parses");
            let model = Model::with_start(
                c.transport,
                closefuzz::model::profile::Profile::of(platform),
                parsed.start,
            );
            let predictions = predict(&model, &parsed.step_list());
            for (row, p) in sc.steps.iter().zip(&predictions) {
                let cell = &row.cells[&c.name];
                checked += 1;
                if !p.result.admits(cell) {
                    wrong.push(format!(
                        "{} line {} `{}` on {}: table {cell}, model {}",
                        sc.file, row.line, row.step, c.name, p.result
                    ));
                }
            }
        }
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
