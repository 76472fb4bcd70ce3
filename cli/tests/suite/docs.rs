//! The OpenAPI document and the docs page describe every route the server serves.

use super::support::{Api, in_process};

#[tokio::test]
async fn the_openapi_document_lists_every_route_and_the_docs_page_renders_it() {
    let dir = tempfile::tempdir().unwrap();
    let running = in_process(dir.path(), "sim:good", 0, &[]).await;
    let api = Api::new(running.addr);
    let (status, doc) = api.get("/openapi.json").await;
    assert_eq!(status, 200);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let routes = [
        ("/api/v1/transcription", "post"),
        ("/api/v1/uploads", "post"),
        ("/api/v1/uploads/{id}", "put"),
        ("/api/v1/tts", "post"),
        ("/api/v1/summarization", "post"),
        ("/api/v1/tasks", "get"),
        ("/api/v1/tasks/{id}", "get"),
        ("/api/v1/tasks/{id}/audio", "get"),
        ("/api/v1/tasks/{id}/output", "get"),
        ("/api/v1/health", "get"),
        ("/api/v1/validator/integration", "get"),
        ("/api/v1/usage", "get"),
        ("/v1/audio/transcriptions", "post"),
        ("/v1/audio/speech", "post"),
        ("/v1/models", "get"),
        ("/api/v1/validator/distribute", "post"),
        ("/api/v1/validator/tasks/{id}/result", "post"),
    ];
    for (path, method) in routes {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is not documented"
        );
    }
    assert_eq!(
        doc["paths"].as_object().unwrap().len(),
        routes.len(),
        "documented paths are the served ones"
    );
    let page = api
        .http
        .get(format!("{}/docs", api.base))
        .send()
        .await
        .unwrap();
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    for (path, _) in routes {
        assert!(html.contains(path), "{path} missing from /docs");
    }
    assert!(!html.contains("<script"), "the page needs no scripts");
    // How to authenticate: the security schemes, the answers of guarded routes, the page.
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["api_key"]["name"],
        "X-API-Key"
    );
    assert_eq!(
        doc["paths"]["/api/v1/health"]["get"]["security"],
        serde_json::json!([])
    );
    let tts = &doc["paths"]["/api/v1/tts"]["post"];
    for code in ["401", "403", "409", "429"] {
        assert!(tts["responses"][code].is_object(), "tts lacks {code}");
    }
    assert!(
        tts["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "Idempotency-Key")
    );
    assert!(html.contains("Authentication") && html.contains("X-API-Key"));
    // Every error is documented as what it is: problem+json, OpenAI's JSON on /v1.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for (code, response) in op["responses"].as_object().unwrap() {
                if !code.starts_with('4') && !code.starts_with('5') {
                    continue;
                }
                let types: Vec<&String> = response["content"]
                    .as_object()
                    .map(|c| c.keys().collect())
                    .unwrap_or_default();
                let want = if path.starts_with("/v1/") {
                    "application/json"
                } else {
                    "application/problem+json"
                };
                assert_eq!(types, [want], "{method} {path} {code}");
            }
        }
    }

    let admin = super::validator::key(running.db.as_ref().unwrap(), "ops", true, 0x44).await;
    let (status, integration) =
        super::validator::get_with_key(&api, "/api/v1/validator/integration", &admin).await;
    assert_eq!(status, 200);
    assert_eq!(integration["miners"].as_array().unwrap().len(), 1);
    assert_eq!(integration["network_info"]["available_miners"], 1);
    assert_eq!(integration["network"]["network"], "simulated");
    assert_eq!(
        integration["gateway_hotkey"],
        "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
    );
    running.shutdown().await.unwrap();
}

/// Every `.rs` file of the workspace below `dir`, as text (build output left out).
fn rust_sources(dir: &std::path::Path, out: &mut String) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if !name.starts_with('.') && name != "target" {
                rust_sources(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push_str(&std::fs::read_to_string(&path).unwrap());
            out.push('\n');
        }
    }
}

/// The `a::b::name` paths a document names in backticks whose last part is a function (a test,
/// mostly), a constant, a field or a module: each must be defined somewhere in the workspace, so
/// a renamed test cannot leave the docs pointing at nothing.
#[test]
fn every_test_and_constant_the_docs_name_exists() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut sources = String::new();
    rust_sources(&root, &mut sources);
    let defined = |name: &str| {
        [
            format!("fn {name}("),
            format!("fn {name}<"),
            format!("const {name}:"),
            format!("!({name});"),
            format!("pub {name}:"),
            format!("mod {name};"),
        ]
        .iter()
        .any(|needle| sources.contains(needle.as_str()))
    };
    let mut missing = Vec::new();
    let mut checked = 0;
    for doc in ["ARCHITECTURE.md", "SECURITY.md", "SCORING.md", "README.md"] {
        let text = std::fs::read_to_string(root.join(doc)).unwrap();
        for quoted in text.split('`').skip(1).step_by(2) {
            let parts: Vec<&str> = quoted.split("::").collect();
            let well_formed = parts.len() >= 2
                && parts.iter().all(|p| {
                    !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                });
            let last = parts.last().copied().unwrap_or_default();
            // Functions with an underscore in their name, and SCREAMING constants; not std's.
            let named = last.contains('_')
                && (last
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                    || last
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'));
            if !well_formed || !named || ["char", "str", "std"].contains(&parts[0]) {
                continue;
            }
            checked += 1;
            if !defined(last) {
                missing.push(format!("{doc}: `{quoted}`"));
            }
        }
    }
    assert!(
        checked > 100,
        "only {checked} names were found: the scan is broken"
    );
    assert!(
        missing.is_empty(),
        "named but not defined:\n{}",
        missing.join("\n")
    );
}

/// ARCHITECTURE.md's table of ports names exactly the capability traits of `app/src/ports`.
#[test]
fn the_architecture_lists_every_port() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut traits = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(root.join("app/src/ports"))
        .unwrap()
        .flatten()
    {
        let text = std::fs::read_to_string(entry.path()).unwrap();
        for rest in text.split("\npub trait ").skip(1) {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            traits.insert(name);
        }
    }
    let doc = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let section = doc
        .split("\n## Ports\n")
        .nth(1)
        .expect("ARCHITECTURE.md has a Ports section");
    let section = section.split("\n## ").next().unwrap();
    let listed: std::collections::BTreeSet<String> = section
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .map(|rest| rest.split('`').next().unwrap().to_owned())
        .collect();
    assert!(traits.len() >= 20, "only {} traits found", traits.len());
    assert_eq!(
        listed, traits,
        "ARCHITECTURE.md's ports against app/src/ports"
    );
}

/// The README's table of gateway settings is the declarations themselves, rendered: a variable
/// added, renamed or given another default or range cannot leave the README behind.
#[test]
fn the_readme_configuration_table_is_the_declarations() {
    use taogate_shared::config::vars;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let table = vars::markdown_table(vars::ALL);
    assert!(
        readme.contains(&table),
        "README.md's configuration table should read:\n\n{table}"
    );
}

/// The same for the variables of the AWS processes.
#[test]
fn the_readme_lambda_table_is_the_declarations() {
    use taogate_shared::{aws::vars, config::vars::markdown_table};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let table = markdown_table(&[vars::ALL, vars::PER_FUNCTION].concat());
    assert!(
        readme.contains(&table),
        "README.md's AWS table should read:\n\n{table}"
    );
}
