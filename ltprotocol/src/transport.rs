//! The byte stream under a connection: plain TCP, or TLS over TCP (feature `tls`). Both run
//! the same [`connection::drive`]; plain TCP keeps its cheap borrowed halves.

#[cfg(feature = "tls")]
use futures::future::Either;
use tokio::net::TcpStream;

use crate::connection::{self, ConnectionHandle, DisconnectReason, LinkConfig, OutboxReceiver};
use crate::event::Handler;
use crate::protocol::Protocol;

/// An accepted or connected stream, ready for [`Transport::drive`].
#[derive(Debug)]
pub(crate) enum Transport {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP, its handshake done.
    #[cfg(feature = "tls")]
    Tls(Box<tokio_rustls::TlsStream<TcpStream>>),
}

impl Transport {
    /// Runs the connection over this stream; see [`connection::drive`]. A plain function
    /// choosing one of two futures, not an `async` block around them: the connection's task
    /// holds no layer of its own for it.
    pub(crate) fn drive<'a, P, H>(
        &'a mut self,
        handle: &'a ConnectionHandle,
        queue: &'a mut OutboxReceiver,
        handler: &'a H,
        config: &'a LinkConfig,
        on_ready: impl FnOnce() + 'a,
    ) -> impl Future<Output = DisconnectReason> + 'a
    where
        P: Protocol,
        H: Handler<P>,
    {
        // One call of `connection::drive` per stream kind: they differ in the reader and in
        // what has the final say on the reason.
        macro_rules! drive {
            ($reader:expr, $writer:expr, $explain:expr) => {
                connection::drive::<_, _, P, H>(
                    $reader, $writer, handle, queue, handler, config, on_ready, $explain,
                )
            };
        }
        match self {
            Self::Plain(stream) => {
                // Halves borrowed from the stream, not owned ones: no shared allocation.
                let (reader, writer) = stream.split();
                #[cfg(feature = "tls")]
                let plain = Either::Left(drive!(
                    crate::tls::Sniff::new(reader),
                    writer,
                    crate::tls::plain_reason
                ));
                #[cfg(not(feature = "tls"))]
                let plain = drive!(reader, writer, |reason, _, _| reason);
                plain
            }
            #[cfg(feature = "tls")]
            Self::Tls(stream) => {
                let (reader, writer) = tokio::io::split(&mut **stream);
                Either::Right(drive!(
                    crate::tls::EofAsClose(reader),
                    writer,
                    |reason, _, _| crate::tls::established_reason(reason)
                ))
            }
        }
    }
}
