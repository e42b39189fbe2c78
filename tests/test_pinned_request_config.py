"""The Config one HTTP API request runs with (jarvis.frontends.http.auth.request_config), pinned
case by case: a caller's own key alone keeps the server's endpoint and model but never mixes in the
server's keys; a caller naming another endpoint must bring the key for it (and is told which
header); `allow_private` decides whether that endpoint is vetted as public-only. The Config is the
real one (load_config / with_overrides), nothing is patched."""
from __future__ import annotations

import time

import pytest

from jarvis.config import Config, Credentials
from jarvis.errors import ApiError
from jarvis.frontends.http.auth import check_endpoint, endpoint_refusal, request_config

SERVER_URL = "https://llm.example.org/v1"
ROUTER = "https://router.huggingface.co/v1"
OTHER_URL = "https://elsewhere.example/v1"


def server_config(public: bool = False) -> Config:
    cfg = Config().with_overrides(llm={"base_url": SERVER_URL, "model": "server-model"}, server={"public": public})
    cfg.credentials = Credentials(openai_api_key="sk-server", hf_token="hf_server", server_hf_token=True)
    return cfg


def test_nothing_of_the_callers_own_keeps_the_servers_config_and_ignores_a_model_name():
    cfg = server_config()
    assert request_config(cfg) is cfg
    assert request_config(cfg, model="caller-model") is cfg
    assert request_config(cfg, base_url=f" {SERVER_URL}/ ", model="caller-model") is cfg


def test_a_callers_openai_key_alone_keeps_the_servers_endpoint_and_model_without_its_keys():
    own = request_config(server_config(), api_key=" sk-caller ")
    assert own.llm_endpoint() == (SERVER_URL, "sk-caller", "server-model")
    creds = own.credentials
    assert (creds.openai_api_key, creds.hf_token, creds.caller_endpoint, creds.server_hf_token) == (
        "sk-caller", "", False, False)
    assert own.server.public is False


def test_a_callers_hf_token_alone_replaces_every_server_key():
    own = request_config(server_config(), hf_token="hf_caller")
    creds = own.credentials
    assert (creds.openai_api_key, creds.hf_token, creds.caller_endpoint, creds.server_hf_token) == (
        "", "hf_caller", False, False)
    assert own.llm.base_url == SERVER_URL and own.llm.model == "server-model"


def test_a_callers_key_may_pick_the_model_on_the_servers_endpoint():
    own = request_config(server_config(), api_key="sk-caller", model=" caller-model ")
    assert own.llm_endpoint() == (SERVER_URL, "sk-caller", "caller-model")
    same = request_config(server_config(), api_key="sk-caller", base_url=SERVER_URL + "/", model="m2")
    assert same.llm.base_url == SERVER_URL and same.llm.model == "m2"
    assert same.credentials.caller_endpoint is False     # the server's endpoint is not the caller's


def test_another_endpoint_with_its_key_runs_there_with_the_callers_model():
    own = request_config(server_config(), api_key="sk-caller", base_url=OTHER_URL, model="their-model")
    assert own.llm_endpoint() == (OTHER_URL, "sk-caller", "their-model")
    assert own.llm.api_type == "openai"
    assert own.credentials.caller_endpoint is True and own.credentials.hf_token == ""


def test_the_router_named_by_a_caller_takes_their_hf_token_as_its_key():
    own = request_config(server_config(), hf_token="hf_caller", base_url=ROUTER)
    assert own.llm_endpoint()[:2] == (ROUTER, "hf_caller")
    assert own.credentials.caller_endpoint is True and own.credentials.server_hf_token is False


@pytest.mark.parametrize("url, given, header", [
    (OTHER_URL, {"hf_token": "hf_caller"}, "in X-OpenAI-Api-Key;"),
    (OTHER_URL, {}, "in X-OpenAI-Api-Key;"),
    (ROUTER, {}, "in X-HF-Token (or X-OpenAI-Api-Key);"),
])
def test_another_endpoint_without_its_key_is_refused_naming_the_header_to_send(url, given, header):
    with pytest.raises(ApiError) as refused:
        request_config(server_config(), base_url=url, **given)
    assert refused.value.status == 400 and refused.value.code == "missing_upstream_key"
    assert header in str(refused.value), str(refused.value)


def test_a_non_http_endpoint_is_refused_with_400_without_its_password():
    long_path = "x" * 200
    for url in ("ftp://user:hunter2@files.example/v1", f"gopher://host/{long_path}"):
        with pytest.raises(ApiError) as refused:
            request_config(server_config(), api_key="sk-caller", base_url=url)
        assert refused.value.status == 400
        message = str(refused.value)
        assert "X-LLM-Base-URL must be an http(s) URL" in message and "hunter2" not in message
    assert f"got {('gopher://host/' + long_path)[:80]!r}" in message
    with pytest.raises(ApiError, match=r"got 'ftp://files\.example/v1'"):
        request_config(server_config(), api_key="sk-caller", base_url="ftp://user:hunter2@files.example/v1")


@pytest.mark.parametrize("deployment_public, allow_private, vetted_public", [
    (False, None, False), (True, None, True), (True, True, False), (False, False, True),
])
def test_allow_private_decides_whether_a_named_endpoint_is_vetted_as_public_only(
        deployment_public, allow_private, vetted_public):
    own = request_config(server_config(public=deployment_public), api_key="sk-caller", base_url=OTHER_URL,
                         allow_private=allow_private)
    assert own.server.public is vetted_public
    # without an endpoint of its own, a request keeps the deployment's setting whatever allow_private says
    kept = request_config(server_config(public=deployment_public), api_key="sk-caller", allow_private=allow_private)
    assert kept.server.public is deployment_public


def resolver_for(table: dict[str, list[str]]):
    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError(f"no such host {host}")
        return table[host]
    return resolve


def test_why_a_named_endpoint_is_refused_on_a_public_server():
    public = resolver_for({"llm.example": ["93.184.215.14"], "inside.example": ["93.184.215.14", "10.0.0.5"]})
    assert endpoint_refusal("https://llm.example/v1", resolver=public) is None
    assert endpoint_refusal(" http://10.0.0.5:8000/v1 ", resolver=public) == (
        "10.0.0.5 is a private address; this server contacts only public internet addresses for a URL a caller "
        "chooses")
    assert endpoint_refusal("https://inside.example/v1", resolver=public).startswith(
        "inside.example resolves to 10.0.0.5, a private address;")
    assert endpoint_refusal("https://gone.example/v1", resolver=public) == (
        "it cannot be used (could not find the host 'gone.example' (DNS lookup failed: no such host gone.example))")


def test_a_public_server_refuses_a_private_endpoint_with_400_before_any_call():
    cfg = request_config(server_config(public=True), api_key="sk-caller", base_url="http://10.0.0.5/v1")
    with pytest.raises(ApiError) as refused:
        check_endpoint(cfg)
    assert refused.value.status == 400 and refused.value.code == "endpoint_refused"
    assert str(refused.value).startswith("refused LLM endpoint 'http://10.0.0.5/v1': 10.0.0.5 is a private address")
    check_endpoint(request_config(server_config(public=False), api_key="sk-caller", base_url="http://10.0.0.5/v1"))
    check_endpoint(request_config(server_config(public=True), api_key="sk-caller"))   # the server's own endpoint


def test_a_slow_but_finishing_lookup_of_a_named_endpoint_is_waited_for():
    def slow(host: str, port: int) -> list[str]:
        time.sleep(0.3)
        return ["93.184.215.14"]
    assert endpoint_refusal("https://llm.example/v1", resolver=slow) is None
