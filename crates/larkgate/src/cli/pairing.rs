//! `larkgate pairing list|approve|reject`: directly on the store, whether
//! or not the gateway runs (it checks approvals on every message).

use std::path::Path;
use std::sync::Arc;

use serde_json::json;

use super::args::PairingCommand;
use super::{human_secs, load_config, now_ms, print_warnings, table, Failure, Outcome};
use crate::policy::pairing::normalize_code;
use crate::store::{self, Store};

pub(super) async fn pairing(path: Option<&Path>, cmd: PairingCommand) -> Outcome {
    let loaded = load_config(path)?;
    print_warnings(&loaded.warnings);
    let store = store::open(&loaded.config.store.url)
        .await
        .map_err(|e| Failure::runtime(format!("store: {e}")))?;
    match cmd {
        PairingCommand::List { json } => list(&store, json).await,
        PairingCommand::Approve { code } => approve(&store, &code).await,
        PairingCommand::Reject { code } => reject(&store, &code).await,
    }
}

fn store_failure(e: store::StoreError) -> Failure {
    Failure::runtime(format!("store: {e}"))
}

async fn list(store: &Arc<dyn Store>, json: bool) -> Outcome {
    let now = now_ms();
    let pending = store
        .list_pairings(None, now)
        .await
        .map_err(store_failure)?;
    if json {
        let body: Vec<_> = pending
            .iter()
            .map(|p| {
                json!({
                    "code": p.code, "account": p.account, "open_id": p.open_id,
                    "created_ms": p.created_ms, "expires_ms": p.expires_ms,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(body));
        return Ok(());
    }
    if pending.is_empty() {
        println!("no pending pairing requests");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = pending
        .iter()
        .map(|p| {
            vec![
                p.code.clone(),
                p.account.clone(),
                p.open_id.clone(),
                format!("{} ago", human_secs(secs(now - p.created_ms))),
                human_secs(secs(p.expires_ms - now)),
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            &["CODE", "ACCOUNT", "OPEN_ID", "ASKED", "EXPIRES IN"],
            &rows
        )
    );
    println!("\napprove one with: larkgate pairing approve CODE");
    Ok(())
}

fn secs(ms: i64) -> u64 {
    u64::try_from(ms.max(0) / 1000).unwrap_or(0)
}

fn not_found(code: &str) -> Failure {
    Failure::runtime(format!(
        "no pending pairing request with code {code} (it may have expired after an hour); \
         `larkgate pairing list` shows the pending ones"
    ))
}

async fn approve(store: &Arc<dyn Store>, code: &str) -> Outcome {
    let code = normalize_code(code);
    match store
        .approve_pairing(&code, now_ms())
        .await
        .map_err(store_failure)?
    {
        Some(p) => {
            println!(
                "approved {}: {} may now talk to account {}",
                p.code, p.open_id, p.account
            );
            Ok(())
        }
        None => Err(not_found(&code)),
    }
}

async fn reject(store: &Arc<dyn Store>, code: &str) -> Outcome {
    let code = normalize_code(code);
    match store.reject_pairing(&code).await.map_err(store_failure)? {
        Some(p) => {
            println!(
                "rejected {}: {} (account {}) was not given access",
                p.code, p.open_id, p.account
            );
            Ok(())
        }
        None => Err(not_found(&code)),
    }
}
