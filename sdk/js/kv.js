// The skill's key-value store: bytes under string keys, per tenant and per skill. Needs
// `world = "skill"` and `[permissions] kv = true`. Failures throw `KvError` (a SkillError:
// `denied`, `unavailable` or `failed`, with `reason` naming the host's error).

import * as host from 'omniforge:skill/kv@0.1.3';
import { SkillError } from './errors.js';

/** A key-value operation failed; `reason` is the host's kv-error case. */
export class KvError extends SkillError {
  constructor(reason, detail) {
    const kind = reason === 'denied' || reason === 'unavailable' ? reason : 'failed';
    const messages = {
      denied: 'the key-value store is not granted (declare [permissions] kv = true)',
      'quota-exceeded': 'the key-value storage quota is used up',
      'not-a-counter': 'the value is not a counter',
    };
    super(kind, messages[reason] ?? `key-value store: ${reason} ${detail ?? ''}`.trim());
    this.name = 'KvError';
    this.reason = reason;
  }
}

function call(operation, ...args) {
  try {
    return operation(...args);
  } catch (e) {
    // jco throws a host `err` as an Error whose `payload` is the variant.
    const error = e && e.payload !== undefined ? e.payload : e;
    if (error && typeof error.tag === 'string') throw new KvError(error.tag, error.val);
    throw e;
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The value under `key` (a Uint8Array), or undefined. */
export const get = (key) => call(host.get, key) ?? undefined;
/** Stores `value` (a Uint8Array or a string, stored as UTF-8) under `key`. */
export const set = (key, value) =>
  call(host.set, key, typeof value === 'string' ? encoder.encode(value) : value);
/** Removes `key`; removing a missing key succeeds. */
export const remove = (key) => call(host.delete, key);
/** Whether `key` has a value. */
export const exists = (key) => call(host.exists, key);
/** Up to `limit` keys starting with `prefix`, in byte order. */
export const listKeys = (prefix = '', limit = 100) => call(host.listKeys, prefix, limit);
/** Atomically adds `delta` to the counter under `key` (missing: 0); returns the new value. */
export const increment = (key, delta = 1) => Number(call(host.increment, key, BigInt(delta)));
/** The value under `key` as UTF-8 text, or undefined. */
export function getText(key) {
  const raw = get(key);
  return raw === undefined ? undefined : decoder.decode(raw);
}
/** The value under `key` parsed as JSON, or `fallback` when there is none. */
export function getJson(key, fallback = undefined) {
  const text = getText(key);
  return text === undefined ? fallback : JSON.parse(text);
}
/** Stores `value` as JSON under `key`. */
export const setJson = (key, value) => set(key, JSON.stringify(value));
