// Types of the OmniForge JavaScript SDK (index.js; kv.js, http.js and skills.js have their own).

/** Who is calling and how long the skill has. */
export interface Context {
  /** Id of the tenant the invocation runs for (`ten_…`, stable; not its slug). */
  tenant: string;
  /** The skill's full name, `namespace/name`. */
  skill: string;
  /** The exact version running. */
  version: string;
  /** The request id, for matching the skill's logs with the caller's request. */
  requestId: string;
  /** When the host ends the invocation, in milliseconds since the Unix epoch. */
  deadlineUnixMs: number;
  /** Milliseconds left before the host ends the invocation. */
  remainingMs(): number;
  /**
   * The durable task this invocation runs for (`tsk_…`), or null for a synchronous call. A
   * task runs at least once (a run lost with its server runs again): key side effects
   * outside the platform on it to make them happen once.
   */
  taskId(): string | null;
  /** Which run of the task this is: 1 for the first, 2 after a lost run; 1 without a task. */
  attempt(): number;
}

/** The error kinds callers see (`422 skill-error` with `kind`). */
export type SkillErrorKind = 'invalid-input' | 'denied' | 'not-found' | 'unavailable' | 'failed';

/** An error a skill throws on purpose. */
export class SkillError extends Error {
  constructor(kind: SkillErrorKind, message: string);
  readonly kind: SkillErrorKind;
  static invalidInput(message: string): SkillError;
  static denied(message: string): SkillError;
  static notFound(message: string): SkillError;
  static unavailable(message: string): SkillError;
  static failed(message: string): SkillError;
}

/** Structured logging into the host's logs. */
export const log: {
  trace(message: string): void;
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
};

/** The `handler` export `omniforge skill build` looks for. */
export interface Handler {
  invoke(ctx: unknown, input: string): string;
}

/** Wraps `fn` as the skill: `export const handler = skill((ctx, input) => ...)`. */
export function skill<I = any, O = unknown>(fn: (ctx: Context, input: I) => O): Handler;
