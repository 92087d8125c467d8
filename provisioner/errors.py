"""Error types shared by the CLI, the web app and the daemons.

Each error carries a one-line message meant for a person, an exit status for the CLI and an HTTP
status for the web app, so a failure reads the same wherever it surfaces.
"""

from __future__ import annotations


class ProvisionerError(Exception):
    """A failure the user can act on; its message is one line naming what was wrong."""

    exit_code = 1
    http_status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(ProvisionerError):
    """The command line itself is wrong: unknown command, bad key, missing argument."""

    exit_code = 2


class ConfigError(ProvisionerError):
    """A setting or the configuration file is wrong."""

    exit_code = 2


class NotFound(ProvisionerError):
    """A named thing (host, network, attribute...) does not exist."""

    http_status = 404


class Conflict(ProvisionerError):
    """The change would break a uniqueness rule or a reference."""

    http_status = 409


class Forbidden(ProvisionerError):
    """The caller may not do or see this."""

    http_status = 403


class DatabaseError(ProvisionerError):
    """The database is missing, not initialised, or busy beyond the configured timeout."""

    exit_code = 3
    http_status = 503


class Vetoed(ProvisionerError):
    """A plugin refused the change (a `host_removing` hook, for example)."""

    http_status = 409
