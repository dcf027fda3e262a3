// Outbound HTTP over wasi:http: blocking, whole responses. The host lets a request out only
// to the hosts under `[permissions] http` (narrowed by the tenant's policy); others throw an
// `HttpError` of kind `denied`. Needs `world = "skill"`.
//
//   import * as http from 'omniforge-sdk/http.js';
//   const page = http.get('https://example.com/');
//   const item = http.post('https://api.example.com/items', { json: { name: 'x' } }).json();

import { handle } from 'wasi:http/outgoing-handler@0.2.12';
import { Fields, OutgoingBody, OutgoingRequest } from 'wasi:http/types@0.2.12';
import { SkillError } from './errors.js';

/** Largest response body read unless `maxBodyBytes` says otherwise (16 MiB). */
export const DEFAULT_MAX_BODY_BYTES = 16 << 20;

/** A request failed: `denied`, `unavailable` (network, TLS, timeout) or `failed`. */
export class HttpError extends SkillError {
  constructor(kind, message) {
    super(kind, message);
    this.name = 'HttpError';
  }
}

/** A whole HTTP response. */
export class Response {
  constructor(status, headers, body) {
    /** The status code. */
    this.status = status;
    /** `[name, value]` pairs in the order received. */
    this.headers = headers;
    /** The body, a Uint8Array. */
    this.body = body;
  }

  /** The first value of header `name` (case-insensitive), or undefined. */
  header(name) {
    const wanted = name.toLowerCase();
    const found = this.headers.find(([n]) => n.toLowerCase() === wanted);
    return found ? found[1] : undefined;
  }

  /** The body as UTF-8 text. */
  text() {
    return new TextDecoder().decode(this.body);
  }

  /** The body parsed as JSON. */
  json() {
    try {
      return JSON.parse(this.text());
    } catch (e) {
      throw new HttpError('unavailable', `the response (status ${this.status}) is not JSON: ${e.message}`);
    }
  }

  /** The response itself for 2xx; otherwise a `not-found` (404) or `unavailable` SkillError. */
  raiseForStatus() {
    if (this.status >= 200 && this.status < 300) return this;
    if (this.status === 404) throw SkillError.notFound('the HTTP service answered 404');
    throw SkillError.unavailable(`the HTTP service answered ${this.status}`);
  }
}

/** Sends a GET request. */
export const get = (url, options = {}) => request('GET', url, options);
/** Sends a POST request. */
export const post = (url, options = {}) => request('POST', url, options);
/** Sends a PUT request. */
export const put = (url, options = {}) => request('PUT', url, options);
/** Sends a DELETE request. */
export const del = (url, options = {}) => request('DELETE', url, options);

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'];

/**
 * Sends a request and reads the whole response; any status is a response.
 * `options`: `headers` (`[[name, value], …]` or an object), `body` (string or Uint8Array),
 * `json` (sent as JSON with its content type), `maxBodyBytes`.
 */
export function request(method, url, options = {}) {
  const { scheme, authority, path } = split(url);
  let headers = Array.isArray(options.headers)
    ? [...options.headers]
    : Object.entries(options.headers ?? {});
  let body = options.body ?? new Uint8Array();
  if (options.json !== undefined) {
    body = JSON.stringify(options.json);
    headers.push(['content-type', 'application/json']);
  }
  if (typeof body === 'string') body = new TextEncoder().encode(body);
  const encoder = new TextEncoder();
  let fields;
  try {
    fields = Fields.fromList(headers.map(([n, v]) => [String(n), encoder.encode(String(v))]));
  } catch (e) {
    throw new HttpError('failed', `invalid header: ${describe(e)}`);
  }
  const outgoing = new OutgoingRequest(fields);
  const upper = method.toUpperCase();
  outgoing.setMethod(
    METHODS.includes(upper) ? { tag: upper.toLowerCase() } : { tag: 'other', val: upper },
  );
  // The WIT names the cases HTTP and HTTPS.
  outgoing.setScheme({ tag: scheme.toUpperCase() });
  try {
    outgoing.setAuthority(authority);
    outgoing.setPathWithQuery(path);
  } catch {
    throw new HttpError('failed', `invalid URL: ${url}`);
  }
  const outgoingBody = outgoing.body();
  let pending;
  try {
    // Sent first, then the body streams: a large body written before there is a request
    // to read it would fill the host's buffer and wait forever.
    pending = handle(outgoing, undefined);
  } catch (e) {
    throw fromErrorCode(e.payload ?? e);
  }
  // A server may answer before reading the whole body and close the connection: then the
  // write fails but the answer is still the response, so a write error counts only when
  // there is no response.
  let sendError;
  const stream = outgoingBody.write();
  try {
    for (let start = 0; start < body.length; start += 4096) {
      stream.blockingWriteAndFlush(body.subarray(start, start + 4096));
    }
  } catch (e) {
    sendError = e;
  }
  stream[Symbol.dispose]?.();
  if (sendError === undefined) {
    try {
      OutgoingBody.finish(outgoingBody, undefined);
    } catch (e) {
      sendError = e;
    }
  }

  pending.subscribe().block();
  const ready = pending.get();
  if (ready === undefined) throw new HttpError('unavailable', 'no response after waiting for it');
  if (ready.tag === 'err') throw new HttpError('unavailable', 'the response was already taken');
  if (ready.val.tag === 'err') {
    const error = fromErrorCode(ready.val.val);
    if (sendError !== undefined && error.kind !== 'denied') {
      throw new HttpError('unavailable', `sending the body failed: ${describe(sendError.payload ?? sendError)}`);
    }
    throw error;
  }
  const response = ready.val.val;
  const status = response.status();
  const decoder = new TextDecoder('latin1');
  const pairs = response.headers().entries().map(([n, v]) => [n, decoder.decode(v)]);
  const incoming = response.consume();
  const input = incoming.stream();
  const limit = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const chunks = [];
  let size = 0;
  for (;;) {
    let chunk;
    try {
      chunk = input.blockingRead(65536n);
    } catch (e) {
      const error = e.payload ?? e;
      if (error && error.tag === 'closed') break;
      throw new HttpError('unavailable', 'reading the body failed');
    }
    size += chunk.length;
    if (size > limit) throw new HttpError('failed', `the response body is over ${limit} bytes`);
    chunks.push(chunk);
  }
  const data = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    data.set(chunk, offset);
    offset += chunk.length;
  }
  return new Response(status, pairs, data);
}

/** `{scheme, authority, path}` of an absolute http(s) URL; the host checks the rest. */
function split(url) {
  const match = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^#]*)/.exec(url);
  if (!match || !['http', 'https'].includes(match[1].toLowerCase())) {
    throw new HttpError('failed', `only absolute http(s) URLs are supported: ${url}`);
  }
  const authority = match[2];
  if (!authority || authority.includes('@')) {
    throw new HttpError('failed', `the URL needs a host (and no user info): ${url}`);
  }
  const path = match[3].startsWith('/') ? match[3] : `/${match[3]}`;
  return { scheme: match[1].toLowerCase(), authority, path };
}

function fromErrorCode(code) {
  const tag = code && code.tag;
  if (tag === 'HTTP-request-denied') {
    return new HttpError('denied', 'the host refused this destination (not in the allow-list)');
  }
  if (tag === 'destination-IP-prohibited') {
    return new HttpError('denied', 'the destination address is not allowed');
  }
  return new HttpError('unavailable', `HTTP request failed: ${tag ?? describe(code)}`);
}

function describe(value) {
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}
