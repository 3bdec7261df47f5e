"""Start the sandbox by hand: ``python -m sandbox.cli up [--name sandbox] [--dir var/sandbox]``.

Runs etcd, kube-apiserver, kube-controller-manager and the pod simulator in the foreground
until interrupted, and prints the kubeconfig path. ``--ready-file`` is written once the
cluster answers, for scripts that start it in the background.

``--webhook-auth`` starts the apiserver with an admission configuration: it presents a fresh
random token (``<dir>/admission/webhook-token``) to the hub's webhook at ``--webhook-url`` (any
host when omitted); give the token to the hub with ``cluster webhook-auth NAME --token-file``.

The simulator's failure knobs (``sandbox.simulator.SimulatorKnobs``; fnmatch patterns on a
container's image, each option repeatable), to try the failure and auto-pause path by hand:
``--pull-failure 'registry.example/*:bad'`` (the container waits in ``ImagePullBackOff``),
``--crash-loop 'log-agent:2.*'`` (``CrashLoopBackOff``, never ready),
``--ready-delay 'log-agent:*=20'`` (running, ready only after 20 seconds).
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
from sandbox.simulator import PodSimulator, SimulatorKnobs


def _ready_delay(text: str) -> tuple[str, float]:
    """``PATTERN=SECONDS`` (argparse type of ``--ready-delay``)."""
    pattern, sep, seconds = text.rpartition("=")
    try:
        delay = float(seconds)
    except ValueError:
        delay = -1.0
    if not sep or not pattern or not 0 <= delay <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r}: expected IMAGE_PATTERN=SECONDS, seconds from 0 to 3600")
    return pattern, delay


def knobs_from_args(args: argparse.Namespace) -> SimulatorKnobs:
    """The simulator's knobs the ``up`` options ask for."""
    return SimulatorKnobs(
        ready_delay_seconds=dict(args.ready_delay),
        pull_failures=set(args.pull_failure),
        crash_loops=set(args.crash_loop),
    )


def _describe(knobs: SimulatorKnobs) -> list[str]:
    lines = [
        f"simulator: images matching {p!r} fail to pull (ImagePullBackOff)"
        for p in sorted(knobs.pull_failures)
    ]
    lines += [
        f"simulator: images matching {p!r} crash-loop (CrashLoopBackOff)" for p in sorted(knobs.crash_loops)
    ]
    lines += [
        f"simulator: images matching {p!r} become ready after {s:g} s"
        for p, s in sorted(knobs.ready_delay_seconds.items())
    ]
    return lines


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
    knobs = knobs_from_args(args)
    simulator = PodSimulator(api, knobs=knobs)
    simulator.start()
    print(f"sandbox cluster {args.name!r} is up at {cluster.server}", flush=True)
    for line in _describe(knobs):
        print(line, flush=True)
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

    knobs = up.add_argument_group("pod simulator failure knobs (fnmatch patterns on the image; repeatable)")
    knobs.add_argument(
        "--pull-failure",
        action="append",
        default=[],
        metavar="IMAGE_PATTERN",
        help="containers with a matching image never start: waiting, ImagePullBackOff",
    )
    knobs.add_argument(
        "--crash-loop",
        action="append",
        default=[],
        metavar="IMAGE_PATTERN",
        help="containers with a matching image crash-loop: waiting, CrashLoopBackOff, never ready",
    )
    knobs.add_argument(
        "--ready-delay",
        action="append",
        default=[],
        type=_ready_delay,
        metavar="IMAGE_PATTERN=SECONDS",
        help="containers with a matching image run but become ready only after SECONDS",
    )
    args = parser.parse_args(argv)
    return _up(args)


if __name__ == "__main__":
    sys.exit(main())
