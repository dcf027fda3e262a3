// %%NAMESPACE%%/%%NAME%%: greets someone by name. Replace this with your skill.

import { skill, SkillError, log } from 'omniforge-sdk';

// `input` is the caller's JSON, already checked against the input schema in omniforge.toml;
// the returned value is written back as JSON.
export const handler = skill((ctx, input) => {
  const name = String(input.name ?? '').trim();
  if (!name) throw SkillError.invalidInput('name must not be blank');
  log.info(`greeting ${name} (request ${ctx.requestId})`);
  return { greeting: `Hello, ${name}!` };
});
