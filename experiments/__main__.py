"""``python -m experiments <command>``: the experiments' command line."""

from __future__ import annotations

import argparse
import csv
import logging
import sys
import time
from pathlib import Path

import yaml

from classifier_common.catalog import SYNTHETIC_MODEL
from devstack import targets
from experiments import adapter_query, hpa, pools, profiles, report, runner


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser(
        "report",
        help="plots and summary.md from a run folder's samples.csv and jobs.csv",
    )
    p.add_argument("run_dir", type=Path)
    p.add_argument("--title", default="Scaling experiment")
    p.add_argument(
        "--target-per-replica",
        type=float,
        default=None,
        help="HPA averageValue, drawn on the backlog plot (default: each pool's, from run.json)",
    )

    p = commands.add_parser(
        "backlog-query",
        help="print the backlog PromQL prometheus-adapter runs for the worker HPA",
    )
    p.add_argument(
        "--namespace",
        default=None,
        help="the HPA's namespace (omit for the local stack)",
    )
    p.add_argument("--queue", default=adapter_query.DEFAULT_QUEUE, help="the pool's queue (classifier.jobs.<pool>)")

    p = commands.add_parser("targets", help="write the local Prometheus' worker targets file")
    p.add_argument(
        "--ports",
        required=True,
        help="comma-separated worker metrics ports, e.g. 9100,9101",
    )
    p.add_argument("--out", type=Path, default=targets.DEFAULT_TARGETS_FILE)

    p = commands.add_parser(
        "hpa-replay",
        help="replay a recorded metric through the HPA algorithm (decisions take effect at once)",
    )
    p.add_argument(
        "--hpa",
        type=Path,
        required=True,
        help="YAML with the autoscaling/v2 HPA (e.g. helm template output)",
    )
    p.add_argument(
        "--samples",
        type=Path,
        required=True,
        help="CSV with columns t_s,value (the External metric's value)",
    )
    p.add_argument("--start-replicas", type=int, required=True)

    p = commands.add_parser(
        "run",
        help="run a scaling experiment and write its report folder (local HPA emulator, or a cluster)",
    )
    p.add_argument("--profile", choices=sorted(profiles.PROFILES), help="the load of a run of one pool")
    p.add_argument(
        "--pool",
        dest="pools",
        action="append",
        default=[],
        metavar="NAME=PROFILE[:KEY=VALUE,...]",
        help="local: a worker pool with its own load, queue, workers and autoscaler (give two or more); "
        "KEY: a profile parameter or service_ms, e.g. --pool lite=step --pool big=steady:rate=0.4,service_ms=1500",
    )
    p.add_argument(
        "--out", type=Path, default=None, help="report folder (default data/experiments/<profile or pools>-<time>)"
    )
    p.add_argument(
        "--time-scale",
        type=float,
        default=None,
        help=f"compress the profile and HPA time constants (local default {runner.DEFAULT_TIME_SCALE}; cluster 1)",
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a profile parameter (unscaled), e.g. --param high=6 --param hold_s=120",
    )
    p.add_argument("--model", default=None, help="model to submit (local default: synthetic_sleep)")
    p.add_argument(
        "--service-ms",
        type=int,
        default=runner.DEFAULT_SERVICE_MS,
        help="service time of the synthetic model, per job",
    )
    p.add_argument("--values", type=Path, action="append", default=[], help="chart values file for the HPA")
    p.add_argument("--set", dest="set_values", action="append", default=[], help="chart --set for the HPA")
    p.add_argument("--settle-s", type=float, default=None, help="seconds to keep measuring after the load")
    p.add_argument("--keep-work-dir", type=Path, default=None, help="keep logs, store and Prometheus data here")
    p.add_argument(
        "--broker-url", default=None, help="local: RabbitMQ (default CLASSIFIER_BROKER_URL or the local one)"
    )
    p.add_argument("--rabbitmq-metrics", default="127.0.0.1:15692", help="local: its rabbitmq_prometheus host:port")
    cluster = p.add_argument_group("cluster (the real HPA decides; give --base-url to use it)")
    cluster.add_argument("--base-url", default=None, help="e.g. http://localhost (the kind ingress)")
    cluster.add_argument("--prometheus-url", default="http://127.0.0.1:9090")
    cluster.add_argument("--namespace", default="classifier")
    cluster.add_argument(
        "--hpa",
        dest="hpa_name",
        default="classifier-worker-default",
        help="the default pool's; keda-hpa-classifier-worker-<pool> with KEDA",
    )

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for chatty in ("httpx", "pika"):  # a line per request / per connection step
        logging.getLogger(chatty).setLevel(logging.WARNING)

    if args.command == "report":
        run_targets, tolerance = report.run_targets(args.run_dir)
        summary = report.write_report(
            args.run_dir,
            title=args.title,
            target_per_replica=args.target_per_replica,
            targets={} if args.target_per_replica is not None else run_targets,
            **({"tolerance": tolerance} if tolerance is not None else {}),
        )
        print(f"{args.run_dir / 'summary.md'}: lost={summary.lost}" + _independence(summary))
        return 0 if summary.lost == 0 else 1
    if args.command == "backlog-query":
        print(adapter_query.backlog_query(queue=args.queue, namespace=args.namespace))
        return 0
    if args.command == "targets":
        ports = [int(p) for p in args.ports.split(",") if p.strip()]
        targets.write_worker_targets(args.out, ports)
        return 0
    if args.command == "hpa-replay":
        return _replay(args.hpa, args.samples, args.start_replicas)
    if args.command == "run":
        if bool(args.profile) == bool(args.pools):
            parser.error("run: give either --profile (one pool) or --pool two or more times")
        try:
            loads = pools.parse_pools(args.pools)
        except ValueError as exc:
            parser.error(f"--pool {exc}")
        if len(loads) == 1:
            parser.error("--pool: give two or more pools (one pool: --profile)")
        if loads and args.base_url:
            parser.error("--pool: several pools run locally only (no --base-url)")
        return _run(args, loads)
    return 2


