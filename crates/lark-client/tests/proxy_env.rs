//! Ambient proxy variables are ignored unless asked for. (Its own test
//! binary: it changes the process environment.)

mod support;

use std::time::Duration;

use lark_client::{Client, WsClient, WsOptions, WsState};
use support::{guard, Fake, Proxy};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn ambient_proxy_env_is_not_applied_by_default() {
    let fake = Fake::start().await;
    let proxy = Proxy::start().await;
    for name in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        std::env::set_var(name, &proxy.url);
    }
    for name in ["NO_PROXY", "no_proxy"] {
        std::env::remove_var(name);
    }
    let builder = || {
        Client::builder("cli_test", "secret")
            .domain(fake.domain())
            .timeout(Duration::from_secs(5))
    };

    // Default: direct, for REST and the long connection.
    let direct = builder().build().unwrap();
    direct.recall_message("om_1").await.unwrap();
    let stop = CancellationToken::new();
    let (_rx, health) = WsClient::new(direct, WsOptions::default()).start(stop.clone());
    guard(health.wait_for(|h| h.state == WsState::Connected))
        .await
        .unwrap();
    stop.cancel();
    assert!(proxy.seen().is_empty(), "{:?}", proxy.seen());

    // Asked for: the environment's proxy is used.
    let from_env = builder().proxy_from_env().build().unwrap();
    from_env.recall_message("om_2").await.unwrap();
    let stop = CancellationToken::new();
    let (_rx, health) = WsClient::new(from_env, WsOptions::default()).start(stop.clone());
    guard(health.wait_for(|h| h.state == WsState::Connected))
        .await
        .unwrap();
    stop.cancel();
    let seen = proxy.seen();
    assert!(
        seen.iter().any(|l| l.starts_with("POST http://")),
        "{seen:?}"
    );
    assert!(seen.iter().any(|l| l.starts_with("CONNECT ")), "{seen:?}");
}
