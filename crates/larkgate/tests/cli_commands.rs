//! The `larkgate` binary's commands that need no running gateway: `--help`,
//! `config`, `setup` (the emulator approves the registration), `webhook
//! send` (against a small signing-checking server), `emulator`, `demo`.

mod cli_support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use cli_support::{larkgate, run_in, Lines, GUARD};
use lark_emulator::{ApproveRegistration, Emulator, EmulatorConfig};
use serde_json::{json, Value};

#[tokio::test]
async fn help_lists_every_command_alias_and_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let help = run_in(dir.path(), &["--help"]).await;
    assert_eq!(help.code, Some(0));
    for command in [
        "run", "gateway", "status", "channels", "send", "message", "pairing", "config", "setup",
        "webhook", "logs", "emulator", "demo",
    ] {
        assert!(
            help.stdout
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{command} "))),
            "{command} missing:\n{}",
            help.stdout
        );
    }
    for needle in [
        "`gateway run` = run",
        "`channels status` =",
        "`message send` = send",
        "Exit codes:",
        "3  status --probe found a problem",
    ] {
        assert!(help.stdout.contains(needle), "{needle}:\n{}", help.stdout);
    }
    for (args, needle) in [
        (&["gateway", "--help"][..], "run"),
        (&["channels", "--help"][..], "status"),
        (&["message", "--help"][..], "send"),
        (&["pairing", "--help"][..], "approve"),
        (&["config", "--help"][..], "validate"),
        (&["webhook", "--help"][..], "send"),
        (&["run", "--help"][..], "Example"),
        (&["status", "--help"][..], "Example"),
        (&["send", "--help"][..], "Example"),
        (&["setup", "--help"][..], "Example"),
        (&["logs", "--help"][..], "Example"),
        (&["config", "set", "--help"][..], "Example"),
        (&["webhook", "send", "--help"][..], "Example"),
    ] {
        let out = run_in(dir.path(), args).await;
        assert_eq!(out.code, Some(0), "{args:?}");
        assert!(out.stdout.contains(needle), "{args:?}:\n{}", out.stdout);
    }
    let wrong = run_in(dir.path(), &["sned"]).await;
    assert_eq!(wrong.code, Some(2), "usage errors exit 2");
}

#[tokio::test]
async fn config_init_validate_get_set_keep_comments() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = d.join("larkgate.toml");

    let init = run_in(d, &["config", "init"]).await;
    assert_eq!(init.code, Some(0), "{}", init.all());
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        larkgate::config::init_template()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let again = run_in(d, &["config", "init"]).await;
    assert_eq!(again.code, Some(2), "{}", again.all());
    assert!(again.stderr.contains("--force"), "{}", again.stderr);
    assert_eq!(
        run_in(d, &["config", "init", "--force"]).await.code,
        Some(0)
    );

    let secret = "s3cret-value-for-the-test";
    for (key, value) in [
        ("channels.lark.appId", "cli_a1b2c3d4e5f60001"),
        ("channels.lark.appSecret", secret),
        ("channels.lark.dmPolicy", "allowlist"),
        ("channels.lark.allowFrom", "ou_a, ou_b"),
    ] {
        let set = run_in(d, &["config", "set", key, value]).await;
        assert_eq!(set.code, Some(0), "{key}: {}", set.all());
        assert!(!set.all().contains(secret), "set echoed the secret");
    }
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("# From the developer console (Credentials & Basic Info)."));
    assert!(text.contains("dmPolicy = \"allowlist\""), "{text}");

    let get = run_in(d, &["config", "get", "channels.lark.appId"]).await;
    assert_eq!(get.stdout.trim(), "cli_a1b2c3d4e5f60001");
    let hidden = run_in(d, &["config", "get", "channels.lark.appSecret"]).await;
    assert_eq!(hidden.stdout.trim(), "<redacted>");
    let table = run_in(d, &["config", "get", "channels.lark"]).await;
    assert!(
        table.stdout.contains("cli_a1b2c3d4e5f60001"),
        "{}",
        table.stdout
    );
    assert!(!table.stdout.contains(secret), "{}", table.stdout);
    let shown = run_in(
        d,
        &["config", "get", "channels.lark.appSecret", "--show-secrets"],
    )
    .await;
    assert_eq!(shown.stdout.trim(), secret);
    let missing = run_in(d, &["config", "get", "channels.lark.name"]).await;
    assert_eq!(missing.code, Some(1), "{}", missing.all());

    let before = std::fs::read_to_string(&file).unwrap();
    let refused = run_in(d, &["config", "set", "channels.lark.dmPolicy", "sometimes"]).await;
    assert_eq!(refused.code, Some(2), "{}", refused.all());
    assert!(
        refused.stderr.contains("channels.lark.dmPolicy"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        before,
        "nothing written"
    );
    let unknown = run_in(d, &["config", "set", "channels.lark.dmPolcy", "open"]).await;
    assert_eq!(unknown.code, Some(2), "{}", unknown.all());

    let valid = run_in(d, &["config", "validate"]).await;
    assert_eq!(valid.code, Some(0), "{}", valid.all());
    assert!(
        valid.stdout.contains("cli_a1b2c3d4e5f60001"),
        "{}",
        valid.stdout
    );

    // A broken file: every command that loads it exits 2 naming the key.
    let broken = d.join("broken.toml");
    std::fs::write(
        &broken,
        "[channels.lark]\nappId = \"cli_a1b2c3d4e5f60001\"\nappSecret = \"x\"\ndmPolicy = \"sometimes\"\n[store]\nurll = \"x\"\n",
    )
    .unwrap();
    let path = broken.to_str().unwrap();
    for args in [
        &["--config", path, "config", "validate"][..],
        &["--config", path, "run"][..],
        &["--config", path, "status"][..],
    ] {
        let out = run_in(d, args).await;
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.all());
        assert!(
            out.stderr.contains("channels.lark.dmPolicy"),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains("store.urll"), "{}", out.stderr);
    }
    // LARKGATE_CONFIG names the file too.
    let by_env = larkgate(d)
        .env("LARKGATE_CONFIG", &broken)
        .args(["config", "validate"])
        .output()
        .await
        .unwrap();
    assert_eq!(by_env.status.code(), Some(2));
}

