//! A keyed serial executor: one turn at a time per session, in order;
//! sessions concurrently; a bounded line per session; cancellation that
//! skips the line.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Runs one job; the token fires on `/stop` or shutdown.
pub type Runner<J> = Arc<dyn Fn(J, CancellationToken) -> BoxFuture<'static, ()> + Send + Sync>;

struct Slot<J> {
    waiting: VecDeque<J>,
    running: Option<CancellationToken>,
}

struct Inner<J> {
    slots: Mutex<HashMap<String, Slot<J>>>,
    runner: Runner<J>,
    limit: usize,
    tracker: TaskTracker,
}

/// What happened to a submitted job.
#[derive(Debug, PartialEq, Eq)]
pub enum Submitted<J> {
    /// It started at once.
    Running,
    /// It waits behind `ahead` jobs (the running one included).
    Queued {
        /// Jobs before it.
        ahead: usize,
    },
    /// The session's line is full; the job is handed back.
    Full(J),
    /// The executor is shutting down; the job is handed back.
    Closed(J),
}

/// What `/stop` did.
#[derive(Debug, PartialEq, Eq)]
pub struct StopOutcome<J> {
    /// A running turn was cancelled.
    pub cancelled: bool,
    /// Waiting jobs that were dropped, oldest first.
    pub dropped: Vec<J>,
}

/// One session's state, for `/status`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionStatus {
    /// A turn is running.
    pub running: bool,
    /// Jobs waiting behind it.
    pub waiting: usize,
}

/// The per-session serial executor. Cheap to clone.
pub struct Conversations<J> {
    inner: Arc<Inner<J>>,
}

impl<J> Clone for Conversations<J> {
    fn clone(&self) -> Self {
        Conversations {
            inner: self.inner.clone(),
        }
    }
}

