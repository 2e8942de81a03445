//! The app-registration device flow against the scripted fake.

mod support;

use std::time::Duration;

use lark_client::registration::{begin, init, poll, wait_for_approval, PollOutcome};
use lark_client::ProxySettings;
use serde_json::json;
use support::{guard, Fake, Reply};
use tokio_util::sync::CancellationToken;

const PATH: &str = "/oauth/v1/app/registration";

fn http() -> reqwest::Client {
    ProxySettings::direct()
        .http_client(Duration::from_secs(5))
        .unwrap()
}

#[tokio::test]
async fn init_and_begin_are_form_encoded() {
    let fake = Fake::start().await;
    fake.on(
        "POST",
        PATH,
        vec![
            Reply::json(json!({"supported_auth_methods": ["client_secret"]})),
            Reply::json(json!({
                "device_code": "dc-1", "user_code": "ABCD-EFGH",
                "verification_uri": "https://accounts.example/page/launcher",
                "verification_uri_complete": "https://accounts.example/page/launcher?user_code=ABCD-EFGH",
                "interval": 3, "expire_in": 240
            })),
        ],
    );
    let accounts = fake.domain().accounts();
    assert_eq!(
        init(&http(), &accounts).await.unwrap(),
        vec!["client_secret"]
    );
    let reg = begin(&http(), &accounts).await.unwrap();
    assert_eq!(reg.device_code, "dc-1");
    assert_eq!(reg.user_code, "ABCD-EFGH");
    assert!(reg
        .verification_uri_complete
        .ends_with("user_code=ABCD-EFGH"));
    assert_eq!(reg.interval, Duration::from_secs(3));
    assert_eq!(
        reg.expires_in,
        Duration::from_secs(240),
        "expire_in accepted"
    );

    let reqs = fake.requests_to("POST", PATH);
    assert!(reqs[1]
        .header("content-type")
        .unwrap()
        .starts_with("application/x-www-form-urlencoded"));
    assert_eq!(reqs[0].form()["action"], "init");
    let form = reqs[1].form();
    assert_eq!(form["action"], "begin");
    assert_eq!(form["archetype"], "PersonalAgent");
    assert_eq!(form["auth_method"], "client_secret");
    assert_eq!(form["request_user_info"], "open_id tenant_brand");
    assert!(reqs[1].header("authorization").is_none());
}

#[tokio::test]
async fn poll_results_with_http_400_are_normal() {
    let fake = Fake::start().await;
    let accounts = fake.domain();
    for (error, expected) in [
        ("authorization_pending", PollOutcome::Pending),
        ("slow_down", PollOutcome::SlowDown),
        ("access_denied", PollOutcome::Denied),
        ("expired_token", PollOutcome::Expired),
    ] {
        fake.on(
            "POST",
            PATH,
            vec![Reply::json(json!({"error": error})).status(400)],
        );
        assert_eq!(poll(&http(), &accounts, "dc").await.unwrap(), expected);
    }
    let form = fake.requests_to("POST", PATH)[0].form();
    assert_eq!(form["action"], "poll");
    assert_eq!(form["device_code"], "dc");
}

#[tokio::test]
async fn wait_for_approval_switches_brand_and_returns_credentials() {
    let fake = Fake::start().await;
    fake.on(
        "POST",
        PATH,
        vec![
            Reply::json(
                json!({"device_code": "dc-9", "user_code": "U", "interval": 5, "expires_in": 600}),
            ),
            Reply::json(json!({"error": "authorization_pending"})).status(400),
            Reply::json(json!({"client_id": "cli_new", "client_secret": "",
                "user_info": {"open_id": "ou_me", "tenant_brand": "lark"}})),
            Reply::json(json!({"client_id": "cli_new", "client_secret": "s3cret",
                "user_info": {"open_id": "ou_me", "tenant_brand": "lark"}})),
        ],
    );
    let accounts = fake.domain().accounts();
    let mut reg = begin(&http(), &accounts).await.unwrap();
    reg.interval = Duration::from_millis(10);
    let approved = guard(wait_for_approval(
        &http(),
        &accounts,
        &reg,
        &CancellationToken::new(),
    ))
    .await
    .unwrap();
    assert_eq!(approved.client_id, "cli_new");
    assert_eq!(approved.client_secret, "s3cret");
    assert_eq!(approved.open_id, "ou_me");
    assert_eq!(approved.tenant_brand, "lark");
    // A custom base serves both brands: the platform stays the same base.
    assert_eq!(approved.open_domain(&accounts), fake.domain());
    let polls: Vec<_> = fake
        .requests_to("POST", PATH)
        .iter()
        .map(|r| r.form())
        .filter(|f| f["action"] == "poll")
        .collect();
    assert_eq!(polls.len(), 3);
    assert!(polls.iter().all(|f| f["device_code"] == "dc-9"));
}

#[tokio::test]
async fn denial_and_cancellation_end_the_wait() {
    let fake = Fake::start().await;
    fake.on(
        "POST",
        PATH,
        vec![
            Reply::json(json!({"error": "access_denied", "error_description": "user said no"}))
                .status(400),
        ],
    );
    let accounts = fake.domain();
    let reg = lark_client::registration::Registration {
        device_code: "dc".into(),
        user_code: "U".into(),
        verification_uri: String::new(),
        verification_uri_complete: String::new(),
        interval: Duration::from_millis(10),
        expires_in: Duration::from_secs(60),
    };
    let err = guard(wait_for_approval(
        &http(),
        &accounts,
        &reg,
        &CancellationToken::new(),
    ))
    .await
    .unwrap_err();
    assert!(err.to_string().contains("access_denied"), "{err}");

    let cancel = CancellationToken::new();
    cancel.cancel();
    let err = guard(wait_for_approval(&http(), &accounts, &reg, &cancel))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cancelled"), "{err}");
}
