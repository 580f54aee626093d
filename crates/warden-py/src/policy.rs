//! `Policy`, `Verdict`: tool-call validation against a policy and its ledger.

use std::future::Future;
use std::path::PathBuf;
use std::sync::OnceLock;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use serde_json::Value;
use tokio::runtime::Runtime;
use warden_policy::{Decision, PolicyOptions, Principal, ToolCall};

use crate::errors::{shield, Family, WardenError};
use crate::pyjson;

/// One runtime for every policy in the process: the engines are async
/// (SQLite on the blocking pool, PostgreSQL connections as tasks), Python is
/// not. A worker thread keeps connection tasks running between calls.
fn runtime() -> PyResult<&'static Runtime> {
    static RT: OnceLock<Result<Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("warden-policy")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| WardenError::new_err(format!("cannot start the policy runtime: {e}")))
}

/// Runs a policy future to completion with the GIL released.
fn block_on<F: Future + Send>(py: Python<'_>, fut: F) -> PyResult<F::Output>
where
    F::Output: Send,
{
    let rt = runtime()?;
    py.allow_threads(|| shield(|| rt.block_on(fut)))
}

fn policy_err(py: Python<'_>, e: &warden_policy::Error) -> PyErr {
    let err = Family::Policy.err(e.to_string());
    let value = err.value(py);
    let _ = value.setattr("file", e.file());
    let problems: Vec<String> = e.problems().iter().map(ToString::to_string).collect();
    let _ = value.setattr("problems", problems);
    let _ = value.setattr("kind", format!("{:?}", e.kind()).to_lowercase());
    err
}

fn options(ledger: Option<String>, state: Option<String>) -> PolicyOptions {
    PolicyOptions {
        ledger_url: ledger,
        state_url: state,
        ..PolicyOptions::default()
    }
}

/// The decision on one tool call.
///
/// ``verdict`` is ``"allow"``, ``"deny"``, ``"needs_approval"`` or
/// ``"error"`` (Warden could not decide, e.g. the ledger is down: treat as
/// deny). ``rules`` and ``messages`` say why; ``arguments`` are the normalised
/// arguments (money in integer minor units).
#[pyclass(frozen, module = "warden._warden", name = "Verdict")]
pub struct PyVerdict {
    inner: warden_policy::Verdict,
}

#[pymethods]
impl PyVerdict {
    /// ``"allow"``, ``"deny"``, ``"needs_approval"`` or ``"error"``.
    #[getter]
    fn verdict(&self) -> &'static str {
        self.inner.verdict.as_str()
    }

    /// True only for ``"allow"``.
    #[getter]
    fn allowed(&self) -> bool {
        self.inner.verdict == Decision::Allow
    }

    /// The tool name.
    #[getter]
    fn tool(&self) -> &str {
        &self.inner.tool
    }

    /// Rule ids that decided: the failing ones for a denial, the passing ones
    /// for an allow.
    #[getter]
    fn rules(&self) -> Vec<String> {
        self.inner.rules.clone()
    }

    /// Human-readable reasons, one per failing rule (or the error).
    #[getter]
    fn messages(&self) -> Vec<String> {
        self.inner.messages.clone()
    }

    /// Normalised arguments (amounts in minor units); empty when they did not
    /// validate.
    #[getter]
    fn arguments<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        pyjson::to_py(py, &Value::Object(self.inner.args.clone()))
    }

    /// For ``"needs_approval"``: the approval request to decide
    /// (:meth:`Policy.approve`).
    #[getter]
    fn approval_id(&self) -> Option<&str> {
        self.inner.approval_id.as_deref()
    }

    /// For an allowed money call checked with ``hold=True``: the hold placed
    /// on the amount. :meth:`Policy.confirm` or :meth:`Policy.void` it.
    #[getter]
    fn hold_id(&self) -> Option<&str> {
        self.inner.hold_id.as_deref()
    }

    /// True when this is the stored decision for a repeated idempotency key.
    #[getter]
    fn replayed(&self) -> bool {
        self.inner.replayed
    }

    /// The verdict as a dict, in the shape ``warden check-call`` prints.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let v = serde_json::to_value(&self.inner)
            .map_err(|e| WardenError::new_err(format!("cannot serialise verdict: {e}")))?;
        pyjson::to_py(py, &v)
    }

    fn __bool__(&self) -> bool {
        self.allowed()
    }

    fn __repr__(&self) -> String {
        let rules: Vec<String> = self.inner.rules.iter().map(|r| format!("'{r}'")).collect();
        format!(
            "Verdict(verdict='{}', tool='{}', rules=[{}])",
            self.inner.verdict.as_str(),
            self.inner.tool.escape_default(),
            rules.join(", ")
        )
    }
}

