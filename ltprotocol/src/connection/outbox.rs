//! The outbox: the frames queued for one connection (for a client, for whichever of its
//! connections is up), bounded in bytes.
//!
//! Frames are kept as the bytes that will be written. A message sent with room to spare is
//! encoded straight into the open batch buffer, under the queue's lock: no buffer of its own,
//! no copy, and the batch is what the writer writes. A frame already encoded (a broadcast's,
//! encoded once for every connection) is queued as a handle to its `Bytes`, a reference count
//! rather than a copy: a broadcast to a thousand connections writes a thousand 32-byte
//! handles, not a thousand copies of the frame into a thousand cold buffers, and the kernel
//! copies the frame from one place when the writer gathers the handles into a vectored write.
//! The writer takes everything queued at once; only the first frame queued after a take wakes
//! it.
//!
//! Room is a byte budget: a frame holds its size in it, but never more than the whole budget
//! (a frame larger than the outbox is accepted when the outbox is empty), until the writer
//! confirms it written. While no sender waits, the budget is counted under the queue's lock,
//! in the same critical section that queues the frame. A sender that finds no room joins a
//! semaphore, the wait queue that serves waiting senders in order: while any waits, the room
//! the writer gives back is handed to the semaphore, and a new sender queues behind them
//! instead of taking it; the last one to leave takes what the semaphore still holds back.
//!
//! No frame boundary is recorded per frame: where the writer needs one (a write the kernel took
//! in part, to confirm the frames it took whole), it reads the frame's length from its header.
//! A frame never straddles two segments.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use bytes::{Buf, Bytes, BytesMut};
use futures::task::AtomicWaker;
use tokio::sync::Semaphore;

use super::reason::{ConnectionId, SendError};
use crate::codec::FrameCodec;
use crate::frame::HeaderFields;
use crate::layout::HeaderLayout;
use crate::protocol::Encode;

/// The sending end of a connection's queue: shared by every handle of the connection (or of
/// the client), cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Outbox {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// The frames queued and the room left: what a sender with room touches, under one lock.
    state: Mutex<State>,
    /// The wait queue of senders that found no room, served in order. It holds no permit
    /// while no sender waits; boxed, and made when the first sender joins it: an outbox
    /// that never filled (every idle connection's, most of all) holds a null pointer.
    waiting: OnceLock<Box<Semaphore>>,
    capacity: usize,
    /// Wakes the task that drains this outbox (one task: a connection's, or a client's):
    /// the first frame after a take, a close, an abort. A registered waker, not a `Notify`:
    /// waiting costs the task no future of its own.
    ready: AtomicWaker,
    /// Set (under the state's lock) once the receiving end is closed: nothing is queued after.
    closed: AtomicBool,
    /// Set when the senders are done (a client closing): nothing more is accepted, and the
    /// connection draining this outbox writes what is queued and closes.
    draining: AtomicBool,
}

/// What the lock guards.
#[derive(Debug)]
struct State {
    /// The frames queued: boxed, and only while there are any (an idle connection's outbox
    /// holds a null pointer).
    queue: Option<Box<Queue>>,
    /// The room (bytes) not held by frames, nor handed to the wait queue.
    room: usize,
    /// Senders in the wait queue, from joining it until they queue their frame or give up:
    /// while there are any, room goes to them, in order.
    waiters: usize,
}

/// The frames queued and not yet taken by the writer.
#[derive(Debug, Default)]
struct Queue {
    /// How many frames, and their bytes and room, in all.
    totals: Totals,
    /// Their bytes, in order: the segments (each a closed batch or one shared frame), then
    /// `open`.
    segments: VecDeque<Bytes>,
    /// The batch small frames are encoded into.
    open: BytesMut,
}

/// A run of frames: how many, their bytes, and the room (permits) they hold in the outbox.
#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    frames: usize,
    bytes: usize,
    permits: usize,
}

/// Why a frame was not queued at once.
#[derive(Debug)]
pub(crate) enum NotQueued {
    /// No room now for a frame of this many bytes.
    Full(usize),
    /// It cannot be queued at all.
    Failed(SendError),
}

