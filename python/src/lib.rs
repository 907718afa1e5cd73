//! `ltprotocol._native`: the native core of the Python package `ltprotocol-rs`.
//!
//! Servers and reconnecting clients of the Rust library `ltprotocol`, run on one tokio
//! runtime owned by this module, and handed to Python in batches. The pure-Python parts of
//! the package (the ancestor's Twisted API in `ltprotocol.ltprotocol`) sit on top; NATIVE.md
//! describes this module's classes and its threading contract.
//!
//! * [`runtime`]: the module's multi-threaded runtime; waiting on it releases the GIL;
//! * [`queue`]: the bounded queue of events and its wake-up socket (no GIL on the workers);
//! * [`forward`]: the library `Handler` that turns callbacks into queued events;
//! * [`dispatch`]: on the Python thread, a batch walked in Rust, calling Python's callables;
//! * [`flow`]: per-connection flow control (the asyncio API's bounded inboxes);
//! * [`layout`]: `Layout`, from struct codes, presets and TOML layout files;
//! * [`raw`]: a message as Python hands it over (type number, body bytes);
//! * [`server`], [`client`]: the `Server` and `Client` classes;
//! * [`errors`]: the module's exceptions; [`exceptions`]: their classes, under one base;
//! * for the asyncio API: [`frame`] (`Frame`, header fields by name), [`schema`] (`ltp`'s
//!   schemas), [`options`] (limits, timeouts), [`tls`], [`sending`] (sends with header
//!   fields, and sends that wait for room).
#![forbid(unsafe_code)]
// A Python extension has no public Rust API: its documentation is the private items', built
// with `cargo doc --document-private-items` (as CI does), where these links resolve.
#![allow(rustdoc::private_intra_doc_links)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod client;
mod dispatch;
mod errors;
mod exceptions;
mod flow;
mod forward;
mod frame;
mod layout;
mod options;
mod queue;
mod raw;
mod runtime;
mod schema;
mod sending;
mod server;
mod tls;

use pyo3::prelude::*;

/// The module: `Layout`, `Server`, `Client` and the exceptions.
#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<layout::Layout>()?;
    module.add_class::<server::Server>()?;
    module.add_class::<client::Client>()?;
    module.add_class::<frame::Frame>()?;
    module.add_class::<schema::Schema>()?;
    module.add_class::<options::Options>()?;
    module.add_class::<tls::ServerTls>()?;
    module.add_class::<tls::ClientTls>()?;
    module.add("DEFAULTS", options::defaults(module.py())?)?;
    errors::register(module)?;
    module.add("DEFAULT_MAX_EVENTS", queue::DEFAULT_MAX_EVENTS)?;
    module.add("DEFAULT_MAX_BYTES", queue::DEFAULT_MAX_BYTES)?;
    Ok(())
}
