"""The production topology on localhost (devstack.stack.Stack), from the command line.

python -m scripts.stack run [--workers 2] [--pools "lite=efficientnet_lite0;big=efficientnet_lite2"]
                                             # foreground; Ctrl-C stops everything (make stack)
python -m scripts.stack up                   # background, returns when all are ready (make stack-up)
python -m scripts.stack down                 # (make stack-down)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from classifier_common.config import Settings
from devstack.stack import Stack


def _down_from_pids(state_dir: Path) -> None:
    pids_file = state_dir / "pids.json"
    if not pids_file.exists():
        print("no stack running")
        return
    for name, pid in json.loads(pids_file.read_text()).items():
        try:
            os.kill(pid, signal.SIGTERM)
            print(f"stopped {name} ({pid})")
        except ProcessLookupError:
            pass
    pids_file.unlink()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["run", "up", "down"])
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WORKERS", "2")))
    parser.add_argument("--port", type=int, default=int(os.environ.get("STACK_PORT", "8080")))
    parser.add_argument(
        "--pools",
        default=os.environ.get("POOLS", ""),
        help="worker pools, pool=model,model;pool=model (default: CLASSIFIER_POOLS): --workers workers per pool",
    )
    args = parser.parse_args()
    args.pools = args.pools or os.environ.get("CLASSIFIER_POOLS", "")
    try:
        Settings(pools=args.pools)  # refused here, before anything starts, as every service would
    except ValueError as exc:
        parser.error(str(exc))
    stack = Stack(workers=args.workers, port=args.port, pools=args.pools)
    if args.command == "down":
        _down_from_pids(stack.state_dir)
        return 0
    stack.up()
    pools = ", ".join(f"{pool}: {len(stack.workers_of(pool))}" for pool in stack.pool_names)
    workers = f"workers per pool {pools}" if pools else f"{args.workers} workers"
    print(f"stack ready at {stack.base_url}  (gateway, results, {workers}; logs in {stack.state_dir})")
    if args.command == "up":
        for proc in stack.procs.values():
            proc.returncode = 0  # detach: leave them running after we exit
        return 0
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    try:
        while not stop["now"] and all(p.poll() is None for p in stack.procs.values()):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    codes = stack.down()
    print("stopped:", codes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
