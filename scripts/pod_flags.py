"""The chart's pods as `podman run` / `docker run` flags: the containers of a rendered Job or
Deployment (`helm template` output), each turned into the flags that give it the same image,
command, args, environment, volumes, resource limits and securityContext that the kubelet would.

What a cluster does and these flags do too:
- command[0] -> --entrypoint, the rest of command and then args after the image (the form both
  Docker and podman read); $(VAR) in command, args and env values expanded from the variables
  defined before it, `$$` kept as a literal `$`;
- envFrom (ConfigMaps) first, env after it (env wins); secretKeyRef / configMapKeyRef read from
  the rendered (or given) Secrets and ConfigMaps;
- runAsUser/runAsGroup -> --user, fsGroup -> --group-add, readOnlyRootFilesystem -> --read-only
  (with --read-only-tmpfs=false, or podman quietly adds writable /run and /var/tmp), drop ALL ->
  --cap-drop ALL, allowPrivilegeEscalation: false -> no-new-privileges, runAsNonRoot checked;
  (podman's own flags only with podman: --read-only-tmpfs=false, the tmpfs option U);
- emptyDir -> a tmpfs of its sizeLimit owned by the container's user; a PersistentVolumeClaim ->
  a host directory the caller names (read-only where the mount or the claim says so);
- limits.cpu -> --cpus, limits.memory -> --memory (requests only place pods: nothing to do).

What they cannot: probes and restarts (the caller polls the readiness URL), Services (the
containers share the host's network, so the caller gives each its own CLASSIFIER_PORT),
NetworkPolicies, and volume types other than emptyDir and PersistentVolumeClaim (refused).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml

WORKLOAD_KINDS = ("Job", "Deployment")
_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


@dataclass
class Container:
    """One container of a pod, ready to run: ``flags`` go between `run` and the image."""

    workload: str  # the Job's or Deployment's name
    name: str
    init: bool
    image: str
    flags: list[str]
    args: list[str]
    env: dict[str, str]
    readiness_path: str | None = None
    pre_stop: list[str] | None = None
    termination_grace_s: int = 30
    ports: dict[str, int] = field(default_factory=dict)

    def run_command(self, engine: str, container_name: str, extra: Iterable[str] = ()) -> list[str]:
        return [engine, "run", "--name", container_name, *self.flags, *extra, self.image, *self.args]


def load(rendered: str) -> list[dict[str, Any]]:
    """The objects of a `helm template` output, in order."""
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    if len(matches) != 1:
        raise KeyError(f"{kind}/{name}: {len(matches)} in the render")
    return matches[0]


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: defined variables are replaced, `$$` becomes `$`, an
    undefined reference stays as it is."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _VAR.sub(replace, value)


def secret_data(secret: dict[str, Any]) -> dict[str, str]:
    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    data.update(secret.get("stringData") or {})
    return data


def quantity_bytes(quantity: str | int) -> int:
    """A Kubernetes memory quantity (256Mi, 1G, 512) in bytes."""
    text = str(quantity)
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    return int(float(text))


def cpus(quantity: str | int | float) -> str:
    """A Kubernetes CPU quantity (500m, 1, "2") as a --cpus value."""
    text = str(quantity)
    value = float(text[:-1]) / 1000 if text.endswith("m") else float(text)
    return f"{value:g}"


class Render:
    """The Secrets and ConfigMaps of a render (plus those the caller made, as a user would with
    kubectl), from which container environments are resolved."""

    def __init__(
        self, objects: list[dict[str, Any]], extra: Iterable[dict[str, Any]] = (), engine: str = "podman"
    ) -> None:
        self.objects = objects
        self.podman = engine == "podman"
        every = [*objects, *extra]
        self.secrets = {o["metadata"]["name"]: secret_data(o) for o in every if o["kind"] == "Secret"}
        self.config_maps = {o["metadata"]["name"]: dict(o.get("data") or {}) for o in every if o["kind"] == "ConfigMap"}

    def _key(self, source: dict[str, dict[str, str]], what: str, ref: dict[str, Any]) -> str | None:
        values = source.get(ref["name"])
        if values is None or ref["key"] not in values:
            if ref.get("optional"):
                return None
            raise KeyError(f"{what} {ref['name']!r} has no key {ref['key']!r} (or does not exist)")
        return values[ref["key"]]

    def environment(self, container: dict[str, Any]) -> dict[str, str]:
        env: dict[str, str] = {}
        for source in container.get("envFrom") or []:
            if "configMapRef" in source:
                env.update(self.config_maps[source["configMapRef"]["name"]])
            elif "secretRef" in source:
                env.update(self.secrets[source["secretRef"]["name"]])
            else:
                raise NotImplementedError(f"envFrom {source}")
        for var in container.get("env") or []:
            if "value" in var:
                env[var["name"]] = expand(str(var["value"]), env)
                continue
            ref = var.get("valueFrom") or {}
            if "secretKeyRef" in ref:
                value = self._key(self.secrets, "Secret", ref["secretKeyRef"])
            elif "configMapKeyRef" in ref:
                value = self._key(self.config_maps, "ConfigMap", ref["configMapKeyRef"])
            else:
                raise NotImplementedError(f"env {var['name']}: {ref}")
            if value is not None:
                env[var["name"]] = value
        return env

    def containers(self, kind: str, name: str, claims: dict[str, str]) -> list[Container]:
        """The init containers, then the containers, of the pod template of ``kind``/``name``;
        ``claims`` maps each PersistentVolumeClaim name to the host directory standing in for it."""
        workload = find(self.objects, kind, name)
        pod = workload["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod.get("volumes") or []}
        out = []
        for init, key in ((True, "initContainers"), (False, "containers")):
            for container in pod.get(key) or []:
                out.append(self._container(name, init, container, pod, volumes, claims))
        return out

    def _container(
        self,
        workload: str,
        init: bool,
        container: dict[str, Any],
        pod: dict[str, Any],
        volumes: dict[str, dict[str, Any]],
        claims: dict[str, str],
    ) -> Container:
        env = self.environment(container)
        flags: list[str] = []
        args = [expand(a, env) for a in container.get("args") or []]
        if "command" in container:
            command = [expand(c, env) for c in container["command"]]
            flags += ["--entrypoint", command[0]]
            args = command[1:] + args
        flags += _security_flags(pod.get("securityContext") or {}, container.get("securityContext") or {}, self.podman)
        limits = (container.get("resources") or {}).get("limits") or {}
        if "cpu" in limits:
            flags += ["--cpus", cpus(limits["cpu"])]
        if "memory" in limits:
            flags += ["--memory", f"{quantity_bytes(limits['memory'])}b"]
        for mount in container.get("volumeMounts") or []:
            flags += _volume_flags(mount, volumes[mount["name"]], claims, self.podman)
        for key in sorted(env):
            flags += ["--env", f"{key}={env[key]}"]
        probe = ((container.get("readinessProbe") or {}).get("httpGet")) or {}
        pre_stop = (((container.get("lifecycle") or {}).get("preStop") or {}).get("exec") or {}).get("command")
        return Container(
            workload=workload,
            name=container["name"],
            init=init,
            image=container["image"],
            flags=flags,
            args=args,
            env=env,
            readiness_path=probe.get("path"),
            pre_stop=pre_stop,
            termination_grace_s=int(pod.get("terminationGracePeriodSeconds", 30)),
            ports={p["name"]: p["containerPort"] for p in container.get("ports") or [] if "name" in p},
        )


def _security_flags(pod: dict[str, Any], container: dict[str, Any], podman: bool) -> list[str]:
    context = {**pod, **container}  # the container's settings win
    flags: list[str] = []
    user = context.get("runAsUser")
    if context.get("runAsNonRoot") and not user:
        raise ValueError(
            "runAsNonRoot without a numeric runAsUser: the kubelet would refuse an image user it cannot check"
        )
    if user is not None:
        group = context.get("runAsGroup")
        flags += ["--user", f"{user}:{group}" if group is not None else str(user)]
    if pod.get("fsGroup") is not None:
        flags += ["--group-add", str(pod["fsGroup"])]
    if context.get("readOnlyRootFilesystem"):
        # podman otherwise mounts writable tmpfs on /run, /tmp and /var/tmp; Docker never does.
        flags += ["--read-only", "--read-only-tmpfs=false"] if podman else ["--read-only"]
    for capability in (context.get("capabilities") or {}).get("drop") or []:
        flags += ["--cap-drop", capability]
    for capability in (context.get("capabilities") or {}).get("add") or []:
        flags += ["--cap-add", capability]
    if context.get("allowPrivilegeEscalation") is False:
        flags += ["--security-opt", "no-new-privileges"]
    if context.get("privileged"):
        raise ValueError("privileged containers are not run")
    return flags


def _volume_flags(mount: dict[str, Any], volume: dict[str, Any], claims: dict[str, str], podman: bool) -> list[str]:
    path = mount["mountPath"]
    if "subPath" in mount:
        raise NotImplementedError(f"subPath mounts ({mount['name']})")
    if "emptyDir" in volume:
        # podman keeps the owner of a directory the image has under a tmpfs: U gives it to the user.
        options = ["rw", "mode=1777", "U"] if podman else ["rw", "mode=1777"]
        size = (volume["emptyDir"] or {}).get("sizeLimit")
        if size:
            options.append(f"size={quantity_bytes(size)}")
        return ["--tmpfs", f"{path}:{','.join(options)}"]
    if "persistentVolumeClaim" in volume:
        claim = volume["persistentVolumeClaim"]
        host = claims[claim["claimName"]]
        read_only = mount.get("readOnly") or claim.get("readOnly")
        return ["--volume", f"{host}:{path}:{'ro' if read_only else 'rw'}"]
    raise NotImplementedError(f"volume {volume['name']}: only emptyDir and persistentVolumeClaim are run")