impl From<SendError> for NotQueued {
    fn from(err: SendError) -> Self {
        Self::Failed(err)
    }
}

/// The room a frame of `len` bytes holds: its size, but never more than the whole budget.
#[inline]
fn permits_for(len: usize, capacity: usize) -> usize {
    len.min(capacity)
}

/// The length of the frame at the front of `bytes`, read from its header, within `bytes`;
/// the whole of `bytes` if the header cannot say (never so for a frame we encoded: a segment
/// ends where a frame does, so this errs on the side of confirming later).
fn frame_len(layout: &HeaderLayout, bytes: &[u8]) -> usize {
    let field = layout.length_field();
    bytes
        .get(field.offset()..)
        .and_then(|at| field.int().read(at, layout.byte_order()))
        .and_then(|raw| usize::try_from(layout.frame_len_of(raw)).ok())
        .filter(|&len| len > 0 && len <= bytes.len())
        .unwrap_or(bytes.len())
}

/// A new outbox of `capacity` bytes, and its receiving end.
pub(crate) fn outbox(capacity: usize) -> (Outbox, OutboxReceiver) {
    // A waiting sender asks the semaphore for a u32 of permits.
    let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: None,
            room: capacity,
            waiters: 0,
        }),
        waiting: OnceLock::new(),
        capacity,
        ready: AtomicWaker::new(),
        closed: AtomicBool::new(false),
        draining: AtomicBool::new(false),
    });
    (Outbox { shared }, OutboxReceiver::default())
}

impl Outbox {
    #[inline]
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state whole: usable after a panic elsewhere.
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// The wait queue, made now if no sender has waited yet.
    fn wait_queue(&self) -> &Semaphore {
        self.shared
            .waiting
            .get_or_init(|| Box::new(Semaphore::new(0)))
    }

    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Accepts nothing more, and asks the connection draining it to write what is queued and
    /// close (a client closing); wakes it to look.
    pub(crate) fn drain(&self) {
        self.shared.draining.store(true, Ordering::Release);
        self.wake();
    }

    /// Whether [`drain`](Self::drain) was called.
    #[inline]
    pub(crate) fn is_draining(&self) -> bool {
        self.shared.draining.load(Ordering::Acquire)
    }

    /// Whether no frame is queued (frames taken by the writer are not counted).
    pub(crate) fn is_empty(&self) -> bool {
        self.lock()
            .queue
            .as_ref()
            .is_none_or(|queue| queue.totals.frames == 0)
    }

    /// Wakes the connection that drains this outbox, idle or writing, to look at its close and
    /// abort flags: whoever sets one calls this next.
    pub(crate) fn wake(&self) {
        self.shared.ready.wake();
    }

    /// Registers the draining task's waker, for [`wake`](Self::wake) and the first frame
    /// queued after a take. Register, then check what to wait for: a wake-up between the two
    /// is not lost.
    pub(crate) fn register(&self, cx: &mut std::task::Context<'_>) {
        self.shared.ready.register(cx.waker());
    }

    /// Encodes `msg` straight into the queue if there is room now.
    pub(crate) fn try_encode<M: Encode + ?Sized>(
        &self,
        codec: &FrameCodec,
        msg: &M,
        fields: &HeaderFields,
        id: ConnectionId,
    ) -> Result<(), NotQueued> {
        let mut guard = self.lock();
        if self.is_closed() {
            return Err(SendError::Closed { id }.into());
        }
        let state = &mut *guard;
        let queue = state.queue.get_or_insert_default();
        let start = queue.open.len();
        codec
            .encode_message_with(msg, fields, &mut queue.open)
            .map_err(SendError::from)?;
        let len = queue.open.len() - start;
        let permits = permits_for(len, self.shared.capacity);
        if state.waiters > 0 || state.room < permits {
            queue.open.truncate(start);
            return Err(NotQueued::Full(len));
        }
        state.room -= permits;
        let first = queue.count(len, permits);
        drop(guard);
        self.wake_if(first);
        Ok(())
    }

