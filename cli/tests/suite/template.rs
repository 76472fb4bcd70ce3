//! The template's S3 permissions against the blob-key layout: every prefix IAM grants is one
//! `BlobKey` makes, and each function is granted exactly the prefixes its ports use.

use std::collections::{BTreeMap, BTreeSet};

use taogate_shared::domain::BlobKey;

/// `(function, action) → prefixes` as granted by `template.yaml`.
fn s3_grants() -> BTreeMap<(String, String), BTreeSet<String>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    let template = std::fs::read_to_string(path).unwrap();
    let mut grants: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    let (mut function, mut actions) = (String::new(), Vec::<String>::new());
    for line in template.lines() {
        let trimmed = line.trim();
        // Resources sit two spaces in; a function's properties deeper.
        if line.starts_with("  ") && !line.starts_with("   ") && trimmed.ends_with(':') {
            function = trimmed.trim_end_matches(':').to_owned();
            actions.clear();
        }
        if let Some(list) = trimmed.strip_prefix("Action: [") {
            actions = list
                .trim_end_matches(']')
                .split(',')
                .map(|a| a.trim().to_owned())
                .filter(|a| a.starts_with("s3:"))
                .collect();
        }
        let mut rest = trimmed;
        while let Some(at) = rest.find("${BlobBucket.Arn}/") {
            rest = &rest[at + "${BlobBucket.Arn}/".len()..];
            let prefix = rest.split('*').next().unwrap_or_default().to_owned();
            for action in &actions {
                grants
                    .entry((function.clone(), action.clone()))
                    .or_default()
                    .insert(prefix.clone());
            }
        }
    }
    grants
}

#[test]
fn every_granted_prefix_is_a_blob_key_prefix_and_each_function_gets_what_its_ports_use() {
    let grants = s3_grants();
    let known: BTreeSet<&str> = BlobKey::PREFIXES.into_iter().collect();
    for ((function, action), prefixes) in &grants {
        for prefix in prefixes {
            assert!(
                known.contains(prefix.as_str()),
                "{function} {action} on {prefix}* is no BlobKey prefix"
            );
        }
    }
    let set = |p: &[&str]| p.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>();
    let expected = [
        // BlobPut (input; validators' speech results) + TaskCreate (spilled bodies) +
        // BlobPresign (upload PUTs).
        (
            "SubmitFunction",
            "s3:PutObject",
            set(&[
                BlobKey::INPUT,
                BlobKey::TASK_BODIES,
                BlobKey::UPLOADS,
                BlobKey::OUTPUT,
            ]),
        ),
        // BlobGet (uploads; speech results of the OpenAI routes) + TaskCreate and TaskReader
        // (spilled bodies).
        (
            "SubmitFunction",
            "s3:GetObject",
            set(&[
                BlobKey::UPLOADS,
                BlobKey::TASK_BODIES,
                BlobKey::OUTPUT,
                BlobKey::INPUT,
            ]),
        ),
        // BlobPresign (results) + MinerDirectory + TaskReader (spilled bodies).
        (
            "StatusFunction",
            "s3:GetObject",
            set(&[BlobKey::OUTPUT, BlobKey::METAGRAPH, BlobKey::TASK_BODIES]),
        ),
        // BlobGet (input, uploads) + BlobPresign (callback result URL) + MinerDirectory +
        // TaskLease (spilled bodies).
        (
            "WorkerFunction",
            "s3:GetObject",
            set(&[
                BlobKey::INPUT,
                BlobKey::UPLOADS,
                BlobKey::OUTPUT,
                BlobKey::METAGRAPH,
                BlobKey::TASK_BODIES,
            ]),
        ),
        // BlobPut (output) + TaskLease (spilled bodies).
        (
            "WorkerFunction",
            "s3:PutObject",
            set(&[BlobKey::OUTPUT, BlobKey::TASK_BODIES]),
        ),
        // BlobPut (the snapshot).
        (
            "MetagraphSyncFunction",
            "s3:PutObject",
            set(&[BlobKey::METAGRAPH]),
        ),
        // TaskSweep (spilled bodies, read and rewritten).
        // + BlobPresign (the result URL in the callbacks it retries).
        (
            "SweeperFunction",
            "s3:GetObject",
            set(&[BlobKey::TASK_BODIES, BlobKey::OUTPUT]),
        ),
        (
            "SweeperFunction",
            "s3:PutObject",
            set(&[BlobKey::TASK_BODIES]),
        ),
    ];
    for (function, action, prefixes) in expected {
        assert_eq!(
            grants.get(&(function.to_owned(), action.to_owned())),
            Some(&prefixes),
            "{function} {action}"
        );
    }
    let functions: BTreeSet<&String> = grants.keys().map(|(f, _)| f).collect();
    assert_eq!(functions.len(), 5, "{functions:?}");
}

