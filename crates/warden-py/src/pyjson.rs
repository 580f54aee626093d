//! Python values to and from `serde_json::Value`, for configuration dicts,
//! tool-call arguments and the structured parts of verdicts.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::{Map, Number, Value};

/// Nesting deeper than this is refused rather than recursed into.
const MAX_DEPTH: usize = 128;

/// Converts a JSON-like Python value (dict with str keys, list, tuple, str,
/// int, float, bool, None, `decimal.Decimal`) to JSON. A `Decimal` becomes a
/// JSON string holding its exact digits, so money never passes through a float.
pub(crate) fn to_json(value: &Bound<'_, PyAny>) -> PyResult<Value> {
    convert(value, 0)
}

fn convert(value: &Bound<'_, PyAny>, depth: usize) -> PyResult<Value> {
    if depth > MAX_DEPTH {
        return Err(PyValueError::new_err("value nested too deeply"));
    }
    if value.is_none() {
        return Ok(Value::Null);
    }
    // bool before int: Python's bool is an int subclass.
    if let Ok(b) = value.downcast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if let Ok(s) = value.downcast::<PyString>() {
        return Ok(Value::String(s.to_cow()?.into_owned()));
    }
    if value.is_instance_of::<PyInt>() {
        if let Ok(i) = value.extract::<i64>() {
            return Ok(Value::Number(i.into()));
        }
        if let Ok(u) = value.extract::<u64>() {
            return Ok(Value::Number(u.into()));
        }
        // Too large for JSON numbers we can represent exactly: keep the digits.
        return Ok(Value::String(value.str()?.to_cow()?.into_owned()));
    }
    if let Ok(f) = value.downcast::<PyFloat>() {
        return Number::from_f64(f.value())
            .map(Value::Number)
            .ok_or_else(|| PyValueError::new_err("NaN and infinity are not valid JSON numbers"));
    }
    if let Ok(d) = value.downcast::<PyDict>() {
        let mut map = Map::with_capacity(d.len());
        for (k, v) in d.iter() {
            let key = k
                .downcast::<PyString>()
                .map_err(|_| PyTypeError::new_err("dict keys must be str"))?
                .to_cow()?
                .into_owned();
            map.insert(key, convert(&v, depth + 1)?);
        }
        return Ok(Value::Object(map));
    }
    if let Ok(l) = value.downcast::<PyList>() {
        return l
            .iter()
            .map(|v| convert(&v, depth + 1))
            .collect::<PyResult<_>>()
            .map(Value::Array);
    }
    if let Ok(t) = value.downcast::<PyTuple>() {
        return t
            .iter()
            .map(|v| convert(&v, depth + 1))
            .collect::<PyResult<_>>()
            .map(Value::Array);
    }
    let ty = value.get_type();
    if ty.module()?.to_cow()? == "decimal" && ty.name()?.to_cow()? == "Decimal" {
        return Ok(Value::String(value.str()?.to_cow()?.into_owned()));
    }
    Err(PyTypeError::new_err(format!(
        "cannot convert a value of type {} to JSON",
        ty.name()?
    )))
}

/// Converts JSON to plain Python values (dict, list, str, int, float, bool, None).
pub(crate) fn to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(k, to_py(py, v)?)?;
            }
            dict.into_any()
        }
    })
}
