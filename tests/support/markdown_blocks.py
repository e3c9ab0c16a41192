"""The fenced code blocks of markdown files, with the skip marker each may carry.

A block is skipped by an HTML comment on a line before its opening fence, with nothing but
blank lines between, e.g. `<!-- readme-test: skip (needs a GPU) -->`; the reason is required.
Fences may be indented (blocks inside list items); the block's text loses that indentation.
"""
import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>```+|~~~+)(?P<lang>[^`\s]*)[^`]*$")
MARKER = re.compile(r"^\s*<!--\s*readme-test:(?P<body>.*?)-->\s*$")
SKIP = re.compile(r"^\s*skip\s*\((?P<reason>[^)]+)\)\s*$")


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str  # lower case; "" for a fence without one
    text: str
    skip: Optional[str]  # the reason, when marked

    @property
    def name(self) -> str:
        return f"{self.path.name}:{self.line}:{self.lang or 'plain'}"


class MarkdownError(ValueError):
    pass


def _skip_reason(path: Path, number: int, line: str) -> str:
    skip = SKIP.match(MARKER.match(line).group("body"))
    if skip is None:
        raise MarkdownError(f"{path}:{number}: a readme-test marker must read "
                            f"`<!-- readme-test: skip (reason) -->`, got {line.strip()!r}")
    return skip.group("reason").strip()


def _closing_fence(fence: str) -> re.Pattern:
    return re.compile(r"^[ \t]*" + re.escape(fence[0]) + "{" + str(len(fence)) + r",}\s*$")


def blocks(path: Path) -> List[Block]:
    """Every fenced block of `path`, in order. A marker that no block follows is an error, so
    that a marker cannot silently stop applying when the text around it is edited."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    found: List[Block] = []
    marker = None  # (line number, reason) of a marker awaiting its block

    def orphan_check():
        if marker is not None:
            raise MarkdownError(f"{path}:{marker[0]}: a readme-test marker with no block after it")

    i = 0
    while i < len(lines):
        line, number = lines[i], i + 1
        opening = FENCE.match(line)
        if MARKER.match(line):
            orphan_check()
            marker = (number, _skip_reason(path, number, line))
        elif opening:
            indent, closing = opening.group("indent"), _closing_fence(opening.group("fence"))
            end = next((j for j in range(i + 1, len(lines)) if closing.match(lines[j])), None)
            if end is None:
                raise MarkdownError(f"{path}:{number}: a code block that is never closed")
            body = [text[len(indent):] if text.startswith(indent) else text.lstrip()
                    for text in lines[i + 1:end]]
            found.append(Block(path, number, opening.group("lang").lower(),
                               "\n".join(body) + "\n", marker[1] if marker else None))
            marker, i = None, end
        elif line.strip():
            orphan_check()
        i += 1
    orphan_check()
    return found
