//! Group commit. A write that must be durable before its caller goes on (a webhook before it
//! is answered, an inbound message before the next event of its customer) costs a transaction
//! of its own, and one transaction per write tops out at a few thousand a second, bound by
//! commits. So callers hand their write to one writer, which commits whatever is waiting at
//! that moment in one transaction and then answers each caller. It never waits for a batch to
//! fill: a lone write is committed at once, and under load the batches grow by themselves.

use std::future::Future;

use futures_util::FutureExt;

use switchboard_store::StoreError;
use tokio::sync::{mpsc, oneshot};

/// At most this many writes in one transaction, but for a gathered batch handed over whole.
const MAX_BATCH: usize = 1024;

type Waiting<T, R> = (T, oneshot::Sender<Result<R, StoreError>>);

/// Writes handed to a writer at once: one, or a gathered batch's.
type Unit<T, R> = Vec<Waiting<T, R>>;

pub(crate) struct GroupCommit<T, R> {
    queue: mpsc::Sender<Unit<T, R>>,
}

impl<T, R> Clone for GroupCommit<T, R> {
    fn clone(&self) -> Self {
        GroupCommit {
            queue: self.queue.clone(),
        }
    }
}

fn stopped() -> StoreError {
    StoreError::Batch("the group-commit writer has stopped".to_owned())
}

impl<T: Send + 'static, R: Send + 'static> GroupCommit<T, R> {
    /// Starts the writer; it stops when the last handle is dropped. `write` commits a batch in
    /// one transaction and answers for each item, in order; its own error fails them all.
    pub(crate) fn start<W, F>(write: W) -> Self
    where
        W: Fn(Vec<T>) -> F + Send + 'static,
        F: Future<Output = Result<Vec<Result<R, StoreError>>, StoreError>> + Send + 'static,
    {
        let (queue, waiting) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(write, waiting));
        GroupCommit { queue }
    }

    /// Waits until the write is committed, and answers what it came to.
    pub(crate) async fn commit(&self, item: T) -> Result<R, StoreError> {
        let (answer, answered) = oneshot::channel();
        self.hand_over(vec![(item, answer)]).await;
        answered.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// Hands writes to the writer in one piece, so that they are committed together. Answers
    /// go to each write's own sender.
    async fn hand_over(&self, writes: Unit<T, R>) {
        if let Err(mpsc::error::SendError(writes)) = self.queue.send(writes).await {
            for (_, answer) in writes {
                let _ = answer.send(Err(stopped()));
            }
        }
    }
}

/// Writes from tasks that run side by side (the lanes of a batch of webhooks), handed to the
/// writer together. Left to the group commit alone, the first write to arrive would find
/// the writer idle and be committed by itself, and the rest of the batch in a second
/// transaction after it; here each write waits until every task is waiting on one too, or
/// done, and then all go at once. Its tasks run side by side in one future (they are dropped
/// together or not at all: a task dropped alone would be waited for still).
pub(crate) struct Gather<T, R> {
    commit: GroupCommit<T, R>,
    state: std::sync::Mutex<Gathering<T, R>>,
}

struct Gathering<T, R> {
    /// Tasks neither waiting on a write nor done.
    running: usize,
    waiting: Unit<T, R>,
}

impl<T: Send + 'static, R: Send + 'static> Gather<T, R> {
    /// For `tasks` tasks, all running.
    pub(crate) fn new(commit: GroupCommit<T, R>, tasks: usize) -> Self {
        Gather {
            commit,
            state: std::sync::Mutex::new(Gathering {
                running: tasks,
                waiting: Vec::new(),
            }),
        }
    }

