"""Configuration: config.yaml (or JARVIS_CONFIG) with environment overrides, validated into
dataclasses. A bad value gets one line naming the key and what is wrong."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from jarvis.credentials import endpoint_key, is_hf_router
from jarvis.errors import ConfigError
from jarvis.outbound import binds_beyond_loopback
from jarvis.runners.options import NEW_TOKENS, RunOptions

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "config.yaml"
HF_ROUTER_URL = "https://router.huggingface.co/v1"
HF_ROUTER_MODEL = "Qwen/Qwen2.5-72B-Instruct"
OPENAI_DEFAULT_MODEL = "gpt-4o-mini"
MODES = ("local", "remote", "hybrid")
LLM_BACKENDS = ("auto", "openai", "local")
LOCAL_BACKENDS = ("inprocess", "ray")


@dataclass
class LLMConfig:
    backend: str = "auto"            # auto | openai | local (the embedded LLM); jarvis.llm.backend.backend_for
    model: str = ""
    base_url: str = ""
    api_type: str = "openai"
    azure_api_version: str = "2024-10-21"
    timeout: float = 60.0            # seconds to a call's first token (connecting and reading the prompt included)
    idle_timeout: float = 30.0       # seconds of silence between two chunks once the answer has started
    total_timeout: float = 900.0     # ceiling on one call, however steadily it streams
    max_retries: int = 3
    temperature: float = 0.0
    max_answer_tokens: int = 800
    plan_tokens: int = 1500          # the plan's max_tokens: where a model that never closes its list stops


@dataclass
class InferenceConfig:
    mode: str = "local"
    top_k: int = 5
    max_tasks: int = 12
    task_timeout: float = 600.0
    max_parallel: int = 4


@dataclass
class LocalConfig:
    device: str = "auto"
    memory_budget_gb: float = 8.0
    # on a CPU, candidates with recorded weights over this many GiB rank after the lighter ones (0: off)
    cpu_prefer_under_gb: float = 2.0
    max_new_tokens: int = NEW_TOKENS["text"]           # the runners' defaults, fed back to them as options
    diffusion_steps: int = RunOptions.diffusion_steps
    threads: int = 0                     # torch's CPU threads (local models, the embedded LLM); 0: physical cores
    # where local models run: "inprocess" (this process) or "ray" (Ray Serve replicas; jarvis.execution.ray)
    backend: str = "inprocess"
    ray_address: str = ""                # "": start a Ray instance on this machine; "auto"; ray://host:port
    ray_replicas: int = 1                # replicas of the model deployment (the least, when autoscaling)
    ray_max_replicas: int = 0            # 0: exactly ray_replicas; more: Serve autoscales up to this many
    ray_cpus_per_replica: float = 1.0
    ray_gpus_per_replica: float = 0.0
    ray_models_per_replica: int = 3      # models one replica keeps loaded (Serve multiplexing's LRU)


@dataclass
class RemoteConfig:
    provider: str = "auto"
    base_url: str = ""
    timeout: float = 120.0
    max_retries: int = 2
    endpoints: dict = field(default_factory=dict)
    availability_ttl: float = 3600.0
    vlm_model: str = "Qwen/Qwen2.5-VL-7B-Instruct"


@dataclass
class CatalogConfig:
    path: str = ""


@dataclass
class FilesConfig:
    max_download_mb: float = 25.0
    fetch_timeout: float = 20.0
    max_image_megapixels: float = 40.0
    # media budgets, checked from a file's header before anything is decoded (content_checks.MediaLimits)
    max_audio_seconds: float = 1800.0
    max_audio_rate_channels: int = 384_000          # sample rate x channels: 192 kHz stereo, 48 kHz x 8
    max_video_seconds: float = 600.0
    max_video_total_megapixels: float = 20_000.0    # frames x width x height, in millions


@dataclass
class SessionConfig:
    ttl_minutes: float = 120.0
    keep_days: float = 30.0   # saved conversations (session.store on) are deleted after this many idle days
    # where the web app saves conversations (jarvis.conversations.location): "auto" = the user's data
    # directory (on a Space, /data when writable), a path to an SQLite file, or "" / "off" = not saved
    store: str = "auto"


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    access_token: str = ""
    max_body_mb: float = 30.0
    max_files: int = 8
    file_ttl: float = 3600.0
    request_timeout: float = 0.0
    cors_origins: str = ""
    public: bool = False     # also set on a Space (SPACE_ID) and when bound beyond loopback
    # who may reach the port, and how much of it one caller gets (docs/security.md)
    allowed_hosts: str = ""          # Host names answered besides loopback, IP addresses, this machine, SPACE_HOST
    trusted_proxies: str = ""        # peers whose X-Forwarded-* headers count ("*": any; the default on a Space)
    max_runs: int = 8                # API requests answered at once, all callers together
    max_runs_per_caller: int = 2     # requests one caller (access token, else client address) runs at once
    max_connections: int = 256       # open connections at once; a quarter of them per client address
    header_timeout: float = 10.0     # seconds a client has to send a request's headers
    body_timeout: float = 300.0      # seconds a client has to send a request's body


@dataclass
class Credentials:
    """Secrets, never read from or written to files by Jarvis itself (repr hides them), and whose
    they are (jarvis.credentials' policy)."""
    openai_api_key: str = field(default="", repr=False)
    hf_token: str = field(default="", repr=False)
    # llm.base_url was named by a caller (a web visitor, an API request), not the operator: the
    # outbound policy vets every connection to it, and none of the server's own keys go there.
    caller_endpoint: bool = False
    # hf_token is the server's own (environment, Space secret): with a caller's endpoint it pays
    # for remote models only, never as the LLM's key.
    server_hf_token: bool = False

    def __repr__(self) -> str:
        return (f"Credentials(openai_api_key={'set' if self.openai_api_key else 'unset'}, "
                f"hf_token={'set' if self.hf_token else 'unset'}, caller_endpoint={self.caller_endpoint})")


@dataclass
class Config:
    llm: LLMConfig = field(default_factory=LLMConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    local: LocalConfig = field(default_factory=LocalConfig)
    remote: RemoteConfig = field(default_factory=RemoteConfig)
    catalog: CatalogConfig = field(default_factory=CatalogConfig)
    files: FilesConfig = field(default_factory=FilesConfig)
    session: SessionConfig = field(default_factory=SessionConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    credentials: Credentials = field(default_factory=Credentials)

    def with_overrides(self, **sections: dict) -> Config:
        """A copy with some keys changed, e.g. with_overrides(llm={"model": "x"}); validated."""
        data = {f.name: dataclasses.asdict(getattr(self, f.name)) for f in dataclasses.fields(self)
                if f.name != "credentials"}
        for section, values in sections.items():
            if section == "credentials":
                continue
            data.setdefault(section, {}).update(values)
        cfg = _build(data, "override")
        cfg.credentials = dataclasses.replace(self.credentials, **sections.get("credentials", {}))
        _validate(cfg, "override")
        return cfg

    def serving_on(self, host: str) -> Config:
        """This config for a server listening on `host`: public (server.public) when other machines
        can reach it, so that caller-chosen URLs may reach public addresses only."""
        return self.with_overrides(server={"public": True}) if binds_beyond_loopback(host) else self

    def llm_endpoint(self) -> tuple[str, str, str]:
        """(base_url, api_key, model) the LLM client should use, after defaults.

        The key goes only with the endpoint it was configured for: an OpenAI key is never sent
        to the HF router, and an HF token is sent only to Hugging Face's router.
        """
        creds = self.credentials
        base, model = self.llm.base_url.strip(), self.llm.model.strip()
        if base:
            hf_token = "" if creds.caller_endpoint and creds.server_hf_token else creds.hf_token
            key = endpoint_key(base, creds.openai_api_key, hf_token)
            return base, key, model or (HF_ROUTER_MODEL if is_hf_router(base) else OPENAI_DEFAULT_MODEL)
        if creds.openai_api_key:
            return "https://api.openai.com/v1", creds.openai_api_key, model or OPENAI_DEFAULT_MODEL
        if creds.hf_token:
            return HF_ROUTER_URL, creds.hf_token, model or HF_ROUTER_MODEL
        return "https://api.openai.com/v1", "", model or OPENAI_DEFAULT_MODEL


def _coerce(value: Any, default: Any, key: str, source: str) -> Any:
    kind = type(default)
    if value is None:
        return default
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{source}: {key}: expected true or false, got {value!r}")
    if kind in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"{source}: {key}: expected a number, got {value!r}")
        try:
            number = kind(value) if kind is float else int(str(value))
        except ValueError:
            wanted = "a whole number" if kind is int else "a number"
            raise ConfigError(f"{source}: {key}: expected {wanted}, got {value!r}") from None
        return number
    if kind is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{source}: {key}: expected text, got {type(value).__name__}")
        return str(value)
    if kind is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {key}: expected a mapping, got {value!r}")
        return dict(value)
    return value


def _build(data: dict, source: str) -> Config:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the file must be a mapping of sections (llm:, inference:, ...)")
    cfg = Config()
    sections = {f.name: f for f in dataclasses.fields(Config) if f.name != "credentials"}
    for name, values in data.items():
        if name not in sections:
            raise ConfigError(f"{source}: {name}: unknown section (known: {', '.join(sections)})")
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: {name}: expected a mapping of keys, got {values!r}")
        section = getattr(cfg, name)
        known = {f.name: f for f in dataclasses.fields(section)}
        for key, value in values.items():
            if key not in known:
                raise ConfigError(f"{source}: {name}.{key}: unknown key (known: {', '.join(known)})")
            setattr(section, key, _coerce(value, getattr(section, key), f"{name}.{key}", source))
    return cfg


def _validate(cfg: Config, source: str) -> None:
    def bad(key: str, what: str) -> None:
        raise ConfigError(f"{source}: {key}: {what}")
    if cfg.inference.mode not in MODES:
        bad("inference.mode", f"must be one of {', '.join(MODES)}, got {cfg.inference.mode!r}")
    if cfg.llm.backend not in LLM_BACKENDS:
        bad("llm.backend", f"must be one of {', '.join(LLM_BACKENDS)}, got {cfg.llm.backend!r}")
    if cfg.llm.api_type not in ("openai", "azure"):
        bad("llm.api_type", f"must be openai or azure, got {cfg.llm.api_type!r}")
    if cfg.local.device not in ("auto", "cpu", "cuda", "mps"):
        bad("local.device", f"must be auto, cpu, cuda or mps, got {cfg.local.device!r}")
    if cfg.local.backend not in LOCAL_BACKENDS:
        bad("local.backend", f"must be one of {', '.join(LOCAL_BACKENDS)}, got {cfg.local.backend!r}")
    if cfg.local.ray_address and cfg.local.ray_address != "auto" and "://" in cfg.local.ray_address \
            and not cfg.local.ray_address.startswith("ray://"):
        bad("local.ray_address", f"must be empty, auto, host:port or ray://host:port, got {cfg.local.ray_address!r}")
    if cfg.local.cpu_prefer_under_gb < 0:
        bad("local.cpu_prefer_under_gb", f"must be 0 (off) or more, got {cfg.local.cpu_prefer_under_gb}")
    if cfg.local.threads < 0:
        bad("local.threads", f"must be 0 (the machine's physical cores) or more, got {cfg.local.threads}")
    if cfg.local.ray_replicas < 1 or cfg.local.ray_models_per_replica < 1:
        bad("local.ray_replicas" if cfg.local.ray_replicas < 1 else "local.ray_models_per_replica",
            "must be at least 1")
    if cfg.local.ray_max_replicas and cfg.local.ray_max_replicas < cfg.local.ray_replicas:
        bad("local.ray_max_replicas", f"must be 0 or at least local.ray_replicas ({cfg.local.ray_replicas})")
    if cfg.local.ray_cpus_per_replica < 0 or cfg.local.ray_gpus_per_replica < 0:
        bad("local.ray_cpus_per_replica" if cfg.local.ray_cpus_per_replica < 0 else "local.ray_gpus_per_replica",
            "must be 0 or more")
    for key, value in [("llm.timeout", cfg.llm.timeout), ("llm.idle_timeout", cfg.llm.idle_timeout),
                       ("llm.total_timeout", cfg.llm.total_timeout), ("inference.task_timeout", cfg.inference.task_timeout),
                       ("remote.timeout", cfg.remote.timeout), ("files.fetch_timeout", cfg.files.fetch_timeout),
                       ("local.memory_budget_gb", cfg.local.memory_budget_gb),
                       ("server.header_timeout", cfg.server.header_timeout),
                       ("server.body_timeout", cfg.server.body_timeout),
                       ("files.max_image_megapixels", cfg.files.max_image_megapixels),
                       ("files.max_audio_seconds", cfg.files.max_audio_seconds),
                       ("files.max_audio_rate_channels", cfg.files.max_audio_rate_channels),
                       ("files.max_video_seconds", cfg.files.max_video_seconds),
                       ("files.max_video_total_megapixels", cfg.files.max_video_total_megapixels)]:
        if value <= 0:
            bad(key, f"must be greater than 0, got {value}")
    for key, value in [("inference.top_k", cfg.inference.top_k), ("inference.max_tasks", cfg.inference.max_tasks),
                       ("llm.plan_tokens", cfg.llm.plan_tokens),
                       ("inference.max_parallel", cfg.inference.max_parallel),
                       ("server.max_runs", cfg.server.max_runs),
                       ("server.max_runs_per_caller", cfg.server.max_runs_per_caller),
                       ("server.max_connections", cfg.server.max_connections)]:
        if value < 1:
            bad(key, f"must be at least 1, got {value}")
    if cfg.llm.max_retries < 0 or cfg.remote.max_retries < 0:
        bad("llm.max_retries" if cfg.llm.max_retries < 0 else "remote.max_retries", "must be 0 or more")
    for url_key, url in [("llm.base_url", cfg.llm.base_url), ("remote.base_url", cfg.remote.base_url)]:
        if url and not url.startswith(("http://", "https://")):
            bad(url_key, f"must start with http:// or https://, got {url!r}")
    if cfg.llm.api_type == "azure" and not cfg.llm.base_url:
        bad("llm.base_url", "Azure OpenAI needs its resource endpoint here")


def load_config(path: str | Path | None = None, env: dict[str, str] | None = None) -> Config:
    """Read the config file (path, else $JARVIS_CONFIG, else ./config.yaml) and apply the environment."""
    env = dict(os.environ if env is None else env)
    path = Path(path or env.get("JARVIS_CONFIG") or DEFAULT_PATH)
    source = path.name
    if path.exists():
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark else ""
            raise ConfigError(f"{source}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    elif env.get("JARVIS_CONFIG") or path != DEFAULT_PATH:
        raise ConfigError(f"{path}: config file not found (JARVIS_CONFIG or --config names it)")
    else:
        data = {}
    cfg = _build(data, source)
    overrides = {
        "OPENAI_BASE_URL": ("llm", "base_url"),
        "JARVIS_LLM_MODEL": ("llm", "model"),
        "JARVIS_LLM_BACKEND": ("llm", "backend"),
        "JARVIS_INFERENCE_MODE": ("inference", "mode"),
        "JARVIS_LOCAL_BACKEND": ("local", "backend"),
        "JARVIS_CATALOG": ("catalog", "path"),
        "JARVIS_REMOTE_BASE_URL": ("remote", "base_url"),
        "JARVIS_ACCESS_TOKEN": ("server", "access_token"),
        "JARVIS_SESSION_STORE": ("session", "store"),
    }
    for var, (section, key) in overrides.items():
        if env.get(var):
            part = getattr(cfg, section)
            setattr(part, key, _coerce(env[var].strip(), getattr(part, key), var, "environment"))
    if env.get("SPACE_ID"):      # a Space is public, whatever the file says
        cfg.server.public = True
    hf_token = (env.get("HF_TOKEN") or env.get("HUGGING_FACE_HUB_TOKEN") or "").strip()
    cfg.credentials = Credentials(openai_api_key=env.get("OPENAI_API_KEY", "").strip(), hf_token=hf_token,
                                  server_hf_token=bool(hf_token))
    _validate(cfg, source)
    return cfg