/// A tool-call policy: which roles may call which tools, with which
/// arguments, and whether the amounts agree with the ledger.
///
/// Load one with :meth:`load` (a policy TOML file) or :meth:`demo` (the
/// built-in demo policy and SQLite ledger), share it between threads, and
/// check calls with :meth:`check_call` or the :func:`warden.guard_tool`
/// decorator. Database work runs on an internal async runtime with the GIL
/// released.
///
/// Example::
///
///     >>> policy = warden.Policy.demo()
///     >>> policy.check_call("support_agent", "issue_refund",
///     ...                   {"order_id": "ord_1001", "amount": "100.00", "currency": "USD"}).verdict
///     'allow'
///     >>> policy.check_call("support_agent", "issue_refund",
///     ...                   {"order_id": "ord_1001", "amount": "100.01", "currency": "USD"}).verdict
///     'deny'
#[pyclass(frozen, module = "warden._warden", name = "Policy")]
pub struct PyPolicy {
    inner: warden_policy::Policy,
}

fn arguments_map(arguments: &Bound<'_, PyAny>) -> PyResult<serde_json::Map<String, Value>> {
    let value = if let Ok(s) = arguments.downcast::<PyString>() {
        // OpenAI sends arguments as a JSON string; accept it as is.
        serde_json::from_str(&s.to_cow()?)
            .map_err(|e| PyTypeError::new_err(format!("arguments are not valid JSON: {e}")))?
    } else if arguments.is_instance_of::<PyDict>() {
        pyjson::to_json(arguments)?
    } else {
        return Err(PyTypeError::new_err(
            "arguments must be a dict or a JSON object string",
        ));
    };
    match value {
        Value::Object(m) => Ok(m),
        _ => Err(PyTypeError::new_err("arguments must be a JSON object")),
    }
}

fn dict_of<T: serde::Serialize>(py: Python<'_>, value: &T) -> PyResult<PyObject> {
    let v = serde_json::to_value(value)
        .map_err(|e| WardenError::new_err(format!("cannot serialise: {e}")))?;
    Ok(pyjson::to_py(py, &v)?.unbind())
}

#[pymethods]
impl PyPolicy {
    /// Loads a policy file (TOML).
    ///
    /// Args:
    ///     path: the policy file.
    ///     ledger: ledger URL overriding the file's (``sqlite:PATH``,
    ///         ``postgres://...`` or ``builtin:demo``).
    ///     state: state-store URL for holds, approvals and idempotency
    ///         (``sqlite:PATH`` or ``postgres://...``), overriding the file's.
    ///
    /// Raises:
    ///     PolicyError: the file cannot be read or is invalid; ``.problems``
    ///         lists every problem with its line.
    #[staticmethod]
    #[pyo3(signature = (path, *, ledger=None, state=None))]
    fn load(
        py: Python<'_>,
        path: PathBuf,
        ledger: Option<String>,
        state: Option<String>,
    ) -> PyResult<PyPolicy> {
        let opts = options(ledger, state);
        py.allow_threads(|| shield(|| warden_policy::Policy::load_with(&path, opts)))?
            .map(|inner| PyPolicy { inner })
            .map_err(|e| policy_err(py, &e))
    }

