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

/// At most this many writes in one transaction.
const MAX_BATCH: usize = 1024;

type Waiting<T, R> = (T, oneshot::Sender<Result<R, StoreError>>);

pub(crate) struct GroupCommit<T, R> {
    queue: mpsc::Sender<Waiting<T, R>>,
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
        let stopped = || StoreError::Batch("the group-commit writer has stopped".to_owned());
        let (answer, answered) = oneshot::channel();
        if self.queue.send((item, answer)).await.is_err() {
            return Err(stopped());
        }
        answered.await.unwrap_or_else(|_| Err(stopped()))
    }
}

async fn run<T, R, W, F>(write: W, mut waiting: mpsc::Receiver<Waiting<T, R>>)
where
    W: Fn(Vec<T>) -> F,
    F: Future<Output = Result<Vec<Result<R, StoreError>>, StoreError>>,
{
    let mut batch: Vec<Waiting<T, R>> = Vec::with_capacity(MAX_BATCH);
    while waiting.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (items, answers): (Vec<T>, Vec<_>) = batch.drain(..).unzip();
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
