"""tests/support/markdown_blocks.py: which blocks it finds, what text and skip reason each gets."""
import pytest

from support.markdown_blocks import MarkdownError, blocks


def parse(tmp_path, text):
    path = tmp_path / "doc.md"
    path.write_text(text)
    return blocks(path)


def test_blocks_languages_lines_and_indented_fences(tmp_path):
    found = parse(tmp_path, "intro\n\n```python\nx = 1\n```\n\n- item:\n\n  ```bash\n  echo hi\n"
                            "    indented\n  ```\n\n```\nplain\n```\n")
    assert [(b.line, b.lang, b.text, b.skip) for b in found] == [
        (3, "python", "x = 1\n", None),
        (9, "bash", "echo hi\n  indented\n", None),
        (14, "", "plain\n", None),
    ]


def test_a_skip_marker_applies_to_the_next_block_only(tmp_path):
    found = parse(tmp_path, "<!-- readme-test: skip (needs a GPU) -->\n\n```python\ncuda()\n```\n"
                            "```python\ncpu()\n```\n")
    assert [b.skip for b in found] == ["needs a GPU", None]


def test_a_fence_inside_a_longer_fence_is_text(tmp_path):
    found = parse(tmp_path, "````markdown\n```python\nx\n```\n````\n")
    assert [(b.lang, b.text) for b in found] == [("markdown", "```python\nx\n```\n")]


@pytest.mark.parametrize("text, message", [
    ("<!-- readme-test: skip (why) -->\nsome prose\n```python\nx\n```\n", "no block after it"),
    ("```python\nx\n```\n<!-- readme-test: skip (why) -->\n", "no block after it"),
    ("<!-- readme-test: skip -->\n```python\nx\n```\n", "must read"),
    ("<!-- readme-test: run -->\n```python\nx\n```\n", "must read"),
    ("```python\nx\n", "never closed"),
])
def test_malformed_markers_and_blocks_are_errors(tmp_path, text, message):
    with pytest.raises(MarkdownError, match=message):
        parse(tmp_path, text)
