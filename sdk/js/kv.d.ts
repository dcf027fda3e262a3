import { SkillError } from './index.js';

/** A key-value operation failed; `reason` is the host's kv-error case. */
export class KvError extends SkillError {
  readonly reason: 'denied' | 'too-large' | 'quota-exceeded' | 'not-a-counter' | 'unavailable';
}
export function get(key: string): Uint8Array | undefined;
export function set(key: string, value: Uint8Array | string): void;
export function remove(key: string): void;
export function exists(key: string): boolean;
export function listKeys(prefix?: string, limit?: number): string[];
export function increment(key: string, delta?: number): number;
export function getText(key: string): string | undefined;
export function getJson<T = unknown>(key: string, fallback?: T): T;
export function setJson(key: string, value: unknown): void;
