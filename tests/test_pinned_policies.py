"""The credential policy and the HTTP API's token checks, value by value: where each key may go,
which URLs are the same endpoint, which Authorization headers name which caller."""
from __future__ import annotations

import pytest

from jarvis.config import Config
from jarvis.credentials import Endpoint, endpoint_key, endpoint_of, is_hf_router, names_other_endpoint
from jarvis.errors import ApiError
from jarvis.frontends.http.auth import access_tokens, authorize, match_token

ROUTER = "https://router.huggingface.co/v1"


@pytest.mark.parametrize("url, endpoint", [
    ("https://router.huggingface.co/v1", Endpoint("https", "router.huggingface.co", 443, "/v1")),
    ("  HTTPS://Router.HuggingFace.co./v1/ ", Endpoint("https", "router.huggingface.co", 443, "/v1")),
    ("http://127.0.0.1:8000/v1", Endpoint("http", "127.0.0.1", 8000, "/v1")),
    ("http://localhost", Endpoint("http", "localhost", 80, "")),
    ("https://user:pw@router.huggingface.co/v1", None),
    ("ftp://router.huggingface.co/v1", None),
    ("router.huggingface.co/v1", None),
    ("http://[::1", None),
    ("", None),
])
def test_what_endpoint_a_url_names(url, endpoint):
    assert endpoint_of(url) == endpoint


@pytest.mark.parametrize("url, router", [
    (ROUTER, True), ("https://api-inference.huggingface.co/models/x", True), ("https://router.huggingface.co.", True),
    ("https://router.huggingface.co:443/v1", True), ("https://router.huggingface.co:8443/v1", False),
    ("http://router.huggingface.co/v1", False), ("https://router.huggingface.co.evil.example/v1", False),
    ("https://router.huggingface.co@evil.example/v1", False), ("https://evil.example/router.huggingface.co", False),
    ("https://huggingface.co/v1", False),
])
def test_only_the_real_router_is_the_router(url, router):
    assert is_hf_router(url) is router
    assert endpoint_key(url, "sk-openai", "hf_token") == ("hf_token" if router else "sk-openai")
    assert endpoint_key(url, "sk-openai", "") == "sk-openai"
    assert endpoint_key(url, "", "hf_token") == ("hf_token" if router else "")


@pytest.mark.parametrize("requested, other", [
    ("", False), ("   ", False), ("https://llm.example.org/v1", False), ("https://LLM.example.org/v1/", False),
    ("https://llm.example.org:443/v1", False), ("https://llm.example.org/v2", True),
    ("http://llm.example.org/v1", True), ("https://llm.example.org:8443/v1", True),
    ("https://x:y@llm.example.org/v1", True), ("not a url", True), ("https://llm.example.org.evil/v1", True),
])
def test_which_urls_name_another_endpoint_than_the_servers(requested, other):
    assert names_other_endpoint(requested, "https://llm.example.org/v1") is other


def test_access_tokens_are_read_from_a_comma_separated_setting():
    cfg = Config().with_overrides(server={"access_token": " tok-a , ,tok-b,"})
    assert access_tokens(cfg) == ["tok-a", "tok-b"]
    assert access_tokens(Config().with_overrides(server={"access_token": ""})) == []


@pytest.mark.parametrize("header", ["Bearer tok-a", "bearer tok-a", "BEARER  tok-a ", "Bearer tok-a\t"])
def test_a_bearer_header_names_its_token(header):
    assert match_token(header, ["tok-a", "tok-b"]) == match_token("Bearer tok-a", ["tok-b", "tok-a"])
    assert authorize(header, ["tok-a", "tok-b"]) not in ("", authorize("Bearer tok-b", ["tok-a", "tok-b"]))


@pytest.mark.parametrize("header, what", [("", "is missing"), ("Basic tok-a", "is missing"), ("Bearer", "is missing"),
                                          ("Bearer tok-c", "is not valid"), ("Bearer tok-", "is not valid")])
def test_a_refused_caller_is_told_what_to_send(header, what):
    with pytest.raises(ApiError) as refused:
        authorize(header, ["tok-a", "tok-b"])
    err = refused.value
    assert err.status == 401 and err.code == "invalid_api_key" and err.headers == {"WWW-Authenticate": "Bearer"}
    assert str(err).startswith(f"the access token {what}: send 'Authorization: Bearer <token>'")


def test_without_tokens_every_caller_is_the_same_anonymous_owner():
    assert authorize("", []) == "" and authorize("Bearer anything", []) == ""
