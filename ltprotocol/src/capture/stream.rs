//! One connection's side of a capture: what its reads and writes hand to the capture's queue.
//!
//! Kept small and cheap: a connection without capture carries `None` and pays one check per
//! read or write; one with capture copies the bytes of each read or write into one record
//! (one allocation per batch, not per frame) and offers it to the bounded queue without
//! waiting. A full queue drops the record from the capture, never from the session, and
//! counts it.

use std::io::IoSlice;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use super::{Capture, MAX_SEGMENT};
use crate::transport::Addr;

/// The port of the listening end of a stream that has no IP addresses (Unix-domain, in
/// memory), in the capture.
pub(crate) const SYNTHETIC_SERVER_PORT: u16 = 1;
/// The port of the connecting end of such a stream.
pub(crate) const SYNTHETIC_CLIENT_PORT: u16 = 49_152;

/// The two ends of one captured stream, as the capture's TCP packets name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ends {
    pub(crate) client: SocketAddr,
    pub(crate) server: SocketAddr,
    /// The initial sequence numbers of each side.
    pub(crate) client_isn: u32,
    pub(crate) server_isn: u32,
}

/// What a record says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordKind {
    /// The connection opened: SYN, SYN-ACK, ACK.
    Open,
    /// Application bytes, in `payload`.
    Data,
    /// A graceful end of one direction.
    Fin,
    /// An abort.
    Rst,
}

/// One event of one connection, for the capture's writer.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) ends: Ends,
    pub(crate) kind: RecordKind,
    /// Sent by the connecting end (else by the listening end).
    pub(crate) from_client: bool,
    /// Since the Unix epoch.
    pub(crate) at: Duration,
    /// Bytes each end had sent before this record.
    pub(crate) client_sent: u64,
    pub(crate) server_sent: u64,
    /// Each end's FIN was recorded before this record (a FIN takes one sequence number).
    pub(crate) client_fin: bool,
    pub(crate) server_fin: bool,
    pub(crate) payload: Vec<u8>,
}

impl Record {
    /// How many packets the writer makes of it.
    pub(crate) fn packets(&self) -> u64 {
        match self.kind {
            RecordKind::Open => 3,
            RecordKind::Data => self.payload.len().div_ceil(MAX_SEGMENT) as u64,
            RecordKind::Fin | RecordKind::Rst => 1,
        }
    }
}

/// One connection's capture: its ends and the bytes each direction carried so far.
#[derive(Debug)]
pub(crate) struct StreamCapture {
    capture: Capture,
    ends: Ends,
    /// We are the listening end.
    server: bool,
    sent: u64,
    received: u64,
    fin_sent: bool,
    fin_received: bool,
}

impl StreamCapture {
    /// Starts capturing one connection (and records its opening). `server`: we accepted it.
    pub(crate) fn open(capture: &Capture, local: &Addr, peer: &Addr, server: bool) -> Self {
        let key = capture.shared.next_stream.fetch_add(1, Ordering::Relaxed) + 1;
        let (ours, theirs) = endpoints(local, peer, server, key);
        let (client, server_addr) = if server {
            (theirs, ours)
        } else {
            (ours, theirs)
        };
        // Deterministic, distinct per stream, never zero: easy to tell apart in Wireshark's
        // absolute numbers (it shows relative ones by default).
        let isn = |salt: u64| (key.wrapping_mul(0x9E37_79B9).wrapping_add(salt) as u32) | 1;
        let ends = Ends {
            client,
            server: server_addr,
            client_isn: isn(0x1000),
            server_isn: isn(0x8000_0000),
        };
        let mut stream = Self {
            capture: capture.clone(),
            ends,
            server,
            sent: 0,
            received: 0,
            fin_sent: false,
            fin_received: false,
        };
        stream.record(RecordKind::Open, false, Vec::new());
        stream
    }

