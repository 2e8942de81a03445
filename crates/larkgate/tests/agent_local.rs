//! The local backends (`command`, `echo`) and the factory (`build`,
//! `validate`).

mod agent_support;

use std::path::Path;

use agent_support::*;
use larkgate::agent::wire::TurnInput;
use larkgate::agent::{
    build, validate, AgentConfig, AgentErrorKind, AgentEvent, AgentType, Attachment, AttachmentKind,
};
use tokio_util::sync::CancellationToken;

/// Writes an executable shell script into `dir`.
fn script(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    path.to_string_lossy().into_owned()
}

fn command_config(argv: &[&str], extra: &str) -> String {
    let argv: Vec<String> = argv.iter().map(|a| format!("{a:?}")).collect();
    format!(
        "type = \"command\"\ncommand = [{}]\n{extra}",
        argv.join(", ")
    )
}

/// The state letter of a process (`R`, `S`, `Z`...), or `None` once it is
/// gone entirely.
#[cfg(target_os = "linux")]
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

/// Waits until `pid` no longer runs (gone, or a zombie nobody reaped yet).
#[cfg(target_os = "linux")]
async fn wait_dead(pid: u32) {
    let dead = async {
        while !matches!(process_state(pid), None | Some('Z')) {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(HANG_GUARD, dead)
        .await
        .unwrap_or_else(|_| panic!("process {pid} survived"));
}

/// Numbers after `key=` in `text`.
fn number_after(text: &str, key: &str) -> u32 {
    let start = text
        .find(key)
        .unwrap_or_else(|| panic!("{key} not in {text:?}"))
        + key.len();
    text[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

fn delta(event: Option<AgentEvent>) -> String {
    match event {
        Some(AgentEvent::Delta(text)) => text,
        other => panic!("expected a delta, got {other:?}"),
    }
}

#[tokio::test]
async fn command_streams_stdout_before_it_exits_and_gets_the_turn_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    let program = script(
        dir.path(),
        "agent.sh",
        "input=$(cat)\nprintf 'pid=%s\\n' \"$$\"\nwhile [ ! -e \"$1\" ]; do sleep 0.01; done\nprintf '%s' \"$input\"",
    );
    let config = command_config(
        &[&program, &go.to_string_lossy()],
        "systemPrompt = \"Agent prompt\"",
    );
    let request = rich_request(dir.path());
    let (mut rx, task) = spawn_turn(agent(&config), request.clone(), CancellationToken::new());

    let first = delta(next_event(&mut rx).await);
    assert!(first.starts_with("pid="), "{first:?}");
    #[cfg(target_os = "linux")]
    {
        let pid = number_after(&first, "pid=");
        assert!(
            matches!(process_state(pid), Some(s) if s != 'Z'),
            "the program should still run"
        );
    }
    std::fs::write(&go, "").unwrap();
    let mut rest = String::new();
    while let Some(event) = next_event(&mut rx).await {
        rest.push_str(&delta(Some(event)));
    }
    finish(task).await.unwrap();
    let input: TurnInput = serde_json::from_str(&rest).unwrap();
    assert_eq!(input, TurnInput::new(&request, Some("Group prompt")));
    assert_eq!(input.attachments[0].path, dir.path().join("photo.png"));
}

#[tokio::test]
async fn command_gets_env_cwd_and_relative_program_from_the_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("work")).unwrap();
    script(
        dir.path(),
        "agent.sh",
        "cat >/dev/null\nprintf '%s|%s|%s' \"$(pwd)\" \"$MY_VAR\" \"$LARKGATE_SESSION_ID\"",
    );
    let config = command_config(
        &["./agent.sh"],
        "cwd = \"work\"\nenv = { MY_VAR = \"from config\" }",
    );
    let (events, result) = run(&*agent_in(&config, dir.path()), text_request("hi")).await;
    result.unwrap();
    let work = dir.path().join("work").canonicalize().unwrap();
    assert_eq!(
        text_of(&events),
        format!("{}|from config|s-1", work.display())
    );
}

#[tokio::test]
async fn command_failure_is_exit_with_the_stderr_tail() {
    let dir = tempfile::tempdir().unwrap();
    let program = script(
        dir.path(),
        "fail.sh",
        "cat >/dev/null\nprintf 'partial answer'\nfor l in a b c d e f g h; do echo \"err-$l\" >&2; done\nexit 3",
    );
    let (events, result) = run(
        &*agent(&command_config(&[&program], "")),
        text_request("hi"),
    )
    .await;
    assert_eq!(text_of(&events), "partial answer");
    let err = result.unwrap_err();
    assert_eq!(err.kind, AgentErrorKind::Exit);
    assert!(err.message.contains("exited with status 3"), "{err}");
    assert!(
        err.message
            .ends_with("err-d | err-e | err-f | err-g | err-h"),
        "{err}"
    );
    assert!(!err.message.contains("err-c"), "{err}");
}

#[tokio::test]
async fn command_that_ignores_stdin_still_works() {
    let dir = tempfile::tempdir().unwrap();
    let program = script(dir.path(), "quiet.sh", "printf done");
    let mut request = text_request(&"x".repeat(1024 * 1024));
    request.history = Vec::new();
    let (events, result) = run(&*agent(&command_config(&[&program], "")), request).await;
    result.unwrap();
    assert_eq!(text_of(&events), "done");
}

#[tokio::test]
async fn missing_program_is_a_config_error() {
    let config = command_config(&["/nonexistent/agent-program"], "");
    let (_, result) = run(&*agent(&config), text_request("hi")).await;
    let err = result.unwrap_err();
    assert_eq!(err.kind, AgentErrorKind::Config);
    assert!(
        err.message
            .contains("cannot start `/nonexistent/agent-program`"),
        "{err}"
    );
}

/// Starts `body` (which prints `pid=<shell> child=<background sleep>` first),
/// waits for that line, then `stop`s the turn; returns both pids and the result.
async fn start_and_stop(
    body: &str,
    extra: &str,
    stop: impl FnOnce(&CancellationToken),
) -> (u32, u32, Result<(), larkgate::agent::AgentError>) {
    let dir = tempfile::tempdir().unwrap();
    let program = script(dir.path(), "slow.sh", body);
    let cancel = CancellationToken::new();
    let (mut rx, task) = spawn_turn(
        agent(&command_config(&[&program], extra)),
        text_request("hi"),
        cancel.clone(),
    );
    let first = delta(next_event(&mut rx).await);
    stop(&cancel);
    let result = finish(task).await;
    (
        number_after(&first, "pid="),
        number_after(&first, "child="),
        result,
    )
}

const SLEEPER: &str = "sleep 1000 &\nprintf 'pid=%s child=%s\\n' \"$$\" \"$!\"\nwait";

#[tokio::test]
async fn command_cancel_kills_the_process_group_and_reaps_it() {
    let (pid, child, result) = start_and_stop(SLEEPER, "", CancellationToken::cancel).await;
    assert_eq!(result.unwrap_err().kind, AgentErrorKind::Cancelled);
    #[cfg(target_os = "linux")]
    {
        assert_eq!(
            process_state(pid),
            None,
            "the program is gone, not a zombie"
        );
        // The grandchild was sent SIGKILL too (it dies as soon as the kernel
        // delivers it; its new parent may not reap it).
        wait_dead(child).await;
    }
    let _ = (pid, child);
}

#[tokio::test]
async fn command_timeout_kills_the_process_group() {
    let (pid, child, result) = start_and_stop(SLEEPER, "timeoutSecs = 1", |_| {}).await;
    let err = result.unwrap_err();
    assert_eq!(err.kind, AgentErrorKind::Timeout);
    assert!(err.message.contains("timeoutSecs"), "{err}");
    #[cfg(target_os = "linux")]
    {
        assert_eq!(process_state(pid), None);
        wait_dead(child).await;
    }
    let _ = (pid, child);
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn dropping_a_running_turn_kills_the_program() {
    let dir = tempfile::tempdir().unwrap();
    let program = script(dir.path(), "slow.sh", SLEEPER);
    let (mut rx, task) = spawn_turn(
        agent(&command_config(&[&program], "")),
        text_request("hi"),
        CancellationToken::new(),
    );
    let first = delta(next_event(&mut rx).await);
    task.abort();
    let _ = task.await;
    for pid in [number_after(&first, "pid="), number_after(&first, "child=")] {
        wait_dead(pid).await;
    }
}

#[tokio::test]
async fn command_jsonl_output_gives_text_media_and_usage() {
    let dir = tempfile::tempdir().unwrap();
    let program = script(
        dir.path(),
        "jsonl.sh",
        r#"cat >/dev/null
echo '{"type":"text","text":"Here is "}'
echo '{"type":"text","text":"the chart."}'
echo ''
echo '{"type":"media","path":"chart.png"}'
printf '{"type":"usage","input_tokens":4,"output_tokens":9}'"#,
    );
    let config = command_config(
        &[&program],
        &format!("output = \"jsonl\"\ncwd = {:?}", dir.path()),
    );
    let (events, result) = run(&*agent(&config), text_request("hi")).await;
    result.unwrap();
    assert_eq!(text_of(&events), "Here is the chart.");
    let media: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::Media(m) => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(media.len(), 1);
    assert_eq!(media[0].kind, AttachmentKind::Image);
    assert_eq!(Path::new(&media[0].source), dir.path().join("chart.png"));
    assert_eq!(
        events.last(),
        Some(&AgentEvent::Usage {
            input_tokens: 4,
            output_tokens: 9
        })
    );

    let bad = script(dir.path(), "bad.sh", "cat >/dev/null\necho 'not json'");
    let (_, result) = run(
        &*agent(&command_config(&[&bad], "output = \"jsonl\"")),
        text_request("hi"),
    )
    .await;
    let err = result.unwrap_err();
    assert_eq!(err.kind, AgentErrorKind::Protocol);
    assert!(err.message.contains("not json"), "{err}");
}

const ECHO: &str = "type = \"echo\"\nchunkDelayMs = 0";

#[tokio::test]
async fn echo_streams_the_input_back_in_several_deltas() {
    let text = "The quick brown fox jumps over the lazy dog, 你好世界!\nSecond line.";
    let (events, result) = run(&*agent(ECHO), text_request(text)).await;
    result.unwrap();
    assert_eq!(text_of(&events), text);
    assert!(delta_count(&events) > 5, "{events:?}");
}

#[tokio::test]
async fn echo_mentions_attachments() {
    let mut request = text_request("look");
    let attachment = |kind, name: &str| Attachment {
        kind,
        path: "/tmp/x".into(),
        name: name.into(),
        mime: None,
        transcript: None,
    };
    request.attachments = vec![attachment(AttachmentKind::Image, "x.png"), {
        let mut voice = attachment(AttachmentKind::Audio, "v.opus");
        voice.transcript = Some("hello".into());
        voice
    }];
    let (events, result) = run(&*agent(ECHO), request).await;
    result.unwrap();
    assert_eq!(
        text_of(&events),
        "look\nreceived image x.png\nreceived audio v.opus (transcript: hello)"
    );
}

#[tokio::test]
async fn echo_fail_returns_the_asked_error() {
    let (events, result) = run(&*agent(ECHO), text_request("echo-fail")).await;
    assert!(events.is_empty());
    assert_eq!(result.unwrap_err().kind, AgentErrorKind::Unavailable);
    let (_, result) = run(&*agent(ECHO), text_request("/echo-fail rate")).await;
    assert_eq!(result.unwrap_err().kind, AgentErrorKind::RateLimited);
}

#[tokio::test]
async fn echo_long_and_table_produce_markdown() {
    let (events, result) = run(&*agent(ECHO), text_request("echo-long 20")).await;
    result.unwrap();
    let long = text_of(&events);
    assert!(
        long.len() >= 20 * 1024 && long.len() < 21 * 1024,
        "{}",
        long.len()
    );
    assert!(long.contains("```rust\n") && long.contains("\n\n## Part 2"));
    assert!(delta_count(&events) > 10);

    let (events, result) = run(&*agent(ECHO), text_request("echo-table 3")).await;
    result.unwrap();
    let tables = text_of(&events);
    assert_eq!(tables.matches("|---|---|---|").count(), 3);
    assert!(tables.contains("| 3 | gamma | 32 |"), "{tables}");
}

#[tokio::test]
async fn echo_image_sends_a_png() {
    let (events, result) = run(&*agent(ECHO), text_request("echo-image")).await;
    result.unwrap();
    assert_eq!(text_of(&events), "Here is an image.");
    let Some(AgentEvent::Media(media)) = events.last() else {
        panic!("no media in {events:?}");
    };
    assert_eq!(media.kind, AttachmentKind::Image);
    let bytes = std::fs::read(&media.source).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
}

#[tokio::test]
async fn echo_slow_can_be_stopped_and_times_out() {
    let cancel = CancellationToken::new();
    let (mut rx, task) = spawn_turn(agent(ECHO), text_request("echo-slow 100"), cancel.clone());
    assert_eq!(delta(next_event(&mut rx).await), "chunk 1 of 100\n");
    cancel.cancel();
    assert_eq!(
        finish(task).await.unwrap_err().kind,
        AgentErrorKind::Cancelled
    );

    let config = "type = \"echo\"\ntimeoutSecs = 1";
    let (events, result) = run(&*agent(config), text_request("echo-slow 100")).await;
    assert!(text_of(&events).starts_with("chunk 1 of 100\n"));
    assert_eq!(result.unwrap_err().kind, AgentErrorKind::Timeout);
}

#[test]
fn validate_names_the_keys() {
    let check = |toml_text: &str| validate(&toml::from_str::<AgentConfig>(toml_text).unwrap());
    assert_eq!(check("type = \"echo\""), Vec::<String>::new());
    assert_eq!(
        check("type = \"openai\""),
        ["model is required for type openai"]
    );
    assert_eq!(
        check("type = \"anthropic\"\nmodel = \"m\""),
        ["apiKey, apiKeyEnv or apiKeyFile is required for type anthropic"]
    );
    assert_eq!(
        check("type = \"command\"\ncommand = []"),
        ["command is required for type command (the program, then its arguments)"]
    );
    assert_eq!(check("type = \"http\""), ["url is required for type http"]);
    assert_eq!(
        check("type = \"openai\"\nmodel = \"m\"\napiKey = \"a\"\napiKeyEnv = \"B\"\ntemperature = 3.0\nurl = \"http://x\"\nbaseUrl = \"ftp://x\""),
        [
            "url is not used by type openai",
            "set only one of apiKey, apiKeyEnv and apiKeyFile",
            "baseUrl must be an http:// or https:// URL",
            "temperature must be between 0 and 2",
        ]
    );
    assert_eq!(
        check("type = \"http\"\nurl = \"https://x\"\ntimeoutSecs = 0\nproxy = \"nope\"\nheaders = { \"bad name\" = \"v\" }"),
        [
            "proxy must be an http://, https://, socks5:// or socks5h:// URL",
            "timeoutSecs must be between 1 and 86400",
            "headers: `bad name` is not a valid header name",
        ]
    );
    assert!(toml::from_str::<AgentConfig>("type = \"echo\"\nunknownKey = 1").is_err());
}

#[test]
fn build_resolves_keys_and_reports_config_errors() {
    let env = |name: &str| (name == "SET").then(|| "value".to_string());
    let dir = tempfile::tempdir().unwrap();
    let base = AgentConfig {
        kind: AgentType::Openai,
        model: Some("m".into()),
        ..AgentConfig::default()
    };

    let missing_env = AgentConfig {
        api_key_env: Some("UNSET".into()),
        ..base.clone()
    };
    let err = build("gpt", &missing_env, dir.path(), &env).err().unwrap();
    assert_eq!(err.kind, AgentErrorKind::Config);
    assert!(err.message.contains("UNSET is not set"), "{err}");

    let missing_file = AgentConfig {
        api_key_file: Some("nope.txt".into()),
        ..base.clone()
    };
    let err = build("gpt", &missing_file, dir.path(), &env).err().unwrap();
    assert_eq!(err.kind, AgentErrorKind::Config);
    assert!(err.message.contains("nope.txt"), "{err}");

    std::fs::write(dir.path().join("empty.txt"), " \n").unwrap();
    let empty_file = AgentConfig {
        api_key_file: Some("empty.txt".into()),
        ..base.clone()
    };
    let err = build("gpt", &empty_file, dir.path(), &env).err().unwrap();
    assert!(err.message.contains("empty"), "{err}");

    let invalid = AgentConfig {
        model: None,
        ..base.clone()
    };
    let err = build("gpt", &invalid, dir.path(), &env).err().unwrap();
    assert_eq!(err.message, "agents.gpt: model is required for type openai");

    let ok = AgentConfig {
        api_key_env: Some("SET".into()),
        ..base
    };
    assert_eq!(
        build("gpt", &ok, dir.path(), &env).unwrap().kind(),
        "openai"
    );
    assert_eq!(
        build("e", &AgentConfig::default(), dir.path(), &env)
            .unwrap()
            .kind(),
        "echo"
    );
}
