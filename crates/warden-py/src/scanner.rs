//! `Scanner`, `Entity`, `Redaction`: PII and secret detection and redaction.

use std::path::PathBuf;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyDict, PyList, PyString};
use rayon::prelude::*;
use serde_json::Value;
use warden_core::json::{redact_json, scan_json, JsonFinding};
use warden_core::{ErrorKind, Finding, RedactConfig, Redactor, ScanConfig, Strategy};

use crate::errors::{shield, Family, InternalError};
use crate::pyjson;
use crate::vault::{key_bytes, PyVault};
use warden_core::CodePoints;

/// Turns an engine error into the matching exception, with `.file`, `.line`
/// and `.rule` attributes where the engine knows them.
pub(crate) fn core_err(py: Python<'_>, e: &warden_core::Error, io_family: Family) -> PyErr {
    let family = match e.kind() {
        ErrorKind::Pack | ErrorKind::Regex => Family::Pattern,
        ErrorKind::Config => Family::Config,
        ErrorKind::Vault => Family::Vault,
        _ => io_family,
    };
    let err = family.err(e.to_string());
    let value = err.value(py);
    // Attribute setting on a fresh exception instance cannot fail in practice;
    // if it did, the message alone still says everything.
    let _ = value.setattr("file", e.file());
    let _ = value.setattr("line", e.line());
    let _ = value.setattr("rule", e.rule());
    err
}

/// A detected entity. Offsets index the Python ``str`` that was scanned
/// (code points): ``text[entity.start:entity.end] == entity.text``.
///
/// ``repr`` leaves the matched value out, so logging an ``Entity`` does not
/// log the secret; read ``.text`` explicitly when you need it.
#[pyclass(frozen, eq, module = "warden._warden", name = "Entity")]
#[derive(PartialEq)]
pub struct PyEntity {
    /// Entity type, e.g. ``"EMAIL"``, ``"CREDIT_CARD"``, ``"API_KEY"``.
    #[pyo3(get, name = "type")]
    entity: String,
    /// Start offset (code points, inclusive).
    #[pyo3(get)]
    start: usize,
    /// End offset (code points, exclusive).
    #[pyo3(get)]
    end: usize,
    /// Start offset in the UTF-8 encoding of the text (bytes).
    #[pyo3(get)]
    start_byte: usize,
    /// End offset in the UTF-8 encoding of the text (bytes).
    #[pyo3(get)]
    end_byte: usize,
    /// The matched text, ``scanned[start:end]``.
    #[pyo3(get)]
    text: String,
    /// Confidence in ``[0, 1]``.
    #[pyo3(get)]
    score: f64,
    /// Id of the rule that fired, e.g. ``"pii.email"``.
    #[pyo3(get)]
    rule: String,
    /// True when the value was only visible after undoing an obfuscation
    /// (zero-width characters, fullwidth digits, an encoding...).
    #[pyo3(get)]
    obfuscated: bool,
    /// True when the entity is in a dict key (from :meth:`Scanner.scan_json`
    /// or :meth:`Scanner.redact_json`): the offsets then index the last key
    /// of its pointer, not the string value there.
    #[pyo3(get)]
    in_key: bool,
    evidence: serde_json::Value,
}

/// Scores as `warden scan` prints them: rounded to 3 decimals, so the module
/// and the CLI agree exactly and `0.85 + 0.1` reads `0.95`, not the f32 noise
/// `0.95000005`.
pub(crate) fn score_f64(score: f32) -> f64 {
    (f64::from(score) * 1000.0).round() / 1000.0
}

impl PyEntity {
    /// Converts findings of one text; spans must lie on char boundaries.
    fn convert(text: &str, findings: Vec<Finding>) -> Result<Vec<PyEntity>, &'static str> {
        let mut cp = CodePoints::new(text);
        findings
            .into_iter()
            .map(|f| {
                let start = cp.at(f.start).ok_or("span outside the text")?;
                let end = cp.at(f.end).ok_or("span outside the text")?;
                let value = text.get(f.start..f.end).ok_or("span outside the text")?;
                Ok(PyEntity {
                    entity: f.entity.to_string(),
                    start,
                    end,
                    start_byte: f.start,
                    end_byte: f.end,
                    text: value.to_owned(),
                    score: score_f64(f.score),
                    rule: f.rule.to_string(),
                    obfuscated: f.obfuscated,
                    in_key: false,
                    evidence: serde_json::to_value(&f.evidence).unwrap_or_default(),
                })
            })
            .collect()
    }
}

