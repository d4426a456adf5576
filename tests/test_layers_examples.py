"""Every Python example of docs/layers.md runs as written: the ```python blocks are executed in order in one
namespace (a later block uses what an earlier one made), in a temporary folder (they save files). A block that
breaks fails this test with its number and first line. The examples use toy sizes, so this stays fast."""
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "layers.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def python_blocks(text: str) -> list[str]:
    """The ```python fenced blocks of a Markdown text, in order."""
    return [m.group(1) for m in BLOCK.finditer(text)]


def test_the_block_reader_finds_python_blocks_only():
    text = "a\n```python\nx = 1\n```\n```bash\nls\n```\n```python\ny = x + 1\n```\n"
    assert python_blocks(text) == ["x = 1\n", "y = x + 1\n"]


def test_the_page_shows_the_whole_workflow():
    blocks = python_blocks(PAGE.read_text(encoding="utf-8"))
    code = "\n".join(blocks)
    for step in (".compile(", ".fit(", ".save(", "load_model(", "embedding_model(", ".predict("):
        assert step in code, f"docs/layers.md has no example with {step}"


def test_every_example_runs(tmp_path, monkeypatch):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    blocks = python_blocks(PAGE.read_text(encoding="utf-8"))
    assert blocks, "docs/layers.md has no ```python block"
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__docs__"}
    for number, block in enumerate(blocks, 1):
        try:
            exec(compile(block, f"docs/layers.md, python block {number}", "exec"), namespace)  # noqa: S102
        except Exception as error:  # noqa: BLE001 - any error of an example fails the test, named
            first = block.strip().splitlines()[0] if block.strip() else ""
            pytest.fail(f"docs/layers.md python block {number} ({first!r}) failed: {type(error).__name__}: {error}")
