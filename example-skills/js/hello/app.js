// examples/hello-js: the smallest useful skill, in JavaScript.

import { skill, SkillError } from 'omniforge-sdk';

export const handler = skill((ctx, input) => {
  const name = String(input.name ?? '').trim();
  if (!name) throw SkillError.invalidInput('name must not be blank');
  return { greeting: `Hello, ${name}!` };
});
