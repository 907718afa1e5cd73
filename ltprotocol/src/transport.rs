//! The byte stream under a connection: plain TCP, or TLS over TCP (feature `tls`). Both run
//! the same [`connection::drive`]; plain TCP keeps its cheap borrowed halves.

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
    /// Runs the connection over this stream; see [`connection::drive`].
    /// (An `async move` block, not an `async fn`: one copy of each argument in the task.)
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn would keep a second copy of each argument in the task"
    )]
    pub(crate) fn drive<P, H>(
        &mut self,
        handle: &ConnectionHandle,
        queue: &mut OutboxReceiver,
        handler: &H,
        config: &LinkConfig,
        on_ready: impl FnOnce(),
    ) -> impl Future<Output = DisconnectReason>
    where
        P: Protocol,
        H: Handler<P>,
    {
        async move {
            match self {
                Self::Plain(stream) => {
                    // Halves borrowed from the stream, not owned ones: no shared allocation.
                    let (reader, writer) = stream.split();
                    #[cfg(feature = "tls")]
                    {
                        let mut reader = crate::tls::Sniff::new(reader);
                        let reason = connection::drive::<_, _, P, H>(
                            &mut reader,
                            writer,
                            handle,
                            queue,
                            handler,
                            config,
                            on_ready,
                        )
                        .await;
                        crate::tls::plain_reason(reason, &reader, handle)
                    }
                    #[cfg(not(feature = "tls"))]
                    {
                        connection::drive::<_, _, P, H>(
                            reader, writer, handle, queue, handler, config, on_ready,
                        )
                        .await
                    }
                }
                #[cfg(feature = "tls")]
                Self::Tls(stream) => {
                    let (reader, writer) = tokio::io::split(&mut **stream);
                    let reader = crate::tls::EofAsClose(reader);
                    let reason = connection::drive::<_, _, P, H>(
                        reader, writer, handle, queue, handler, config, on_ready,
                    )
                    .await;
                    crate::tls::established_reason(reason)
                }
            }
        }
    }
}
