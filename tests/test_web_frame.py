"""What every response of `simsa web` shares, on a real server: health probe, security headers, the structured
access log, the language choice, open-redirect refusal, and simsa's own bugs answered without leaking details."""

from __future__ import annotations

import json
import logging

import pytest

from web_support import LiveSite, csrf_of


def test_healthz_reports_the_store(sqlite_site: LiveSite) -> None:
    with sqlite_site.client() as client:
        response = client.get("/healthz")
    assert response.status_code == 200 and response.json()["ok"] is True


def test_security_headers_on_pages_and_api(sqlite_site: LiveSite) -> None:
    with sqlite_site.client() as client:
        for path in ("/", "/login", "/api/v1/programs", "/audit"):
            headers = client.get(path).headers
            assert "script-src 'self'" in headers["content-security-policy"], path
            assert "frame-ancestors 'none'" in headers["content-security-policy"], path
            assert headers["x-content-type-options"] == "nosniff"
            assert headers["x-frame-options"] == "DENY"
            assert headers["referrer-policy"] == "same-origin"
            assert len(headers["x-request-id"]) == 16
            assert "server" not in headers or "uvicorn" not in headers["server"].lower()


def test_access_log_is_one_json_line_per_request(sqlite_url: str, caplog: pytest.LogCaptureFixture) -> None:
    site = LiveSite(sqlite_url, settings_changes={"access_log": True}).start()
    try:
        site.account("chair", "admin")
        with caplog.at_level(logging.INFO, logger="simsa.web.access"):
            client = site.signed_in("chair")
            client.get("/audit?page=1")
            client.close()
    finally:
        site.stop()
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "simsa.web.access"]
    audit = next(line for line in lines if line["path"] == "/audit")
    assert audit["method"] == "GET" and audit["status"] == 200 and audit["account"] == "chair"
    assert audit["client"] == "127.0.0.1" and audit["ms"] >= 0 and len(audit["id"]) == 16
    login = next(line for line in lines if line["path"] == "/login" and line["method"] == "POST")
    assert login["status"] == 303
    assert all("password" not in json.dumps(line) for line in lines)


def test_language_choice_is_remembered(sqlite_site: LiveSite) -> None:
    with sqlite_site.client() as client:
        first = client.get("/", params={"lang": "en"})
        assert '<html lang="en">' in first.text and first.cookies.get("simsa_lang") == "en"
        assert '<html lang="ko">' in client.get("/", params={"lang": "ko"}).text
        assert '<html lang="ko">' in client.get("/").text  # remembered
    with sqlite_site.client() as fresh:  # no choice yet: the browser's language, else the site's default (Korean)
        assert '<html lang="en">' in fresh.get("/", headers={"Accept-Language": "en-GB,en;q=0.8"}).text
        assert '<html lang="ko">' in fresh.get("/", headers={"Accept-Language": "fr"}).text


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:x"])
def test_sign_in_never_redirects_off_site(sqlite_site: LiveSite, target: str) -> None:
    sqlite_site.account("chair", "admin")
    with sqlite_site.client() as client:
        token = csrf_of(client.get("/login").text)
        response = client.post("/login", data={"username": "chair", "password": "correct horse battery staple",
                                               "csrf_token": token, "next": target})
    assert response.status_code == 303 and response.headers["location"] == "/"


def test_an_internal_error_is_a_page_or_json_naming_only_the_request(sqlite_site: LiveSite,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    app = sqlite_site.app
    assert app is not None

    def broken() -> None:
        raise RuntimeError("secret detail from deep inside")

    app.add_api_route("/broken", broken)
    app.add_api_route("/api/v1/broken", broken)
    with caplog.at_level(logging.ERROR, logger="simsa.web"), sqlite_site.client() as client:
        page = client.get("/broken", params={"lang": "en"})
        api = client.get("/api/v1/broken")
    assert page.status_code == 500 and "internal error (request" in page.text and "<h1>" in page.text
    assert "secret detail" not in page.text
    assert api.status_code == 500 and api.json()["exit_code"] == 70 and "secret detail" not in api.text
    assert any("secret detail" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


def test_api_reference_page_lists_every_operation_without_scripts(sqlite_site: LiveSite) -> None:
    with sqlite_site.client() as client:
        page = client.get("/api/docs", params={"lang": "en"})
        schema = client.get("/api/v1/openapi.json").json()
    assert page.status_code == 200 and "<script" not in page.text
    for path, item in schema["paths"].items():
        for method in item:
            assert f"<code>{method.upper()} {path}</code>" in page.text


def test_more_requests_than_threads_all_complete(sqlite_url: str) -> None:
    """A request may hold two connections (who is asking, then what it reads): the pool must hold two for every
    thread, or requests waiting for a second connection hold every first one and nothing moves (200 concurrent
    readers once stalled the server for the pool's 30 s timeout)."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    site = LiveSite(sqlite_url, settings_changes={"threads": 4}).start()
    try:
        assert site.app is not None and site.store is not None
        settings = site.app.state.settings
        pool = site.store.engine.pool
        assert pool.size() + pool._max_overflow >= 2 * settings.threads  # type: ignore[attr-defined]
        site.account("chair", "admin")
        token = site.api_token("chair")

        def one(i: int) -> int:
            headers = {"Authorization": f"Bearer {token}"} if i % 2 else {}
            with httpx.Client(base_url=site.url, timeout=20) as client:
                return client.get("/audit" if i % 3 else "/api/v1/me", headers=headers).status_code

        with ThreadPoolExecutor(max_workers=40) as workers:
            codes = list(workers.map(one, range(120)))
    finally:
        site.stop()
    assert set(codes) <= {200, 401} and codes.count(200) >= 80, codes


def test_concurrent_verifications_share_one_run_and_whole_log_reads_are_bounded() -> None:
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from simsa.web import heavy

    runs = []
    gate = heavy.Coalesced()

    def verify() -> int:
        runs.append(1)
        time.sleep(0.2)
        return len(runs)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: gate.run(verify), range(8)))
    assert len(runs) <= 2 and set(results) <= {1, 2}  # 8 requests, at most two runs (one began before the rest)
    assert gate.run(verify) == len(runs)  # a later request runs again: nothing is cached past its waiters

    inside = 0
    most = 0
    lock = threading.Lock()

    def read() -> None:
        nonlocal inside, most
        with lock:
            inside += 1
            most = max(most, inside)
        time.sleep(0.05)
        with lock:
            inside -= 1

    with ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(lambda _: heavy.whole_log(read), range(20)))
    assert most == heavy.WHOLE_LOG_READS
