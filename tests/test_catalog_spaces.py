"""`catalog refresh --spaces` (issue 14): the real HfApi searches a loopback stand-in for the Hub's
Space API (/api/spaces with the listing's fields, /api/spaces/{id} with the Space's host), and the
real gradio_client reads each Space's API from the loopback Gradio app. The CLI runs in a child
process: this test session is offline, the child talks to the loopbacks."""
from __future__ import annotations

import datetime
import json
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from jarvis.catalog.entries import Catalog
from tests.fakes.gradio_space import LoopbackSpace
from tests.fakes.loopback import HandlerThread
from tests.test_catalog_refresh import run_refresh

pytestmark = pytest.mark.timeout(180)
ROOT = Path(__file__).resolve().parent.parent
RUNNING = {"stage": "RUNNING", "hardware": {"current": "zero-a10g", "requested": "zero-a10g"}, "storage": None,
           "gcTimeout": 172800, "replicas": {"current": 1, "requested": 1}, "devMode": False,
           "domains": [{"domain": "x.hf.space", "stage": "READY"}]}


def space_item(space_id: str, likes: int, sdk: str = "gradio", runtime: dict | None = None) -> dict:
    """One /api/spaces listing item with the expanded fields, as the Hub sends them."""
    return {"_id": f"{abs(hash(space_id)):024x}"[:24], "id": space_id, "likes": likes, "sdk": sdk,
            "tags": [sdk, "mcp-server", "region:us"], "runtime": runtime or RUNNING, "disabled": False,
            "cardData": {"title": space_id.split("/")[1], "emoji": "🗣️", "sdk": sdk, "sdk_version": "5.49.1",
                         "app_file": "app.py", "pinned": False, "short_description": f"{space_id} on ZeroGPU",
                         "tags": ["mcp-server"]}}


class SpaceHub(BaseHTTPRequestHandler):
    """GET /api/models?limit=1 (reachability), GET /api/spaces (search), GET /api/spaces/{owner}/{name}."""
    listing: dict[str, list[dict]] = {}
    hosts: dict[str, str] = {}
    requests: list[dict] = []

    def log_message(self, *args):
        pass

    def _json(self, status: int, data) -> None:
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urlparse(self.path)
        query = parse_qs(url.query)
        parts = url.path.strip("/").split("/")
        if url.path == "/api/models":
            return self._json(200, [])
        if url.path == "/api/spaces":
            SpaceHub.requests.append(query)
            found = [i for i in SpaceHub.listing.get(query.get("search", [""])[0], [])
                     if set(query.get("filter", [])) <= set(i["tags"])]
            found.sort(key=lambda i: -i["likes"])
            return self._json(200, found[:int(query.get("limit", ["1000"])[0])])
        if len(parts) == 4 and parts[:2] == ["api", "spaces"]:
            space_id = "/".join(parts[2:])
            if space_id not in SpaceHub.hosts:
                return self._json(404, {"error": "Repository not found"})
            return self._json(200, {"_id": "0" * 24, "id": space_id, "author": parts[2], "sdk": "gradio",
                                    "subdomain": space_id.replace("/", "-").lower(), "host": SpaceHub.hosts[space_id],
                                    "runtime": RUNNING, "private": False, "likes": 1, "tags": ["mcp-server"]})
        return self._json(404, {"error": "Not found"})


@pytest.fixture(scope="module")
def hub_and_space():
    with LoopbackSpace() as space, HandlerThread(SpaceHub) as server:
        yield server.url, space


@pytest.mark.slow
def test_refresh_spaces_finds_mcp_spaces_whose_api_serves_the_task(hub_and_space, tmp_path):
    hub, space = hub_and_space
    SpaceHub.listing = {"tts": [space_item("alice/speaker", 900), space_item("bob/streamlit-tts", 950, sdk="streamlit"),
                                space_item("carol/paused-tts", 990, runtime={"stage": "PAUSED", "hardware": {}}),
                                space_item("dan/gone-tts", 800)],
                        "depth": [space_item("erin/depth-anything", 500)],
                        "caption": [space_item("fay/describer", 300)]}
    # alice's and erin's and fay's app is the loopback Space; dan's host is down
    SpaceHub.hosts = {"alice/speaker": space.url, "erin/depth-anything": space.url, "fay/describer": space.url,
                      "dan/gone-tts": "http://127.0.0.1:9/"}
    output = tmp_path / "catalog.jsonl"
    shipped = (ROOT / "jarvis/catalog/data/catalog.jsonl").read_text()
    output.write_text(shipped)
    SpaceHub.requests.clear()
    result = run_refresh(hub, tmp_path, "--output", str(output), "--spaces", "--per-task", "2",
                         "--task", "text-to-speech", "--task", "depth-estimation", "--task", "tabular-classification")
    assert result.returncode == 0, result.stderr
    assert "added or updated 2 Gradio Spaces" in result.stdout
    assert "dan/gone-tts: could not read its API" in result.stdout
    asked = SpaceHub.requests[0]
    assert asked["filter"] == ["mcp-server"] and asked["sort"] == ["likes"] and asked["search"] == ["tts"]
    assert {"runtime", "sdk", "likes"} <= set(asked["expand"])
    today = datetime.date.today().isoformat()
    added = {(m.task, m.id): m for m in Catalog.load(output) if m.space in ("alice/speaker", "erin/depth-anything")}
    speaker, depth = added[("text-to-speech", "spaces/alice/speaker")], added[("depth-estimation",
                                                                                "spaces/erin/depth-anything")]
    # view_api decided the endpoint: the first that takes the task's inputs and returns its output
    assert (speaker.api_name, depth.api_name) == ("/speak", "/depth")
    assert speaker.providers == [] and speaker.providers_known and speaker.providers_checked == today
    assert "zerogpu" in speaker.tags and "mcp-server" in speaker.tags and speaker.likes == 900
    assert not [m for m in Catalog.load(output) if m.space and "streamlit" in m.space or m.space == "carol/paused-tts"]
    # every model line of the file is as it was: Spaces only added
    kept = [line for line in output.read_text().splitlines() if '"space"' not in line]
    assert kept == [line for line in shipped.splitlines() if '"space"' not in line]
