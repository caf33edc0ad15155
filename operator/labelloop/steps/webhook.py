"""The project's one webhook to the operator's receiver, with the project's secret header.

Label Studio posts each event once, inside the request that caused it; the receiver
(`controllers/webhooks.py`) only wakes the project's pass early. Each project's hook carries
an HMAC of its namespace, its name and the current replay window (the wall-clock time divided
by the window's length) under a key the operator draws at start: a header for one project is
useless for another, and a header is worth something for two windows at most. Label Studio
signs nothing and sends no timestamp of its own, so the time lives in the secret instead:
every project pass re-registers the header when a new window has begun (the operator runs a
pass early in each window, `HookSecrets.renewal_in`), and the receiver accepts the current
window's secret and the one before (a request on its way while the header changed).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

from ..labelstudio.client import LabelStudioClient

SECRET_HEADER = "X-Labelloop-Secret"
DEFAULT_REPLAY_WINDOW_SECONDS = 600
"""How long a webhook secret is current; a captured one is refused after two such windows."""
# Events that change what the counts say; everything else only costs a reconcile.
WEBHOOK_ACTIONS = (
    "TASKS_CREATED",
    "TASKS_DELETED",
    "ANNOTATION_CREATED",
    "ANNOTATIONS_CREATED",
    "ANNOTATION_UPDATED",
    "ANNOTATIONS_DELETED",
)


@dataclass(frozen=True)
class HookSecrets:
    """The key every project's webhook secret derives from, and the replay window."""

    key: bytes = field(repr=False)
    window_seconds: int = DEFAULT_REPLAY_WINDOW_SECONDS

    def current(self, namespace: str, name: str, now: float) -> str:
        """The secret header value of one project's webhook at the time `now`."""
        return self._of_window(namespace, name, self._window(now))

    def accepts(self, given: str, namespace: str, name: str, now: float) -> bool:
        """Whether `given` is the project's secret of this window or the one before, compared
        in constant time (both are compared, so the time says nothing about which)."""
        window = self._window(now)
        # Header values are text; compare_digest compares non-ASCII text only as bytes.
        offered = given.encode("utf-8", "surrogateescape")
        matches = [
            hmac.compare_digest(offered, self._of_window(namespace, name, w).encode())
            for w in (window, window - 1)
        ]
        return any(matches)

    def renewal_in(self, namespace: str, name: str, now: float) -> float:
        """Seconds until the project's header should be registered anew: within the first
        half of the next window, at a point fixed by the project, so that many projects
        spread their renewals instead of all renewing as the window turns (the header of
        the window before stays accepted meanwhile)."""
        spread = int.from_bytes(hashlib.sha256(f"{namespace}/{name}".encode()).digest()[:4])
        offset = spread % (self.window_seconds // 2 or 1)
        return (self._window(now) + 1) * self.window_seconds + offset - now

    def _window(self, now: float) -> int:
        return int(now // self.window_seconds)

    def _of_window(self, namespace: str, name: str, window: int) -> str:
        message = f"{namespace}/{name}/{window}".encode()
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Receiver:
    """The operator's webhook receiver as a project pass sees it: where Label Studio posts
    (`base_url`) and the secrets it checks."""

    base_url: str
    secrets: HookSecrets


def hook_path(namespace: str, name: str) -> str:
    """The receiver's path for one project's events (after the base URL)."""
    return f"/webhook/{namespace}/{name}"


def wanted_hook(
    receiver: Receiver | None, namespace: str, name: str, now: float
) -> tuple[str, str] | None:
    """(url, secret) of the project's hook at the receiver at the time `now`; None without
    a receiver."""
    if receiver is None:
        return None
    url = receiver.base_url.rstrip("/") + hook_path(namespace, name)
    return url, receiver.secrets.current(namespace, name, now)


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
