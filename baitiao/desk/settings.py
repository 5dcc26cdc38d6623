"""The desk's settings: its own database, the signing secret of its login tokens, waits.

Read from ``BAITIAO_DESK_*`` or, for a secret, its ``BAITIAO_DESK_<NAME>_FILE`` (a compose
secret); the services' databases and the broker come from the project's
:class:`shared.settings.Settings` as for every command.
"""

from __future__ import annotations

import secrets
from datetime import date
from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import SettingsWithFiles, normalized_db_url, with_password


class DeskSettings(SettingsWithFiles):
    model_config = SettingsConfigDict(env_prefix="BAITIAO_DESK_", extra="ignore", env_ignore_empty=True)

    db_url: str | None = None  # None: SQLite file desk.db in the data directory
    db_password: str | None = Field(None, repr=False)  # put into db_url (compose: a secret file)
    host: str = "127.0.0.1"  # where `baitiao api` listens
    port: int = Field(8000, ge=1, le=65535)
    secret: str | None = Field(None, repr=False)  # None: a random one kept in <data dir>/desk-secret
    session_hours: float = 10.0  # a login lasts one working day
    checkout_wait_s: float = 2.0  # POST /purchases waits this long for its decision, then 202
    page_size: int = 50  # worklist rows per page
    secure_cookie: bool = False  # set behind TLS
    checkout_token: str | None = Field(
        None, repr=False
    )  # the bearer token of POST /purchases; None: the door is closed
    business_date: date | None = None  # the desk's "today" for a system on simulated time; None: today

    def database_url(self, data_dir: Path) -> str:
        """The desk's database; the default SQLite file's directory is made if missing."""
        if self.db_url:
            return with_password(normalized_db_url(self.db_url), self.db_password)
        data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(data_dir / 'desk.db').resolve()}"

    def signing_secret(self, data_dir: Path) -> bytes:
        """The token-signing secret; generated once per data directory when not given."""
        if self.secret:
            return self.secret.encode()
        path = data_dir / "desk-secret"
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_hex(32))
            path.chmod(0o600)
        return path.read_text().strip().encode()
