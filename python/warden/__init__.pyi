"""Type stubs for ``warden``: the curated public API."""

from typing import Any, Callable, Iterable, Iterator, TypeVar, Union

from warden._warden import (
    ConfigError as ConfigError,
    Entity as Entity,
    InjectionDetector as InjectionDetector,
    InjectionError as InjectionError,
    InjectionEvidence as InjectionEvidence,
    InjectionVerdict as InjectionVerdict,
    InternalError as InternalError,
    JsonRedaction as JsonRedaction,
    PatternError as PatternError,
    Policy as Policy,
    PolicyError as PolicyError,
    Redaction as Redaction,
    Scanner as Scanner,
    SourceName,
    StreamRestorer as StreamRestorer,
    Vault as Vault,
    VaultError as VaultError,
    Verdict as Verdict,
    WardenError as WardenError,
    __version__ as __version__,
)

_F = TypeVar("_F", bound=Callable[..., Any])

__all__ = [
    "ConfigError",
    "Entity",
    "InjectionDetector",
    "InjectionError",
    "InjectionEvidence",
    "InjectionVerdict",
    "InternalError",
    "JsonRedaction",
    "PatternError",
    "Policy",
    "PolicyError",
    "Redaction",
    "Scanner",
    "StreamRestorer",
    "ToolCallDenied",
    "Vault",
    "Verdict",
    "VaultError",
    "WardenError",
    "__version__",
    "check_injection",
    "guard_tool",
    "restore_stream",
]

class ToolCallDenied(WardenError):
    tool: str
    verdict: Verdict
    reasons: list[str]
    def __init__(self, tool: str, verdict: Verdict) -> None: ...

def guard_tool(
    policy: Policy, *, role: str, name: str | None = None, mfa: bool = False
) -> Callable[[_F], _F]: ...
def check_injection(text: str, source: SourceName = "user") -> InjectionVerdict: ...
def restore_stream(
    vault: Vault, chunks: Iterable[Union[str, bytes]], *, json_escaped: bool = False
) -> Iterator[str]: ...