    /// As [`GroupCommit::commit`], once every other task waits too or is done.
    pub(crate) async fn commit(&self, item: T) -> Result<R, StoreError> {
        let (answer, answered) = oneshot::channel();
        let ready = self.step(|g| {
            g.waiting.push((item, answer));
            g.running = g.running.saturating_sub(1);
        });
        if let Some(writes) = ready {
            self.commit.hand_over(writes).await;
        }
        answered.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// Tells that a task is done: it will write no more.
    pub(crate) async fn done(&self) {
        if let Some(writes) = self.step(|g| g.running = g.running.saturating_sub(1)) {
            self.commit.hand_over(writes).await;
        }
    }

    /// Changes the count, and takes the waiting writes when no task is running any more:
    /// their tasks run again from then, as their answers come.
    fn step(&self, change: impl FnOnce(&mut Gathering<T, R>)) -> Option<Unit<T, R>> {
        let mut g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        change(&mut g);
        if g.running > 0 || g.waiting.is_empty() {
            return None;
        }
        g.running = g.waiting.len();
        Some(std::mem::take(&mut g.waiting))
    }
}

async fn run<T, R, W, F>(write: W, mut waiting: mpsc::Receiver<Unit<T, R>>)
where
    W: Fn(Vec<T>) -> F,
    F: Future<Output = Result<Vec<Result<R, StoreError>>, StoreError>>,
{
    while let Some(first) = waiting.recv().await {
        let mut writes = first;
        while writes.len() < MAX_BATCH {
            match waiting.try_recv() {
                Ok(unit) => writes.extend(unit),
                Err(_) => break,
            }
        }
        let (items, answers): (Vec<T>, Vec<_>) = writes.into_iter().unzip();
        let count = items.len();
        // A panic in one batch must not stop the writer: every later write would fail.
        let written = std::panic::AssertUnwindSafe(write(items))
            .catch_unwind()
            .await;
        let written = written
            .unwrap_or_else(|_| Err(StoreError::Batch("writing the batch panicked".to_owned())));
        match written {
            Ok(results) if results.len() == count => {
                for (answer, result) in answers.into_iter().zip(results) {
                    let _ = answer.send(result);
                }
            }
            Ok(results) => {
                tracing::error!(
                    count,
                    answered = results.len(),
                    "a batch answered the wrong count"
                );
                for answer in answers {
                    let _ = answer.send(Err(StoreError::Batch(
                        "the batch answered the wrong number of writes".to_owned(),
                    )));
                }
            }
            Err(error) => {
                tracing::error!(?error, count, "a batched write failed");
                let reason = error.to_string();
                for answer in answers {
                    let _ = answer.send(Err(StoreError::Batch(reason.clone())));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer that answers each write with itself and notes the size of every batch.
    fn writer() -> (GroupCommit<u32, u32>, Arc<Mutex<Vec<usize>>>) {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let noted = batches.clone();
        let commit = GroupCommit::start(move |items: Vec<u32>| {
            let noted = noted.clone();
            async move {
                noted.lock().unwrap().push(items.len());
                Ok(items.into_iter().map(Ok).collect())
            }
        });
        (commit, batches)
    }

    #[tokio::test]
    async fn a_lone_write_is_committed_at_once() {
        let (commit, batches) = writer();
        assert_eq!(commit.commit(7).await.unwrap(), 7);
        assert_eq!(*batches.lock().unwrap(), vec![1]);
    }

    #[tokio::test]
    async fn gathered_writes_wait_for_every_task_and_go_together() {
        let (commit, batches) = writer();
        let gather = Arc::new(Gather::new(commit, 3));
        let (go, went) = oneshot::channel::<()>();
        let first = tokio::spawn({
            let gather = gather.clone();
            async move { gather.commit(1).await }
        });
        let second = tokio::spawn({
            let gather = gather.clone();
            async move { gather.commit(2).await }
        });
        // The third task writes nothing: until it is done, the other two wait.
        let third = tokio::spawn({
            let gather = gather.clone();
            async move {
                went.await.unwrap();
                gather.done().await;
            }
        });
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert!(batches.lock().unwrap().is_empty(), "committed too soon");
        assert!(!first.is_finished() && !second.is_finished());
        go.send(()).unwrap();
        third.await.unwrap();
        assert_eq!(first.await.unwrap().unwrap(), 1);
        assert_eq!(second.await.unwrap().unwrap(), 2);
        assert_eq!(*batches.lock().unwrap(), vec![2]);
    }

    #[tokio::test]
    async fn a_task_writing_again_waits_for_the_next_round() {
        let (commit, batches) = writer();
        let gather = Arc::new(Gather::new(commit, 2));
        let twice = tokio::spawn({
            let gather = gather.clone();
            async move {
                let a = gather.commit(1).await.unwrap();
                let b = gather.commit(2).await.unwrap();
                gather.done().await;
                (a, b)
            }
        });
        let once = tokio::spawn({
            let gather = gather.clone();
            async move {
                let c = gather.commit(3).await.unwrap();
                gather.done().await;
                c
            }
        });
        assert_eq!(twice.await.unwrap(), (1, 2));
        assert_eq!(once.await.unwrap(), 3);
        // The first round holds one write of each; the second, the first task's alone.
        assert_eq!(*batches.lock().unwrap(), vec![2, 1]);
    }

    #[tokio::test]
    async fn tasks_done_without_writing_commit_nothing() {
        let (commit, batches) = writer();
        let gather = Gather::new(commit, 2);
        gather.done().await;
        gather.done().await;
        assert!(batches.lock().unwrap().is_empty());
    }
}
