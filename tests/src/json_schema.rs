//! Validating JSON documents against a published JSON Schema with an
//! independent validator: Python's `jsonschema` (draft 2020-12), so the
//! check does not agree with the Rust types merely because it was
//! generated from them. Uses a `python3` that has it, else installs it
//! once into a virtualenv under `target/` (from PyPI).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The pinned validator installed when no Python on the machine has one.
const JSONSCHEMA: &str = "jsonschema==4.26.0";

const VALIDATE: &str = r#"
import json, sys
from jsonschema import Draft202012Validator
schema = json.load(open(sys.argv[1]))
Draft202012Validator.check_schema(schema)
validator = Draft202012Validator(schema)
failures = 0
for number, line in enumerate(open(sys.argv[2], encoding="utf-8"), 1):
    try:
        document = json.loads(line)
    except ValueError as error:
        print(f"line {number}: not JSON: {error}: {line!r}")
        failures += 1
        continue
    for error in validator.iter_errors(document):
        print(f"line {number}: {error.message} at {list(error.absolute_path)}: {line.strip()}")
        failures += 1
sys.exit(1 if failures else 0)
"#;

/// Checks every line of `lines` (JSON Lines) against the schema in
/// `schema_file`; panics listing every violation.
pub fn assert_lines_valid(schema_file: &Path, lines: &str) {
    let python = python();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("lines.jsonl");
    let script = dir.path().join("validate.py");
    std::fs::write(&input, lines).unwrap();
    std::fs::write(&script, VALIDATE).unwrap();
    let output = Command::new(python)
        .arg(&script)
        .arg(schema_file)
        .arg(&input)
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "the stream does not validate against {}:\n{}{}",
        schema_file.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A Python that can `import jsonschema`, found or installed once per test
/// process.
fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let system = PathBuf::from("python3");
        if has_jsonschema(&system) {
            return system;
        }
        let venv = crate::bins::target_dir().join("jsonschema-venv");
        let python = venv.join("bin/python");
        if has_jsonschema(&python) {
            return python;
        }
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 -m venv runs");
        assert!(made.success(), "cannot create a virtualenv at {venv:?}");
        let installed = Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", JSONSCHEMA])
            .status()
            .expect("pip runs");
        assert!(installed.success(), "cannot install {JSONSCHEMA}");
        python
    })
}

fn has_jsonschema(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import jsonschema.validators"])
        .output()
        .is_ok_and(|o| o.status.success())
}