fn bad_span(_: &'static str) -> PyErr {
    InternalError::new_err("the engine reported a span outside the text")
}

#[pymethods]
impl PyEntity {
    /// Why the score is what it is: a list of dicts such as
    /// ``{"kind": "checksum", "validator": "luhn", "result": "valid"}``.
    /// Never contains the matched value.
    #[getter]
    fn evidence<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        pyjson::to_py(py, &self.evidence)
    }

    /// The entity as a dict with the keys of ``warden scan``'s JSON output
    /// (``type``, ``start``, ``end``, ``start_byte``, ``end_byte``, ``score``,
    /// ``rule``, ``evidence``), plus ``text``, ``obfuscated`` and ``in_key``.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("type", &self.entity)?;
        d.set_item("start", self.start)?;
        d.set_item("end", self.end)?;
        d.set_item("start_byte", self.start_byte)?;
        d.set_item("end_byte", self.end_byte)?;
        d.set_item("score", self.score)?;
        d.set_item("rule", &self.rule)?;
        d.set_item("evidence", pyjson::to_py(py, &self.evidence)?)?;
        d.set_item("text", &self.text)?;
        d.set_item("obfuscated", self.obfuscated)?;
        d.set_item("in_key", self.in_key)?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        format!(
            "Entity(type='{}', start={}, end={}, score={}, rule='{}')",
            self.entity, self.start, self.end, self.score, self.rule
        )
    }
}

/// The result of :meth:`Scanner.redact`.
#[pyclass(frozen, module = "warden._warden", name = "Redaction")]
pub struct PyRedaction {
    /// The redacted text.
    #[pyo3(get)]
    text: String,
    /// The vault holding the placeholders (the ``vault=`` passed in, or a new one).
    #[pyo3(get)]
    vault: Py<PyVault>,
    entities: Py<PyList>,
}

#[pymethods]
impl PyRedaction {
    /// What was redacted; offsets refer to the text *before* redaction.
    #[getter]
    fn entities<'py>(&self, py: Python<'py>) -> Bound<'py, PyList> {
        self.entities.bind(py).clone()
    }

    fn __str__(&self) -> &str {
        &self.text
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "Redaction(entities={}, vault={})",
            self.entities.bind(py).len(),
            self.vault.get().repr()
        )
    }
}

/// The result of :meth:`Scanner.redact_json`.
#[pyclass(frozen, module = "warden._warden", name = "JsonRedaction")]
pub struct PyJsonRedaction {
    /// The redacted copy of the value.
    #[pyo3(get)]
    value: PyObject,
    /// The vault holding the placeholders.
    #[pyo3(get)]
    vault: Py<PyVault>,
    entities: Py<PyList>,
}

#[pymethods]
impl PyJsonRedaction {
    /// ``(pointer, entity)`` pairs of what was redacted, in document order.
    #[getter]
    fn entities<'py>(&self, py: Python<'py>) -> Bound<'py, PyList> {
        self.entities.bind(py).clone()
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "JsonRedaction(entities={}, vault={})",
            self.entities.bind(py).len(),
            self.vault.get().repr()
        )
    }
}

/// Finds PII and secrets in text: e-mail addresses, phone numbers, card
/// numbers, IBANs, API keys, private keys and more, from pattern packs.
///
/// Build one scanner and share it: it is immutable and thread-safe, and the
/// heavy methods release the GIL, so several threads scan in parallel.
///
/// Args:
///     packs: ``None`` for the built-in packs, or a path or list of paths
///         (``str`` or ``os.PathLike``) to pack files (``*.toml``) or
///         directories searched recursively; then only those packs are used.
///     config: ``None``; a dict of scan settings (``min_score``,
///         ``disabled_rules``, ``disabled_entities``, ``allow``, ``deny``,
///         ``decode``, ``redact``); or the path of a warden config file (TOML),
///         whose ``[scan]`` table is used, as by ``warden --config``.
///
/// Raises:
///     PatternError: a pack is invalid (``.file`` and ``.rule`` say where).
///     ConfigError: the configuration is invalid.
///
/// Example::
///
///     >>> scanner = warden.Scanner()
///     >>> [(e.type, e.start, e.end) for e in scanner.scan("mail jane.doe@example.org")]
///     [('EMAIL', 5, 25)]
#[pyclass(frozen, module = "warden._warden", name = "Scanner")]
pub struct PyScanner {
    inner: warden_core::Scanner,
    redact: RedactConfig,
    /// For `redact()` without strategy or key: built once, so `hash` tokens
    /// (keyed by a per-process random key) are stable for this scanner.
    default_redactor: Redactor,
}

