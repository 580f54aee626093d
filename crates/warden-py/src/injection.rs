//! `InjectionDetector`, `InjectionVerdict`: prompt-injection scoring.

use std::path::PathBuf;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyDict, PyString};
use rayon::prelude::*;
use warden_injection::{Detector, DetectorConfig, ErrorKind, InjectionResult, Source};

use crate::errors::{shield, Family, InternalError};
use crate::pyjson;
use crate::scanner::score_f64;
use warden_core::CodePoints;

fn injection_err(py: Python<'_>, e: &warden_injection::Error) -> PyErr {
    let family = match e.kind() {
        ErrorKind::Pack => Family::Pattern,
        ErrorKind::Config => Family::Config,
        _ => Family::Injection,
    };
    let err = family.err(e.to_string());
    let value = err.value(py);
    let _ = value.setattr("file", e.file());
    let _ = value.setattr("line", None::<usize>);
    let _ = value.setattr("rule", e.rule());
    err
}

/// Source names are matched exactly (the engine also accepts aliases; the
/// Python API keeps to the four documented names).
fn parse_source(source: &str) -> PyResult<Source> {
    match source {
        "user" => Ok(Source::User),
        "system" => Ok(Source::System),
        "tool" => Ok(Source::Tool),
        "document" => Ok(Source::Document),
        _ => Err(PyValueError::new_err(
            "source must be one of 'user', 'system', 'tool', 'document'",
        )),
    }
}

fn source_name(source: Source) -> &'static str {
    match source {
        Source::User => "user",
        Source::System => "system",
        Source::Tool => "tool",
        Source::Document => "document",
    }
}

/// One piece of injection evidence: which rule fired, in which decoded layer,
/// and where (code point offsets into the checked text).
#[pyclass(frozen, eq, module = "warden._warden", name = "InjectionEvidence")]
#[derive(PartialEq, Clone)]
pub struct PyInjectionEvidence {
    /// Rule id, e.g. ``"override.en"``, ``"obfuscation.tag_chars"``, ``"learned.linear"``.
    #[pyo3(get)]
    rule: String,
    /// Layer the hit came from: ``"plain"``, ``"folded"``, ``"tag_chars"``,
    /// ``"base64"``, ... (nested layers joined with ``/``).
    #[pyo3(get)]
    layer: String,
    /// Start offset (code points).
    #[pyo3(get)]
    start: usize,
    /// End offset (code points, exclusive).
    #[pyo3(get)]
    end: usize,
    /// Start offset in the UTF-8 encoding (bytes).
    #[pyo3(get)]
    start_byte: usize,
    /// End offset in the UTF-8 encoding (bytes).
    #[pyo3(get)]
    end_byte: usize,
    /// Contribution to the score.
    #[pyo3(get)]
    weight: f64,
}

#[pymethods]
impl PyInjectionEvidence {
    fn __repr__(&self) -> String {
        format!(
            "InjectionEvidence(rule='{}', layer='{}', start={}, end={}, weight={})",
            self.rule, self.layer, self.start, self.end, self.weight
        )
    }
}

/// The injection verdict for one text.
///
/// ``verdict`` is ``"allow"``, ``"flag"`` or ``"block"``, from the score and
/// the thresholds of the text's source (tool results and documents are held
/// to stricter thresholds than user turns).
#[pyclass(frozen, module = "warden._warden", name = "InjectionVerdict")]
pub struct PyInjectionVerdict {
    /// Combined score in ``[0, 1]``.
    #[pyo3(get)]
    score: f64,
    /// ``"allow"``, ``"flag"`` or ``"block"``.
    #[pyo3(get)]
    verdict: &'static str,
    /// The source the thresholds came from.
    #[pyo3(get)]
    source: &'static str,
    /// Evidence sorted by position.
    #[pyo3(get)]
    evidence: Vec<PyInjectionEvidence>,
}

