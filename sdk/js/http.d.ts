import { SkillError } from './index.js';

export const DEFAULT_MAX_BODY_BYTES: number;
export class HttpError extends SkillError {}
export class Response {
  readonly status: number;
  readonly headers: [string, string][];
  readonly body: Uint8Array;
  header(name: string): string | undefined;
  text(): string;
  json<T = unknown>(): T;
  raiseForStatus(): Response;
}
export interface RequestOptions {
  headers?: [string, string][] | Record<string, string>;
  body?: string | Uint8Array;
  json?: unknown;
  maxBodyBytes?: number;
}
export function request(method: string, url: string, options?: RequestOptions): Response;
export function get(url: string, options?: RequestOptions): Response;
export function post(url: string, options?: RequestOptions): Response;
export function put(url: string, options?: RequestOptions): Response;
export function del(url: string, options?: RequestOptions): Response;
