// The tenant's secrets (since WIT 0.1.3): API keys and passwords the tenant's owners and
// admins set (`PUT /api/v1/secrets/{name}`), read by name. Needs `world = "skill"` and the
// names under `[permissions] secrets` (`secrets = ["weather-api-key"]`). A name the manifest
// does not declare throws a SecretError of kind `denied`; one the tenant has not set,
// `not-found`; a store that cannot be read now, `unavailable`. Uncaught, it reaches the caller
// naming the secret, never a value. Keep a value only as long as the call that needs it, and
// never log it or return it.

import { get as hostGet } from 'omniforge:skill/secrets@0.1.3';
import { SkillError, hostErrorKind } from './errors.js';

/** Reading secret `secret` failed; `kind` and `message` are the host's. */
export class SecretError extends SkillError {
  constructor(secret, kind, message) {
    super(kind, message);
    this.name = 'SecretError';
    this.secret = secret;
  }
}

/** The value of the tenant's secret `name`. */
export function get(name) {
  try {
    return hostGet(name);
  } catch (e) {
    // jco throws a host `err` as an Error whose `payload` is the variant.
    const error = e && e.payload !== undefined ? e.payload : e;
    if (error && typeof error.tag === 'string') {
      throw new SecretError(name, hostErrorKind(error.tag), String(error.val ?? ''));
    }
    throw e;
  }
}