/// `(function, METHOD path)` of every HTTP API event in `template.yaml`.
fn routed() -> BTreeSet<(String, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    let template = std::fs::read_to_string(path).unwrap();
    let mut routes = BTreeSet::new();
    let mut function = String::new();
    for line in template.lines() {
        let trimmed = line.trim();
        if line.starts_with("  ") && !line.starts_with("   ") && trimmed.ends_with(':') {
            function = trimmed.trim_end_matches(':').to_owned();
        }
        if let Some(props) = trimmed.strip_prefix("Properties: {ApiId: !Ref HttpApi, Path: ") {
            let (path, method) = props
                .trim_end_matches('}')
                .split_once(", Method: ")
                .unwrap();
            let path = path.trim_matches('"');
            routes.insert((function.clone(), format!("{method} {path}")));
        }
    }
    routes
}

#[test]
fn every_documented_route_is_routed_to_the_function_whose_router_serves_it() {
    let routed = routed();
    let doc = serde_json::to_value(taogate_shared::api::document()).unwrap();
    // Served by `taogate serve` only: on AWS, S3 takes the upload and serves the audio.
    let local_only = ["PUT /api/v1/uploads/{id}", "GET /api/v1/tasks/{id}/audio"];
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let route = format!("{} {path}", method.to_uppercase());
            if local_only.contains(&route.as_str()) {
                continue;
            }
            let function = match operation["tags"][0].as_str() {
                Some("submit" | "openai" | "validator") => "SubmitFunction",
                Some("status") => "StatusFunction",
                other => panic!("{route} has no router tag: {other:?}"),
            };
            assert!(
                routed.contains(&(function.to_owned(), route.clone())),
                "{route} is not routed to {function}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 8, "{checked} routes checked");
    for route in ["GET /openapi.json", "GET /docs"] {
        assert!(routed.contains(&("StatusFunction".to_owned(), route.to_owned())));
    }
}

#[test]
fn the_timeouts_hold_together() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    let template = std::fs::read_to_string(path).unwrap();
    let after = |marker: &str| -> Vec<&str> {
        let at = template.find(marker).unwrap();
        template[at..].lines().skip(1).take(8).collect()
    };
    // The worker timeouts the template allows, and the queue visibility derived from each.
    let allowed: Vec<u64> = after("  WorkerTimeout:")
        .iter()
        .find_map(|l| l.trim().strip_prefix("AllowedValues: ["))
        .unwrap()
        .trim_end_matches(']')
        .split(',')
        .map(|v| v.trim().trim_matches('"').parse().unwrap())
        .collect();
    let rows = after("  VisibilityTimeout:\n");
    for worker in &allowed {
        let row = rows
            .iter()
            .find(|l| l.trim().starts_with(&format!("\"{worker}\":")))
            .unwrap_or_else(|| panic!("no visibility row for WorkerTimeout {worker}"));
        let seconds: u64 = row
            .split("Seconds:")
            .nth(1)
            .unwrap()
            .trim()
            .trim_end_matches('}')
            .trim()
            .parse()
            .unwrap();
        assert!(
            seconds >= 6 * worker,
            "visibility {seconds} s for worker {worker} s"
        );
    }
    // The worker knows its own timeout, so a TASK_TIMEOUT that cannot fit is refused at start.
    assert!(template.contains("          WORKER_TIMEOUT: !Ref WorkerTimeout"));
    assert!(template.contains("      Timeout: !Ref WorkerTimeout"));
    // The default TASK_TIMEOUT fits the smallest worker timeout.
    let default_task: String = after("  TaskTimeout:")
        .iter()
        .find_map(|l| l.trim().strip_prefix("Default: "))
        .unwrap()
        .to_owned();
    let smallest = allowed.iter().min().unwrap().to_string();
    let settings = taogate_shared::config::Settings::from_lookup(|k| match k {
        "TASK_TIMEOUT" => Some(default_task.clone()),
        "WORKER_TIMEOUT" => Some(smallest.clone()),
        _ => None,
    });
    assert!(settings.is_ok(), "{settings:?}");
}

