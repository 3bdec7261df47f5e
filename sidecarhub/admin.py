"""The web console for SidecarSet definitions: author as YAML (errors inline with their field
paths), publish, browse revisions and diff any two. Every write goes through
``sidecarhub.services``, exactly like the API and the CLI.

Other apps add read-only panels to the SidecarSet's change page (the rollouts app adds the fleet
view) through ``SidecarSetAdmin.add_change_page_panel``: this app never imports them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import InlineModelAdmin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join

from sidecarhub import services
from sidecarhub.middleware import request_id_of
from sidecarhub.models import ChangeRecord, SidecarSet, SidecarSetRevision, Team
from sidecarhub.services import DefinitionError, SidecarSetInvalid
from sidecarhub.teams import NotTeamMember, team_refusal

__all__ = [
    "ChangePagePanel",
    "ChangeRecordAdmin",
    "InlineRefused",
    "SidecarSetAdmin",
    "SidecarSetAdminForm",
    "SidecarSetRevisionAdmin",
    "TeamOwnedAdmin",
]

# A panel of the SidecarSet change page: the request and the SidecarSet in, HTML out ("" to show
# nothing, e.g. when the user may not see it). Rendered below the revisions, in the order added.
# The publish page takes panels of the same shape (what publishing would do, before confirming).
ChangePagePanel = Callable[[HttpRequest, "SidecarSet"], str]
# What a publish started, as HTML added to its success message (e.g. a link to the release).
PublishedNote = Callable[[HttpRequest, "SidecarSetRevision"], str]

NEW_SIDECARSET_YAML = """\
apiVersion: apps.kruise.io/v1beta1
kind: SidecarSet
metadata:
  name: my-sidecarset
spec:
  selector:
    matchLabels:
      app: my-app
  containers:
  - name: my-sidecar
    image: busybox:1.36
