//! The one tokio runtime of the module: multi-threaded, made on first use and kept for the
//! life of the process. Its worker threads never take the GIL; Python threads that wait on it
//! release the GIL first ([`block_on`]).
//!
//! It has a worker per core but one ([`workers`]): the Python thread that takes the events and
//! makes the sends is busy too, and a worker on every core would make the three compete for
//! two cores on a small machine (on two cores, a broadcast of 64 B to 100 connections from
//! Python ran at 3.5–4.0 M deliveries/s with one worker against 2.2–3.4 M with two).
//! `TOKIO_WORKER_THREADS` sets the number instead, as it does for any tokio runtime.

use std::future::Future;
use std::sync::OnceLock;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use tokio::runtime::Runtime;

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// The module's runtime, made on first use.
///
/// # Errors
///
/// `RuntimeError` when the operating system refuses the threads.
pub(crate) fn runtime() -> PyResult<&'static Runtime> {
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime);
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        // Otherwise tokio reads the variable itself.
        builder.worker_threads(workers());
    }
    let built = builder
        .enable_all()
        .thread_name("ltprotocol-worker")
        .build()
        .map_err(|err| PyRuntimeError::new_err(format!("cannot start the runtime: {err}")))?;
    // Two threads may race to make it: the loser's runtime is dropped unused.
    Ok(RUNTIME.get_or_init(|| built))
}

/// The workers when `TOKIO_WORKER_THREADS` does not say: one per core but one, at least one.
fn workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |cores| cores.get().saturating_sub(1))
        .max(1)
}

/// Runs `future` to completion on the runtime, with the GIL released meanwhile, so that
/// other Python threads (and the runtime's own work, which never waits for the GIL) go on.
///
/// # Errors
///
/// As [`runtime`].
pub(crate) fn block_on<F>(py: Python<'_>, future: F) -> PyResult<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    let runtime = runtime()?;
    Ok(py.detach(|| runtime.block_on(future)))
}