fn paths(packs: &Bound<'_, PyAny>) -> PyResult<Vec<PathBuf>> {
    if packs.is_instance_of::<PyString>() {
        return Ok(vec![packs.extract()?]);
    }
    if let Ok(one) = packs.extract::<PathBuf>() {
        return Ok(vec![one]);
    }
    let mut out = Vec::new();
    for item in packs.try_iter()? {
        out.push(
            item?
                .extract::<PathBuf>()
                .map_err(|_| PyTypeError::new_err("packs must be paths (str or os.PathLike)"))?,
        );
    }
    Ok(out)
}

fn load_config(py: Python<'_>, config: &Bound<'_, PyAny>) -> PyResult<ScanConfig> {
    if let Ok(d) = config.downcast::<PyDict>() {
        let value = pyjson::to_json(d.as_any())?;
        return serde_json::from_value(value)
            .map_err(|e| Family::Config.err(format!("invalid scan config: {e}")));
    }
    let path: PathBuf = config
        .extract()
        .map_err(|_| PyTypeError::new_err("config must be a dict or a path to a TOML file"))?;
    let shown = path.display().to_string();
    let src = py
        .allow_threads(|| std::fs::read_to_string(&path))
        .map_err(|e| Family::Config.err(format!("{shown}: {e}")))?;
    toml::from_str::<ConfigFile>(&src)
        .map(|f| f.scan)
        .map_err(|e| Family::Config.err(format!("{shown}: {}", e.message())))
}

/// The `[scan]` table of a warden config file (the file `warden --config`
/// and `warden serve` read); other tables belong to other components.
#[derive(serde::Deserialize)]
struct ConfigFile {
    #[serde(default)]
    scan: ScanConfig,
}

fn parse_strategy(s: &str) -> PyResult<Strategy> {
    s.parse::<Strategy>()
        .map_err(|e| PyValueError::new_err(e.to_string()))
}

/// Entities of a JSON walk, each converted against the string it was found in.
fn json_entities(
    value: &Value,
    found: Vec<JsonFinding>,
) -> Result<Vec<(String, PyEntity)>, &'static str> {
    let mut out = Vec::with_capacity(found.len());
    // Findings of one string (or key) arrive together; convert each group
    // in one pass.
    let mut i = 0;
    while i < found.len() {
        let (pointer, in_key) = (found[i].pointer.clone(), found[i].in_key);
        let mut j = i;
        while j < found.len() && found[j].pointer == pointer && found[j].in_key == in_key {
            j += 1;
        }
        let member = value.pointer(&pointer).ok_or("span outside the text")?;
        let key;
        let text = if in_key {
            // The last reference token of the pointer, unescaped (RFC 6901).
            let last = pointer.rsplit('/').next().unwrap_or_default();
            key = last.replace("~1", "/").replace("~0", "~");
            key.as_str()
        } else {
            member.as_str().ok_or("span outside the text")?
        };
        let group: Vec<Finding> = found[i..j].iter().map(|f| f.finding.clone()).collect();
        for mut e in PyEntity::convert(text, group)? {
            e.in_key = in_key;
            out.push((pointer.clone(), e));
        }
        i = j;
    }
    Ok(out)
}

impl PyScanner {
    /// The redactor for one `redact` call, and the vault it writes to.
    fn redactor_and_vault(
        &self,
        py: Python<'_>,
        strategy: Option<&str>,
        key: Option<&Bound<'_, PyAny>>,
        vault: Option<Py<PyVault>>,
    ) -> PyResult<(Redactor, Py<PyVault>)> {
        let key = key.map(key_bytes).transpose()?;
        let redactor = match (strategy, &key) {
            (None, None) => self.default_redactor.clone(),
            _ => {
                let cfg = match strategy {
                    None => self.redact.clone(),
                    Some(s) => RedactConfig {
                        default: parse_strategy(s)?,
                        per_entity: Default::default(),
                        mask_keep_last: self.redact.mask_keep_last,
                    },
                };
                Redactor::new(self.inner.clone(), cfg, key.clone())
            }
        };
        let vault = match vault {
            Some(v) => v,
            None => {
                let v = match &key {
                    Some(k) => warden_core::Vault::with_key(k),
                    None => warden_core::Vault::new(),
                };
                Py::new(py, PyVault::from_core(v))?
            }
        };
        Ok((redactor, vault))
    }

