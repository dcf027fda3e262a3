// The OmniForge SDK for JavaScript: a skill is a function from the caller's JSON input to a
// JSON-serializable result, wrapped by `skill()` into the `handler` export that
// `omniforge skill build` (jco componentize) turns into a WebAssembly component.
//
//   import { skill, SkillError, log } from 'omniforge-sdk';
//
//   export const handler = skill((ctx, input) => {
//     if (!input.name?.trim()) throw SkillError.invalidInput('name must not be blank');
//     log.info(`greeting ${input.name}`);
//     return { greeting: `Hello, ${input.name}!` };
//   });
//
// The key-value store, outbound HTTP, calls to other skills and the tenant's secrets live in
// `kv.js`, `http.js`, `skills.js` and `secrets.js`: import them only when the manifest grants
// them (`world = "skill"` with `[permissions] kv` / `http` / `skills` / `secrets`), since the
// component is built against exactly what the manifest allows.

import { log as hostLog } from 'omniforge:skill/log@0.1.3';
import { taskId as hostTaskId, attempt as hostAttempt } from 'omniforge:skill/context@0.1.3';
import { SkillError } from './errors.js';

export { SkillError } from './errors.js';

/** Structured logging into the host's logs; never fails (the host drops what is over its bounds). */
export const log = {
  trace: (message) => hostLog('trace', String(message)),
  debug: (message) => hostLog('debug', String(message)),
  info: (message) => hostLog('info', String(message)),
  warn: (message) => hostLog('warn', String(message)),
  error: (message) => hostLog('error', String(message)),
};

/**
 * Wraps `fn(ctx, input)` as the skill's `handler` export: parses the input, calls `fn`,
 * writes its result as JSON, and turns errors into the skill's error kinds (`SkillError`
 * keeps its kind; anything else is `failed` with its name and message, its stack logged).
 */
export function skill(fn) {
  return {
    invoke(ctx, input) {
      let value;
      try {
        value = JSON.parse(input);
      } catch (e) {
        throw wit(SkillError.invalidInput(`the input is not JSON: ${e.message}`));
      }
      const context = {
        tenant: ctx.tenant,
        skill: ctx.skill,
        version: ctx.version,
        requestId: ctx.requestId,
        deadlineUnixMs: Number(ctx.deadlineUnixMs),
        remainingMs() {
          return Math.max(0, this.deadlineUnixMs - Date.now());
        },
        taskId() {
          return hostTaskId() ?? null;
        },
        attempt() {
          return hostAttempt();
        },
      };
      let result;
      try {
        result = fn(context, value);
      } catch (e) {
        if (e instanceof SkillError) throw wit(e);
        log.error(e && e.stack ? e.stack : String(e));
        const name = e && e.name ? e.name : 'Error';
        throw wit(SkillError.failed(`${name}: ${e && e.message !== undefined ? e.message : e}`));
      }
      if (result !== null && typeof result === 'object' && typeof result.then === 'function') {
        throw wit(SkillError.failed('the skill returned a Promise; skills are synchronous'));
      }
      const text = JSON.stringify(result);
      if (text === undefined) {
        throw wit(SkillError.failed('the result is not JSON (undefined or a function)'));
      }
      return text;
    },
  };
}

/** The `skill-error` variant value the component model expects for a thrown error. */
function wit(error) {
  return { tag: error.kind, val: error.message };
}
