"""The compose stack as processes on this machine: what ``docker compose up`` would run.

No Docker engine runs here, so each service of ``docker-compose.yml`` is started from
its resolved definition (:mod:`tests.deployment.compose`):

- the image is stood in for by a virtual environment built as the Dockerfile builds it
  (``pip install -c constraints.txt .``, not editable) with Debian's Python, readable by
  an unprivileged user, and the app processes run as that user (``nobody``) when the
  tests run as root: a data directory the container user could not write fails here too;
- Redis is a private ``redis-server`` started with the compose service's own arguments,
  on a free loopback port and a private directory;
- PostgreSQL is the local server; ``deploy/postgres-init.sh`` creates the service users
  and databases there under per-run names;
- every app service gets exactly its compose environment, with the host names mapped to
  loopback (``redis:6379``, ``postgres:5432``), the per-run database names, private
  metrics ports, ``/data`` and ``/run/secrets/<name>`` mapped to private paths (the
  secrets written as compose writes them), and nothing else of this process's
  environment;
- ``depends_on`` is honoured in order, waiting on each healthcheck command as compose
  does (its own interval, timeout and retries) or on a one-shot service's exit 0.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, text

from baitiao.processes import die_with_parent
from tests.deployment.compose import ROOT, Project, Service

PG_HOST, PG_PORT, PG_ADMIN = "127.0.0.1", 5432, "postgres"
SERVICES = ("accounts", "collections", "restructuring")
DATABASES = (*SERVICES, "desk")  # deploy/postgres-init.sh's databases, each with its user
# The container ports of the compose file, mapped to private ones on loopback.
REDIS_CONTAINER_PORT = "6379"
METRICS_CONTAINER_PORT = "9100"
REDIS_CONFIG_MOUNT = "/etc/baitiao/redis"  # ./deploy/redis, mounted read-only
# The settings that name a port an app process listens on: each gets a free one here.
PORT_SETTINGS = ("BAITIAO_METRICS_PORT", "BAITIAO_DESK_PORT")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def build_image_environment(target: Path) -> Path:
    """A virtual environment installed the way the Dockerfile installs the image; returns
    its ``bin`` directory. Debian's Python, so an unprivileged user can run it."""
    python = shutil.which("python3", path="/usr/bin") or sys.executable
    subprocess.run([python, "-m", "venv", str(target)], check=True)
    pip = [str(target / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    constraints = ROOT / "constraints.txt"
    if constraints.exists():
        pip += ["-c", str(constraints)]
    # A copy of the tree, as the Dockerfile's COPY lines take it (no build files left behind).
    source = target.parent / "source"
    source.mkdir(parents=True, exist_ok=True)
    for part in ("pyproject.toml", "README.md", "constraints.txt", "shared", "services", "baitiao"):
        origin = ROOT / part
        if origin.is_dir():
            shutil.copytree(origin, source / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif origin.exists():
            shutil.copy2(origin, source / part)
    subprocess.run([*pip, str(source)], check=True, cwd=target.parent)
    return target / "bin"


@dataclass
class Unprivileged:
    """Who the app processes run as: ``nobody`` when we are root, else ourselves."""

    uid: int
    gid: int

    @classmethod
    def choose(cls) -> "Unprivileged":
        if os.geteuid() != 0:
            return cls(os.getuid(), os.getgid())
        nobody = pwd.getpwnam("nobody")
        return cls(nobody.pw_uid, nobody.pw_gid)

    def own(self, path: Path) -> None:
        if os.geteuid() == 0:
            os.chown(path, self.uid, self.gid)

    def preexec(self) -> None:
        die_with_parent()
        if os.geteuid() == 0:
            os.setgroups([])
            os.setgid(self.gid)
            os.setuid(self.uid)


@dataclass
class Running:
    """One started process of a service (a second instance is a second ``Running``)."""

    service: str
    instance: int
    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    log: Path
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def metrics_port(self) -> int | None:
        return self.ports.get("BAITIAO_METRICS_PORT")

    @property
    def desk_port(self) -> int | None:
        return self.ports.get("BAITIAO_DESK_PORT")

    @property
    def label(self) -> str:
        return f"{self.service}-{self.instance}"


@dataclass
class Stack:
    project: Project
    root: Path
    bin_dir: Path
    user: Unprivileged = field(default_factory=Unprivileged.choose)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    redis_port: int = field(default_factory=free_port)
    running: list[Running] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.db_prefix = f"bt_deploy_{self.run_id}"
        self.data_dir = self.root / "data"
        self.secrets_dir = self.root / "secrets"
        self.redis_dir = self.root / "redis"
        self.logs = self.root / "logs"
        for path in (self.data_dir, self.secrets_dir, self.redis_dir, self.logs):
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o755)
        self.user.own(self.data_dir)
        self.redis: subprocess.Popen[bytes] | None = None

    # -- what a container sees --------------------------------------------------------
    def host_value(self, value: str, service: str) -> str:
        """A value of a container's environment as it must read on this machine."""
        value = value.replace("/run/secrets/", f"{self.secrets_dir / service}/")
        if value == "/data" or value.startswith("/data/"):
            value = str(self.data_dir) + value[len("/data") :]
        value = re.sub(r"(?<=[/@])redis:6379\b", f"127.0.0.1:{self.redis_port}", value)
        value = re.sub(r"(?<=[/@])postgres:5432\b", f"{PG_HOST}:{PG_PORT}", value)
        return re.sub(r"\bbaitiao_(accounts|collections|restructuring|desk)\b", rf"{self.db_prefix}_\1", value)

    def container_env(self, service: Service, ports: dict[str, int] | None = None) -> dict[str, str]:
        env = {
            "PATH": f"{self.bin_dir}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.data_dir),
            "LANG": "C.UTF-8",
            "TZ": "UTC",
        }
        for key, value in service.environment.items():
            env[key] = self.host_value(value, service.name)
        for name in PORT_SETTINGS:
            if name in env:
                env[name] = str((ports or {}).get(name) or free_port())
        return env

    def write_secrets(self, service: Service) -> None:
        """Compose mounts each of a service's own secrets as a file under /run/secrets."""
        mounted = self.secrets_dir / service.name
        mounted.mkdir(exist_ok=True)
        mounted.chmod(0o755)
        for name in service.secrets:
            path = mounted / name
            if path.exists():
                path.chmod(0o600)
            path.write_text(self.project.secrets[name], encoding="utf-8")
            path.chmod(0o400)
            self.user.own(path)

    # -- the infrastructure -----------------------------------------------------------
    def start_redis(self) -> None:
        """The compose service's command (deploy/redis/start.sh and redis-server's
        arguments) with its mounts and secrets mapped here: its ACL users get their
        passwords from the secrets written as compose writes them."""
        service = self.project.services["redis"]
        self.write_secrets(service)
        args = [
            str(self.redis_port)
            if a == REDIS_CONTAINER_PORT
            else a.replace(REDIS_CONFIG_MOUNT, str(ROOT / "deploy" / "redis"))
            for a in service.command
        ]
        assert args[:2] == ["sh", str(ROOT / "deploy" / "redis" / "start.sh")], args
        env = {
            "PATH": f"{Path(shutil.which('redis-server') or '/usr/bin/redis-server').parent}:/usr/bin:/bin",
            "BAITIAO_REDIS_SECRETS": str(self.secrets_dir / "redis"),
            "BAITIAO_REDIS_ACL_FILE": str(self.redis_dir / "users.acl"),
        }
        # The image's working directory is its volume, /data: here a private directory.
        self.redis = subprocess.Popen(
            [
                *args,
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.redis_dir),
                "--daemonize",
                "no",
                "--logfile",
                str(self.logs / "redis.log"),
            ],
            env=env,
            stdout=open(self.logs / "redis-start.log", "ab"),
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
        self.wait_healthy(
            service, self._redis_env(service), label="redis", proc=self.redis, log=self.logs / "redis.log"
        )

    def _redis_env(self, service: Service) -> dict[str, str]:
        return {"PATH": "/usr/bin:/bin", **service.environment}

    def init_postgres(self) -> None:
        """``deploy/postgres-init.sh`` as the postgres image runs it, against the local server."""
        service = self.project.services["postgres"]
        env = {
            "PATH": "/usr/bin:/bin",
            **service.environment,
            "POSTGRES_USER": PG_ADMIN,
            "PGHOST": PG_HOST,
            "PGPORT": str(PG_PORT),
            "BAITIAO_DB_PREFIX": self.db_prefix,
        }
        subprocess.run(["/bin/sh", str(ROOT / "deploy" / "postgres-init.sh")], env=env, check=True, capture_output=True)
        self.wait_healthy(service, {**env, "PGUSER": PG_ADMIN}, label="postgres")

    def drop_postgres(self) -> None:
        admin = create_engine(
            f"postgresql+psycopg://{PG_ADMIN}@{PG_HOST}:{PG_PORT}/postgres", isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as conn:
            names = [f"{self.db_prefix}_{database}" for database in DATABASES]
            for name in names:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            for name in names:  # a role goes once no database grants it anything
                conn.execute(text(f'DROP ROLE IF EXISTS "{name}"'))
        admin.dispose()

    # -- app services -----------------------------------------------------------------
    def start(self, name: str, *, wait: bool = True) -> Running:
        """Start one more process of an app service (its entrypoint ``baitiao`` + its command)."""
        service = self.project.services[name]
        assert service.builds_app, f"{name} is not an app service"
        self.write_secrets(service)
        instance = 1 + sum(1 for r in self.running if r.service == name)
        ports = {name: free_port() for name in PORT_SETTINGS if name in service.environment}
        env = self.container_env(service, ports)
        log = self.logs / f"{name}-{instance}.log"
        proc = subprocess.Popen(
            [str(self.bin_dir / "baitiao"), *service.command],
            env=env,
            cwd=str(self.data_dir),
            stdout=open(log, "ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=self.user.preexec,
        )
        running = Running(name, instance, proc, env, log, ports)
        self.running.append(running)
        if wait and service.healthcheck:
            self.wait_healthy(service, env, label=running.label, proc=proc, log=log)
        return running

    def run_to_completion(self, name: str, timeout: float = 300) -> None:
        """A one-shot service (``migrate``): started, and it must exit 0."""
        running = self.start(name, wait=False)
        code = running.proc.wait(timeout=timeout)
        self.running.remove(running)
        assert code == 0, f"{name} exited {code}: {running.log.read_text(errors='replace')[-3000:]}"

    def run(
        self, name: str, args: list[str], timeout: float = 300, extra_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``docker compose run --rm [-e K=V] <name> <args>``: one command with that
        service's environment (and ``extra_env``, as ``-e`` gives it)."""
        service = self.project.services[name]
        self.write_secrets(service)
        return subprocess.run(
            [str(self.bin_dir / "baitiao"), *args],
            env={**self.container_env(service), **(extra_env or {})},
            cwd=str(self.data_dir),
            capture_output=True,
            text=True,
            timeout=timeout,
            preexec_fn=self.user.preexec,
        )

    def up(self) -> None:
        """Everything ``docker compose up`` starts, in ``depends_on`` order."""
        from tests.deployment.compose import start_order

        for name in start_order(self.project):
            service = self.project.services[name]
            for dependency, condition in service.depends_on.items():
                if condition == "service_healthy":
                    assert self.project.services[dependency].healthcheck, f"{dependency} has no healthcheck"
            if name == "redis":
                self.start_redis()
            elif name == "postgres":
                self.init_postgres()
            elif service.restart == "no" and not service.healthcheck:
                self.run_to_completion(name)
            else:
                self.start(name)

    def wait_healthy(
        self,
        service: Service,
        env: dict[str, str],
        label: str,
        proc: subprocess.Popen[bytes] | None = None,
        log: Path | None = None,
    ) -> None:
        """Run the healthcheck as compose does until it passes; fail after its retries."""
        check = service.healthcheck
        assert check is not None, f"{service.name} has no healthcheck"
        argv = check.argv()
        if service.name == "redis":
            argv = [a.replace(f"-p {REDIS_CONTAINER_PORT}", f"-p {self.redis_port}") for a in argv]
        if argv and argv[0] in ("baitiao", "python"):  # the image's own, first on its PATH
            argv = [str(self.bin_dir / argv[0]), *argv[1:]]
        # Compose's timing, shortened tenfold: an interval of 15 s is polled every 1.5 s.
        interval = max(0.5, check.interval_s / 10)
        deadline = time.monotonic() + check.start_period_s + check.interval_s * (check.retries + 1)
        last = ""
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                tail = log.read_text(errors="replace")[-3000:] if log else ""
                raise AssertionError(f"{label} exited {proc.returncode} before it was healthy:\n{tail}")
            try:
                done = subprocess.run(
                    argv,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=check.timeout_s,
                    preexec_fn=self.user.preexec if service.builds_app else None,
                )
                if done.returncode == 0:
                    return
                last = (done.stdout + done.stderr)[-500:]
            except subprocess.TimeoutExpired:
                last = f"timed out after {check.timeout_s}s"
            time.sleep(interval)
        tail = log.read_text(errors="replace")[-3000:] if log else ""
        raise AssertionError(f"{label} never became healthy: {last}\n{tail}")

    # -- stopping ---------------------------------------------------------------------
    def stop(self, running: Running) -> float:
        """``docker compose stop``: SIGTERM, then SIGKILL after the stop grace period.
        Returns the seconds the process took to exit (inf if it had to be killed)."""
        grace = self.project.services[running.service].stop_grace_s
        started = time.monotonic()
        if running.proc.poll() is None:
            os.killpg(running.proc.pid, signal.SIGTERM)
        try:
            running.proc.wait(timeout=grace)
            took = time.monotonic() - started
        except subprocess.TimeoutExpired:
            os.killpg(running.proc.pid, signal.SIGKILL)
            running.proc.wait()
            took = float("inf")
        self.running.remove(running)
        return took

    def down(self) -> None:
        for running in list(self.running):
            if running.proc.poll() is None:
                os.killpg(running.proc.pid, signal.SIGKILL)
            running.proc.wait()
        self.running.clear()
        if self.redis is not None and self.redis.poll() is None:
            self.redis.kill()
            self.redis.wait()
        self.drop_postgres()

    @property
    def broker_url(self) -> str:
        """The broker as its administrator reaches it from this machine (the default user)."""
        return f"redis://:{self.project.secrets['redis_password']}@127.0.0.1:{self.redis_port}/0"

    def broker_url_as(self, user: str) -> str:
        """The broker as one of its ACL users (deploy/redis/users.acl) reaches it."""
        password = self.project.secrets[f"redis_{user.replace('-', '_')}_password"]
        return f"redis://{user}:{password}@127.0.0.1:{self.redis_port}/0"


def new_stack_root() -> Path:
    """A private directory every process of the stack can reach (pytest's are root-only)."""
    root = Path(tempfile.mkdtemp(prefix="bt-deploy-"))
    root.chmod(0o755)
    return root
