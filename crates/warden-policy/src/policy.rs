//! [`Policy`]: load a policy file, validate calls, manage holds and approvals.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cel::{Context, Value};
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::Map;
use sha2::{Digest, Sha256};
use warden_audit::AuditLog;

use crate::error::{Error, ErrorKind, Problem};
use crate::ledger::{DbUrl, Ledger, SqlParam, SqlValue};
use crate::rules::{eval_bool, to_cel, CallKind};
use crate::schema::normalise;
use crate::spec::{compile, Spec, ToolSpec};
use crate::store::{Approval, Hold, Outcome, Reservation, Store};
use crate::toolcall::{Principal, ToolCall};
use crate::verdict::{Decision, Verdict};

/// How many times a reservation is re-evaluated when concurrent calls keep changing the
/// balance it was computed from, before giving up with `error`.
const MAX_ATTEMPTS: usize = 16;

/// Overrides applied when loading a policy (the CLI's and proxy's flags).
#[derive(Clone, Debug, Default)]
pub struct PolicyOptions {
    /// Ledger URL (`sqlite:PATH`, a path, `postgres://…`, or `builtin:demo`), overriding the file.
    pub ledger_url: Option<String>,
    /// State store URL (`sqlite:PATH` or `postgres://…`), overriding the file.
    pub state_url: Option<String>,
    /// PostgreSQL schema for the state store, overriding the file.
    pub state_schema: Option<String>,
    /// PostgreSQL schema for the ledger, overriding the file.
    pub ledger_schema: Option<String>,
    /// Where every verdict is recorded.
    pub audit: Option<Arc<AuditLog>>,
    /// Key for argument fingerprints in audit records (else the env var named in the
    /// policy, `WARDEN_AUDIT_KEY` by default; else unkeyed SHA-256).
    pub fingerprint_key: Option<Vec<u8>>,
}

struct Inner {
    origin: String,
    spec: Spec,
    ledger: Option<Ledger>,
    store: Store,
    root: Context<'static>,
    audit: Option<Arc<AuditLog>>,
    fingerprint_key: Option<Vec<u8>>,
}

/// A loaded tool-call policy with its ledger and state store. Cheap to clone (`Arc`),
/// `Send + Sync`. Databases are connected lazily: a ledger that is down at load time
/// gives `error` verdicts, not a failed start.
///
/// # Example
///
/// ```
/// use warden_policy::{Decision, Policy, PolicyOptions, Principal, ToolCall};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let opts = PolicyOptions {
///     state_url: Some(format!("sqlite:{}", dir.path().join("state.sqlite").display())),
///     ..PolicyOptions::default()
/// };
/// let policy = Policy::demo(opts).unwrap();
/// let agent = Principal::new("agent-1", "support_agent");
/// let call = ToolCall::from_any(&serde_json::json!({
///     "name": "issue_refund",
///     "arguments": {"order_id": "ord_1001", "amount": "1200.00", "currency": "USD"}
/// })).unwrap();
/// let verdict = policy.evaluate(&agent, &call).await;
/// assert_eq!(verdict.verdict, Decision::Deny);
/// assert!(verdict.rules.contains(&"refund.within_refundable".to_string()));
/// # });
/// ```
#[derive(Clone)]
pub struct Policy {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("origin", &self.inner.origin)
            .field("tools", &self.inner.spec.tools.len())
            .finish()
    }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Where Warden keeps its own files when nothing else is configured
/// (`$WARDEN_CACHE_DIR`, else `$XDG_CACHE_HOME/warden`, else `~/.cache/warden`, else the
/// temp dir).
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("WARDEN_CACHE_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("warden");
    }
    if let Some(h) = std::env::var_os("HOME") {
        return PathBuf::from(h).join(".cache").join("warden");
    }
    std::env::temp_dir().join("warden")
}

fn resolve_url(
    explicit: Option<&String>,
    env: Option<&String>,
    file: Option<&String>,
) -> Option<String> {
    if let Some(u) = explicit {
        return Some(u.clone());
    }
    if let Some(v) = env
        .and_then(|e| std::env::var(e).ok())
        .filter(|v| !v.is_empty())
    {
        return Some(v);
    }
    file.cloned()
}

impl Policy {
    /// Loads a policy file with default options.
    ///
    /// # Errors
    ///
    /// I/O errors, or an [`ErrorKind::Policy`] error listing every problem with its line.
    pub fn load(path: impl AsRef<Path>) -> Result<Policy, Error> {
        Self::load_with(path, PolicyOptions::default())
    }

