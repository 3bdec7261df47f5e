"""Command-line verbs for clusters and targets: ``cluster add | list | check | rotate-key |
register-webhook | webhook-auth | delete | hold | release-hold | policy`` and ``target add |
remove | list``.

``register(subparsers)`` adds the ``cluster`` and ``target`` commands to the ``sidecarhub`` CLI
(``sidecarhub/management/commands/sidecarhub.py``: the acting user is ``args.user``, each verb
names its ``permissions``, as the API action it mirrors). Each verb stores its handler as
``handler``: ``handler(args, stdout=None) -> None``; failures raise ``CommandError`` with a
readable, credential-free message.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError
from django.utils import timezone

from clusters.admission_config import DEFAULT_KUBECONFIG_PATH
from clusters.api.views import ClusterViewSet, TargetViewSet
from clusters.crypto import CredentialsUnreadable
from clusters.kube import KubeError
from clusters.models import Cluster, SidecarSetTarget
from clusters.push import TargetInvalid, create_target, delete_target
from clusters.services import (
    ClusterCleanupFailed,
    ClusterInvalid,
    check_cluster_health,
    delete_cluster,
    hold_cluster,
    import_kubeconfig,
    revoke_previous_webhook_token,
    rollout_policy_snapshot,
    rotate_encryption_key,
    set_rollout_policy,
    set_webhook_token,
    update_cluster,
    webhook_token_of,
)
from clusters.webhooks import WebhookNotConfigured, apiserver_admission_config, register_webhook
from sidecarhub.clitools import EXIT_NOT_FOUND, api_permissions, output, require, write_table
from sidecarhub.middleware import cli_request_id
from sidecarhub.models import SidecarSet

__all__ = ["register"]


def _labels(values: list[str] | None) -> dict[str, str] | None:
    if not values:
        return None
    labels: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CommandError(f"--label must be key=value (got {item!r})")
        labels[key] = value
    return labels


def handle_add(args: argparse.Namespace, stdout: Any = None) -> None:
    """Register (or with --replace, update) a cluster from a kubeconfig file and context."""
    try:
        cluster, created = import_kubeconfig(
            name=args.name,
            kubeconfig_path=args.kubeconfig,
            context=args.context,
            replace=args.replace,
            labels=_labels(args.label),
            actor=args.user,
            request_id=cli_request_id(),
        )
    except ClusterInvalid as exc:
        raise CommandError(str(exc)) from None
    verb = "registered" if created else "updated"
    output(stdout).write(
        f"cluster {cluster.name} {verb}: {cluster.api_server_url} ({cluster.get_credential_kind_display()})\n"
    )


def handle_list(args: argparse.Namespace, stdout: Any = None) -> None:
    """One line per cluster: name, server, credential kind, health, version, labels."""
    rows = [("NAME", "SERVER", "CREDENTIALS", "REACHABLE", "VERSION", "LAST CHECKED", "LABELS")]
    for cluster in Cluster.objects.order_by("name"):
        reachable = "-" if cluster.reachable is None else ("yes" if cluster.reachable else "no")
        checked = cluster.last_checked_at.strftime("%Y-%m-%d %H:%M:%S") if cluster.last_checked_at else "-"
        labels = ",".join(f"{k}={v}" for k, v in sorted((cluster.labels or {}).items())) or "-"
        rows.append(
            (
                cluster.name,
                cluster.api_server_url,
                cluster.credential_kind,
                reachable,
                cluster.kubernetes_version or "-",
                checked,
                labels,
            )
        )
    write_table(rows, output(stdout))


def handle_check(args: argparse.Namespace, stdout: Any = None) -> None:
    """Check one cluster (or all) now; fails when any is unreachable."""
    clusters = Cluster.objects.order_by("name")
    if args.name:
        clusters = clusters.filter(name=args.name)
        if not clusters.exists():
            raise CommandError(f"no cluster named {args.name!r}")
    out = output(stdout)
    unreachable = 0
    for cluster in clusters:
        result = check_cluster_health(cluster.pk)
        if result is None:
            continue
        if result.reachable:
            out.write(f"{cluster.name}: reachable, {result.kubernetes_version} ({result.duration_ms} ms)\n")
        else:
            unreachable += 1
            out.write(f"{cluster.name}: UNREACHABLE ({result.duration_ms} ms): {result.error}\n")
    if unreachable:
        raise CommandError(f"{unreachable} cluster(s) unreachable")


def handle_rotate_key(args: argparse.Namespace, stdout: Any = None) -> None:
    """Re-encrypt every cluster's credentials with the newest key of SIDECARHUB_ENCRYPTION_KEY."""
    try:
        count = rotate_encryption_key(actor=args.user, request_id=cli_request_id())
    except CredentialsUnreadable as exc:
        raise CommandError(
            f"{exc}; keep the old key in SIDECARHUB_ENCRYPTION_KEY (after the new one)"
        ) from None
    output(stdout).write(f"re-encrypted the credentials of {count} cluster(s) with the newest key\n")