    /// The built-in demo policy with the demo SQLite ledger: ``support_agent``
    /// may ``lookup_order`` and ``issue_refund``; ``finance`` may also
    /// ``create_payout``.
    ///
    /// Args:
    ///     state: state-store URL (default: a SQLite file in Warden's cache
    ///         directory, ``$WARDEN_CACHE_DIR``).
    #[staticmethod]
    #[pyo3(signature = (*, state=None))]
    fn demo(py: Python<'_>, state: Option<String>) -> PyResult<PyPolicy> {
        let opts = options(None, state);
        py.allow_threads(|| shield(|| warden_policy::Policy::demo(opts)))?
            .map(|inner| PyPolicy { inner })
            .map_err(|e| policy_err(py, &e))
    }

    /// Where the policy came from (its file, or ``<builtin demo policy>``).
    #[getter]
    fn origin(&self) -> &str {
        self.inner.origin()
    }

    /// Checks one tool call.
    ///
    /// Args:
    ///     role: the caller's role in the policy (e.g. ``"support_agent"``).
    ///     name: the tool name.
    ///     arguments: the arguments, as a dict or a JSON object string (as
    ///         OpenAI sends them). Pass money as strings or ``Decimal``, not
    ///         floats.
    ///     mfa: whether the caller authenticated with MFA (step-up rules).
    ///     principal: the caller's identity for velocity limits and approvals
    ///         (default ``"python:<role>"``).
    ///     hold: ``False`` (default) only evaluates. ``True`` acts on the
    ///         verdict: an allowed money call places a hold on the amount
    ///         (``.hold_id``: :meth:`confirm` it after the tool ran, or
    ///         :meth:`void` it), and an idempotency key records the decision.
    ///
    /// Returns:
    ///     Verdict: never raises for a denied call; check ``.allowed``.
    #[pyo3(signature = (role, name, arguments, *, mfa=false, principal=None, hold=false))]
    #[allow(clippy::too_many_arguments)]
    fn check_call(
        &self,
        py: Python<'_>,
        role: String,
        name: String,
        arguments: &Bound<'_, PyAny>,
        mfa: bool,
        principal: Option<String>,
        hold: bool,
    ) -> PyResult<PyVerdict> {
        let arguments = arguments_map(arguments)?;
        let id = principal.unwrap_or_else(|| format!("python:{role}"));
        let who = Principal::new(id, role).with_mfa(mfa);
        let call = ToolCall::new(name, arguments);
        let policy = &self.inner;
        let inner = if hold {
            block_on(py, policy.validate(&who, &call))?
        } else {
            block_on(py, policy.evaluate(&who, &call))?
        };
        Ok(PyVerdict { inner })
    }

    /// Posts a hold: the tool ran. Returns the hold as a dict.
    ///
    /// Raises:
    ///     PolicyError: unknown hold, or not in the ``held`` state.
    fn confirm(&self, py: Python<'_>, hold_id: String) -> PyResult<PyObject> {
        let hold = block_on(py, self.inner.confirm(&hold_id))?.map_err(|e| policy_err(py, &e))?;
        dict_of(py, &hold)
    }

    /// Voids a hold: the tool failed or was abandoned; the amount is
    /// released. Returns the hold as a dict.
    ///
    /// Raises:
    ///     PolicyError: unknown hold, or not in the ``held`` state.
    fn void(&self, py: Python<'_>, hold_id: String) -> PyResult<PyObject> {
        let hold = block_on(py, self.inner.void(&hold_id))?.map_err(|e| policy_err(py, &e))?;
        dict_of(py, &hold)
    }

    /// Approves a pending approval request; the same call is then allowed
    /// once. Returns the approval as a dict.
    fn approve(&self, py: Python<'_>, approval_id: String, approver: String) -> PyResult<PyObject> {
        let a = block_on(py, self.inner.approve(&approval_id, &approver))?
            .map_err(|e| policy_err(py, &e))?;
        dict_of(py, &a)
    }

    /// Rejects a pending approval request; the same call is then denied.
    /// Returns the approval as a dict.
    fn reject(&self, py: Python<'_>, approval_id: String, approver: String) -> PyResult<PyObject> {
        let a = block_on(py, self.inner.reject(&approval_id, &approver))?
            .map_err(|e| policy_err(py, &e))?;
        dict_of(py, &a)
    }

    fn __repr__(&self) -> String {
        format!("Policy(origin='{}')", self.inner.origin().escape_default())
    }
}