    /// Loads a policy file; relative SQLite paths are relative to the file's directory.
    ///
    /// # Errors
    ///
    /// As [`Policy::load`].
    pub fn load_with(path: impl AsRef<Path>, opts: PolicyOptions) -> Result<Policy, Error> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let src = std::fs::read_to_string(path)
            .map_err(|e| Error::new(ErrorKind::Io, e.to_string()).with_file(&origin))?;
        Self::from_source(&src, &origin, path.parent(), opts)
    }

    /// The built-in demo policy (`policies/demo.toml`) with the built-in demo ledger.
    ///
    /// # Errors
    ///
    /// Only if the demo ledger cannot be created in the cache directory.
    pub fn demo(opts: PolicyOptions) -> Result<Policy, Error> {
        Self::from_source(
            crate::demo::DEMO_POLICY,
            "<builtin demo policy>",
            None,
            opts,
        )
    }

    /// Compiles a policy from source. `origin` names it in errors; `base` resolves
    /// relative SQLite paths.
    ///
    /// # Errors
    ///
    /// As [`Policy::load`].
    pub fn from_source(
        src: &str,
        origin: &str,
        base: Option<&Path>,
        opts: PolicyOptions,
    ) -> Result<Policy, Error> {
        let mut problems = Vec::new();
        let Some(spec) = compile(src, &mut problems) else {
            return Err(Error::policy(origin, problems));
        };
        let ledger =
            build_ledger(&spec, base, &opts).map_err(|p| Error::policy(origin, vec![p]))?;
        let state_url = resolve_url(
            opts.state_url.as_ref(),
            spec.state_url_env.as_ref(),
            spec.state_url.as_ref(),
        )
        .unwrap_or_else(|| format!("sqlite:{}", cache_dir().join("state.sqlite").display()));
        let state_schema = opts
            .state_schema
            .clone()
            .or_else(|| spec.state_schema.clone());
        let store = Store::new(DbUrl::parse(&state_url, base), state_schema);
        let fingerprint_key = opts.fingerprint_key.clone().or_else(|| {
            let var = spec
                .fingerprint_key_env
                .clone()
                .unwrap_or_else(|| "WARDEN_AUDIT_KEY".into());
            std::env::var(var)
                .ok()
                .filter(|k| !k.is_empty())
                .map(String::into_bytes)
        });
        Ok(Policy {
            inner: Arc::new(Inner {
                origin: origin.to_string(),
                spec,
                ledger,
                store,
                root: Context::default(),
                audit: opts.audit,
                fingerprint_key,
            }),
        })
    }

    /// Checks a policy source and, if it compiles, prepares every ledger query against the
    /// configured ledger. Returns every problem found (empty = clean).
    pub async fn lint(src: &str, base: Option<&Path>, opts: PolicyOptions) -> Vec<Problem> {
        let mut problems = Vec::new();
        let Some(spec) = compile(src, &mut problems) else {
            return problems;
        };
        let ledger = match build_ledger(&spec, base, &opts) {
            Ok(l) => l,
            Err(p) => return vec![p],
        };
        if let Some(ledger) = ledger {
            let url_line = spec.ledger_url.as_ref().map(|(_, l)| *l);
            for (name, msg) in ledger.check().await {
                match name {
                    Some(n) => {
                        let line = spec.queries.get(&n).map(|q| q.line);
                        problems.push(Problem::new(line, format!("ledger query {n}: {msg}")));
                    }
                    None => problems.push(Problem::new(url_line, msg)),
                }
            }
        }
        problems
    }

    /// The policy's origin (file path or `<builtin demo policy>`).
    pub fn origin(&self) -> &str {
        &self.inner.origin
    }

    /// Validates a call and acts on the verdict: an allowed money call places a hold (in
    /// the same transaction that re-checks the balance), an idempotency key records the
    /// decision, an above-threshold call files an approval request. Records an audit
    /// record when the policy has an audit log; an allowed call whose record cannot be
    /// written becomes an `error` verdict (rule `audit.unavailable`). Never panics,
    /// never errors: problems become `error` verdicts.
    pub async fn validate(&self, principal: &Principal, call: &ToolCall) -> Verdict {
        let v = self.decide(principal, call, true).await;
        if self.record(principal, call, &v, "validate") || !v.is_allowed() {
            return v;
        }
        // A call is released only with its audit record: money would move
        // that the trail does not show. Its hold stays until it expires, which
        // errs on the side of less money available, never more.
        Verdict::error(
            &v.tool,
            "audit.unavailable",
            "the audit record of this call could not be written",
        )
    }

    /// Like [`Policy::validate`] but a dry run: places no hold and records no idempotency
    /// key. (An above-threshold call still files, or reuses, an approval request, so the
    /// id it prints can be approved.)
    pub async fn evaluate(&self, principal: &Principal, call: &ToolCall) -> Verdict {
        let v = self.decide(principal, call, false).await;
        self.record(principal, call, &v, "evaluate");
        v
    }

    /// Posts a hold: the caller executed the call. It keeps counting against its
    /// resource for `posted_ttl_secs`, until the ledger shows the movement.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`], [`ErrorKind::Conflict`] (already posted, voided or
    /// expired) or [`ErrorKind::State`].
    pub async fn confirm(&self, hold_id: &str) -> Result<Hold, Error> {
        let h = self
            .inner
            .store
            .hold_move(hold_id, "posted", now_ms())
            .await?;
        self.record_event("hold_posted", &h.id, &h.principal);
        Ok(h)
    }

    /// Voids a hold: the call failed or was abandoned; the amount is released.
    ///
    /// # Errors
    ///
    /// As [`Policy::confirm`].
    pub async fn void(&self, hold_id: &str) -> Result<Hold, Error> {
        let h = self
            .inner
            .store
            .hold_move(hold_id, "voided", now_ms())
            .await?;
        self.record_event("hold_voided", &h.id, &h.principal);
        Ok(h)
    }

    /// Reads a hold.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] or [`ErrorKind::State`].
    pub async fn hold(&self, hold_id: &str) -> Result<Hold, Error> {
        self.inner.store.hold_get(hold_id).await
    }

    /// Marks `held` holds past their TTL as `expired` (they already stopped counting at
    /// their expiry; this is housekeeping). Returns how many.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::State`].
    pub async fn expire_holds(&self) -> Result<u64, Error> {
        self.inner.store.expire(now_ms()).await
    }

    /// Approves a pending approval request. The same call (same tool, principal and
    /// normalised arguments) is then allowed once.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`], [`ErrorKind::Conflict`] (already decided) or [`ErrorKind::State`].
    pub async fn approve(&self, approval_id: &str, approver: &str) -> Result<Approval, Error> {
        let a = self
            .inner
            .store
            .approval_decide(approval_id, true, approver, now_ms())
            .await?;
        self.record_event("approval_approved", &a.id, approver);
        Ok(a)
    }

    /// Denies a pending approval request: the same call is then denied.
    ///
    /// # Errors
    ///
    /// As [`Policy::approve`].
    pub async fn reject(&self, approval_id: &str, approver: &str) -> Result<Approval, Error> {
        let a = self
            .inner
            .store
            .approval_decide(approval_id, false, approver, now_ms())
            .await?;
        self.record_event("approval_denied", &a.id, approver);
        Ok(a)
    }

    /// Reads an approval request.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] or [`ErrorKind::State`].
    pub async fn approval(&self, approval_id: &str) -> Result<Approval, Error> {
        self.inner.store.approval_get(approval_id).await
    }

    async fn decide(&self, principal: &Principal, call: &ToolCall, reserve: bool) -> Verdict {
        let spec = &self.inner.spec;
        let shown_tool: String = call.name.chars().take(128).collect();
        let Some(tool) = spec.tools.get(&call.name) else {
            return Verdict::deny(
                &shown_tool,
                "tool.unknown",
                "unknown tool: no policy allows it",
            );
        };
        let Some(role) = spec.roles.get(&principal.role) else {
            return Verdict::deny(
                &tool.name,
                "role.unknown",
                "unknown role: no policy allows it",
            );
        };
        if !role.tools.contains(&tool.name) {
            return Verdict::deny(
                &tool.name,
                "role.forbidden",
                format!("role {} may not call {}", principal.role, tool.name),
            );
        }
        if (tool.require_mfa || role.require_mfa) && !principal.mfa {
            return Verdict::deny(
                &tool.name,
                "mfa.required",
                format!("{} requires a caller authenticated with MFA", tool.name),
            );
        }
        let args = match normalise(&tool.args, &call.arguments) {
            Ok(a) => a,
            Err(violations) => {
                let mut v = Verdict::new(Decision::Deny, &tool.name);
                for x in violations {
                    if !v.rules.iter().any(|r| r == x.rule) {
                        v.rules.push(x.rule.to_string());
                    }
                    v.messages.push(x.message);
                }
                return v;
            }
        };
        let hash = args_hash(tool, &args);
        let idem_key = tool
            .idempotency_arg
            .as_ref()
            .and_then(|a| args.get(a))
            .and_then(|v| v.as_str())
            .map(str::to_string);
        for _ in 0..MAX_ATTEMPTS {
            if reserve {
                if let Some(key) = &idem_key {
                    match self.inner.store.idempotency_get(&tool.name, key).await {
                        Ok(Some((h, stored))) => return replay(tool, &h, &hash, &stored),
                        Ok(None) => {}
                        Err(e) => {
                            return Verdict::error(&tool.name, "state.unavailable", e.to_string())
                        }
                    }
                }
            }
            let attempt = self
                .attempt(principal, tool, &args, &hash, idem_key.as_deref(), reserve)
                .await;
            match attempt {
                Attempt::Final(v) => return v,
                Attempt::Retry => continue,
            }
        }
        Verdict::error(
            &tool.name,
            "state.contention",
            "too many concurrent changes to the same balance; retry",
        )
    }

    async fn attempt(
        &self,
        principal: &Principal,
        tool: &ToolSpec,
        args: &Map<String, serde_json::Value>,
        hash: &str,
        idem_key: Option<&str>,
        reserve: bool,
    ) -> Attempt {
        let spec = &self.inner.spec;
        let now = now_ms();
        let posted_since = now - (spec.posted_ttl_secs as i64) * 1000;
        let mut v = Verdict::new(Decision::Allow, &tool.name);
        v.args = args.clone();

        // Phase 1 (sync): the arguments of every ledger/holds call, evaluated with CEL.
        let planned = match self.plan_calls(principal, tool, args) {
            Ok(p) => p,
            Err((rule, msg)) => return Attempt::Final(Verdict::error(&tool.name, &rule, msg)),
        };
        // Phase 2 (async): run the queries, each distinct one once.
        let mut ledger_cache: HashMap<(String, Vec<SqlParam>), Option<SqlValue>> = HashMap::new();
        let mut holds_cache: BTreeMap<String, i64> = BTreeMap::new();
        let mut results: Vec<Vec<(String, Value, bool)>> = Vec::with_capacity(planned.len());
        for rule_calls in &planned {
            let mut vals = Vec::with_capacity(rule_calls.len());
            for (var, kind, params) in rule_calls {
                match kind {
                    CallKind::Ledger(q) => {
                        let key = (q.clone(), params.clone());
                        let r = match ledger_cache.get(&key) {
                            Some(r) => r.clone(),
                            None => {
                                let Some(ledger) = &self.inner.ledger else {
                                    return Attempt::Final(Verdict::error(
                                        &tool.name,
                                        "ledger.unavailable",
                                        "no ledger configured",
                                    ));
                                };
                                match ledger.query(q, params.clone()).await {
                                    Ok(r) => {
                                        ledger_cache.insert(key, r.clone());
                                        r
                                    }
                                    Err(e) => {
                                        return Attempt::Final(Verdict::error(
                                            &tool.name,
                                            "ledger.unavailable",
                                            e.to_string(),
                                        ))
                                    }
                                }
                            }
                        };
                        let missing = r.is_none();
                        let value = match r {
                            None => Value::Null,
                            Some(SqlValue::Int(i)) => Value::Int(i),
                            Some(SqlValue::Text(s)) => Value::String(Arc::new(s)),
                            Some(SqlValue::Bool(b)) => Value::Bool(b),
                        };
                        vals.push((var.clone(), value, missing));
                    }
                    CallKind::Holds => {
                        let resource = param_text(params.first());
                        let sum = match holds_cache.get(&resource) {
                            Some(s) => *s,
                            None => match self
                                .inner
                                .store
                                .holds_sum(&resource, now, posted_since)
                                .await
                            {
                                Ok(s) => {
                                    holds_cache.insert(resource.clone(), s);
                                    s
                                }
                                Err(e) => {
                                    return Attempt::Final(Verdict::error(
                                        &tool.name,
                                        "state.unavailable",
                                        e.to_string(),
                                    ))
                                }
                            },
                        };
                        vals.push((var.clone(), Value::Int(sum), false));
                    }
                }
            }
            results.push(vals);
        }
        // Phase 3 (sync): evaluate every rule; collect all failures.
        let mut failed = Vec::new();
        let mut passed = Vec::new();
        {
            let base = self.base_context(principal, tool, args);
            for (rule, vals) in tool.rules.iter().zip(&results) {
                let mut ctx = base.new_inner_scope();
                let mut missing = false;
                for (var, value, m) in vals {
                    ctx.add_variable_from_value(var.clone(), value.clone());
                    missing |= *m;
                }
                match eval_bool(&ctx, &rule.expr) {
                    Ok(true) if !missing => passed.push(rule.id.clone()),
                    Ok(_) | Err(_) if missing => failed.push((
                        rule.id.clone(),
                        format!("{} (no matching ledger record)", rule.message),
                    )),
                    Ok(_) => failed.push((rule.id.clone(), rule.message.clone())),
                    Err(e) => {
                        return Attempt::Final(Verdict::error(
                            &tool.name,
                            &rule.id,
                            format!("rule {} failed to evaluate: {e}", rule.id),
                        ));
                    }
                }
            }
        }

        // Velocity: the principal's total for this tool and currency inside the window.
        let money = tool.money.as_ref().and_then(|m| {
            let amount = args.get(&m.amount)?.as_i64()?;
            let currency = args.get(&m.currency)?.as_str()?.to_string();
            Some((amount, currency))
        });
        let mut expect_velocity = None;
        if let (Some((window, caps)), Some((amount, currency))) = (&tool.velocity, &money) {
            match caps.get(currency) {
                None => failed.push((
                    "velocity.no_cap".into(),
                    format!("no velocity cap configured for {currency}: refused"),
                )),
                Some(cap) => {
                    let since = now - (*window as i64) * 1000;
                    match self
                        .inner
                        .store
                        .velocity_sum(&principal.id, &tool.name, currency, since, now)
                        .await
                    {
                        Ok(used) => {
                            if used.saturating_add(*amount) > *cap {
                                failed.push((
                                    "velocity.cap".into(),
                                    format!(
                                        "{} cap for {currency} in {}h would be exceeded",
                                        tool.name,
                                        window / 3600
                                    ),
                                ));
                            }
                            expect_velocity = Some((
                                principal.id.clone(),
                                tool.name.clone(),
                                currency.clone(),
                                since,
                                used,
                            ));
                        }
                        Err(e) => {
                            return Attempt::Final(Verdict::error(
                                &tool.name,
                                "state.unavailable",
                                e.to_string(),
                            ))
                        }
                    }
                }
            }
        }

        if !failed.is_empty() {
            v.verdict = Decision::Deny;
            for (id, msg) in failed {
                v.rules.push(id);
                v.messages.push(msg);
            }
            return self
                .finish_deny(v, tool, hash, idem_key, reserve, now)
                .await;
        }
        v.rules = passed;

        // Approval threshold.
        let mut consume = None;
        if let (Some(limits), Some((amount, currency))) = (&tool.approval_above, &money) {
            let over = limits.get(currency).is_none_or(|limit| amount > limit);
            if over {
                let after = now - (spec.approval_ttl_secs as i64) * 1000;
                let found = match self
                    .inner
                    .store
                    .approval_find(&tool.name, &principal.id, hash, after)
                    .await
                {
                    Ok(f) => f,
                    Err(e) => {
                        return Attempt::Final(Verdict::error(
                            &tool.name,
                            "state.unavailable",
                            e.to_string(),
                        ))
                    }
                };
                match found {
                    Some(a) if a.status == "approved" => {
                        v.rules.push("approval.granted".into());
                        v.approval_id = Some(a.id.clone());
                        consume = Some(a.id);
                    }
                    Some(a) if a.status == "denied" => {
                        let mut d = Verdict::deny(
                            &tool.name,
                            "approval.denied",
                            "an approver denied this call",
                        );
                        d.args = v.args;
                        d.approval_id = Some(a.id);
                        return Attempt::Final(d);
                    }
                    _ => {
                        let args_json = serde_json::Value::Object(args.clone()).to_string();
                        let a = match self
                            .inner
                            .store
                            .approval_request(
                                &tool.name,
                                &principal.id,
                                hash,
                                &args_json,
                                now,
                                after,
                            )
                            .await
                        {
                            Ok(a) => a,
                            Err(e) => {
                                return Attempt::Final(Verdict::error(
                                    &tool.name,
                                    "state.unavailable",
                                    e.to_string(),
                                ))
                            }
                        };
                        v.verdict = Decision::NeedsApproval;
                        v.rules.push("approval.required".into());
                        v.messages.push(match limits.get(currency) {
                            Some(_) => format!("{} above the approval threshold for {currency} needs human approval", tool.name),
                            None => format!("no approval threshold configured for {currency}: needs human approval"),
                        });
                        v.approval_id = Some(a.id);
                        return Attempt::Final(v);
                    }
                }
            }
        }
        if !reserve {
            return Attempt::Final(v);
        }

        // Reserve: re-check what the verdict was computed from and write, atomically.
        let mut r = Reservation {
            now,
            posted_since,
            expect_velocity,
            consume_approval: consume,
            ..Reservation::default()
        };
        if let (Some(res_arg), Some((amount, currency))) = (&tool.hold_resource, &money) {
            let resource = args.get(res_arg).map(json_text).unwrap_or_default();
            let seen = match holds_cache.get(&resource) {
                Some(s) => *s,
                None => match self
                    .inner
                    .store
                    .holds_sum(&resource, now, posted_since)
                    .await
                {
                    Ok(s) => s,
                    Err(e) => {
                        return Attempt::Final(Verdict::error(
                            &tool.name,
                            "state.unavailable",
                            e.to_string(),
                        ))
                    }
                },
            };
            let id = format!("hold_{}", uuid::Uuid::new_v4().simple());
            r.expect_holds = Some((resource.clone(), seen));
            r.hold = Some(Hold {
                id: id.clone(),
                tool: tool.name.clone(),
                resource,
                principal: principal.id.clone(),
                currency: currency.clone(),
                amount_minor: *amount,
                status: "held".into(),
                created_at_ms: now,
                expires_at_ms: now + (spec.hold_ttl_secs as i64) * 1000,
            });
            v.hold_id = Some(id);
        }
        if let Some(key) = idem_key {
            r.idempotency = Some((
                tool.name.clone(),
                key.to_string(),
                hash.to_string(),
                serde_json::to_string(&v).unwrap_or_default(),
            ));
        }
        match self.inner.store.reserve(r).await {
            Ok(Outcome::Done) => Attempt::Final(v),
            Ok(Outcome::Stale) => Attempt::Retry,
            Ok(Outcome::Idempotent(h, stored)) => Attempt::Final(replay(tool, &h, hash, &stored)),
            Err(e) => Attempt::Final(Verdict::error(
                &tool.name,
                "state.unavailable",
                e.to_string(),
            )),
        }
    }

    async fn finish_deny(
        &self,
        v: Verdict,
        tool: &ToolSpec,
        hash: &str,
        idem_key: Option<&str>,
        reserve: bool,
        now: i64,
    ) -> Attempt {
        let (true, Some(key)) = (reserve, idem_key) else {
            return Attempt::Final(v);
        };
        let r = Reservation {
            now,
            idempotency: Some((
                tool.name.clone(),
                key.to_string(),
                hash.to_string(),
                serde_json::to_string(&v).unwrap_or_default(),
            )),
            ..Reservation::default()
        };
        match self.inner.store.reserve(r).await {
            Ok(Outcome::Idempotent(h, stored)) => Attempt::Final(replay(tool, &h, hash, &stored)),
            Ok(_) => Attempt::Final(v),
            Err(e) => Attempt::Final(Verdict::error(
                &tool.name,
                "state.unavailable",
                e.to_string(),
            )),
        }
    }

    fn base_context(
        &self,
        principal: &Principal,
        tool: &ToolSpec,
        args: &Map<String, serde_json::Value>,
    ) -> Context<'_> {
        let mut ctx = self.inner.root.new_inner_scope();
        for (name, _) in &tool.args {
            ctx.add_variable_from_value(name.clone(), args.get(name).map_or(Value::Null, to_cel));
        }
        let p =
            serde_json::json!({"id": principal.id, "role": principal.role, "mfa": principal.mfa});
        ctx.add_variable_from_value("principal", to_cel(&p));
        ctx
    }

    #[allow(clippy::type_complexity)]
    fn plan_calls(
        &self,
        principal: &Principal,
        tool: &ToolSpec,
        args: &Map<String, serde_json::Value>,
    ) -> Result<Vec<Vec<(String, CallKind, Vec<SqlParam>)>>, (String, String)> {
        let base = self.base_context(principal, tool, args);
        let mut out = Vec::with_capacity(tool.rules.len());
        for rule in &tool.rules {
            let mut calls = Vec::with_capacity(rule.calls.len());
            for c in &rule.calls {
                let mut params = Vec::with_capacity(c.args.len());
                for a in &c.args {
                    let v = base.resolve(a).map_err(|e| {
                        (
                            rule.id.clone(),
                            format!("rule {}: ledger call argument failed: {e}", rule.id),
                        )
                    })?;
                    let p = match v {
                        Value::Int(i) => SqlParam::Int(i),
                        Value::UInt(u) => SqlParam::Int(i64::try_from(u).unwrap_or(i64::MAX)),
                        Value::String(s) => SqlParam::Text(s.to_string()),
                        Value::Bool(b) => SqlParam::Bool(b),
                        other => {
                            return Err((
                                rule.id.clone(),
                                format!(
                                    "rule {}: ledger call argument of type {:?} cannot be bound",
                                    rule.id,
                                    other.type_of()
                                ),
                            ))
                        }
                    };
                    params.push(p);
                }
                calls.push((c.var.clone(), c.kind.clone(), params));
            }
            out.push(calls);
        }
        Ok(out)
    }

    /// Appends the verdict's audit record; false when a configured log could
    /// not take it.
    fn record(&self, principal: &Principal, call: &ToolCall, v: &Verdict, mode: &str) -> bool {
        let Some(log) = &self.inner.audit else {
            return true;
        };
        let rec = self.audit_record(principal, call, v, mode);
        match log.append(&rec) {
            Ok(_) => true,
            Err(e) => {
                tracing::error!(error = %e, "audit append failed");
                false
            }
        }
    }

    fn record_event(&self, event: &str, id: &str, actor: &str) {
        let Some(log) = &self.inner.audit else { return };
        let rec = serde_json::json!({"event": event, "id": id, "actor": actor});
        if let Err(e) = log.append(&rec) {
            tracing::error!(error = %e, "audit append failed");
        }
    }

    /// The audit record for a verdict: timestamp is added by the log; arguments appear
    /// only as keyed fingerprints (HMAC-SHA256 when a key is configured), never raw.
    pub fn audit_record(
        &self,
        principal: &Principal,
        call: &ToolCall,
        v: &Verdict,
        mode: &str,
    ) -> ToolCallRecord {
        let source = if v.args.is_empty() {
            &call.arguments
        } else {
            &v.args
        };
        let tool = self.inner.spec.tools.get(&call.name);
        let key = self.inner.fingerprint_key.as_deref();
        let mut args = BTreeMap::new();
        for (k, val) in source {
            let name: String = k.chars().take(64).collect();
            let sensitive = tool
                .and_then(|t| t.args.iter().find(|(n, _)| n == k))
                .is_none_or(|(_, a)| a.sensitive);
            // An unkeyed hash of a low-entropy sensitive value can be reversed by guessing,
            // so without a key sensitive (and undeclared) arguments get no fingerprint.
            let fp = if sensitive && key.is_none() {
                "withheld".to_string()
            } else {
                fingerprint(key, k, val)
            };
            args.insert(name, fp);
        }
        ToolCallRecord {
            event: "tool_call",
            mode: mode.to_string(),
            principal: principal.id.clone(),
            role: principal.role.clone(),
            mfa: principal.mfa,
            tool: v.tool.clone(),
            verdict: v.verdict,
            rules: v.rules.clone(),
            approval_id: v.approval_id.clone(),
            hold_id: v.hold_id.clone(),
            replayed: v.replayed,
            args,
            fingerprint: if self.inner.fingerprint_key.is_some() {
                "hmac-sha256"
            } else {
                "sha256"
            },
        }
    }
}

