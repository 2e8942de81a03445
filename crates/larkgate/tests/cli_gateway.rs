//! The `larkgate` binary with a gateway: `run` (and `gateway run`), its
//! logs, signals and drain; `status` (running, not running, `--probe`);
//! `send`; `pairing`; `logs`. Everything against lark-emulator over real
//! loopback sockets.

mod cli_support;

use cli_support::{until_status, Env, GUARD};
use lark_emulator::{EmulatorConfig, Fault};
use larkgate::store::InboundState;

/// Reconnects quickly after a dropped connection.
fn quick_reconnects() -> EmulatorConfig {
    EmulatorConfig {
        reconnect_nonce_secs: 0,
        reconnect_interval_secs: 1,
        ..EmulatorConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_answers_logs_reports_status_and_stops_on_sigterm() {
    let env = Env::start_with(quick_reconnects(), "dmPolicy = \"open\"").await;
    let mut gw = env.gateway(&["run", "--verbose"]).await;

    let sent = env.dm("ou_alice", "hello from the CLI test");
    let replies = env.replies(&sent).await;
    assert!(
        replies[0].text.contains("hello from the CLI test"),
        "{replies:?}"
    );

    // One lost connection, healed: status shows it.
    env.emu
        .inject(Fault::DropConnections { app_id: None })
        .unwrap();
    until_status(&env, |s| {
        s["accounts"][0]["connection"]["reconnects"] == 1
            && s["accounts"][0]["connection"]["state"] == "connected"
    })
    .await;
    let status = env.run(&["status"]).await;
    assert_eq!(status.code, Some(0), "{}", status.all());
    let row = status
        .stdout
        .lines()
        .find(|l| l.starts_with("default"))
        .unwrap_or_else(|| panic!("no account row:\n{}", status.stdout));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[1], env.app.app_id, "{row}");
    assert_eq!(cells[2], "ready", "{row}");
    assert_eq!(cells[3], "connected", "{row}");
    let header = status
        .stdout
        .lines()
        .find(|l| l.starts_with("ACCOUNT"))
        .expect("header");
    let column = header.find("RECONNECTS").expect("RECONNECTS column");
    assert_eq!(
        &row[column..column + 2],
        "1 ",
        "reconnects column:\n{header}\n{row}"
    );

    let json = env.run(&["channels", "status", "--json"]).await;
    assert_eq!(json.code, Some(0), "{}", json.all());
    let body: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(body["accounts"][0]["connection"]["state"], "connected");
    assert_eq!(body["accounts"][0]["connection"]["reconnects"], 1);

    gw.signal(libc::SIGTERM);
    assert_eq!(gw.wait().await, Some(0), "{}", gw.stderr.text());

    let stderr = gw.stderr.text();
    for line in [
        "larkgate 0.1.0 starting",
        "config: ",
        "log file: ",
        "store: sqlite://",
        "1 enabled account(s): default",
        "admin: http://127.0.0.1:",
        "connected; ready",
        "started in",
        "SIGTERM: stopping",
        "stopped",
    ] {
        assert!(stderr.contains(line), "stderr lacks {line:?}:\n{stderr}");
    }
    let file = env.log_files();
    assert!(file.contains("larkgate 0.1.0 starting"), "{file}");
    assert!(file.contains("connected; ready"), "{file}");
    assert!(file.contains("DEBUG"), "--verbose logs at debug level");
    for (name, text) in [
        ("stderr", &stderr),
        ("stdout", &gw.stdout.text()),
        ("log file", &file),
    ] {
        assert!(
            !text.contains(&env.app.app_secret),
            "the app secret leaked into the {name}"
        );
    }

    let logs = env.run(&["logs"]).await;
    assert_eq!(logs.code, Some(0), "{}", logs.all());
    assert!(logs.stdout.contains("SIGTERM: stopping"), "{}", logs.stdout);

    let down = env.run(&["status"]).await;
    assert_eq!(down.code, Some(1), "{}", down.all());
    assert!(down.stderr.contains("not running"), "{}", down.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_run_alias_and_a_second_signal_exits_at_once() {
    let env = Env::start("dmPolicy = \"open\"").await;
    let mut gw = env
        .gateway(&["gateway", "run", "--log-format", "json"])
        .await;
    let first = gw.stderr.text();
    let line: serde_json::Value =
        serde_json::from_str(first.lines().next().unwrap()).expect("JSON log lines");
    assert!(
        line["fields"]["message"]
            .as_str()
            .unwrap()
            .starts_with("larkgate 0.1.0 starting"),
        "{line}"
    );
    let _slow = env.dm("ou_alice", "echo-slow 300");
    until_status(&env, |s| s["accounts"][0]["running_turns"] == 1).await;
    gw.signal(libc::SIGTERM);
    gw.stderr.wait_for("SIGTERM: stopping").await;
    gw.signal(libc::SIGINT);
    assert_eq!(gw.wait().await, Some(130), "{}", gw.stderr.text());
    assert!(
        gw.stderr.text().contains("SIGINT again"),
        "{}",
        gw.stderr.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_interrupts_a_long_turn_at_the_drain_deadline() {
    let env = Env::start("dmPolicy = \"open\"").await;
    let mut gw = env.gateway(&["run", "--drain-timeout", "1"]).await;
    let slow = env.dm("ou_alice", "echo-slow 300");
    until_status(&env, |s| s["accounts"][0]["running_turns"] == 1).await;
    gw.signal(libc::SIGTERM);
    assert_eq!(gw.wait().await, Some(0), "{}", gw.stderr.text());
    assert!(
        gw.stderr.text().contains("interrupting them"),
        "{}",
        gw.stderr.text()
    );

    // The user is told, and the row says why it ended.
    let reply = env.replies(&slow).await;
    let text = &reply[0].text;
    assert!(text.contains("chunk 1 of 300"), "{text}");
    assert!(
        text.contains("interrupted") || text.contains("stopped"),
        "{text}"
    );
    let store = larkgate::store::open(&format!(
        "sqlite://{}",
        env.dir.path().join("larkgate.db").display()
    ))
    .await
    .expect("store");
    let mut found = None;
    for id in 1..=20 {
        if let Ok(Some(row)) = store.get_inbound(id).await {
            if row.message_id.as_deref() == Some(slow.message_id.as_str()) {
                found = Some(row);
            }
        }
    }
    let row = found.expect("the slow message's row");
    match row.state {
        InboundState::Failed(why) => assert!(why.contains("interrupted"), "{why}"),
        other => panic!("row state {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_probe_passes_then_explains_a_wrong_secret() {
    let env = Env::start("").await;
    let ok = env.run(&["status", "--probe"]).await;
    assert_eq!(ok.code, Some(0), "{}", ok.all());
    for needle in [
        "ok    token",
        "ok    bot",
        "ok    connection",
        "all checks passed",
    ] {
        assert!(ok.stdout.contains(needle), "{needle:?}:\n{}", ok.stdout);
    }

    env.write_config("not-the-secret", "");
    let bad = env.run(&["channels", "status", "--probe"]).await;
    assert_eq!(bad.code, Some(3), "{}", bad.all());
    assert!(bad.stdout.contains("FAIL  token"), "{}", bad.stdout);
    assert!(
        bad.stdout.contains("wrong appId or appSecret"),
        "{}",
        bad.stdout
    );
    assert!(!bad.all().contains("not-the-secret"));

    let json = env.run(&["status", "--probe", "--json"]).await;
    assert_eq!(json.code, Some(3), "{}", json.all());
    let body: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(body[0]["ok"], false);
    assert_eq!(body[0]["checks"][0]["check"], "token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_to_a_chat_a_user_an_email_and_as_a_reply() {
    let env = Env::start("").await;
    let dir = env.dir.path();
    // Alice writes first, so her chat and user exist.
    let first = env.dm("ou_alice", "hi bot");
    let chat_id = first.chat_id.clone();
    let bot_texts = || -> Vec<(String, String, Option<String>)> {
        env.emu
            .chat_messages(&chat_id)
            .unwrap()
            .into_iter()
            .filter(|m| m.sender == "bot")
            .map(|m| (m.msg_type, m.text, m.reply_to))
            .collect()
    };

    let to_chat = env
        .run(&["send", "--to", &chat_id, "--message", "to the chat"])
        .await;
    assert_eq!(to_chat.code, Some(0), "{}", to_chat.all());
    assert!(
        to_chat.stdout.trim().starts_with("om_"),
        "{}",
        to_chat.stdout
    );

    let to_user = env
        .run(&["message", "send", "--to", "ou_alice", "-m", "to alice"])
        .await;
    assert_eq!(to_user.code, Some(0), "{}", to_user.all());

    let client = lark_client::Client::builder(&env.app.app_id, &env.app.app_secret)
        .domain(lark_client::Domain::parse(&env.emu.base_url()).unwrap())
        .build()
        .unwrap();
    let email = client.user_info("ou_alice").await.unwrap().email;
    assert!(email.contains('@'));
    let to_email = env.run(&["send", "--to", &email, "-m", "by email"]).await;
    assert_eq!(to_email.code, Some(0), "{}", to_email.all());
    let user: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "{}/open-apis/contact/v3/users/ou_alice?user_id_type=open_id",
            env.emu.base_url()
        ))
        .bearer_auth(client.tenant_token().await.unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let union_id = user["data"]["user"]["union_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(union_id.starts_with("on_"), "{user}");
    let to_union = env
        .run(&["send", "--to", &union_id, "-m", "by union_id"])
        .await;
    assert_eq!(to_union.code, Some(0), "{}", to_union.all());

    let reply = env
        .run(&["send", "--reply-to", &first.message_id, "-m", "a reply"])
        .await;
    assert_eq!(reply.code, Some(0), "{}", reply.all());

    std::fs::write(
        dir.join("card.json"),
        r#"{"schema":"2.0","header":{"title":{"tag":"plain_text","content":"Deploy report"}},
            "body":{"elements":[{"tag":"markdown","content":"all **green**"}]}}"#,
    )
    .unwrap();
    let card = env
        .run(&["send", "--to", &chat_id, "--card", "card.json"])
        .await;
    assert_eq!(card.code, Some(0), "{}", card.all());

    std::fs::write(dir.join("pic.png"), tiny_png()).unwrap();
    let image = env
        .run(&["send", "--to", &chat_id, "--image", "pic.png"])
        .await;
    assert_eq!(image.code, Some(0), "{}", image.all());

    let sent = bot_texts();
    let has = |ty: &str, text: &str, reply: Option<&str>| {
        sent.iter()
            .any(|(t, x, r)| t == ty && x.contains(text) && r.as_deref() == reply)
    };
    assert!(has("text", "to the chat", None), "{sent:?}");
    assert!(has("text", "to alice", None), "{sent:?}");
    assert!(has("text", "by email", None), "{sent:?}");
    assert!(has("text", "by union_id", None), "{sent:?}");
    assert!(has("text", "a reply", Some(&first.message_id)), "{sent:?}");
    assert!(has("interactive", "Deploy report", None), "{sent:?}");
    assert!(sent.iter().any(|(t, _, _)| t == "image"), "{sent:?}");

    // A chat the bot is not in: exit 1, explained.
    let gone = env.run(&["send", "--to", "oc_nowhere", "-m", "x"]).await;
    assert_eq!(gone.code, Some(1), "{}", gone.all());
    assert!(gone.stderr.contains("not a member"), "{}", gone.stderr);
    // A missing file is a usage error.
    let missing = env
        .run(&["send", "--to", &chat_id, "--image", "nope.png"])
        .await;
    assert_eq!(missing.code, Some(2), "{}", missing.all());
}

/// A 1×1 PNG.
fn tiny_png() -> Vec<u8> {
    vec![
        0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44,
        0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f,
        0x15, 0xc4, 0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x00,
        0x01, 0x00, 0x00, 0x05, 0x00, 0x01, 0x0d, 0x0a, 0x2d, 0xb4, 0x00, 0x00, 0x00, 0x00, 0x49,
        0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
    ]
}

/// The pairing code in the bot's answer to an unknown sender.
fn code_in(text: &str) -> String {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .find(|w| {
            w.len() == larkgate::policy::pairing::CODE_LEN
                && w.bytes()
                    .all(|b| larkgate::policy::pairing::ALPHABET.contains(&b))
        })
        .unwrap_or_else(|| panic!("no code in {text:?}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_list_approve_and_reject_on_the_store() {
    let env = Env::start("dmPolicy = \"pairing\"").await;
    let mut gw = env.gateway(&["run"]).await;
    let asked = env.dm("ou_stranger", "let me in");
    let code = code_in(&env.replies(&asked).await[0].text);
    let other = env.dm("ou_other", "me too");
    let other_code = code_in(&env.replies(&other).await[0].text);

    let list = env.run(&["pairing", "list"]).await;
    assert_eq!(list.code, Some(0), "{}", list.all());
    for needle in [
        code.as_str(),
        other_code.as_str(),
        "ou_stranger",
        "ou_other",
    ] {
        assert!(list.stdout.contains(needle), "{needle}:\n{}", list.stdout);
    }

    // Typed loosely: lower case with a dash.
    let typed = format!("{}-{}", &code[..4], &code[4..]).to_lowercase();
    let approve = env.run(&["pairing", "approve", &typed]).await;
    assert_eq!(approve.code, Some(0), "{}", approve.all());
    assert!(approve.stdout.contains("ou_stranger"), "{}", approve.stdout);
    let again = env.dm("ou_stranger", "now answer me");
    assert!(env.replies(&again).await[0].text.contains("now answer me"));

    let reject = env.run(&["pairing", "reject", &other_code]).await;
    assert_eq!(reject.code, Some(0), "{}", reject.all());
    let empty = env.run(&["pairing", "list", "--json"]).await;
    assert_eq!(empty.stdout.trim(), "[]", "{}", empty.all());
    let unknown = env.run(&["pairing", "approve", &other_code]).await;
    assert_eq!(unknown.code, Some(1), "{}", unknown.all());
    assert!(
        unknown.stderr.contains("no pending pairing"),
        "{}",
        unknown.stderr
    );

    gw.signal(libc::SIGINT);
    assert_eq!(gw.wait().await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_prints_new_lines_and_the_next_day() {
    let env = Env::start("").await;
    let logs = env.dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let today = logs.join("larkgate.log.2030-01-01");
    std::fs::write(&today, "first line\n").unwrap();
    let mut child = cli_support::larkgate(env.dir.path())
        .args(["logs", "-f"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = cli_support::Lines::collect(child.stdout.take().unwrap());
    out.wait_for("first line").await;
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&today)
            .unwrap();
        writeln!(f, "second line").unwrap();
    }
    out.wait_for("second line").await;
    std::fs::write(logs.join("larkgate.log.2030-01-02"), "next day\n").unwrap();
    out.wait_for("next day").await;
    child.kill().await.unwrap();
    tokio::time::timeout(GUARD, child.wait())
        .await
        .unwrap()
        .unwrap();
}
