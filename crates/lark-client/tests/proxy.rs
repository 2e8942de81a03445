//! Explicit proxies for REST and the long connection, and NO_PROXY.

mod support;

use std::time::Duration;

use lark_client::{Client, WsClient, WsOptions, WsState};
use support::{guard, Fake, Proxy, Socks5};
use tokio_util::sync::CancellationToken;

fn client(fake: &Fake, proxy: &str, no_proxy: &str) -> Client {
    Client::builder("cli_test", "secret")
        .domain(fake.domain())
        .proxy(Some(proxy.to_string()))
        .no_proxy(Some(no_proxy.to_string()))
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

async fn connect_ws(c: Client) -> CancellationToken {
    let stop = CancellationToken::new();
    let (_rx, health) = WsClient::new(c, WsOptions::default()).start(stop.clone());
    guard(health.wait_for(|h| h.state == WsState::Connected))
        .await
        .expect("connected");
    stop
}

#[tokio::test]
async fn http_connect_proxy_carries_rest_and_ws() {
    let fake = Fake::start().await;
    let proxy = Proxy::start().await;
    let c = client(&fake, &proxy.url, "");
    c.recall_message("om_1").await.unwrap();
    let stop = connect_ws(c).await;
    let seen = proxy.seen();
    let addr = fake.addr.to_string();
    assert!(
        seen.iter()
            .any(|l| l.starts_with("POST http://") && l.contains("/open-apis/auth/v3/")),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|l| l == &format!("CONNECT {addr} HTTP/1.1")),
        "WS through CONNECT: {seen:?}"
    );
    stop.cancel();
}

#[tokio::test]
async fn socks5_proxy_carries_rest_and_ws() {
    let fake = Fake::start().await;
    let socks = Socks5::start().await;
    let c = client(&fake, &socks.url, "");
    c.recall_message("om_1").await.unwrap();
    let stop = connect_ws(c).await;
    let seen = socks.seen();
    let addr = fake.addr.to_string();
    // REST (reqwest) and WS (our handshake) both tunnel to the fake.
    assert!(seen.iter().filter(|t| **t == addr).count() >= 2, "{seen:?}");
    stop.cancel();
}

#[tokio::test]
async fn no_proxy_bypasses_the_proxy() {
    let fake = Fake::start().await;
    let proxy = Proxy::start().await;
    let c = client(&fake, &proxy.url, "localhost,127.0.0.1");
    c.recall_message("om_1").await.unwrap();
    let stop = connect_ws(c).await;
    assert!(proxy.seen().is_empty(), "{:?}", proxy.seen());
    stop.cancel();
}
