//! Cost of recording deliveries in the inbox (SQLite file, WAL,
//! `synchronous=NORMAL`): a batch of 1 event and a batch of 64.
//!
//! Two measurements per batch size:
//! - `wall`: elapsed time per batch (criterion's usual clock);
//! - `cpu`: CPU time of the whole process per batch (all threads, including
//!   sqlx's SQLite workers), from `CLOCK_PROCESS_CPUTIME_ID` on Unix.
//!   Elsewhere it falls back to wall time.
//!
//! Throughput is set to the batch size, so criterion also prints events/s;
//! per-event cost = time / batch size.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use larkgate::store::{self, NewInbound, Store};

/// A message event of realistic size (about 1 KiB of JSON).
const PAYLOAD: &str = r#"{"schema":"2.0","header":{"event_id":"5e3702a84e847582be8db7fb73283c02","token":"v=","create_time":"1608725989000","event_type":"im.message.receive_v1","tenant_key":"736588c9260f175e","app_id":"cli_a1b2c3d4e5f6a7b8"},"event":{"sender":{"sender_id":{"union_id":"on_8ed6aa67826108097d9ee143816345","user_id":"e33ggbyz","open_id":"ou_84aad35d084aa403a838cf73ee18467"},"sender_type":"user","tenant_key":"736588c9260f175e"},"message":{"message_id":"om_5ce6d572455d361153b7cb51da133945","root_id":"om_5ce6d572455d361153b7cb5xxfsdfsdfdsf","parent_id":"om_5ce6d572455d361153b7cb5xxfsdfsdfdsf","create_time":"1609073151345","update_time":"1609073151345","chat_id":"oc_5ce6d572455d361153b7xx51da133945","thread_id":"omt_d4be107c616","chat_type":"group","message_type":"text","content":"{\"text\":\"@_user_1 hello, can you summarise the discussion above and list the open questions?\"}","mentions":[{"key":"@_user_1","id":{"union_id":"on_8ed6aa67826108097d9ee143816345","user_id":"e33ggbyz","open_id":"ou_84aad35d084aa403a838cf73ee18467"},"name":"Bot","tenant_key":"736588c9260f175e"}],"user_agent":"Mozilla/5.0"}}}"#;

static NEXT: AtomicU64 = AtomicU64::new(0);

fn batch(size: usize) -> Vec<NewInbound> {
    (0..size)
        .map(|_| {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            NewInbound {
                account: "default".into(),
                event_id: format!("5e3702a84e847582be8db7fb{n:08x}"),
                message_id: Some(format!("om_5ce6d572455d361153b7cb51{n:08x}")),
                event_type: "im.message.receive_v1".into(),
                chat_id: Some("oc_5ce6d572455d361153b7xx51da133945".into()),
                payload: PAYLOAD.into(),
                received_at_ms: 1_700_000_000_000,
                state: larkgate::store::InboundState::Pending,
            }
        })
        .collect()
}

/// CPU time consumed so far by every thread of this process
/// (`CLOCK_PROCESS_CPUTIME_ID`; `/proc/self/task/*/schedstat` lags for the
/// thread that is running, which now does the insert itself).
#[cfg(unix)]
fn process_cpu() -> Option<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

#[cfg(not(unix))]
fn process_cpu() -> Option<Duration> {
    None
}

/// Inserts `iters` batches of `size` and returns the CPU (or wall) time spent.
async fn insert_batches(store: &Arc<dyn Store>, size: usize, iters: u64, cpu: bool) -> Duration {
    let batches: Vec<Vec<NewInbound>> = (0..iters).map(|_| batch(size)).collect();
    let cpu_start = process_cpu().filter(|_| cpu);
    let wall_start = Instant::now();
    for b in &batches {
        let out = store.insert_inbound(b).await.expect("insert");
        debug_assert_eq!(out.len(), size);
    }
    match (cpu_start, process_cpu()) {
        (Some(start), Some(end)) => end.saturating_sub(start),
        _ => wall_start.elapsed(),
    }
}

fn bench_insert(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/bench.db", dir.path().display());
    let store = runtime.block_on(store::open(&url)).expect("open store");

    let mut group = c.benchmark_group("store_insert");
    group.measurement_time(Duration::from_secs(5));
    for size in [1usize, 64] {
        group.throughput(Throughput::Elements(size as u64));
        for (clock, cpu) in [("wall", false), ("cpu", true)] {
            group.bench_function(BenchmarkId::new(clock, size), |b| {
                b.iter_custom(|iters| runtime.block_on(insert_batches(&store, size, iters, cpu)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_insert);
criterion_main!(benches);