/// Runs `setup` with `args` against the emulator, approving the
/// registration as `brand` once the code is shown; returns stdout.
async fn setup_with(
    emu: &Emulator,
    dir: &std::path::Path,
    args: &[&str],
    brand: &str,
) -> (String, lark_emulator::ApprovedRegistration) {
    let mut child = larkgate(dir)
        .arg("setup")
        .args(args)
        .env("LARKGATE_SETUP_DOMAIN", emu.base_url())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = Lines::collect(child.stdout.take().unwrap());
    let err = Lines::collect(child.stderr.take().unwrap());
    let line = out.wait_for("Code: ").await;
    let user_code = line.trim().trim_start_matches("Code: ").to_string();
    let approved = emu
        .approve_registration(ApproveRegistration {
            user_code: Some(user_code),
            tenant_brand: Some(brand.into()),
            bot_name: Some("Setup Bot".into()),
            device_code: None,
        })
        .expect("approve");
    let status = tokio::time::timeout(GUARD, child.wait())
        .await
        .unwrap()
        .unwrap();
    // Let the readers drain.
    out.wait_for("status --probe").await;
    assert_eq!(status.code(), Some(0), "{}\n{}", out.text(), err.text());
    (out.text(), approved)
}

fn fast_registration() -> EmulatorConfig {
    EmulatorConfig {
        registration_interval_secs: 1,
        ..EmulatorConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_creates_the_bot_and_writes_a_private_secret_file() {
    let emu = Emulator::start(fast_registration()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (stdout, approved) = setup_with(
        &emu,
        d,
        &[
            "--name",
            "Helper Bot",
            "--secret-file",
            "secrets/app_secret.txt",
        ],
        "feishu",
    )
    .await;
    assert!(
        stdout.contains('█') || stdout.contains('▀'),
        "a QR code:\n{stdout}"
    );
    assert!(stdout.contains("/page/launcher?user_code="), "{stdout}");
    assert!(stdout.contains("name=Helper+Bot"), "{stdout}");
    assert!(stdout.contains("im.message.receive_v1"), "{stdout}");
    assert!(stdout.contains("persistent connection"), "{stdout}");
    assert!(stdout.contains("The bot answers"), "{stdout}");
    assert!(!stdout.contains(&approved.app.app_secret), "secret printed");

    let secret_file = d.join("secrets/app_secret.txt");
    assert_eq!(
        std::fs::read_to_string(&secret_file).unwrap().trim(),
        approved.app.app_secret
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secret_file)
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
    let text = std::fs::read_to_string(d.join("larkgate.toml")).unwrap();
    assert!(
        text.starts_with("# larkgate configuration."),
        "from the template"
    );
    assert!(!text.contains(&approved.app.app_secret), "secret inline");
    let get = |key: &'static str| async move {
        run_in(d, &["config", "get", key])
            .await
            .stdout
            .trim()
            .to_string()
    };
    assert_eq!(get("channels.lark.appId").await, approved.app.app_id);
    assert_eq!(
        get("channels.lark.appSecretFile").await,
        "secrets/app_secret.txt"
    );
    assert_eq!(get("channels.lark.domain").await, emu.base_url());
    assert_eq!(get("channels.lark.name").await, "Helper Bot");
    assert!(get("channels.lark.allowFrom")
        .await
        .contains(&approved.user_open_id));

    // The written config works against the platform.
    let probe = run_in(d, &["status", "--probe"]).await;
    assert_eq!(probe.code, Some(0), "{}", probe.all());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_follows_a_lark_user_to_the_lark_host() {
    let emu = Emulator::start(fast_registration()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_eq!(run_in(d, &["config", "init"]).await.code, Some(0));
    let (stdout, approved) = setup_with(&emu, d, &["--account", "intl"], "lark").await;
    assert!(stdout.contains("This is a Lark account"), "{stdout}");
    assert!(stdout.contains("created on Lark"), "{stdout}");
    assert!(!stdout.contains(&approved.app.app_secret), "secret printed");
    let shown = |key: &'static str| async move {
        run_in(d, &["config", "get", key, "--show-secrets"])
            .await
            .stdout
            .trim()
            .to_string()
    };
    assert_eq!(
        shown("channels.lark.accounts.intl.appId").await,
        approved.app.app_id
    );
    assert_eq!(
        shown("channels.lark.accounts.intl.appSecret").await,
        approved.app.app_secret
    );
    assert_eq!(
        shown("channels.lark.accounts.intl.domain").await,
        emu.lark_base_url()
    );
    let valid = run_in(d, &["config", "validate"]).await;
    assert_eq!(valid.code, Some(0), "{}", valid.all());
    assert!(valid.stdout.contains("account intl"), "{}", valid.stdout);
}

/// What the fake hook received.
type Received = Arc<Mutex<Vec<Value>>>;

const HOOK_SECRET: &str = "hook-signing-secret";

/// A custom-bot hook that checks the signature like the platform does.
async fn hook(State(received): State<Received>, Json(body): Json<Value>) -> Json<Value> {
    received.lock().unwrap().push(body.clone());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let ts = body["timestamp"]
        .as_str()
        .and_then(|t| t.parse::<i64>().ok());
    let signed = match (ts, body["sign"].as_str()) {
        (Some(ts), Some(sign)) => {
            (now - ts).abs() <= 3600 && sign == lark_wire::custom_bot::sign(ts, HOOK_SECRET)
        }
        _ => false,
    };
    if !signed {
        return Json(json!({
            "code": 19021,
            "msg": "sign match fail or timestamp is not within one hour from current time",
            "data": {}
        }));
    }
    Json(
        json!({"StatusCode": 0, "StatusMessage": "success", "code": 0, "data": {}, "msg": "success"}),
    )
}

async fn start_hook() -> (SocketAddr, Received) {
    let received = Received::default();
    let app = Router::new()
        .route("/open-apis/bot/v2/hook/{token}", post(hook))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_send_signs_text_and_cards() {
    let (addr, received) = start_hook().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let url = format!("http://{addr}/open-apis/bot/v2/hook/abc123");

    let text = run_in(
        d,
        &[
            "webhook",
            "send",
            "--url",
            &url,
            "--secret",
            HOOK_SECRET,
            "--text",
            "build #42 passed",
        ],
    )
    .await;
    assert_eq!(text.code, Some(0), "{}", text.all());
    std::fs::write(
        d.join("card.json"),
        r#"{"schema":"2.0","body":{"elements":[{"tag":"markdown","content":"**green**"}]}}"#,
    )
    .unwrap();
    let card = run_in(
        d,
        &[
            "webhook",
            "send",
            "--url",
            &url,
            "--secret",
            HOOK_SECRET,
            "--card",
            "card.json",
        ],
    )
    .await;
    assert_eq!(card.code, Some(0), "{}", card.all());
    {
        let got = received.lock().unwrap();
        assert_eq!(got[0]["msg_type"], "text");
        assert_eq!(got[0]["content"]["text"], "build #42 passed");
        assert_eq!(got[1]["msg_type"], "interactive");
        assert_eq!(got[1]["card"]["schema"], "2.0");
    }

    let wrong = run_in(
        d,
        &[
            "webhook", "send", "--url", &url, "--secret", "not-it", "--text", "x",
        ],
    )
    .await;
    assert_eq!(wrong.code, Some(1), "{}", wrong.all());
    assert!(wrong.stderr.contains("19021"), "{}", wrong.stderr);
    assert!(wrong.stderr.contains("check --secret"), "{}", wrong.stderr);
    let unsigned = run_in(d, &["webhook", "send", "--url", &url, "--text", "x"]).await;
    assert_eq!(unsigned.code, Some(1), "{}", unsigned.all());
    assert!(received.lock().unwrap()[3].get("sign").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_and_demo_start_and_stop_on_sigint() {
    let dir = tempfile::tempdir().unwrap();
    for (args, banner) in [
        (
            &["emulator", "--port", "0"][..],
            "lark-emulator listening on http://127.0.0.1:",
        ),
        (&["demo", "--port", "0"][..], "larkgate demo is running"),
    ] {
        let mut child = larkgate(dir.path())
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = Lines::collect(child.stdout.take().unwrap());
        let _err = Lines::collect(child.stderr.take().unwrap());
        out.wait_for(banner).await;
        let pid = child.id().unwrap() as libc::pid_t;
        // The banner comes just before the command listens for Ctrl-C: a
        // first SIGINT may fall in between (it is caught, not fatal), so
        // signal until it exits.
        let status = tokio::time::timeout(GUARD, async {
            loop {
                // SAFETY: kill(2) on the child we spawned and have not reaped.
                assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
                let wait = tokio::time::timeout(Duration::from_millis(500), child.wait());
                if let Ok(status) = wait.await {
                    return status.unwrap();
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(status.code(), Some(0), "{args:?}");
    }
}
