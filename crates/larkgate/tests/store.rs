//! The store against real databases: every test runs on SQLite (a temporary
//! file) and on PostgreSQL (a fresh schema per test, so tests run in
//! parallel). PostgreSQL is `postgres://postgres@127.0.0.1:5432/test` unless
//! `LARKGATE_TEST_POSTGRES_URL` says otherwise; if it is unreachable the
//! PostgreSQL tests fail (run `tools/ensure-postgres.sh`), unless
//! `LARKGATE_SKIP_POSTGRES=1`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use larkgate::store::{
    self, InboundState, InsertOutcome, NewInbound, NewTurns, PairingOutcome, Store, StoreError,
    MIN_DEDUP_WINDOW_MS,
};
use sqlx::postgres::PgPoolOptions;
use sqlx::Connection;

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const HOUR_MS: i64 = 60 * 60 * 1000;

/// A store under test and how to open it again.
struct TestDb {
    store: Arc<dyn Store>,
    url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, schema: String },
}

impl TestDb {
    async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/state/larkgate.db", dir.path().display());
        let store = store::open(&url).await.expect("open sqlite store");
        TestDb {
            store,
            url,
            cleanup: Cleanup::Sqlite(dir),
        }
    }

    /// `None` only when `LARKGATE_SKIP_POSTGRES=1`.
    async fn postgres() -> Option<TestDb> {
        if std::env::var("LARKGATE_SKIP_POSTGRES").is_ok_and(|v| v == "1") {
            return None;
        }
        let admin_url = std::env::var("LARKGATE_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_string());
        let mut conn = match tokio::time::timeout(
            Duration::from_secs(10),
            sqlx::PgConnection::connect(&admin_url),
        )
        .await
        {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => panic!("{}", unreachable_message(&admin_url, &e.to_string())),
            Err(_) => panic!("{}", unreachable_message(&admin_url, "timed out")),
        };
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let schema = format!(
            "lg_test_{}_{}_{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        );
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut conn)
            .await
            .expect("create schema");
        let _ = conn.close().await;
        let sep = if admin_url.contains('?') { '&' } else { '?' };
        let url = format!("{admin_url}{sep}options[search_path]={schema}");
        let store = store::open(&url).await.expect("open postgres store");
        Some(TestDb {
            store,
            url,
            cleanup: Cleanup::Postgres { admin_url, schema },
        })
    }

    /// Opens the same database again, as a restarted process would.
    async fn reopen(&self) -> Arc<dyn Store> {
        store::open(&self.url).await.expect("reopen store")
    }

    async fn finish(self) {
        drop(self.store);
        if let Cleanup::Postgres { admin_url, schema } = self.cleanup {
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .connect(&admin_url)
                .await
                .expect("connect for cleanup");
            sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                .execute(&pool)
                .await
                .expect("drop schema");
        }
    }
}

fn unreachable_message(url: &str, error: &str) -> String {
    let shown = url.split('@').next_back().unwrap_or(url);
    format!(
        "PostgreSQL is not reachable at …@{shown}: {error}. Start it with tools/ensure-postgres.sh, \
         point LARKGATE_TEST_POSTGRES_URL at a server, or set LARKGATE_SKIP_POSTGRES=1 to skip \
         the PostgreSQL tests."
    )
}

/// Runs each named test body on SQLite and on PostgreSQL.
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = super::TestDb::sqlite().await;
                    super::$name(&db).await;
                    db.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = super::TestDb::postgres().await else { return };
                    super::$name(&db).await;
                    db.finish().await;
                }
            )*
        }
    };
}

on_both_databases!(
    duplicate_event_id_across_batches,
    duplicate_message_id_across_batches,
    duplicates_within_one_batch,
    finished_rows_are_not_deduplicated,
    ids_match_events_of_a_new_batch,
    accounts_do_not_share_dedup,
    batches_larger_than_one_statement,
    concurrent_inserts_of_one_event_store_it_once,
    unfinished_rows_survive_a_restart,
    states_and_attempts,
    finish_turn_appends_history_and_closes_the_row,
    prune_keeps_the_dedup_window,
    history_limit_and_reset,
    pairing_limits_and_existing,
    pairing_expiry,
    pairing_approve_and_reject,
    concurrent_pairings_respect_the_limit,
    sent_parts_by_uuid,
    open_cards_until_closed,
    kv_cache,
);

