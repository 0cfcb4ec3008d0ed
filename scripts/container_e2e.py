"""`make container-e2e`: build the three images and run the whole system from them the way the
chart runs its pods, then drive it through one front door.

1. build the images (scripts/k8s-images.sh, CPU torch, and the ONNX-only worker) unless
   CONTAINER_E2E_BUILD=0;
2. render the chart (`helm template`) for a single node: the SQLite store on a shared volume,
   the RabbitMQ at CONTAINER_E2E_BROKER_URL (default: this machine's) with queues of its own,
   two worker pools (POOLS: `lite` and `big`, each its own Deployment and queue), `lite` on the
   ONNX-only worker image (image.onnxOnly), `big` on the image with torch;
3. run every container from the render (scripts/pod_flags.py turns each into run flags): the
   seed Job's container on empty volumes, then per Deployment its init containers (waiting for
   the seed) and its container: results, gateway, one `lite` worker and two `big` workers, each
   on its own port of the host network; nginx in front with the Ingress's routes
   (scripts/stack.py's configuration);
4. tests/e2e through nginx; an 11 MiB upload answered by the gateway's JSON 413; a `big` worker
   killed with SIGKILL mid-job (no job lost, exactly one outcome each, a job it had started run
   again elsewhere; the kill repeated when it fell between two jobs); a `big` worker stopped
   with SIGTERM, which drains and exits 0; the `lite` pool's worker stopped while `big` keeps
   serving, its jobs waiting in its queue until a worker of its own is back;
5. remove the containers and the queues, the images the new builds replaced and (podman) the
   earlier builds' stages these did not use (the stages they used stay, as the next build's
   cache); print what was built and each step's duration.

The engine is CONTAINER_ENGINE (docker or podman; detected when unset). Ports: CONTAINER_E2E_PORT
(nginx; default 20080) and the following ones. The host directories standing in for the
volumes are under CONTAINER_E2E_DIR (default data/container-e2e, emptied first).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from devstack.paths import REPO
from devstack.stack import delete_job_queues, http_status, nginx_conf
from scripts.pod_flags import Container, Render, load

CHART = REPO / "helm" / "classifier"
RELEASE = "classifier"
BROKER_SECRET = "classifier-e2e-broker"
FAULT_MODEL = "efficientnet_lite2"  # the slowest model: jobs stay in hand long enough to be interrupted
# The worker pools the chart is rendered with, and how many workers of each run: the fault steps
# interrupt the slow model's pool, which has two workers so that one survives each fault.
POOLS = {"lite": ["efficientnet_lite0", "efficientnet_lite1"], "big": [FAULT_MODEL]}
WORKERS = {"lite": 1, "big": 2}
# The pools on the worker image without torch: they serve the exports the seed Job made.
ONNX_ONLY = {"lite"}


def detect_engine() -> str:
    """CONTAINER_ENGINE, else what scripts/container-engine.sh finds (docker when its daemon
    answers, else podman)."""
    result = subprocess.run([str(REPO / "scripts" / "container-engine.sh")], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(result.stderr.strip())
    return result.stdout.strip()


def chart_app_version() -> str:
    for line in (CHART / "Chart.yaml").read_text().splitlines():
        if line.startswith("appVersion:"):
            return line.split(":", 1)[1].strip().strip('"')
    raise SystemExit("Chart.yaml has no appVersion")


@dataclass
class Steps:
    """Each step's duration, printed as it ends and summed up at the end."""

    durations: list[tuple[str, float]] = field(default_factory=list)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        print(f"== {name}", flush=True)
        start = time.monotonic()
        try:
            yield
        finally:
            elapsed = time.monotonic() - start
            self.durations.append((name, elapsed))
            print(f"== {name}: {elapsed:.1f} s", flush=True)

    def summary(self) -> str:
        lines = [f"  {elapsed:7.1f} s  {name}" for name, elapsed in self.durations]
        total = sum(elapsed for _, elapsed in self.durations)
        return "\n".join([*lines, f"  {total:7.1f} s  total"])