    fn entities(&self, py: Python<'_>, text: &str) -> PyResult<Vec<PyEntity>> {
        py.allow_threads(|| {
            shield(|| PyEntity::convert(text, self.inner.scan(text)))?.map_err(bad_span)
        })
    }
}

#[pymethods]
impl PyScanner {
    #[new]
    #[pyo3(signature = (packs=None, config=None))]
    fn new(
        py: Python<'_>,
        packs: Option<&Bound<'_, PyAny>>,
        config: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let cfg = match config {
            Some(c) if !c.is_none() => load_config(py, c)?,
            _ => ScanConfig::default(),
        };
        let redact = cfg.redact.clone();
        let paths = match packs {
            Some(p) if !p.is_none() => Some(paths(p)?),
            _ => None,
        };
        let built = py.allow_threads(|| {
            shield(|| -> Result<warden_core::Scanner, warden_core::Error> {
                let mut b = warden_core::Scanner::builder();
                match paths {
                    None => b = b.builtin_packs(),
                    Some(paths) => {
                        for p in paths {
                            if p.is_dir() {
                                b = b.packs_dir(&p)?;
                            } else {
                                let origin = p.display().to_string();
                                let src = std::fs::read_to_string(&p).map_err(|e| {
                                    warden_core::Error::new(ErrorKind::Io, e.to_string())
                                        .with_file(origin.clone())
                                })?;
                                b = b.pack(warden_core::Pack::parse(&src, &origin)?);
                            }
                        }
                    }
                }
                b.config(cfg).build()
            })
        })?;
        let inner = built.map_err(|e| core_err(py, &e, Family::Pattern))?;
        let default_redactor = Redactor::new(inner.clone(), redact.clone(), None);
        Ok(PyScanner {
            inner,
            redact,
            default_redactor,
        })
    }

    /// Number of compiled rules.
    #[getter]
    fn rule_count(&self) -> usize {
        self.inner.rule_count()
    }

    /// Finds the entities in ``text``, sorted by position, non-overlapping.
    ///
    /// Offsets are code point indices into ``text``. Releases the GIL.
    fn scan(&self, py: Python<'_>, text: PyBackedStr) -> PyResult<Vec<PyEntity>> {
        self.entities(py, &text)
    }

    /// Scans many texts in parallel on all cores (GIL released); returns one
    /// list of entities per text, in input order.
    ///
    /// Much faster than a loop over :meth:`scan` for many small texts.
    fn scan_batch(&self, py: Python<'_>, texts: &Bound<'_, PyAny>) -> PyResult<Vec<Vec<PyEntity>>> {
        if texts.is_instance_of::<PyString>() {
            return Err(PyTypeError::new_err(
                "scan_batch() takes a sequence of str, not a str",
            ));
        }
        let texts: Vec<PyBackedStr> = texts
            .try_iter()?
            .map(|t| t?.extract::<PyBackedStr>())
            .collect::<PyResult<_>>()?;
        let results = py.allow_threads(|| {
            shield(|| {
                texts
                    .par_iter()
                    .map(|t| PyEntity::convert(t, self.inner.scan(t)))
                    .collect::<Result<Vec<_>, _>>()
            })
        })?;
        results.map_err(bad_span)
    }

