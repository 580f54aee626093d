//! CEL rules. Ledger calls (`ledger.<query>(args…)`) and `holds(resource)` are async
//! database reads, while CEL evaluation is synchronous; so at load time each such call
//! is cut out of the expression tree and replaced by a variable. At validation time the
//! call's arguments are evaluated with CEL, the queries run (bound parameters only), and
//! the whole expression is then evaluated with the results bound to those variables.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use cel::common::ast::{EntryExpr, Expr};
use cel::parser::{Expression, Parser};
use cel::{Context, Value};

use crate::spec::QuerySpec;

/// What a cut-out call reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CallKind {
    /// A named ledger query.
    Ledger(String),
    /// The sum of active holds on a resource, from the state store.
    Holds,
}

/// One cut-out call: its variable, what it reads, and its argument expressions.
pub(crate) struct CutCall {
    pub var: String,
    pub kind: CallKind,
    pub args: Vec<Expression>,
}

/// A compiled rule.
pub(crate) struct CompiledRule {
    pub id: String,
    pub message: String,
    pub expr: Expression,
    pub calls: Vec<CutCall>,
}

impl CompiledRule {
    pub(crate) fn uses_holds(&self) -> bool {
        self.calls.iter().any(|c| c.kind == CallKind::Holds)
    }
}

pub(crate) struct RuleCompiler<'a> {
    pub args: &'a BTreeSet<&'a str>,
    pub queries: &'a BTreeMap<String, QuerySpec>,
}

impl RuleCompiler<'_> {
    pub(crate) fn compile(
        &self,
        id: &str,
        source: &str,
        message: &str,
    ) -> Result<CompiledRule, String> {
        // The parser is generated code; a panic on some odd input must not take the
        // process down, so it becomes a compile error of this rule.
        let parsed = std::panic::catch_unwind(|| Parser::default().parse(source))
            .map_err(|_| "CEL parser failed on this expression".to_string())?;
        // The parser's message spans several lines (source excerpt and caret); a lint line
        // keeps the first, which carries the position and the reason.
        let mut expr = parsed.map_err(|e| {
            let text = e.to_string();
            format!(
                "CEL does not compile: {}",
                text.lines().next().unwrap_or("syntax error")
            )
        })?;
        let mut calls = Vec::new();
        let mut errors = Vec::new();
        cut(&mut expr, &mut calls, &mut errors, self.queries, false);
        let mut known: BTreeSet<String> = self.args.iter().map(|s| (*s).to_string()).collect();
        known.insert("principal".into());
        known.extend(calls.iter().map(|c| c.var.clone()));
        let mut bound = BTreeSet::new();
        check_idents(&expr, &known, &mut bound, &mut errors);
        for c in &calls {
            for a in &c.args {
                check_idents(a, &known, &mut bound, &mut errors);
            }
        }
        if !errors.is_empty() {
            return Err(errors.join("; "));
        }
        Ok(CompiledRule {
            id: id.to_string(),
            message: message.to_string(),
            expr,
            calls,
        })
    }
}

fn cut(
    e: &mut Expression,
    calls: &mut Vec<CutCall>,
    errors: &mut Vec<String>,
    queries: &BTreeMap<String, QuerySpec>,
    in_arg: bool,
) {
    let replace = match &mut e.expr {
        Expr::Call(c) => {
            let is_ledger = matches!(c.target.as_deref(), Some(t) if matches!(&t.expr, Expr::Ident(n) if n == "ledger"));
            let is_holds = c.target.is_none() && c.func_name == "holds";
            if is_ledger || is_holds {
                if in_arg {
                    errors.push(
                        "ledger calls cannot be nested inside another ledger call's arguments"
                            .into(),
                    );
                }
                let kind = if is_ledger {
                    if !queries.contains_key(&c.func_name) {
                        errors.push(format!(
                            "unknown ledger query {:?} (declare it under [ledger.queries])",
                            c.func_name
                        ));
                    }
                    CallKind::Ledger(c.func_name.clone())
                } else {
                    if c.args.len() != 1 {
                        errors.push("holds() takes exactly one argument (the resource)".into());
                    }
                    CallKind::Holds
                };
                let mut args = std::mem::take(&mut c.args);
                for a in &mut args {
                    cut(a, calls, errors, queries, true);
                }
                let var = format!("__warden_call_{}", calls.len());
                calls.push(CutCall {
                    var: var.clone(),
                    kind,
                    args,
                });
                Some(var)
            } else {
                if let Some(t) = c.target.as_deref_mut() {
                    cut(t, calls, errors, queries, in_arg);
                }
                for a in &mut c.args {
                    cut(a, calls, errors, queries, in_arg);
                }
                None
            }
        }
        Expr::Comprehension(c) => {
            for x in [
                &mut c.iter_range,
                &mut c.accu_init,
                &mut c.loop_cond,
                &mut c.loop_step,
                &mut c.result,
            ] {
                cut(x, calls, errors, queries, in_arg);
            }
            None
        }
        Expr::List(l) => {
            for x in &mut l.elements {
                cut(x, calls, errors, queries, in_arg);
            }
            None
        }
        Expr::Map(m) => {
            for en in &mut m.entries {
                match &mut en.expr {
                    EntryExpr::MapEntry(me) => {
                        cut(&mut me.key, calls, errors, queries, in_arg);
                        cut(&mut me.value, calls, errors, queries, in_arg);
                    }
                    EntryExpr::StructField(sf) => {
                        cut(&mut sf.value, calls, errors, queries, in_arg)
                    }
                }
            }
            None
        }
        Expr::Struct(s) => {
            for en in &mut s.entries {
                match &mut en.expr {
                    EntryExpr::MapEntry(me) => {
                        cut(&mut me.key, calls, errors, queries, in_arg);
                        cut(&mut me.value, calls, errors, queries, in_arg);
                    }
                    EntryExpr::StructField(sf) => {
                        cut(&mut sf.value, calls, errors, queries, in_arg)
                    }
                }
            }
            None
        }
        Expr::Select(s) => {
            cut(&mut s.operand, calls, errors, queries, in_arg);
            None
        }
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => None,
    };
    if let Some(var) = replace {
        e.expr = Expr::Ident(var);
    }
}

