//! Claiming own nodes: every put of a node goes through here, batched, and only takes a node
//! that no other live lease holds.
//!
//! A claim is one nested transaction: put the node if it has no lease (missing, or written by
//! hand without one), else put it if it holds our lease, else read it to name its owner. A
//! writer task gathers the claims waiting at that moment (up to [`MAX_BATCH`] and
//! [`MAX_BATCH_BYTES`]) into one etcd transaction and keeps up to [`MAX_IN_FLIGHT`] of them
//! in flight, so 10,000 registrations cost about a hundred round trips, not 10,000.
//!
//! Claims of one path commit in the order they were made (a path is in at most one
//! transaction at a time), and a claim whose value is no longer the kept one is dropped
//! before it is sent: a re-put of every node on a new lease never lands an old value over a
//! newer register, nor brings back a node deregistered meanwhile.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp, TxnOpResponse, TxnResponse};
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};

use super::endpoints::Endpoints;
use super::error::Failure;
use super::own::OwnNodes;

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
    /// Nothing was written: the value is no longer the one kept for the path (a newer
    /// register or a deregister of it came after this claim, and decides).
    Superseded,
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
    pub(crate) fn start(endpoints: Arc<Endpoints>, own: Arc<OwnNodes>) -> Claims {
        let (queue, requests) = mpsc::channel(QUEUE);
        let label = endpoints.label().to_string();
        tokio::spawn(writer(endpoints, own, requests));
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

/// The writer's state: claims waiting their turn, and the paths with a transaction in flight.
struct Writer {
    endpoints: Arc<Endpoints>,
    own: Arc<OwnNodes>,
    /// Claims taken off the queue but not yet sent, oldest first.
    waiting: VecDeque<Request>,
    /// Paths with a claim in flight: a later claim of one waits, so claims of a path commit
    /// in the order they were made and an older value never lands over a newer one.
    busy: HashSet<String>,
}

async fn writer(
    endpoints: Arc<Endpoints>,
    own: Arc<OwnNodes>,
    mut requests: mpsc::Receiver<Request>,
) {
    let mut state = Writer {
        endpoints,
        own,
        waiting: VecDeque::new(),
        busy: HashSet::new(),
    };
    let mut in_flight = FuturesUnordered::new();
    let mut open = true;
    while open || !in_flight.is_empty() || !state.waiting.is_empty() {
        tokio::select! {
            Some(paths) = in_flight.next(), if !in_flight.is_empty() => {
                for path in paths {
                    state.busy.remove(&path);
                }
            }
            request = requests.recv(), if open && state.waiting.len() < QUEUE => match request {
                Some(request) => state.waiting.push_back(request),
                None => open = false,
            },
            // Nothing in flight means nothing busy, so nothing waiting is left unsent.
            else => break,
        }
        while state.waiting.len() < QUEUE {
            let Ok(request) = requests.try_recv() else {
                break;
            };
            state.waiting.push_back(request);
        }
        while in_flight.len() < MAX_IN_FLIGHT {
            let batch = state.gather();
            if batch.is_empty() {
                break;
            }
            in_flight.push(send_batch(Arc::clone(&state.endpoints), batch));
        }
    }
}

impl Writer {
    /// The oldest waiting claims that can go now, within the limits. A claim whose value is
    /// no longer the one kept (a newer register, or a deregister, came after it) is answered
    /// [`Claimed::Superseded`] without a write; a claim of a busy path, or of a path already
    /// in this batch, keeps its place (etcd refuses a transaction that puts a key twice).
    fn gather(&mut self) -> Vec<Request> {
        let mut batch = Vec::new();
        let mut bytes = 0;
        let mut held = VecDeque::with_capacity(self.waiting.len());
        while let Some(request) = self.waiting.pop_front() {
            if batch.len() >= MAX_BATCH || bytes >= MAX_BATCH_BYTES {
                held.push_back(request);
                continue;
            }
            if self.busy.contains(&request.path) {
                held.push_back(request);
                continue;
            }
            if !self.own.holds(&request.path, &request.value) {
                let _ = request.reply.send(Ok(Claimed::Superseded));
                continue;
            }
            bytes += request.value.len() + request.path.len();
            self.busy.insert(request.path.clone());
            batch.push(request);
        }
        self.waiting = held;
        batch
    }
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

/// Sends one batch and answers its claims; returns the batch's paths, no longer busy.
async fn send_batch(endpoints: Arc<Endpoints>, batch: Vec<Request>) -> Vec<String> {
    let paths = batch.iter().map(|r| r.path.clone()).collect();
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
    paths
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
