// Calling other skills through the host. Needs `world = "skill"` and the callee under
// `[permissions] skills` with a version requirement (`skills = { "examples/text-stats" =
// "^0.1" }`). The callee runs in its own sandbox with its own permissions, for the same
// tenant, and shares this invocation's budget: its fuel comes out of what is left of ours,
// and it ends no later than our deadline. Failures throw `InvokeError` (a SkillError with the
// host's kind and message unchanged), so an uncaught one passes the callee's error through.

import { invoke as hostInvoke } from 'omniforge:skill/skills@0.1.3';
import { SkillError, hostErrorKind } from './errors.js';

/**
 * Invoking `skill` failed; `kind` and `message` are the host's, unchanged: `denied` (not
 * granted, not installed by the tenant, a cycle, or the call chain too deep), `not-found`
 * (no such skill or no matching version), `invalid-input` (the callee refused the input),
 * `failed` (the callee ran out of a limit, timed out, trapped or broke its output schema),
 * `unavailable` (the callee cannot start now), or the callee's own error of any kind.
 */
export class InvokeError extends SkillError {
  constructor(skill, kind, message) {
    super(kind, message);
    this.name = 'InvokeError';
    this.skill = skill;
  }
}

/**
 * Invokes skill `name` (`namespace/name`) with `input` (any JSON-serializable value) and
 * returns its output, parsed from JSON. `version` narrows the manifest's version requirement
 * for this call (`'=0.1.2'`, `'^0.1.2'`); empty uses the manifest's. Throws a TypeError,
 * before calling anything, when `input` has no JSON form (undefined, a function, a BigInt).
 */
export function invoke(name, input, version = '') {
  const text = JSON.stringify(input);
  if (text === undefined) {
    throw new TypeError(`the input for ${name} is not JSON (undefined or a function)`);
  }
  let output;
  try {
    output = hostInvoke(name, version, text);
  } catch (e) {
    // jco throws a host `err` as an Error whose `payload` is the variant.
    const error = e && e.payload !== undefined ? e.payload : e;
    if (error && typeof error.tag === 'string') {
      throw new InvokeError(name, hostErrorKind(error.tag), String(error.val ?? ''));
    }
    throw e;
  }
  try {
    return JSON.parse(output);
  } catch (e) {
    throw new InvokeError(name, 'failed', `the output of ${name} is not JSON: ${e.message}`);
  }
}
