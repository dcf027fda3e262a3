"""%%NAMESPACE%%/%%NAME%%: greets someone by name. Replace this with your skill."""

from omniforge_sdk import Context, SkillError, log, skill


@skill
def run(ctx: Context, input: dict) -> dict:
    # `input` is the caller's JSON, already checked against the input schema in
    # omniforge.toml; the returned value is written back as JSON.
    name = str(input.get("name", "")).strip()
    if not name:
        raise SkillError.invalid_input("name must not be blank")
    log.info(f"greeting {name} (request {ctx.request_id})")
    return {"greeting": f"Hello, {name}!"}