/// One audit record per verdict.
#[derive(Clone, Debug, Serialize)]
pub struct ToolCallRecord {
    /// Always `tool_call`.
    pub event: &'static str,
    /// `validate` or `evaluate`.
    pub mode: String,
    /// Principal id.
    pub principal: String,
    /// Principal role.
    pub role: String,
    /// Whether the principal had MFA.
    pub mfa: bool,
    /// The tool.
    pub tool: String,
    /// The decision.
    pub verdict: Decision,
    /// Deciding rule ids.
    pub rules: Vec<String>,
    /// Approval request id, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
    /// Hold id, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold_id: Option<String>,
    /// Idempotent replay.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub replayed: bool,
    /// Argument name → 16-hex-digit fingerprint of its (normalised) value, or `withheld`
    /// for sensitive or undeclared arguments when no fingerprint key is configured.
    pub args: BTreeMap<String, String>,
    /// Fingerprint algorithm: `hmac-sha256` (keyed) or `sha256`.
    pub fingerprint: &'static str,
}

enum Attempt {
    Final(Verdict),
    Retry,
}

fn fingerprint(key: Option<&[u8]>, name: &str, value: &serde_json::Value) -> String {
    let body = format!("{name}\0{value}");
    let digest = match key {
        Some(k) => match Hmac::<Sha256>::new_from_slice(k) {
            Ok(mut m) => {
                m.update(body.as_bytes());
                m.finalize().into_bytes().to_vec()
            }
            Err(_) => Sha256::digest(body.as_bytes()).to_vec(),
        },
        None => Sha256::digest(body.as_bytes()).to_vec(),
    };
    hex::encode(&digest[..8])
}

