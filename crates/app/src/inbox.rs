//! Group commit for the webhook inbox. A webhook must be durable before it is answered, and
//! one transaction per request tops out at a few thousand a second, bound by commits. So
//! requests hand their webhook to one writer, which commits whatever is waiting at that moment
//! in one transaction and then answers each request. It never waits for a batch to fill: a
//! lone webhook is committed at once, and under load the batches grow by themselves.

use switchboard_store::webhooks::WebhookEvent;
use switchboard_store::{Store, StoreError};
use tokio::sync::{mpsc, oneshot};

/// At most this many webhooks in one transaction.
const MAX_BATCH: usize = 1024;

type Waiting = (WebhookEvent, oneshot::Sender<Result<bool, StoreError>>);

pub(crate) struct Inbox {
    queue: mpsc::Sender<Waiting>,
}

impl Inbox {
    /// Starts the writer; it stops when the last handle is dropped.
    pub(crate) fn start(store: Store) -> Self {
        let (queue, waiting) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(write(store, waiting));
        Inbox { queue }
    }

    /// Stores a webhook once it is committed; false when the same body was stored before.
    pub(crate) async fn commit(&self, event: WebhookEvent) -> Result<bool, StoreError> {
        let (answer, answered) = oneshot::channel();
        if self.queue.send((event, answer)).await.is_err() {
            return Err(StoreError::Batch("the inbox writer has stopped".to_owned()));
        }
        answered
            .await
            .unwrap_or_else(|_| Err(StoreError::Batch("the inbox writer has stopped".to_owned())))
    }
}

async fn write(store: Store, mut waiting: mpsc::Receiver<Waiting>) {
    let mut batch: Vec<Waiting> = Vec::with_capacity(MAX_BATCH);
    while waiting.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let events: Vec<WebhookEvent> = batch.iter().map(|(e, _)| e.clone()).collect();
        match store.store_webhooks(&events).await {
            Ok(fresh) => {
                for ((_, answer), fresh) in batch.drain(..).zip(fresh) {
                    let _ = answer.send(Ok(fresh));
                }
            }
            Err(error) => {
                tracing::error!(?error, webhooks = batch.len(), "storing webhooks");
                let reason = format!("{error}");
                for (_, answer) in batch.drain(..) {
                    let _ = answer.send(Err(StoreError::Batch(reason.clone())));
                }
            }
        }
    }
}
