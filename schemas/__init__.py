"""Pydantic models shared by producer and workers. No I/O lives here."""

from schemas.config import (
    CacheSettings,
    LLMConfig,
    LLMModelConfig,
    LLMProvider,
    MonitoringSettings,
    NightlySettings,
    ProviderSettings,
    QuotaSettings,
    RoutingSettings,
)
from schemas.job import (
    TERMINAL_STATES,
    AttemptOutcome,
    BatchState,
    ChatMessage,
    Completion,
    ErrorKind,
    ErrorRecord,
    JobSpec,
    JobState,
    Usage,
)
from schemas.settings import Settings, load_settings

__all__ = [
    "TERMINAL_STATES",
    "AttemptOutcome",
    "BatchState",
    "CacheSettings",
    "ChatMessage",
    "Completion",
    "ErrorKind",
    "ErrorRecord",
    "JobSpec",
    "JobState",
    "LLMConfig",
    "LLMModelConfig",
    "LLMProvider",
    "MonitoringSettings",
    "NightlySettings",
    "ProviderSettings",
    "QuotaSettings",
    "RoutingSettings",
    "Settings",
    "Usage",
    "load_settings",
]