def handle_register_webhook(args: argparse.Namespace, stdout: Any = None) -> None:
    """Apply the hub's admission webhook configuration to one cluster now (``--url`` first sets
    the cluster's webhook URL)."""
    cluster = Cluster.objects.filter(name=args.name).first()
    if cluster is None:
        raise CommandError(f"no cluster named {args.name!r}")
    try:
        if args.url:
            update_cluster(
                cluster.pk, changes={"webhook_url": args.url}, actor=args.user, request_id=cli_request_id()
            )
        registration = register_webhook(cluster.pk)
    except (ClusterInvalid, WebhookNotConfigured, KubeError) as exc:
        raise CommandError(str(exc)) from None
    output(stdout).write(
        f"cluster {registration.cluster_name}: webhook {registration.configuration_name} -> "
        f"{registration.url} (failurePolicy {registration.failure_policy}, "
        f"timeout {registration.timeout_seconds}s)\n"
    )


def handle_webhook_auth(args: argparse.Namespace, stdout: Any = None) -> None:
    """The cluster's admission webhook credential: require it or not, set a token from a file or
    generate one (printed once), print the apiserver's admission configuration with the token."""
    cluster = Cluster.objects.filter(name=args.name).first()
    if cluster is None:
        raise CommandError(f"no cluster named {args.name!r}")
    out = output(stdout)
    request_id = cli_request_id()
    try:
        if args.required is not None:
            update_cluster(
                cluster.pk,
                changes={"webhook_auth_required": args.required},
                actor=args.user,
                request_id=request_id,
            )
        token = None
        grace = args.grace_seconds
        if args.token_file:
            given = Path(args.token_file).read_text().strip()
            set_webhook_token(
                cluster.pk, token=given, grace_seconds=grace, actor=args.user, request_id=request_id
            )
        elif args.generate:
            token = set_webhook_token(cluster.pk, grace_seconds=grace, actor=args.user, request_id=request_id)
        elif args.revoke_previous:
            if not revoke_previous_webhook_token(cluster.pk, actor=args.user, request_id=request_id):
                out.write(f"cluster {cluster.name}: no previous webhook token is accepted; nothing revoked\n")
        elif grace is not None:
            raise CommandError("--grace-seconds applies to a new token: give --generate or --token-file")
    except OSError as exc:
        raise CommandError(f"--token-file cannot be read: {exc.strerror}") from None
    except ClusterInvalid as exc:
        raise CommandError(str(exc)) from None
    cluster.refresh_from_db()
    required = (
        "required" if cluster.webhook_auth_required else "not required (unauthenticated calls answered)"
    )
    updated = cluster.webhook_token_updated_at
    token_state = f"set {updated:%Y-%m-%d %H:%M:%S}" if updated else "none"
    previous = cluster.previous_webhook_token_accepted_until(timezone.now())
    if previous is not None:
        token_state += f"; previous token accepted until {previous:%Y-%m-%d %H:%M:%S} UTC"
    out.write(f"cluster {cluster.name}: webhook token {required}; token {token_state}\n")
    if token is not None:
        out.write(f"new webhook token (shown once): {token}\n")
    if token is not None or args.print_config:
        _print_admission_config(cluster, token, args.kubeconfig_path, out)


def _print_admission_config(cluster: Cluster, token: str | None, kubeconfig_path: str, out: Any) -> None:
    try:
        secret = token if token is not None else webhook_token_of(cluster)
        if not secret:
            raise CommandError(f"cluster {cluster.name} has no webhook token: --generate one first")
        files = apiserver_admission_config(cluster, secret, kubeconfig_path=kubeconfig_path)
    except (WebhookNotConfigured, CredentialsUnreadable) as exc:
        raise CommandError(str(exc)) from None
    out.write("# --- the apiserver's --admission-control-config-file ---\n")
    out.write(files.admission_configuration)
    out.write(f"# --- {files.kubeconfig_path} (holds the token; mode 0600) ---\n")
    out.write(files.kubeconfig)


