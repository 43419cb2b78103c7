/**
 * The SigV4 canonical request, built the way `@smithy/signature-v4` 5.x
 * (the signer of the AWS SDK for JavaScript v3, `uriEscapePath: true`, as
 * for every service but S3) builds it, so that the verifier in sigv4.ts
 * gives exactly the answers it gave when it re-signed requests with that
 * library (the property test in test/unit/sigv4-property.test.ts compares
 * both on random requests):
 *
 *   METHOD \n canonical path \n canonical query \n
 *   name:value \n ... (signed headers, sorted) \n \n
 *   name;name;... \n payload hash
 *
 * Pure string work, no secrets: the HMAC chain lives in sigv4.ts.
 */

/** @smithy's escapeUri: encodeURIComponent, plus ! ' ( ) * (RFC 3986 keeps only A-Z a-z 0-9 - _ . ~). Throws URIError on a lone surrogate. */
export function uriEscape(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** decodeURIComponent that leaves a malformed escape as it is. */
export function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** The raw query string as the signer is handed it: decoded names and values, repeated names as lists. */
export function parseQuery(raw: string): Record<string, string | string[]> {
  const query: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
  if (raw === '') return query;
  for (const pair of raw.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const name = decode(eq < 0 ? pair : pair.slice(0, eq));
    const value = eq < 0 ? '' : decode(pair.slice(eq + 1));
    const prev = query[name];
    query[name] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value];
  }
  return query;
}

/**
 * The canonical path of the path as sent. The path is percent-decoded once
 * and then URI-encoded once (segment by segment, `.` and `..` resolved,
 * empty segments dropped, a trailing slash kept), which is what the gateway
 * has always compared against; KMS's path is always `/`. Always absolute:
 * an empty path is `/` (as @smithy's HttpRequest makes it).
 */
export function canonicalPath(rawPath: string): string {
  if (rawPath === '/') return '/';
  const path = decode(rawPath);
  const segments: string[] = [];
  for (const segment of path.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') segments.pop();
    else segments.push(segment);
  }
  const normalized = `/${segments.join('/')}${segments.length > 0 && path.endsWith('/') ? '/' : ''}`;
  return uriEscape(normalized).replace(/%2F/g, '/');
}

/**
 * The canonical query string: pairs URI-encoded, sorted by name, a repeated
 * name's pairs sorted among themselves; X-Amz-Signature (any case) left out.
 */
export function canonicalQuery(raw: string): string {
  if (raw === '') return '';
  const query = parseQuery(raw);
  const names: string[] = [];
  const serialized = new Map<string, string>();
  for (const name of Object.keys(query)) {
    if (name.toLowerCase() === 'x-amz-signature') continue;
    const encodedName = uriEscape(name);
    names.push(encodedName);
    const value = query[name] as string | string[];
    serialized.set(
      encodedName,
      typeof value === 'string' ? `${encodedName}=${uriEscape(value)}` : value.map((v) => `${encodedName}=${uriEscape(v)}`).sort().join('&'),
    );
  }
  return (
    names
      .sort()
      // @smithy/signature-v4 5.x collects the pairs in a plain object, where a
      // parameter named __proto__ reads back as Object.prototype: its pairs
      // sign as "[object Object]". The SDK signs them so, and so did this
      // gateway; keep that answer.
      .map((name) => (name === '__proto__' ? '[object Object]' : (serialized.get(name) as string)))
      .join('&')
  );
}

const NEEDS_FOLDING = /[\r\n\t]| {2}|^ | $/;

/** A header value as signed: CR and LF become spaces, runs of spaces and tabs one space, one leading and one trailing space dropped. */
export function canonicalHeaderValue(value: string): string {
  if (!NEEDS_FOLDING.test(value)) return value;
  return value
    .replace(/[\r\n]/g, ' ')
    .replace(/[ \t]+/g, ' ')
    .replace(/^ | $/g, '');
}

export interface CanonicalRequestParts {
  method: string;
  /** The path as sent (before decoding). */
  path: string;
  /** The raw query string. */
  query: string;
  /** Signed header names (lower case, unique) and their values as sent; sorted here. */
  headers: Map<string, string>;
  payloadHash: string;
}

/** The canonical request. Throws URIError when the path or query holds a lone surrogate (the signer could not sign it either). */
export function canonicalRequest(parts: CanonicalRequestParts): string {
  const names = [...parts.headers.keys()].sort();
  let lines = '';
  for (const name of names) lines += `${name}:${canonicalHeaderValue(parts.headers.get(name) as string)}\n`;
  // @smithy's HttpRequest defaults an empty method to GET.
  return `${parts.method || 'GET'}\n${canonicalPath(parts.path)}\n${canonicalQuery(parts.query)}\n${lines}\n${names.join(';')}\n${parts.payloadHash}`;
}
