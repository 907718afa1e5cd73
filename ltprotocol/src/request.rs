//! Request/reply matching on a correlation header field (OpenFlow's `xid`): fresh ids, a table
//! of pending requests, timeouts, multi-part replies.
//!
//! A frame whose correlation value matches a pending request resolves it; every other frame
//! (asynchronous events, replies that came after their timeout) goes the ordinary way, to the
//! handler or the event stream. Nothing is dropped.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

use crate::connection::{ConnectionHandle, ConnectionId, SendError};
use crate::frame::{Frame, HeaderFields};
use crate::layout::{FieldId, HeaderLayout, Int};
use crate::message::DecodeError;
use crate::protocol::Encode;

/// Default [`Correlation::timeout`]: 10 s, as tarpc's default deadline.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`Correlation::stream_deadline`]: 60 s for all the parts of one reply stream.
pub const DEFAULT_STREAM_DEADLINE: Duration = Duration::from_secs(60);
/// Default [`Correlation::max_stream_parts`]: 4,096 parts.
pub const DEFAULT_MAX_STREAM_PARTS: usize = 4096;
/// Default [`Correlation::max_stream_bytes`]: 16 MiB of part bodies.
pub const DEFAULT_MAX_STREAM_BYTES: usize = 16 * 1024 * 1024;

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
    /// How long a request waits for its reply, and a reply stream for each next part.
    /// Default: 10 s.
    pub timeout: Duration,
    /// How long a reply stream may last in all, from its request to its last part.
    /// Default: 60 s.
    pub stream_deadline: Duration,
    /// The most parts one reply stream takes. Default: 4,096.
    pub max_stream_parts: usize,
    /// The most body bytes one reply stream takes, all parts together. Default: 16 MiB.
    /// With the part limit, this bounds what a stream holds while the application does not
    /// take its parts: the connection never waits for it.
    pub max_stream_bytes: usize,
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
            stream_deadline: DEFAULT_STREAM_DEADLINE,
            max_stream_parts: DEFAULT_MAX_STREAM_PARTS,
            max_stream_bytes: DEFAULT_MAX_STREAM_BYTES,
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
    /// A reply stream passed [`Correlation::max_stream_parts`] or
    /// [`Correlation::max_stream_bytes`]; the parts past it went the ordinary way.
    #[error(
        "reply stream {id} on connection {conn} passed its limit of {max_parts} parts or \
         {max_bytes} bytes ({parts} parts, {bytes} bytes)"
    )]
    StreamTooLarge {
        /// The connection.
        conn: ConnectionId,
        /// The request's correlation id.
        id: i128,
        /// Parts received, the one over the limit included.
        parts: usize,
        /// Their body bytes.
        bytes: usize,
        /// The limit on parts.
        max_parts: usize,
        /// The limit on bytes.
        max_bytes: usize,
    },
}

#[derive(Debug)]
enum Waiter {
    One(oneshot::Sender<Frame>),
    Many(Arc<Parts>),
}

/// The parts of one reply stream that arrived and were not taken yet. Routing pushes without
/// ever waiting (the connection's reading must not depend on the application taking parts);
/// the stream's limits bound what it can hold.
#[derive(Debug, Default)]
pub(crate) struct Parts {
    state: Mutex<PartsState>,
    ready: Notify,
}

#[derive(Debug, Default)]
struct PartsState {
    frames: VecDeque<Frame>,
    /// Parts and body bytes received so far, taken or not.
    parts: usize,
    bytes: usize,
    end: Option<PartsEnd>,
}

/// Why no more parts will come.
#[derive(Debug, Clone, Copy)]
enum PartsEnd {
    /// The connection ended.
    Disconnected,
    /// The stream passed a limit with this many parts and bytes.
    TooLarge { parts: usize, bytes: usize },
}

impl Parts {
    fn state(&self) -> std::sync::MutexGuard<'_, PartsState> {
        // Every critical section is a push, a pop or a flag: consistent after a panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes one more part; `Err(frame)` when it passes a limit (the stream then ends).
    fn push(&self, frame: Frame, config: &Correlation) -> Result<(), Frame> {
        let mut state = self.state();
        let parts = state.parts + 1;
        let bytes = state.bytes.saturating_add(frame.body.len());
        if parts > config.max_stream_parts || bytes > config.max_stream_bytes {
            state.end = Some(PartsEnd::TooLarge { parts, bytes });
            drop(state);
            self.ready.notify_one();
            return Err(frame);
        }
        state.parts = parts;
        state.bytes = bytes;
        state.frames.push_back(frame);
        drop(state);
        self.ready.notify_one();
        Ok(())
    }