def handle_delete(args: argparse.Namespace, stdout: Any = None) -> None:
    """Delete a cluster from the hub, after removing the hub's webhook and SidecarSets from it
    (``--keep-in-cluster``: leave them)."""
    cluster = Cluster.objects.filter(name=args.name).first()
    if cluster is None:
        raise CommandError(f"no cluster named {args.name!r}")
    try:
        removal = delete_cluster(
            cluster.pk, keep_in_cluster=args.keep_in_cluster, actor=args.user, request_id=cli_request_id()
        )
    except ClusterCleanupFailed as exc:
        raise CommandError(str(exc)) from None
    output(stdout).write(f"cluster {removal.cluster_name} deleted; {removal.summary()}\n")


def handle_hold(args: argparse.Namespace, stdout: Any = None) -> None:
    """Hold a cluster at the revisions it serves (releases skip it), or lift the hold."""
    cluster = Cluster.objects.filter(name=args.name).first()
    if cluster is None:
        raise CommandError(f"no cluster named {args.name!r}")
    held = args.cluster_command == "hold"
    hold_cluster(
        cluster.pk,
        held=held,
        reason=getattr(args, "reason", "") or "",
        actor=args.user,
        request_id=cli_request_id(),
    )
    what = "held: releases skip it until `cluster release-hold`" if held else "no longer held"
    output(stdout).write(f"cluster {cluster.name} {what}\n")


def _approval_ttl(value: str) -> int | None:
    """``--approval-ttl``: whole seconds (at least 60), or ``default`` for the SidecarSet's or hub's."""
    if value == "default":
        return None
    if not value.isdigit() or int(value) < 60:
        raise argparse.ArgumentTypeError("whole seconds, at least 60, or 'default'")
    return int(value)


def handle_policy(args: argparse.Namespace, stdout: Any = None) -> None:
    """Show a cluster's rollout policy, or change it with the options (recorded in the change
    log, as from the admin and the API)."""
    cluster = Cluster.objects.filter(name=args.name).first()
    if cluster is None:
        raise CommandError(f"no cluster named {args.name!r}")
    changes: dict[str, Any] = {}
    if args.four_eyes is not None:
        changes["rollout_requires_second_person"] = args.four_eyes
    if args.auto_approve is not None:
        changes["rollout_auto_approve"] = args.auto_approve
    if args.approval_ttl is not _UNCHANGED:
        changes["rollout_approval_ttl_seconds"] = args.approval_ttl
    if changes:
        # Showing needs the view permission (the verb's); changing, what the API's PATCH needs.
        require(args.user, api_permissions(ClusterViewSet, "change_rollout_policy"))
        try:
            # The service checks the user's team (another team's cluster: exit 3, the dispatcher).
            cluster = set_rollout_policy(
                cluster.pk, changes=changes, actor=args.user, request_id=cli_request_id()
            )
        except ClusterInvalid as exc:
            raise CommandError(str(exc)) from None
    policy = rollout_policy_snapshot(cluster)
    ttl = policy["rollout_approval_ttl_seconds"]
    output(stdout).write(
        f"cluster {cluster.name}: four eyes {'on' if policy['rollout_requires_second_person'] else 'off'}, "
        f"auto-approve {'on' if policy['rollout_auto_approve'] else 'off'}, approval lifetime "
        f"{f'{ttl}s' if ttl is not None else 'default (the SidecarSet or hub setting)'}\n"
    )


# --approval-ttl not given (None means "default", so it cannot mark "not given").
_UNCHANGED: Any = object()


def _verb(
    sub: Any, name: str, handler: Any, help_text: str, permissions: tuple[str, ...]
) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(handler=handler, permissions=permissions)
    return parser


