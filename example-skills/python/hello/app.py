"""examples/hello-python: the smallest useful skill, in Python."""

from omniforge_sdk import Context, SkillError, skill


@skill
def hello(ctx: Context, input: dict) -> dict:
    name = str(input.get("name", "")).strip()
    if not name:
        raise SkillError.invalid_input("name must not be blank")
    return {"greeting": f"Hello, {name}!"}