@dataclass
class System:
    engine: str
    workdir: Path
    port: int
    queue: str
    broker_url: str
    pools: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)  # container names, in start order
    urls: dict[str, str] = field(default_factory=dict)  # container name -> readiness URL
    containers: dict[str, Container] = field(default_factory=dict)
    nginx: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def engine_run(self, *args: str, check: bool = True, capture: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([self.engine, *args], check=check, capture_output=capture, text=True)

    # -- running containers -------------------------------------------------------------------

    def run(self, container: Container, name: str, port: int | None, detach: bool) -> None:
        # Host networking: the pod IP's stand-in is 127.0.0.1, and each container gets its own port.
        extra = ["--network", "host", "--pull=never", "--env", "CLASSIFIER_HOST=127.0.0.1"]
        if port is not None:
            extra += ["--env", f"CLASSIFIER_PORT={port}"]
        if detach:
            extra.append("--detach")
        self.engine_run("rm", "--force", name, check=False)
        command = container.run_command(self.engine, name, extra)
        shown = [a for n, a in enumerate(command) if a != "--env" and (n == 0 or command[n - 1] != "--env")]
        print(
            "   ",
            " ".join(shown[: shown.index(container.image) + 1]),
            f"(+{(len(command) - len(shown)) // 2} env vars)",
        )
        self.started.append(name)
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            logs = self.engine_run("logs", name, check=False).stdout[-4000:]
            raise RuntimeError(f"{name} exited with {result.returncode}: {result.stderr[-2000:]}\n{logs}")
        if port is not None and container.readiness_path:
            self.urls[name] = f"http://127.0.0.1:{port}{container.readiness_path}"
        self.containers[name] = container

    def run_pod(self, containers: list[Container], name: str, port: int | None) -> str:
        """Init containers to completion in order, then the pod's one container, detached."""
        main = [c for c in containers if not c.init]
        assert len(main) == 1, f"{name}: one container per pod expected"
        for init in (c for c in containers if c.init):
            self.run(init, f"{name}-{init.name}", None, detach=False)
        self.run(main[0], name, port, detach=True)
        return name

    def wait_ready(self, names: list[str], timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        pending = [n for n in names if n in self.urls]
        while pending:
            for name in list(pending):
                state = self.engine_run("inspect", "--format", "{{.State.Running}}", name).stdout.strip()
                if state != "true":
                    raise RuntimeError(f"{name} stopped:\n{self.logs(name)[-4000:]}")
                if http_status(self.urls[name]) == 200:
                    pending.remove(name)
            if pending and time.monotonic() > deadline:
                raise TimeoutError(f"not ready after {timeout} s: {pending}")
            time.sleep(0.5)

    def logs(self, name: str) -> str:
        result = self.engine_run("logs", name, check=False)
        return result.stdout + result.stderr

    def exit_code(self, name: str) -> int:
        return int(self.engine_run("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip())

    def stop(self, name: str) -> int:
        """As the kubelet stops a pod: the preStop hook, then SIGTERM, then SIGKILL after the
        grace period. Returns the exit code."""
        container = self.containers[name]
        if container.pre_stop:
            self.engine_run("exec", name, *container.pre_stop)
        self.engine_run("stop", "--time", str(container.termination_grace_s), name)
        return self.exit_code(name)

    def start_nginx(self, gateway_port: int, results_port: int) -> None:
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        state = self.workdir / "nginx"
        for sub in ("nginx-body", "nginx-proxy", "nginx-fastcgi", "nginx-uwsgi", "nginx-scgi"):
            (state / sub).mkdir(parents=True, exist_ok=True)
        conf = state / "nginx.conf"
        conf.write_text(
            nginx_conf(state_dir=state, port=self.port, gateway_port=gateway_port, results_port=results_port)
        )
        log = (state / "nginx.log").open("ab")
        self.nginx = subprocess.Popen([nginx, "-c", str(conf), "-p", str(state)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while http_status(f"{self.base_url}/healthz") != 200:
            if self.nginx.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not come up; see {state / 'nginx.log'}")
            time.sleep(0.2)

    def teardown(self) -> None:
        if self.nginx is not None and self.nginx.poll() is None:
            self.nginx.terminate()
            self.nginx.wait(10)
        for name in reversed(self.started):
            self.engine_run("rm", "--force", "--time", "5", name, check=False)
        # Each pool's queue and dead-letter queue, then the finished-job exchange.
        with contextlib.suppress(Exception):
            delete_job_queues(self.broker_url, self.queue, self.pools)

    # -- the store, read from the host ---------------------------------------------------------

    def jobs(self, ids: list[str]) -> dict[str, tuple[str, int]]:
        """{job id: (status, attempts)} from the SQLite file the containers share."""
        with contextlib.closing(sqlite3.connect(self.workdir / "store" / "jobs.db", timeout=30)) as db:
            marks = ",".join("?" * len(ids))
            rows = db.execute(f"SELECT id, status, attempts FROM jobs WHERE id IN ({marks})", ids).fetchall()
        return {row[0]: (row[1], row[2]) for row in rows}


# -- steps -------------------------------------------------------------------------------------


def image_id(engine: str, image: str) -> str | None:
    result = subprocess.run([engine, "image", "inspect", "--format", "{{.Id}}", image], capture_output=True, text=True)
    return (result.stdout.strip() or None) if result.returncode == 0 else None


def layer_id(line: str) -> str | None:
    """The image id on a podman build line "--> <id>" or "--> Using cache <id>"."""
    match = re.match(r"--> (?:Using cache )?([0-9a-f]{11,64})\s*$", line)
    return match.group(1) if match else None


def build_images(engine: str, tag: str, images: list[str]) -> list[str]:
    """Builds the images (the ONNX-only worker too) and removes what the builds made obsolete: the images they
    replaced and, with podman, the earlier builds' stages that these builds did not use (the
    stages they used stay, as the next build's cache). Returns the removed image ids."""
    before = {image: image_id(engine, image) for image in images}
    env = {
        **os.environ,
        "CONTAINER_ENGINE": engine,
        "IMAGE_TAG": tag,
        "LOAD": "0",
        "TORCH_VARIANT": "cpu",
        "ONNX_WORKER": "1",
    }
    used: set[str] = set()  # the layers podman built or took from its cache ("--> [Using cache ]<id>")
    with subprocess.Popen(
        [str(REPO / "scripts" / "k8s-images.sh")], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as build:
        assert build.stdout is not None
        for line in build.stdout:
            print(line, end="", flush=True)
            layer = layer_id(line)
            if layer:
                used.add(layer)
    if build.returncode != 0:
        raise subprocess.CalledProcessError(build.returncode, build.args)
    obsolete = [old for image, old in before.items() if old and old != image_id(engine, image)]
    if engine == "podman":
        dangling = subprocess.run(
            [engine, "images", "--quiet", "--no-trunc", "--filter", "dangling=true"], capture_output=True, text=True
        ).stdout.split()
        for full in dangling:
            short = full.removeprefix("sha256:")
            if not any(short.startswith(u) or u.startswith(short) for u in used):
                obsolete.append(full)
    removed = []
    for old in dict.fromkeys(obsolete):
        if subprocess.run([engine, "rmi", old], capture_output=True).returncode == 0:
            removed.append(old.removeprefix("sha256:")[:12])
    return removed


def image_report(engine: str, images: list[str]) -> str:
    lines = []
    for image in images:
        result = subprocess.run(
            [engine, "image", "inspect", "--format", "{{.Id}} {{.Size}}", image], capture_output=True, text=True
        )
        if result.returncode == 0:
            image_id, size = result.stdout.split()
            lines.append(f"  {image:40} {image_id.removeprefix('sha256:')[:12]}  {int(size) / 1e6:7.0f} MB")
        else:
            lines.append(f"  {image:40} (missing)")
    return "\n".join(lines)


def render(tag: str, queue: str, broker: urllib.parse.SplitResult, pools: dict[str, list[str]]) -> str:
    vhost = urllib.parse.unquote(broker.path.lstrip("/")) or "/"
    values = {
        "image.tag": tag,
        "store.type": "sqlite",
        "rabbitmq.enabled": "false",
        "externalRabbitmq.host": broker.hostname or "127.0.0.1",
        "externalRabbitmq.port": str(broker.port or 5672),
        "externalRabbitmq.vhost": vhost,
        "externalRabbitmq.existingSecret": BROKER_SECRET,
        "config.queueName": queue,
        # Every job runs a model: the fault steps need work in the workers' hands.
        "config.resultCache": "false",
        "autoscaling.enabled": "false",
    }
    helm = os.environ.get("HELM", "helm")
    worker_pools = [
        {"name": name, "models": models, **({"image": {"onnxOnly": True}} if name in ONNX_ONLY else {})}
        for name, models in pools.items()
    ]
    args = [helm, "template", RELEASE, str(CHART), "--set-json", f"workerPools={json.dumps(worker_pools)}"]
    for key, value in values.items():
        args += ["--set-string" if key in ("externalRabbitmq.vhost", "config.queueName") else "--set", f"{key}={value}"]
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def prepare_volumes(engine: str, workdir: Path, uid: int) -> dict[str, str]:
    """Empty host directories for the claims, owned by the pods' user (the fsGroup's effect)."""
    if workdir.exists():
        if engine == "podman" and os.geteuid() != 0:
            subprocess.run([engine, "unshare", "rm", "-rf", str(workdir)], check=True)
        else:
            shutil.rmtree(workdir)
    claims = {}
    for volume in ("models", "gallery", "store"):
        path = workdir / volume
        path.mkdir(parents=True)
        if os.geteuid() == 0:
            os.chown(path, uid, uid)
        elif engine == "podman":
            subprocess.run([engine, "unshare", "chown", f"{uid}:{uid}", str(path)], check=True)
        else:
            path.chmod(0o777)
        claims[f"{RELEASE}-{volume}"] = str(path)
    return claims


def submit_gallery(client: httpx.Client, model: str) -> list[str]:
    ids = []
    for name in [image["name"] for image in client.get("/v1/images").json()]:
        response = client.post("/v1/jobs", json={"model": model, "image": name})
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    return ids


def wait_finished(system: System, ids: list[str], timeout: float = 300) -> dict[str, tuple[str, int]]:
    deadline = time.monotonic() + timeout
    while True:
        jobs = system.jobs(ids)
        if len(jobs) == len(ids) and all(status in ("succeeded", "failed", "canceled") for status, _ in jobs.values()):
            return jobs
        if time.monotonic() > deadline:
            unfinished = {j: s for j, s in jobs.items() if s[0] not in ("succeeded", "failed", "canceled")}
            raise AssertionError(f"{len(unfinished) + len(ids) - len(jobs)} jobs unfinished after {timeout} s")
        time.sleep(0.5)


def log_records(logs: str) -> Iterator[dict]:
    """The workers' JSON log lines, parsed (other lines skipped)."""
    for line in logs.splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict):
                    yield record


def outcomes_written(logs: str) -> Counter[str]:
    """How often each job's outcome was written, from the workers' JSON log lines."""
    counts: Counter[str] = Counter()
    for record in log_records(logs):
        if record.get("msg") in ("job succeeded", "job failed") or str(record.get("msg", "")).startswith("job failed"):
            counts[str(record.get("job_id"))] += 1
    return counts


def interrupted(ids: list[str], jobs: dict[str, tuple[str, int]], logs: str) -> list[str]:
    """The jobs started more than once that no worker gave back itself ("job requeued"): those a
    worker had started and held when it was killed."""
    requeued = {r.get("job_id") for r in log_records(logs) if str(r.get("msg", "")).startswith("job requeued")}
    return [j for j in ids if j in jobs and jobs[j][1] > 1 and j not in requeued]


def check_one_outcome_each(ids: list[str], jobs: dict[str, tuple[str, int]], logs: str, what: str) -> str:
    lost = [j for j in ids if jobs.get(j, ("",))[0] != "succeeded"]
    written = outcomes_written(logs)
    duplicated = [j for j in ids if written[j] > 1]
    missing = [j for j in ids if written[j] == 0]
    redelivered = sum(1 for j in ids if jobs[j][1] > 1)
    line = (
        f"{what}: {len(ids)} jobs, succeeded {len(ids) - len(lost)}, lost {len(lost)}, "
        f"outcome written twice {len(duplicated)}, never logged {len(missing)}, run more than once {redelivered}"
    )
    assert not lost and not duplicated and not missing, line
    return line


def main() -> int:
    engine = detect_engine()
    tag = os.environ.get("IMAGE_TAG") or chart_app_version()
    port = int(os.environ.get("CONTAINER_E2E_PORT", "20080"))
    workdir = Path(os.environ.get("CONTAINER_E2E_DIR", str(REPO / "data" / "container-e2e"))).resolve()
    broker_url = os.environ.get("CONTAINER_E2E_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
    broker = urllib.parse.urlsplit(broker_url)
    queue = f"e2e.{uuid.uuid4().hex[:8]}.jobs"
    images = [
        f"classifier-gateway:{tag}",
        f"classifier-results:{tag}",
        f"classifier-worker:{tag}",
        f"classifier-worker:{tag}-onnx",
    ]
    steps = Steps()
    system = System(engine=engine, workdir=workdir, port=port, queue=queue, broker_url=broker_url, pools=list(POOLS))
    results: list[str] = []
    print(f"container-e2e with {engine}: images {', '.join(images)}; queue {queue}; front door {system.base_url}")
    try:
        if os.environ.get("CONTAINER_E2E_BUILD", "1") != "0":
            with steps.step("build the images"):
                removed = build_images(engine, tag, images)
            print(f"removed the images these builds made obsolete: {', '.join(removed) or 'none'}")
        print("images:\n" + image_report(engine, images), flush=True)

        with steps.step("render the chart (SQLite store, external RabbitMQ)"):
            objects = load(render(tag, queue, broker, POOLS))
            secret = {
                "kind": "Secret",
                "metadata": {"name": BROKER_SECRET},
                "stringData": {"username": broker.username or "guest", "password": broker.password or "guest"},
            }
            chart = Render(objects, extra=[secret], engine=engine)
            uid = int(
                next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]["spec"]["securityContext"][
                    "runAsUser"
                ]
            )
            claims = prepare_volumes(engine, workdir, uid)
            seed_job = next(o["metadata"]["name"] for o in objects if o["kind"] == "Job")

        with steps.step("seed Job on empty volumes"):
            for container in chart.containers("Job", seed_job, claims):
                system.run(container, f"e2e-{seed_job}-{container.name}", None, detach=False)

        ports = {"results": port + 1, "gateway": port + 2}
        with steps.step("results, gateway and workers: init containers, then ready"):
            results_pod = system.run_pod(
                chart.containers("Deployment", f"{RELEASE}-results", claims), "e2e-results", ports["results"]
            )
            gateway_pod = system.run_pod(
                chart.containers("Deployment", f"{RELEASE}-gateway", claims), "e2e-gateway", ports["gateway"]
            )
            worker_ports: dict[str, tuple[str, int]] = {}
            for pool, count in WORKERS.items():
                for i in range(count):
                    worker_ports[f"e2e-worker-{pool}-{i}"] = (pool, port + 10 + len(worker_ports))
            for name, (pool, worker_port) in worker_ports.items():
                system.run_pod(chart.containers("Deployment", f"{RELEASE}-worker-{pool}", claims), name, worker_port)
            system.wait_ready([results_pod, gateway_pod, *worker_ports])
            worker_pods = [name for name, (pool, _) in worker_ports.items() if pool == "big"]
            lite_pod = next(name for name, (pool, _) in worker_ports.items() if pool == "lite")

        with steps.step("nginx in front (the Ingress's routes)"):
            system.start_nginx(ports["gateway"], ports["results"])

        with steps.step("tests/e2e through the front door"):
            env = {**os.environ, "BASE_URL": system.base_url}
            code = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/e2e"], cwd=REPO, env=env
            ).returncode
            assert code == 0, f"tests/e2e failed ({code})"

        with httpx.Client(base_url=system.base_url, timeout=60) as client:
            with steps.step("11 MiB upload: the gateway's JSON 413"):
                big = client.post(
                    "/v1/jobs",
                    files={"file": ("big.jpg", b"\0" * (11 * 1024 * 1024), "image/jpeg")},
                    data={"model": "efficientnet_lite0"},
                )
                assert big.status_code == 413 and big.headers["content-type"].startswith("application/json"), (
                    big.status_code,
                    big.text[:200],
                )
                assert big.json()["error"]["code"] == "payload_too_large", big.text
                results.append(f"11 MiB upload: {big.status_code} {big.json()['error']['code']}")

            with steps.step("a big worker killed with SIGKILL mid-job"):
                # Mid-job: a job the killed worker had started runs again elsewhere. A kill that
                # fell between two of its jobs (a few milliseconds of each job's time) proves
                # nothing: the worker is started again and killed again.
                for attempt in range(1, 4):
                    ids = submit_gallery(client, FAULT_MODEL)
                    while sum(1 for s, _ in system.jobs(ids).values() if s == "succeeded") < 3:
                        time.sleep(0.05)
                    system.engine_run("kill", "--signal", "KILL", worker_pods[0])
                    killed_code = system.exit_code(worker_pods[0])
                    assert killed_code == 137, f"killed worker exited with {killed_code}"
                    jobs = wait_finished(system, ids)
                    logs = "".join(system.logs(w) for w in worker_pods)
                    line = check_one_outcome_each(ids, jobs, logs, "SIGKILL mid-job")
                    held = interrupted(ids, jobs, logs)
                    if held or attempt == 3:
                        break
                    print(f"   the kill fell between two jobs ({line}); once more", flush=True)
                    system.run_pod(
                        chart.containers("Deployment", f"{RELEASE}-worker-big", claims),
                        worker_pods[0],
                        worker_ports[worker_pods[0]][1],
                    )
                    system.wait_ready([worker_pods[0]])
                assert held, f"none of {attempt} kills came while the worker held a started job: {line}"
                results.append(
                    f"{line}; killed worker's exit code {killed_code}; "
                    f"{len(held)} started job(s) in its hands ran again elsewhere"
                )

            with steps.step("the killed worker back (as its Deployment would), then SIGTERM drains another"):
                kept_logs = system.logs(worker_pods[0])
                system.run_pod(
                    chart.containers("Deployment", f"{RELEASE}-worker-big", claims),
                    worker_pods[0],
                    worker_ports[worker_pods[0]][1],
                )
                system.wait_ready([worker_pods[0]])
                ids = submit_gallery(client, FAULT_MODEL)
                while sum(1 for s, _ in system.jobs(ids).values() if s == "succeeded") < 3:
                    time.sleep(0.05)
                started = time.monotonic()
                code = system.stop(worker_pods[1])
                assert code == 0, (
                    f"worker stopped with SIGTERM exited with {code}:\n{system.logs(worker_pods[1])[-3000:]}"
                )
                jobs = wait_finished(system, ids)
                logs = kept_logs + "".join(system.logs(w) for w in worker_pods)
                results.append(
                    check_one_outcome_each(ids, jobs, logs, "SIGTERM drain")
                    + f"; the stopped worker exited {code} after {time.monotonic() - started:.1f} s"
                )
                system.run_pod(
                    chart.containers("Deployment", f"{RELEASE}-worker-big", claims),
                    worker_pods[1],
                    worker_ports[worker_pods[1]][1],
                )
                system.wait_ready([worker_pods[1]])

            with steps.step("the lite pool's worker gone: big keeps serving, lite's jobs wait for it"):
                code = system.stop(lite_pod)
                assert code == 0, f"lite worker stopped with SIGTERM exited with {code}"
                kept_logs = system.logs(lite_pod)
                lite_ids = submit_gallery(client, POOLS["lite"][0])
                big_ids = submit_gallery(client, FAULT_MODEL)
                big_jobs = wait_finished(system, big_ids)
                waiting = system.jobs(lite_ids)
                assert all(status == "queued" for status, _ in waiting.values()), Counter(
                    s for s, _ in waiting.values()
                )
                system.run_pod(
                    chart.containers("Deployment", f"{RELEASE}-worker-lite", claims),
                    lite_pod,
                    worker_ports[lite_pod][1],
                )
                system.wait_ready([lite_pod])
                lite_jobs = wait_finished(system, lite_ids)
                logs = "".join(system.logs(w) for w in worker_pods)
                results.append(check_one_outcome_each(big_ids, big_jobs, logs, "big pool while lite had no worker"))
                results.append(
                    check_one_outcome_each(lite_ids, lite_jobs, kept_logs + system.logs(lite_pod), "lite pool back")
                )
        print("\n".join(["container-e2e passed:", *(f"  {r}" for r in results)]))
        return 0
    finally:
        with steps.step("clean up: containers, queues"):
            system.teardown()
        print("images:\n" + image_report(engine, images))
        print("steps:\n" + steps.summary(), flush=True)


if __name__ == "__main__":
    sys.exit(main())
