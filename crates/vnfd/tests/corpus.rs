//! Tacker's own legacy VNFDs (`tests/corpus/`, copied verbatim from openstack/tacker at the
//! commit `tests/corpus/table.json` records): every one Tacker accepted parses, and with
//! Tacker's own param files resolves; every one it refused is refused at the field
//! the table names.

use std::path::Path;

use serde_json::Value;

const CORPUS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus");

fn read(file: &str) -> String {
    let path = Path::new(CORPUS_DIR).join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn table() -> Vec<Value> {
    let table: Value = serde_json::from_str(&read("table.json")).expect("table.json is JSON");
    let commit = table["source"]["commit"]
        .as_str()
        .expect("the table records its commit");
    assert_eq!(commit.len(), 40, "a full commit id: {commit}");
    table["vnfds"].as_array().expect("vnfds is a list").clone()
}

fn field<'a>(row: &'a Value, key: &str) -> &'a str {
    row[key]
        .as_str()
        .unwrap_or_else(|| panic!("{row}: no {key}"))
}

#[test]
fn every_file_of_the_corpus_is_in_the_table() {
    let listed: Vec<String> = table()
        .iter()
        .map(|row| field(row, "file").to_owned())
        .collect();
    for dir in ["samples", "test-samples", "unit-data"] {
        for entry in std::fs::read_dir(Path::new(CORPUS_DIR).join(dir)).expect("readable") {
            let name = entry.expect("readable").file_name();
            let file = format!("{dir}/{}", name.to_string_lossy());
            assert!(listed.contains(&file), "{file} is not in table.json");
        }
    }
}

#[test]
fn what_tacker_accepted_parses_and_what_it_refused_is_refused_at_its_field() {
    let mut failures = Vec::new();
    let (mut accepted, mut refused) = (0, 0);
    for row in table() {
        let file = field(&row, "file");
        let parsed = vnfd::parse_yaml(&read(file));
        match (field(&row, "tacker"), parsed) {
            ("accepted", Ok(parsed)) => {
                accepted += 1;
                let Some(params) = row["param_values"].as_str() else {
                    // Every input has a default: a VNF needs no parameters.
                    if let Err(e) = vnfd::resolve(&parsed.template_yaml, None) {
                        failures.push(format!("{file} without param_values: {e}"));
                    }
                    continue;
                };
                // As python-tackerclient's `vnf-create --param-file` sends it: the file's text.
                let params = Value::String(read(params));
                if let Err(e) = vnfd::resolve(&parsed.template_yaml, Some(&params)) {
                    failures.push(format!("{file} with {}: {e}", row["param_values"]));
                }
            }
            ("accepted", Err(e)) => failures.push(format!("{file}: refused: {e}")),
            ("refused", Ok(_)) => failures.push(format!("{file}: accepted")),
            ("refused", Err(e)) => {
                refused += 1;
                if e.field() != field(&row, "field") {
                    failures.push(format!("{file}: refused at {:?}: {e}", e.field()));
                }
            }
            (other, _) => failures.push(format!("{file}: unknown verdict {other:?}")),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(
        accepted > 60 && refused >= 4,
        "{accepted} accepted, {refused} refused"
    );
}