fn check_idents(
    e: &Expression,
    known: &BTreeSet<String>,
    bound: &mut BTreeSet<String>,
    errors: &mut Vec<String>,
) {
    match &e.expr {
        Expr::Ident(n) => {
            if !known.contains(n) && !bound.contains(n) {
                if n == "ledger" {
                    errors.push("`ledger` is only usable as ledger.<query>(args)".into());
                } else {
                    errors.push(format!(
                        "unknown variable {n:?} (not an argument of this tool)"
                    ));
                }
            }
        }
        Expr::Call(c) => {
            if let Some(t) = &c.target {
                check_idents(t, known, bound, errors);
            }
            for a in &c.args {
                check_idents(a, known, bound, errors);
            }
        }
        Expr::Comprehension(c) => {
            // Macro variables (e.g. `x` in `list.all(x, …)`) are in scope inside the loop.
            let mut inner = bound.clone();
            inner.insert(c.iter_var.clone());
            if let Some(v2) = &c.iter_var2 {
                inner.insert(v2.clone());
            }
            inner.insert(c.accu_var.clone());
            check_idents(&c.iter_range, known, bound, errors);
            for x in [&c.accu_init, &c.loop_cond, &c.loop_step, &c.result] {
                check_idents(x, known, &mut inner, errors);
            }
        }
        Expr::List(l) => l
            .elements
            .iter()
            .for_each(|x| check_idents(x, known, bound, errors)),
        Expr::Map(m) => {
            for en in &m.entries {
                if let EntryExpr::MapEntry(me) = &en.expr {
                    check_idents(&me.key, known, bound, errors);
                    check_idents(&me.value, known, bound, errors);
                }
            }
        }
        Expr::Select(s) => check_idents(&s.operand, known, bound, errors),
        Expr::Struct(_) | Expr::Literal(_) | Expr::Unspecified => {}
    }
}

/// Converts a normalised JSON argument into a CEL value.
pub(crate) fn to_cel(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => n.as_f64().map_or(Value::Null, Value::Float),
        },
        serde_json::Value::String(s) => Value::String(Arc::new(s.clone())),
        serde_json::Value::Array(a) => Value::List(Arc::new(a.iter().map(to_cel).collect())),
        serde_json::Value::Object(m) => {
            let map: std::collections::HashMap<cel::objects::Key, Value> = m
                .iter()
                .map(|(k, v)| (cel::objects::Key::String(Arc::new(k.clone())), to_cel(v)))
                .collect();
            Value::Map(cel::objects::Map { map: Arc::new(map) })
        }
    }
}

/// Evaluates `expr` in `ctx`; `Ok(bool)` or a message.
pub(crate) fn eval_bool(ctx: &Context<'_>, expr: &Expression) -> Result<bool, String> {
    match ctx.resolve(expr) {
        Ok(Value::Bool(b)) => Ok(b),
        Ok(other) => Err(format!(
            "rule evaluated to {:?}, not a bool",
            other.type_of()
        )),
        Err(e) => Err(e.to_string()),
    }
}