    fn end(&self, end: PartsEnd) {
        self.state().end.get_or_insert(end);
        self.ready.notify_one();
    }

    /// The next part, or why there is none.
    async fn next(&self) -> Result<Frame, PartsEnd> {
        loop {
            {
                let mut state = self.state();
                if let Some(frame) = state.frames.pop_front() {
                    return Ok(frame);
                }
                if let Some(end) = state.end {
                    return Err(end);
                }
            }
            // `notify_one` keeps a permit when nobody waits: no push is missed between the
            // check above and this wait.
            self.ready.notified().await;
        }
    }
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

    /// `fields` with the correlation field set to a [fresh id](Self::next_id), and that id:
    /// what every message this side originates with correlation carries.
    pub(crate) fn fresh_fields(
        &self,
        fields: HeaderFields,
    ) -> Result<(i128, HeaderFields), RequestError> {
        let id = self.next_id()?;
        Ok((id, fields.with(self.config.field, id)))
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

    pub(crate) fn register_many(self: &Arc<Self>, id: i128) -> (Arc<Parts>, Pending) {
        let parts = Arc::new(Parts::default());
        self.insert(id, Waiter::Many(parts.clone()));
        (
            parts,
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

    /// Whether a request waits for a frame with these header fields: only then is the frame
    /// routed (and an owned copy of it made).
    pub(crate) fn awaits(&self, fields: &HeaderFields) -> bool {
        if !self.has_waiters() {
            return false;
        }
        fields
            .get(self.config.field)
            .is_some_and(|id| self.state().waiters.contains_key(&id))
    }

    /// Hands `frame` to the request it answers; gives it back when it answers none (or when
    /// it is one part too many for its stream, which then ends). Never waits.
    pub(crate) fn route(&self, frame: Frame) -> Option<Frame> {
        if self.active.load(Ordering::Acquire) == 0 {
            return Some(frame);
        }
        let Some(id) = frame.fields.get(self.config.field) else {
            return Some(frame);
        };
        let mut state = self.state();
        match state.waiters.remove(&id) {
            None => Some(frame),
            Some(Waiter::One(tx)) => {
                self.active.fetch_sub(1, Ordering::AcqRel);
                drop(state);
                // A requester that gave up in the meantime: the reply is an ordinary message
                // after all.
                tx.send(frame).err()
            }
            Some(Waiter::Many(parts)) => match parts.push(frame, &self.config) {
                Ok(()) => {
                    state.waiters.insert(id, Waiter::Many(parts));
                    None
                }
                Err(frame) => {
                    // Over its limits: the stream ends, and this part and any later one with
                    // its id go the ordinary way.
                    self.active.fetch_sub(1, Ordering::AcqRel);
                    Some(frame)
                }
            },
        }
    }

    /// Fails every pending request (the connection ended).
    pub(crate) fn clear(&self) {
        let mut state = self.state();
        let count = state.waiters.len();
        for (_, waiter) in state.waiters.drain() {
            // A dropped oneshot sender tells its request; a stream is told here.
            if let Waiter::Many(parts) = waiter {
                parts.end(PartsEnd::Disconnected);
            }
        }
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
///
/// Bounded three ways, all set on the [`Correlation`]: each part must come within
/// [`timeout`](Correlation::timeout), the whole stream within
/// [`stream_deadline`](Correlation::stream_deadline), and it takes at most
/// [`max_stream_parts`](Correlation::max_stream_parts) parts and
/// [`max_stream_bytes`](Correlation::max_stream_bytes). Parts that arrive while the
/// application does not poll the stream wait in it, within those limits: the connection goes
/// on reading, answering and delivering everything else.
#[derive(Debug)]
pub struct ReplyStream {
    pub(crate) parts: Arc<Parts>,
    pub(crate) pending: Option<Pending>,
    pub(crate) conn: ConnectionId,
    pub(crate) timeout: Duration,
    /// When the whole stream must be over, and the setting that made it.
    pub(crate) deadline: (Instant, Duration),
    pub(crate) limits: (usize, usize),
    pub(crate) is_last: fn(&Frame) -> bool,
}

impl ReplyStream {
    /// The next reply; `None` after the last one.
    ///
    /// # Errors
    ///
    /// [`RequestError::TimedOut`] (a part later than the timeout, or the stream past its
    /// deadline: `after` says which), [`RequestError::Disconnected`] or
    /// [`RequestError::StreamTooLarge`]; the stream then ends.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a part that arrives while no call waits is kept for the next.
    pub async fn next(&mut self) -> Option<Result<Frame, RequestError>> {
        let pending = self.pending.as_ref()?;
        let id = pending.id;
        let conn = self.conn;
        let (stream_end, stream_deadline) = self.deadline;
        let part_end = Instant::now() + self.timeout;
        let (until, after) = if stream_end < part_end {
            (stream_end, stream_deadline)
        } else {
            (part_end, self.timeout)
        };
        let result = match tokio::time::timeout_at(until, self.parts.next()).await {
            Ok(Ok(frame)) => {
                if (self.is_last)(&frame) {
                    self.pending = None;
                }
                Ok(frame)
            }
            Ok(Err(PartsEnd::Disconnected)) => Err(RequestError::Disconnected { conn, id }),
            Ok(Err(PartsEnd::TooLarge { parts, bytes })) => Err(RequestError::StreamTooLarge {
                conn,
                id,
                parts,
                bytes,
                max_parts: self.limits.0,
                max_bytes: self.limits.1,
            }),
            Err(_) => Err(RequestError::TimedOut { conn, id, after }),
        };
        if result.is_err() {
            self.pending = None;
        }
        Some(result)
    }
}

/// The requests of a connection: sent with a fresh correlation id, answered by the frame that
/// carries it back.
impl ConnectionHandle {
    /// Like [`send`](Self::send), with the correlation field (see
    /// [`correlation`](crate::Builder::correlation)) set to a fresh id, which it returns:
    /// the one [`request`](Self::request) would take next, never 0 for OpenFlow's `xid` nor
    /// an id in flight. For a message this side originates without waiting for a reply (an
    /// OpenFlow FLOW_MOD, say): an error the peer returns for it carries that id, and so can be
    /// told from one for any other message. Without correlation it sends as `send` does and
    /// returns `None`.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send); [`SendError::NoFreeId`] when every id is in flight.
    pub async fn send_fresh<M: Encode + ?Sized>(&self, msg: &M) -> Result<Option<i128>, SendError> {
        let Some(table) = self.request_table() else {
            self.send(msg).await?;
            return Ok(None);
        };
        let (id, fields) = table
            .fresh_fields(HeaderFields::new())
            .map_err(|_| SendError::NoFreeId { id: self.id() })?;
        self.send_with(msg, &fields).await?;
        Ok(Some(id))
    }

    /// Sends `msg` with a fresh correlation id and waits for the frame carrying the same id
    /// (or an error message carrying it: it resolves the request as well). Frames that match
    /// no pending request go to the handler or event stream as usual.
    ///
    /// # Errors
    ///
    /// [`RequestError::NoCorrelation`] when the server or client has no correlation field;
    /// [`RequestError::TimedOut`] after the correlation's timeout;
    /// [`RequestError::Disconnected`] if the connection ends first; [`RequestError::Send`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future forgets the request; a late reply then goes the ordinary way.
    ///
    /// # Example
    ///
    /// A protocol of our own with a `seq` header field: the server answers type 1 with type
    /// 2 carrying the same `seq`, and announces itself (type 3) unprompted, which does not
    /// disturb the pairing. A keepalive probes a quiet server after a minute.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ltprotocol::{
    ///     ConnectionHandle, Correlation, Event, Frame, Handler, HeaderFields, HeaderLayout, Int,
    ///     Keepalive, MessageType, ReconnectingClient, Server, Unknown,
    /// };
    ///
    /// struct Answer;
    ///
    /// impl Handler<Unknown> for Answer {
    ///     async fn connected(&self, conn: &ConnectionHandle) {
    ///         let hello = Unknown { message_type: MessageType::new(3), body: "hi".into() };
    ///         let _ = conn.send(&hello).await;
    ///     }
    ///
    ///     async fn message(&self, conn: &ConnectionHandle, msg: Unknown, fields: &HeaderFields) {
    ///         let reply = Unknown { message_type: MessageType::new(2), body: msg.body };
    ///         let _ = conn.send_with(&reply, &fields).await; // same seq
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let layout = HeaderLayout::builder()
    ///     .length(0, Int::U16)
    ///     .message_type(2, Int::U8)
    ///     .field("seq", 3, Int::U32)
    ///     .build()?;
    /// let server = Server::<Unknown>::builder(layout.clone()).bind("127.0.0.1:0").await?;
    /// let serving = server.clone();
    /// tokio::spawn(async move { serving.serve(Answer).await });
    ///
    /// let (client, mut events) = ReconnectingClient::<Unknown>::builder(layout.clone())
    ///     .correlation(Correlation::new(&layout, "seq").unwrap())
    ///     .keepalive(Keepalive {
    ///         idle: Duration::from_secs(60),
    ///         timeout: Duration::from_secs(10),
    ///         probe: Frame::new(MessageType::new(4), bytes::Bytes::new()),
    ///     })
    ///     .connect(server.local_addr().to_string());
    /// let conn = client.wait_connected().await.unwrap();
    /// let ask = Unknown { message_type: MessageType::new(1), body: "42?".into() };
    /// let reply = conn.request(&ask).await?;
    /// assert_eq!((reply.message_type, &reply.body[..]), (MessageType::new(2), &b"42?"[..]));
    /// // The unsolicited hello went to the ordinary event stream.
    /// loop {
    ///     if let Some(Event::Message { message, .. }) = events.next().await {
    ///         assert_eq!(message.message_type, MessageType::new(3));
    ///         break;
    ///     }
    /// }
    /// client.close(Duration::from_secs(5)).await;
    /// server.shutdown(Duration::from_secs(5)).await;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn request<M: Encode + ?Sized>(&self, msg: &M) -> Result<Frame, RequestError> {
        let table = self.request_table().ok_or(RequestError::NoCorrelation)?;
        let timeout = table.config.timeout;
        self.request_timeout(msg, timeout).await
    }

    /// Like [`request`](Self::request), with its own timeout.
    ///
    /// # Errors
    ///
    /// As [`request`](Self::request).
    pub async fn request_timeout<M: Encode + ?Sized>(
        &self,
        msg: &M,
        timeout: Duration,
    ) -> Result<Frame, RequestError> {
        let table = self.request_table().ok_or(RequestError::NoCorrelation)?;
        let (id, fields) = table.fresh_fields(HeaderFields::new())?;
        let (rx, pending) = table.register_one(id);
        self.send_with(msg, &fields).await?;
        let conn = self.id();
        let reply = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(frame)) => Ok(frame),
            Ok(Err(_)) => Err(RequestError::Disconnected { conn, id }),
            Err(_) => Err(RequestError::TimedOut {
                conn,
                id,
                after: timeout,
            }),
        };
        drop(pending);
        reply
    }

    /// Sends `msg` with a fresh correlation id and returns every frame carrying that id, until
    /// `is_last` says a frame was the last (OpenFlow multipart replies without the MORE flag).
    ///
    /// # Errors
    ///
    /// As [`request`](Self::request), for sending.
    pub async fn request_stream<M: Encode + ?Sized>(
        &self,
        msg: &M,
        is_last: fn(&Frame) -> bool,
    ) -> Result<ReplyStream, RequestError> {
        let table = self.request_table().ok_or(RequestError::NoCorrelation)?;
        let (id, fields) = table.fresh_fields(HeaderFields::new())?;
        let (parts, pending) = table.register_many(id);
        let config = &table.config;
        let deadline = (
            Instant::now() + config.stream_deadline,
            config.stream_deadline,
        );
        self.send_with(msg, &fields).await?;
        Ok(ReplyStream {
            parts,
            pending: Some(pending),
            conn: self.id(),
            timeout: config.timeout,
            deadline,
            limits: (config.max_stream_parts, config.max_stream_bytes),
            is_last,
        })
    }
}
