//! Request/reply matching on a correlation header field (OpenFlow's `xid`): fresh ids, a table
//! of pending requests, timeouts, multi-part replies.
//!
//! A frame whose correlation value matches a pending request resolves it; every other frame
//! (asynchronous events, replies that came after their timeout) goes the ordinary way, to the
//! handler or the event stream. Nothing is dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::connection::{ConnectionId, SendError};
use crate::frame::Frame;
use crate::layout::{FieldId, HeaderLayout, Int};
use crate::message::DecodeError;

/// Default [`Correlation::timeout`]: 10 s, as tarpc's default deadline.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Which header field pairs replies with requests, and how ids are chosen.
///
/// ```
/// use ltprotocol::{Correlation, HeaderLayout};
/// let xid = Correlation::new(&HeaderLayout::openflow(), "xid").unwrap();
/// assert_eq!(xid.reserved, vec![0]);
/// assert!(Correlation::new(&HeaderLayout::ltprotocol(), "xid").is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Correlation {
    /// The field.
    pub field: FieldId,
    /// Ids never used for requests; default `[0]` (OpenFlow switches send asynchronous
    /// messages with xid 0).
    pub reserved: Vec<i128>,
    /// How long a request waits for its reply. Default: 10 s.
    pub timeout: Duration,
    int: Int,
}

impl Correlation {
    /// Correlation on the extra field `name` of `layout`; `None` if the layout has none.
    pub fn new(layout: &HeaderLayout, name: &str) -> Option<Self> {
        let field = layout.field(name)?;
        let int = layout.field_spec(field)?.int();
        Some(Self {
            field,
            reserved: vec![0],
            timeout: DEFAULT_REQUEST_TIMEOUT,
            int,
        })
    }
}