fn event(account: &str, event_id: &str, message_id: Option<&str>) -> NewInbound {
    NewInbound {
        account: account.into(),
        event_id: event_id.into(),
        message_id: message_id.map(Into::into),
        event_type: "im.message.receive_v1".into(),
        chat_id: Some("oc_chat".into()),
        payload: format!(r#"{{"event_id":"{event_id}"}}"#),
        received_at_ms: 1_000,
        state: larkgate::store::InboundState::Pending,
    }
}

fn inserted_id(outcome: InsertOutcome) -> i64 {
    match outcome {
        InsertOutcome::Inserted(id) => id,
        InsertOutcome::Duplicate => panic!("expected Inserted, got Duplicate"),
    }
}

async fn duplicate_event_id_across_batches(db: &TestDb) {
    let s = &db.store;
    let first = s
        .insert_inbound(&[event("a", "e1", Some("m1"))])
        .await
        .unwrap();
    inserted_id(first[0]);
    // Same event_id, different message_id: still the same delivery.
    let again = s
        .insert_inbound(&[event("a", "e1", Some("m2"))])
        .await
        .unwrap();
    assert_eq!(again, vec![InsertOutcome::Duplicate]);
    let without_message = s.insert_inbound(&[event("a", "e1", None)]).await.unwrap();
    assert_eq!(without_message, vec![InsertOutcome::Duplicate]);
}

async fn duplicate_message_id_across_batches(db: &TestDb) {
    let s = &db.store;
    let first = s
        .insert_inbound(&[event("a", "e1", Some("m1"))])
        .await
        .unwrap();
    inserted_id(first[0]);
    // A new event_id carrying a message already seen (v1 and v2 of one message).
    let again = s
        .insert_inbound(&[event("a", "e2", Some("m1"))])
        .await
        .unwrap();
    assert_eq!(again, vec![InsertOutcome::Duplicate]);
    // Events without a message_id never collide on it.
    let a = s.insert_inbound(&[event("a", "e3", None)]).await.unwrap();
    let b = s.insert_inbound(&[event("a", "e4", None)]).await.unwrap();
    inserted_id(a[0]);
    inserted_id(b[0]);
}

async fn duplicates_within_one_batch(db: &TestDb) {
    let s = &db.store;
    s.insert_inbound(&[event("a", "old", Some("m-old"))])
        .await
        .unwrap();
    let batch = [
        event("a", "e1", Some("m1")),
        event("a", "e1", Some("m2")),    // event_id repeats e1
        event("a", "e2", Some("m1")),    // message_id repeats e1's
        event("a", "e3", None),          // new
        event("a", "old", None),         // in the store already
        event("a", "e4", Some("m-old")), // message in the store already
        event("a", "e5", Some("m2")),    // m2 was only on a dropped repeat
    ];
    let out = s.insert_inbound(&batch).await.unwrap();
    use InsertOutcome::Duplicate;
    assert_eq!(out[1], Duplicate);
    assert_eq!(out[2], Duplicate);
    assert_eq!(out[4], Duplicate);
    assert_eq!(out[5], Duplicate);
    let ids = [
        inserted_id(out[0]),
        inserted_id(out[3]),
        inserted_id(out[6]),
    ];
    assert!(
        ids[0] < ids[1] && ids[1] < ids[2],
        "ids follow the batch: {ids:?}"
    );
    let stored = s.get_inbound(ids[2]).await.unwrap().expect("row e5");
    assert_eq!(stored.event_id, "e5");
    assert_eq!(stored.message_id.as_deref(), Some("m2"));
    assert_eq!(stored.state, InboundState::Pending);
}

/// Events recorded finished (nothing left to do) are not deduplicated: a
/// redelivery is recorded again, and they never block the same ids arriving
/// later as events to act on. Unfinished events still deduplicate.
async fn finished_rows_are_not_deduplicated(db: &TestDb) {
    let s = &db.store;
    let dropped = |event_id: &str, message_id: &str| {
        let mut e = event("a", event_id, Some(message_id));
        e.state = InboundState::Dropped("no mention".into());
        e.payload = String::new();
        e
    };
    let out = s
        .insert_inbound(&[dropped("d1", "dm1"), dropped("d1", "dm1")])
        .await
        .unwrap();
    let (first, second) = (inserted_id(out[0]), inserted_id(out[1]));
    assert_ne!(first, second, "a repeat inside one batch is recorded again");
    let again = s.insert_inbound(&[dropped("d1", "dm1")]).await.unwrap();
    assert!(
        inserted_id(again[0]) > second,
        "and so is a later redelivery"
    );
    let row = s.get_inbound(first).await.unwrap().expect("dropped row");
    assert_eq!(row.state, InboundState::Dropped("no mention".into()));

    // The same ids as an event to act on: recorded once, then deduplicated.
    let pending = s
        .insert_inbound(&[event("a", "d1", Some("dm1"))])
        .await
        .unwrap();
    inserted_id(pending[0]);
    let repeat = s
        .insert_inbound(&[event("a", "d1", Some("dm1")), dropped("d1", "dm1")])
        .await
        .unwrap();
    assert_eq!(repeat[0], InsertOutcome::Duplicate);
    inserted_id(repeat[1]);
}

async fn ids_match_events_of_a_new_batch(db: &TestDb) {
    let s = &db.store;
    let batch: Vec<NewInbound> = (0..20)
        .map(|i| event(if i % 3 == 0 { "a" } else { "b" }, &format!("e{i}"), None))
        .collect();
    let out = s.insert_inbound(&batch).await.unwrap();
    for (e, outcome) in batch.iter().zip(out) {
        let row = s.get_inbound(inserted_id(outcome)).await.unwrap().unwrap();
        assert_eq!(
            (row.account.as_str(), row.event_id.as_str()),
            (e.account.as_str(), e.event_id.as_str())
        );
    }
}

async fn accounts_do_not_share_dedup(db: &TestDb) {
    let s = &db.store;
    let out = s
        .insert_inbound(&[event("a", "e1", Some("m1")), event("b", "e1", Some("m1"))])
        .await
        .unwrap();
    assert_ne!(inserted_id(out[0]), inserted_id(out[1]));
    let again = s
        .insert_inbound(&[event("b", "e1", Some("m1"))])
        .await
        .unwrap();
    assert_eq!(again, vec![InsertOutcome::Duplicate]);
}

async fn batches_larger_than_one_statement(db: &TestDb) {
    let s = &db.store;
    s.insert_inbound(&[event("a", "e100", None), event("a", "x", Some("m450"))])
        .await
        .unwrap();
    let batch: Vec<NewInbound> = (0..600)
        .map(|i| {
            let event_id = format!("e{}", i % 500); // 500..599 repeat 0..99
            event("a", &event_id, Some(&format!("m{i}")))
        })
        .collect();
    let out = s.insert_inbound(&batch).await.unwrap();
    assert_eq!(out.len(), 600);
    for (i, outcome) in out.iter().enumerate() {
        let expect_new = i < 500 && i != 100 && i != 450;
        assert_eq!(
            matches!(outcome, InsertOutcome::Inserted(_)),
            expect_new,
            "event {i}: {outcome:?}"
        );
    }
}

async fn concurrent_inserts_of_one_event_store_it_once(db: &TestDb) {
    let mut tasks = Vec::new();
    for i in 0..16 {
        let s = db.store.clone();
        tasks.push(tokio::spawn(async move {
            // Each racer has the same event_id with another message_id, or
            // the same message_id with another event_id.
            let e = if i % 2 == 0 {
                event("a", "racy", Some(&format!("m{i}")))
            } else {
                event("a", &format!("e{i}"), Some("m-racy"))
            };
            s.insert_inbound(&[e]).await.unwrap()[0]
        }));
    }
    let mut inserted = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), InsertOutcome::Inserted(_)) {
            inserted += 1;
        }
    }
    // "racy" and "m-racy" can each be claimed once; one row may hold both.
    assert!((1..=2).contains(&inserted), "inserted {inserted} times");
    let rows = db.store.unfinished_inbound("a").await.unwrap();
    assert_eq!(rows.iter().filter(|r| r.event_id == "racy").count(), 1);
    let with_message = rows
        .iter()
        .filter(|r| r.message_id.as_deref() == Some("m-racy"))
        .count();
    assert!(with_message <= 1);
}