def _independence(summary: report.RunReport) -> str:
    return "" if summary.independent is None else f" independent={str(summary.independent).lower()}"


def _run(args: argparse.Namespace, loads: list[pools.PoolLoad]) -> int:
    params = {}
    for item in args.param:
        name, _, value = item.partition("=")
        params[name.strip()] = float(value)
    label = args.profile or "pools"
    out = args.out or Path("data/experiments") / f"{label}-{time.strftime('%Y%m%d-%H%M%S')}"
    if args.base_url:
        summary = runner.run_cluster(
            runner.ClusterRun(
                profile=args.profile,
                out_dir=out,
                base_url=args.base_url,
                prometheus_url=args.prometheus_url,
                namespace=args.namespace,
                hpa_name=args.hpa_name,
                model=args.model or "efficientnet_lite0",
                time_scale=args.time_scale or 1.0,
                profile_params=params,
                **({"settle_s": args.settle_s} if args.settle_s is not None else {}),
            )
        )
    else:
        summary = runner.run_local(
            runner.LocalRun(
                profile=args.profile or "step",
                pools=loads,
                out_dir=out,
                time_scale=args.time_scale or runner.DEFAULT_TIME_SCALE,
                profile_params=params,
                model=args.model or SYNTHETIC_MODEL,
                service_ms=args.service_ms,
                values_files=args.values,
                set_values=args.set_values,
                settle_s=args.settle_s,
                work_dir=args.keep_work_dir,
                broker_url=args.broker_url or runner.default_broker_url(),
                rabbitmq_metrics=args.rabbitmq_metrics,
            )
        )
    print(f"{out / 'summary.md'}: lost={summary.lost}" + _independence(summary))
    return 0 if summary.lost == 0 else 1


def _replay(hpa_path: Path, samples_path: Path, start_replicas: int) -> int:
    documents = [d for d in yaml.safe_load_all(hpa_path.read_text()) if d]
    manifests = [d for d in documents if d.get("kind") == "HorizontalPodAutoscaler"]
    if len(manifests) != 1:
        print(
            f"{hpa_path}: expected one HorizontalPodAutoscaler, found {len(manifests)}",
            file=sys.stderr,
        )
        return 2
    spec = hpa.HPASpec.from_manifest(manifests[0])
    with samples_path.open(newline="") as handle:
        samples = [(float(r["t_s"]), float(r["value"])) for r in csv.DictReader(handle)]
    writer = csv.writer(sys.stdout)
    writer.writerow(["t_s", "value", "proposal", "stabilized", "desired_replicas", "reason"])
    for (t, value), d in zip(samples, hpa.replay(spec, samples, start_replicas=start_replicas), strict=True):
        writer.writerow([t, value, d.proposal, d.stabilized, d.desired_replicas, d.reason])
    return 0


if __name__ == "__main__":
    sys.exit(main())
