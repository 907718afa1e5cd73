//! The read path, and the one way a frame goes to the application.
//!
//! Bytes are read into one buffer. After each read the whole frames at its front are cut off
//! at once into a shared chunk, and each frame is taken where it lies in it: first a request
//! waiting for it, then the auto-reply rule, then the handler's [`inspect`](Handler::inspect),
//! and then it is decoded straight from the chunk into the protocol's message and handed to
//! [`Handler::message`], whose future is awaited in place: a message handled without waiting
//! costs no trip back to the connection's task. Only fields that keep bytes (an `Unknown`
//! body, a `Bytes` field) take a handle on the chunk.
//!
//! A kept handle keeps the whole chunk's allocation alive (up to [`MAX_READ`] and then
//! some). So the connection accounts for the chunks that bodies still hold after delivery;
//! past [`MAX_PINNED`] bytes of them, bodies are copied out instead (a small allocation each)
//! until the application lets go. 1,024 queued events of 16-byte bodies can therefore hold
//! about 1 MiB of read chunks, not 256 MiB.

use std::collections::VecDeque;
use std::io;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::time::Instant;

use super::handle::ConnectionHandle;
use super::options::ConnectionOptions;
use super::reason::{DisconnectReason, TimeoutKind};
use crate::codec::{FrameCodec, FrameError, NO_FIELDS, reserve_for_body};
use crate::frame::{Frame, FrameRef, HeaderFields, MessageType};
use crate::handler::{Handler, Inspected};
use crate::message::Body;
use crate::protocol::Protocol;
use crate::transport::{ReadHalf, Stream};

/// The first read of a connection that was idle reserves this much.
const INITIAL_READ: usize = 4 * 1024;
/// Reads grow (doubling while they fill the buffer) up to this much.
const MAX_READ: usize = 256 * 1024;
/// The read chunks that bodies kept by the application may hold alive, per connection,
/// before bodies are copied out of the chunk instead: four of the largest reads.
const MAX_PINNED: usize = 4 * MAX_READ;

/// What the read side keeps between busy periods: the timers' state.
#[derive(Debug)]
pub(super) struct ReadState {
    /// How much the next read reserves.
    read_size: usize,
    /// When bytes last arrived.
    last_arrival: Instant,
    /// When the first byte of the frame now being assembled arrived.
    partial_since: Option<Instant>,
    /// When the keepalive probe was sent, if one is unanswered.
    probe_sent: Option<Instant>,
    /// Read chunks that delivered bodies still hold: kept across busy periods, since an idle
    /// connection's bodies may still be held; boxed, and only while there are any.
    pinned: Option<Box<Pinned>>,
}

/// What the read loop waits for besides bytes.
#[derive(Debug, Clone, Copy)]
pub(super) enum Deadline {
    /// A timeout that ends the connection.
    Expire(TimeoutKind, Duration),
    /// Time to send the keepalive probe.
    Probe,
}

impl ReadState {
    pub(super) fn new() -> Self {
        Self {
            read_size: INITIAL_READ,
            last_arrival: Instant::now(),
            partial_since: None,
            probe_sent: None,
            pinned: None,
        }
    }

    /// The next deadline of the frame-read, idle and keepalive timers, the earliest first.
    pub(super) fn deadline(&self, options: &ConnectionOptions) -> Option<(Instant, Deadline)> {
        let mut deadline: Option<(Instant, Deadline)> = None;
        let mut consider = |at: Instant, what: Deadline| {
            if deadline.is_none_or(|(current, _)| at < current) {
                deadline = Some((at, what));
            }
        };
        let timeouts = options.timeouts;
        match self.partial_since {
            Some(since) => {
                if let Some(limit) = timeouts.frame_read {
                    consider(
                        since + limit,
                        Deadline::Expire(TimeoutKind::FrameRead, limit),
                    );
                }
            }
            None => {
                if let Some(limit) = timeouts.idle {
                    consider(
                        self.last_arrival + limit,
                        Deadline::Expire(TimeoutKind::Idle, limit),
                    );
                }
            }
        }
        if let Some(keepalive) = &options.keepalive {
            match self.probe_sent {
                None => consider(self.last_arrival + keepalive.idle, Deadline::Probe),
                Some(sent) => consider(
                    sent + keepalive.timeout,
                    Deadline::Expire(TimeoutKind::Keepalive, keepalive.idle + keepalive.timeout),
                ),
            }
        }
        deadline
    }

