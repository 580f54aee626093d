//! `Vault`, `StreamRestorer`: putting originals back after redaction.

use std::sync::{Arc, Mutex, PoisonError, RwLock};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::{PyBackedBytes, PyBackedStr};
use pyo3::types::{PyBytes, PyString};

use crate::errors::{shield, VaultError, WardenError};

/// Maps placeholder tokens (``<EMAIL_1>``) back to the values they replaced.
///
/// A vault is filled by :meth:`Scanner.redact` and read by :meth:`restore`,
/// :meth:`restore_json` and :class:`StreamRestorer`. Pass the same vault to
/// several ``redact`` calls (``vault=``) to keep tokens stable across the
/// turns of a conversation. Thread-safe: it can be shared between threads.
///
/// A vault holds the original values. Its ``repr`` shows only counts; treat
/// :meth:`to_json` output as sensitive.
///
/// Args:
///     key: optional secret (``str`` or ``bytes``, at least 16 bytes). With a key, tokens are
///         ``<TYPE_xxxxxxxx>`` derived from HMAC-SHA256 of the value, so
///         separate vaults built with the same key agree on every token.
///
/// Example::
///
///     >>> r = warden.Scanner().redact("mail jane.doe@example.org")
///     >>> r.text
///     'mail <EMAIL_1>'
///     >>> r.vault.restore("Dear <EMAIL_1>,")
///     'Dear jane.doe@example.org,'
#[pyclass(frozen, module = "warden._warden", name = "Vault")]
pub struct PyVault {
    /// `Arc` so a `StreamRestorer` can take a snapshot without copying, and a
    /// later `redact` into this vault copies on write.
    inner: RwLock<Arc<warden_core::Vault>>,
}

impl PyVault {
    pub(crate) fn from_core(vault: warden_core::Vault) -> Self {
        PyVault {
            inner: RwLock::new(Arc::new(vault)),
        }
    }

    pub(crate) fn snapshot(&self) -> Arc<warden_core::Vault> {
        Arc::clone(&self.inner.read().unwrap_or_else(PoisonError::into_inner))
    }

    pub(crate) fn repr(&self) -> String {
        let v = self.snapshot();
        let keyed = if v.is_keyed() { "True" } else { "False" };
        format!("Vault(tokens={}, keyed={keyed})", v.len())
    }

    /// Runs `f` on the vault for writing (copy on write if a restorer holds it).
    pub(crate) fn with_mut<T>(&self, f: impl FnOnce(&mut warden_core::Vault) -> T) -> T {
        let mut guard = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        f(Arc::make_mut(&mut guard))
    }
}

/// Shortest accepted key, as for `warden redact --key-file`: a short key
/// would let anyone brute-force the tokens of small value spaces (SSNs).
const MIN_KEY_LEN: usize = 16;

/// Bytes of a `str | bytes` key argument.
pub(crate) fn key_bytes(key: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    let bytes = if let Ok(s) = key.downcast::<PyString>() {
        s.to_cow()?.as_bytes().to_vec()
    } else if let Ok(b) = key.downcast::<PyBytes>() {
        b.as_bytes().to_vec()
    } else {
        return Err(PyTypeError::new_err("key must be str or bytes"));
    };
    if bytes.len() < MIN_KEY_LEN {
        return Err(PyValueError::new_err(format!(
            "key must be at least {MIN_KEY_LEN} bytes"
        )));
    }
    Ok(bytes)
}

#[pymethods]
impl PyVault {
    #[new]
    #[pyo3(signature = (key=None))]
    fn new(key: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        Ok(match key {
            None => PyVault::from_core(warden_core::Vault::new()),
            Some(k) => PyVault::from_core(warden_core::Vault::with_key(&key_bytes(k)?)),
        })
    }

    /// Returns ``text`` with every token this vault knows replaced by its
    /// original value. Unknown tokens are left as they are.
    fn restore(&self, py: Python<'_>, text: PyBackedStr) -> PyResult<String> {
        let vault = self.snapshot();
        py.allow_threads(|| shield(|| vault.restore(&text)))
    }

    /// Like :meth:`restore`, for the inside of a JSON string (or a JSON
    /// document as text): originals are JSON-escaped, so the JSON stays valid.
    fn restore_json(&self, py: Python<'_>, text: PyBackedStr) -> PyResult<String> {
        let vault = self.snapshot();
        py.allow_threads(|| shield(|| vault.restore_json(&text)))
    }

