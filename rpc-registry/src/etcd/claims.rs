//! Claiming own nodes: every put of a node goes through here, batched, and only takes a node
//! that no other live lease holds.
//!
//! A claim is one nested transaction: put the node if it has no lease (missing, or written by
//! hand without one), else put it if it holds our lease, else read it to name its owner. A
//! writer task gathers the claims waiting at that moment (up to [`MAX_BATCH`] and
//! [`MAX_BATCH_BYTES`]) into one etcd transaction and keeps up to [`MAX_IN_FLIGHT`] of them
//! in flight, so 10,000 registrations cost about a hundred round trips, not 10,000.

use std::collections::HashSet;
use std::sync::Arc;

use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp, TxnOpResponse, TxnResponse};
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};

use super::endpoints::Endpoints;
use super::error::Failure;

/// Claims per transaction; etcd refuses more than 128 operations in one by default.
const MAX_BATCH: usize = 128;
/// Bytes of node values per transaction, well under etcd's 1.5 MiB request limit.
const MAX_BATCH_BYTES: usize = 512 * 1024;
/// Transactions in flight at once.
const MAX_IN_FLIGHT: usize = 4;
/// Claims queued for the writer before `claim` waits for room.
const QUEUE: usize = 4_096;

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Claimed {
    /// The node now holds our value on our lease, as of this store revision.
    Ours {
        /// The revision of the transaction that put it.
        revision: i64,
    },
    /// Another live lease holds the node; nothing was written.
    Taken {
        /// The owner's lease.
        lease: i64,
        /// The owner's value.
        value: String,
    },
}

struct Request {
    path: String,
    value: String,
    lease: i64,
    reply: oneshot::Sender<Result<Claimed, Failure>>,
}

/// The handle that sends claims to the writer task.
#[derive(Debug, Clone)]
pub(crate) struct Claims {
    queue: mpsc::Sender<Request>,
    label: String,
}

impl Claims {
    /// Starts the writer task; it ends when every handle is dropped.
    pub(crate) fn start(endpoints: Arc<Endpoints>) -> Claims {
        let (queue, requests) = mpsc::channel(QUEUE);
        let label = endpoints.label().to_string();
        tokio::spawn(writer(endpoints, requests));
        Claims { queue, label }
    }

    /// Puts `value` at `path` on `lease` unless another live lease holds the node.
    pub(crate) async fn claim(
        &self,
        path: &str,
        value: &str,
        lease: i64,
    ) -> Result<Claimed, Failure> {
        let (reply, answer) = oneshot::channel();
        let request = Request {
            path: path.to_string(),
            value: value.to_string(),
            lease,
            reply,
        };
        let gone = || Failure::Unreachable {
            endpoints: self.label.clone(),
            message: "the registry is shutting down".into(),
        };
        self.queue.send(request).await.map_err(|_| gone())?;
        answer.await.unwrap_or_else(|_| Err(gone()))
    }
}

async fn writer(endpoints: Arc<Endpoints>, mut requests: mpsc::Receiver<Request>) {
    let mut in_flight = FuturesUnordered::new();
    let mut carried: Option<Request> = None;
    let mut open = true;
    while open || !in_flight.is_empty() {
        tokio::select! {
            Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
            first = next_request(&mut carried, &mut requests), if open && in_flight.len() < MAX_IN_FLIGHT => {
                let Some(first) = first else {
                    open = false;
                    continue;
                };
                let batch = gather(first, &mut requests, &mut carried);
                in_flight.push(send_batch(Arc::clone(&endpoints), batch));
            }
        }
    }
}

async fn next_request(
    carried: &mut Option<Request>,
    requests: &mut mpsc::Receiver<Request>,
) -> Option<Request> {
    match carried.take() {
        Some(request) => Some(request),
        None => requests.recv().await,
    }
}

/// `first` and whatever else is waiting, within the limits; a second claim of a path already
/// in the batch waits for the next one (etcd refuses a transaction that puts a key twice).
fn gather(
    first: Request,
    requests: &mut mpsc::Receiver<Request>,
    carried: &mut Option<Request>,
) -> Vec<Request> {
    let mut bytes = first.value.len() + first.path.len();
    let mut paths = HashSet::from([first.path.clone()]);
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
        let Ok(request) = requests.try_recv() else {
            break;
        };
        if !paths.insert(request.path.clone()) {
            *carried = Some(request);
            break;
        }
        bytes += request.value.len() + request.path.len();
        batch.push(request);
    }
    batch
}

/// One claim as a nested transaction (see the module docs).
fn claim_txn(path: &str, value: &str, lease: i64) -> Txn {
    let put = || TxnOp::put(path, value, Some(PutOptions::new().with_lease(lease)));
    let ours_or_read = Txn::new()
        .when([Compare::lease(path, CompareOp::Equal, lease)])
        .and_then([put()])
        .or_else([TxnOp::get(path, None)]);
    Txn::new()
        // A missing key compares as lease 0, like a key put without a lease.
        .when([Compare::lease(path, CompareOp::Equal, 0)])
        .and_then([put()])
        .or_else([TxnOp::txn(ours_or_read)])
}

async fn send_batch(endpoints: Arc<Endpoints>, batch: Vec<Request>) {
    let txn = Txn::new().and_then(
        batch
            .iter()
            .map(|r| TxnOp::txn(claim_txn(&r.path, &r.value, r.lease)))
            .collect::<Vec<_>>(),
    );
    // Safe to repeat: a repeat of a claim that did commit finds our lease and puts again.
    let sent = endpoints
        .call(|mut client| {
            let txn = txn.clone();
            async move { client.txn(txn).await }
        })
        .await;
    match sent {
        Ok(response) => {
            let revision = response.header().map_or(0, |h| h.revision());
            let answers = response.op_responses();
            for (index, request) in batch.into_iter().enumerate() {
                let answer = answers
                    .get(index)
                    .and_then(|a| outcome(a, revision))
                    .ok_or_else(|| Failure::Unreachable {
                        endpoints: endpoints.label().to_string(),
                        message: "etcd answered a claim with an unexpected response".into(),
                    });
                let _ = request.reply.send(answer);
            }
        }
        Err(failure) => {
            for request in batch {
                let _ = request.reply.send(Err(failure.duplicate()));
            }
        }
    }
}

/// Reads one claim's answer out of the outer transaction's response.
fn outcome(answer: &TxnOpResponse, revision: i64) -> Option<Claimed> {
    let TxnOpResponse::Txn(claim) = answer else {
        return None;
    };
    if claim.succeeded() {
        return Some(Claimed::Ours { revision });
    }
    let nested = only_txn(claim)?;
    if nested.succeeded() {
        return Some(Claimed::Ours { revision });
    }
    match nested.op_responses().first()? {
        TxnOpResponse::Get(get) => {
            let kv = get.kvs().first()?;
            Some(Claimed::Taken {
                lease: kv.lease(),
                value: String::from_utf8_lossy(kv.value()).into_owned(),
            })
        }
        _ => None,
    }
}

fn only_txn(response: &TxnResponse) -> Option<TxnResponse> {
    match response.op_responses().into_iter().next()? {
        TxnOpResponse::Txn(nested) => Some(nested),
        _ => None,
    }
}
