"""Every way the model registry can refuse a request, one class each, so callers can catch precisely.

Each message names the thing that was wrong and the command or argument that fixes it. All of them derive
from `RegistryError`, which the CLI turns into a one-line error and exit status 1.
"""

from __future__ import annotations

from registry.errors import UserError


class RegistryError(UserError):
    """Base class of every error the model registry raises on purpose."""


class InvalidInput(RegistryError, ValueError):
    """An argument failed validation before any transaction was opened (nothing was written)."""


class DatabaseUnavailable(RegistryError):
    """The registry database cannot be reached (wrong URL, server down, file not writable)."""


class SchemaOutOfDate(RegistryError):
    """The database has no registry schema, or one older or newer than this code expects."""


class UnknownModel(RegistryError, LookupError):
    """No registered model has that name."""


class UnknownVersion(RegistryError, LookupError):
    """The model exists but has no version with that number."""


class UnknownAlias(RegistryError, LookupError):
    """The model exists but no alias of that name points at any of its versions."""


class VersionArchived(RegistryError):
    """The version is archived, so no alias may point at it."""


class AliasProtected(RegistryError, PermissionError):
    """A protected alias (e.g. `production`) was moved without the promoter token or role."""


class PromotionRefused(RegistryError):
    """A promotion check vetoed a move of a protected alias. `reasons` lists every veto."""

    def __init__(self, message: str, reasons: list[str]) -> None:
        super().__init__(message)
        self.reasons = reasons


class NothingToRollBack(RegistryError):
    """The alias has never moved from an earlier version, so there is nothing to go back to."""


class ArtifactError(RegistryError):
    """Base class of artifact problems."""


class InvalidArtifact(ArtifactError, InvalidInput):
    """The directory to register is not a model directory (missing config.json or model.safetensors)."""


class ArtifactMissing(ArtifactError, FileNotFoundError):
    """The registry points at an artifact that is no longer at its URI."""


class ArtifactCorrupted(ArtifactError):
    """The artifact's files no longer hash to the sha256 recorded in the registry."""


class VersionInUse(RegistryError):
    """The version cannot be archived while an alias points at it."""


class PluginsUnavailable(RegistryError):
    """The installed plugins could not be loaded, so their promotion checks and hooks cannot run."""