"""


# The rollout policy's form fields and their policy keys. Plain text: the core parses and judges
# the values (sidecarhub.sidecarset.rollout_settings), the one rule set of the API and import too.
ROLLOUT_POLICY_FIELDS = {
    "rollout_steps": "steps",
    "rollout_max_unavailable": "max_unavailable",
    "rollout_failure_threshold": "failure_threshold",
    "rollout_progress_deadline_seconds": "progress_deadline_seconds",
    "rollout_pod_timeout_seconds": "pod_timeout_seconds",
    "rollout_approval_ttl_seconds": "approval_ttl_seconds",
}
_POLICY_HELP = {
    "steps": 'In order, comma-separated: "canary" (the pods of spec.updateStrategy.selector; first '
    'only), a pod count (1) or a percent (50%), e.g. "canary, 50%, 100%". Empty: canary (with a '
    "selector), then 100%.",
    "max_unavailable": "Pods updating at once within a step: a count or a percent. Empty: "
    "spec.updateStrategy.maxUnavailable.",
    "failure_threshold": "Failed pods a step tolerates before the rollout pauses. Empty: hub default.",
    "progress_deadline_seconds": "Pause when no pod finishes for this long. Empty: hub default.",
    "pod_timeout_seconds": "A pod not on its new image and ready by then timed out. Empty: hub default.",
    "approval_ttl_seconds": "How long a prepared step can be approved. Empty: hub default.",
}


def _policy_text(value: Any) -> str:
    if value is None:
        return ""
    return ", ".join(str(step) for step in value) if isinstance(value, list) else str(value)


class InlineRefused(Exception):
    """An inline's services refused a row while the page was saved, after its checks passed
    (someone changed the rows meanwhile): the whole page is left unsaved and the refusal shown."""


class RefusalShownAdmin(admin.ModelAdmin):
    """A change page whose save a service may still refuse after the forms' checks passed (a
    concurrent write slipped in between): the page is one transaction, so nothing was saved, and
    the refusal is shown as an error ("Not saved: ...") on the page again, never a 403 or 500.
    Subclasses list what their services raise in ``refused_on_save``."""

    refused_on_save: tuple[type[Exception], ...] = ()

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: Any = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except self.refused_on_save as exc:
            self.message_user(request, f"Not saved: {exc}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())


class TeamOwnedAdmin(RefusalShownAdmin):
    """Admin of a model with an ``owner_team``: another team's object is read-only here (the
    services refuse changing it anyway), so the page does not offer what would be refused."""

    def _acts_on(self, request: HttpRequest, obj: Any) -> bool:
        return obj is None or team_refusal(request.user, [obj.owner_team], "it") is None

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_change_permission(request, obj) and self._acts_on(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_delete_permission(request, obj) and self._acts_on(request, obj)


class SidecarSetAdminForm(forms.ModelForm):
    """A SidecarSet as one Kruise YAML document plus its rollout policy fields; validated by the
    services (core rules, UPDATE rules, conflicts, the policy) with each error shown under its
    field as ``path: message``. The policy fields are passed on only when changed, so
    ``rollouts.sidecarhub.io/*`` annotations pasted into the YAML (the import format) fill them."""

    document_yaml = forms.CharField(
        label="Kruise YAML",
        strip=False,
        widget=forms.Textarea(
            attrs={"rows": 32, "cols": 100, "spellcheck": "false", "class": "vLargeTextField"}
        ),
        help_text="apps.kruise.io/v1alpha1 or v1beta1; stored in the canonical v1beta1 form.",
    )
    rollout_steps = forms.CharField(required=False, label="steps", help_text=_POLICY_HELP["steps"])
    rollout_max_unavailable = forms.CharField(
        required=False, label="max unavailable", help_text=_POLICY_HELP["max_unavailable"]
    )
    rollout_failure_threshold = forms.CharField(
        required=False, label="failure threshold", help_text=_POLICY_HELP["failure_threshold"]
    )
    rollout_progress_deadline_seconds = forms.CharField(
        required=False, label="progress deadline (s)", help_text=_POLICY_HELP["progress_deadline_seconds"]
    )
    rollout_pod_timeout_seconds = forms.CharField(
        required=False, label="pod timeout (s)", help_text=_POLICY_HELP["pod_timeout_seconds"]
    )
    rollout_approval_ttl_seconds = forms.CharField(
        required=False, label="approval lifetime (s)", help_text=_POLICY_HELP["approval_ttl_seconds"]
    )
    change_message = forms.CharField(required=False, max_length=2000, help_text="Recorded in the change log")
    # By name, as in the API and the CLI; giving it to a team needs membership (sidecarhub.teams).
    owner_team = forms.ModelChoiceField(Team.objects.all(), to_field_name="name", required=False)
    version = forms.IntegerField(required=False, widget=forms.HiddenInput)

    class Meta:
        model = SidecarSet
        fields = ("owner_team",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.checked: Any = None
        if self.instance.pk:
            self.fields["document_yaml"].initial = services.dump_yaml(self.instance.to_document())
            self.fields["version"].initial = self.instance.version
            # the model form's initial is the team's pk; this field's choices are names
            owner = self.instance.owner_team
            self.initial["owner_team"] = owner.name if owner is not None else None
            for field_name, key in ROLLOUT_POLICY_FIELDS.items():
                self.fields[field_name].initial = _policy_text(self.instance.rollout_policy.get(key))
        else:
            self.fields["document_yaml"].initial = NEW_SIDECARSET_YAML

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        text = cleaned.get("document_yaml")
        if text is None:
            return cleaned
        editing = bool(self.instance.pk)
        if editing and cleaned.get("version") != self.instance.version:
            self.add_error(
                None,
                f"{self.instance.name} was changed by someone else since you opened it "
                f"(version {cleaned.get('version')}, now {self.instance.version}); reload the page.",
            )
        policy = None
        if any(field_name in self.changed_data for field_name in ROLLOUT_POLICY_FIELDS):
            policy = {key: cleaned.get(field_name, "") for field_name, key in ROLLOUT_POLICY_FIELDS.items()}
        field_of = {f"rollout_policy.{key}": field_name for field_name, key in ROLLOUT_POLICY_FIELDS.items()}
        try:
            self.checked = services.check_definition(
                text, name=self.instance.name if editing else None, create=not editing, rollout_policy=policy
            )
        except SidecarSetInvalid as exc:
            for error in exc.errors:
                self.add_error(field_of.get(error.path, "document_yaml"), f"{error.path}: {error.message}")
        except DefinitionError as exc:
            self.add_error("document_yaml", str(exc))
        return cleaned


class RevisionInline(admin.TabularInline):
    """The revisions of a SidecarSet, newest first, read-only, each with a diff link."""

    model = SidecarSetRevision
    fk_name = "sidecarset"
    extra = 0
    can_delete = False
    ordering = ("-number",)
    fields = ("number", "name", "short_hash", "author_name", "created_at", "message", "diff_link")
    readonly_fields = fields
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("sidecarhub.view_sidecarset")

    @admin.display(description="hash")
    def short_hash(self, revision: SidecarSetRevision) -> str:
        return revision.revision_hash[:12]

    @admin.display(description="diff")
    def diff_link(self, revision: SidecarSetRevision) -> str:
        if revision.number <= 1:
            return "-"
        url = reverse("admin:sidecarhub_sidecarset_diff", args=[revision.sidecarset_id])
        return format_html(
            '<a href="{}?from={}&amp;to={}">vs previous</a>', url, revision.number - 1, revision.number
        )


@admin.register(SidecarSet)
class SidecarSetAdmin(TeamOwnedAdmin):
    """Authoring console; saves, deletes and publishes through ``sidecarhub.services``."""

    form = SidecarSetAdminForm
    inlines = [RevisionInline]
    list_display = (
        "name",
        "owner_team",
        "current_revision_number",
        "has_unpublished_changes",
        "version_display",
        "updated_at",
    )
    list_filter = ("owner_team",)
    search_fields = ("name", "owner_team__name")
    actions = ["publish_selected"]
    change_form_template = "admin/sidecarhub/sidecarset/change_form.html"
    change_page_panels: ClassVar[list[ChangePagePanel]] = []
    publish_page_panels: ClassVar[list[ChangePagePanel]] = []
    published_notes: ClassVar[list[PublishedNote]] = []
    extra_inlines: ClassVar[list[type[InlineModelAdmin[Any, Any]]]] = []

    @classmethod
    def add_change_page_panel(cls, panel: ChangePagePanel) -> None:
        """Show ``panel`` on every SidecarSet's change page (idempotent: added once)."""
        if panel not in cls.change_page_panels:
            cls.change_page_panels.append(panel)

    @classmethod
    def add_publish_page_panel(cls, panel: ChangePagePanel) -> None:
        """Show ``panel`` on the publish page, above the confirm button (idempotent)."""
        if panel not in cls.publish_page_panels:
            cls.publish_page_panels.append(panel)

    @classmethod
    def add_published_note(cls, note: PublishedNote) -> None:
        """Add ``note``'s HTML to the success message of every publish (idempotent)."""
        if note not in cls.published_notes:
            cls.published_notes.append(note)

    @classmethod
    def add_inline(cls, inline: type[InlineModelAdmin[Any, Any]]) -> None:
        """Edit another app's rows on the change page (e.g. the clusters app's targets). The
        inline saves its formset itself (``save_through_services(request, formset, parent)``), so
        its app's services do the writes, never Django's plain ``save()``. Its formset checks
        the rows with the services' rules first (a refusal is a form error: the page is shown
        again with what was typed, nothing saved); a refusal while saving raises
        ``InlineRefused``."""
        if inline not in cls.extra_inlines:
            cls.extra_inlines.append(inline)

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: SidecarSet | None = None,
    ) -> HttpResponse:
        if obj is not None and obj.pk:
            context["sidecarset_panels"] = [
                html for html in (panel(request, obj) for panel in self.change_page_panels) if html
            ]
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_queryset(self, request: HttpRequest) -> QuerySet[SidecarSet]:
        return super().get_queryset(request).select_related("current_revision", "owner_team")

    def get_inlines(self, request: HttpRequest, obj: SidecarSet | None) -> Any:
        return [*self.extra_inlines, *self.inlines] if obj is not None else []

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        for inline in self.extra_inlines:
            if formset.model is inline.model:
                inline.save_through_services(request, formset, form.instance)  # type: ignore[attr-defined]
                return
        super().save_formset(request, form, formset, change)

    def get_fieldsets(self, request: HttpRequest, obj: SidecarSet | None = None) -> Any:
        editable = ("document_yaml", "owner_team", "change_message", "version")
        policy = (
            "Rollout policy",
            {
                "fields": tuple(ROLLOUT_POLICY_FIELDS),
                "description": "How releases of this SidecarSet proceed; frozen into the revision at "
                "publish. rollouts.sidecarhub.io/* annotations in the YAML fill these fields.",
            },
        )
        if obj is None:
            return [(None, {"fields": editable}), policy]
        state = (
            "name",
            "version_display",
            "current_revision_number",
            "has_unpublished_changes",
            "updated_at",
        )
        return [("State", {"fields": state}), ("Definition", {"fields": editable}), policy]

    def get_readonly_fields(self, request: HttpRequest, obj: SidecarSet | None = None) -> Any:
        if obj is None:
            return ()
        return ("name", "version_display", "current_revision_number", "has_unpublished_changes", "updated_at")

    @admin.display(description="current revision")
    def current_revision_number(self, obj: SidecarSet) -> str:
        return f"#{obj.current_revision.number}" if obj.current_revision is not None else "-"

    @admin.display(description="unpublished changes", boolean=True)
    def has_unpublished_changes(self, obj: SidecarSet) -> bool:
        return obj.has_unpublished_changes

    # "Revision" is what a publish creates (#1, #2, ...); "edit version" counts saved edits of the
    # draft (the lost-update guard), which publishing does not change.
    @admin.display(description="edit version", ordering="version")
    def version_display(self, obj: SidecarSet) -> int:
        return obj.version

    # --- writes through the services --------------------------------------------------------

    refused_on_save = (SidecarSetInvalid, DefinitionError, NotTeamMember, InlineRefused)

    def save_model(self, request: HttpRequest, obj: SidecarSet, form: Any, change: bool) -> None:
        data = form.cleaned_data
        if change:
            saved = services.update_sidecarset(
                obj.name,
                source=form.checked.sidecarset,
                rollout_policy=form.checked.rollout_policy,
                actor=request.user,
                expected_version=data.get("version"),
                owner_team=_team_name(data.get("owner_team")),
                request_id=request_id_of(request),
                message=data.get("change_message", ""),
            )
        else:
            saved = services.create_sidecarset(
                form.checked.sidecarset,
                rollout_policy=form.checked.rollout_policy,
                actor=request.user,
                owner_team=_team_name(data.get("owner_team")),
                request_id=request_id_of(request),
                message=data.get("change_message", ""),
            )
        obj.pk = saved.pk
        obj.refresh_from_db()

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        # Revisions go with their SidecarSet (the service deletes them); deleting a SidecarSet
        # needs only delete_sidecarset, not a revision permission nobody is meant to hold.
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        perms_needed.discard(SidecarSetRevision._meta.verbose_name)
        return deleted, model_count, perms_needed, protected

    def delete_model(self, request: HttpRequest, obj: SidecarSet) -> None:
        services.delete_sidecarset(
            obj.name, actor=request.user, expected_version=None, request_id=request_id_of(request)
        )

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[SidecarSet]) -> None:
        for name in queryset.values_list("name", flat=True):
            services.delete_sidecarset(
                name, actor=request.user, expected_version=None, request_id=request_id_of(request)
            )

    # --- publish --------------------------------------------------------------------------------

    def has_publish_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("sidecarhub.publish_sidecarset")

    @admin.action(description="Publish selected SidecarSets", permissions=["publish"])
    def publish_selected(self, request: HttpRequest, queryset: QuerySet[SidecarSet]) -> None:
        for name in queryset.values_list("name", flat=True):
            self._publish(request, name, "published from the admin list")

    def _publish(self, request: HttpRequest, name: str, message: str) -> bool:
        try:
            revision = services.publish_sidecarset(
                name, actor=request.user, message=message, request_id=request_id_of(request)
            )
        except SidecarSetInvalid as exc:
            problems = "; ".join(str(error) for error in exc.errors)
            self.message_user(request, f"{name} not published: {problems}", messages.ERROR)
            return False
        except (DefinitionError, NotTeamMember) as exc:
            self.message_user(request, f"{name} not published: {exc}", messages.WARNING)
            return False
        notes = [note(request, revision) for note in self.published_notes]
        text = format_html(
            "Published {} (hash {}){}",
            revision.name,
            revision.revision_hash[:12],
            format_html_join("", " {}", ((note,) for note in notes if note)),
        )
        self.message_user(request, text, messages.SUCCESS)
        return True

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "<path:object_id>/publish/",
                self.admin_site.admin_view(self.publish_view),
                name="sidecarhub_sidecarset_publish",
            ),
            path(
                "<path:object_id>/diff/",
                self.admin_site.admin_view(self.diff_view),
                name="sidecarhub_sidecarset_diff",
            ),
        ]
        return own + super().get_urls()

    def publish_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """GET: what would be published (diff against the current revision); POST: publish."""
        sidecarset = get_object_or_404(SidecarSet, pk=object_id)
        if not self.has_publish_permission(request):
            raise PermissionDenied
        change_url = reverse("admin:sidecarhub_sidecarset_change", args=[sidecarset.pk])
        if request.method == "POST":
            self._publish(request, sidecarset.name, request.POST.get("message", "")[:2000])
            return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Publish {sidecarset.name}",
            "opts": self.model._meta,
            "original": sidecarset,
            "diff": services.diff_unpublished(sidecarset.name),
            "change_url": change_url,
            "publish_panels": [
                html for html in (panel(request, sidecarset) for panel in self.publish_page_panels) if html
            ],
        }
        return TemplateResponse(request, "admin/sidecarhub/sidecarset/publish.html", context)

    def diff_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Diff any two revisions (``?from=&to=``; defaults: the two newest)."""
        sidecarset = get_object_or_404(SidecarSet, pk=object_id)
        if not self.has_view_permission(request, sidecarset):
            raise PermissionDenied
        numbers = list(sidecarset.revisions.order_by("-number").values_list("number", flat=True))
        diff = None
        error = ""
        from_number = _int_or_none(request.GET.get("from")) or (numbers[1] if len(numbers) > 1 else None)
        to_number = _int_or_none(request.GET.get("to")) or (numbers[0] if numbers else None)
        if from_number is not None and to_number is not None:
            try:
                diff = services.diff_revisions(sidecarset.name, from_number, to_number)
            except DefinitionError as exc:
                error = str(exc)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Diff revisions of {sidecarset.name}",
            "opts": self.model._meta,
            "original": sidecarset,
            "numbers": numbers,
            "from_number": from_number,
            "to_number": to_number,
            "diff": diff,
            "diff_lines": diff.unified_diff.splitlines() if diff is not None else [],
            "error": error,
        }
        return TemplateResponse(request, "admin/sidecarhub/sidecarset/diff.html", context)


def _team_name(team: Team | None) -> str:
    return team.name if team is not None else ""


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    """Teams and their members (what members may do comes from their groups: ``sidecarhub.roles``)."""

    list_display = ("name", "description", "member_count", "sidecarset_count", "cluster_count")
    search_fields = ("name", "description", "members__username")
    filter_horizontal = ("members",)
    fields = ("name", "description", "members")

    @admin.display(description="members")
    def member_count(self, obj: Team) -> int:
        return obj.members.count()

    @admin.display(description="SidecarSets")
    def sidecarset_count(self, obj: Team) -> int:
        return obj.sidecarsets.count()

    @admin.display(description="clusters")
    def cluster_count(self, obj: Team) -> int:
        return obj.clusters.count()


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


class ReadOnlyAdmin(admin.ModelAdmin):
    """History is written by services only: no add, change or delete from the console."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(SidecarSetRevision)
class SidecarSetRevisionAdmin(ReadOnlyAdmin):
    list_display = ("name", "sidecarset", "number", "revision_hash", "author_name", "created_at")
    list_filter = ("sidecarset",)
    search_fields = ("name", "revision_hash")
    readonly_fields = (
        "sidecarset",
        "number",
        "name",
        "revision_hash",
        "hash_without_images",
        "custom_version",
        "document",
        "rollout_policy",
        "message",
        "author_name",
        "created_at",
    )
    fields = readonly_fields


@admin.register(ChangeRecord)
class ChangeRecordAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "action", "object_repr", "content_type", "actor_name", "request_id")
    list_filter = ("action", "content_type")
    search_fields = ("object_repr", "actor_name", "request_id")
    readonly_fields = (
        "created_at",
        "action",
        "content_type",
        "object_id",
        "object_repr",
        "parent_content_type",
        "parent_object_id",
        "actor_name",
        "request_id",
        "message",
        "before",
        "after",
    )
    fields = readonly_fields
