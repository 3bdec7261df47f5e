"""Admin console pages of the clusters app. Saves go through services (audit, change log,
placement sync); credentials and the webhook token are write-only form fields that are never
rendered back (a generated webhook token is shown once, on the page the action answers)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import formats, timezone

from clusters import enqueue
from clusters.crypto import ClusterCredentials
from clusters.models import Cluster, ClusterAuditEvent, DriftedPod, SidecarSetPlacement, SidecarSetTarget
from clusters.push import (
    TargetInvalid,
    check_target,
    check_target_deletion,
    create_target,
    delete_target,
    retry_placement,
    update_target,
)
from clusters.services import (
    EDITABLE_FIELDS,
    MAX_WEBHOOK_TOKEN_GRACE_SECONDS,
    ROLLOUT_POLICY_FIELDS,
    ROLLOUT_POLICY_PERMISSION,
    ClusterCleanupFailed,
    ClusterInvalid,
    delete_cluster,
    hold_cluster,
    register_cluster,
    replace_credentials,
    revoke_previous_webhook_token,
    set_rollout_policy,
    set_webhook_token,
    update_cluster,
    validate_credentials,
    validate_webhook_token,
)
from clusters.webhooks import WebhookNotConfigured, apiserver_admission_config
from sidecarhub.admin import InlineRefused, RefusalShownAdmin, SidecarSetAdmin, TeamOwnedAdmin
from sidecarhub.middleware import request_id_of
from sidecarhub.teams import NotTeamMember, team_refusal
from sidecarhub.transitions import InvalidTransition

_HOLD_FIELDS = ("held", "held_reason", "held_by", "held_at")
_HEALTH_FIELDS = (
    "credential_kind",
    "webhook_token_updated_at",
    "previous_webhook_token",
    "credentials_updated_at",
    "reachable",
    "kubernetes_version",
    "last_error",
    "last_checked_at",
    "last_check_duration_ms",
    "created_at",
    "updated_at",
)


class ClusterAdminForm(forms.ModelForm):
    """Connection fields plus write-only credentials (blank on edit = keep the current ones)."""

    api_server_url = forms.URLField(assume_scheme="https", max_length=500)
    webhook_url = forms.URLField(assume_scheme="https", max_length=500, required=False)

    token = forms.CharField(
        required=False, widget=forms.PasswordInput(render_value=False), help_text="Bearer token (write-only)"
    )
    client_certificate = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 4}), help_text="PEM client certificate"
    )
    client_key = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="PEM private key of the client certificate (write-only)",
        strip=False,
    )
    webhook_token = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Token the cluster's apiserver presents to the admission webhook (write-only; leave "
        "blank to keep). Or use the list's action to generate one.",
    )
    webhook_token_grace_seconds = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=MAX_WEBHOOK_TOKEN_GRACE_SECONDS,
        help_text="With a new webhook token: seconds the replaced one stays accepted while the "
        "apiserver is given the new one (blank: 86400, 24 h; 0: refused at once)",
    )

    class Meta:
        model = Cluster
        fields = ("name", "owner_team", *EDITABLE_FIELDS, *ROLLOUT_POLICY_FIELDS)

    def credentials(self) -> ClusterCredentials | None:
        data = self.cleaned_data
        if not (data.get("token") or data.get("client_certificate") or data.get("client_key")):
            return None
        return ClusterCredentials(
            token=data.get("token") or "",
            client_certificate_pem=data.get("client_certificate") or "",
            client_key_pem=data.get("client_key") or "",
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("webhook_token"):
            try:
                validate_webhook_token(data["webhook_token"])
            except ClusterInvalid as exc:
                self.add_error("webhook_token", exc.errors["token"])
        credentials = self.credentials()
        if credentials is None:
            if self.instance.pk is None:
                self.add_error("token", "give a token, or a client certificate and key")
            return data
        try:
            validate_credentials(credentials)
        except ClusterInvalid as exc:
            for field, message in exc.errors.items():
                self.add_error(field if field in self.fields else None, message)
        return data


@admin.register(Cluster)
class ClusterAdmin(TeamOwnedAdmin):
    form = ClusterAdminForm
    list_display = (
        "name",
        "api_server_url",
        "credential_kind",
        "reachable",
        "kubernetes_version",
        "last_checked_at",
        "held",
        "owner_team",
        "rollout_requires_second_person",
        "rollout_auto_approve",
    )
    list_filter = ("reachable", "held", "owner_team", "credential_kind", "webhook_failure_policy")
    search_fields = ("name", "api_server_url")
    readonly_fields = _HEALTH_FIELDS
    actions = (
        "check_health",
        "generate_webhook_tokens",
        "revoke_previous_webhook_tokens",
        "hold_clusters",
        "release_holds",
        "delete_clusters",
        "delete_clusters_keeping_their_objects",
    )
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "name",
                    "owner_team",
                    "api_server_url",
                    "ca_bundle",
                    "insecure_skip_tls_verify",
                    "tls_server_name",
                    "labels",
                )
            },
        ),
        (
            "Credentials (write-only; leave blank to keep)",
            {"fields": ("token", "client_certificate", "client_key")},
        ),
        (
            "Admission webhook",
            {
                "fields": (
                    "webhook_url",
                    "webhook_failure_policy",
                    "webhook_timeout_seconds",
                    "webhook_auth_required",
                    "webhook_token",
                    "webhook_token_grace_seconds",
                )
            },
        ),
        (
            "Rollout policy (needs the permission to change rollout policies; recorded in the change log)",
            {"fields": ROLLOUT_POLICY_FIELDS},
        ),
        ("Health", {"fields": _HEALTH_FIELDS}),
        ("Release hold (set with the list's actions)", {"fields": _HOLD_FIELDS}),
    )

    def get_readonly_fields(self, request: HttpRequest, obj: Cluster | None = None) -> tuple[str, ...]:
        readonly = (
            (*_HEALTH_FIELDS, *_HOLD_FIELDS, "name") if obj is not None else (*_HEALTH_FIELDS, *_HOLD_FIELDS)
        )
        if not request.user.has_perm(ROLLOUT_POLICY_PERMISSION):
            readonly = (*readonly, *ROLLOUT_POLICY_FIELDS)
        return readonly

    def get_queryset(self, request: HttpRequest) -> QuerySet[Cluster]:
        return super().get_queryset(request).select_related("owner_team")

    # e.g. giving the cluster to a team one is not in
    refused_on_save = (NotTeamMember,)

    def save_model(self, request: HttpRequest, obj: Cluster, form: ClusterAdminForm, change: bool) -> None:
        data = form.cleaned_data
        fields = {name: data[name] for name in EDITABLE_FIELDS if name in data}
        team = data.get("owner_team")
        team_name = team.name if team is not None else ""
        policy = {name: data[name] for name in ROLLOUT_POLICY_FIELDS if name in data}
        credentials = form.credentials()
        request_id = request_id_of(request)
        with transaction.atomic():
            if not change:
                assert credentials is not None
                cluster = register_cluster(
                    name=obj.name,
                    credentials=credentials,
                    owner_team=team_name,
                    actor=request.user,
                    request_id=request_id,
                    **fields,
                )
                obj.pk = cluster.pk
                obj.credentials_ciphertext = ""
            else:
                if "owner_team" in data:
                    fields["owner_team"] = team_name
                update_cluster(obj.pk, changes=fields, actor=request.user, request_id=request_id)
                if credentials is not None:
                    replace_credentials(obj.pk, credentials=credentials, actor=request.user)
            if policy:  # only present when the user may change it (read-only otherwise)
                set_rollout_policy(obj.pk, changes=policy, actor=request.user, request_id=request_id)
            if data.get("webhook_token"):
                set_webhook_token(
                    obj.pk,
                    token=data["webhook_token"],
                    grace_seconds=data.get("webhook_token_grace_seconds"),
                    actor=request.user,
                    request_id=request_id,
                )

    @admin.display(description="Previous webhook token")
    def previous_webhook_token(self, obj: Cluster) -> str:
        until = obj.previous_webhook_token_accepted_until(timezone.now())
        if until is None:
            return "none accepted"
        return (
            f"accepted until {formats.localize(timezone.localtime(until))} (revoke it with the list's action)"
        )

    @admin.action(
        description="Generate a new webhook token (shown once, with the apiserver's admission configuration)",
        permissions=("change",),
    )
    def generate_webhook_tokens(
        self, request: HttpRequest, queryset: QuerySet[Cluster]
    ) -> HttpResponse | None:
        clusters = list(queryset.select_related("owner_team").order_by("name"))
        # All or none: a token issued and then not shown (a later refusal) would lock its cluster out.
        refusals = [
            refusal
            for cluster in clusters
            if (refusal := team_refusal(request.user, [cluster.owner_team], f"cluster {cluster.name!r}"))
        ]
        if refusals:
            self.message_user(request, f"No token generated: {'; '.join(refusals)}", messages.ERROR)
            return None
        issued = []
        for cluster in clusters:
            token = set_webhook_token(cluster.pk, actor=request.user, request_id=request_id_of(request))
            cluster.refresh_from_db()
            try:
                files = apiserver_admission_config(cluster, token)
            except WebhookNotConfigured:
                files = None
            issued.append(
                {
                    "cluster": cluster.name,
                    "token": token,
                    "files": files,
                    "required": cluster.webhook_auth_required,
                    "previous_until": cluster.previous_webhook_token_accepted_until(timezone.now()),
                }
            )
        response = TemplateResponse(
            request,
            "admin/clusters/cluster/webhook_token.html",
            {**self.admin_site.each_context(request), "opts": self.model._meta, "issued": issued},
        )
        response["Cache-Control"] = "no-store"  # the tokens are secrets
        return response

    @admin.action(
        description="Revoke the previous webhook token now (the apiserver presents the new one)",
        permissions=("change",),
    )
    def revoke_previous_webhook_tokens(self, request: HttpRequest, queryset: QuerySet[Cluster]) -> None:
        revoked, refusals = [], []
        for cluster in queryset.select_related("owner_team").order_by("name"):
            refusal = team_refusal(request.user, [cluster.owner_team], f"cluster {cluster.name!r}")
            if refusal:
                refusals.append(refusal)
            elif revoke_previous_webhook_token(
                cluster.pk, actor=request.user, request_id=request_id_of(request)
            ):
                revoked.append(cluster.name)
        if refusals:
            self.message_user(request, f"Not revoked: {'; '.join(refusals)}", messages.ERROR)
        if revoked:
            self.message_user(request, f"Previous webhook token revoked: {', '.join(revoked)}")
        elif not refusals:
            self.message_user(
                request, "No previous webhook token was accepted; nothing revoked", messages.WARNING
            )

    # Deletion always goes through delete_cluster: the hub's objects leave the cluster first and
    # the change log records it. Django's bulk "delete selected" would skip both.
    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def delete_model(self, request: HttpRequest, obj: Cluster) -> None:
        delete_cluster(obj.pk, actor=request.user)

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> tuple[Any, Any, set[str], Any]:
        # What goes with a cluster (placements, rollouts, pod history) has read-only admins; the
        # delete_cluster permission is enough, as in the API, so none of theirs is asked for.
        deleted, counts, _perms_needed, protected = super().get_deleted_objects(objs, request)
        return deleted, counts, set(), protected

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        try:
            return super().delete_view(request, object_id, extra_context)
        except ClusterCleanupFailed as exc:  # nothing was deleted: back to the cluster, with the way on
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(reverse("admin:clusters_cluster_change", args=[object_id]))

    @admin.action(
        description="Delete selected clusters (their webhook and SidecarSets are removed from each first)",
        permissions=("delete",),
    )
    def delete_clusters(self, request: HttpRequest, queryset: QuerySet[Cluster]) -> None:
        self._delete(request, queryset, keep_in_cluster=False)

    @admin.action(
        description="Delete selected clusters, leaving the hub's webhook and SidecarSets in them",
        permissions=("delete",),
    )
    def delete_clusters_keeping_their_objects(
        self, request: HttpRequest, queryset: QuerySet[Cluster]
    ) -> None:
        self._delete(request, queryset, keep_in_cluster=True)

    def _delete(self, request: HttpRequest, queryset: QuerySet[Cluster], *, keep_in_cluster: bool) -> None:
        for cluster in queryset.order_by("name"):
            try:
                removal = delete_cluster(cluster.pk, keep_in_cluster=keep_in_cluster, actor=request.user)
            except ClusterCleanupFailed as exc:
                self.message_user(request, str(exc), messages.ERROR)
                continue
            self.message_user(
                request, f"cluster {cluster.name} deleted; {removal.summary()}", messages.SUCCESS
            )

    def has_hold_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("clusters.hold_cluster")

    @admin.action(description="Hold selected clusters (releases skip them)", permissions=("hold",))
    def hold_clusters(self, request: HttpRequest, queryset: QuerySet[Cluster]) -> None:
        for cluster in queryset.order_by("name"):
            hold_cluster(
                cluster.pk,
                held=True,
                reason=f"held from the admin by {request.user.get_username()}",
                actor=request.user,
                request_id=request_id_of(request),
            )
        self.message_user(
            request, f"{queryset.count()} cluster(s) held: releases skip them.", messages.SUCCESS
        )

    @admin.action(description="Release the hold of selected clusters", permissions=("hold",))
    def release_holds(self, request: HttpRequest, queryset: QuerySet[Cluster]) -> None:
        for cluster in queryset.order_by("name"):
            hold_cluster(cluster.pk, held=False, actor=request.user, request_id=request_id_of(request))
        self.message_user(request, f"{queryset.count()} cluster(s) no longer held.", messages.SUCCESS)

    @admin.action(description="Check health now")
    def check_health(self, request: HttpRequest, queryset: QuerySet[Cluster]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        for pk in ids:
            enqueue.health_check(pk)
        self.message_user(request, f"Health check queued for {len(ids)} cluster(s).", messages.SUCCESS)


class SelectorField(forms.JSONField):
    """A cluster label selector as one line of JSON; empty (not ``null``) when there is none."""

    def prepare_value(self, value: Any) -> Any:
        return "" if value is None else super().prepare_value(value)


class TargetAdminForm(forms.ModelForm):
    """A target, checked by the services' own rules (``clusters.push.check_target``) before the
    page saves anything: a refusal is shown on the form (under its field, or on the row), with
    what was typed kept. ``actor``: the signed-in user (``for_actor``)."""

    actor: Any = None
    cluster_selector = SelectorField(
        required=False,
        widget=forms.TextInput(attrs={"size": 48, "placeholder": '{"matchLabels": {"env": "prod"}}'}),
        help_text="A label selector over cluster labels (instead of one cluster)",
    )

    class Meta:
        model = SidecarSetTarget
        fields = ("sidecarset", "cluster", "cluster_selector", "wave")

    @classmethod
    def for_actor(cls, actor: Any) -> type[TargetAdminForm]:
        """This form class, checking its rows for ``actor``."""
        return type(cls.__name__, (cls,), {"actor": actor})

    def target_row(self) -> dict[str, Any]:
        """The row as the services take it: ``cluster_id``, ``cluster_selector``, ``wave``."""
        data = self.cleaned_data
        cluster = data.get("cluster")
        return {
            "cluster_id": cluster.pk if cluster else None,
            "cluster_selector": data.get("cluster_selector") or None,
            "wave": int(data.get("wave") or 0),
        }

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors or not self.has_changed() or data.get("DELETE"):
            return data  # nothing to check: the field errors say it, or nothing is written
        sidecarset = data.get("sidecarset") if "sidecarset" in self.fields else None
        sidecarset_id = sidecarset.pk if sidecarset is not None else self.instance.sidecarset_id
        try:
            check_target(sidecarset_id, actor=self.actor, target_id=self.instance.pk, **self.target_row())
        except TargetInvalid as exc:
            for field, message in exc.errors.items():
                self.add_error(field if field in self.fields else None, message)
        except NotTeamMember as exc:
            self.add_error(None, str(exc))
        return data


@admin.register(SidecarSetTarget)
class TargetAdmin(RefusalShownAdmin):
    form = TargetAdminForm
    list_display = ("sidecarset", "cluster", "cluster_selector", "wave")
    list_filter = ("wave",)
    search_fields = ("sidecarset__name", "cluster__name")
    list_select_related = ("sidecarset", "cluster")

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        kwargs.setdefault("form", TargetAdminForm.for_actor(request.user))
        return super().get_form(request, obj, change, **kwargs)

    refused_on_save = (TargetInvalid, NotTeamMember)

    def save_model(
        self, request: HttpRequest, obj: SidecarSetTarget, form: forms.ModelForm, change: bool
    ) -> None:
        row = form.target_row()  # type: ignore[attr-defined]  # a TargetAdminForm (get_form)
        if change:
            update_target(obj.pk, changes=row, actor=request.user)
        else:
            obj.pk = create_target(sidecarset_id=obj.sidecarset_id, actor=request.user, **row).pk

    def delete_model(self, request: HttpRequest, obj: SidecarSetTarget) -> None:
        delete_target(obj.pk, actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[SidecarSetTarget]) -> None:
        for pk in list(queryset.values_list("pk", flat=True)):
            delete_target(pk, actor=request.user)


class TargetInlineForm(TargetAdminForm):
    class Meta:
        model = SidecarSetTarget
        fields = ("cluster", "cluster_selector", "wave")


class TargetInlineFormSet(forms.BaseInlineFormSet):
    """The targets of the SidecarSet page: each changed or new row is checked by its form; a
    row marked for deletion is checked here (Django ignores a deleted form's errors). Any
    refusal keeps the whole page unsaved, shown again with what was typed."""

    def clean(self) -> None:
        super().clean()
        actor = getattr(self.form, "actor", None)
        refusals = []
        for form in self.deleted_forms:
            if form.instance.pk is None:
                continue
            try:
                check_target_deletion(form.instance.pk, actor=actor)
            except NotTeamMember as exc:
                refusals.append(f"target not deleted: {exc}")
        if refusals:
            raise forms.ValidationError(refusals)


class SidecarSetTargetInline(admin.TabularInline):
    """The targets of a SidecarSet, edited on its own page. Rows are checked by the services'
    rules before the page saves (``TargetInlineFormSet``) and written by the ``clusters.push``
    services (change log, placement re-resolution), never by ``save()``."""

    model = SidecarSetTarget
    form = TargetInlineForm
    formset = TargetInlineFormSet
    fk_name = "sidecarset"
    fields = ("cluster", "cluster_selector", "wave")
    extra = 1
    verbose_name = "target"
    verbose_name_plural = "Targets (clusters and waves; saved with the page)"

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        kwargs.setdefault("form", TargetInlineForm.for_actor(request.user))
        return super().get_formset(request, obj, **kwargs)

    @staticmethod
    def save_through_services(request: HttpRequest, formset: Any, parent: Any) -> None:
        """Create, change and delete the formset's targets through the services. Its rows were
        checked with the same rules; a refusal now (the targets changed meanwhile) leaves the
        whole page unsaved (``InlineRefused``)."""
        request_id = request_id_of(request)
        deleted = {id(form) for form in formset.deleted_forms}
        # What Django's change message (the admin's LogEntry) reads from a saved formset.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for form in formset.forms:
            pk = form.instance.pk
            try:
                if id(form) in deleted:
                    if pk is not None:
                        delete_target(pk, actor=request.user, request_id=request_id)
                        formset.deleted_objects.append(form.instance)
                    continue
                if not form.has_changed():
                    continue
                row = form.target_row()
                if pk is None:
                    created = create_target(
                        sidecarset_id=parent.pk, actor=request.user, request_id=request_id, **row
                    )
                    formset.new_objects.append(created)
                else:
                    updated = update_target(pk, changes=row, actor=request.user, request_id=request_id)
                    formset.changed_objects.append((updated, form.changed_data))
            except TargetInvalid as exc:
                raise InlineRefused(f"a target was refused ({exc})") from exc


SidecarSetAdmin.add_inline(SidecarSetTargetInline)


@admin.register(SidecarSetPlacement)
class PlacementAdmin(admin.ModelAdmin):
    list_display = (
        "sidecarset_name",
        "cluster",
        "wave",
        "state",
        "applied_revision_number",
        "matched_pods",
        "updated_pods",
        "ready_pods",
        "updated_ready_pods",
        "last_error",
    )
    list_filter = ("state", "cluster")
    search_fields = ("sidecarset_name", "cluster__name")
    list_select_related = ("cluster",)
    actions = ("retry",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_retry_permission(self, request: HttpRequest) -> bool:
        # the API's permission for retry; the change form stays closed (placements are the hub's)
        return request.user.has_perm("clusters.change_sidecarsetplacement")

    @admin.action(description="Retry push / removal now", permissions=["retry"])
    def retry(self, request: HttpRequest, queryset: QuerySet[SidecarSetPlacement]) -> None:
        queued = 0
        for pk in queryset.values_list("pk", flat=True):
            try:
                retry_placement(pk, actor=request.user)
                queued += 1
            except (InvalidTransition, NotTeamMember) as exc:
                self.message_user(request, str(exc), messages.WARNING)
        self.message_user(request, f"{queued} placement(s) queued again.", messages.SUCCESS)


@admin.register(ClusterAuditEvent)
class ClusterAuditEventAdmin(admin.ModelAdmin):
    list_display = ("at", "action", "cluster_name", "actor_name", "request_id")
    list_filter = ("action",)
    search_fields = ("cluster_name", "actor_name", "request_id")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --- drift (clusters.drift): read-only, written by the periodic status refresh ---


@admin.register(DriftedPod)
class DriftedPodAdmin(admin.ModelAdmin):
    list_display = ("cluster", "namespace", "pod_name", "missing", "pod_created_at", "last_seen_at")
    list_filter = ("cluster", "namespace")
    search_fields = ("pod_name", "namespace", "cluster__name")
    list_select_related = ("cluster",)

    @admin.display(description="Missing SidecarSets")
    def missing(self, obj: DriftedPod) -> str:
        return ", ".join(obj.missing_sidecarsets)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
