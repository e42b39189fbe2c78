"""Prompt templates render strictly: every placeholder gets a value and every value a placeholder."""
import pytest

from jarvis.errors import TemplateError
from jarvis.llm import prompts


def test_render_fills_placeholders_and_keeps_json_braces():
    text = prompts.render("plan", task_list="- summarization: text -> text", files="a.jpg (image)")
    assert "- summarization: text -> text" in text and "Files of this chat: a.jpg (image)" in text
    assert '{"task": TYPE, "id": N' in text          # JSON in the template is not a placeholder
    assert "{task_list}" not in text and "{files}" not in text


def test_a_value_is_inserted_as_it_is():
    text = prompts.render("select", request="please use {tasks} literally", tasks="TASKS BODY")
    assert "Request: please use {tasks} literally" in text and text.endswith("TASKS BODY")


def test_placeholder_without_value_is_an_error():
    with pytest.raises(TemplateError, match=r"'plan': no value for files \(its placeholders: files, task_list\)"):
        prompts.render("plan", task_list="x")


def test_value_without_placeholder_is_an_error():
    with pytest.raises(TemplateError, match=r"'select': no placeholder for file"):
        prompts.render("select", request="r", tasks="t", file="misspelt")


def test_templates_without_placeholders_render_as_loaded():
    for name in ("respond", "chat"):
        assert prompts.render(name) == prompts.load(name)
    with pytest.raises(TemplateError, match="no placeholder for request"):
        prompts.render("respond", request="x")
