use std::time::Duration;

use lark_emulator::{ApproveRegistration, Fault};
use serde_json::Value;

use crate::common::*;

async fn form(base: &str, fields: &[(&str, &str)]) -> Reply {
    let res = http()
        .post(format!("{base}/oauth/v1/app/registration"))
        .form(fields)
        .send()
        .await
        .unwrap();
    to_reply(res).await
}

async fn begin(base: &str) -> Value {
    let r = form(
        base,
        &[
            ("action", "begin"),
            ("archetype", "PersonalAgent"),
            ("auth_method", "client_secret"),
            ("request_user_info", "open_id tenant_brand"),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    r.body
}

#[tokio::test]
async fn device_flow_creates_a_working_app() {
    let emu = start(|_| {}).await;
    let base = emu.base_url();
    let init = form(&base, &[("action", "init")]).await;
    assert_eq!(init.body["supported_auth_methods"][0], "client_secret");
    let b = begin(&base).await;
    let device_code = b["device_code"].as_str().unwrap().to_string();
    assert!(b["verification_uri_complete"]
        .as_str()
        .unwrap()
        .contains(b["user_code"].as_str().unwrap()));
    assert_eq!(b["expires_in"], 600);
    assert_eq!(b["interval"], 5);
    let pending = form(&base, &[("action", "poll"), ("device_code", &device_code)]).await;
    assert_eq!(
        (pending.status, pending.body["error"].as_str()),
        (400, Some("authorization_pending"))
    );

    emu.inject(Fault::RegistrationPoll {
        error: "slow_down".into(),
        count: 1,
    })
    .unwrap();
    assert_eq!(
        form(&base, &[("action", "poll"), ("device_code", &device_code)])
            .await
            .body["error"],
        "slow_down"
    );

    let approved = emu
        .approve_registration(ApproveRegistration {
            user_code: b["user_code"].as_str().map(str::to_string),
            ..Default::default()
        })
        .unwrap();
    let done = form(&base, &[("action", "poll"), ("device_code", &device_code)]).await;
    assert_eq!(done.status, 200);
    assert_eq!(done.body["client_id"], approved.app.app_id.as_str());
    assert_eq!(done.body["client_secret"], approved.app.app_secret.as_str());
    assert_eq!(done.body["user_info"]["tenant_brand"], "feishu");
    assert_eq!(
        done.body["user_info"]["open_id"],
        approved.user_open_id.as_str()
    );
    let api = Api::new(&emu, &approved.app).await;
    let info = api.call("GET", "/open-apis/bot/v3/info", None).await;
    assert_eq!(
        info.body["bot"]["open_id"],
        approved.app.bot_open_id.as_str()
    );
    assert!(emu.apps().iter().any(|a| a.app_id == approved.app.app_id));
}

#[tokio::test]
async fn lark_tenant_switches_brand_for_the_secret() {
    let emu = start(|_| {}).await;
    let b = begin(&emu.base_url()).await;
    let device_code = b["device_code"].as_str().unwrap().to_string();
    let approved = emu
        .approve_registration(ApproveRegistration {
            device_code: Some(device_code.clone()),
            tenant_brand: Some("lark".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(approved.app.brand, "lark");
    let feishu = form(
        &emu.base_url(),
        &[("action", "poll"), ("device_code", &device_code)],
    )
    .await;
    assert_eq!(feishu.body["user_info"]["tenant_brand"], "lark");
    assert_eq!(feishu.body["client_id"], approved.app.app_id.as_str());
    assert_eq!(
        feishu.body["client_secret"], "",
        "the Feishu host does not hand out a Lark secret"
    );
    let lark = form(
        &emu.lark_base_url(),
        &[("action", "poll"), ("device_code", &device_code)],
    )
    .await;
    assert_eq!(lark.body["client_secret"], approved.app.app_secret.as_str());
    // The Lark host serves the whole platform.
    let token = post_json(
        &emu.lark_base_url(),
        "/open-apis/auth/v3/tenant_access_token/internal",
        &serde_json::json!({"app_id": approved.app.app_id, "app_secret": approved.app.app_secret}),
    )
    .await;
    assert_eq!(token.code(), 0);
}

#[tokio::test]
async fn denied_and_expired_registrations() {
    let emu = start(|c| c.registration_expires_in_secs = 1).await;
    let base = emu.base_url();
    let b = begin(&base).await;
    let code = b["device_code"].as_str().unwrap().to_string();
    emu.inject(Fault::RegistrationPoll {
        error: "access_denied".into(),
        count: 1,
    })
    .unwrap();
    assert_eq!(
        form(&base, &[("action", "poll"), ("device_code", &code)])
            .await
            .body["error"],
        "access_denied"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        form(&base, &[("action", "poll"), ("device_code", &code)])
            .await
            .body["error"],
        "expired_token"
    );
    assert!(emu
        .approve_registration(ApproveRegistration {
            device_code: Some(code),
            ..Default::default()
        })
        .is_err());
    assert_eq!(
        form(&base, &[("action", "poll"), ("device_code", "nope")])
            .await
            .body["error"],
        "invalid_grant"
    );
}
