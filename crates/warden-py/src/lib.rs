//! Python bindings for Warden: the native module `warden._warden`.
//!
//! Bindings only. Each class wraps an engine type from `warden-core`,
//! `warden-injection` or `warden-policy`; arguments are extracted while the GIL
//! is held, then only Rust runs with the GIL released. Spans cross the
//! boundary as code point offsets, so they index Python `str` directly.
//! Every engine call runs under [`errors::shield`], so a bug surfaces as
//! `warden.InternalError` instead of aborting the interpreter.
//!
//! The curated public API is the pure-Python package `warden` (python/warden),
//! which re-exports these classes.

mod errors;
mod injection;
mod policy;
mod pyjson;
mod scanner;
mod vault;

use pyo3::prelude::*;

/// Native core of the `warden` package. Import `warden`, not this module.
#[pymodule]
fn _warden(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::install_panic_hook();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    m.add_class::<scanner::PyScanner>()?;
    m.add_class::<scanner::PyEntity>()?;
    m.add_class::<scanner::PyRedaction>()?;
    m.add_class::<scanner::PyJsonRedaction>()?;
    m.add_class::<vault::PyVault>()?;
    m.add_class::<vault::PyStreamRestorer>()?;
    m.add_class::<injection::PyInjectionDetector>()?;
    m.add_class::<injection::PyInjectionVerdict>()?;
    m.add_class::<injection::PyInjectionEvidence>()?;
    m.add_class::<policy::PyPolicy>()?;
    m.add_class::<policy::PyVerdict>()?;
    Ok(())
}
