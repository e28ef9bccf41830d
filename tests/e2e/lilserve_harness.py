# File: tests/e2e/lilserve_harness.py
# Shared pieces of the end-to-end tests: Python stubs generated at test time from the
# .proto (grpcio-tools), the real lilserve binary started on free ports, and a Prometheus
# server that scrapes it. The client is independent of the daemon's C++ code.
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.environ.get("LILSERVE_ROOT", os.getcwd())
BUILD = os.environ.get("LILSERVE_BUILD", os.path.join(ROOT, "build"))
LILSERVE = os.path.join(BUILD, "server", "lilserve")
MODEL = os.environ.get("LILSERVE_E2E_MODEL", os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
# LILSERVE_DAEMON_FLAGS (e.g. "--device cuda --tensor-parallel 3") is appended to every
# daemon's flags: the same client tests then run against the GPU or tensor-parallel daemon.

_stub_dir = tempfile.mkdtemp(prefix="lilserve_stubs_")


def _gen_stubs():
    from grpc_tools import protoc
    import shutil
    shutil.copy(os.environ.get("LILSERVE_HEALTH_PROTO", "/usr/share/grpc-proto/grpc/health/v1/health.proto"),
                _stub_dir)
    args = ["protoc", "-I" + os.path.join(ROOT, "proto"), "-I" + _stub_dir,
            "--python_out=" + _stub_dir, "--grpc_python_out=" + _stub_dir,
            os.path.join(ROOT, "proto", "lilserve", "v1", "lilserve.proto"),
            os.path.join(_stub_dir, "health.proto")]
    if protoc.main(args) != 0:
        sys.exit("FAIL: grpc_tools.protoc could not compile the protos")
    sys.path.insert(0, _stub_dir)


_gen_stubs()
import grpc  # noqa: E402
from lilserve.v1 import lilserve_pb2 as pb  # noqa: E402,F401
from lilserve.v1 import lilserve_pb2_grpc as rpc  # noqa: E402,F401
import health_pb2  # noqa: E402,F401
import health_pb2_grpc  # noqa: E402,F401


def fail(msg):
    print("FAIL: " + msg, flush=True)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    """The real lilserve process, on free ports, logging to a temp file."""

    def __init__(self, *extra, tls_root=None):
        check(os.path.exists(LILSERVE), f"{LILSERVE} is not built")
        check(os.path.exists(MODEL), f"{MODEL} is missing")
        self.port = free_port()
        self.metrics_port = free_port()
        self.log = tempfile.NamedTemporaryFile(prefix="lilserve_", suffix=".log", delete=False)
        cmd = [LILSERVE, "--model", MODEL, "--host", "127.0.0.1", "--port", str(self.port),
               "--metrics-host", "127.0.0.1", "--metrics-port", str(self.metrics_port),
               *extra, *os.environ.get("LILSERVE_DAEMON_FLAGS", "").split()]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        # Reconnect fast: the first attempt may come before the daemon listens.
        opts = [("grpc.initial_reconnect_backoff_ms", 50), ("grpc.min_reconnect_backoff_ms", 50),
                ("grpc.max_reconnect_backoff_ms", 200)]
        if tls_root is None:
            self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}", options=opts)
        else:
            self.channel = grpc.secure_channel(
                f"127.0.0.1:{self.port}", grpc.ssl_channel_credentials(root_certificates=tls_root),
                options=opts + [("grpc.ssl_target_name_override", "localhost")])
        self.inference = rpc.InferenceStub(self.channel)
        self.control = rpc.ControlStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)
        self.metadata = None  # sent on Control calls (bearer token)

    def health_status(self, service=""):
        try:
            r = self.health.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
            return health_pb2.HealthCheckResponse.ServingStatus.Name(r.status)
        except grpc.RpcError as e:
            return "RPC_" + e.code().name

    def wait_ready(self, timeout=120):
        """Returns the health statuses seen on the way to SERVING."""
        seen = []
        end = time.time() + timeout
        while "listening on" not in self.logs() and time.time() < end:
            if self.proc.poll() is not None:
                fail(f"lilserve exited with {self.proc.returncode}:\n{self.logs()}")
            time.sleep(0.01)
        while time.time() < end:
            if self.proc.poll() is not None:
                fail(f"lilserve exited with {self.proc.returncode}:\n{self.logs()}")
            st = self.health_status()
            if not seen or seen[-1] != st:
                seen.append(st)
            if st == "SERVING":
                return seen
            time.sleep(0.05)
        fail(f"lilserve not SERVING after {timeout}s (saw {seen}):\n{self.logs()}")

    def http(self, path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def info(self):
        return self.control.GetServerInfo(pb.GetServerInfoRequest(), timeout=5,
                                         metadata=self.metadata)

    def wait_idle(self, timeout=30):
        """Waits until no request runs or waits and no page is referenced."""
        end = time.time() + timeout
        info = None
        while time.time() < end:
            info = self.info()
            if info.running == 0 and info.waiting == 0 and info.pages_used == 0:
                return info
            time.sleep(0.05)
        fail(f"server not idle after {timeout}s: {info}")

    def logs(self):
        with open(self.log.name, errors="replace") as f:
            return f.read()[-4000:]

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        """`with daemon:` prints the daemon's log when a check failed inside (SystemExit) and
        kills it if the block left it running; the exception goes on."""
        if exc_type is SystemExit:
            print(self.logs())
        if self.proc.poll() is None:
            self.proc.kill()
        return False

    def stop(self, sig=None, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(sig or 15)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                fail(f"lilserve did not exit {timeout}s after SIGTERM:\n{self.logs()}")
        self.channel.close()
        return self.proc.returncode


def self_signed_cert(directory):
    """A localhost certificate and key (PEM files) made with openssl."""
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    p = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                        "-keyout", key, "-out", cert], capture_output=True, text=True)
    check(p.returncode == 0, f"openssl failed: {p.stderr}")
    return cert, key