    /// Queues an encoded frame if there is room now.
    pub(crate) fn try_queue(&self, frame: &Bytes, id: ConnectionId) -> Result<(), NotQueued> {
        let mut state = self.lock();
        if self.is_closed() {
            return Err(SendError::Closed { id }.into());
        }
        let permits = permits_for(frame.len(), self.shared.capacity);
        if state.waiters > 0 || state.room < permits {
            return Err(NotQueued::Full(frame.len()));
        }
        state.room -= permits;
        let first = state.queue.get_or_insert_default().push(frame, permits);
        drop(state);
        self.wake_if(first);
        Ok(())
    }

    /// Queues an encoded frame, waiting for room.
    pub(crate) async fn queue(&self, frame: &Bytes, id: ConnectionId) -> Result<(), SendError> {
        match self.try_queue(frame, id) {
            Ok(()) => Ok(()),
            Err(NotQueued::Failed(err)) => Err(err),
            Err(NotQueued::Full(len)) => self.queue_when_room(frame, len, id).await,
        }
    }

    /// Encodes `msg` and queues it, waiting for room: straight into the queue when there is
    /// room, else into a buffer of its own that waits. `open` is the sender's own check, made
    /// first: the one future a handle's `send` returns, with no async layer of its own.
    pub(crate) async fn send<M: Encode + ?Sized>(
        &self,
        open: impl FnOnce() -> Result<(), SendError>,
        codec: &FrameCodec,
        msg: &M,
        fields: &HeaderFields,
        id: ConnectionId,
    ) -> Result<(), SendError> {
        open()?;
        match self.try_encode(codec, msg, fields, id) {
            Ok(()) => Ok(()),
            Err(NotQueued::Failed(err)) => Err(err),
            Err(NotQueued::Full(len)) => {
                let frame = codec.encode_to_bytes(msg, fields)?;
                // Boxed: the semaphore's wait is large and seldom needed, and this future
                // lives inside every handler future that sends.
                Box::pin(self.queue_when_room(&frame, len, id)).await
            }
        }
    }

    /// Waits in line for the room a frame of `len` bytes takes, then queues it.
    async fn queue_when_room(
        &self,
        frame: &Bytes,
        len: usize,
        id: ConnectionId,
    ) -> Result<(), SendError> {
        let permits = permits_for(len, self.shared.capacity);
        // `capacity` was clamped to u32::MAX in `outbox`, and `permits` is at most that.
        let permits = u32::try_from(permits).unwrap_or(u32::MAX);
        let mut waiter = Waiter::join(self, id)?;
        let permit = waiter
            .semaphore()
            .acquire_many(permits)
            .await
            .map_err(|_| SendError::Closed { id })?;
        let mut state = self.lock();
        if self.is_closed() {
            return Err(SendError::Closed { id });
        }
        permit.forget();
        let first = state
            .queue
            .get_or_insert_default()
            .push(frame, permits as usize);
        waiter.leave(&mut state);
        drop(state);
        self.wake_if(first);
        Ok(())
    }

    /// Gives back the room of frames written: to the senders waiting in line, if any.
    fn give_back(&self, permits: usize) {
        if permits == 0 {
            return;
        }
        let mut state = self.lock();
        if state.waiters > 0 {
            self.wait_queue().add_permits(permits);
        } else {
            state.room += permits;
        }
    }

    /// Wakes the writer for the first frame since it last took: it takes all it finds.
    #[inline]
    fn wake_if(&self, first: bool) {
        if first {
            self.shared.ready.wake();
        }
    }
}

/// A sender in the wait queue. Joining hands the room left to the semaphore; leaving (with
/// its frame queued, or dropped) as the last one takes back what the semaphore still holds.
struct Waiter<'a> {
    outbox: &'a Outbox,
    joined: bool,
}

