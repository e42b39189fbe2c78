"""The one credential policy (jarvis.credentials), and both front ends keeping it: the server's keys
never go to an endpoint a caller names; an HF token goes only to Hugging Face's router."""
import pytest

from jarvis.config import Config, Credentials
from jarvis.credentials import endpoint_key, is_hf_router, names_other_endpoint
from jarvis.errors import ApiError
from jarvis.frontends.http.auth import request_config
from jarvis.frontends.web.credentials import resolve

ROUTER = "https://router.huggingface.co/v1"
SERVER_URL = "https://llm.example.org/v1"
OTHER_URL = "https://elsewhere.example/v1"


def server_config() -> Config:
    cfg = Config().with_overrides(llm={"base_url": SERVER_URL})
    cfg.credentials = Credentials(openai_api_key="sk-server", hf_token="hf_server")
    return cfg


def test_which_key_may_go_where():
    assert is_hf_router(ROUTER) and is_hf_router("https://api-inference.huggingface.co/") and not is_hf_router(OTHER_URL)
    assert endpoint_key(ROUTER, "sk-x", "hf_x") == "hf_x" and endpoint_key(ROUTER, "sk-x", "") == "sk-x"
    assert endpoint_key(OTHER_URL, "sk-x", "hf_x") == "sk-x" and endpoint_key(OTHER_URL, "", "hf_x") == ""
    assert names_other_endpoint(OTHER_URL, SERVER_URL) and not names_other_endpoint(SERVER_URL + "/", SERVER_URL)
    assert not names_other_endpoint("", SERVER_URL)


def test_config_sends_the_hf_token_only_to_the_router():
    cfg = Config().with_overrides(llm={"base_url": OTHER_URL})
    cfg.credentials = Credentials(openai_api_key="", hf_token="hf_only")
    assert cfg.llm_endpoint()[1] == ""
    cfg = cfg.with_overrides(llm={"base_url": ROUTER})
    assert cfg.llm_endpoint()[1] == "hf_only"


@pytest.mark.parametrize("url", ["", SERVER_URL])
def test_server_endpoint_keeps_the_server_keys_in_both_front_ends(url):
    cfg = server_config()
    web = resolve(cfg, "", "", url, "", "local", None)
    assert web.config.credentials.openai_api_key == "sk-server" and web.openai_from == "environment"
    assert request_config(cfg, base_url=url) is cfg


def test_other_endpoint_never_gets_the_server_keys_in_both_front_ends():
    cfg = server_config()
    web = resolve(cfg, "", "", OTHER_URL, "", "local", None)
    assert web.config.llm_endpoint()[:2] == (OTHER_URL, "")
    with pytest.raises(ApiError, match="must bring its own key") as refused:
        request_config(cfg, base_url=OTHER_URL, hf_token="hf_caller")   # an HF token is no key for it
    assert refused.value.status == 400 and refused.value.code == "missing_upstream_key"
    own = request_config(cfg, base_url=OTHER_URL, api_key="sk-caller")
    assert own.llm_endpoint()[:2] == (OTHER_URL, "sk-caller") and own.credentials.hf_token == ""
