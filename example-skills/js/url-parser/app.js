// examples/url-parser: parses and normalizes a URL with the WHATWG URL parser.
//
//   {"url": "HTTPS://Example.COM:443/a/../b?q=1&q=2#top"} →
//   {"href": "https://example.com/b?q=1&q=2#top", "host": "example.com", "query": {"q": ["1", "2"]}, …}
//
// A relative URL is resolved against `base` when given.

import { skill, SkillError } from 'omniforge-sdk';

export const handler = skill((ctx, input) => {
  let url;
  try {
    url = input.base === undefined ? new URL(input.url) : new URL(input.url, input.base);
  } catch {
    throw SkillError.invalidInput(`not a valid URL: ${input.url}`);
  }
  const query = {};
  for (const [key, value] of url.searchParams) {
    (query[key] ??= []).push(value);
  }
  return {
    href: url.href,
    scheme: url.protocol.replace(/:$/, ''),
    username: decodeURIComponent(url.username),
    host: url.hostname,
    port: url.port === '' ? null : Number(url.port),
    origin: url.origin === 'null' ? null : url.origin,
    path: url.pathname,
    segments: url.pathname.split('/').filter(Boolean).map(decodeURIComponent),
    query,
    fragment: url.hash === '' ? null : decodeURIComponent(url.hash.slice(1)),
  };
});
