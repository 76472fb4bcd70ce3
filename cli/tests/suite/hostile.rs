//! Miners paid to win by cheating, beside good ones, through `taogate serve` and the real
//! worker: every service must still return a good miner's answer, every hostile miner must be
//! classified with a reason and lose health, and the worker must stay inside its time and
//! memory budgets. Then the quorum: two disagreeing answers make the attempt ask a reserve.

use std::time::Duration;

use serde_json::Value;
use taogate_shared::embedded::{Database, QueuePolicy};
use taogate_shared::ports::HealthStore;

use super::support::{Api, ServeProcess, every_service, multipart, wav_with_transcript};

const SPOKEN: &str = "the harbour master closed the north pier after the storm damaged its lights";

const ARTICLE: &str = "The harbour master closed the north pier on Sunday after a storm damaged \
    its navigation lights. Fishing boats were sent to the south quay until repairs are done. \
    Engineers expect the new lights to arrive within two weeks. The ferry timetable is not \
    affected, the port authority said. Volunteers helped to clear debris from the slipway.";

/// Long enough that a short replayed or foreign reading is implausible: without a speech
/// recognizer, speech is judged by its signal and its duration only.
const SPEAK: &str = "Fishing boats will use the south quay until the new lights arrive on the \
    north pier, which the harbour master expects within two weeks of the storm damage.";

/// `TASK_TIMEOUT` of these runs.
const DEADLINE: Duration = Duration::from_secs(8);

const GOOD: [u64; 3] = [0, 1, 2];

#[tokio::test]
async fn hostile_miners_lose_every_service_are_classified_and_demoted_within_budget() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // uids 0–2 good; 3 oversized, 4 bomb, 5 drip, 6 echo, 7 replay, 8 silence, 9 wrong language.
    let server = ServeProcess::spawn(
        &data,
        "sim:good,good,good,oversized,bomb,drip,echo,replay,silence,wrong_language",
        &[
            ("MAX_MINERS_PER_REQUEST", "10"),
            ("REQUIRED_ANSWERS", "10"),
            ("HEDGE_MINERS", "0"),
            ("ESCALATION_MINERS", "0"),
            ("TASK_TIMEOUT", "8"),
            ("MAX_ATTEMPTS", "1"),
        ],
    );
    let api = Api::new(server.addr);
    let tasks = every_service(&api, SPOKEN, ARTICLE, SPEAK).await;
    let peak = server.peak_memory();
    eprintln!(
        "peak RSS of taogate serve under the hostile mix: {} MiB",
        peak >> 20
    );

    let mut hostile_hotkeys = Vec::new();
    for task in &tasks {
        assert_eq!(task["status"], "completed", "{task}\n{}", server.log());
        let winner = task["result"]["miner_uid"].as_u64().unwrap();
        assert!(GOOD.contains(&winner), "a hostile miner won: {task}");
        let candidates = task["candidates"].as_array().unwrap();
        assert_eq!(candidates.len(), 10, "{task}");
        for c in candidates {
            let uid = c["uid"].as_u64().unwrap();
            // Time budget: nobody is waited for past the deadline (plus the check's slack).
            assert!(
                c["latency_ms"].as_u64().unwrap() <= DEADLINE.as_millis() as u64 + 1_000,
                "{c}"
            );
            if GOOD.contains(&uid) {
                assert_eq!(c["outcome"], "success", "{c}");
                continue;
            }
            // Each hostile answer is refused with a reason, or scored below the floor. The one
            // exception is speech of another text: without a recognizer only its duration gives
            // it away, so it must score far below the winner and say why.
            let refused =
                c["outcome"] != "success" && c["error"].as_str().is_some_and(|e| !e.is_empty());
            let worthless = c["accuracy"].as_f64().is_some_and(|a| a < 0.3);
            let implausible = task["task_type"] == "tts"
                && c["accuracy"].as_f64().unwrap_or(1.0)
                    <= task["result"]["accuracy_score"].as_f64().unwrap() - 0.3
                && c["scores"]["notes"][0]
                    .as_str()
                    .is_some_and(|n| n.contains("expected to take"));
            assert!(
                refused || worthless || implausible,
                "{} let through: {c}",
                task["task_type"]
            );
            if task["task_type"] == "transcription" {
                hostile_hotkeys.push((uid, c["hotkey"].as_str().unwrap().to_owned()));
            }
        }
    }
    let outcome = |task: &Value, uid: u64| {
        task["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["uid"] == uid)
            .map(|c| c["outcome"].as_str().unwrap().to_owned())
            .unwrap()
    };
    for task in &tasks {
        assert_eq!(outcome(task, 5), "timeout", "{task}");
    }
    // 8 MiB is cut off as text; as speech it is inside the budget of this text (44 s of 48 kHz
    // stereo 32-bit audio, 22 MB in base64), read, and refused as not being a WAV.
    assert_eq!(outcome(&tasks[0], 3), "oversized");
    assert_eq!(outcome(&tasks[1], 3), "oversized");
    assert_eq!(outcome(&tasks[2], 3), "invalid_answer");
    // The million-token transcript and summary are cut off; the speech bomb is refused by its
    // header.
    assert_eq!(outcome(&tasks[0], 4), "oversized");
    assert_eq!(outcome(&tasks[1], 4), "oversized");
    assert_eq!(outcome(&tasks[2], 4), "invalid_answer");

    // Memory budget: the whole server (simulated miners included) stays far below the worker
    // Lambda's 1024 MB.
    assert!(
        peak > 0 && peak < 256 * 1024 * 1024,
        "peak RSS {peak} bytes"
    );

    // Health: after the server stops, its database shows every hostile miner failing.
    server.kill();
    let db = Database::open(&data, QueuePolicy::default()).unwrap();
    for (uid, hotkey) in hostile_hotkeys {
        let record = db.load_health(vec![hotkey]).await.unwrap().remove(0);
        assert_eq!(record.samples, 3, "{record:?}");
        if uid == 7 {
            // The replayed speech passed as speech (see above); its text answers did not.
            assert!(record.success_rate < 0.5, "uid {uid}: {record:?}");
        } else {
            assert_eq!(record.success_rate, 0.0, "uid {uid}: {record:?}");
            assert_eq!(record.failures_in_a_row, 3, "uid {uid}: {record:?}");
        }
    }
}