    /// Sends the keepalive probe and notes when.
    pub(super) fn probe(&mut self, handle: &ConnectionHandle, options: &ConnectionOptions) {
        self.probe_sent = Some(Instant::now());
        if let Some(keepalive) = &options.keepalive {
            // A message we originate: with correlation, a fresh id (OpenFlow: a fresh xid,
            // so that a reply or error for it can be told apart).
            let probe_fields = keepalive.probe.fields.clone();
            let fields = match handle.request_table() {
                Some(table) => table
                    .fresh_fields(probe_fields.clone())
                    .map_or(probe_fields, |(_, fields)| fields),
                None => probe_fields,
            };
            // A full outbox means traffic is flowing our way anyway.
            let _ = handle.try_send_with(&keepalive.probe, &fields);
        }
    }
}

/// The read side's working state while the connection is active: the read buffer, and the
/// frames a handshake set aside for the application.
#[derive(Debug, Default)]
pub(super) struct Input {
    pub(super) buf: BytesMut,
    pub(super) deferred: VecDeque<Frame>,
}

/// The read chunks that bodies delivered from them still hold, with what each keeps alive.
#[derive(Debug, Default)]
pub(super) struct Pinned {
    chunks: Vec<(Bytes, usize)>,
    total: usize,
}

impl Pinned {
    /// Forgets the chunks nothing else holds any more (freeing them); says whether those
    /// still held are within [`MAX_PINNED`].
    fn within_bound(&mut self) -> bool {
        if !self.chunks.is_empty() {
            self.chunks.retain(|(chunk, _)| !chunk.is_unique());
            self.total = self.chunks.iter().map(|(_, footprint)| footprint).sum();
        }
        self.total <= MAX_PINNED
    }

    /// Keeps an eye on `chunk`, which a delivered body still holds.
    fn watch(&mut self, chunk: Bytes, footprint: usize) {
        self.total += footprint;
        self.chunks.push((chunk, footprint));
    }
}

impl Input {
    /// Whether it holds anything the next busy period must see.
    pub(super) fn holds_anything(&self) -> bool {
        !self.buf.is_empty() || !self.deferred.is_empty()
    }
}

/// Takes frames to the application: the one delivery path.
pub(super) struct Delivery<'a, P, H> {
    pub(super) handle: &'a ConnectionHandle,
    pub(super) handler: &'a H,
    pub(super) options: &'a ConnectionOptions,
    pub(super) _protocol: PhantomData<fn() -> P>,
}

/// A frame that needs something awaited.
enum Next {
    /// The auto-reply rule answers it with this frame (boxed: a rare path, and the common
    /// one moves nothing large).
    Answer(Box<Frame>),
    /// Decode the frame of this type that starts at this offset of the chunk (it ends where
    /// the frames gone through end), and hand it to the handler.
    Deliver(usize, MessageType),
}

/// What becomes of a received frame before it is decoded.
enum Before {
    /// A request took it, or the handler's `inspect` consumed it: nothing more to do.
    Taken,
    /// The auto-reply rule answers it with this frame, instead of delivering it.
    Answer(Frame),
    /// Decode it and hand it to the handler.
    Deliver,
}