impl<'a> Waiter<'a> {
    fn join(outbox: &'a Outbox, id: ConnectionId) -> Result<Self, SendError> {
        let mut state = outbox.lock();
        if outbox.is_closed() {
            return Err(SendError::Closed { id });
        }
        state.waiters += 1;
        let room = std::mem::take(&mut state.room);
        outbox.wait_queue().add_permits(room);
        Ok(Self {
            outbox,
            joined: true,
        })
    }

    /// The wait queue, borrowed from this waiter: the wait cannot outlive it, so a wait
    /// dropped half-served has given its permits back before the waiter leaves.
    fn semaphore(&self) -> &Semaphore {
        self.outbox.wait_queue()
    }

    fn leave(&mut self, state: &mut State) {
        if !std::mem::replace(&mut self.joined, false) {
            return;
        }
        state.waiters -= 1;
        if state.waiters == 0 {
            state.room += self.outbox.wait_queue().forget_permits(usize::MAX);
        }
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        if self.joined {
            let mut state = self.outbox.lock();
            self.leave(&mut state);
        }
    }
}

impl Queue {
    /// Appends an encoded frame whose room (`permits`) is taken; says whether it is the first
    /// since the writer last took.
    fn push(&mut self, frame: &Bytes, permits: usize) -> bool {
        if !self.open.is_empty() {
            self.segments.push_back(self.open.split().freeze());
        }
        self.segments.push_back(frame.clone());
        self.count(frame.len(), permits)
    }

    /// Counts a frame of `len` bytes just appended, holding `permits` of room; says whether
    /// it is the first since the writer last took.
    #[inline]
    fn count(&mut self, len: usize, permits: usize) -> bool {
        self.totals.frames += 1;
        self.totals.bytes += len;
        self.totals.permits += permits;
        self.totals.frames == 1
    }
}

/// The writer's end of an outbox: the frames taken from the queue and not yet confirmed
/// written (handed whole to the kernel). A client keeps it across its connections and writes
/// what it holds first on the next one. Boxed, and only while frames are taken: an idle
/// connection holds a null pointer.
#[derive(Debug, Default)]
pub(crate) struct OutboxReceiver {
    taken: Option<Box<Taken>>,
}

/// Frames taken from the queue and not yet confirmed written.
#[derive(Debug, Default)]
struct Taken {
    /// Their bytes; the first segment starts with the first unconfirmed frame.
    segments: VecDeque<Bytes>,
    /// Bytes of the first unconfirmed frame written on this connection.
    written: usize,
    /// How many frames, and their bytes and room, in all.
    totals: Totals,
}

impl OutboxReceiver {
    /// Frames queued or taken, not yet confirmed written.
    pub(crate) fn unsent(&self, outbox: &Outbox) -> usize {
        let taken = self.taken.as_ref().map_or(0, |taken| taken.totals.frames);
        let queued = outbox.lock().queue.as_ref().map_or(0, |q| q.totals.frames);
        taken + queued
    }

    /// Whether frames are taken and not yet confirmed.
    pub(crate) fn has_taken(&self) -> bool {
        self.taken
            .as_ref()
            .is_some_and(|taken| taken.totals.frames > 0)
    }

    /// Refuses further frames; those already queued can still be drained.
    pub(crate) fn close(&mut self, outbox: &Outbox) {
        let _state = outbox.lock();
        outbox.shared.closed.store(true, Ordering::Release);
        if let Some(waiting) = outbox.shared.waiting.get() {
            waiting.close();
        }
    }

    /// Starts a new connection: the first frame not confirmed is written again whole (the
    /// receiver discards a cut frame as truncated, so it is neither lost nor duplicated).
    pub(crate) fn restart(&mut self) {
        if let Some(taken) = &mut self.taken {
            taken.written = 0;
        }
    }