def _cluster_verbs(parser: argparse.ArgumentParser) -> None:
    """Add the cluster verbs (module docstring) to ``parser``."""
    clusters = ClusterViewSet
    sub = parser.add_subparsers(
        dest="cluster_command",
        metavar="{add,list,check,rotate-key,register-webhook,webhook-auth,delete,hold,release-hold,policy}",
    )
    sub.required = True
    add = _verb(
        sub,
        "add",
        handle_add,
        "register a cluster from a kubeconfig file and context",
        api_permissions(clusters, "import_kubeconfig"),
    )
    add.add_argument("--name", required=True, help="name of the cluster in the hub")
    add.add_argument("--kubeconfig", required=True, help="kubeconfig file")
    add.add_argument("--context", default=None, help="context to import (default: current-context)")
    add.add_argument("--replace", action="store_true", help="update the cluster if the name exists")
    add.add_argument("--label", action="append", metavar="KEY=VALUE", help="cluster label (repeatable)")
    _verb(
        sub,
        "list",
        handle_list,
        "list registered clusters and their health",
        api_permissions(clusters, "list"),
    )
    check = _verb(
        sub, "check", handle_check, "check reachability and version now", api_permissions(clusters, "check")
    )
    check.add_argument("name", nargs="?", default=None, help="one cluster (default: all)")
    # No API action: re-encrypting every credential is changing every cluster.
    _verb(
        sub,
        "rotate-key",
        handle_rotate_key,
        "re-encrypt all credentials with the newest key",
        api_permissions(clusters, "partial_update"),
    )
    webhook = _verb(
        sub,
        "register-webhook",
        handle_register_webhook,
        "apply the pod admission webhook to a cluster",
        api_permissions(clusters, "partial_update"),
    )
    webhook.add_argument("name", help="the cluster")
    webhook.add_argument("--url", default=None, help="set the cluster's webhook URL first (https://...)")
    auth = _verb(
        sub,
        "webhook-auth",
        handle_webhook_auth,
        "the token the cluster's apiserver presents to the admission webhook",
        api_permissions(clusters, "webhook_token"),
    )
    auth.add_argument("name", help="the cluster")
    token = auth.add_mutually_exclusive_group()
    token.add_argument("--generate", action="store_true", help="generate a new token and print it once")
    token.add_argument("--token-file", default=None, help="set the token read from this file (not printed)")
    token.add_argument(
        "--revoke-previous",
        action="store_true",
        help="stop accepting the token the last rotation replaced now (the apiserver has the new one)",
    )
    auth.add_argument(
        "--grace-seconds",
        type=int,
        default=None,
        metavar="SECONDS",
        help="with a new token: how long the replaced one stays accepted (default 86400; 0: at once)",
    )
    required = auth.add_mutually_exclusive_group()
    required.add_argument(
        "--require",
        dest="required",
        action="store_const",
        const=True,
        default=None,
        help="refuse calls without it",
    )
    required.add_argument(
        "--no-require",
        dest="required",
        action="store_const",
        const=False,
        help="answer calls without a token too (apiservers whose admission configuration cannot be set)",
    )
    auth.add_argument(
        "--print-config",
        action="store_true",
        help="print the apiserver's AdmissionConfiguration and webhook kubeconfig (with the token)",
    )
    auth.add_argument(
        "--kubeconfig-path",
        default=DEFAULT_KUBECONFIG_PATH,
        help="the webhook kubeconfig's path on the control-plane node (the AdmissionConfiguration names it)",
    )
    delete = _verb(
        sub,
        "delete",
        handle_delete,
        "delete a cluster (its webhook and SidecarSets leave it first)",
        api_permissions(clusters, "destroy"),
    )
    delete.add_argument("name", help="the cluster")
    delete.add_argument(
        "--keep-in-cluster",
        action="store_true",
        help="leave the hub's webhook and SidecarSets in the cluster (it is gone or another hub manages it)",
    )
    hold = _verb(
        sub,
        "hold",
        handle_hold,
        "hold a cluster at the revisions it serves (releases skip it)",
        api_permissions(clusters, "hold"),
    )
    hold.add_argument("name", help="the cluster")
    hold.add_argument("--reason", "-m", default="", help="why (e.g. a freeze window)")
    release = _verb(
        sub,
        "release-hold",
        handle_hold,
        "lift a cluster's hold (its releases go on)",
        api_permissions(clusters, "release_hold"),
    )
    release.add_argument("name", help="the cluster")
    policy = _verb(
        sub,
        "policy",
        handle_policy,
        "show or change a cluster's rollout policy (who approves, how long)",
        api_permissions(clusters, "rollout_policy"),
    )
    policy.add_argument("name", help="the cluster")
    policy.add_argument(
        "--four-eyes",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="steps must be approved by someone other than the rollout's author",
    )
    policy.add_argument(
        "--auto-approve",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the system approves steps as soon as they are prepared",
    )
    policy.add_argument(
        "--approval-ttl",
        type=_approval_ttl,
        default=_UNCHANGED,
        metavar="SECONDS|default",
        help="how long a prepared step waits for approval (rollouts created afterwards)",
    )


# --- targets -------------------------------------------------------------------------------------


def _selector(text: str) -> dict[str, Any]:
    """``env=prod,region=eu`` as matchLabels, or a JSON label selector (``{"matchExpressions": ...}``)."""
    if text.lstrip().startswith("{"):
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise CommandError(f"--selector: not valid JSON ({exc})") from None
        return value if isinstance(value, dict) else {"matchLabels": value}
    return {"matchLabels": _labels([part for part in text.split(",") if part.strip()]) or {}}


def _target_text(target: SidecarSetTarget) -> str:
    if target.cluster is not None:
        return f"cluster {target.cluster.name}"
    return "clusters matching " + json.dumps(target.cluster_selector, sort_keys=True)


