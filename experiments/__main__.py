"""``python -m experiments <command>``: the experiments' command line."""

from __future__ import annotations

import argparse
import csv
import logging
import sys
from pathlib import Path

import yaml

from experiments import adapter_query, hpa, report, targets


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
        help="HPA averageValue, drawn on the backlog plot",
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

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    if args.command == "report":
        summary = report.write_report(args.run_dir, title=args.title, target_per_replica=args.target_per_replica)
        print(f"{args.run_dir / 'summary.md'}: lost={summary.lost}")
        return 0 if summary.lost == 0 else 1
    if args.command == "backlog-query":
        print(adapter_query.backlog_query(namespace=args.namespace))
        return 0
    if args.command == "targets":
        ports = [int(p) for p in args.ports.split(",") if p.strip()]
        targets.write_worker_targets(args.out, ports)
        return 0
    if args.command == "hpa-replay":
        return _replay(args.hpa, args.samples, args.start_replicas)
    return 2


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