    /// Bytes we read from the peer; empty at the end of the stream (the peer's FIN).
    pub(crate) fn received(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            if !self.fin_received {
                self.fin_received = true;
                self.record(RecordKind::Fin, false, Vec::new());
            }
            return;
        }
        self.record(RecordKind::Data, false, bytes.to_vec());
        self.received += bytes.len() as u64;
    }

    /// The first `written` bytes of `slices`, which the stream took.
    pub(crate) fn sent(&mut self, slices: &[IoSlice<'_>], written: usize) {
        if written == 0 {
            return;
        }
        let mut payload = Vec::with_capacity(written);
        for slice in slices {
            let room = written - payload.len();
            if room == 0 {
                break;
            }
            payload.extend_from_slice(slice.get(..room.min(slice.len())).unwrap_or_default());
        }
        self.record(RecordKind::Data, true, payload);
        self.sent += written as u64;
    }

    /// Our side was shut down gracefully (our FIN).
    pub(crate) fn shut_down(&mut self) {
        if !self.fin_sent {
            self.fin_sent = true;
            self.record(RecordKind::Fin, true, Vec::new());
        }
    }

    fn record(&mut self, kind: RecordKind, ours: bool, payload: Vec<u8>) {
        let at = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let from_client = ours != self.server;
        let (client_sent, server_sent) = if self.server {
            (self.received, self.sent)
        } else {
            (self.sent, self.received)
        };
        // The FIN being recorded now counts from the next record on.
        let fin_sent = self.fin_sent && (!ours || kind != RecordKind::Fin);
        let fin_received = self.fin_received && (ours || kind != RecordKind::Fin);
        let (client_fin, server_fin) = if self.server {
            (fin_received, fin_sent)
        } else {
            (fin_sent, fin_received)
        };
        self.capture.offer(Record {
            ends: self.ends,
            kind,
            from_client,
            at,
            client_sent,
            server_sent,
            client_fin,
            server_fin,
            payload,
        });
    }
}

impl Drop for StreamCapture {
    /// A connection that ends without our FIN was aborted: our RST.
    fn drop(&mut self) {
        if !self.fin_sent {
            self.record(RecordKind::Rst, true, Vec::new());
        }
    }
}

/// Our end's and the peer's addresses in the capture. TCP ends keep their real addresses (an
/// IPv4 one beside an IPv6 one is written IPv4-mapped); any other stream gets synthetic ones:
/// the listening end 127.0.0.1 port 1, the connecting end 127.1.X.Y port 49152, X.Y being
/// the stream's number in the capture (from 1, modulo 65,536).
fn endpoints(local: &Addr, peer: &Addr, server: bool, key: u64) -> (SocketAddr, SocketAddr) {
    match (local.as_tcp(), peer.as_tcp()) {
        (Some(ours), Some(theirs)) if ours.is_ipv4() == theirs.is_ipv4() => (ours, theirs),
        (Some(ours), Some(theirs)) => (mapped(ours), mapped(theirs)),
        _ => {
            let [_, _, _, _, _, _, x, y] = key.to_be_bytes();
            let listening = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), SYNTHETIC_SERVER_PORT);
            let connecting = SocketAddr::new(
                IpAddr::V4(Ipv4Addr::new(127, 1, x, y)),
                SYNTHETIC_CLIENT_PORT,
            );
            if server {
                (listening, connecting)
            } else {
                (connecting, listening)
            }
        }
    }
}

fn mapped(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(v4) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), addr.port()),
        IpAddr::V6(_) => addr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_streams_get_stable_synthetic_ends() {
        let unix = Addr::unix("/run/x.sock");
        let (ours, theirs) = endpoints(&unix, &Addr::Unix(None), true, 258);
        assert_eq!(ours, "127.0.0.1:1".parse().unwrap());
        assert_eq!(theirs, "127.1.1.2:49152".parse().unwrap());
        let (ours, theirs) = endpoints(&Addr::Unix(None), &unix, false, 258);
        assert_eq!(
            (theirs, ours),
            ("127.0.0.1:1".parse().unwrap(), theirs_client())
        );
    }

    fn theirs_client() -> SocketAddr {
        "127.1.1.2:49152".parse().unwrap()
    }

    #[test]
    fn mixed_families_are_mapped() {
        let v4 = Addr::Tcp("10.0.0.1:5".parse().unwrap());
        let v6 = Addr::Tcp("[::1]:6".parse().unwrap());
        let (ours, theirs) = endpoints(&v4, &v6, true, 1);
        assert_eq!(ours, "[::ffff:10.0.0.1]:5".parse().unwrap());
        assert_eq!(theirs, "[::1]:6".parse().unwrap());
    }
}
