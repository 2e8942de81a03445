//! The token cache against a loopback token endpoint over a real socket.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::{extract::State, routing::post, Json, Router};
use lark_client::{Domain, ErrorClass, TokenCache};
use serde_json::{json, Value};

#[derive(Clone)]
struct Server {
    calls: Arc<AtomicUsize>,
    expire: u64,
}

async fn token(State(s): State<Server>, Json(body): Json<Value>) -> Json<Value> {
    let n = s.calls.fetch_add(1, Ordering::SeqCst) + 1;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    if body["app_secret"] != "secret" {
        return Json(json!({"code": 10014, "msg": "app secret invalid"}));
    }
    Json(
        json!({"code": 0, "msg": "ok", "tenant_access_token": format!("t-{n}"), "expire": s.expire}),
    )
}

async fn serve(expire: u64) -> (Domain, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route(
            "/open-apis/auth/v3/tenant_access_token/internal",
            post(token),
        )
        .with_state(Server {
            calls: calls.clone(),
            expire,
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (Domain::parse(&format!("http://{addr}")).unwrap(), calls)
}

#[tokio::test]
async fn concurrent_callers_share_one_fetch() {
    let (domain, calls) = serve(7200).await;
    let cache = Arc::new(TokenCache::new(
        reqwest::Client::new(),
        domain,
        "cli_a",
        "secret",
    ));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let c = cache.clone();
            tokio::spawn(async move { c.get().await.unwrap() })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), "t-1");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn near_expiry_token_is_refreshed_and_invalidation_refetches() {
    // 20 min lifetime: below the 30 min margin, so every get refreshes.
    let (domain, calls) = serve(1200).await;
    let cache = TokenCache::new(reqwest::Client::new(), domain.clone(), "cli_a", "secret");
    assert_eq!(cache.get().await.unwrap(), "t-1");
    assert_eq!(cache.get().await.unwrap(), "t-2");

    let (domain, calls2) = serve(7200).await;
    let cache = TokenCache::new(reqwest::Client::new(), domain, "cli_a", "secret");
    let t = cache.get().await.unwrap();
    cache.invalidate("some-older-token").await;
    assert_eq!(cache.get().await.unwrap(), t);
    cache.invalidate(&t).await;
    assert_eq!(cache.get().await.unwrap(), "t-2");
    assert_eq!(calls2.load(Ordering::SeqCst), 2);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn wrong_secret_is_an_auth_error_and_secret_not_in_debug() {
    let (domain, _) = serve(7200).await;
    let cache = TokenCache::new(reqwest::Client::new(), domain, "cli_a", "wrong-s3cret");
    let err = cache.get().await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Auth);
    assert!(err.to_string().contains("10014"));
    assert!(!format!("{cache:?}").contains("wrong-s3cret"));
}
