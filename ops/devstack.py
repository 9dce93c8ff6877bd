"""The embedded development stack: Apache Kafka (single-node KRaft) and FerretDB (MongoDB wire, SQLite).

No Docker and no tarballs here: Kafka's jars are resolved from Maven Central with ``mvn`` (``deploy/kafka/pom.xml``)
and run on Java 17; FerretDB v1 is built with ``go build`` from the Go module proxy (``deploy/ferretdb``). Both are
installed once into ``.civicbus/`` (or ``$CIVICBUS_HOME``) and reused; ``up`` is idempotent.

A ``MONGO_URL`` (a real mongod, Atlas, a replica set) or a ``KAFKA_BOOTSTRAP_SERVERS`` in the environment means
that part is external: it is not started here, only checked.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient
from pymongo import AsyncMongoClient

from civicbus.settings import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"


class DevStackError(RuntimeError):
    """Something the developer must fix (a missing tool, a busy port); the message says what and how."""


def home() -> Path:
    return Path(os.environ.get("CIVICBUS_HOME", PROJECT_ROOT / ".civicbus")).resolve()


@dataclass(frozen=True)
class Ports:
    kafka: int = int(os.environ.get("CIVICBUS_DEV_KAFKA_PORT", "9092"))
    kafka_controller: int = int(os.environ.get("CIVICBUS_DEV_KAFKA_CONTROLLER_PORT", "9093"))
    mongo: int = int(os.environ.get("CIVICBUS_DEV_MONGO_PORT", "27017"))


PORTS = Ports()


def external_kafka() -> str | None:
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or os.environ.get("CIVICBUS_KAFKA_BOOTSTRAP")


def external_mongo() -> str | None:
    return os.environ.get("MONGO_URL") or os.environ.get("CIVICBUS_MONGO_URL")


def kafka_bootstrap() -> str:
    return external_kafka() or f"127.0.0.1:{PORTS.kafka}"


def mongo_url() -> str:
    return external_mongo() or f"mongodb://127.0.0.1:{PORTS.mongo}/"


def _require(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise DevStackError(
            f"`{tool}` is not installed; the embedded stack needs it. Install it with: "
            f"apt-get update && apt-get install -y {package}"
        )
    return path


def _run(command: list[str], cwd: Path, log_file: Path, env: dict[str, str] | None = None) -> None:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as out:
        result = subprocess.run(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env, check=False)
    if result.returncode != 0:
        tail = log_file.read_text(errors="replace")[-3000:]
        raise DevStackError(f"`{' '.join(command)}` failed (exit {result.returncode}); see {log_file}:\n{tail}")


def _fingerprint(*files: Path) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _installed(marker: Path, fingerprint: str) -> bool:
    return marker.is_file() and marker.read_text() == fingerprint


# --------------------------------------------------------------------------- processes


@dataclass(frozen=True)
class Component:
    name: str
    process_marker: str  # a word of its command line, to tell our process from a recycled pid
    started_pid: int = 0  # the process this command started, if any

    @property
    def pid_file(self) -> Path:
        return home() / "run" / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return home() / "logs" / f"{self.name}.log"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except (OSError, ValueError):
            return None
        return pid if self.process_marker in cmdline else None

    def start(self, command: list[str], cwd: Path) -> int:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as out:
            # A session of its own: the server outlives the command that started it, and Ctrl-C of a later
            # command in the same terminal does not reach it.
            process = subprocess.Popen(
                command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pid_file.write_text(str(process.pid))
        object.__setattr__(self, "started_pid", process.pid)
        return process.pid

    def stop(self, timeout: float = 30.0) -> bool:
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.pid() is not None:
            time.sleep(0.2)
            _reap(pid)
        if self.pid() is not None:
            os.kill(pid, signal.SIGKILL)
            _reap(pid)
        self.pid_file.unlink(missing_ok=True)
        return True


def _alive(pid: int) -> bool:
    """Whether the process runs (a zombie does not); unlike ``pid()`` it does not look at the command line, which
    for a moment after the fork is still the parent's."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