async fn unfinished_rows_survive_a_restart(db: &TestDb) {
    let out = db
        .store
        .insert_inbound(&[
            event("a", "e1", Some("m1")),
            event("a", "e2", Some("m2")),
            event("a", "e3", Some("m3")),
            event("b", "e4", Some("m4")),
        ])
        .await
        .unwrap();
    let ids: Vec<i64> = out.into_iter().map(inserted_id).collect();
    db.store
        .set_inbound_state(ids[0], InboundState::Done)
        .await
        .unwrap();
    db.store.begin_attempt(ids[1]).await.unwrap();

    // The process dies here: nothing is closed cleanly.
    let reopened = db.reopen().await;
    let unfinished = reopened.unfinished_inbound("a").await.unwrap();
    let got: Vec<(i64, InboundState, i64)> = unfinished
        .iter()
        .map(|r| (r.id, r.state.clone(), r.attempts))
        .collect();
    assert_eq!(
        got,
        vec![
            (ids[1], InboundState::Processing, 1),
            (ids[2], InboundState::Pending, 0)
        ]
    );
    let row = &unfinished[1];
    assert_eq!(row.account, "a");
    assert_eq!(row.event_id, "e3");
    assert_eq!(row.message_id.as_deref(), Some("m3"));
    assert_eq!(row.event_type, "im.message.receive_v1");
    assert_eq!(row.chat_id.as_deref(), Some("oc_chat"));
    assert_eq!(row.payload, r#"{"event_id":"e3"}"#);
    assert_eq!(row.received_at_ms, 1_000);
    // Dedup survives the restart too: the platform redelivers e2.
    let redelivered = reopened
        .insert_inbound(&[event("a", "e2", Some("m2"))])
        .await
        .unwrap();
    assert_eq!(redelivered, vec![InsertOutcome::Duplicate]);
    // New rows get new ids, never reused ones.
    let next = reopened
        .insert_inbound(&[event("a", "e9", None)])
        .await
        .unwrap();
    assert!(inserted_id(next[0]) > ids[3]);
}

async fn states_and_attempts(db: &TestDb) {
    let s = &db.store;
    let out = s
        .insert_inbound(&[event("a", "e1", None), event("a", "e2", None)])
        .await
        .unwrap();
    let (id1, id2) = (inserted_id(out[0]), inserted_id(out[1]));
    s.set_inbound_state(id1, InboundState::Dropped("stale".into()))
        .await
        .unwrap();
    s.set_inbound_state(id2, InboundState::Failed("agent timed out".into()))
        .await
        .unwrap();
    let row1 = s.get_inbound(id1).await.unwrap().unwrap();
    let row2 = s.get_inbound(id2).await.unwrap().unwrap();
    assert_eq!(row1.state, InboundState::Dropped("stale".into()));
    assert_eq!(row2.state, InboundState::Failed("agent timed out".into()));
    assert!(s.unfinished_inbound("a").await.unwrap().is_empty());
    assert_eq!(s.begin_attempt(id1).await.unwrap(), 1);
    assert_eq!(s.begin_attempt(id1).await.unwrap(), 2);
    assert_eq!(
        s.get_inbound(id1).await.unwrap().unwrap().state,
        InboundState::Processing
    );
    assert!(matches!(
        s.set_inbound_state(id2 + 1000, InboundState::Done).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.begin_attempt(id2 + 1000).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.get_inbound(id2 + 1000).await.unwrap(), None);
}

async fn finish_turn_appends_history_and_closes_the_row(db: &TestDb) {
    let s = &db.store;
    let out = s
        .insert_inbound(&[event("a", "e1", Some("m1"))])
        .await
        .unwrap();
    let id = inserted_id(out[0]);
    assert_eq!(s.begin_attempt(id).await.unwrap(), 1);
    let turns = [("user", "question"), ("assistant", "answer")];
    let history = NewTurns {
        account: "a",
        session_key: "chat:oc_1",
        generation: 0,
        turns: &turns,
        created_ms: 5,
    };
    s.finish_turn(id, InboundState::Done, history)
        .await
        .unwrap();
    let row = s.get_inbound(id).await.unwrap().unwrap();
    assert_eq!(row.state, InboundState::Done);
    assert_eq!(row.attempts, 1);
    assert_eq!(
        s.history("a", "chat:oc_1", 0, 10).await.unwrap(),
        vec![
            ("user".to_string(), "question".to_string()),
            ("assistant".to_string(), "answer".to_string())
        ]
    );
    // No turns: only the state changes; a failure keeps its reason.
    let empty = NewTurns {
        turns: &[],
        ..history
    };
    s.finish_turn(id, InboundState::Failed("agent down".into()), empty)
        .await
        .unwrap();
    assert_eq!(
        s.get_inbound(id).await.unwrap().unwrap().state,
        InboundState::Failed("agent down".into())
    );
    assert_eq!(s.history("a", "chat:oc_1", 0, 10).await.unwrap().len(), 2);
    assert!(matches!(
        s.finish_turn(id + 1000, InboundState::Done, empty).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn prune_keeps_the_dedup_window(db: &TestDb) {
    let s = &db.store;
    let now = 10 * 24 * HOUR_MS;
    let mut old_done = event("a", "old-done", Some("m1"));
    old_done.received_at_ms = now - 25 * HOUR_MS;
    let mut old_pending = event("a", "old-pending", Some("m2"));
    old_pending.received_at_ms = now - 25 * HOUR_MS;
    let mut recent_done = event("a", "recent-done", Some("m3"));
    recent_done.received_at_ms = now - 2 * HOUR_MS;
    let out = s
        .insert_inbound(&[old_done, old_pending, recent_done])
        .await
        .unwrap();
    let ids: Vec<i64> = out.into_iter().map(inserted_id).collect();
    s.set_inbound_state(ids[0], InboundState::Done)
        .await
        .unwrap();
    s.set_inbound_state(ids[2], InboundState::Done)
        .await
        .unwrap();

    // Asking for one hour is raised to the 24 h minimum.
    assert_eq!(s.prune_inbound(now, HOUR_MS).await.unwrap(), 1);
    assert_eq!(s.get_inbound(ids[0]).await.unwrap(), None);
    assert!(
        s.get_inbound(ids[1]).await.unwrap().is_some(),
        "unfinished rows stay"
    );
    assert!(
        s.get_inbound(ids[2]).await.unwrap().is_some(),
        "recent rows stay"
    );
    let again = s
        .insert_inbound(&[event("a", "recent-done", None)])
        .await
        .unwrap();
    assert_eq!(again, vec![InsertOutcome::Duplicate]);
    assert_eq!(s.prune_inbound(now, MIN_DEDUP_WINDOW_MS).await.unwrap(), 0);

    // Much later everything finished is old, but the newest row stays, so a
    // new event never gets an id that was used before.
    s.set_inbound_state(ids[1], InboundState::Done)
        .await
        .unwrap();
    let much_later = now + 30 * 24 * HOUR_MS;
    assert_eq!(
        s.prune_inbound(much_later, MIN_DEDUP_WINDOW_MS)
            .await
            .unwrap(),
        1
    );
    assert!(s.get_inbound(ids[2]).await.unwrap().is_some());
    let next = s.insert_inbound(&[event("a", "next", None)]).await.unwrap();
    assert!(inserted_id(next[0]) > ids[2]);
}

async fn history_limit_and_reset(db: &TestDb) {
    let s = &db.store;
    assert_eq!(s.session_generation("a", "chat:oc_1").await.unwrap(), 0);
    // Several turns in one write keep their order.
    s.append_turns(
        "a",
        "chat:oc_1",
        0,
        &[("user", "t0"), ("assistant", "t1")],
        0,
    )
    .await
    .unwrap();
    s.append_turns(
        "a",
        "chat:oc_1",
        0,
        &[("user", "t2"), ("assistant", "t3"), ("user", "t4")],
        1,
    )
    .await
    .unwrap();
    s.append_turns("a", "chat:oc_1", 0, &[], 2).await.unwrap();
    s.append_turns("a", "chat:oc_2", 0, &[("user", "other chat")], 0)
        .await
        .unwrap();
    s.append_turns("b", "chat:oc_1", 0, &[("user", "other account")], 0)
        .await
        .unwrap();
    let last3 = s.history("a", "chat:oc_1", 0, 3).await.unwrap();
    let expect = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(r, t)| (r.to_string(), t.to_string()))
            .collect()
    };
    assert_eq!(
        last3,
        expect(&[("user", "t2"), ("assistant", "t3"), ("user", "t4")])
    );
    assert_eq!(s.history("a", "chat:oc_1", 0, 100).await.unwrap().len(), 5);
    assert!(s.history("a", "chat:oc_1", 0, 0).await.unwrap().is_empty());

    assert_eq!(s.reset_session("a", "chat:oc_1").await.unwrap(), 1);
    assert_eq!(s.session_generation("a", "chat:oc_1").await.unwrap(), 1);
    assert!(s.history("a", "chat:oc_1", 1, 10).await.unwrap().is_empty());
    s.append_turns("a", "chat:oc_1", 1, &[("user", "fresh")], 10)
        .await
        .unwrap();
    assert_eq!(
        s.history("a", "chat:oc_1", 1, 10).await.unwrap(),
        expect(&[("user", "fresh")])
    );
    assert_eq!(s.reset_session("a", "chat:oc_1").await.unwrap(), 2);
    // Other sessions and accounts are untouched.
    assert_eq!(s.session_generation("a", "chat:oc_2").await.unwrap(), 0);
    assert_eq!(s.session_generation("b", "chat:oc_1").await.unwrap(), 0);
}

fn created(outcome: PairingOutcome) -> store::Pairing {
    match outcome {
        PairingOutcome::Created(p) => p,
        other => panic!("expected Created, got {other:?}"),
    }
}

async fn pairing_limits_and_existing(db: &TestDb) {
    let s = &db.store;
    let now = 1_000_000;
    let p1 = created(
        s.create_pairing("a", "ou_1", "abcd2345", now, HOUR_MS, 3)
            .await
            .unwrap(),
    );
    assert_eq!(p1.code, "ABCD2345");
    assert_eq!(p1.expires_ms, now + HOUR_MS);
    created(
        s.create_pairing("a", "ou_2", "CODE0002", now + 1, HOUR_MS, 3)
            .await
            .unwrap(),
    );
    // The same sender asking again gets the same request back.
    let again = s
        .create_pairing("a", "ou_1", "NEWCODE1", now + 2, HOUR_MS, 3)
        .await
        .unwrap();
    assert_eq!(again, PairingOutcome::Existing(p1.clone()));
    created(
        s.create_pairing("a", "ou_3", "CODE0003", now + 3, HOUR_MS, 3)
            .await
            .unwrap(),
    );
    let fourth = s
        .create_pairing("a", "ou_4", "CODE0004", now + 4, HOUR_MS, 3)
        .await
        .unwrap();
    assert_eq!(fourth, PairingOutcome::TooMany);
    // The limit is per account.
    created(
        s.create_pairing("b", "ou_4", "CODE0005", now + 5, HOUR_MS, 3)
            .await
            .unwrap(),
    );
    // Codes are unique across accounts.
    let taken = s
        .create_pairing("b", "ou_5", "code0002", now + 6, HOUR_MS, 3)
        .await;
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");

    let listed: Vec<String> = s
        .list_pairings(Some("a"), now + 10)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.code)
        .collect();
    assert_eq!(listed, vec!["ABCD2345", "CODE0002", "CODE0003"]);
    assert_eq!(s.list_pairings(None, now + 10).await.unwrap().len(), 4);
}

async fn pairing_expiry(db: &TestDb) {
    let s = &db.store;
    let now = 1_000_000;
    for (i, open_id) in ["ou_1", "ou_2", "ou_3"].iter().enumerate() {
        created(
            s.create_pairing("a", open_id, &format!("CODE000{i}"), now, HOUR_MS, 3)
                .await
                .unwrap(),
        );
    }
    let later = now + HOUR_MS;
    assert!(s.list_pairings(Some("a"), later).await.unwrap().is_empty());
    // Expired requests do not count against the limit...
    created(
        s.create_pairing("a", "ou_4", "CODE0004", later, HOUR_MS, 3)
            .await
            .unwrap(),
    );
    // ...and an expired sender gets a fresh code.
    let renewed = created(
        s.create_pairing("a", "ou_1", "CODE0005", later, HOUR_MS, 3)
            .await
            .unwrap(),
    );
    assert_eq!(renewed.expires_ms, later + HOUR_MS);
    // An expired code cannot be approved.
    created(
        s.create_pairing("b", "ou_9", "SHORTTTL", later, 10, 3)
            .await
            .unwrap(),
    );
    assert_eq!(
        s.approve_pairing("SHORTTTL", later + 10).await.unwrap(),
        None
    );
    assert!(!s.is_approved("b", "ou_9").await.unwrap());
}

async fn pairing_approve_and_reject(db: &TestDb) {
    let s = &db.store;
    let now = 5_000;
    let p = created(
        s.create_pairing("a", "ou_1", "PAIRME22", now, HOUR_MS, 3)
            .await
            .unwrap(),
    );
    created(
        s.create_pairing("a", "ou_2", "REJECT33", now, HOUR_MS, 3)
            .await
            .unwrap(),
    );
    assert!(!s.is_approved("a", "ou_1").await.unwrap());

    let approved = s.approve_pairing("pairme22", now + 1).await.unwrap();
    assert_eq!(approved, Some(p));
    assert!(s.is_approved("a", "ou_1").await.unwrap());
    assert!(
        !s.is_approved("b", "ou_1").await.unwrap(),
        "approval is per account"
    );
    assert_eq!(s.approve_pairing("PAIRME22", now + 2).await.unwrap(), None);
    assert_eq!(
        s.approved_senders("a").await.unwrap(),
        vec!["ou_1".to_string()]
    );

    let rejected = s
        .reject_pairing("Reject33")
        .await
        .unwrap()
        .expect("pending");
    assert_eq!(rejected.open_id, "ou_2");
    assert_eq!(s.reject_pairing("REJECT33").await.unwrap(), None);
    assert!(!s.is_approved("a", "ou_2").await.unwrap());
    assert!(s
        .list_pairings(Some("a"), now + 3)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(s.approve_pairing("NOSUCHCD", now).await.unwrap(), None);
}

async fn concurrent_pairings_respect_the_limit(db: &TestDb) {
    let mut tasks = Vec::new();
    for i in 0..12 {
        let s = db.store.clone();
        tasks.push(tokio::spawn(async move {
            s.create_pairing(
                "a",
                &format!("ou_{i}"),
                &format!("RACE{i:04}"),
                1,
                HOUR_MS,
                3,
            )
            .await
            .unwrap()
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    let made = outcomes
        .iter()
        .filter(|o| matches!(o, PairingOutcome::Created(_)))
        .count();
    assert_eq!(made, 3, "{outcomes:?}");
    assert_eq!(db.store.list_pairings(Some("a"), 2).await.unwrap().len(), 3);
}

async fn sent_parts_by_uuid(db: &TestDb) {
    let s = &db.store;
    assert_eq!(s.sent_message("a", "u-1").await.unwrap(), None);
    s.record_sent("a", "u-1", "om_first", 1).await.unwrap();
    s.record_sent("a", "u-1", "om_second", 2).await.unwrap();
    assert_eq!(
        s.sent_message("a", "u-1").await.unwrap().as_deref(),
        Some("om_first")
    );
    assert_eq!(s.sent_message("b", "u-1").await.unwrap(), None);
}

async fn open_cards_until_closed(db: &TestDb) {
    let s = &db.store;
    s.open_card("a", 7, "card_1", "om_1", 10).await.unwrap();
    s.open_card("a", 8, "card_2", "", 20).await.unwrap();
    s.open_card("a", 99, "card_2", "om_2", 21).await.unwrap();
    s.open_card("b", 9, "card_3", "om_3", 30).await.unwrap();
    s.close_card("card_1").await.unwrap();
    s.close_card("card_unknown").await.unwrap();
    let open = db.reopen().await.open_cards("a").await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].card_id, "card_2");
    assert_eq!(open[0].account, "a");
    assert_eq!(open[0].inbound_id, 8);
    assert_eq!(open[0].message_id, "om_2");
    assert_eq!(open[0].created_ms, 20);
}

async fn kv_cache(db: &TestDb) {
    let s = &db.store;
    assert_eq!(s.kv_get("a", "bot_open_id").await.unwrap(), None);
    s.kv_set("a", "bot_open_id", "ou_bot1").await.unwrap();
    s.kv_set("a", "bot_open_id", "ou_bot2").await.unwrap();
    s.kv_set("b", "bot_open_id", "ou_other").await.unwrap();
    assert_eq!(
        s.kv_get("a", "bot_open_id").await.unwrap().as_deref(),
        Some("ou_bot2")
    );
    assert_eq!(
        s.kv_get("b", "bot_open_id").await.unwrap().as_deref(),
        Some("ou_other")
    );
}

#[tokio::test]
async fn the_configured_default_url_opens_beside_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("conf dir");
    let env = |name: &str| match name {
        "LARK_APP_ID" => Some("cli_x".to_string()),
        "LARK_APP_SECRET" => Some("s".to_string()),
        _ => None,
    };
    let loaded =
        larkgate::config::Config::from_str("", larkgate::config::Format::Toml, &base, &env)
            .unwrap();
    let s = store::open(&loaded.config.store.url).await.unwrap();
    s.kv_set("a", "k", "v").await.unwrap();
    assert!(base.join("larkgate.db").exists());
}

#[tokio::test]
async fn a_sqlite_file_is_checkpointed_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/gw.db", dir.path().display());
    let store = larkgate::store::SqlStore::open(&url).await.unwrap();
    // Checkpoints start every EVERY_ROWS rows, at most once per
    // MIN_INTERVAL: keep writing until two have run.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut i = 0;
    while store.background_checkpoints() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} background checkpoint(s) after {i} rows",
            store.background_checkpoints()
        );
        for _ in 0..64 {
            let row = event("a", &format!("ev{i}"), Some(&format!("om{i}")));
            store.insert_inbound(&[row]).await.unwrap();
            i += 1;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(i >= 2 * larkgate::store::CHECKPOINT_EVERY_ROWS, "{i} rows");
    let memory = larkgate::store::SqlStore::open("sqlite::memory:")
        .await
        .unwrap();
    memory
        .insert_inbound(&[event("a", "e", None)])
        .await
        .unwrap();
    assert_eq!(memory.background_checkpoints(), 0);
}

/// The inbox insert and the other writes run on the caller's thread only
/// when the database is free: while another connection holds the write lock
/// they take the async path, so the thread (here the only one) keeps running
/// other tasks, such as the one that will release the lock; reads go on.
#[tokio::test(flavor = "current_thread")]
async fn a_write_waits_for_another_writer_without_holding_the_thread() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.db");
    let store = store::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let first = store
        .insert_inbound(&[event("a", "e0", None)])
        .await
        .unwrap();
    let blocker = rusqlite::Connection::open(&path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let waiting = {
        let store = store.clone();
        tokio::spawn(async move { store.insert_inbound(&[event("a", "e1", Some("m1"))]).await })
    };
    // The other statements too: a write waits, a read goes on (WAL).
    let writing = {
        let store = store.clone();
        tokio::spawn(async move { store.kv_set("a", "k", "v").await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "the insert waits for the lock");
    assert!(!writing.is_finished(), "the write waits for the lock");
    assert_eq!(store.kv_get("a", "k").await.unwrap(), None);
    blocker.execute_batch("COMMIT").unwrap();
    let out = waiting.await.unwrap().unwrap();
    assert!(inserted_id(out[0]) > inserted_id(first[0]));
    writing.await.unwrap().unwrap();
    assert_eq!(store.kv_get("a", "k").await.unwrap().as_deref(), Some("v"));
    let again = store
        .insert_inbound(&[event("a", "e1", Some("m1"))])
        .await
        .unwrap();
    assert_eq!(again, vec![InsertOutcome::Duplicate]);
}

#[tokio::test]
async fn in_memory_store_keeps_its_data_between_calls() {
    let s = store::open("sqlite::memory:").await.unwrap();
    s.kv_set("a", "k", "v").await.unwrap();
    assert_eq!(s.kv_get("a", "k").await.unwrap().as_deref(), Some("v"));
    let out = s.insert_inbound(&[event("a", "e1", None)]).await.unwrap();
    inserted_id(out[0]);
}

#[tokio::test]
async fn unsupported_urls_are_refused() {
    let err = store::open("mysql://root@localhost/x").await.err().unwrap();
    assert!(matches!(err, StoreError::Url(_)), "{err}");
}