    /// Moves every queued frame behind those taken; false when nothing was queued.
    pub(crate) fn take(&mut self, outbox: &Outbox) -> bool {
        let mut state = outbox.lock();
        let Some(queue) = state.queue.as_mut().filter(|queue| queue.totals.frames > 0) else {
            return false;
        };
        let taken = self.taken.get_or_insert_default();
        if taken.segments.is_empty() {
            // The emptied deque becomes the queue's: no allocation per batch.
            std::mem::swap(&mut queue.segments, &mut taken.segments);
        } else {
            taken.segments.append(&mut queue.segments);
        }
        taken.totals.frames += queue.totals.frames;
        taken.totals.bytes += queue.totals.bytes;
        taken.totals.permits += queue.totals.permits;
        queue.totals = Totals::default();
        if !queue.open.is_empty() {
            // The rest of the buffer stays the queue's, for the next frames.
            taken.segments.push_back(queue.open.split().freeze());
        }
        true
    }

    /// What is left to write, in order: the rest of the first segment (it starts with the
    /// first unconfirmed frame), then each segment whole.
    pub(crate) fn unwritten(&self) -> impl Iterator<Item = &[u8]> {
        self.taken.iter().flat_map(|taken| {
            let segments = taken.segments.iter().enumerate();
            segments.filter_map(|(index, segment)| {
                let from = if index == 0 { taken.written } else { 0 };
                segment.get(from..).filter(|rest| !rest.is_empty())
            })
        })
    }

    /// Counts `count` more bytes written, and confirms the frames now written whole: their
    /// room is given back. Frames of `layout`: where the kernel took only part of what was
    /// taken, the frames it took whole are found by their headers.
    pub(crate) fn written(&mut self, outbox: &Outbox, layout: &HeaderLayout, count: usize) {
        let Some(taken) = &mut self.taken else {
            return;
        };
        taken.written += count;
        if taken.written >= taken.totals.bytes {
            // Everything taken is written (the usual case): confirmed at once.
            let permits = taken.totals.permits;
            taken.segments.clear();
            taken.written = 0;
            taken.totals = Totals::default();
            outbox.give_back(permits);
            return;
        }
        let capacity = outbox.shared.capacity;
        let mut released = 0usize;
        while let Some(segment) = taken.segments.front_mut() {
            // A frame lies within one segment, which starts with the first unconfirmed one.
            let len = frame_len(layout, segment);
            if len > taken.written {
                break;
            }
            segment.advance(len);
            if segment.is_empty() {
                taken.segments.pop_front();
            }
            taken.written -= len;
            let permits = permits_for(len, capacity);
            released += permits;
            taken.totals.frames -= 1;
            taken.totals.bytes -= len;
            taken.totals.permits -= permits;
        }
        outbox.give_back(released);
    }

    /// Waits until frames are queued and takes them (`false`), or until `closed` says so
    /// (`true`): whoever makes it say so wakes the outbox next.
    pub(crate) async fn take_or(&mut self, outbox: &Outbox, closed: impl Fn() -> bool) -> bool {
        std::future::poll_fn(|cx| {
            // Registered before the checks: a frame or a close after them wakes this task.
            outbox.register(cx);
            if self.take(outbox) {
                return std::task::Poll::Ready(false);
            }
            if closed() {
                return std::task::Poll::Ready(true);
            }
            std::task::Poll::Pending
        })
        .await
    }

    /// Gives back the queue's and the writer's buffers while they are empty: an idle
    /// connection holds none.
    pub(crate) fn release_buffers(&mut self, outbox: &Outbox) {
        if !self.has_taken() {
            self.taken = None;
        }
        let mut state = outbox.lock();
        if state
            .queue
            .as_ref()
            .is_some_and(|queue| queue.totals.frames == 0)
        {
            state.queue = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Shared;

    /// Every connection, idle or not, holds its outbox's shared part (see `connection`'s docs
    /// on what an idle connection holds): what only a full outbox needs is boxed when needed.
    #[test]
    fn an_outbox_holds_only_what_every_connection_uses() {
        let size = size_of::<Shared>();
        eprintln!("an outbox's shared part: {size} bytes");
        assert!(
            size <= 88,
            "an outbox's shared part is {size} bytes: over 88, every idle connection pays more"
        );
    }
}
