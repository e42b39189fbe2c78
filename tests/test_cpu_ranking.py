"""On a CPU, local mode offers a task's lighter models first (local.cpu_prefer_under_gb): with the shipped
catalog, "read it aloud" gets facebook/mms-tts-eng (145 MB) before nari-labs/Dia-1.6B-0626 (6.4 GB), which
takes minutes per sentence there. On a GPU, in remote or hybrid mode, or with the option 0, candidates keep
their download order. Driven through the controller's candidate path with FakeLLM and FakeExecutor."""
from __future__ import annotations

import json

import pytest

from jarvis.catalog.entries import Catalog
from jarvis.config import load_config
from jarvis.errors import ConfigError
from jarvis.events import LLMProgress, ModelChosen
from jarvis.pipeline.controller import Controller
from jarvis.pipeline.plan import Task
from jarvis.session import Session
from tests.fakes.fake_executor import FakeExecutor
from tests.fakes.fake_llm import FakeLLM
from tests.helpers import config_for, plan_json

GiB = 1024 ** 3
DIA, MMS = "nari-labs/Dia-1.6B-0626", "facebook/mms-tts-eng"
TTS = "text-to-speech"


@pytest.fixture(scope="module")
def shipped():
    return Catalog.load()


def controller_for(catalog, **sections):
    cfg = config_for("http://127.0.0.1:9/v1", **sections)
    return Controller(cfg, catalog, local=FakeExecutor(), llm=lambda _cfg: FakeLLM(plan="[]", chat="hi"))


def ranked(controller, tmp_path, task=TTS):
    """The candidates the controller offers the selection for one planned task."""
    session = Session.create(controller.config, root=tmp_path / "s")
    return [m.id for m in controller._needs(session, []).candidates(Task(0, task, [-1], {"text": ["hello"]}))]


def download_order(catalog, task=TTS, mode="local", k=5):
    return [m.id for m in catalog.candidates(task, k=k, mode=mode, budget_bytes=8 * GiB)]


def test_the_shipped_catalog_starts_with_dia_in_download_order(shipped):
    # what the CPU ranking corrects: without it Dia comes first, and the selector mostly takes the first
    order = download_order(shipped)
    assert order[0] == DIA and MMS in order


def test_a_read_aloud_request_on_a_cpu_runs_the_light_model_and_says_why(shipped, tmp_path):
    cfg = config_for("http://127.0.0.1:9/v1", inference={"mode": "local"}, local={"device": "cpu"})
    llm = FakeLLM(plan=plan_json((TTS, {"text": "Good morning"})), select="{}", respond="Here it is.")
    executor = FakeExecutor()
    controller = Controller(cfg, shipped, local=executor, llm=lambda _cfg: llm)
    events = list(controller.run(Session.create(cfg, root=tmp_path / "s"), "read 'Good morning' aloud"))
    chosen = next(e for e in events if isinstance(e, ModelChosen))
    assert chosen.model == MMS and chosen.candidates[0] == MMS
    assert chosen.candidates.index(DIA) == len(chosen.candidates) - 1   # after every lighter candidate
    assert executor.calls[0][:2] == (TTS, MMS)
    select_prompt = next(m for stage, m in llm.calls if stage == "select")[0]["content"]
    assert select_prompt.index(f"- {MMS}") < select_prompt.index(f"- {DIA}")
    notes = [e.note for e in events if isinstance(e, LLMProgress) and e.note]
    assert notes == [f"{TTS}: lighter models first on a CPU; {DIA} (6.4 GB) ranked after them "
                     "(local.cpu_prefer_under_gb)"]


def test_auto_device_without_a_gpu_ranks_lighter_first(shipped, tmp_path):
    # this machine has no GPU: "auto" resolves to the CPU (the newcomer's default config)
    controller = controller_for(shipped, inference={"mode": "local"})
    assert controller.config.local.device == "auto" and controller.config.local.cpu_prefer_under_gb == 2
    order = ranked(controller, tmp_path)
    assert order[0] == MMS and order[-1] == DIA