KAFKA = Component("kafka", "kafka.Kafka")
FERRETDB = Component("ferretdb", "ferretdb")


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _wait(what: str, check: Callable[[], bool], component: Component | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if component is not None and not _alive(component.started_pid or component.pid() or 0):
            tail = component.log_file.read_text(errors="replace")[-3000:] if component.log_file.exists() else ""
            raise DevStackError(f"{what} exited during start-up; see {component.log_file}:\n{tail}")
        time.sleep(0.5)
    raise DevStackError(f"{what} did not answer within {timeout:.0f} s")


def kafka_answers(bootstrap: str | None = None) -> bool:
    # While the broker starts, every refused connection would be logged by the client: expected, so kept quiet.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)

    async def probe() -> bool:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap or kafka_bootstrap(), request_timeout_ms=3000)
        try:
            await asyncio.wait_for(admin.start(), 5)
            await asyncio.wait_for(admin.list_topics(), 5)
            return True
        except Exception:
            return False
        finally:
            await admin.close()

    return asyncio.run(probe())


def mongo_answers(url: str | None = None) -> bool:
    async def probe() -> bool:
        client = AsyncMongoClient(url or mongo_url(), serverSelectionTimeoutMS=2000)
        try:
            await client.admin.command("ping")
            return True
        except Exception:
            return False
        finally:
            await client.close()

    return asyncio.run(probe())


# --------------------------------------------------------------------------- Kafka


def _kafka_dir() -> Path:
    return home() / "kafka"


def install_kafka() -> Path:
    """Resolve Kafka's jars with Maven into .civicbus/kafka/lib (once per pom version)."""
    _require("java", "openjdk-17-jre-headless")
    pom = DEPLOY / "kafka" / "pom.xml"
    lib = _kafka_dir() / "lib"
    marker = _kafka_dir() / "installed"
    fingerprint = _fingerprint(pom)
    if _installed(marker, fingerprint) and lib.is_dir():
        return lib
    mvn = _require("mvn", "maven")
    shutil.rmtree(lib, ignore_errors=True)
    _run(
        [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
         f"-DoutputDirectory={lib}", "-DincludeScope=runtime"],
        cwd=DEPLOY / "kafka",
        log_file=home() / "logs" / "kafka-install.log",
    )
    marker.write_text(fingerprint)
    return lib


def _kafka_properties(data_dir: Path) -> str:
    template = (DEPLOY / "kafka" / "server.properties").read_text()
    return template.format(
        kafka_port=PORTS.kafka, controller_port=PORTS.kafka_controller, log_dirs=str(data_dir)
    )


def start_kafka() -> str:
    if external_kafka():
        _wait(f"Kafka at {external_kafka()}", kafka_answers, None, 30)
        return f"external Kafka at {external_kafka()}"
    if KAFKA.pid() is not None:
        _wait("Kafka", kafka_answers, KAFKA, 90)
        return f"Kafka already running on 127.0.0.1:{PORTS.kafka} (pid {KAFKA.pid()})"
    for port in (PORTS.kafka, PORTS.kafka_controller):
        if _port_open(port):
            raise DevStackError(
                f"port {port} is taken by another process; stop it, or choose other ports with "
                "CIVICBUS_DEV_KAFKA_PORT / CIVICBUS_DEV_KAFKA_CONTROLLER_PORT"
            )
    lib = install_kafka()
    kafka_dir = _kafka_dir()
    data_dir = kafka_dir / "data"
    properties = kafka_dir / "server.properties"
    properties.write_text(_kafka_properties(data_dir))
    java = _require("java", "openjdk-17-jre-headless")
    classpath = f"{lib}/*"
    log4j = f"-Dlog4j2.configurationFile={DEPLOY / 'kafka' / 'log4j2.properties'}"
    if not (data_dir / "meta.properties").exists():
        cluster_id = subprocess.run(
            [java, log4j, "-cp", classpath, "kafka.tools.StorageTool", "random-uuid"],
            capture_output=True, text=True, check=True,
        ).stdout.strip().splitlines()[-1]
        _run(
            [java, log4j, "-cp", classpath, "kafka.tools.StorageTool", "format", "--standalone",
             "-t", cluster_id, "-c", str(properties)],
            cwd=kafka_dir,
            log_file=KAFKA.log_file,
        )
    KAFKA.start(
        [java, "-Xms256m", "-Xmx1g", "-XX:+UseG1GC", "-Djava.awt.headless=true", log4j,
         "-cp", classpath, "kafka.Kafka", str(properties)],
        cwd=kafka_dir,
    )
    _wait("Kafka", kafka_answers, KAFKA, 120)
    return f"Kafka started on 127.0.0.1:{PORTS.kafka} (pid {KAFKA.pid()})"


# --------------------------------------------------------------------------- FerretDB