#[tokio::test]
async fn two_disagreeing_answers_make_the_attempt_find_a_reserve_and_the_good_answer_wins() {
    let dir = tempfile::tempdir().unwrap();
    // uid 0 replaces every third word and answers first; uids 1 and 2 are good, 2 outside the
    // first selection of two.
    let server = ServeProcess::spawn(
        &dir.path().join("data"),
        "sim:noisy,good,good",
        &[
            ("MAX_MINERS_PER_REQUEST", "2"),
            ("REQUIRED_ANSWERS", "2"),
            ("HEDGE_MINERS", "0"),
            ("ESCALATION_MINERS", "1"),
            ("SELECTION_EXPLORATION", "0"),
        ],
    );
    let api = Api::new(server.addr);
    let (_, task) = api
        .submit_multipart_and_wait(
            "/api/v1/transcription",
            multipart(&[
                ("audio_file", Some("clip.wav"), &wav_with_transcript(SPOKEN)),
                ("source_language", None, b"en"),
            ]),
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(task["status"], "completed", "{task}\n{}", server.log());
    assert_eq!(task["result"]["output_text"], SPOKEN, "{task}");
    let quorum = &task["result"]["quorum"];
    assert_eq!(quorum["valid_answers"], 3, "{task}");
    assert_eq!(quorum["supporting"], 2, "{task}");
    assert_eq!(quorum["escalated"], 1, "{task}");
    assert_eq!(quorum["confidence"], "high", "{task}");
    let asked: Vec<u64> = task["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["uid"].as_u64().unwrap())
        .collect();
    assert_eq!(asked, vec![0, 1, 2], "the reserve was asked last");
}