fn json_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn param_text(p: Option<&SqlParam>) -> String {
    match p {
        Some(SqlParam::Text(s)) => s.clone(),
        Some(SqlParam::Int(i)) => i.to_string(),
        Some(SqlParam::Bool(b)) => b.to_string(),
        None => String::new(),
    }
}

/// SHA-256 over the tool name and the normalised arguments with sorted keys, leaving out
/// the idempotency key itself (it names the attempt, not the operation).
fn args_hash(tool: &ToolSpec, args: &Map<String, serde_json::Value>) -> String {
    let sorted: BTreeMap<&String, &serde_json::Value> = args
        .iter()
        .filter(|(k, _)| tool.idempotency_arg.as_ref() != Some(*k))
        .collect();
    let mut h = Sha256::new();
    h.update(tool.name.as_bytes());
    h.update([0u8]);
    h.update(
        serde_json::to_string(&sorted)
            .unwrap_or_default()
            .as_bytes(),
    );
    hex::encode(h.finalize())
}

fn replay(tool: &ToolSpec, stored_hash: &str, hash: &str, stored: &str) -> Verdict {
    if stored_hash != hash {
        return Verdict::deny(
            &tool.name,
            "idempotency.conflict",
            "idempotency key reused with different arguments",
        );
    }
    match serde_json::from_str::<Verdict>(stored) {
        Ok(mut v) => {
            v.replayed = true;
            v
        }
        Err(_) => Verdict::error(
            &tool.name,
            "state.corrupt",
            "stored idempotent verdict is unreadable",
        ),
    }
}