def handle_target_add(args: argparse.Namespace, stdout: Any = None) -> None:
    """Target a SidecarSet at one cluster or at the clusters a label selector matches."""
    sidecarset_id = SidecarSet.objects.filter(name=args.sidecarset).values_list("pk", flat=True).first()
    if sidecarset_id is None:
        raise CommandError(f"no SidecarSet named {args.sidecarset!r}", returncode=EXIT_NOT_FOUND)
    cluster_id = None
    if args.cluster is not None:
        cluster_id = Cluster.objects.filter(name=args.cluster).values_list("pk", flat=True).first()
        if cluster_id is None:
            raise CommandError(f"no cluster named {args.cluster!r}", returncode=EXIT_NOT_FOUND)
    try:
        target = create_target(
            sidecarset_id=sidecarset_id,
            cluster_id=cluster_id,
            cluster_selector=_selector(args.selector) if args.selector is not None else None,
            wave=args.wave,
            actor=args.user,
            request_id=cli_request_id(),
        )
    except TargetInvalid as exc:
        raise CommandError(str(exc)) from None
    target = SidecarSetTarget.objects.select_related("cluster").get(pk=target.pk)
    output(stdout).write(
        f"target {target.pk}: sidecarset/{args.sidecarset} -> {_target_text(target)}, wave {target.wave}\n"
    )


def handle_target_remove(args: argparse.Namespace, stdout: Any = None) -> None:
    """Remove a target by its ID (``target list``); clusters no longer selected lose the SidecarSet."""
    target = SidecarSetTarget.objects.select_related("sidecarset", "cluster").filter(pk=args.id).first()
    if target is None:
        raise CommandError(f"no target with ID {args.id}", returncode=EXIT_NOT_FOUND)
    what = f"sidecarset/{target.sidecarset.name} -> {_target_text(target)}"
    delete_target(target.pk, actor=args.user, request_id=cli_request_id())
    output(stdout).write(f"target {args.id} removed: {what}\n")


def handle_target_list(args: argparse.Namespace, stdout: Any = None) -> None:
    """Every target (of one SidecarSet with ``--sidecarset``), by SidecarSet then wave."""
    targets = SidecarSetTarget.objects.select_related("sidecarset", "cluster").order_by(
        "sidecarset__name", "wave", "pk"
    )
    if args.sidecarset:
        targets = targets.filter(sidecarset__name=args.sidecarset)
    rows = [("ID", "SIDECARSET", "WAVE", "TARGET")]
    rows += [(str(t.pk), t.sidecarset.name, str(t.wave), _target_text(t)) for t in targets]
    out = output(stdout)
    if len(rows) == 1:
        out.write("no targets (`sidecarhub target add SIDECARSET --cluster NAME` adds one)\n")
        return
    write_table(rows, out)


def _target_verbs(parser: argparse.ArgumentParser) -> None:
    targets = TargetViewSet
    sub = parser.add_subparsers(dest="target_command", metavar="{add,remove,list}")
    sub.required = True
    add = sub.add_parser("add", help="target a SidecarSet at a cluster, or at clusters by label")
    add.add_argument("sidecarset", help="the SidecarSet's name")
    where = add.add_mutually_exclusive_group(required=True)
    where.add_argument("--cluster", help="one cluster, by name")
    where.add_argument("--selector", help='clusters by label: "env=prod,region=eu", or a JSON label selector')
    add.add_argument("--wave", type=int, default=0, help="rollout order: lower waves go first (default 0)")
    add.set_defaults(handler=handle_target_add, permissions=api_permissions(targets, "create"))
    remove = sub.add_parser("remove", help="remove a target (its clusters lose the SidecarSet)")
    remove.add_argument("id", type=int, help="the target's ID (see `target list`)")
    remove.set_defaults(handler=handle_target_remove, permissions=api_permissions(targets, "destroy"))
    listing = sub.add_parser("list", help="targets and their waves")
    listing.add_argument("--sidecarset", help="only this SidecarSet's targets")
    listing.set_defaults(handler=handle_target_list, permissions=api_permissions(targets, "list"))


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``cluster`` and ``target`` commands (with their verbs) to the ``sidecarhub`` CLI."""
    parser = subparsers.add_parser(
        "cluster", help="registered Kubernetes clusters", description="registered Kubernetes clusters"
    )
    _cluster_verbs(parser)
    targets = subparsers.add_parser(
        "target",
        help="which clusters a SidecarSet goes to, and in which wave",
        description="which clusters a SidecarSet goes to, and in which wave",
    )
    _target_verbs(targets)
