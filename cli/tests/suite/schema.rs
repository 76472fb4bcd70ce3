//! The OpenAPI document tells the truth: schemathesis (pinned in
//! `interop/requirements-schemathesis.txt`) generates requests from `/openapi.json` and runs
//! every check against `taogate serve` with keys required, with a fixed seed and example
//! budget; `interop/schemathesis.toml` lists the few checks a schema cannot satisfy, and why.

use std::process::Command;

use super::support::ServeProcess;
use super::tenants::create_key;

#[test]
fn schemathesis_finds_the_server_as_its_document_says() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = ServeProcess::spawn(
        &data,
        "sim:good,good,good",
        &[
            ("API_AUTH", "required"),
            ("OPENAI_WAIT", "10"),
            ("TASK_TIMEOUT", "2"),
        ],
    );
    let key = create_key(
        &data,
        &[],
        "schemathesis",
        &["--admin", "--max-priority", "urgent"],
    );
    let interop = format!("{}/../interop", env!("CARGO_MANIFEST_DIR"));
    let st = format!("{interop}/.state/venv-schemathesis/bin/st");
    assert!(
        std::path::Path::new(&st).exists(),
        "{st} is missing: run interop/setup.sh (make test does)"
    );
    let out = Command::new(&st)
        .current_dir(&interop)
        .args(["--config-file", "schemathesis.toml", "run"])
        .arg(format!("http://{}/openapi.json", server.addr))
        .args(["--seed", "1", "--max-examples", "20", "--no-color"])
        .arg("-H")
        .arg(format!("X-API-Key: {}", key.secret))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis failed:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Not a vacuous pass: every operation was reached with many cases.
    let generated: usize = report
        .lines()
        .find_map(|l| {
            l.trim()
                .split(" generated")
                .next()
                .filter(|_| l.contains(" generated, "))
        })
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(generated >= 500, "only {generated} cases:\n{report}");
    assert!(report.contains("Tested: 17"), "{report}");
    assert!(!report.contains(&key.secret), "the key is printed");
}
