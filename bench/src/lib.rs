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
//! the whole frame), or with `--layout u32` in `[length u32][type u8][body]` (for 1 MiB bodies).
//! The message types (DATA 1, END 2, REPORT 3, FANOUT 4, ECHO 5), their bodies and the figures
//! of the result line are written once, in [`ltp::bench_wire`], for these baselines and
//! `ltp bench` alike; [`wire`] re-exports them next to its [`Layout`](wire::Layout).

pub mod app;
pub mod cli;
pub mod conns;
pub mod drive;
pub mod outcome;
pub mod wire;