    /// Returns a copy of a JSON-like value (dicts, lists, str, ...) with the
    /// originals put back into every string, e.g. a model's tool-call
    /// arguments after :meth:`Scanner.redact_json`.
    fn restore_value<'py>(
        &self,
        py: Python<'py>,
        value: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut v = crate::pyjson::to_json(value)?;
        let vault = self.snapshot();
        py.allow_threads(|| shield(|| warden_core::json::restore_json_value(&vault, &mut v)))?;
        crate::pyjson::to_py(py, &v)
    }

    /// The original value behind ``token``, or ``None``.
    fn get(&self, token: &str) -> Option<String> {
        self.snapshot().get(token).map(str::to_owned)
    }

    /// The tokens in ``text`` that this vault does not know, in order of
    /// appearance (an agent may have invented one).
    fn unknown_tokens(&self, py: Python<'_>, text: PyBackedStr) -> PyResult<Vec<String>> {
        let vault = self.snapshot();
        py.allow_threads(|| {
            shield(|| {
                vault
                    .unknown_tokens(&text)
                    .into_iter()
                    .map(str::to_owned)
                    .collect()
            })
        })
    }

    /// ``(token, entity type)`` pairs, sorted by token; never the originals.
    fn tokens(&self) -> Vec<(String, String)> {
        let vault = self.snapshot();
        let mut out: Vec<(String, String)> = vault
            .tokens()
            .map(|(t, e)| (t.to_owned(), e.to_owned()))
            .collect();
        out.sort();
        out
    }

    /// True when tokens are derived from a key.
    #[getter]
    fn keyed(&self) -> bool {
        self.snapshot().is_keyed()
    }

    /// Adds every token of ``other`` to this vault.
    ///
    /// Raises:
    ///     VaultError: a token stands for different values in the two vaults
    ///         (nothing is merged then).
    fn merge(&self, other: &Bound<'_, PyVault>) -> PyResult<()> {
        let theirs = (*other.get().snapshot()).clone();
        self.with_mut(|mine| mine.merge(theirs))
            .map_err(|e| VaultError::new_err(e.to_string()))
    }

    /// A :class:`StreamRestorer` over a snapshot of this vault.
    #[pyo3(signature = (*, json_escaped=false))]
    fn restorer(&self, json_escaped: bool) -> PyStreamRestorer {
        PyStreamRestorer::over(self.snapshot(), json_escaped)
    }

    /// Serialises the vault (tokens, entity types and originals; never the
    /// key) as JSON, for :meth:`from_json`. The result is sensitive.
    fn to_json(&self) -> PyResult<String> {
        serde_json::to_string(&*self.snapshot()).map_err(|e| VaultError::new_err(e.to_string()))
    }

    /// Reads a vault written by :meth:`to_json` (or ``warden redact --vault``).
    ///
    /// Raises:
    ///     VaultError: the JSON is malformed or holds an invalid token.
    #[staticmethod]
    fn from_json(data: &str) -> PyResult<PyVault> {
        serde_json::from_str::<warden_core::Vault>(data)
            .map(PyVault::from_core)
            .map_err(|e| VaultError::new_err(format!("cannot read vault: {e}")))
    }

    fn __len__(&self) -> usize {
        self.snapshot().len()
    }

    fn __contains__(&self, token: &str) -> bool {
        self.snapshot().get(token).is_some()
    }

    fn __repr__(&self) -> String {
        self.repr()
    }
}

/// Restores tokens in text that arrives in pieces, such as an LLM stream.
///
/// :meth:`feed` returns what can be released now: complete tokens restored,
/// a possible partial token (``<EMA``) held back until the next chunk decides
/// it, and, for ``bytes`` chunks, an incomplete UTF-8 character held back
/// too. :meth:`finish` releases the rest. Everything returned, joined,
/// equals ``vault.restore(whole_text)`` however the stream was cut.
///
/// Example::
///
///     restorer = redaction.vault.restorer()
///     for chunk in llm_stream:
///         print(restorer.feed(chunk), end="")
///     print(restorer.finish())
///
/// Safe to share between threads, but a stream is a sequence: feed it from one
/// place at a time.
#[pyclass(frozen, module = "warden._warden", name = "StreamRestorer")]
pub struct PyStreamRestorer {
    inner: Mutex<Option<warden_core::StreamRestorer>>,
}

impl PyStreamRestorer {
    fn over(vault: Arc<warden_core::Vault>, json_escaped: bool) -> Self {
        let r = warden_core::StreamRestorer::new(vault);
        let r = if json_escaped { r.json_escaped() } else { r };
        PyStreamRestorer {
            inner: Mutex::new(Some(r)),
        }
    }
}

fn finished() -> PyErr {
    WardenError::new_err("this StreamRestorer has already finished")
}

#[pymethods]
impl PyStreamRestorer {
    /// Args:
    ///     vault: the vault whose tokens to restore (a snapshot is taken).
    ///     json_escaped: the stream is the inside of a JSON string (streamed
    ///         tool-call arguments); originals are JSON-escaped.
    #[new]
    #[pyo3(signature = (vault, *, json_escaped=false))]
    fn new(vault: &Bound<'_, PyVault>, json_escaped: bool) -> Self {
        PyStreamRestorer::over(vault.get().snapshot(), json_escaped)
    }

    /// Feeds one chunk (``str``, or ``bytes`` of UTF-8) and returns the text
    /// that can be released now (possibly ``""``).
    ///
    /// Raises:
    ///     WardenError: after :meth:`finish`.
    fn feed(&self, chunk: &Bound<'_, PyAny>) -> PyResult<String> {
        enum Chunk {
            Text(PyBackedStr),
            Bytes(PyBackedBytes),
        }
        let chunk = if let Ok(s) = chunk.extract::<PyBackedStr>() {
            Chunk::Text(s)
        } else if let Ok(b) = chunk.extract::<PyBackedBytes>() {
            Chunk::Bytes(b)
        } else {
            return Err(PyTypeError::new_err("chunk must be str or bytes"));
        };
        let mut guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let r = guard.as_mut().ok_or_else(finished)?;
        shield(|| match &chunk {
            Chunk::Text(s) => r.feed(s),
            Chunk::Bytes(b) => r.feed_bytes(b),
        })
    }

    /// Ends the stream: returns whatever was held back. The restorer cannot
    /// be fed afterwards.
    fn finish(&self) -> PyResult<String> {
        let r = self
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or_else(finished)?;
        shield(|| r.finish())
    }

    fn __repr__(&self) -> String {
        let done = self
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none();
        format!(
            "StreamRestorer(finished={})",
            if done { "True" } else { "False" }
        )
    }
}
