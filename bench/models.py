"""Model cache benchmark (issue 3), on tiny real models built into a temporary offline HF cache.

1. Cold vs warm: the same 3-task request twice through the controller; model loads (count and
   seconds) on each run. Target: no reload on the second.
2. Peak memory of a 5-model plan under a cache budget smaller than all five models together:
   the cache's own high-water mark (bytes of loaded weights) and the process's peak RSS.

Run: python -m bench.models
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(tempfile.mkdtemp(prefix="jarvis-bench-hub-"))
os.environ.update(HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(CACHE), TRANSFORMERS_VERBOSITY="error")

import psutil

from jarvis.config import load_config
from jarvis.events import Done
from jarvis.execution.local import LocalExecutor
from jarvis.pipeline.controller import Controller
from jarvis.session import Session
from tests.fakes.llm_server import ScriptedLLM
from tests.helpers import plan_json
from tests.test_controller import pick_top
from tests.tiny import build_all

THREE = plan_json(("text-classification", {"text": "I like it"}), ("token-classification", {"text": "Ann in Rome"}),
                  ("summarization", {"text": "A long story about a cat and a dog who became friends."}))
FIVE = plan_json(("text-classification", {"text": "I like it"}), ("token-classification", {"text": "Ann in Rome"}),
                 ("summarization", {"text": "A story."}), ("text-generation", {"text": "Once"}),
                 ("question-answering", {"text": ["Who?", "Ann went home."]}))
FIVE_MODELS = {"distilbert/distilbert-base-uncased-finetuned-sst-2-english", "dslim/bert-base-NER",
               "facebook/bart-large-cnn", "openai-community/gpt2", "distilbert/distilbert-base-cased-distilled-squad"}


def run(controller, cfg, plan_text):
    session = Session.create(cfg)
    try:
        events = list(controller.run(session, "bench"))
    finally:
        session.close()
    return next(e.result for e in events if isinstance(e, Done))


def main() -> None:
    build_all(CACHE, only=FIVE_MODELS)
    with ScriptedLLM(plan=THREE, select=pick_top, answer="ok", key="sk-bench") as llm:
        cfg = load_config(env={"OPENAI_BASE_URL": llm.url, "OPENAI_API_KEY": "sk-bench"})
        controller = Controller(cfg)
        stats = controller.local.cache.stats
        for label in ("cold", "warm"):
            loads, secs = stats.loads, stats.load_seconds
            start = time.perf_counter()
            result = run(controller, cfg, THREE)
            assert all(t.status == "done" for t in result.tasks), [t.error for t in result.tasks]
            print(f"{label}: {stats.loads - loads} model loads, {stats.load_seconds - secs:.2f} s loading, "
                  f"{time.perf_counter() - start:.2f} s for the request")

        # sizes of the five models when loaded, then a budget smaller than their sum
        probe = LocalExecutor("cpu", 64)
        llm.script["plan"] = FIVE
        run(Controller(cfg, local=probe), cfg, FIVE)
        sizes = {model: nbytes for (_, model), nbytes in probe.cache.sizes().items()}
        total = sum(sizes.values())
        budget = int(total * 0.6)
        limited = LocalExecutor("cpu", budget / 1024 ** 3)
        peak = 0
        controller5 = Controller(cfg, local=limited)
        session = Session.create(cfg)
        for _event in controller5.run(session, "five models"):
            peak = max(peak, limited.cache.used_bytes())
        session.close()
        print(f"5-model plan: models total {total / 1e6:.2f} MB; budget {budget / 1e6:.2f} MB; "
              f"cache peak {peak / 1e6:.2f} MB ({peak / budget:.2f} of budget); "
              f"evictions {limited.cache.stats.evictions}; loads {limited.cache.stats.loads}")
        print(f"process peak RSS: {psutil.Process().memory_info().rss / 1e6:.0f} MB (current), "
              f"max RSS {__import__('resource').getrusage(__import__('resource').RUSAGE_SELF).ru_maxrss / 1e3:.0f} MB")


if __name__ == "__main__":
    main()
