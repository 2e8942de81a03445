use std::time::Duration;

use lark_emulator::Fault;
use serde_json::json;

use crate::common::*;

const TOKEN: &str = "/open-apis/auth/v3/tenant_access_token/internal";

#[tokio::test]
async fn token_is_issued_reused_and_accepted() {
    let emu = start(|_| {}).await;
    let app = emu.default_app();
    let base = emu.base_url();
    let creds = json!({"app_id": app.app_id, "app_secret": app.app_secret});
    let first = post_json(&base, TOKEN, &creds).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.code(), 0);
    assert!(first.headers.contains_key("x-tt-logid"));
    assert!(
        first.body.get("data").is_none(),
        "token fields are top-level"
    );
    let token = first.body["tenant_access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(token.starts_with("t-"));
    assert_eq!(first.body["expire"], 7200);
    let again = post_json(&base, TOKEN, &creds).await;
    assert_eq!(
        again.body["tenant_access_token"],
        token.as_str(),
        "reused while > 30 min left"
    );

    let app_token = post_json(
        &base,
        "/open-apis/auth/v3/app_access_token/internal",
        &creds,
    )
    .await;
    assert_eq!(app_token.code(), 0);
    assert!(app_token.body["app_access_token"]
        .as_str()
        .unwrap()
        .starts_with("t-"));

    let api = Api {
        base: base.clone(),
        token,
        http: http(),
    };
    let info = api.call("GET", "/open-apis/bot/v3/info", None).await;
    assert_eq!(info.code(), 0);
    assert_eq!(info.body["bot"]["open_id"], app.bot_open_id.as_str());
    assert_eq!(info.body["bot"]["app_name"], app.bot_name.as_str());
    assert_eq!(info.body["bot"]["activate_status"], 2);
    assert!(info.headers.contains_key("x-tt-logid"));
}

#[tokio::test]
async fn wrong_credentials_get_platform_codes() {
    let emu = start(|_| {}).await;
    let app = emu.default_app();
    let base = emu.base_url();
    let wrong = post_json(
        &base,
        TOKEN,
        &json!({"app_id": app.app_id, "app_secret": "nope"}),
    )
    .await;
    assert_eq!(wrong.status, 200);
    assert_eq!(wrong.code(), 10014);
    let unknown = post_json(
        &base,
        TOKEN,
        &json!({"app_id": "cli_0000000000000000", "app_secret": "x"}),
    )
    .await;
    assert_eq!(unknown.code(), 10003);
    let missing = post_json(&base, TOKEN, &json!({})).await;
    assert_eq!(missing.code(), 10003);

    let no_bearer = http()
        .get(format!("{base}/open-apis/bot/v3/info"))
        .header("Authorization", "t-abc")
        .send()
        .await
        .unwrap();
    assert_eq!(to_reply(no_bearer).await.code(), 99991661);
    let bogus = Api {
        base: base.clone(),
        token: "t-unknown".into(),
        http: http(),
    };
    assert_eq!(
        bogus
            .call("GET", "/open-apis/bot/v3/info", None)
            .await
            .code(),
        99991663
    );
    let user_token = Api {
        base,
        token: "x-unknown".into(),
        http: http(),
    };
    assert_eq!(
        user_token
            .call("GET", "/open-apis/bot/v3/info", None)
            .await
            .code(),
        99991671
    );
}

#[tokio::test]
async fn token_expires_and_is_renewed_under_the_margin() {
    let emu = start(|c| {
        c.token_ttl = Duration::from_secs(2);
        c.token_reuse_margin = Duration::from_millis(1500);
    })
    .await;
    let app = emu.default_app();
    let base = emu.base_url();
    let old = tenant_token(&base, &app).await;
    assert_eq!(
        tenant_token(&base, &app).await,
        old,
        "reused: more than the margin left"
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    let new = tenant_token(&base, &app).await;
    assert_ne!(new, old, "a new token once less than the margin is left");
    let old_api = Api {
        base: base.clone(),
        token: old,
        http: http(),
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let expired = old_api.call("GET", "/open-apis/bot/v3/info", None).await;
    assert_eq!(
        expired.code(),
        99991663,
        "invalid after expiry: {}",
        expired.body
    );
}

#[tokio::test]
async fn expire_all_tokens_fault() {
    let emu = start(|_| {}).await;
    let app = emu.default_app();
    let api = Api::new(&emu, &app).await;
    assert_eq!(
        api.call("GET", "/open-apis/bot/v3/info", None).await.code(),
        0
    );
    emu.inject(Fault::ExpireTokens).unwrap();
    assert_eq!(
        api.call("GET", "/open-apis/bot/v3/info", None).await.code(),
        99991663
    );
    let fresh = Api::new(&emu, &app).await;
    assert_ne!(fresh.token, api.token);
    assert_eq!(
        fresh
            .call("GET", "/open-apis/bot/v3/info", None)
            .await
            .code(),
        0
    );
}
