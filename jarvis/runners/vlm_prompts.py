"""What Jarvis asks a vision-language model for each image task, locally (chat template) and remotely
(chat completion), so both routes word the question the same way."""
from __future__ import annotations

CAPTION_PROMPT = "Describe this image in one sentence."
VQA_PROMPT = "Answer the question about this image in a few words: {question}"
DOCUMENT_PROMPT = "This image is a document. Answer from it, in a few words: {question}"
