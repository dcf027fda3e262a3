"""examples/outline: the outline of a Markdown document with the size of each section, by
composing two skills through the host: examples/markdown-to-text for the headings and plain
text, examples/text-stats to count the words under each heading."""

from omniforge_sdk import Context, SkillError, skill, skills


def _sections(text: str, headings: list) -> list:
    """Splits the plain text at the headings' lines, in order: each heading with the text
    below it up to the next one."""
    lines = text.split("\n")
    titles = [h["text"] for h in headings]
    sections, current = [], None
    for line in lines:
        if titles and line == titles[0]:
            titles.pop(0)
            current = {"heading": line, "body": []}
            sections.append(current)
        elif current is not None:
            current["body"].append(line)
    return sections


@skill
def outline(ctx: Context, input: dict) -> dict:
    markdown = input.get("markdown")
    if not isinstance(markdown, str):
        raise SkillError.invalid_input("markdown must be a string")
    # A callee's error (markdown too large, say) propagates to our caller unchanged.
    plain = skills.invoke("examples/markdown-to-text", {"markdown": markdown})
    headings = plain["headings"]
    sections = []
    for heading, section in zip(headings, _sections(plain["text"], headings)):
        body = "\n".join(section["body"]).strip()
        words = skills.invoke("examples/text-stats", {"text": body, "top": 0})["words"] if body else 0
        sections.append({"level": heading["level"], "heading": heading["text"], "words": words})
    return {"sections": sections, "links": len(plain["links"])}
