"""Start the sandbox by hand: ``python -m sandbox.cli up [--name sandbox] [--dir var/sandbox]``.

Runs etcd, kube-apiserver, kube-controller-manager and the pod simulator in the foreground
until interrupted, and prints the kubeconfig path. ``--ready-file`` is written once the
cluster answers, for scripts that start it in the background.

``--webhook-auth`` starts the apiserver with an admission configuration: it presents a fresh
random token (``<dir>/admission/webhook-token``) to the hub's webhook at ``--webhook-url`` (any
host when omitted); give the token to the hub with ``cluster webhook-auth NAME --token-file``.
"""

from __future__ import annotations

import argparse
import json
import secrets
import signal
import sys
import threading
from pathlib import Path

from kubernetes import config

from sandbox.cluster import SandboxCluster, SandboxError, find_binaries
from sandbox.simulator import PodSimulator


def _up(args: argparse.Namespace) -> int:
    try:
        bin_dir = find_binaries(args.bin_dir)
    except SandboxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cluster = SandboxCluster(
        name=args.name,
        workdir=Path(args.dir).resolve(),
        bin_dir=bin_dir,
        webhook_token=secrets.token_urlsafe(32) if args.webhook_auth else "",
        webhook_url=args.webhook_url or "",
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        cluster.start()
    except SandboxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        cluster.stop()
        return 1
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig), context=args.name)
    simulator = PodSimulator(api)
    simulator.start()
    print(f"sandbox cluster {args.name!r} is up at {cluster.server}", flush=True)
    print(f"kubeconfig: {cluster.kubeconfig}", flush=True)
    if args.ready_file:
        ready = {"kubeconfig": str(cluster.kubeconfig), "server": cluster.server}
        if args.webhook_auth:
            ready["webhook_token_file"] = str(cluster.webhook_token_file)
        Path(args.ready_file).write_text(json.dumps(ready))
    try:
        while not stop.wait(1.0):
            if not cluster.is_running():
                print(
                    f"error: a control-plane process exited; see the logs under {cluster.workdir / 'logs'}",
                    file=sys.stderr,
                )
                return 1
    finally:
        simulator.stop()
        cluster.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sandbox", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run one sandbox cluster in the foreground")
    up.add_argument("--name", default="sandbox")
    up.add_argument("--dir", default="var/sandbox")
    up.add_argument("--bin-dir", default=None, help="defaults to $SIDECARHUB_K8S_BIN")
    up.add_argument("--ready-file", default=None)
    up.add_argument(
        "--webhook-auth",
        action="store_true",
        help="the apiserver presents a generated token to the webhook (<dir>/admission/webhook-token)",
    )
    up.add_argument("--webhook-url", default=None, help="the hub's webhook base URL (default: any host)")
    args = parser.parse_args(argv)
    return _up(args)


if __name__ == "__main__":
    sys.exit(main())
