import { SkillError } from './index.js';

/** Reading secret `secret` failed; `kind` and `message` are the host's. */
export class SecretError extends SkillError {
  readonly secret: string;
}
/** The value of the tenant's secret `name` (declared under `[permissions] secrets`). */
export function get(name: string): string;
