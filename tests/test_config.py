"""Configuration: defaults, environment overrides, one clear line for a bad value."""
import pytest

from jarvis.config import HF_ROUTER_URL, load_config
from jarvis.errors import ConfigError


def write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_shipped_config_loads_with_defaults():
    cfg = load_config(env={})
    assert cfg.inference.mode == "local" and cfg.llm.max_retries == 3


def test_environment_overrides(tmp_path):
    catalog = tmp_path / "cat.jsonl"
    env = {"OPENAI_API_KEY": "sk-x", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "JARVIS_LLM_MODEL": "m",
           "JARVIS_INFERENCE_MODE": "hybrid", "JARVIS_CATALOG": str(catalog), "HF_TOKEN": "hf_x",
           "JARVIS_REMOTE_BASE_URL": "http://127.0.0.1:8/"}
    cfg = load_config(env=env)
    assert (cfg.llm.base_url, cfg.llm.model, cfg.inference.mode, cfg.catalog.path, cfg.remote.base_url) == \
        ("http://127.0.0.1:9/v1", "m", "hybrid", str(catalog), "http://127.0.0.1:8/")
    assert cfg.llm_endpoint() == ("http://127.0.0.1:9/v1", "sk-x", "m")
    assert "sk-x" not in repr(cfg) and "hf_x" not in repr(cfg)


def test_jarvis_config_names_the_file(tmp_path):
    path = write(tmp_path, "inference:\n  top_k: 2\n")
    assert load_config(env={"JARVIS_CONFIG": str(path)}).inference.top_k == 2
    with pytest.raises(ConfigError, match="not found"):
        load_config(env={"JARVIS_CONFIG": str(tmp_path / "nope.yaml")})


def test_hf_token_alone_uses_the_router():
    base, key, model = load_config(env={"HF_TOKEN": "hf_abc"}).llm_endpoint()
    assert base == HF_ROUTER_URL and key == "hf_abc" and "/" in model


def test_openai_key_never_goes_to_the_hf_router_and_hf_token_never_to_others():
    cfg = load_config(env={"HF_TOKEN": "hf_abc", "OPENAI_BASE_URL": "http://127.0.0.1:1/v1"})
    assert cfg.llm_endpoint()[1] == ""  # a custom endpoint does not get the HF token


@pytest.mark.parametrize("text, key", [
    ("inference:\n  mode: cloud\n", "inference.mode"),
    ("inference:\n  top_k: many\n", "inference.top_k"),
    ("inference:\n  top_k: 0\n", "inference.top_k"),
    ("llm:\n  base_url: localhost:8000\n", "llm.base_url"),
    ("llm:\n  timeout: -1\n", "llm.timeout"),
    ("llm:\n  colour: red\n", "llm.colour"),
    ("banana: 1\n", "banana"),
    ("llm: [1, 2]\n", "llm"),
    ("llm:\n  model: [a]\n", "llm.model"),
    ("inference: {mode: local\n", "YAML"),
])
def test_bad_config_names_the_key(tmp_path, text, key):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text), env={})
    message = str(err.value)
    assert key in message and "\n" not in message


def test_bad_environment_value_is_named():
    with pytest.raises(ConfigError, match="inference.mode"):
        load_config(env={"JARVIS_INFERENCE_MODE": "gpu"})
