"""Seeded generator of malformed planner and selector answers (issue 6's hostile-LLM corpus).

Every case is a dict: {"id", "kind": "plan"|"select", "category", "text", "expect", ...}.
Plan cases: expect is "plan" (a Plan with at least one task), "error" (PlanError) or "either";
"task_error" names words some task's error must contain; "clean" says no task may carry an error.
Select cases carry "tasks" (task id -> task type), "candidates" (task id -> model ids) and
"pick" (task id -> the model the answer validly names; others must fall back to a candidate).

    python -m tests.corpus.make_corpus [--seed 6] [--out corpus.jsonl]   # writes or summarises
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from jarvis.runners.registry import TASK_TYPES

HERE = Path(__file__).resolve().parent

SEED = 6
PER_CATEGORY = 20
SELECT_PER_CATEGORY = 12
LITERALS = {"image": ["photo.png", "/e.jpg", "cat.jpg", "scan.webp"], "audio": ["clip.wav", "speech.flac"],
            "video": ["movie.mp4"]}
PHRASES = ["a cat on a mat", "Translate this into French please", "What is in the picture?",
           "Ann lives in Paris", "Summarise: the quick brown fox jumps over the lazy dog. " * 3,
           "東京は日本の首都です", "Ça va très bien, merci 🙂", "مرحبا بالعالم", "e\u0301te\u0301 \u200b zero-width",
           "line one\nline two\ttab", 'quotes " and \' inside', "<GENERATED> is not a reference", "{braces} [brackets]"]
PROSE = ["Sure! Here is the plan:", "I will break your request into tasks.", "Plan (JSON):",
         "Note: {this} is not the plan.", "Of course. [Step list below]", "Let me think... OK."]
SIMPLE = [n for n, t in TASK_TYPES.items() if len(t.inputs) == 1]


def _literal(rng: random.Random, rtype: str) -> str:
    return rng.choice(LITERALS[rtype]) if rtype != "text" else rng.choice(PHRASES)


def base_plan(rng: random.Random, n: int | None = None) -> list[dict]:
    """A valid HuggingGPT plan: n tasks, later ones sometimes using earlier outputs of the right type."""
    n = n or rng.randint(1, 5)
    plan: list[dict] = []
    for i in range(n):
        name = rng.choice(list(TASK_TYPES))
        spec = TASK_TYPES[name]
        args: dict[str, list] = {}
        dep = set()
        for rtype in spec.inputs:
            producers = [t["id"] for t in plan if rtype in TASK_TYPES[t["task"]].outputs]
            if producers and rng.random() < 0.5:
                k = rng.choice(producers)
                args.setdefault(rtype, []).append(f"<GENERATED>-{k}")
                dep.add(k)
            else:
                args.setdefault(rtype, []).append(_literal(rng, rtype))
        args = {k: v[0] if len(v) == 1 else v for k, v in args.items()}
        plan.append({"task": name, "id": i, "dep": sorted(dep) or [-1], "args": args})
    return plan


def _dumps(value, rng: random.Random) -> str:
    return json.dumps(value, ensure_ascii=rng.random() < 0.5, indent=rng.choice([None, None, 1, 2]))


# -- plan mutators: (rng) -> (text, expectations) -----------------------------------------
def m_valid(rng):
    return _dumps(base_plan(rng), rng), {"expect": "plan", "clean": True}


def m_truncated(rng):
    text = _dumps(base_plan(rng, rng.randint(2, 6)), rng)
    return text[:rng.randint(1, len(text) - 1)], {"expect": "either"}


def m_prose(rng):
    text = _dumps(base_plan(rng), rng)
    return f"{rng.choice(PROSE)}\n{text}\n{rng.choice(PROSE + [''])}", {"expect": "plan", "clean": True}


def m_fence(rng):
    text = _dumps(base_plan(rng), rng)
    lang = rng.choice(["json", "JSON", "", "python"])
    closing = rng.choice(["```", "```", ""])
    return f"{rng.choice(PROSE + [''])}\n```{lang}\n{text}\n{closing}\nHope this helps.", {"expect": "plan"}


def m_single_quotes(rng):
    return repr(base_plan(rng)), {"expect": "plan", "clean": True}


def m_trailing_commas(rng):
    text = json.dumps(base_plan(rng))
    out = []
    for ch in text:
        if ch in "}]" and rng.random() < 0.6 and out and out[-1] not in "[{,":
            out.append(",")
        out.append(ch)
    return "".join(out), {"expect": "plan", "clean": True}


def m_field_names(rng):
    names = {"task": ["type", "task_type", "name", "tool"], "id": ["task_id", "tid"],
             "dep": ["deps", "dependencies", "depends_on", "dependency"], "args": ["arguments", "inputs", "parameters", "params"]}
    plan = [{rng.choice(names[k]) if rng.random() < 0.7 else k: v for k, v in t.items()} for t in base_plan(rng)]
    return _dumps(plan, rng), {"expect": "plan", "clean": True}


def m_arg_aliases(rng):
    aliases = {"text": ["prompt", "instruction", "description", "input_text"], "image": ["img", "picture", "image_url"],
               "audio": ["speech", "audio_url"], "video": ["video_url"]}
    plan = base_plan(rng)
    for t in plan:
        if len(TASK_TYPES[t["task"]].inputs) == 1:
            t["args"] = {rng.choice(aliases[k]): v for k, v in t["args"].items()}
    return _dumps(plan, rng), {"expect": "plan", "clean": True}


def _text_tasks(rng, n):
    names = [n for n, t in TASK_TYPES.items() if t.inputs == ("text",) and "text" in t.outputs]
    return [{"task": rng.choice(names), "id": i, "dep": [-1], "args": {"text": rng.choice(PHRASES)}} for i in range(n)]


def m_cycle(rng):
    n = rng.randint(2, 5)
    plan = _text_tasks(rng, n + 1)
    for i in range(n):  # 0 -> 1 -> ... -> n-1 -> 0; task n stays independent
        j = (i + 1) % n
        plan[i]["args"]["text"] = f"<GENERATED>-{j}"
        plan[i]["dep"] = [j]
    return _dumps(plan, rng), {"expect": "plan", "task_error": "cycle"}


def m_self_dep(rng):
    plan = _text_tasks(rng, rng.randint(1, 4))
    k = rng.randrange(len(plan))
    plan[k]["args"]["text"] = rng.choice(["<GENERATED>-{k}", "<GENERATED-{k}>", "<generated>_{k}"]).format(k=k)
    plan[k]["dep"] = [k]
    return _dumps(plan, rng), {"expect": "plan", "task_error": "own output"}


def m_missing_deps(rng):
    plan = base_plan(rng, rng.randint(2, 6))
    for t in plan:
        t["dep"] = rng.choice([[], [-1], [99], "-1", None, [t["id"] + 5], list(range(len(plan)))])
    return _dumps(plan, rng), {"expect": "plan"}


def m_unknown_type(rng):
    plan = base_plan(rng)
    k = rng.randrange(len(plan))
    plan[k]["task"] = rng.choice(["make-coffee", "image-to-3d", "openpose-control", "teleport", "ＳＵＭＭＡＲＩＺＡＴＩＯＮ",
                                  "summarization; DROP TABLE", "x" * 500, "text-to-image\u0000"])
    return _dumps(plan, rng), {"expect": "plan", "task_error": "not supported|unknown task type"}


def m_absent_ref(rng):
    plan = _text_tasks(rng, rng.randint(1, 4))
    k = rng.randrange(len(plan))
    plan[k]["args"]["text"] = f"<GENERATED>-{rng.choice([7, 42, 99, 123456])}"
    return _dumps(plan, rng), {"expect": "plan", "task_error": "not in the plan"}


def m_wrong_resource(rng):
    plan = base_plan(rng, rng.randint(1, 3))
    n = len(plan)
    producer = rng.choice(["text-to-speech", "text-to-image", "text-to-video", "object-detection"])
    args = {"text": "hello"} if producer.startswith("text-to") else {"image": "photo.png"}
    plan.append({"task": producer, "id": n, "dep": [-1], "args": args})
    consumer = rng.choice(list(TASK_TYPES))
    key = rng.choice(["text", "image", "audio", "video"])
    plan.append({"task": consumer, "id": n + 1, "dep": [n], "args": {key: f"<GENERATED>-{n}"}})
    return _dumps(plan, rng), {"expect": "plan"}


def m_huge(rng):
    kind = rng.choice(["tasks", "tasks", "text", "prose"])
    if kind == "tasks":
        n = rng.choice([500, 2000, 5000, 12000])
        plan = [{"task": "summarization", "id": i, "dep": [i - 1] if i else [-1],
                 "args": {"text": f"<GENERATED>-{i - 1}" if i else "start"}} for i in range(n)]
        return json.dumps(plan), {"expect": "plan", "repair": "kept the first"}
    if kind == "text":
        big = rng.choice(["a", "é", "字 "]) * rng.choice([100_000, 1_500_000])
        return json.dumps([{"task": "summarization", "id": 0, "dep": [-1], "args": {"text": big}}]), {"expect": "either"}
    return ("blah " * rng.choice([50_000, 300_000])) + json.dumps(base_plan(rng)), {"expect": "either"}


def m_deep(rng):
    d = rng.choice([50, 300, 990, 3000, 20000])
    shape = rng.choice(["args_list", "args_dict", "whole_list", "whole_dict", "task_name"])
    if shape == "args_list":
        value = "[" * d + '"x"' + "]" * d
    elif shape == "args_dict":
        value = '{"a":' * d + '"x"' + "}" * d
    else:
        value = '"x"'
    task = '{{"task": {}, "id": 0, "dep": [-1], "args": {{"text": {}}}}}'.format(
        "[" * d + '"summarization"' + "]" * d if shape == "task_name" else '"summarization"', value)
    if shape == "whole_list":
        return "[" * d + task + "]" * d, {"expect": "either"}
    if shape == "whole_dict":
        return '{"plan":' * d + "[" + task + "]" + "}" * d, {"expect": "either"}
    return "[" + task + "]", {"expect": "either"}


def m_empty(rng):
    options = ["", " ", "\n\n\t", "[]", "{}", '""', "``````", "```json\n```", '[{}]', '[{"task": ""}]',
               '[{"task": "", "id": "", "dep": "", "args": ""}]', '[{"task": "summarization", "args": {"text": ""}}]',
               '{"tasks": null}', '[null]', "[[]]", '[""]']
    text = rng.choice(options)
    return text, {"expect": "either"}


def m_unicode(rng):
    plan = base_plan(rng)
    for t in plan:
        if "text" in t["args"] and not str(t["args"]["text"]).startswith("<GEN"):
            t["args"]["text"] = rng.choice(["🚀" * 50, "\u202eevil rtl", "ｆｕｌｌｗｉｄｔｈ", "a\u0000b", "\ud7ff\ue000",
                                            "Z̴̛͈a̷l̶g̸o̵", "\\u0041 escaped", "\U0001F600 grin"])
    return _dumps(plan, rng), {"expect": "plan"}


def m_nulls(rng):
    plan = base_plan(rng)
    for t in plan:
        for k in list(t):
            if rng.random() < 0.35:
                t[k] = None
    return _dumps(plan, rng), {"expect": "either"}


def m_numbers_as_strings(rng):
    plan = base_plan(rng)
    for t in plan:
        t["id"] = str(t["id"]) if rng.random() < 0.5 else float(t["id"])
        t["dep"] = [str(d) for d in t["dep"]] if rng.random() < 0.5 else ",".join(map(str, t["dep"]))
    return _dumps(plan, rng), {"expect": "plan"}


def m_ids(rng):
    plan = base_plan(rng, rng.randint(2, 6))
    for t in plan:
        t["id"] = rng.choice([0, 0, -1, -7, 1.5, 10**12, True, "x", None, t["id"]])
    return _dumps(plan, rng), {"expect": "plan"}


def m_wrapped(rng):
    plan = base_plan(rng)
    key = rng.choice(["tasks", "plan", "steps"])
    wrapped = plan[0] if rng.random() < 0.2 else {key: plan, "reasoning": "because"}
    return _dumps(wrapped, rng), {"expect": "plan"}


def m_garbage(rng):
    kind = rng.choice(["bytes", "words", "scalar", "html", "refusal"])
    if kind == "bytes":
        text = "".join(chr(rng.choice([rng.randint(0, 0x2FF), rng.randint(0x3000, 0x9FFF)])) for _ in range(rng.randint(1, 3000)))
        text = text.replace("{", "(").replace("[", "(")
    elif kind == "words":
        text = " ".join(rng.choice(["plan", "task", "image", "the", "id", ":", "dep"]) for _ in range(200))
    elif kind == "scalar":
        text = rng.choice(["null", "true", "42", '"a string"', "3.14", "-1", "NaN"])
    elif kind == "html":
        text = "<html><body><h1>502 Bad Gateway</h1></body></html>"
    else:
        text = "I'm sorry, but I can't help with that request."
    return text, {"expect": "error"}


def m_smart_quotes(rng):
    text = json.dumps(base_plan(rng), ensure_ascii=False)
    text = text.replace('"', "\u201c", 1)
    out, left = [], True
    for ch in text:
        if ch == '"' and rng.random() < 0.5:
            ch = "\u201c" if left else "\u201d"
            left = not left
        out.append(ch)
    return "".join(out), {"expect": "either"}


def m_python_literals(rng):
    plan = base_plan(rng)
    for t in plan:
        t["extra"] = rng.choice([None, True, False])
    return repr(plan), {"expect": "plan"}


def m_pathological(rng):
    n = rng.choice([1000, 30_000, 250_000])
    text = rng.choice(["<GENERATED" + " " * n + "x", "{" * n, "}" * n, "[" * n, '"' * n, "```" * (n // 3),
                       "{}" * (n // 2), '{"task":' * (n // 8), "\\" * n, "<" * n + "GENERATED",
                       '[{"task": "summarization", "id": 0, "args": {"text": "<GENERATED>-' + "9" * n + '"}}]',
                       '[{"task": "summarization", "id": ' + "9" * n + ', "args": {"text": "x"}}]'])
    return text, {"expect": "either"}


def m_types(rng):
    plan = base_plan(rng)
    for t in plan:
        k = rng.choice(["task", "args", "dep", "id"])
        t[k] = rng.choice([["a", "b"], {"x": 1}, 5, 2.5, True, "string", [[1, [2]]], {"text": {"text": "x"}}])
    return _dumps(plan, rng), {"expect": "either"}


def m_combined(rng):
    text = repr(base_plan(rng)).replace("}", rng.choice(["}", "},", "} "]))
    return f"{rng.choice(PROSE)}\n```\n{text}\n```", {"expect": "either"}


PLAN_MUTATORS = {name[2:]: fn for name, fn in globals().items() if name.startswith("m_")}


# -- selection answers ---------------------------------------------------------------------
def select_case(rng: random.Random, category: str) -> dict:
    n = 1 if category == "bare" else rng.randint(1, 3)
    tasks = {i: rng.choice(SIMPLE) for i in range(n)}
    candidates = {i: [f"org-{i}/model-{j}" for j in range(3)] for i in range(n)}
    pick = {i: rng.choice(c) for i, c in candidates.items()}
    good = {str(i): {"id": m, "reason": rng.choice(["best fit", "most downloads", "多语言", ""])} for i, m in pick.items()}
    text, expect = json.dumps(good), dict(pick)
    if category == "list":
        text = json.dumps([{"task_id": i, **v} for i, v in zip(pick, good.values())])
    elif category == "bare":
        text = json.dumps(good["0"])
    elif category == "task_keys":
        text = json.dumps({rng.choice(["Task {}", "task {}", "task-{}", "task_{}", "Task #{}"]).format(k): v
                           for k, v in good.items()})
    elif category == "prose":
        text = f"{rng.choice(PROSE)}\n```json\n{json.dumps(good, indent=2)}\n```\nThese fit best."
    elif category == "single_quotes":
        text = repr(good).replace("'}", "',}") if rng.random() < 0.5 else repr(good)
    elif category == "string_values":
        text = json.dumps({k: v["id"] for k, v in good.items()})
    elif category == "not_candidate":
        text = json.dumps({k: {"id": rng.choice(["gpt-4", "org-9/none", "", "../../etc/passwd", "x" * 5000]),
                               "reason": "r"} for k in good})
        expect = {}
    elif category == "truncated":
        text = text[:rng.randint(0, len(text) - 1)]
        expect = None  # either a valid pick or a fallback
    elif category == "garbage":
        text = rng.choice(["", "   ", "I choose the first one.", "null", "[]", "42", "<html>500</html>", "{" * 5000])
        expect = {}
    elif category == "wrong_types":
        text = json.dumps({k: rng.choice([None, 5, ["a"], {"id": 7}, {"model": None}, True, {"id": {"x": 1}}])
                           for k in good})
        expect = {}
    elif category == "extra_ids":
        text = json.dumps({**good, "17": {"id": "org-17/x"}, "-1": {"id": "y"}, "abc": "z", "999999999999": "w"})
    elif category == "huge":
        text = json.dumps(good) + " " + "pad " * rng.choice([10_000, 400_000])
        expect = None
    elif category == "deep":
        d = rng.choice([100, 2000, 50_000])
        text = "[" * d + json.dumps(good) + "]" * d
        expect = None
    elif category == "unicode":
        text = json.dumps({k: {"id": v["id"].replace("model", rng.choice(["mödel", "модель", "model\u200b"])),
                               "reason": "🙂" * 300} for k, v in good.items()})
        expect = {}
    return {"kind": "select", "category": category, "text": text, "tasks": tasks, "candidates": candidates,
            "pick": expect}


SELECT_CATEGORIES = ["valid", "list", "bare", "task_keys", "prose", "single_quotes", "string_values", "not_candidate",
                     "truncated", "garbage", "wrong_types", "extra_ids", "huge", "deep", "unicode"]


def generate(seed: int = SEED, per_category: int = PER_CATEGORY,
             select_per_category: int = SELECT_PER_CATEGORY) -> list[dict]:
    """The whole corpus, deterministic for a seed: generated plan and select cases, then hand-picked ones."""
    cases: list[dict] = []
    for category, mutate in PLAN_MUTATORS.items():
        for i in range(per_category):
            rng = random.Random(f"{seed}-plan-{category}-{i}")
            text, expect = mutate(rng)
            cases.append({"id": f"plan-{category}-{i}", "kind": "plan", "category": category, "text": text, **expect})
    for category in SELECT_CATEGORIES:
        for i in range(select_per_category):
            rng = random.Random(f"{seed}-select-{category}-{i}")
            cases.append({"id": f"select-{category}-{i}", **select_case(rng, category)})
    return cases + handpicked()


def handpicked() -> list[dict]:
    out = []
    with open(HERE / "handpicked.jsonl", encoding="utf-8") as f:
        for n, line in enumerate(f):
            if line.strip() and not line.lstrip().startswith("//"):
                case = json.loads(line)
                case.setdefault("id", f"hand-{n}")
                case.setdefault("category", "handpicked")
                if case["kind"] == "select":
                    case["tasks"] = {int(k): v for k, v in case["tasks"].items()}
                    case["candidates"] = {int(k): v for k, v in case["candidates"].items()}
                    if case.get("pick") is not None:
                        case["pick"] = {int(k): v for k, v in case["pick"].items()}
                out.append(case)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--out", help="write the corpus as JSON lines here")
    args = p.parse_args(argv)
    cases = generate(args.seed)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            for c in cases:
                f.write(json.dumps(c, ensure_ascii=False) + "\n")
    counts: dict[str, int] = {}
    for c in cases:
        counts[c["kind"]] = counts.get(c["kind"], 0) + 1
    print(f"{len(cases)} cases ({', '.join(f'{k}: {v}' for k, v in counts.items())}), "
          f"{sum(len(c['text']) for c in cases) / 1e6:.1f} MB, seed {args.seed}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
