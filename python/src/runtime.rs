//! The one tokio runtime of the module: multi-threaded (a worker per core), made on first
//! use and kept for the life of the process. Its worker threads never take the GIL; Python
//! threads that wait on it release the GIL first ([`block_on`]).

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
    let built = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ltprotocol-worker")
        .build()
        .map_err(|err| PyRuntimeError::new_err(format!("cannot start the runtime: {err}")))?;
    // Two threads may race to make it: the loser's runtime is dropped unused.
    Ok(RUNTIME.get_or_init(|| built))
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