impl<J: Send + 'static> Conversations<J> {
    /// An executor running jobs with `runner`, at most `limit` waiting per session.
    pub fn new(runner: Runner<J>, limit: usize) -> Conversations<J> {
        Conversations {
            inner: Arc::new(Inner {
                slots: Mutex::new(HashMap::new()),
                runner,
                limit,
                tracker: TaskTracker::new(),
            }),
        }
    }

    fn slots(&self) -> MutexGuard<'_, HashMap<String, Slot<J>>> {
        // A panic while holding this lock cannot leave the map half-updated
        // (every critical section is a few field writes), so poison is ignored.
        self.inner
            .slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `job` on session `key`, starting it at once when the session is idle.
    pub fn submit(&self, key: &str, job: J) -> Submitted<J> {
        if self.inner.tracker.is_closed() {
            return Submitted::Closed(job);
        }
        let mut slots = self.slots();
        let slot = slots.entry(key.to_string()).or_insert_with(|| Slot {
            waiting: VecDeque::new(),
            running: None,
        });
        if slot.running.is_none() {
            let token = CancellationToken::new();
            slot.running = Some(token.clone());
            drop(slots);
            self.spawn_worker(key.to_string(), job, token);
            return Submitted::Running;
        }
        if slot.waiting.len() >= self.inner.limit {
            return Submitted::Full(job);
        }
        slot.waiting.push_back(job);
        Submitted::Queued {
            ahead: slot.waiting.len(),
        }
    }

    fn spawn_worker(&self, key: String, first: J, token: CancellationToken) {
        let this = self.clone();
        self.inner.tracker.spawn(async move {
            let (mut job, mut token) = (first, token);
            loop {
                (this.inner.runner)(job, token).await;
                match this.next_job(&key) {
                    Some(next) => (job, token) = next,
                    None => break,
                }
            }
        });
    }

    /// The next waiting job of `key` with a fresh token, or `None` after
    /// removing the idle session.
    fn next_job(&self, key: &str) -> Option<(J, CancellationToken)> {
        let mut slots = self.slots();
        let slot = slots.get_mut(key)?;
        match slot.waiting.pop_front() {
            Some(job) => {
                let token = CancellationToken::new();
                slot.running = Some(token.clone());
                Some((job, token))
            }
            None => {
                slots.remove(key);
                None
            }
        }
    }

    /// Cancels the running turn of `key` and drops what waits behind it.
    pub fn stop(&self, key: &str) -> StopOutcome<J> {
        let mut slots = self.slots();
        let Some(slot) = slots.get_mut(key) else {
            return StopOutcome {
                cancelled: false,
                dropped: Vec::new(),
            };
        };
        let cancelled = slot.running.as_ref().is_some_and(|t| {
            let was_live = !t.is_cancelled();
            t.cancel();
            was_live
        });
        StopOutcome {
            cancelled,
            dropped: slot.waiting.drain(..).collect(),
        }
    }

    /// The state of session `key`.
    pub fn status(&self, key: &str) -> SessionStatus {
        self.slots()
            .get(key)
            .map(|s| SessionStatus {
                running: s.running.is_some(),
                waiting: s.waiting.len(),
            })
            .unwrap_or_default()
    }

    /// Sessions with a running turn, and jobs waiting in all sessions.
    pub fn load(&self) -> (usize, usize) {
        let slots = self.slots();
        let running = slots.values().filter(|s| s.running.is_some()).count();
        let waiting = slots.values().map(|s| s.waiting.len()).sum();
        (running, waiting)
    }

    /// Refuses new jobs from now on; running and waiting ones carry on.
    pub fn close(&self) {
        self.inner.tracker.close();
    }

    /// Cancels every running turn and drops every waiting job (returned).
    pub fn cancel_all(&self) -> Vec<J> {
        let mut slots = self.slots();
        let mut dropped = Vec::new();
        for slot in slots.values_mut() {
            if let Some(t) = &slot.running {
                t.cancel();
            }
            dropped.extend(slot.waiting.drain(..));
        }
        dropped
    }

    /// Waits until every worker has finished (call [`Conversations::close`] first).
    pub async fn wait(&self) {
        self.inner.tracker.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::sync::{mpsc, oneshot};

    /// A job that reports its start and waits for a release (or cancellation).
    struct Job {
        id: u32,
        release: oneshot::Receiver<()>,
    }

    fn executor(
        limit: usize,
    ) -> (
        Conversations<Job>,
        mpsc::UnboundedReceiver<(u32, &'static str)>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        let runner: Runner<Job> = Arc::new(move |job: Job, token: CancellationToken| {
            let tx = tx.clone();
            Box::pin(async move {
                let _ = tx.send((job.id, "start"));
                tokio::select! {
                    _ = job.release => { let _ = tx.send((job.id, "done")); }
                    _ = token.cancelled() => { let _ = tx.send((job.id, "cancelled")); }
                }
            })
        });
        (Conversations::new(runner, limit), rx)
    }

    fn job(id: u32) -> (Job, oneshot::Sender<()>) {
        let (tx, rx) = oneshot::channel();
        (Job { id, release: rx }, tx)
    }

    async fn next(rx: &mut mpsc::UnboundedReceiver<(u32, &'static str)>) -> (u32, &'static str) {
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("hang guard")
            .expect("open")
    }

    #[tokio::test]
    async fn one_turn_at_a_time_per_session_in_order() {
        let (c, mut rx) = executor(10);
        let (j1, r1) = job(1);
        let (j2, r2) = job(2);
        assert!(matches!(c.submit("a", j1), Submitted::Running));
        assert!(matches!(c.submit("a", j2), Submitted::Queued { ahead: 1 }));
        assert_eq!(next(&mut rx).await, (1, "start"));
        assert_eq!(
            c.status("a"),
            SessionStatus {
                running: true,
                waiting: 1
            }
        );
        r1.send(()).unwrap();
        assert_eq!(next(&mut rx).await, (1, "done"));
        assert_eq!(next(&mut rx).await, (2, "start"));
        r2.send(()).unwrap();
        assert_eq!(next(&mut rx).await, (2, "done"));
        c.close();
        c.wait().await;
        assert_eq!(c.status("a"), SessionStatus::default());
    }

    #[tokio::test]
    async fn sessions_run_concurrently() {
        let (c, mut rx) = executor(10);
        let (j1, _r1) = job(1);
        let (j2, r2) = job(2);
        c.submit("a", j1);
        c.submit("b", j2);
        let mut started = vec![next(&mut rx).await, next(&mut rx).await];
        started.sort();
        assert_eq!(started, vec![(1, "start"), (2, "start")]);
        r2.send(()).unwrap();
        assert_eq!(next(&mut rx).await, (2, "done"));
        assert_eq!(c.load(), (1, 0));
    }

    #[tokio::test]
    async fn full_line_hands_the_job_back() {
        let (c, _rx) = executor(1);
        let (j1, _r1) = job(1);
        let (j2, _r2) = job(2);
        let (j3, _r3) = job(3);
        c.submit("a", j1);
        c.submit("a", j2);
        assert!(matches!(
            c.submit("a", j3),
            Submitted::Full(Job { id: 3, .. })
        ));
    }

    #[tokio::test]
    async fn stop_cancels_the_running_turn_and_drops_the_line() {
        let (c, mut rx) = executor(10);
        let (j1, _r1) = job(1);
        let (j2, _r2) = job(2);
        c.submit("a", j1);
        c.submit("a", j2);
        assert_eq!(next(&mut rx).await, (1, "start"));
        let out = c.stop("a");
        assert!(out.cancelled);
        assert_eq!(
            out.dropped.iter().map(|j| j.id).collect::<Vec<_>>(),
            vec![2]
        );
        assert_eq!(next(&mut rx).await, (1, "cancelled"));
        c.close();
        c.wait().await;
        assert!(!c.stop("a").cancelled);
        let (j3, _r3) = job(3);
        assert!(matches!(c.submit("a", j3), Submitted::Closed(_)));
    }

    #[tokio::test]
    async fn cancel_all_for_shutdown() {
        let (c, mut rx) = executor(10);
        let (j1, _r1) = job(1);
        let (j2, _r2) = job(2);
        c.submit("a", j1);
        c.submit("a", j2);
        assert_eq!(next(&mut rx).await, (1, "start"));
        c.close();
        let dropped = c.cancel_all();
        assert_eq!(dropped.len(), 1);
        assert_eq!(next(&mut rx).await, (1, "cancelled"));
        c.wait().await;
    }
}