/// `function → actions` granted by `template.yaml` (every service, without resources).
fn granted_actions() -> BTreeMap<String, BTreeSet<String>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    let template = std::fs::read_to_string(path).unwrap();
    let mut granted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut function = String::new();
    for line in template.lines() {
        let trimmed = line.trim();
        if line.starts_with("  ") && !line.starts_with("   ") && trimmed.ends_with(':') {
            function = trimmed.trim_end_matches(':').to_owned();
        }
        if let Some(list) = trimmed.strip_prefix("Action: [") {
            granted.entry(function.clone()).or_default().extend(
                list.trim_end_matches(']')
                    .split(',')
                    .map(|a| a.trim().to_owned()),
            );
        }
    }
    granted
}

#[test]
fn each_function_is_granted_exactly_the_calls_of_its_ports() {
    let granted = granted_actions();
    for function in taogate_shared::aws::functions::ALL {
        // Which S3 action a presign needs depends on the function; the prefix test above
        // checks S3 grant by grant.
        let needed: BTreeSet<String> = function
            .actions()
            .into_iter()
            .filter(|a| !a.starts_with("s3:"))
            .map(str::to_owned)
            .collect();
        let has: BTreeSet<String> = granted
            .get(function.name)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|a| !a.starts_with("s3:"))
            .collect();
        let function = function.name;
        assert_eq!(has, needed, "{function}: granted vs. needed by its ports");
    }
}

/// The text between `open` and the next `close` after each `open` in `text`, in order.
fn between<'a>(text: &'a str, open: &str, close: &str) -> Vec<&'a str> {
    text.split(open)
        .skip(1)
        .filter_map(|rest| rest.split(close).next())
        .collect()
}

#[test]
fn the_task_table_has_the_same_indexes_in_the_template_the_provisioner_and_the_local_emulators() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let expected: Vec<(String, String)> = taogate_shared::aws::INDEXES
        .iter()
        .map(|(i, k)| ((*i).to_owned(), (*k).to_owned()))
        .collect();
    let template = std::fs::read_to_string(format!("{root}/template.yaml")).unwrap();
    let names = between(&template, "- IndexName: ", "\n");
    let hashes = between(
        &template,
        "KeySchema: [{AttributeName: ",
        ", KeyType: HASH}",
    )
    .into_iter()
    .filter(|k| *k != "id");
    let in_template: Vec<(String, String)> = names
        .into_iter()
        .zip(hashes)
        .map(|(i, k)| (i.trim().to_owned(), k.to_owned()))
        .collect();
    assert_eq!(in_template, expected, "template.yaml");
    let local = std::fs::read_to_string(format!("{root}/localstack/resources.py")).unwrap();
    let line = local
        .lines()
        .find(|l| l.trim_start().starts_with("indexes = ["))
        .unwrap();
    let in_local: Vec<(String, String)> = between(line, "(\"", "\")")
        .into_iter()
        .filter_map(|pair| pair.split_once("\", \""))
        .map(|(i, k)| (i.to_owned(), k.to_owned()))
        .collect();
    assert_eq!(in_local, expected, "localstack/resources.py");
    // The table defines exactly its key and the indexes' hash keys.
    let defined: BTreeSet<&str> = between(&template, "- {AttributeName: ", ", AttributeType: S}")
        .into_iter()
        // The key schema's `- {AttributeName: id, KeyType: HASH}` opens the same way.
        .filter(|a| !a.contains([',', '\n']))
        .collect();
    let mut keys: BTreeSet<&str> = taogate_shared::aws::INDEXES
        .iter()
        .map(|(_, k)| *k)
        .collect();
    keys.insert("id");
    assert_eq!(defined, keys);
}

/// The lines of `template.yaml`.
fn template_lines() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// `*` any run, `?` one character: IAM's `StringLike`.
fn string_like(pattern: &str, value: &str) -> bool {
    match (pattern.chars().next(), value.chars().next()) {
        (None, None) => true,
        (Some('*'), _) => {
            string_like(&pattern[1..], value)
                || (!value.is_empty()
                    && string_like(pattern, &value[value.chars().next().unwrap().len_utf8()..]))
        }
        (Some('?'), Some(c)) => string_like(&pattern[1..], &value[c.len_utf8()..]),
        (Some(p), Some(c)) if p == c => {
            string_like(&pattern[p.len_utf8()..], &value[c.len_utf8()..])
        }
        _ => false,
    }
}

