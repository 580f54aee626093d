"""Tool-call policy: the demo scenario, holds, approvals, errors."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest

import warden

ROOT = Path(__file__).resolve().parents[2]


def refund(order: str, amount: object, currency: str, **extra: object) -> dict[str, object]:
    return {"order_id": order, "amount": amount, "currency": currency, **extra}


# (id, role, tool, arguments, mfa, expected verdict, a rule id expected among .rules or None)
CASES = [
    ("refund_within", "support_agent", "issue_refund", refund("ord_1001", "100.00", "USD"), False, "allow", None),
    ("refund_over_by_a_cent", "support_agent", "issue_refund", refund("ord_1001", "100.01", "USD"), False, "deny", "refund.within_refundable"),
    ("hallucinated_amount", "support_agent", "issue_refund", refund("ord_1001", "1200.00", "USD"), False, "deny", "refund.within_refundable"),
    ("too_many_decimals", "support_agent", "issue_refund", refund("ord_1001", "10.005", "USD"), False, "deny", None),
    ("jpy_whole", "support_agent", "issue_refund", refund("ord_2002", "5000", "JPY"), False, "allow", None),
    ("jpy_fraction", "support_agent", "issue_refund", refund("ord_2002", "5000.5", "JPY"), False, "deny", None),
    ("wrong_currency", "support_agent", "issue_refund", refund("ord_1001", "10.00", "EUR"), False, "deny", "refund.currency_matches"),
    ("decimal_amount", "support_agent", "issue_refund", refund("ord_1001", Decimal("99.99"), "USD"), False, "allow", None),
    ("unknown_argument", "support_agent", "issue_refund", refund("ord_1001", "1.00", "USD", note="x"), False, "deny", None),
    ("missing_argument", "support_agent", "issue_refund", {"order_id": "ord_1001", "amount": "1.00"}, False, "deny", None),
    ("above_approval_threshold", "support_agent", "issue_refund", refund("ord_7001", "600.00", "USD"), False, "needs_approval", None),
    ("payout_exact", "finance", "create_payout", {"merchant_id": "mer_77", "amount": "1234.56", "currency": "USD"}, True, "allow", None),
    ("payout_other_amount", "finance", "create_payout", {"merchant_id": "mer_77", "amount": "1234.55", "currency": "USD"}, True, "deny", "payout.exact_amount"),
    ("payout_without_mfa", "finance", "create_payout", {"merchant_id": "mer_77", "amount": "1234.56", "currency": "USD"}, False, "deny", None),
    ("role_without_tool", "support_agent", "create_payout", {"merchant_id": "mer_77", "amount": "1234.56", "currency": "USD"}, True, "deny", None),
    ("unknown_tool", "support_agent", "drop_tables", {}, False, "deny", "tool.unknown"),
    ("unknown_role", "intern", "lookup_order", {"order_id": "ord_1001"}, False, "deny", None),
    ("sql_looking_value", "support_agent", "lookup_order", {"order_id": "ord_1'; DROP TABLE orders;--"}, False, "deny", None),
]


@pytest.mark.parametrize(
    ("role", "tool", "arguments", "mfa", "expected", "rule"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_demo_scenario(
    policy: warden.Policy,
    role: str,
    tool: str,
    arguments: dict[str, object],
    mfa: bool,
    expected: str,
    rule: str | None,
) -> None:
    v = policy.check_call(role, tool, arguments, mfa=mfa)
    assert v.verdict == expected, (v.rules, v.messages)
    assert v.allowed is (expected == "allow")
    assert bool(v) is v.allowed
    assert v.tool == tool
    if rule is not None:
        assert rule in v.rules
    if expected == "deny":
        assert v.messages
    if expected == "needs_approval":
        assert v.approval_id


def test_normalised_arguments_are_minor_units(policy: warden.Policy) -> None:
    v = policy.check_call("support_agent", "issue_refund", refund("ord_1001", "100.00", "USD"))
    assert v.arguments["amount"] == 10000
    assert v.to_dict()["verdict"] == "allow"


def test_arguments_as_json_string(policy: warden.Policy) -> None:
    args = json.dumps(refund("ord_1001", "100.00", "USD"))
    assert policy.check_call("support_agent", "issue_refund", args).verdict == "allow"


@pytest.mark.parametrize("arguments", ["[1, 2]", "not json", 42, ["order_id"], None])
def test_arguments_must_be_an_object(policy: warden.Policy, arguments: object) -> None:
    with pytest.raises(TypeError):
        policy.check_call("support_agent", "lookup_order", arguments)  # type: ignore[arg-type]


def test_hold_reserves_the_balance(policy: warden.Policy) -> None:
    first = policy.check_call("support_agent", "issue_refund", refund("ord_1001", "100.00", "USD"), hold=True)
    assert first.allowed and first.hold_id
    # Evaluating does not place a hold; the held 100.00 now counts against the order.
    again = policy.check_call("support_agent", "issue_refund", refund("ord_1001", "0.01", "USD"))
    assert again.verdict == "deny"
    assert policy.void(first.hold_id)["status"] == "voided"
    assert policy.check_call("support_agent", "issue_refund", refund("ord_1001", "0.01", "USD")).allowed
    with pytest.raises(warden.PolicyError):
        policy.confirm(first.hold_id)  # already voided


def test_approval_flow(policy: warden.Policy) -> None:
    args = refund("ord_7001", "600.00", "USD")
    v = policy.check_call("support_agent", "issue_refund", args)
    assert v.verdict == "needs_approval" and v.approval_id
    assert policy.approve(v.approval_id, "manager-1")["status"] == "approved"
    assert policy.check_call("support_agent", "issue_refund", args).verdict == "allow"
    with pytest.raises(warden.PolicyError):
        policy.approve("no-such-approval", "manager-1")


def test_concurrent_refunds_never_overdraw(policy: warden.Policy) -> None:
    """Two 60.00 refunds race for 100.00 refundable: exactly one wins, every round."""
    for _ in range(5):
        with ThreadPoolExecutor(max_workers=2) as pool:
            verdicts = list(
                pool.map(
                    lambda _: policy.check_call(
                        "support_agent", "issue_refund", refund("ord_1001", "60.00", "USD"), hold=True
                    ),
                    range(2),
                )
            )
        winners = [v for v in verdicts if v.allowed]
        assert len(winners) == 1, [(v.verdict, v.rules) for v in verdicts]
        policy.void(winners[0].hold_id)  # type: ignore[arg-type]


def test_load_the_demo_file(tmp_path: Path) -> None:
    p = warden.Policy.load(ROOT / "policies" / "demo.toml", state=f"sqlite:{tmp_path / 's.sqlite'}")
    assert p.origin.endswith("demo.toml")
    assert p.check_call("support_agent", "lookup_order", {"order_id": "ord_1001"}).allowed


def test_invalid_policy_lists_problems(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('version = 1\n[roles.a]\ntools = ["t"]\n[tools.t]\nargs.x = { type = "float" }\n')
    with pytest.raises(warden.PolicyError) as info:
        warden.Policy.load(bad)
    assert info.value.problems
    assert "bad.toml" in str(info.value)


def test_missing_policy_file(tmp_path: Path) -> None:
    with pytest.raises(warden.PolicyError):
        warden.Policy.load(tmp_path / "missing.toml")


def test_unreachable_ledger_fails_closed(tmp_path: Path) -> None:
    p = warden.Policy.load(
        ROOT / "policies" / "demo.toml",
        ledger=f"sqlite:{tmp_path / 'no-such-dir' / 'ledger.sqlite'}",
        state=f"sqlite:{tmp_path / 's.sqlite'}",
    )
    v = p.check_call("support_agent", "issue_refund", refund("ord_1001", "1.00", "USD"))
    assert v.verdict == "error"
    assert not v.allowed
