//! The client commands against a running server that requires keys: submissions of every
//! service followed to their result, a large file through the upload route, the task list,
//! and errors printed as problems with a non-zero exit.

use std::process::Command;

use super::support::ServeProcess;
use super::tenants::create_key;

/// Runs `taogate ARGS` against `url` with `key`; returns (success, stdout, stderr).
fn taogate(url: &str, key: Option<&str>, args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_taogate"));
    cmd.args(args)
        .env("TAOGATE_URL", url)
        .env_remove("TAOGATE_API_KEY");
    if let Some(key) = key {
        cmd.env("TAOGATE_API_KEY", key);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_client_submits_follows_and_saves_results_and_prints_problems() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Slow miners (600 ms) keep each task in `processing` across several of the client's
    // 250 ms polls, so the progress it prints must show that state.
    let server = ServeProcess::spawn(
        &data,
        "sim:slow,slow,slow",
        &[("API_AUTH", "required"), ("TASK_TIMEOUT", "5")],
    );
    let url = format!("http://{}", server.addr);
    let key = create_key(&data, &[], "cli", &[]).secret;
    let key = Some(key.as_str());

    // Speech: progress on stderr, the WAV where --output says.
    let wav = dir.path().join("hello.wav");
    let (ok, out, err) = taogate(
        &url,
        key,
        &[
            "submit",
            "tts",
            "Hello from the command line.",
            "--wait",
            "-o",
            wav.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains("processing, attempt 1") && err.contains("completed"),
        "{err}"
    );
    let audio = std::fs::read(&wav).unwrap();
    let probe = taogate_shared::audio::probe(bytes::Bytes::from(audio), None).unwrap();
    assert_eq!(probe.info.format, "wav");

    // A transcription past the direct limit goes through the upload route, with the key.
    let spoken = "a long recording goes through the upload route";
    let samples = taogate_shared::audio::tone(140.0, 330.0, 16_000);
    let big = taogate_shared::audio::wav_pcm16(&samples, 16_000, Some(spoken));
    assert!(big.len() > 4 * 1024 * 1024);
    let file = dir.path().join("long.wav");
    std::fs::write(&file, big).unwrap();
    let (ok, out, err) = taogate(
        &url,
        key,
        &[
            "submit",
            "transcription",
            file.to_str().unwrap(),
            "--language",
            "en",
            "--wait",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), spoken);

    // Summaries from a file; the text goes to stdout.
    let article = dir.path().join("article.txt");
    std::fs::write(
        &article,
        "The council approved the new cycle lanes on Monday. Work starts in spring. \
         Residents asked for more crossings near the school, which the plan now includes.",
    )
    .unwrap();
    let (ok, out, err) = taogate(
        &url,
        key,
        &[
            "submit",
            "summarization",
            article.to_str().unwrap(),
            "--wait",
            "--priority",
            "low",
        ],
    );
    assert!(ok, "{err}");
    assert!(!out.trim().is_empty());

    // Without --wait the id alone; `task` and `tasks` find it.
    let (ok, id, err) = taogate(&url, key, &["submit", "tts", "Just the id."]);
    assert!(ok, "{err}");
    let id = id.trim().to_owned();
    let (ok, shown, _) = taogate(&url, key, &["task", &id]);
    assert!(ok);
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["task_id"], id.as_str());
    let (ok, listed, _) = taogate(&url, key, &["tasks", "--limit", "10"]);
    assert!(ok);
    assert!(
        listed.contains(&id) && listed.lines().count() == 5,
        "{listed}"
    );

    // Problems: title and detail, exit 1, nothing on stdout.
    for (args, key, expected) in [
        (
            vec!["submit", "tts", "no key"],
            None,
            "Authentication required (401)",
        ),
        (
            vec!["submit", "tts", ""],
            key,
            "Invalid request (422): text",
        ),
        (vec!["task", "not-a-task"], key, "Not found (404)"),
        (
            vec!["submit", "summarization", "too short", "--language", "xx"],
            key,
            "source_language",
        ),
    ] {
        let (ok, out, err) = taogate(&url, key, &args);
        assert!(!ok, "{args:?} succeeded");
        assert!(out.is_empty(), "{out}");
        assert!(
            err.starts_with("error: ") && err.contains(expected),
            "{args:?}: {err}"
        );
    }
    let (ok, _, err) = taogate("http://127.0.0.1:9", key, &["tasks"]);
    assert!(!ok && err.contains("cannot reach"), "{err}");
}