def generate(daemon, timeout=None, metadata=None, **fields):
    """Runs one Generate call; returns (chunks, finished message, full text, token ids)."""
    req = pb.GenerateRequest(**fields)
    chunks, finished, text, ids = [], None, "", []
    for r in daemon.inference.Generate(req, timeout=timeout, metadata=metadata):
        kind = r.WhichOneof("kind")
        check(finished is None, f"message after the finished one: {r}")
        if kind == "chunk":
            chunks.append(r.chunk)
            text += r.chunk.text
            ids += list(r.chunk.token_ids)
        elif kind == "finished":
            finished = r.finished
        else:
            fail(f"unexpected message {r}")
    check(finished is not None, "stream ended without a finished message")
    return chunks, finished, text, ids


def reason(finished):
    return pb.FinishReason.Name(finished.reason)


class Prometheus:
    """A real Prometheus server scraping the daemon's /metrics every second."""

    def __init__(self, target_port):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="lilserve_prom_")
        cfg = os.path.join(self.dir, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "scrape_configs:\n  - job_name: lilserve\n    static_configs:\n"
                    f"      - targets: ['127.0.0.1:{target_port}']\n")
        self.log = open(os.path.join(self.dir, "log.txt"), "w")
        self.proc = subprocess.Popen(
            ["prometheus", "--config.file=" + cfg, "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
             f"--web.listen-address=127.0.0.1:{self.port}"], stdout=self.log, stderr=subprocess.STDOUT)

    def query(self, expr):
        import json
        import urllib.parse
        url = f"http://127.0.0.1:{self.port}/api/v1/query?query=" + urllib.parse.quote(expr)
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                body = json.loads(r.read())
        except Exception as e:  # not up yet
            return None
        return body["data"]["result"] if body.get("status") == "success" else None

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
