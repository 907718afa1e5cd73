//! Shared parts of the baselines that `bench/compare.sh` measures `ltprotocol` against: the
//! bench wire protocol, the command line, the client workloads and the result line.
//!
//! Two binaries use it, each speaking the protocol of `ltp bench` (see below) so that any
//! client drives any server:
//!
//! * `baseline-handrolled`: a tokio loop that reads into a `BytesMut`, parses the header by
//!   hand and writes through a 256 KiB `BufWriter` (clients) or a batching writer task fed by
//!   a bounded queue per connection (server, also the broadcaster).
//! * `baseline-lengthdelimited`: tokio-util's `LengthDelimitedCodec` in `FramedRead` /
//!   `FramedWrite`.
//!
//! A third, `baseline-rawtcp`, speaks no protocol at all: a sink that discards what it reads and
//! answers the byte count at end of stream, and a client writing 256 KiB chunks, the ceiling
//! for one-way bytes. It shares only the command line's pieces and the result line.
//!
//! # The bench wire protocol
//!
//! Frames in the default layout (`[length u16][type u8][body]`, big-endian, the length counting
//! the whole frame), or with `--layout u32` in `[length u32][type u8][body]` (for 1 MiB bodies):
//!
//! | type | name | body | server's answer |
//! |---:|---|---|---|
//! | 1 | DATA | opaque | counted; in echo mode also sent back unchanged |
//! | 2 | END | empty | REPORT of the DATA counted on this connection since it opened or since the last END, then the counters restart |
//! | 3 | REPORT | u64 count of DATA frames, u64 total DATA body bytes (big-endian) | (sent by the server) |
//! | 4 | FANOUT | u64 count, u32 body size (big-endian) | sends `count` DATA frames of `size` zero bytes to every *other* connection, then an END to each of them, then a REPORT to the sender: deliveries queued and their body bytes |
//! | 5 | ECHO | empty | none; from now on every DATA on this connection is echoed |
//!
//! Any other type is ignored. A client checks each REPORT against what it sent, so that a fast
//! wrong run cannot count.

pub mod app;
pub mod cli;
pub mod conns;
pub mod drive;
pub mod outcome;
pub mod wire;
