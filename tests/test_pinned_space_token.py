"""Where the user's HF token may go among Gradio apps (jarvis.credentials.space_token): only to a
Space on Hugging Face, named by its id or by an https URL on huggingface.co or *.hf.space on the
default port; and endpoints differ by their whole path (tests/test_spaces.py has the end-to-end
case with a loopback Gradio app)."""
from __future__ import annotations

import pytest

from jarvis.credentials import endpoint_of, is_hf_space, names_other_endpoint, space_token

ON_HF = [
    "ResembleAI/Chatterbox", "  ResembleAI/Chatterbox\n", "o/n.v2", "https://huggingface.co/spaces/o/n",
    "https://HuggingFace.co:443/spaces/o/n", "https://o-n.hf.space", "https://o-n.hf.space./", "https://o-n.HF.space",
]
ELSEWHERE = [
    "", "  ", "o", "o/n/extra", "/n", "http://huggingface.co/spaces/o/n", "https://huggingface.co:8443/spaces/o/n",
    "https://xhuggingface.co/spaces/o/n", "https://huggingface.co.evil.example/spaces/o/n", "https://hf.space",
    "https://o-n.hf.space.evil.example", "http://o-n.hf.space", "https://o-n.hf.space:444",
    "https://user:pw@huggingface.co/spaces/o/n", "ftp://o-n.hf.space", "http://127.0.0.1:7860",
]


@pytest.mark.parametrize("space", ON_HF)
def test_a_space_on_hugging_face_gets_the_token(space):
    assert is_hf_space(space) is True
    assert space_token(space, "hf_user") == "hf_user"
    assert space_token(space, "") == ""          # no token, nothing to send


@pytest.mark.parametrize("space", ELSEWHERE)
def test_any_other_gradio_app_gets_none(space):
    assert is_hf_space(space) is False
    assert space_token(space, "hf_user") == ""


def test_endpoints_differ_by_their_whole_path():
    assert endpoint_of("https://llm.example/APIX") != endpoint_of("https://llm.example/API")
    assert names_other_endpoint("https://llm.example/v1X", "https://llm.example/v1")
    assert not names_other_endpoint("https://LLM.example:443/v1//", "https://llm.example/v1")