fn build_ledger(
    spec: &Spec,
    base: Option<&Path>,
    opts: &PolicyOptions,
) -> Result<Option<Ledger>, Problem> {
    let file_url = spec.ledger_url.as_ref().map(|(u, _)| u.clone());
    let Some(url) = resolve_url(
        opts.ledger_url.as_ref(),
        spec.ledger_url_env.as_ref(),
        file_url.as_ref(),
    ) else {
        if spec.queries.is_empty() {
            return Ok(None);
        }
        return Err(Problem::new(
            None,
            "ledger queries are declared but no [ledger] url is configured",
        ));
    };
    let line = spec.ledger_url.as_ref().map(|(_, l)| *l);
    let db = if url == "builtin:demo" {
        DbUrl::Sqlite(
            crate::demo::demo_ledger_path().map_err(|e| Problem::new(line, e.to_string()))?,
        )
    } else {
        DbUrl::parse(&url, base)
    };
    let queries = Arc::new(
        spec.queries
            .iter()
            .map(|(k, q)| {
                (
                    k.clone(),
                    crate::spec::QuerySpec {
                        name: q.name.clone(),
                        sql: q.sql.clone(),
                        returns: q.returns,
                        line: q.line,
                    },
                )
            })
            .collect(),
    );
    let schema = opts
        .ledger_schema
        .clone()
        .or_else(|| spec.ledger_schema.clone());
    Ok(Some(Ledger::new(
        db,
        schema,
        Duration::from_millis(spec.ledger_timeout_ms),
        queries,
    )))
}
