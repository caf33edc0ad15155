"""The project's one webhook to the operator's receiver, with the project's secret header.

Label Studio posts each event once, inside the request that caused it; the receiver
(`controllers/webhooks.py`) only wakes the project's pass early. Each project's hook carries
an HMAC of its namespace and name under a key the operator draws at start, so a header for
one project is useless for another.
"""

from __future__ import annotations

import hashlib
import hmac

from ..labelstudio.client import LabelStudioClient

SECRET_HEADER = "X-Labelloop-Secret"
# Events that change what the counts say; everything else only costs a reconcile.
WEBHOOK_ACTIONS = (
    "TASKS_CREATED",
    "TASKS_DELETED",
    "ANNOTATION_CREATED",
    "ANNOTATIONS_CREATED",
    "ANNOTATION_UPDATED",
    "ANNOTATIONS_DELETED",
)


def project_secret(key: bytes, namespace: str, name: str) -> str:
    """The secret header value of one project's webhook."""
    return hmac.new(key, f"{namespace}/{name}".encode(), hashlib.sha256).hexdigest()


def hook_path(namespace: str, name: str) -> str:
    """The receiver's path for one project's events (after the base URL)."""
    return f"/webhook/{namespace}/{name}"


def wanted_hook(
    receiver: tuple[str, bytes] | None, namespace: str, name: str
) -> tuple[str, str] | None:
    """(url, secret) of the project's hook at the receiver (base URL, key); None without one."""
    if receiver is None:
        return None
    base, key = receiver
    return base.rstrip("/") + hook_path(namespace, name), project_secret(key, namespace, name)


def ensure_webhook(
    ls: LabelStudioClient, project_id: int, path: str, wanted: tuple[str, str] | None
) -> None:
    """Exactly the webhook `wanted` (url, secret) of ours for this project, or none.

    Ours are the hooks with the secret header whose URL ends in `path`; those at another URL
    (the receiver moved, or a pass crashed after creating one) are deleted, since Label Studio
    would keep waiting up to a second for each inside every annotation request.
    """
    ours = [
        h
        for h in ls.list_webhooks(project_id)
        if SECRET_HEADER in h.headers and h.url.endswith(path)
    ]
    keep = None
    if wanted is not None:
        url, secret = wanted
        headers = {SECRET_HEADER: secret}
        keep = next((h for h in ours if h.url == url), None)
        if keep is None:
            ls.create_webhook(project_id, url, actions=WEBHOOK_ACTIONS, headers=headers)
        elif (
            keep.headers != headers
            or set(keep.actions) != set(WEBHOOK_ACTIONS)
            or not keep.is_active
        ):
            ls.update_webhook(keep.id, actions=WEBHOOK_ACTIONS, headers=headers, is_active=True)
    for hook in ours:
        if hook is not keep:
            ls.delete_webhook(hook.id)
