"""examples/markdown-to-text: Markdown in, plain text out, with the document's headings and
links listed. For feeding Markdown to places that want text (search indexes, prompts, SMS).

Covers the CommonMark most documents use: ATX and setext headings, emphasis, inline code,
fenced and indented code blocks, links and images (inline and reference-style), block
quotes, lists, horizontal rules and HTML tags.
"""

import re

from omniforge_sdk import Context, SkillError, skill

FENCE = re.compile(r"^(\s*)(```|~~~)")
ATX_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
SETEXT_UNDERLINE = re.compile(r"^\s{0,3}(=+|-+)\s*$")
RULE = re.compile(r"^\s{0,3}([-*_])(\s*\1){2,}\s*$")
REFERENCE_DEFINITION = re.compile(r"^\s{0,3}\[([^\]]+)\]:\s*(\S+)")
QUOTE = re.compile(r"^\s{0,3}>\s?")
BULLET = re.compile(r"^(\s*)[-*+]\s+")
NUMBERED = re.compile(r"^(\s*)(\d+)[.)]\s+")
IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]*)(?:\s+\"[^\"]*\")?\)")
LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]*)(?:\s+\"[^\"]*\")?\)")
REFERENCE_LINK = re.compile(r"\[([^\]]+)\]\[([^\]]*)\]")
AUTOLINK = re.compile(r"<(https?://[^>]+)>")
CODE_SPAN = re.compile(r"`+([^`]+)`+")
EMPHASIS = re.compile(r"(\*\*|__|\*|_|~~)(?=\S)(.+?)(?<=\S)\1")
HTML_TAG = re.compile(r"</?[A-Za-z][^>]*>")


@skill
def convert(ctx: Context, input: dict) -> dict:
    markdown = input.get("markdown")
    if not isinstance(markdown, str):
        raise SkillError.invalid_input("markdown must be a string")
    bullet = input.get("bullet", "- ")
    lines = markdown.replace("\r\n", "\n").split("\n")
    references = {}
    for line in lines:
        match = REFERENCE_DEFINITION.match(line)
        if match:
            references[match.group(1).lower()] = match.group(2)

    links = []
    headings = []
    out = []
    fence = None
    for index, line in enumerate(lines):
        if fence:
            if line.strip().startswith(fence):
                fence = None
            else:
                out.append(line)
            continue
        match = FENCE.match(line)
        if match:
            fence = match.group(2)
            continue
        if REFERENCE_DEFINITION.match(line):
            continue
        if RULE.match(line):
            out.append("")
            continue
        next_line = lines[index + 1] if index + 1 < len(lines) else ""
        if line.strip() and SETEXT_UNDERLINE.match(next_line) and not BULLET.match(line):
            level = 1 if next_line.strip().startswith("=") else 2
            text = inline(line.strip(), references, links)
            headings.append({"level": level, "text": text})
            out.append(text)
            continue
        if SETEXT_UNDERLINE.match(line) and out and headings and out[-1] == headings[-1]["text"]:
            continue
        match = ATX_HEADING.match(line)
        if match:
            text = inline(match.group(2), references, links)
            headings.append({"level": len(match.group(1)), "text": text})
            out.append(text)
            continue
        while QUOTE.match(line):
            line = QUOTE.sub("", line, count=1)
        if line.startswith("    ") or line.startswith("\t"):
            out.append(line.strip())
            continue
        line = BULLET.sub(lambda m: m.group(1) + bullet, line, count=1)
        line = NUMBERED.sub(lambda m: f"{m.group(1)}{m.group(2)}. ", line, count=1)
        out.append(inline(line.rstrip(), references, links))

    text = re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip("\n")
    return {"text": text, "headings": headings, "links": links}


def inline(text: str, references: dict, links: list) -> str:
    """One line's inline Markdown reduced to its text; links are collected in order."""

    def image(match):
        return match.group(1)

    def link(match):
        links.append({"text": strip(match.group(1)), "url": match.group(2)})
        return match.group(1)

    def reference(match):
        label = (match.group(2) or match.group(1)).lower()
        url = references.get(label)
        if url is None:
            return match.group(0)
        links.append({"text": strip(match.group(1)), "url": url})
        return match.group(1)

    def autolink(match):
        links.append({"text": match.group(1), "url": match.group(1)})
        return match.group(1)

    codes = []

    def code(match):
        codes.append(match.group(1).strip())
        return f"\x00{len(codes) - 1}\x00"

    text = CODE_SPAN.sub(code, text)
    text = IMAGE.sub(image, text)
    text = LINK.sub(link, text)
    text = REFERENCE_LINK.sub(reference, text)
    text = AUTOLINK.sub(autolink, text)
    text = HTML_TAG.sub("", text)
    text = strip(text)
    return re.sub("\x00(\\d+)\x00", lambda m: codes[int(m.group(1))], text)


def strip(text: str) -> str:
    """Removes emphasis markers, innermost last, leaving their text."""
    previous = None
    while previous != text:
        previous = text
        text = EMPHASIS.sub(lambda m: m.group(2), text)
    return text