/// Each function's DynamoDB write statements: `(function, action) → LeadingKeys patterns`
/// (`None` for a write granted without the condition).
fn dynamodb_writes() -> BTreeMap<(String, String), Option<Vec<String>>> {
    let lines = template_lines();
    let mut writes = BTreeMap::new();
    let mut function = String::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim();
        if line.starts_with("  ") && !line.starts_with("   ") && trimmed.ends_with(':') {
            function = trimmed.trim_end_matches(':').to_owned();
        }
        let Some(list) = trimmed.strip_prefix("Action: [") else {
            continue;
        };
        // The statement's own lines: up to the next `- Effect:`.
        let rest = lines[i + 1..]
            .iter()
            .take_while(|l| !l.trim().starts_with("- ") && !l.trim().starts_with("# "));
        let leading = rest
            .filter_map(|l| l.trim().strip_prefix("dynamodb:LeadingKeys: ["))
            .map(|l| {
                l.trim_end_matches(']')
                    .split(',')
                    .map(|p| p.trim().trim_matches('"').to_owned())
                    .collect::<Vec<_>>()
            })
            .next();
        for action in list.trim_end_matches(']').split(',').map(str::trim) {
            if [
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem",
            ]
            .contains(&action)
            {
                writes.insert((function.clone(), action.to_owned()), leading.clone());
            }
        }
    }
    writes
}

#[test]
fn every_dynamodb_write_is_held_to_the_items_its_ports_own() {
    let task = taogate_shared::domain::TaskId::new().to_string();
    // The keys each kind of item has (adapters/aws/src: dynamo/, dynamo_tenants.rs).
    let counts = "#counts#3";
    let usage = "#usage#0123456789abcdef#2026-12";
    let claim = "#idem#0123456789abcdef#9f1c";
    let health = "#miner#5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY";
    let key_record = "#key#0123456789abcdef";
    let key_index = "#keys";
    // Tasks, claims and health records are put; counters, usage and a claim's answer are
    // updated; only claims are deleted.
    let may: &[(&str, &str, &[&str])] = &[
        ("SubmitFunction", "dynamodb:PutItem", &[&task, claim]),
        (
            "SubmitFunction",
            "dynamodb:UpdateItem",
            &[counts, usage, claim],
        ),
        ("SubmitFunction", "dynamodb:DeleteItem", &[claim]),
        ("StatusFunction", "dynamodb:UpdateItem", &[usage]),
        ("WorkerFunction", "dynamodb:PutItem", &[&task, health]),
        ("WorkerFunction", "dynamodb:UpdateItem", &[counts]),
        ("SweeperFunction", "dynamodb:PutItem", &[&task]),
    ];
    let everything = [
        task.as_str(),
        counts,
        usage,
        claim,
        health,
        key_record,
        key_index,
    ];
    let writes = dynamodb_writes();
    let granted: BTreeSet<(String, String)> = writes.keys().cloned().collect();
    let expected: BTreeSet<(String, String)> = may
        .iter()
        .map(|(f, a, _)| ((*f).to_owned(), (*a).to_owned()))
        .collect();
    assert_eq!(granted, expected, "the functions' DynamoDB writes");
    for (function, action, allowed) in may {
        let patterns = writes[&((*function).to_owned(), (*action).to_owned())]
            .clone()
            .unwrap_or_else(|| panic!("{function} {action} has no dynamodb:LeadingKeys condition"));
        for item in everything {
            let permitted = patterns.iter().any(|p| string_like(p, item));
            assert_eq!(
                permitted,
                allowed.contains(&item),
                "{function} {action} on {item}: {patterns:?}"
            );
        }
    }
}