impl<P: Protocol, H: Handler<P>> Delivery<'_, P, H> {
    fn codec(&self) -> &FrameCodec {
        &self.options.codec
    }

    /// Delivers the frames a handshake set aside, in order.
    pub(super) async fn deliver_deferred(
        &self,
        frames: VecDeque<Frame>,
    ) -> Result<(), DisconnectReason> {
        for frame in frames {
            let body = Body::from_bytes(&frame.body);
            match self.before_decoding(frame.message_type, &frame.fields, body) {
                Before::Taken => continue,
                Before::Answer(reply) => self.answer(&reply).await,
                Before::Deliver => {
                    let message = self.decode(frame.message_type, body)?;
                    self.handler
                        .message(self.handle, message, &frame.fields)
                        .await;
                }
            }
        }
        Ok(())
    }

    /// Delivers every whole frame at the front of `buf`; says whether there was one.
    ///
    /// The buffer is frozen into one chunk for the delivery and taken back after it: whole,
    /// with its allocation and the start of the next frame in place, when no delivered body
    /// kept a piece of it (the usual case: nothing allocated or copied per read); otherwise
    /// the chunk is left to those who hold it (and counted in `pinned`) and the start of the
    /// next frame is copied into a buffer of its own.
    async fn deliver_buffered(
        &self,
        buf: &mut BytesMut,
        pinned: &mut Option<Box<Pinned>>,
    ) -> Result<bool, DisconnectReason> {
        // What a slice of the chunk keeps alive: the buffer's whole allocation.
        let footprint = buf.capacity();
        let share = match pinned {
            Some(held) => {
                let within = held.within_bound();
                if held.chunks.is_empty() {
                    *pinned = None;
                }
                within
            }
            None => true,
        };
        let chunk = std::mem::take(buf).freeze();
        let mut delivered = 0;
        let result = self.deliver_chunk(&chunk, &mut delivered, share).await;
        *buf = match chunk.try_into_mut() {
            Ok(mut reclaimed) => {
                reclaimed.advance(delivered);
                reclaimed
            }
            Err(chunk) => {
                let rest = BytesMut::from(chunk.get(delivered..).unwrap_or_default());
                pinned.get_or_insert_default().watch(chunk, footprint);
                rest
            }
        };
        result.map(|()| delivered > 0)
    }

    /// Delivers the whole frames at the front of `chunk`, counting their bytes in
    /// `delivered`, until a frame that is not all there; their bodies are shared with the
    /// chunk (`share`), or copied out once kept bodies hold too much. A bad header ends the
    /// connection, after the good frames before it.
    ///
    /// Frames that need nothing awaited (a request took it, `inspect` consumed it) are done in
    /// [`next_to_await`](Self::next_to_await)'s synchronous loop; the others are decoded and
    /// their message future awaited here, where it lies: a message handled without waiting
    /// goes straight on to the next frame.
    async fn deliver_chunk(
        &self,
        chunk: &Bytes,
        delivered: &mut usize,
        share: bool,
    ) -> Result<(), DisconnectReason> {
        let codec = self.codec();
        loop {
            let (start, message_type) = match self.next_to_await(chunk, delivered, share)? {
                None => return Ok(()),
                Some(Next::Answer(reply)) => {
                    self.answer(&reply).await;
                    continue;
                }
                Some(Next::Deliver(start, message_type)) => (start, message_type),
            };
            let frame = chunk.get(start..*delivered).unwrap_or_default();
            let fields = if codec.has_extra_fields() {
                codec.fields_of(frame).map_err(protocol_error)?
            } else {
                None
            };
            let body = frame.get(codec.layout().header_len()..).unwrap_or_default();
            let body = if share {
                Body::in_accounted_chunk(body, chunk)
            } else {
                Body::new(body)
            };
            let message = self.decode(message_type, body)?;
            let fields = fields.as_ref().unwrap_or(&NO_FIELDS);
            self.handler.message(self.handle, message, fields).await;
        }
    }

    /// Goes through the frames of `chunk` from `*delivered` on, counting their bytes there,
    /// until one needs something awaited (an auto-reply sent, a message delivered), which it
    /// returns; `None` at the first frame that is not all there. One tight synchronous loop,
    /// so that frames a request takes or `inspect` consumes cost no trip through the async
    /// delivery.
    #[inline(always)]
    fn next_to_await(
        &self,
        chunk: &Bytes,
        delivered: &mut usize,
        share: bool,
    ) -> Result<Option<Next>, DisconnectReason> {
        let codec = self.codec();
        let header_len = codec.layout().header_len();
        let plain = !codec.has_extra_fields();
        let mut at = *delivered;
        let next = loop {
            let rest = chunk.get(at..).unwrap_or_default();
            let (frame_len, message_type) = match codec.peek_usual(rest) {
                Some(head) => head,
                None => match codec.peek(rest) {
                    Ok(Some(head)) => head,
                    Ok(None) => break None,
                    Err(err) => {
                        *delivered = at;
                        return Err(protocol_error(err));
                    }
                },
            };
            let Some(frame) = rest.get(..frame_len) else {
                break None;
            };
            let fields = if plain {
                None
            } else {
                match codec.fields_of(frame) {
                    Ok(fields) => fields,
                    Err(err) => {
                        *delivered = at;
                        return Err(protocol_error(err));
                    }
                }
            };
            let start = at;
            at += frame_len;
            let body = frame.get(header_len..).unwrap_or_default();
            // No pinning ratio for shared bodies: the connection accounts for the chunks
            // they hold (`Pinned`).
            let body = if share {
                Body::in_accounted_chunk(body, chunk)
            } else {
                Body::new(body)
            };
            let before =
                self.before_decoding(message_type, fields.as_ref().unwrap_or(&NO_FIELDS), body);
            match before {
                Before::Taken => {}
                Before::Answer(reply) => break Some(Next::Answer(Box::new(reply))),
                Before::Deliver => break Some(Next::Deliver(start, message_type)),
            }
        };
        *delivered = at;
        Ok(next)
    }

    /// Counts a received frame and decides what becomes of it before decoding: a request
    /// waiting for it takes it; the auto-reply rule may answer it; the handler's `inspect`
    /// may consume it.
    #[inline(always)]
    fn before_decoding(
        &self,
        message_type: MessageType,
        fields: &HeaderFields,
        body: Body<'_>,
    ) -> Before {
        let handle = self.handle;
        handle.count_received();
        if let Some(table) = handle.request_table()
            && table.awaits(fields)
        {
            let owned = Frame {
                message_type,
                fields: fields.clone(),
                body: body.to_bytes(),
            };
            if table.route(owned).is_none() {
                return Before::Taken;
            }
        }
        let view = FrameRef {
            message_type,
            fields,
            body: body.as_slice(),
        };
        if let Some(rule) = &self.options.auto_reply
            && let Some(reply) = rule(view)
        {
            return Before::Answer(reply);
        }
        if self.handler.inspect(handle, view) == Inspected::Consumed {
            return Before::Taken;
        }
        Before::Deliver
    }

    /// Sends an auto-reply. Fails only when the connection is closing: no one to answer.
    async fn answer(&self, reply: &Frame) {
        let _ = self.handle.send_frame(reply).await;
    }

    /// Decodes a body into the protocol's message; one that does not decode ends the
    /// connection.
    #[inline(always)]
    fn decode(&self, message_type: MessageType, body: Body<'_>) -> Result<P, DisconnectReason> {
        let order = self.codec().layout().byte_order();
        P::decode(message_type, body, order).map_err(|err| DisconnectReason::Decode(Arc::new(err)))
    }
}

