//! The cost run end to end on the emulators: one task of each service through the real
//! `submit`, `worker` and `status` binaries, with the AWS usage each function logs read back.
//! Prints the per-task tables (`cargo test -p taogate-testkit --test cost -- --nocapture`).
//!
//! The binaries are the workspace's, beside this test's own executable: `cargo test
//! --workspace` (the README's test command) builds them before any test runs. Run alone
//! (`-p taogate-testkit`), it uses whatever function binaries were built last.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test here

use std::time::Duration;

use taogate_shared::domain::ServiceKind;
use taogate_testkit::cost::{self, Binaries, Miners, ServiceCost};

fn binaries() -> Binaries {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let binaries = Binaries::in_dir(dir);
    for b in [&binaries.submit, &binaries.status, &binaries.worker] {
        assert!(
            b.exists(),
            "{} is not built: run `cargo test --workspace`, which builds every function",
            b.display()
        );
    }
    binaries
}

fn of(
    costs: &[ServiceCost],
    service: ServiceKind,
    function: &str,
) -> taogate_shared::aws::usage::UsageReport {
    costs
        .iter()
        .find(|c| c.service == service)
        .and_then(|c| c.functions.iter().find(|f| f.function == function))
        .map(|f| f.usage.clone())
        .unwrap_or_else(|| panic!("no {function} for {service:?}"))
}

#[tokio::test]
async fn each_function_logs_what_a_task_used_and_the_run_prices_it() {
    let logs = tempfile::tempdir().unwrap();
    let miners = Miners {
        count: 3,
        delay: Duration::ZERO,
    };
    let costs = cost::run(&binaries(), 1, miners, logs.path())
        .await
        .unwrap();
    let template =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).unwrap();
    let table = cost::report(&costs, |f| cost::memory_mb(&template, f).unwrap());
    println!("{table}\n{}", cost::operations(&costs));

    for service in [
        ServiceKind::Transcription,
        ServiceKind::Summarization,
        ServiceKind::Tts,
    ] {
        let submit = of(&costs, service, "submit");
        let send = submit["SQS.SendMessage"];
        assert_eq!((send.requests, send.billed_requests), (1, 1), "{submit:?}");
        let put = submit["DynamoDB.PutItem"];
        assert_eq!(put.requests, 1, "{submit:?}");
        // The emulator reports capacity only when asked for it.
        assert!(put.capacity_reported > 0.0, "{put:?}");
        // A new task adds one entry to each of the four listing indexes; the sparse callback
        // index has none (no callback).
        assert_eq!(put.index_units_estimated, 4.0, "{put:?}");
        let worker = of(&costs, service, "worker");
        let writes = worker["DynamoDB.PutItem"];
        // The claim, the result, and the health records of the 3 miners that answered.
        assert_eq!(writes.requests, 5, "{worker:?}");
        // Each status change moves the one status-keyed entry: a delete and a put, twice.
        assert_eq!(writes.index_units_estimated, 4.0, "{worker:?}");
        let status = of(&costs, service, "status");
        assert_eq!(status["DynamoDB.GetItem"].requests, 1, "{status:?}");
        // A presigned URL in the answer is not a request; a finished speech task's view also
        // carries the WAV as `output_data`, the one read of the blob.
        let reads = status.get("S3.GetObject").map_or(0, |g| g.requests);
        assert_eq!(reads, u64::from(service == ServiceKind::Tts), "{status:?}");
    }
    // The recording goes to S3 on submission and comes back for the worker, bytes counted.
    let uploaded = of(&costs, ServiceKind::Transcription, "submit")["S3.PutObject"];
    let fetched = of(&costs, ServiceKind::Transcription, "worker")["S3.GetObject"];
    assert!(uploaded.bytes_sent > 30_000, "{uploaded:?}");
    assert_eq!(fetched.bytes_received, uploaded.bytes_sent);
    // Speech is stored by the worker; a summary is not a blob.
    assert!(of(&costs, ServiceKind::Tts, "worker").contains_key("S3.PutObject"));
    assert!(!of(&costs, ServiceKind::Summarization, "worker").contains_key("S3.PutObject"));
    // One priced total per service.
    assert_eq!(
        table.lines().filter(|l| l.contains("**")).count(),
        3,
        "{table}"
    );
}
