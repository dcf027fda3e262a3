// The skill's own errors, which callers see as `422 skill-error` with their kind.

const KINDS = ['invalid-input', 'denied', 'not-found', 'unavailable', 'failed'];

/** An error a skill throws on purpose: a kind and a message. */
export class SkillError extends Error {
  constructor(kind, message) {
    if (!KINDS.includes(kind)) {
      throw new TypeError(`unknown skill error kind ${kind}; use one of ${KINDS.join(', ')}`);
    }
    super(message);
    this.name = 'SkillError';
    this.kind = kind;
  }

  /** The input is well-formed JSON but not acceptable to the skill. */
  static invalidInput(message) {
    return new SkillError('invalid-input', message);
  }

  /** The skill was refused something it needed (a capability, a host). */
  static denied(message) {
    return new SkillError('denied', message);
  }

  /** Something the input referred to does not exist. */
  static notFound(message) {
    return new SkillError('not-found', message);
  }

  /** A dependency is unavailable; retrying later may succeed. */
  static unavailable(message) {
    return new SkillError('unavailable', message);
  }

  /** Any other failure. */
  static failed(message) {
    return new SkillError('failed', message);
  }
}

/** A skill-error case the host answered as a SkillError kind (unknown cases are `failed`). */
export function hostErrorKind(tag) {
  return KINDS.includes(tag) ? tag : 'failed';
}
