"""Reading a model's signals from a Hugging Face hub, keeping every answer's bytes.

The requests are the ones `huggingface_hub.HfApi.model_info(expand=…)` and `HfApi.list_models(filter=…)` make, sent
through huggingface_hub's own HTTP session and headers (user agent, token), but answered to us as bytes: a parsed
`ModelInfo` could not be replayed or hashed. The hub's rate limits are respected: a minimum interval between
requests, and on 429 the `Retry-After` it asks for, within a bounded number of retries and a bounded total wait.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode

import huggingface_hub
from huggingface_hub.errors import OfflineModeIsEnabled
from huggingface_hub.utils import build_hf_headers, get_session

from simsa import __version__
from simsa.ecosystem.snapshot import DERIVATIVE_QUERY, INFO_QUERY, KINDS, ModelError, RawAnswer
from simsa.errors import SimsaError

try:  # huggingface_hub >= 2 ships httpx2; 1.x uses httpx, whose API it mirrors
    import httpx2 as _http
except ImportError:  # pragma: no cover - depends on the installed huggingface_hub
    import httpx as _http  # type: ignore[no-redef]

DEFAULT_ENDPOINT = "https://huggingface.co"
EXPAND = ("downloads", "downloadsAllTime", "likes", "trendingScore", "lastModified", "sha", "cardData")
LIBRARY_VERSION = f"huggingface_hub/{huggingface_hub.__version__} simsa/{__version__}"
_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_REF = re.compile(rf"(?P<repo>{_NAME}/{_NAME})(?:@[A-Za-z0-9._+/-]+)?")


class EcosystemError(SimsaError):
    """The hub could not be read (unreachable, offline mode, a timeout, the rate limit exhausted)."""


class RateLimited(EcosystemError):
    """The hub kept answering 429 beyond the retries or the total wait allowed."""


@dataclass
class Limits:
    """How politely to ask: seconds between requests, 429 retries, the longest total wait, per-request timeout."""

    min_interval: float = 0.2
    max_retries: int = 5
    max_wait: float = 300.0
    timeout: float = 30.0
    page_size: int = 1000
    max_pages: int = 50


def repo_of(ref: str) -> str | None:
    """The hub repo of a model reference `org/name[@revision]` (signals are per repo); None for a local path."""
    match = _REF.fullmatch(ref)
    if match is None or ref.startswith((".", "/")):
        return None
    return match.group("repo")


@dataclass
class HubReader:
    """One polite reader of one endpoint; counts the 429s it waited out and the seconds it waited."""

    endpoint: str = DEFAULT_ENDPOINT
    token: str | None = None
    limits: Limits = field(default_factory=Limits)
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
    rate_limited: int = 0
    waited: float = 0.0
    _last: float | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.endpoint = self.endpoint.rstrip("/")

    def _headers(self) -> dict[str, str]:
        return build_hf_headers(token=self.token, library_name="simsa", library_version=__version__)

    def _pace(self) -> None:
        if self._last is not None:
            gap = self.limits.min_interval - (self.monotonic() - self._last)
            if gap > 0:
                self.sleep(gap)
        self._last = self.monotonic()

    def get(self, url: str, params: list[tuple[str, str]] | None, query: str, what: str) -> tuple[RawAnswer, str]:
        """GET `url`, waiting out 429s; the answer as received and the next page's URL ("" when none)."""
        retries = 0
        target = url + (f"?{urlencode(params)}" if params else "")
        while True:
            self._pace()
            try:
                response = get_session().get(target, headers=self._headers(), timeout=self.limits.timeout,
                                             follow_redirects=True)
            except OfflineModeIsEnabled:
                raise EcosystemError("HF_HUB_OFFLINE is set: hub signals need the network (replay reads the "
                                     "stored answers offline)") from None
            except _http.TimeoutException:
                raise EcosystemError(f"{what}: the hub at {self.endpoint} did not answer within "
                                     f"{self.limits.timeout:g} s") from None
            except _http.TransportError as exc:
                raise EcosystemError(f"{what}: cannot reach the hub at {self.endpoint} ({exc})") from None
            if response.status_code != 429:
                answer = RawAnswer.of(response.content, url=str(response.url), query=query,
                                      fetched_at=self.clock(), status=response.status_code,
                                      library_version=LIBRARY_VERSION)
                return answer, str(response.links.get("next", {}).get("url", ""))
            self.rate_limited += 1
            wait = _retry_after(response.headers.get("retry-after"), retries)
            if retries >= self.limits.max_retries or self.waited + wait > self.limits.max_wait:
                raise RateLimited(f"{what}: the hub at {self.endpoint} is rate limiting (HTTP 429) after "
                                  f"{retries} retries and {self.waited:g} s of waiting; try again later")
            retries += 1
            self.waited += wait
            self.sleep(wait)

    def model_info(self, repo_id: str) -> RawAnswer:
        """`HfApi.model_info(repo_id, expand=EXPAND)`'s request, answered as bytes."""
        url = f"{self.endpoint}/api/models/{repo_id}"
        return self.get(url, [("expand", e) for e in EXPAND], INFO_QUERY, repo_id)[0]

    def derivatives(self, repo_id: str, kind: str) -> list[RawAnswer]:
        """Every page of `HfApi.list_models(filter=f"base_model:{kind}:{repo_id}")`, followed by the Link header."""
        query = f"{DERIVATIVE_QUERY}{kind}"
        url: str = f"{self.endpoint}/api/models"
        params: list[tuple[str, str]] | None = [("filter", f"base_model:{kind}:{repo_id}"),
                                                ("limit", str(self.limits.page_size))]
        pages: list[RawAnswer] = []
        while url:
            if len(pages) >= self.limits.max_pages:
                raise EcosystemError(f"{repo_id}: more than {self.limits.max_pages} pages of {kind} derivatives")
            answer, url = self.get(url, params, f"{query}#{len(pages) + 1}", repo_id)
            pages.append(answer)
            params = None  # the next page's URL carries its own query
            if answer.status != 200:
                break
        return pages

    def read_model(self, team: str, ref: str) -> list[RawAnswer] | ModelError:
        """All the answers for one model reference, or why it could not be read (this model only)."""
        repo_id = repo_of(ref)
        if repo_id is None:
            return ModelError(team, ref, f"{ref}: not a hub reference org/name[@revision]; a local model has no "
                                         "hub signals", transport=True)
        answers: list[RawAnswer] = []
        try:
            info = self.model_info(repo_id)
            answers.append(info)
            if info.status == 200:
                for kind in KINDS:
                    pages = self.derivatives(repo_id, kind)
                    answers += pages
                    if pages[-1].status != 200:
                        break
        except RateLimited:
            raise
        except EcosystemError as exc:
            return ModelError(team, repo_id, str(exc), tuple(answers), transport=True)
        return answers


def _retry_after(value: str | None, retries: int) -> float:
    """Seconds the hub asks us to wait (delay-seconds form); 2^n seconds when it does not say."""
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        seconds = None
    if seconds is None or seconds < 0:
        seconds = float(2**retries)
    return seconds
