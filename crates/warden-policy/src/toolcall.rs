//! The caller and the call: [`Principal`] and [`ToolCall`], with converters from the
//! OpenAI and Anthropic wire shapes.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Who is calling: an identity, the policy role it acts in, and whether it authenticated
/// with multi-factor authentication (the proxy fills `mfa` from the token's `amr` claim).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// Stable identity (user or service id). Velocity limits and approvals are per id.
    pub id: String,
    /// The policy role (e.g. `support_agent`).
    pub role: String,
    /// True when the caller authenticated with MFA.
    #[serde(default)]
    pub mfa: bool,
}

impl Principal {
    /// A principal without MFA.
    ///
    /// # Example
    ///
    /// ```
    /// let p = warden_policy::Principal::new("agent-7", "support_agent").with_mfa(true);
    /// assert!(p.mfa);
    /// ```
    pub fn new(id: impl Into<String>, role: impl Into<String>) -> Principal {
        Principal {
            id: id.into(),
            role: role.into(),
            mfa: false,
        }
    }

    /// Sets the MFA fact.
    #[must_use]
    pub fn with_mfa(mut self, mfa: bool) -> Principal {
        self.mfa = mfa;
        self
    }
}

/// One tool call: a tool name and a JSON object of arguments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The tool (function) name.
    pub name: String,
    /// The arguments, as the model produced them.
    pub arguments: Map<String, Value>,
}

/// A tool call in a wire shape that cannot be converted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ToolCallError {
    /// No tool name.
    #[error("tool call has no name")]
    MissingName,
    /// The arguments are not a JSON object (or, for OpenAI, a string holding one).
    #[error("tool call arguments are not a JSON object")]
    ArgumentsNotObject,
    /// Neither an OpenAI nor an Anthropic tool call.
    #[error("not a recognised tool call shape (expected OpenAI {{\"name\",\"arguments\"}} or Anthropic {{\"type\":\"tool_use\",\"name\",\"input\"}})")]
    UnknownShape,
}

impl ToolCall {
    /// Builds a call from a name and an argument object.
    pub fn new(name: impl Into<String>, arguments: Map<String, Value>) -> ToolCall {
        ToolCall {
            name: name.into(),
            arguments,
        }
    }

    /// Converts an OpenAI tool call: either the `function` object `{"name","arguments"}`
    /// or the whole `tool_calls[]` entry `{"type":"function","function":{…}}`.
    /// `arguments` may be the JSON string OpenAI sends or an object.
    ///
    /// # Example
    ///
    /// ```
    /// let v = serde_json::json!({"type":"function","function":{"name":"lookup_order","arguments":"{\"order_id\":\"ord_1001\"}"}});
    /// let call = warden_policy::ToolCall::from_openai(&v).unwrap();
    /// assert_eq!(call.arguments["order_id"], "ord_1001");
    /// ```
    ///
    /// # Errors
    ///
    /// A missing name, or arguments that are not a JSON object.
    pub fn from_openai(value: &Value) -> Result<ToolCall, ToolCallError> {
        let f = value.get("function").unwrap_or(value);
        let name = f
            .get("name")
            .and_then(Value::as_str)
            .ok_or(ToolCallError::MissingName)?;
        let arguments = match f.get("arguments") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::String(s)) if s.trim().is_empty() => Map::new(),
            Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                Ok(Value::Object(m)) => m,
                _ => return Err(ToolCallError::ArgumentsNotObject),
            },
            Some(Value::Object(m)) => m.clone(),
            Some(_) => return Err(ToolCallError::ArgumentsNotObject),
        };
        Ok(ToolCall {
            name: name.to_string(),
            arguments,
        })
    }

    /// Converts an Anthropic `tool_use` content block `{"type":"tool_use","name","input"}`.
    ///
    /// # Example
    ///
    /// ```
    /// let v = serde_json::json!({"type":"tool_use","id":"toolu_1","name":"lookup_order","input":{"order_id":"ord_1001"}});
    /// let call = warden_policy::ToolCall::from_anthropic(&v).unwrap();
    /// assert_eq!(call.name, "lookup_order");
    /// ```
    ///
    /// # Errors
    ///
    /// Not a `tool_use` block, a missing name, or `input` that is not an object.
    pub fn from_anthropic(value: &Value) -> Result<ToolCall, ToolCallError> {
        if value.get("type").and_then(Value::as_str) != Some("tool_use") {
            return Err(ToolCallError::UnknownShape);
        }
        let name = value
            .get("name")
            .and_then(Value::as_str)
            .ok_or(ToolCallError::MissingName)?;
        let arguments = match value.get("input") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(_) => return Err(ToolCallError::ArgumentsNotObject),
        };
        Ok(ToolCall {
            name: name.to_string(),
            arguments,
        })
    }

    /// Accepts either shape (Anthropic when `type` is `tool_use`, else OpenAI).
    ///
    /// # Errors
    ///
    /// As [`ToolCall::from_openai`] / [`ToolCall::from_anthropic`].
    pub fn from_any(value: &Value) -> Result<ToolCall, ToolCallError> {
        if !value.is_object() {
            return Err(ToolCallError::UnknownShape);
        }
        if value.get("type").and_then(Value::as_str) == Some("tool_use") {
            Self::from_anthropic(value)
        } else {
            Self::from_openai(value)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shapes_agree() {
        let a = ToolCall::from_openai(&json!({"name":"t","arguments":"{\"x\":1}"})).unwrap();
        let b = ToolCall::from_anthropic(&json!({"type":"tool_use","name":"t","input":{"x":1}}))
            .unwrap();
        let c = ToolCall::from_any(&json!({"name":"t","arguments":{"x":1}})).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
    }

    #[test]
    fn bad_shapes() {
        assert_eq!(
            ToolCall::from_openai(&json!({"arguments":"{}"})),
            Err(ToolCallError::MissingName)
        );
        assert_eq!(
            ToolCall::from_openai(&json!({"name":"t","arguments":"[1]"})),
            Err(ToolCallError::ArgumentsNotObject)
        );
        assert_eq!(
            ToolCall::from_openai(&json!({"name":"t","arguments":"{"})),
            Err(ToolCallError::ArgumentsNotObject)
        );
        assert_eq!(
            ToolCall::from_anthropic(&json!({"type":"text","text":"hi"})),
            Err(ToolCallError::UnknownShape)
        );
        assert_eq!(
            ToolCall::from_any(&json!("x")),
            Err(ToolCallError::UnknownShape)
        );
    }
}