#[test]
fn each_prefix_lives_as_long_as_its_items_and_the_bucket_refuses_plain_http() {
    let lines = template_lines();
    // Lifecycle rules: prefix → expiration.
    let mut rules: BTreeMap<String, String> = BTreeMap::new();
    let mut prefix = None;
    for line in &lines {
        let t = line.trim();
        if t.starts_with("- Id: expire-") {
            prefix = None;
        }
        if let Some(p) = t.strip_prefix("Prefix: ") {
            prefix = Some(p.to_owned());
        }
        if let Some(days) = t.strip_prefix("ExpirationInDays: ") {
            let p = prefix
                .clone()
                .expect("every lifecycle rule names its prefix");
            rules.insert(p, days.to_owned());
        }
    }
    let per_task = "!FindInMap [TaskObjects, !Ref TaskTtlDays, Days]".to_owned();
    let expected = BTreeMap::from([
        ("uploads/".to_owned(), "1".to_owned()),
        ("input/".to_owned(), per_task.clone()),
        ("output/".to_owned(), per_task.clone()),
        ("tasks/".to_owned(), per_task),
    ]);
    assert_eq!(rules, expected, "lifecycle rules; metagraph/ never expires");
    let known: BTreeSet<&str> = BlobKey::PREFIXES.into_iter().collect();
    assert!(rules.keys().all(|p| known.contains(p.as_str())));
    // The mapping gives every allowed TTL its objects' two extra days.
    let allowed = lines
        .iter()
        .skip_while(|l| l.trim() != "TaskTtlDays:")
        .find_map(|l| l.trim().strip_prefix("AllowedValues: ["))
        .unwrap()
        .trim_end_matches(']')
        .split(',')
        .map(|v| v.trim().parse::<u32>().unwrap())
        .collect::<Vec<_>>();
    let mapping: BTreeMap<u32, u32> = lines
        .iter()
        .skip_while(|l| l.trim() != "TaskObjects:")
        .skip(1)
        .map_while(|l| {
            let t = l.trim();
            let (key, rest) = t.split_once(": {Days: ")?;
            Some((
                key.trim_matches('"').parse().ok()?,
                rest.trim_end_matches('}').parse().ok()?,
            ))
        })
        .collect();
    assert_eq!(mapping.keys().copied().collect::<Vec<_>>(), allowed);
    assert!(
        mapping.iter().all(|(ttl, days)| *days == ttl + 2),
        "{mapping:?}"
    );
    // Plain HTTP is refused for the bucket and every object in it.
    let policy: String = lines
        .iter()
        .skip_while(|l| l.as_str() != "  BlobBucketPolicy:")
        .skip(1)
        .take_while(|l| l.starts_with("   ") || l.trim().is_empty())
        .map(|l| format!("{}\n", l.trim()))
        .collect();
    assert!(!policy.is_empty(), "a bucket policy");
    for needle in [
        "Bucket: !Ref BlobBucket",
        "Effect: Deny",
        "Principal: \"*\"",
        "Action: \"s3:*\"",
        "Resource: [!GetAtt BlobBucket.Arn, !Sub \"${BlobBucket.Arn}/*\"]",
        "Bool: {aws:SecureTransport: \"false\"}",
    ] {
        assert!(policy.contains(needle), "{needle} missing from:\n{policy}");
    }
}

/// Every environment variable the template sets is one the processes declare and read
/// (`core/src/config/vars.rs`, `adapters/aws/src/vars.rs`), so none is set in vain or misspelt.
#[test]
fn every_variable_the_template_sets_is_declared() {
    use taogate_shared::{aws::vars as aws, config::vars};
    let declared: BTreeSet<&str> = [vars::ALL, aws::ALL, aws::PER_FUNCTION]
        .concat()
        .iter()
        .map(|v| v.name)
        .collect();
    let mut set = BTreeSet::new();
    let mut indent = None;
    for line in template_lines() {
        let depth = line.len() - line.trim_start().len();
        if line.trim() == "Variables:" {
            indent = Some(depth);
            continue;
        }
        match indent {
            Some(d) if depth > d && !line.trim().is_empty() => {
                let name = line.trim().split(':').next().unwrap().to_owned();
                set.insert(name);
            }
            Some(_) => indent = None,
            None => {}
        }
    }
    assert!(
        set.len() >= 20,
        "only {} variables found: {set:?}",
        set.len()
    );
    // Read by the SDK and the Lambda runtime, not by taogate.
    let external = ["AWS_LAMBDA_LOG_LEVEL", "RUST_LOG"];
    let unknown: Vec<&String> = set
        .iter()
        .filter(|n| !declared.contains(n.as_str()) && !external.contains(&n.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "set by the template, read by nothing: {unknown:?}"
    );
}
