//! The exception hierarchy and the one place Rust failures become Python ones.
//!
//! Every message comes from an engine error (which names files, rules and
//! reasons, never the scanned text) or is written here without input data, so
//! an exception never carries a card number into a log.

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    warden,
    WardenError,
    PyException,
    "Base class of every error Warden raises."
);
create_exception!(
    warden,
    PatternError,
    WardenError,
    "A pattern pack could not be loaded: bad TOML, an unknown validator, or a\nregex the linear-time engine rejects. `.file` and `.rule` name the culprit\nwhen known."
);
create_exception!(
    warden,
    ConfigError,
    WardenError,
    "A configuration value is invalid (unknown field, wrong type, bad strategy)."
);
create_exception!(
    warden,
    PolicyError,
    WardenError,
    "A tool-call policy could not be loaded or used."
);
create_exception!(
    warden,
    VaultError,
    WardenError,
    "A vault could not be read, written or used (for example, bad JSON)."
);
create_exception!(
    warden,
    InjectionError,
    WardenError,
    "The prompt-injection rules or model could not be loaded."
);
create_exception!(
    warden,
    InternalError,
    WardenError,
    "A bug inside Warden's engine was caught at the boundary. The operation was\nabandoned; the interpreter keeps running. Please report it."
);

/// Which exception a failure of one engine call becomes when the error itself
/// does not say (I/O errors, for instance, belong to what was being loaded).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Family {
    Pattern,
    Config,
    Policy,
    Vault,
    Injection,
}

impl Family {
    pub(crate) fn err(self, msg: String) -> PyErr {
        match self {
            Family::Pattern => PatternError::new_err(msg),
            Family::Config => ConfigError::new_err(msg),
            Family::Policy => PolicyError::new_err(msg),
            Family::Vault => VaultError::new_err(msg),
            Family::Injection => InjectionError::new_err(msg),
        }
    }
}

/// Runs engine code, turning a panic into `InternalError` instead of letting
/// it unwind into the interpreter. The panic payload is dropped unread: std's
/// slicing panics quote the string being sliced, which may be a secret.
pub(crate) fn shield<T>(f: impl FnOnce() -> T) -> PyResult<T> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|_| {
        InternalError::new_err("internal error in the Warden engine; the input is not shown")
    })
}

/// Replaces the panic hook of this library's copy of std (each Rust extension
/// module has its own), so a caught panic prints where it happened but not its
/// message, which could quote scanned text.
pub(crate) fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_else(|| "unknown location".to_owned());
        eprintln!("warden: internal error at {at} (message withheld: it may quote input)");
    }));
}

/// Registers the exception classes on the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("WardenError", py.get_type::<WardenError>())?;
    m.add("PatternError", py.get_type::<PatternError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("PolicyError", py.get_type::<PolicyError>())?;
    m.add("VaultError", py.get_type::<VaultError>())?;
    m.add("InjectionError", py.get_type::<InjectionError>())?;
    m.add("InternalError", py.get_type::<InternalError>())?;
    Ok(())
}
