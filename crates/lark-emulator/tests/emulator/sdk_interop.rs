//! Interoperability with the official Python SDK (`lark-oapi` from PyPI):
//! its long-connection client receives a fragmented event and acks it; its
//! REST client sends a message that shows up in the chat.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::common::*;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `tools/sdk-venv.sh` → the venv's python (installs lark-oapi on first use).
async fn sdk_python() -> String {
    let script = repo_root().join("tools/sdk-venv.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {}: {e} (bash is required)", script.display()));
    assert!(
        out.status.success(),
        "tools/sdk-venv.sh failed (needs python3 with venv and PyPI access to install lark-oapi):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test]
async fn official_python_sdk_receives_fragmented_event_and_sends() {
    let python = sdk_python().await;
    let emu = start(|c| {
        c.max_fragment_bytes = Some(128);
        c.reconnect_nonce_secs = 0;
        c.reconnect_interval_secs = 1;
    })
    .await;
    let app = emu.default_app();
    let driver = repo_root().join("crates/lark-emulator/tests/python/sdk_driver.py");
    let mut child = Command::new(&python)
        .arg(&driver)
        .args([emu.base_url(), app.app_id.clone(), app.app_secret.clone()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start the SDK driver");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();

    eventually(|| emu.stats().apps[&app.app_id].connections == 1).await;
    let text = "a message long enough to be split into several pbbp2 fragments ".repeat(6);
    let sent = user_says(&emu, &text);

    let mut event_line = None;
    let mut sent_id = None;
    guard(async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(rest) = line.strip_prefix("DRIVER EVENT ") {
                event_line = Some(rest.to_string());
            } else if let Some(id) = line.strip_prefix("DRIVER SENT ") {
                sent_id = Some(id.to_string());
            } else if line.starts_with("DRIVER FAILED") || line.starts_with("DRIVER TIMEOUT") {
                panic!("SDK driver: {line}");
            }
        }
    })
    .await;
    let status = guard(child.wait()).await.expect("driver exit");
    assert!(status.success(), "driver exited with {status}");

    let event: serde_json::Value =
        serde_json::from_str(&event_line.expect("the SDK got the event")).unwrap();
    assert_eq!(event["event_id"], sent.event_id.as_str());
    assert_eq!(event["message_id"], sent.message_id.as_str());
    let content: serde_json::Value =
        serde_json::from_str(event["content"].as_str().unwrap()).unwrap();
    assert_eq!(content["text"], text.as_str(), "reassembled intact");

    eventually(|| emu.stats().apps[&app.app_id].events_acked == 1).await;
    let stats = &emu.stats().apps[&app.app_id];
    assert_eq!(
        stats.ack_codes.get("200"),
        Some(&1),
        "the SDK acked with code 200"
    );
    assert_eq!(stats.events_redelivered, 0);
    assert_eq!(
        stats.events_fragmented, 1,
        "the event went out in several frames"
    );

    let sent_id = sent_id.expect("the SDK sent a message");
    let view = guard(emu.wait_chat(&sent.chat_id, 0, Duration::from_secs(1)))
        .await
        .unwrap();
    let reply = view
        .messages
        .iter()
        .find(|m| m.message_id == sent_id)
        .expect("message in the chat");
    assert_eq!(reply.sender, "bot");
    assert_eq!(reply.text, "reply from the official SDK");
}