    /// Scans ``text`` and replaces every entity found.
    ///
    /// Args:
    ///     text: the text to redact.
    ///     strategy: ``"placeholder"`` (typed tokens like ``<EMAIL_1>``,
    ///         reversible through the vault), ``"mask"`` (keep the last
    ///         characters: ``**** **** **** 4242``), ``"hash"`` (keyed
    ///         HMAC-SHA256 token) or ``"remove"``, applied to every entity
    ///         type. ``None`` uses the scanner's config (default placeholder,
    ///         with per-entity overrides).
    ///     key: secret (``str`` or ``bytes``, at least 16 bytes) for stable
    ///         tokens across calls, as ``WARDEN_REDACT_KEY`` for the CLI:
    ///         keys the ``hash`` strategy and, when no vault is passed, makes
    ///         the new vault keyed. Without a key, ``hash`` tokens come from
    ///         a random key: do not rely on them matching across calls.
    ///     vault: add placeholders to this vault instead of a new one, so a
    ///         conversation's turns share tokens.
    ///
    /// Returns:
    ///     Redaction: ``.text``, ``.vault`` and ``.entities`` (spans in the
    ///     original text).
    #[pyo3(signature = (text, strategy=None, key=None, vault=None))]
    fn redact(
        &self,
        py: Python<'_>,
        text: PyBackedStr,
        strategy: Option<&str>,
        key: Option<&Bound<'_, PyAny>>,
        vault: Option<Py<PyVault>>,
    ) -> PyResult<PyRedaction> {
        let (redactor, vault) = self.redactor_and_vault(py, strategy, key, vault)?;
        let (redacted, entities) = {
            let pv = vault.get();
            py.allow_threads(|| {
                shield(|| {
                    let r = pv.with_mut(|v| redactor.redact(&text, v));
                    let entities = PyEntity::convert(&text, r.findings);
                    (r.text, entities)
                })
            })?
        };
        let entities = entities.map_err(bad_span)?;
        Ok(PyRedaction {
            text: redacted,
            vault,
            entities: PyList::new(py, entities)?.unbind(),
        })
    }

    /// Scans every string in a JSON-like value (dicts, lists, str, numbers,
    /// bool, None), such as a list of chat messages or a tool call's
    /// arguments. Each string is scanned with its nearest dict key as context
    /// (a string under ``"ssn"`` reads as an SSN), and each dict key is
    /// scanned too (``{"jane@acme.io": 120.5}``).
    ///
    /// Returns:
    ///     ``(pointer, entity)`` pairs in document order (a dict's keys before
    ///     the strings below it); ``pointer`` is the RFC 6901 JSON Pointer of
    ///     the string (``"/messages/0/content"``) and the entity's offsets
    ///     index that string, or, when ``entity.in_key``, the pointer's last
    ///     key.
    fn scan_json(
        &self,
        py: Python<'_>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<Vec<(String, PyEntity)>> {
        let value = pyjson::to_json(value)?;
        let found =
            py.allow_threads(|| shield(|| json_entities(&value, scan_json(&self.inner, &value))))?;
        found.map_err(bad_span)
    }

    /// Redacts every string and dict key in a JSON-like value, returning a
    /// redacted copy with the same structure and key order (the input is not
    /// modified). A value found in one string is also redacted wherever else
    /// it appears in the document.
    ///
    /// Takes the same ``strategy``, ``key`` and ``vault`` arguments as
    /// :meth:`redact`; restore with :meth:`Vault.restore_value`.
    ///
    /// Returns:
    ///     JsonRedaction: ``.value`` (the redacted copy), ``.vault`` and
    ///     ``.entities`` (``(pointer, entity)`` pairs: string findings in
    ///     document order, then key findings; offsets into the original
    ///     strings and keys, pointers into the original value).
    ///
    /// Raises:
    ///     ValueError: two keys of one dict would redact to the same text
    ///         (possible with ``"mask"`` and ``"remove"``).
    #[pyo3(signature = (value, strategy=None, key=None, vault=None))]
    fn redact_json(
        &self,
        py: Python<'_>,
        value: &Bound<'_, PyAny>,
        strategy: Option<&str>,
        key: Option<&Bound<'_, PyAny>>,
        vault: Option<Py<PyVault>>,
    ) -> PyResult<PyJsonRedaction> {
        let original = pyjson::to_json(value)?;
        let (redactor, vault) = self.redactor_and_vault(py, strategy, key, vault)?;
        let (redacted, entities) = {
            let pv = vault.get();
            py.allow_threads(|| {
                shield(|| {
                    let mut redacted = original.clone();
                    let found = pv.with_mut(|v| redact_json(&redactor, &mut redacted, v));
                    (redacted, found.map(|f| json_entities(&original, f)))
                })
            })?
        };
        let entities = entities
            .map_err(|e| PyValueError::new_err(e.to_string()))?
            .map_err(bad_span)?;
        Ok(PyJsonRedaction {
            value: pyjson::to_py(py, &redacted)?.unbind(),
            vault,
            entities: PyList::new(py, entities)?.unbind(),
        })
    }

    fn __repr__(&self) -> String {
        format!("Scanner(rules={})", self.inner.rule_count())
    }
}