fn protocol_error(err: FrameError) -> DisconnectReason {
    DisconnectReason::Protocol(Arc::new(err))
}

/// Reads and delivers frames until the connection ends (its reason), or, when `quiet` is
/// watched, waits with an empty buffer for the stream to be readable.
pub(super) async fn read_loop<S, P, H>(
    reader: &mut ReadHalf<'_, S>,
    input: &mut Input,
    state: &mut ReadState,
    quiet: &AtomicBool,
    delivery: &Delivery<'_, P, H>,
) -> DisconnectReason
where
    S: Stream,
    P: Protocol,
    H: Handler<P>,
{
    let options = delivery.options;
    if !input.deferred.is_empty() {
        let frames = std::mem::take(&mut input.deferred);
        if let Err(reason) = delivery.deliver_deferred(frames).await {
            return reason;
        }
    }
    let buf = &mut input.buf;
    loop {
        let delivered = if buf.is_empty() {
            false
        } else {
            match delivery.deliver_buffered(buf, &mut state.pinned).await {
                Ok(delivered) => delivered,
                Err(reason) => return reason,
            }
        };
        if delivered {
            state.partial_since = None;
        }
        let next_frame = if buf.is_empty() {
            state.partial_since = None;
            if buf.capacity() > 0 {
                // Idle between frames: give the buffer back, so an idle connection costs
                // little.
                *buf = BytesMut::new();
                state.read_size = INITIAL_READ;
            }
            None
        } else {
            if state.partial_since.is_none() {
                state.partial_since = Some(state.last_arrival);
            }
            // Every whole frame was delivered: what is left starts a frame.
            delivery.codec().peek_len(buf).ok().flatten()
        };
        let deadline = state.deadline(options);
        let read_size = state.read_size;
        let fill = async {
            loop {
                if buf.capacity() == 0 {
                    // An idle connection holds no read buffer: it waits until bytes are there
                    // to read, when its stream can tell.
                    quiet.store(true, Ordering::Relaxed);
                    let ready = std::future::poll_fn(|cx| {
                        reader.poll_read_ready(cx).unwrap_or(Poll::Ready(Ok(())))
                    })
                    .await;
                    quiet.store(false, Ordering::Relaxed);
                    ready?;
                }
                reserve(buf, read_size, next_frame);
                let spare = buf.capacity() - buf.len();
                let read = std::future::poll_fn(|cx| {
                    match tokio_util::io::poll_read_buf(Pin::new(&mut *reader), cx, &mut *buf) {
                        // Ready was a guess (a new stream, say): with nothing buffered, the
                        // buffer goes back and the wait is for readiness again.
                        Poll::Pending
                            if buf.is_empty()
                                && reader.poll_read_ready(cx).is_some_and(|r| r.is_pending()) =>
                        {
                            *buf = BytesMut::new();
                            Poll::Ready(None)
                        }
                        Poll::Pending => Poll::Pending,
                        Poll::Ready(read) => Poll::Ready(Some(read)),
                    }
                })
                .await;
                if let Some(read) = read {
                    return read.map(|n| (n, spare));
                }
            }
        };
        let read: io::Result<(usize, usize)> = match deadline {
            Some((at, what)) => match tokio::time::timeout_at(at, fill).await {
                Ok(read) => read,
                Err(_) => match what {
                    Deadline::Expire(kind, after) => {
                        return DisconnectReason::TimedOut { kind, after };
                    }
                    Deadline::Probe => {
                        state.probe(delivery.handle, options);
                        continue;
                    }
                },
            },
            None => fill.await,
        };
        match read {
            Ok((0, _)) if buf.is_empty() => return DisconnectReason::PeerClosed,
            Ok((0, _)) => return protocol_error(cut_at_eof(delivery.codec(), buf)),
            Ok((n, spare)) => {
                state.last_arrival = Instant::now();
                state.probe_sent = None;
                if n == spare {
                    state.read_size = (state.read_size * 2).min(MAX_READ);
                }
            }
            Err(err) => return DisconnectReason::Io(Arc::new(err)),
        }
    }
}

/// Makes room for the next read: `read_size` when there is less than half of it, and, while
/// a large frame's body arrives, room for more of it as the codec's bound allows (a declared
/// length alone never reserves memory).
fn reserve(buf: &mut BytesMut, read_size: usize, next_frame: Option<usize>) {
    if buf.capacity() - buf.len() < read_size / 2 {
        buf.reserve(read_size);
    }
    if let Some(frame_len) = next_frame {
        reserve_for_body(buf, frame_len);
    }
}

/// Why the stream ended inside a frame: what arrived of it and what is missing.
fn cut_at_eof(codec: &FrameCodec, buf: &[u8]) -> FrameError {
    let received = buf.len();
    match codec.peek_len(buf) {
        Err(err) => err,
        Ok(None) => FrameError::Truncated {
            missing: codec.layout().header_len().saturating_sub(received),
            received,
            in_header: true,
        },
        Ok(Some(frame_len)) => FrameError::Truncated {
            missing: frame_len.saturating_sub(received),
            received,
            in_header: false,
        },
    }
}