def test_asr_and_text_to_image_first_candidates_on_a_cpu(shipped, tmp_path):
    # whisper-large-v3-turbo (1.6 GB) is under 2 GiB; the text-to-image models record no size (light)
    controller = controller_for(shipped, inference={"mode": "local"}, local={"device": "cpu"})
    for task in ("automatic-speech-recognition", "text-to-image"):
        assert ranked(controller, tmp_path, task) == download_order(shipped, task)
    lower = controller_for(shipped, inference={"mode": "local"}, local={"device": "cpu", "cpu_prefer_under_gb": 1})
    # under 1 GiB the turbo model moves behind the rest; whisper-small (967 MB) still counts as light
    assert ranked(lower, tmp_path, "automatic-speech-recognition") == [
        "openai/whisper-tiny", "openai/whisper-base", "openai/whisper-small", "facebook/wav2vec2-base-960h",
        "openai/whisper-large-v3-turbo"]


def test_ray_replicas_without_gpus_rank_lighter_first(shipped, tmp_path):
    controller = controller_for(shipped, inference={"mode": "local"},
                                local={"backend": "ray", "ray_gpus_per_replica": 0})
    assert ranked(controller, tmp_path)[0] == MMS


@pytest.mark.parametrize("local", [{"backend": "ray", "ray_gpus_per_replica": 1},
                                   {"backend": "ray", "ray_gpus_per_replica": 0.5},
                                   {"device": "cpu", "cpu_prefer_under_gb": 0}])
def test_on_a_gpu_or_with_the_option_off_download_order_stays(shipped, tmp_path, local):
    controller = controller_for(shipped, inference={"mode": "local"}, local=local)
    assert ranked(controller, tmp_path) == download_order(shipped)


@pytest.mark.parametrize("mode", ["remote", "hybrid"])
def test_remote_and_hybrid_keep_their_order(shipped, tmp_path, mode):
    controller = controller_for(shipped, inference={"mode": mode}, local={"device": "cpu"})
    order = ranked(controller, tmp_path)
    assert order == download_order(shipped, mode=mode)


def _catalog(tmp_path, sizes):
    """A text-to-speech catalog: (id, downloads, weight_bytes or None) per entry."""
    path = tmp_path / "catalog.jsonl"
    path.write_text("".join(json.dumps({"id": mid, "task": TTS, "downloads": downloads, "library_name":
                                        "transformers", "model_type": "vits", "architectures": ["VitsModel"],
                                        **({"weight_bytes": size} if size is not None else {})}) + "\n"
                            for mid, downloads, size in sizes))
    return Catalog.load(path)


def test_only_heavy_candidates_stay_in_download_order(tmp_path):
    catalog = _catalog(tmp_path, [("org/big", 100, 5 * GiB), ("org/bigger", 50, 6 * GiB), ("org/huge", 10, 7 * GiB)])
    controller = controller_for(catalog, inference={"mode": "local"}, local={"device": "cpu"})
    assert ranked(controller, tmp_path) == ["org/big", "org/bigger", "org/huge"]


def test_heavy_ranks_before_over_budget_and_unknown_or_at_limit_counts_as_light(tmp_path):
    catalog = _catalog(tmp_path, [("org/over-budget", 500, 9 * GiB), ("org/heavy", 400, 2 * GiB + 1),
                                  ("org/at-limit", 300, 2 * GiB), ("org/unknown", 200, None),
                                  ("org/small", 100, 10 ** 8)])
    controller = controller_for(catalog, inference={"mode": "local"}, local={"device": "cpu", "memory_budget_gb": 8})
    assert ranked(controller, tmp_path) == ["org/at-limit", "org/unknown", "org/small", "org/heavy",
                                            "org/over-budget"]


def test_top_k_brings_a_light_model_in_that_download_order_cut(tmp_path):
    catalog = _catalog(tmp_path, [("org/big", 100, 5 * GiB), ("org/bigger", 50, 6 * GiB), ("org/small", 10, 10 ** 8)])
    controller = controller_for(catalog, inference={"mode": "local", "top_k": 2}, local={"device": "cpu"})
    assert ranked(controller, tmp_path) == ["org/small", "org/big"]


def test_a_negative_value_is_refused_with_the_key_named(tmp_path):
    path = tmp_path / "jarvis.yaml"
    path.write_text("local:\n  cpu_prefer_under_gb: -0.5\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, env={})
    assert str(err.value) == "jarvis.yaml: local.cpu_prefer_under_gb: must be 0 (off) or more, got -0.5"
    path.write_text("local:\n  cpu_prefer_under_gb: 0\n")
    assert load_config(path, env={}).local.cpu_prefer_under_gb == 0    # 0 is allowed: it turns the ranking off
