"""GET /metrics as Prometheus scrapes it: the documented series after real traffic, no id, name,
token or value in any label, an optional bearer token, a listener of its own, and one coherent
view of a server with two workers."""

from __future__ import annotations

import os
import re
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import Api, Machine, Server, free_port, init_and_unseal

NAMES = ("metrics-vault-name", "metrics-project-name", "metrics-secret-name", "metrics-machine-name")
DOCS = Path(__file__).resolve().parents[2] / "docs" / "operator" / "observability.md"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(found: dict[Any, float], name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in found.items() if n == name and set(labels.items()) <= set(ls))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("metrics")
    server = Server(f"sqlite:///{base / 'a.db'}", base / "data").start()
    try:
        sealed = httpx.get(f"{server.url}/metrics", timeout=10)
        _, token = init_and_unseal(server.url)
        root = Api(server.url, token)
        vault = root.ok("POST", "/api/vaults", {"name": NAMES[0]})["id"]
        project = root.ok("POST", f"/api/vaults/{vault}/projects", {"name": NAMES[1]})["id"]
        secret = root.ok("POST", f"/api/projects/{project}/secrets", {"name": NAMES[2], "value": "v4lue"})[
            "id"
        ]
        enroll = root.ok(
            "POST", f"/api/vaults/{vault}/enrollment-tokens", {"projectIds": [project], "secretIds": [secret]}
        )["token"]
        machine = Machine.enroll(server, vault, enroll, name=NAMES[3])
        for _ in range(5):
            assert machine.request("GET", f"/v1/secret/{secret}").status_code == 200
        refused = machine.request("GET", "/v1/secret/sk_0000000000000000")
        assert refused.status_code == 404
        scrape = httpx.get(f"{server.url}/metrics", timeout=10)
        yield {
            "server": server,
            "sealed": sealed,
            "scrape": scrape,
            "secrets": (token, enroll, vault, project, secret, machine.id, "v4lue", *NAMES),
        }
    finally:
        server.stop()


def test_metrics_are_served_while_sealed(world: dict[str, Any]) -> None:
    assert world["sealed"].status_code == 200
    assert value(samples(world["sealed"].text), "sikker_sealed") == 1


def test_the_documented_series_are_there_after_traffic(world: dict[str, Any]) -> None:
    scrape = world["scrape"]
    assert scrape.status_code == 200 and scrape.headers["content-type"].startswith("text/plain")
    found = samples(scrape.text)
    assert value(found, "sikker_sealed") == 0 and value(found, "sikker_store_up") == 1
    assert (
        value(found, "sikker_http_requests_total", route="/api/vaults", method="POST", status_class="2xx")
        == 1
    )
    assert value(found, "sikker_http_request_duration_seconds_count", route="/v1/secret/{secret}") == 6
    assert value(found, "sikker_signed_reads_total", result="served") == 5
    assert value(found, "sikker_signed_reads_total", result="refused", reason="not_found") == 1
    assert value(found, "sikker_read_commit_batch_size_count") >= 1
    assert value(found, "sikker_audit_write_seconds_count") >= 5
    assert value(found, "sikker_read_plan_cache_total", result="hit") >= 1
    assert value(found, "sikker_read_plan_cache_total", result="miss") >= 1
    assert value(found, "sikker_rotations_overdue") == 0
    assert value(found, "sikker_audit_stream_backlog_records") == 0
    assert ("sikker_db_connections_in_use", ()) in found
    documented = DOCS.read_text()
    for family in text_string_to_metric_families(scrape.text):
        if family.name.startswith("sikker_"):
            assert f"`{family.name}" in documented, family.name


def test_no_id_name_token_or_value_appears_in_the_output(world: dict[str, Any]) -> None:
    text = world["scrape"].text
    for secret in world["secrets"]:
        assert secret not in text, secret
    routes = set(re.findall(r'route="([^"]*)"', text))
    assert routes and all(r == "unmatched" or "{" in r or not re.search(r"_[a-z0-9]{16}", r) for r in routes)


def test_a_metrics_token_is_required_when_configured(tmp_path: Path) -> None:
    token_file = tmp_path / "metrics.token"
    token_file.write_text("scrape-me\n")
    server = Server(
        f"sqlite:///{tmp_path / 'a.db'}", tmp_path / "data", extra=["--metrics-token-file", str(token_file)]
    ).start()
    try:
        assert httpx.get(f"{server.url}/metrics", timeout=10).status_code == 401
        bad = {"Authorization": "Bearer nope"}
        assert httpx.get(f"{server.url}/metrics", headers=bad, timeout=10).status_code == 401
        good = {"Authorization": "Bearer scrape-me"}
        assert httpx.get(f"{server.url}/metrics", headers=good, timeout=10).status_code == 200
    finally:
        server.stop()
    assert "scrape-me" not in server.output()


def test_metrics_on_a_listener_of_their_own_or_off(tmp_path: Path) -> None:
    port = free_port()
    server = Server(
        f"sqlite:///{tmp_path / 'a.db'}",
        tmp_path / "data",
        env={"SIKKER_METRICS_LISTEN": f"127.0.0.1:{port}"},
    ).start()
    try:
        assert httpx.get(f"{server.url}/metrics", timeout=10).status_code == 503  # not here: sealed
        separate = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert separate.status_code == 200 and "sikker_http_requests_total" in separate.text
    finally:
        server.stop()
    off = Server(f"sqlite:///{tmp_path / 'b.db'}", tmp_path / "data-b", extra=["--no-metrics"]).start()
    try:
        assert httpx.get(f"{off.url}/metrics", timeout=10).status_code == 503  # the seal gate's answer
    finally:
        off.stop()


def test_two_workers_expose_one_view(tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    server = Server(
        "",
        tmp_path / "data",
        extra=["--dev", "--dev-root-token", "root", "--workers", "2"],
        env={"TMPDIR": str(tmp)},
    )
    server.start()
    try:
        deadline = time.monotonic() + 30
        while httpx.get(f"{server.url}/api/sys/status", timeout=5).json().get("sealed") is not False:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        (shared,) = [p for p in tmp.iterdir() if p.name.startswith("sikker-metrics-")]
        assert stat.S_IMODE(shared.stat().st_mode) == 0o700
        for _ in range(30):  # new connections: both workers answer some
            assert (
                httpx.get(f"{server.url}/api/vaults", headers={"Authorization": "Bearer root"}).status_code
                == 200
            )
        counts = set()
        for _ in range(6):
            found = samples(httpx.get(f"{server.url}/metrics", timeout=10).text)
            counts.add(value(found, "sikker_http_requests_total", route="/api/vaults", method="GET"))
        assert counts == {30}, counts  # whichever worker answers, it reports both
    finally:
        server.stop()
    assert not any(p.name.startswith("sikker-metrics-") for p in tmp.iterdir())
    assert os.environ.get("PROMETHEUS_MULTIPROC_DIR") is None