def install_ferretdb() -> Path:
    """Build FerretDB v1 from the Go module proxy into .civicbus/bin (once per go.sum and patch set), with the
    patches of ``deploy/ferretdb/patches`` applied to the module's source: a copy of the module is patched in
    .civicbus/build and the build replaces the module with it."""
    source = DEPLOY / "ferretdb"
    patches = sorted((source / "patches").glob("*.patch"))
    binary = home() / "bin" / "ferretdb"
    marker = home() / "bin" / "ferretdb.installed"
    fingerprint = _fingerprint(source / "go.mod", source / "go.sum", source / "main.go", *patches)
    if _installed(marker, fingerprint) and binary.is_file():
        return binary
    go = _require("go", "golang")
    log_file = home() / "logs" / "ferretdb-install.log"
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"}
    build = home() / "build" / "ferretdb"
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir(parents=True)
    for name in ("go.mod", "go.sum", "main.go"):
        shutil.copy(source / name, build / name)
    _run([go, "mod", "download", "github.com/FerretDB/FerretDB"], cwd=build, log_file=log_file, env=env)
    module_dir = subprocess.run([go, "list", "-m", "-f", "{{.Dir}}", "github.com/FerretDB/FerretDB"], cwd=build,
                                env=env, capture_output=True, text=True, check=True).stdout.strip()
    # The module cache is read-only: copy the module, make it writable, patch it.
    shutil.copytree(module_dir, build / "FerretDB", copy_function=shutil.copy)
    for path in (build / "FerretDB").rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    for patch in patches:
        _run(["patch", "-p1", "--forward", "-i", str(patch)], cwd=build / "FerretDB", log_file=log_file)
    _run([go, "mod", "edit", "-replace", "github.com/FerretDB/FerretDB=./FerretDB"], cwd=build, log_file=log_file,
         env=env)
    binary.parent.mkdir(parents=True, exist_ok=True)
    _run([go, "build", "-trimpath", "-o", str(binary), "."], cwd=build, log_file=log_file, env=env)
    marker.write_text(fingerprint)
    return binary


def start_ferretdb() -> str:
    if external_mongo():
        _wait("MongoDB at MONGO_URL", lambda: mongo_answers(external_mongo()), None, 30)
        return "external MongoDB at MONGO_URL"
    if FERRETDB.pid() is not None:
        _wait("FerretDB", mongo_answers, FERRETDB, 30)
        return f"FerretDB already running on 127.0.0.1:{PORTS.mongo} (pid {FERRETDB.pid()})"
    if _port_open(PORTS.mongo):
        raise DevStackError(
            f"port {PORTS.mongo} is taken by another process; stop it, set MONGO_URL to use it, "
            "or choose another port with CIVICBUS_DEV_MONGO_PORT"
        )
    binary = install_ferretdb()
    data_dir = home() / "ferretdb" / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    # synchronous(normal) in WAL mode: no fsync per transaction. A crash of the process loses nothing; a power
    # loss may lose the last transactions — right for a development stack (a deployment sets MONGO_URL).
    FERRETDB.start(
        [str(binary), f"-listen-addr=127.0.0.1:{PORTS.mongo}", "-handler=sqlite",
         f"-sqlite-url=file:{data_dir}/?_pragma=synchronous(normal)", "-log-level=warn"],
        cwd=home(),
    )
    _wait("FerretDB", mongo_answers, FERRETDB, 30)
    return f"FerretDB started on 127.0.0.1:{PORTS.mongo} (pid {FERRETDB.pid()})"


# --------------------------------------------------------------------------- the stack


def up() -> list[str]:
    """Install what is missing, start Kafka and FerretDB, wait until both answer. Idempotent."""
    return [start_kafka(), start_ferretdb()]


def down() -> list[str]:
    messages = []
    for component in (FERRETDB, KAFKA):
        stopped = component.stop()
        messages.append(f"{component.name} stopped" if stopped else f"{component.name} was not running")
    return messages


def status() -> list[tuple[str, str, str]]:
    """(component, where, state) for each part of the stack."""
    rows = []
    for component, address, answers, external in (
        (KAFKA, kafka_bootstrap(), kafka_answers, external_kafka()),
        (FERRETDB, mongo_url(), mongo_answers, external_mongo()),
    ):
        pid = component.pid()
        ok = answers()
        owner = "external" if external else (f"pid {pid}" if pid else "not running")
        rows.append((component.name, address, f"{'answering' if ok else 'not answering'} ({owner})"))
    return rows


def reset() -> None:
    """Stop the stack and delete its data (installed jars and binaries are kept)."""
    down()
    shutil.rmtree(_kafka_dir() / "data", ignore_errors=True)
    shutil.rmtree(home() / "ferretdb", ignore_errors=True)
