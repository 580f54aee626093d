"""The @guard_tool decorator: a denied call never runs the tool."""

from __future__ import annotations

import asyncio

import pytest

import warden


def test_allowed_call_runs_and_confirms_its_hold(policy: warden.Policy) -> None:
    ran: list[tuple[str, str, str]] = []

    @warden.guard_tool(policy, role="support_agent")
    def issue_refund(order_id: str, amount: str, currency: str) -> str:
        ran.append((order_id, amount, currency))
        return "refunded"

    assert issue_refund("ord_1001", "100.00", currency="USD") == "refunded"
    assert ran == [("ord_1001", "100.00", "USD")]
    # The confirmed hold keeps counting against the order: nothing more fits.
    with pytest.raises(warden.ToolCallDenied):
        issue_refund("ord_1001", "0.01", "USD")
    assert len(ran) == 1


def test_denied_call_does_not_run(policy: warden.Policy) -> None:
    ran = []

    @warden.guard_tool(policy, role="support_agent")
    def issue_refund(order_id: str, amount: str, currency: str) -> None:
        ran.append(1)

    with pytest.raises(warden.ToolCallDenied) as info:
        issue_refund(order_id="ord_1001", amount="1200.00", currency="USD")
    err = info.value
    assert ran == []
    assert err.tool == "issue_refund"
    assert err.verdict.verdict == "deny"
    assert "refund.within_refundable" in err.verdict.rules
    assert err.reasons and all(isinstance(r, str) for r in err.reasons)
    assert "1200.00" not in str(err)
    assert isinstance(err, warden.WardenError)


def test_needs_approval_is_refused_with_the_approval_id(policy: warden.Policy) -> None:
    @warden.guard_tool(policy, role="support_agent")
    def issue_refund(order_id: str, amount: str, currency: str) -> str:
        return "ok"

    with pytest.raises(warden.ToolCallDenied) as info:
        issue_refund("ord_7001", "600.00", "USD")
    approval = info.value.verdict.approval_id
    assert info.value.verdict.verdict == "needs_approval" and approval
    policy.approve(approval, "manager-1")
    assert issue_refund("ord_7001", "600.00", "USD") == "ok"


def test_failing_tool_voids_its_hold(policy: warden.Policy) -> None:
    attempts = []

    @warden.guard_tool(policy, role="support_agent")
    def issue_refund(order_id: str, amount: str, currency: str) -> str:
        attempts.append(amount)
        if len(attempts) == 1:
            raise ConnectionError("payment provider down")
        return "ok"

    with pytest.raises(ConnectionError):
        issue_refund("ord_1001", "100.00", "USD")
    # The first hold was voided, so the full amount is available for the retry.
    assert issue_refund("ord_1001", "100.00", "USD") == "ok"


def test_tool_name_role_and_mfa_options(policy: warden.Policy) -> None:
    @warden.guard_tool(policy, role="finance", name="create_payout", mfa=True)
    def pay(merchant_id: str, amount: str, currency: str) -> str:
        return "paid"

    @warden.guard_tool(policy, role="finance", name="create_payout")
    def pay_without_mfa(merchant_id: str, amount: str, currency: str) -> str:
        return "paid"

    with pytest.raises(warden.ToolCallDenied):
        pay_without_mfa("mer_77", "1234.56", "USD")
    assert pay("mer_77", "1234.56", "USD") == "paid"


def test_defaults_are_not_sent(policy: warden.Policy) -> None:
    @warden.guard_tool(policy, role="support_agent")
    def issue_refund(
        order_id: str, amount: str, currency: str, idempotency_key: str | None = None
    ) -> str:
        return "ok"

    assert issue_refund("ord_1001", "10.00", "USD") == "ok"
    with pytest.raises(warden.ToolCallDenied):
        issue_refund("ord_1001", "10.00", "USD", idempotency_key="bad key!")


def test_kwargs_are_arguments(policy: warden.Policy) -> None:
    @warden.guard_tool(policy, role="support_agent")
    def lookup_order(**kwargs: str) -> str:
        return kwargs["order_id"]

    assert lookup_order(order_id="ord_1001") == "ord_1001"
    with pytest.raises(warden.ToolCallDenied):
        lookup_order(order_id="ord_1001", extra="x")


def test_async_tools(policy: warden.Policy) -> None:
    @warden.guard_tool(policy, role="support_agent")
    async def lookup_order(order_id: str) -> str:
        await asyncio.sleep(0)
        return order_id

    assert asyncio.run(lookup_order("ord_1001")) == "ord_1001"
    with pytest.raises(warden.ToolCallDenied):
        asyncio.run(lookup_order("ord_9999"))


def test_wrapper_keeps_metadata(policy: warden.Policy) -> None:
    @warden.guard_tool(policy, role="support_agent")
    def lookup_order(order_id: str) -> str:
        """Look an order up."""
        return order_id

    assert lookup_order.__name__ == "lookup_order"
    assert lookup_order.__doc__ == "Look an order up."


def test_bad_decorator_arguments(policy: warden.Policy) -> None:
    with pytest.raises(TypeError):
        warden.guard_tool("not a policy", role="x")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        warden.guard_tool(policy, role=3)  # type: ignore[arg-type]
