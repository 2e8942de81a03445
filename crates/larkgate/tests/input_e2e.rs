//! Full-fidelity input through the gateway: the quoted parent of a reply,
//! merged-forward children, images and files downloaded for the agent,
//! stale messages dropped, a full session line answered with a notice.

mod e2e;

use base64::Engine;
use e2e::Harness;
use lark_emulator::{ForwardedMessage, UserMessage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_carries_its_quoted_parent() {
    let h = Harness::start(|_| {}).await;
    let original = h.dm("ou_a", "the launch is on friday");
    h.replies(&original).await;
    let reply = h.send(UserMessage {
        sender_open_id: Some("ou_a".into()),
        text: Some("is that still true?".into()),
        parent_id: Some(original.message_id.clone()),
        ..Default::default()
    });
    let answer = &h.replies(&reply).await[0].text;
    assert!(answer.contains("the launch is on friday"), "{answer}");
    assert!(answer.contains("is that still true?"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_forwards_are_expanded() {
    let h = Harness::start(|_| {}).await;
    let fwd = h.send(UserMessage {
        sender_open_id: Some("ou_a".into()),
        msg_type: Some("merge_forward".into()),
        forwarded: vec![
            ForwardedMessage {
                sender_open_id: Some("ou_x".into()),
                text: Some("first forwarded line".into()),
                ..Default::default()
            },
            ForwardedMessage {
                sender_open_id: Some("ou_y".into()),
                text: Some("second forwarded line".into()),
                ..Default::default()
            },
        ],
        ..Default::default()
    });
    let answer = &h.replies(&fwd).await[0].text;
    assert!(answer.contains("Forwarded messages"), "{answer}");
    assert!(
        answer.contains("first forwarded line") && answer.contains("second forwarded line"),
        "{answer}"
    );
    assert!(answer.contains("ou_x"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_and_files_reach_the_agent_as_downloaded_files() {
    let h = Harness::start(|_| {}).await;
    let png =
        base64::engine::general_purpose::STANDARD.encode(b"\x89PNG\r\n\x1a\nfake image bytes");
    let img = h.send(UserMessage {
        sender_open_id: Some("ou_a".into()),
        msg_type: Some("image".into()),
        data: Some(png),
        ..Default::default()
    });
    let answer = &h.replies(&img).await[0].text;
    assert!(answer.contains("received image"), "{answer}");
    let doc = h.send(UserMessage {
        sender_open_id: Some("ou_a".into()),
        msg_type: Some("file".into()),
        data: Some(base64::engine::general_purpose::STANDARD.encode(b"quarterly numbers")),
        file_name: Some("report.txt".into()),
        ..Default::default()
    });
    let answer = &h.replies(&doc).await[0].text;
    assert!(answer.contains("received file report.txt"), "{answer}");
    let saved = h
        .dir
        .path()
        .join("media/default")
        .join(&doc.message_id)
        .join("report.txt");
    assert_eq!(std::fs::read(&saved).unwrap(), b"quarterly numbers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_media_is_refused_with_a_note_not_dropped_silently() {
    let h = Harness::start(|a| a.media_max_bytes = 8).await;
    let doc = h.send(UserMessage {
        sender_open_id: Some("ou_a".into()),
        msg_type: Some("file".into()),
        data: Some(base64::engine::general_purpose::STANDARD.encode(b"far more than eight bytes")),
        file_name: Some("big.bin".into()),
        ..Default::default()
    });
    let answer = &h.replies(&doc).await[0].text;
    assert!(answer.contains("attachment not available"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_messages_are_dropped() {
    let h = Harness::start(|a| a.stale_after_secs = 60).await;
    let old = h.send(UserMessage {
        sender_open_id: Some("ou_a".into()),
        text: Some("from an hour ago".into()),
        create_time_ms: Some(larkgate::gateway::now_ms() - 3_600_000),
        ..Default::default()
    });
    let fresh = h.dm("ou_a", "now");
    assert!(h.ignored_before(&old, &fresh).await);
    assert_eq!(
        h.gw().metrics().events_dropped.get(&["default", "stale"]),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_line_tells_the_sender_to_wait() {
    let h = Harness::start(|a| a.queue_limit = 1).await;
    let busy = h.dm("ou_a", "echo-slow 30");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let waiting = h.dm("ou_a", "second");
    let refused = h.dm("ou_a", "third");
    let notice = &h.replies(&refused).await[0].text;
    assert!(notice.contains("still working"), "{notice}");
    let stop = h.dm("ou_a", "/stop");
    assert!(h.replies(&stop).await[0].text.contains("Dropped 1"));
    h.replies(&busy).await;
    assert!(h
        .bot_messages(&waiting.chat_id)
        .iter()
        .all(|m| m.reply_to.as_deref() != Some(&waiting.message_id)));
}