/// Why a request got no reply.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// No reply within the timeout. A reply that comes later goes to the ordinary message
    /// path.
    #[error("no reply to request {id} on connection {conn} within {after:?}")]
    TimedOut {
        /// The connection.
        conn: ConnectionId,
        /// The request's correlation id.
        id: i128,
        /// The timeout.
        after: Duration,
    },
    /// The connection ended before the reply came.
    #[error("connection {conn} ended before the reply to request {id}")]
    Disconnected {
        /// The connection.
        conn: ConnectionId,
        /// The request's correlation id.
        id: i128,
    },
    /// The server or client was not configured with a correlation field.
    #[error("no correlation field is configured for requests")]
    NoCorrelation,
    /// Every id is in flight.
    #[error("no free request id: {in_flight} requests in flight")]
    NoFreeId {
        /// How many requests are waiting.
        in_flight: usize,
    },
    /// The request could not be sent.
    #[error("cannot send the request")]
    Send(#[from] SendError),
    /// The reply does not decode as the protocol says.
    #[error("cannot decode the reply")]
    Decode(#[from] DecodeError),
}

#[derive(Debug)]
enum Waiter {
    One(oneshot::Sender<Frame>),
    Many(mpsc::Sender<Frame>),
}

#[derive(Debug, Default)]
struct TableState {
    next: i128,
    waiters: HashMap<i128, Waiter>,
}

/// The pending requests of one connection.
#[derive(Debug)]
pub(crate) struct RequestTable {
    pub(crate) config: Correlation,
    state: Mutex<TableState>,
    /// How many waiters there are, so that frames skip the lock when none is pending.
    active: AtomicUsize,
}

impl RequestTable {
    pub(crate) fn new(config: Correlation) -> Arc<Self> {
        Arc::new(Self {
            config,
            state: Mutex::new(TableState {
                next: 1,
                waiters: HashMap::new(),
            }),
            active: AtomicUsize::new(0),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, TableState> {
        // Every critical section leaves the map consistent, so a poisoned lock is usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A fresh id: not reserved, not in flight, within the field's range; wraps around.
    pub(crate) fn next_id(&self) -> Result<i128, RequestError> {
        let mut state = self.state();
        let int = self.config.int;
        let span = (int.max_value() - int.min_value()).min(1 << 20);
        for _ in 0..=span {
            let id = state.next;
            state.next = if id >= int.max_value() {
                int.min_value()
            } else {
                id + 1
            };
            if !self.config.reserved.contains(&id) && !state.waiters.contains_key(&id) {
                return Ok(id);
            }
        }
        Err(RequestError::NoFreeId {
            in_flight: state.waiters.len(),
        })
    }

    pub(crate) fn register_one(self: &Arc<Self>, id: i128) -> (oneshot::Receiver<Frame>, Pending) {
        let (tx, rx) = oneshot::channel();
        self.insert(id, Waiter::One(tx));
        (
            rx,
            Pending {
                table: self.clone(),
                id,
            },
        )
    }

    pub(crate) fn register_many(self: &Arc<Self>, id: i128) -> (mpsc::Receiver<Frame>, Pending) {
        let (tx, rx) = mpsc::channel(64);
        self.insert(id, Waiter::Many(tx));
        (
            rx,
            Pending {
                table: self.clone(),
                id,
            },
        )
    }

    fn insert(&self, id: i128, waiter: Waiter) {
        if self.state().waiters.insert(id, waiter).is_none() {
            self.active.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn remove(&self, id: i128) {
        if self.state().waiters.remove(&id).is_some() {
            self.active.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Whether any request is waiting (frames skip routing when none is).
    pub(crate) fn has_waiters(&self) -> bool {
        self.active.load(Ordering::Acquire) > 0
    }

    /// Hands `frame` to the request it answers; gives it back when it answers none.
    pub(crate) async fn route(&self, frame: Frame) -> Option<Frame> {
        if self.active.load(Ordering::Acquire) == 0 {
            return Some(frame);
        }
        let Some(id) = frame.fields.get(self.config.field) else {
            return Some(frame);
        };
        let many = {
            let mut state = self.state();
            match state.waiters.remove(&id) {
                None => return Some(frame),
                Some(Waiter::One(tx)) => {
                    self.active.fetch_sub(1, Ordering::AcqRel);
                    drop(state);
                    // A requester that gave up in the meantime: the reply is an ordinary
                    // message after all.
                    return tx.send(frame).err();
                }
                Some(Waiter::Many(tx)) => {
                    state.waiters.insert(id, Waiter::Many(tx.clone()));
                    tx
                }
            }
        };
        many.send(frame).await.err().map(|err| err.0)
    }

    /// Fails every pending request (the connection ended).
    pub(crate) fn clear(&self) {
        let mut state = self.state();
        let count = state.waiters.len();
        state.waiters.clear();
        self.active.fetch_sub(count, Ordering::AcqRel);
    }
}

/// Removes a request from the table when its future or stream is dropped: no leak.
#[derive(Debug)]
pub(crate) struct Pending {
    table: Arc<RequestTable>,
    pub(crate) id: i128,
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.table.remove(self.id);
    }
}

/// The replies to one multi-part request, from
/// [`ConnectionHandle::request_stream`](crate::ConnectionHandle::request_stream): every
/// frame with the request's id, until the caller's predicate says "last".
#[derive(Debug)]
pub struct ReplyStream {
    pub(crate) rx: mpsc::Receiver<Frame>,
    pub(crate) pending: Option<Pending>,
    pub(crate) conn: ConnectionId,
    pub(crate) timeout: Duration,
    pub(crate) is_last: fn(&Frame) -> bool,
}

impl ReplyStream {
    /// The next reply; `None` after the last one. The timeout applies to each reply.
    ///
    /// # Errors
    ///
    /// [`RequestError::TimedOut`] or [`RequestError::Disconnected`]; the stream then ends.
    pub async fn next(&mut self) -> Option<Result<Frame, RequestError>> {
        let pending = self.pending.as_ref()?;
        let id = pending.id;
        let result = match tokio::time::timeout(self.timeout, self.rx.recv()).await {
            Ok(Some(frame)) => {
                if (self.is_last)(&frame) {
                    self.pending = None;
                }
                Ok(frame)
            }
            Ok(None) => Err(RequestError::Disconnected {
                conn: self.conn,
                id,
            }),
            Err(_) => Err(RequestError::TimedOut {
                conn: self.conn,
                id,
                after: self.timeout,
            }),
        };
        if result.is_err() {
            self.pending = None;
        }
        Some(result)
    }
}
