"""Tool-call guarding: the ``guard_tool`` decorator and ``ToolCallDenied``."""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Optional, Sequence, TypeVar, cast

from warden._warden import Policy, Verdict, WardenError

F = TypeVar("F", bound=Callable[..., Any])


class ToolCallDenied(WardenError):
    """A tool call was refused by the policy before the tool ran.

    Raised by functions wrapped with :func:`guard_tool` when the verdict is
    anything but ``allow`` (``deny``, ``needs_approval`` or ``error``: the
    guard fails closed).

    Attributes:
        tool: the tool name that was checked.
        verdict: the full :class:`Verdict` (``.verdict``, ``.rules``,
            ``.messages``, ``.approval_id``).
        reasons: the human-readable reasons, one per deciding rule.
    """

    __module__ = "warden"

    tool: str
    verdict: Verdict
    reasons: list[str]

    def __init__(self, tool: str, verdict: Verdict) -> None:
        self.tool = tool
        self.verdict = verdict
        self.reasons = list(verdict.messages) or [f"verdict: {verdict.verdict}"]
        # The reasons come from the policy's own messages (rule ids and texts
        # written by the policy author), never from the argument values.
        super().__init__(f"tool call {tool!r} {verdict.verdict}: " + "; ".join(self.reasons))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.tool, self.verdict))


def guard_tool(
    policy: Policy,
    *,
    role: str,
    name: Optional[str] = None,
    mfa: bool = False,
) -> Callable[[F], F]:
    """Validate every call of a tool function against ``policy`` before it runs.

    The call's arguments are bound to the function's parameter names (only the
    arguments the caller actually passed; defaults are not sent) and validated
    with :meth:`Policy.check_call` (``hold=True``). Unless the verdict is
    ``allow`` the function is not called and :class:`ToolCallDenied` is raised
    with the reasons (``deny``, ``needs_approval`` and ``error`` all refuse:
    the guard fails closed).

    An allowed money call reserves its amount (a hold) while the function
    runs: the hold is confirmed when the function returns and voided when it
    raises, so a failed payout does not keep blocking the balance. Works for
    plain and ``async`` functions.

    Args:
        policy: the loaded policy.
        role: the caller's role, as named in the policy.
        name: the tool name in the policy; defaults to the function's name.
        mfa: whether the caller authenticated with MFA (step-up rules).

    Example::

        policy = warden.Policy.demo()

        @warden.guard_tool(policy, role="support_agent")
        def issue_refund(order_id: str, amount: str, currency: str) -> str:
            ...

        issue_refund("ord_1001", "100.00", "USD")   # runs
        issue_refund("ord_1001", "1200.00", "USD")  # raises ToolCallDenied
    """
    if not isinstance(policy, Policy):
        raise TypeError("guard_tool() needs a warden.Policy")
    if not isinstance(role, str):
        raise TypeError("role must be a str")

    def decorate(fn: F) -> F:
        tool = name if name is not None else fn.__name__
        signature = inspect.signature(fn)

        def check(args: Sequence[Any], kwargs: dict[str, Any]) -> Verdict:
            bound = signature.bind(*args, **kwargs)
            arguments: dict[str, Any] = {}
            for param_name, value in bound.arguments.items():
                kind = signature.parameters[param_name].kind
                if kind is inspect.Parameter.VAR_KEYWORD:
                    arguments.update(value)
                elif kind is inspect.Parameter.VAR_POSITIONAL:
                    if value:
                        raise TypeError(
                            f"guard_tool: {tool}() takes *{param_name}; tool arguments must be named"
                        )
                else:
                    arguments[param_name] = value
            verdict = policy.check_call(role, tool, arguments, mfa=mfa, hold=True)
            if not verdict.allowed:
                raise ToolCallDenied(tool, verdict)
            return verdict

        def settle(verdict: Verdict, succeeded: bool) -> None:
            if verdict.hold_id is not None:
                if succeeded:
                    policy.confirm(verdict.hold_id)
                else:
                    policy.void(verdict.hold_id)

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                verdict = check(args, kwargs)
                try:
                    result = await fn(*args, **kwargs)
                except BaseException:
                    settle(verdict, succeeded=False)
                    raise
                settle(verdict, succeeded=True)
                return result

            return cast(F, async_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            verdict = check(args, kwargs)
            try:
                result = fn(*args, **kwargs)
            except BaseException:
                settle(verdict, succeeded=False)
                raise
            settle(verdict, succeeded=True)
            return result

        return cast(F, wrapper)

    return decorate
