//! The parsers behind the `ltp` command, as a library so that fuzz targets reach them, and
//! the bench wire protocol that `ltp bench` shares with the baselines of `bench/`.
//!
//! # Layout
//!
//! * [`layout_file`]: `--layout`, a preset name or a TOML file → a
//!   [`HeaderLayout`](ltprotocol::HeaderLayout).
//! * [`schema`]: `--schema`, a built-in or TOML [`Schema`](schema::Schema) naming message
//!   types and their body fields, to decode bodies into JSON and encode them back.
//! * [`json`]: the JSON lines: input lines → [`Frame`](ltprotocol::Frame)s, received frames →
//!   `message` events, any event → a line of text.
//! * [`dissector`]: `ltp dissector`, a Wireshark Lua dissector written from a layout and a
//!   schema.
//! * [`duration`]: durations on the command line (`500ms`, `2s`, `1m`, or plain seconds).
//! * [`lines`]: input lines with a length limit, an over-long one skipped up to its newline.
//! * [`error`]: [`ConfigError`], one line naming the file, line and problem.
//! * [`bench_wire`]: the message types and bodies of the bench wire protocol, and the figures
//!   every bench implementation's result line computes alike (latency percentiles, resident
//!   memory).
//!
//! Nothing here does I/O but reading the named configuration file, the reader given to
//! [`lines::LineReader`] and, for [`bench_wire::vm_rss`], `/proc/PID/status`.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]
#![doc(test(no_crate_inject, attr(deny(warnings))))]

pub mod bench_wire;
pub mod dissector;
pub mod duration;
pub mod error;
pub mod json;
pub mod layout_file;
pub mod lines;
pub mod schema;

pub use error::ConfigError;