impl PyInjectionVerdict {
    fn convert(text: &str, source: Source, r: InjectionResult) -> Option<Self> {
        let mut cp = CodePoints::new(text);
        let evidence = r
            .evidence
            .into_iter()
            .map(|e| {
                Some(PyInjectionEvidence {
                    rule: e.rule.to_string(),
                    layer: e.layer.to_string(),
                    start: cp.at(e.start)?,
                    end: cp.at(e.end)?,
                    start_byte: e.start,
                    end_byte: e.end,
                    weight: score_f64(e.weight),
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let verdict = match r.verdict {
            warden_injection::Verdict::Allow => "allow",
            warden_injection::Verdict::Flag => "flag",
            warden_injection::Verdict::Block => "block",
        };
        Some(PyInjectionVerdict {
            score: score_f64(r.score),
            verdict,
            source: source_name(source),
            evidence,
        })
    }
}

#[pymethods]
impl PyInjectionVerdict {
    /// The distinct rule ids that fired, sorted.
    #[getter]
    fn rules(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.evidence.iter().map(|e| e.rule.clone()).collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// True when the verdict is ``"block"``.
    #[getter]
    fn blocked(&self) -> bool {
        self.verdict == "block"
    }

    fn __repr__(&self) -> String {
        format!(
            "InjectionVerdict(verdict='{}', score={}, source='{}', rules=[{}])",
            self.verdict,
            self.score,
            self.source,
            self.rules()
                .iter()
                .map(|r| format!("'{r}'"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// Scores text for prompt injection and jailbreaks.
///
/// Rules run on canonical views of the text (Unicode folding, zero-width
/// characters removed, confusables, leetspeak) and on hidden or encoded
/// payloads (Unicode tag characters, base64, hex, ...), in a dozen
/// languages, combined with a small learned model.
///
/// Build one and share it: immutable, thread-safe, GIL released while
/// checking. :func:`warden.check_injection` uses a shared default one.
///
/// Args:
///     rules: ``None`` for the built-in rules and model, or a directory of
///         injection rule files (``*.toml``, optional ``model.bin``).
///     config: ``None``; a dict of detector settings (per-source thresholds
///         ``user``/``system``/``tool``/``document`` as ``{"flag": .., "block": ..}``,
///         ``disabled_rules``, ``learned``, ...); or the path of a warden
///         config file (TOML), whose ``[injection]`` table is used.
///
/// Raises:
///     PatternError: a rule file is invalid.
///     ConfigError: the configuration is invalid.
///     InjectionError: the model could not be loaded.
#[pyclass(frozen, module = "warden._warden", name = "InjectionDetector")]
pub struct PyInjectionDetector {
    inner: Detector,
}

fn load_config(py: Python<'_>, config: &Bound<'_, PyAny>) -> PyResult<DetectorConfig> {
    if let Ok(d) = config.downcast::<PyDict>() {
        let value = pyjson::to_json(d.as_any())?;
        return serde_json::from_value(value)
            .map_err(|e| Family::Config.err(format!("invalid injection config: {e}")));
    }
    let path: PathBuf = config
        .extract()
        .map_err(|_| PyTypeError::new_err("config must be a dict or a path to a TOML file"))?;
    let shown = path.display().to_string();
    let src = py
        .allow_threads(|| std::fs::read_to_string(&path))
        .map_err(|e| Family::Config.err(format!("{shown}: {e}")))?;
    toml::from_str::<ConfigFile>(&src)
        .map(|f| f.injection)
        .map_err(|e| Family::Config.err(format!("{shown}: {}", e.message())))
}

/// The `[injection]` table of a warden config file.
#[derive(serde::Deserialize)]
struct ConfigFile {
    #[serde(default)]
    injection: DetectorConfig,
}

fn texts_of(texts: &Bound<'_, PyAny>) -> PyResult<Vec<PyBackedStr>> {
    if texts.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(
            "check_batch() takes a sequence of str, not a str",
        ));
    }
    texts
        .try_iter()?
        .map(|t| t?.extract::<PyBackedStr>())
        .collect()
}

fn bad_span() -> PyErr {
    InternalError::new_err("the engine reported a span outside the text")
}

#[pymethods]
impl PyInjectionDetector {
    #[new]
    #[pyo3(signature = (rules=None, config=None))]
    fn new(
        py: Python<'_>,
        rules: Option<PathBuf>,
        config: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let cfg = match config {
            Some(c) if !c.is_none() => Some(load_config(py, c)?),
            _ => None,
        };
        let built = py.allow_threads(|| {
            shield(|| match &rules {
                None => Detector::builtin(),
                Some(dir) => Detector::from_dir(dir),
            })
        })?;
        let mut inner = built.map_err(|e| injection_err(py, &e))?;
        if let Some(cfg) = cfg {
            inner = inner.with_config(cfg);
        }
        Ok(PyInjectionDetector { inner })
    }

    /// Number of compiled rules.
    #[getter]
    fn rule_count(&self) -> usize {
        self.inner.rule_count()
    }

    /// Scores ``text`` as coming from ``source`` (``"user"``, ``"system"``,
    /// ``"tool"`` or ``"document"``). Releases the GIL.
    ///
    /// Raises:
    ///     ValueError: unknown source.
    #[pyo3(signature = (text, source="user"))]
    fn check(
        &self,
        py: Python<'_>,
        text: PyBackedStr,
        source: &str,
    ) -> PyResult<PyInjectionVerdict> {
        let source = parse_source(source)?;
        py.allow_threads(|| {
            shield(|| PyInjectionVerdict::convert(&text, source, self.inner.check(&text, source)))
        })?
        .ok_or_else(bad_span)
    }

    /// Scores many texts from one source in parallel on all cores.
    #[pyo3(signature = (texts, source="user"))]
    fn check_batch(
        &self,
        py: Python<'_>,
        texts: &Bound<'_, PyAny>,
        source: &str,
    ) -> PyResult<Vec<PyInjectionVerdict>> {
        let source = parse_source(source)?;
        let texts = texts_of(texts)?;
        py.allow_threads(|| {
            shield(|| {
                texts
                    .par_iter()
                    .map(|t| PyInjectionVerdict::convert(t, source, self.inner.check(t, source)))
                    .collect::<Option<Vec<_>>>()
            })
        })?
        .ok_or_else(bad_span)
    }

    fn __repr__(&self) -> String {
        format!("InjectionDetector(rules={})", self.inner.rule_count())
    }
}
