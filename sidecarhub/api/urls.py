"""The one API router; each app registers its viewsets here (URLs in comments beside them).

No format-suffix routes (``.../validate.json/``): one way to choose a format, the ``Accept``
header (or ``?format=`` where a view documents it, e.g. CSV export), so custom actions never
receive a ``format`` argument they do not take. Such URLs are a 404 in the API's error body.
"""

from rest_framework.routers import DefaultRouter


class ApiRouter(DefaultRouter):
    """``DefaultRouter`` (with the API root view) without format-suffix routes."""

    include_format_suffixes = False


router = ApiRouter()

# --- SidecarSet definitions (sidecarhub.api.views) ----------------------------------------------
# /api/v1/sidecarsets/                                   GET list, POST create
#     list filters: ?name= ?name_contains= ?owner_team= ?label=key=value,key
# /api/v1/sidecarsets/validate/                          POST dry run: every error with its field path
# /api/v1/sidecarsets/import/                            POST multi-document Kruise YAML, all or nothing
# /api/v1/sidecarsets/{name}/                            GET (ETag), PUT / PATCH / DELETE (If-Match)
# /api/v1/sidecarsets/{name}/publish/                    POST: a new immutable revision
# /api/v1/sidecarsets/{name}/revisions/                  GET revisions, newest first
# /api/v1/sidecarsets/{name}/revisions/{number}/         GET one revision with its document
# /api/v1/sidecarsets/{name}/revisions/diff/?from=&to=   GET unified YAML diff + change kind
# /api/v1/sidecarsets/{name}/export/?version=v1alpha1|v1beta1[&revision=N]   GET Kruise YAML
# /api/v1/change-records/                               GET the change log, newest first; rows outlive
#     their objects. Filters: ?object_type=clusters.cluster ?object=<name> ?object_id= ?action= ?request_id=
from sidecarhub.api.views import ChangeRecordViewSet, SidecarSetViewSet  # noqa: E402

router.register("sidecarsets", SidecarSetViewSet, basename="sidecarset")
router.register("change-records", ChangeRecordViewSet, basename="change-record")

# --- Clusters (clusters.api.views) ---------------------------------------------------------------
# /api/v1/clusters/                                      GET list (?name= ?reachable=), POST register
# /api/v1/clusters/import-kubeconfig/                    POST {name, kubeconfig, context, replace, labels}
# /api/v1/clusters/{name}/                               GET, PATCH (no credentials), DELETE
# /api/v1/clusters/{name}/credentials/                   POST replace credentials (write-only)
# /api/v1/clusters/{name}/check/                         POST 202: health check queued
# /api/v1/clusters/{name}/rollout-policy/                GET, PATCH four eyes / auto-approve / approval TTL
# /api/v1/clusters/{name}/webhook-token/                 POST set or generate the admission webhook token
# /api/v1/clusters/{name}/webhook-token/revoke-previous/ POST stop accepting the token a rotation replaced
# /api/v1/sidecarset-targets/                            GET list (?sidecarset= ?cluster= ?*_id=), POST
# /api/v1/sidecarset-targets/{id}/                       GET, PATCH, DELETE
# /api/v1/sidecarset-placements/                         GET push state (?sidecarset= ?cluster= ?state=)
# /api/v1/sidecarset-placements/{id}/retry/              POST 202: push / removal queued again
# /api/v1/cluster-audit-events/                          GET security audit (?cluster= ?action=)
from clusters.api.views import (  # noqa: E402
    ClusterAuditEventViewSet,
    ClusterViewSet,
    PlacementViewSet,
    TargetViewSet,
)

router.register("clusters", ClusterViewSet, basename="cluster")
router.register("sidecarset-targets", TargetViewSet, basename="sidecarset-target")
router.register("sidecarset-placements", PlacementViewSet, basename="sidecarset-placement")
router.register("cluster-audit-events", ClusterAuditEventViewSet, basename="cluster-audit-event")

# --- Rollouts (rollouts.api.views) ---------------------------------------------------------------
# /api/v1/rollouts/                                      GET list with progress counts
#     list filters: ?sidecarset= ?sidecarset_id= ?cluster= ?cluster_id= ?state= (repeatable)
#                   ?active=true|false ?wave= ?kind=update|rollback
# /api/v1/rollouts/{id}/                                 GET with steps, pods, approvals, counts
# /api/v1/rollouts/{id}/steps/                           GET the steps
# /api/v1/rollouts/{id}/preview/                         GET next step's pods: in place / needs recreate
# /api/v1/rollouts/{id}/pause/ .../resume/ .../abort/    POST {reason} 202; 409 with the current state
# /api/v1/rollouts/{id}/rollback/                        POST {reason} 202: the NEW rollback rollout
# /api/v1/rollout-steps/                                 GET list (?rollout= ?state= ?cluster= ?cluster_id=
#                                                        ?awaiting_my_approval=true)
# /api/v1/rollout-steps/{id}/                            GET
# /api/v1/rollout-steps/{id}/approve/ .../deny/          POST {comment} 202; team, four eyes (403); race → 409
# /api/v1/pod-updates/                                   GET per-pod history; ?format=csv streams CSV
#     filters: ?cluster= ?cluster_id= ?namespace= ?pod= ?pod_contains= ?pod_uid= ?rollout= ?step=
#              ?sidecarset= ?outcome= ?state= (repeatable) ?since= ?until= (ISO 8601, claimed_at)
# /api/v1/pod-updates/{id}/                              GET
# /api/v1/pod-updates/export.csv/                        GET streaming CSV (same filters)
# /api/v1/sidecarsets/{name}/fleet/                      GET every target cluster: serving revision,
#                                                        hold, latest rollout, pods, needs recreate, drift;
#                                                        skipped_clusters (another team's, by selector)
# /api/v1/sidecarsets/{name}/releases/?limit=            GET newest releases by wave, each with its stage
# /api/v1/sidecarsets/{name}/publish-preview/?pods=      GET what publishing would do: clusters by
#                                                        wave, steps, pods in place / need recreate,
#                                                        skipped_clusters
#     (served by rollouts.api.views: the SidecarSet viewset never imports rollouts)
from rollouts.api.views import (  # noqa: E402
    PodUpdateViewSet,
    RolloutStepViewSet,
    RolloutViewSet,
    SidecarSetFleetViewSet,
)

router.register("rollouts", RolloutViewSet, basename="rollout")
router.register("rollout-steps", RolloutStepViewSet, basename="rollout-step")
router.register("pod-updates", PodUpdateViewSet, basename="pod-update")
router.register(r"sidecarsets/(?P<name>[A-Za-z0-9-]+)", SidecarSetFleetViewSet, basename="sidecarset-fleet")
