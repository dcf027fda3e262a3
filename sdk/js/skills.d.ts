import { SkillError } from './index.js';

/** Invoking `skill` failed; `kind` and `message` are the host's, unchanged. */
export class InvokeError extends SkillError {
  readonly skill: string;
}
/** Invokes `name` (`namespace/name`) with `input` and returns its parsed JSON output. */
export function invoke<O = unknown>(name: string, input: unknown, version?: string): O;
