"""The ``hf`` source: a Hugging Face hub repo id at a pinned revision, via
``huggingface_hub.snapshot_download`` (needs internet; tested against a local stand-in of the hub), with a
timeout per request and a number of attempts."""
from __future__ import annotations

import shutil
import time
from pathlib import Path

from lpbench.sources.common import NET_RETRIES, NET_TIMEOUT, DownloadError


class HubUnanswered(RuntimeError):
    """A hub request got no answer within the timeout."""


class _HubTimeouts:
    """Within the block, every request huggingface_hub makes gives up after ``timeout`` s without an
    answer (its default client has no timeout: a hub that accepts connections and never answers hangs
    ``list_repo_tree`` forever)."""

    def __init__(self, timeout: float):
        self.timeout = float(timeout)

    def __enter__(self):
        import httpx2
        from huggingface_hub import constants
        from huggingface_hub.utils import _http

        self._saved = (_http._GLOBAL_CLIENT_FACTORY, constants.HF_HUB_ETAG_TIMEOUT, constants.HF_HUB_DOWNLOAD_TIMEOUT)
        t = self.timeout

        class CappedTimeouts(httpx2.HTTPTransport):
            # huggingface_hub passes `timeout=None` (= wait forever) explicitly on some calls (repo_info,
            # list_repo_tree), which beats a client default: cap every request at the transport instead.
            # A timeout is raised as HubUnanswered, which huggingface_hub's own backoff (5 more tries,
            # 23 s of sleeps) does not catch: the retries are ours, so the total wait is what we state.
            def handle_request(self, request):
                asked = request.extensions.get("timeout") or {}
                request.extensions["timeout"] = {k: min(t, asked.get(k) or t)
                                                 for k in ("connect", "read", "write", "pool")}
                try:
                    return super().handle_request(request)
                except httpx2.TimeoutException as e:
                    raise HubUnanswered(f"no answer within {t:g} s to {request.method} {request.url}") from e

        _http.set_client_factory(lambda: httpx2.Client(event_hooks={"request": [_http.hf_request_event_hook]},
                                                       follow_redirects=True, timeout=httpx2.Timeout(t),
                                                       transport=CappedTimeouts()))
        constants.HF_HUB_ETAG_TIMEOUT = constants.HF_HUB_DOWNLOAD_TIMEOUT = t
        return self

    def __exit__(self, *exc):
        from huggingface_hub import constants
        from huggingface_hub.utils import _http

        factory, constants.HF_HUB_ETAG_TIMEOUT, constants.HF_HUB_DOWNLOAD_TIMEOUT = self._saved
        _http.set_client_factory(factory)


def _is_final_hub_error(e: Exception) -> bool:
    """Errors a retry cannot fix (unknown repo, revision or file; auth)."""
    from huggingface_hub.errors import (EntryNotFoundError, GatedRepoError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)

    if isinstance(e, LocalEntryNotFoundError):  # "hub unreachable, nothing cached": network, retry
        return False
    return isinstance(e, (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError, GatedRepoError))


def hf_snapshot(repo_id: str, revision: str, dest: Path, *, repo_type: str = "model", endpoint: str | None = None,
                token: str | None = None, allow_patterns: list[str] | None = None, timeout: float = NET_TIMEOUT,
                retries: int = NET_RETRIES, error=None) -> Path:
    """``snapshot_download`` into an emptied ``dest`` with a per-request timeout and retries; raises
    ``error`` (default :class:`DownloadError`) stating the repo, revision, endpoint and the wait."""
    from huggingface_hub import snapshot_download

    error = error or DownloadError
    what = (f"dataset '{repo_id}' at '{revision}'" if repo_type == "dataset"
            else f"'{repo_id}' at revision '{revision}'")
    what += f" from the Hugging Face hub{f' ({endpoint})' if endpoint else ''}"
    last: Exception | None = None
    for attempt in range(1, retries + 1):
        if Path(dest).exists():
            shutil.rmtree(dest)
        try:
            with _HubTimeouts(timeout):
                return Path(snapshot_download(repo_id=repo_id, repo_type=repo_type, revision=revision,
                                              local_dir=dest, endpoint=endpoint, token=token,
                                              allow_patterns=allow_patterns))
        except Exception as e:  # network, auth, missing revision: one clear message
            last = e
            if _is_final_hub_error(e):
                raise error(f"could not download {what}: {e}") from e
        if attempt < retries:
            time.sleep(2 * attempt)
    raise error(f"could not download {what} after {retries} attempt(s), each request given {timeout:g} s "
                f"to answer (entry keys `timeout`, `retries`): {type(last).__name__}: {last}") from last


def fetch_hf(repo_id: str, revision: str, dest: Path, *, endpoint: str | None = None,
             token: str | None = None, allow_patterns: list[str] | None = None,
             timeout: float = NET_TIMEOUT, retries: int = NET_RETRIES) -> Path:
    """Download ``repo_id`` at ``revision`` with huggingface_hub into ``dest`` and return the folder.

    ``endpoint`` points at another hub (a mirror, or the local stand-in the tests run); ``revision``
    should be a commit hash so the download is reproducible. ``dest`` is emptied first: given a
    non-empty ``local_dir``, huggingface_hub returns it with only a warning when the repo cannot be
    reached, and caches its file listing there by commit alone — a typo'd repo id would silently
    yield the previous download. Every request gets ``timeout`` s to answer; ``retries`` attempts.
    """
    patterns = allow_patterns or ["*.json", "*.safetensors", "*.model", "*.txt", "*.gguf"]
    return hf_snapshot(repo_id, revision, dest, endpoint=endpoint, token=token, allow_patterns=patterns,
                       timeout=timeout, retries=retries)
