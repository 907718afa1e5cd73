//! The words every part of the runtime shares: which connection ([`ConnectionId`]), why it
//! ended ([`DisconnectReason`], [`TimeoutKind`]), and why a frame could not be queued
//! ([`SendError`]).

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use crate::codec::{EncodeError, FrameError};
use crate::handshake::HandshakeError;
use crate::message::DecodeError;

/// A connection's number: unique for the life of its server or client, never reused.
///
/// ```
/// # use ltprotocol::ConnectionId;
/// assert_eq!(ConnectionId::new(7).to_string(), "#7");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(u64);

impl ConnectionId {
    /// An id with this number.
    pub const fn new(id: u64) -> Self {
        Self(id)
    }

    /// The number.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Why a connection ended. Shaped like quinn's `ConnectionError`: one variant per cause, each
/// carrying what explains it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The peer closed the connection between two frames.
    #[error("closed by peer")]
    PeerClosed,
    /// The byte stream broke the framing rules (bad length, or the stream ended mid-frame).
    #[error("protocol error")]
    Protocol(#[source] Arc<FrameError>),
    /// A frame of a known type carried a body that does not decode.
    #[error("undecodable message")]
    Decode(#[source] Arc<DecodeError>),
    /// Reading or writing failed.
    #[error("i/o error")]
    Io(#[source] Arc<io::Error>),
    /// The connection's outbox stayed full while a broadcast needed room: the peer does not
    /// read fast enough, so it was dropped rather than stalling everyone else.
    #[error("slow reader: outbox of {capacity} bytes full")]
    SlowReader {
        /// The outbox's capacity in bytes.
        capacity: usize,
    },
    /// The application closed the connection.
    #[error("closed locally")]
    Closed,
    /// The server or client is shutting down.
    #[error("shut down")]
    Shutdown,
    /// The application's handler panicked while handling this connection.
    #[error("handler panicked")]
    HandlerPanicked,
    /// The handshake failed.
    #[error("handshake failed")]
    Handshake(#[source] Arc<HandshakeError>),
    /// TLS failed: the handshake (a certificate rejected by us or by the peer, plain TCP on a
    /// TLS port, a timeout), or the TLS layer of an established connection. Which, is in the
    /// [`TlsError`](crate::tls::TlsError). Feature `tls`.
    #[cfg(feature = "tls")]
    #[error("TLS failed")]
    Tls(#[source] Arc<crate::tls::TlsError>),
    /// A timeout expired.
    #[error("{kind} timeout after {after:?}")]
    TimedOut {
        /// Which timeout.
        kind: TimeoutKind,
        /// Its setting.
        after: Duration,
    },
}

/// Which of the [`Timeouts`](crate::Timeouts) expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimeoutKind {
    /// A frame's header had started but the frame was not complete in time.
    FrameRead,
    /// Nothing arrived for the idle timeout.
    Idle,
    /// A write made no progress: the peer stopped reading.
    Write,
    /// The handshake did not finish in time.
    Handshake,
    /// A keepalive probe went unanswered: nothing arrived for the keepalive's idle time plus
    /// its timeout.
    Keepalive,
}

impl fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::FrameRead => "frame read",
            Self::Idle => "idle",
            Self::Write => "write",
            Self::Handshake => "handshake",
            Self::Keepalive => "keepalive",
        })
    }
}

/// Why a message could not be queued for sending.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The connection (or client) is closed: nothing more can be sent on it.
    #[error("connection {id} is closed")]
    Closed {
        /// The connection, or `#0` for a client that was closed.
        id: ConnectionId,
    },
    /// The outbox is full and the caller asked not to wait.
    #[error("outbox of connection {id} is full ({capacity} bytes)")]
    QueueFull {
        /// The connection.
        id: ConnectionId,
        /// The outbox's capacity in bytes.
        capacity: usize,
    },
    /// An [`EncodedFrame`](crate::EncodedFrame) made for another header layout than the
    /// connection's.
    #[error("frame for connection {id} was encoded for another header layout")]
    LayoutMismatch {
        /// The connection.
        id: ConnectionId,
    },
    /// The message cannot be encoded (too large for the length field or the outbound maximum,
    /// or a type or header field out of range); nothing was queued.
    #[error("cannot encode message")]
    Encode(#[from] EncodeError),
    /// [`send_fresh`](crate::ConnectionHandle::send_fresh) found no free correlation id:
    /// every one is in flight.
    #[error("connection {id} has no free correlation id (every one is in flight)")]
    NoFreeId {
        /// The connection.
        id: ConnectionId,
    },
}
