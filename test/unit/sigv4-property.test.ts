/**
 * SigV4 verification, property-based (fast-check), with @smithy/signature-v4
 * (the signer of the AWS SDK for JavaScript) as the oracle:
 *
 * - any request the SDK's signer signs is accepted, whatever its headers
 *   (odd white space, repeated values, any subset signed), path, query and
 *   body; and the same request with one byte of the body, one signed header
 *   value, the date or the signature changed is refused with
 *   InvalidSignatureException;
 * - on random requests, well-formed or hostile, the verifier gives exactly
 *   the answer of the verifier it replaced (which re-signed every request
 *   with @smithy/signature-v4, test/support/sigv4-reference.ts): the same
 *   principal, or the same error and message.
 */
import { Sha256 } from '@smithy/core/checksum';
import { SignatureV4 } from '@smithy/signature-v4';
import { expect } from 'chai';
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { Credential } from '../../src/auth/credentials.js';
import { SigV4Authenticator } from '../../src/auth/sigv4.js';
import type { Authenticator, SignedRequest } from '../../src/auth/types.js';
import { KmsError } from '../../src/errors.js';
import { ReferenceSigV4Authenticator } from '../support/sigv4-reference.js';

const REGION = 'us-east-1';
const KEYS = [
  { accessKeyId: 'AKIAPROPERTYTEST0001', secret: 'property-test-secret-0123456789abcdef', name: 'alice' },
  // IAM secrets are base64-ish; the credentials file allows any non-blank text.
  { accessKeyId: 'AKIAPROPERTYTEST0002', secret: 'pröperty/sécret+€😀-0123456789', name: 'bob' },
] as const;
const credentials = new Map<string, Credential>(
  KEYS.map((k) => [k.accessKeyId, { principal: { name: k.name, admin: false, accessKeyId: k.accessKeyId }, secret: k.secret }]),
);
const lookup = { lookup: (id: string) => credentials.get(id) };

/** The gateway's clock, set by each case. */
let now = Date.UTC(2026, 0, 1, 12, 0, 0);
const verifier = new SigV4Authenticator({ region: REGION, credentials: lookup, now: () => now });
const reference = new ReferenceSigV4Authenticator({ region: REGION, credentials: lookup, now: () => now });

const MISMATCH =
  'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.';

/** 20260101T120000Z */
function basicFormat(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '');
}

/** What a verifier answers, as one comparable line. */
async function outcome(auth: Authenticator, req: SignedRequest): Promise<string> {
  try {
    const principal = await auth.authenticate(req);
    return `accepted: ${principal.name} ${principal.accessKeyId}`;
  } catch (e) {
    if (e instanceof KmsError) return `${e.name}: ${e.message}`;
    return `threw ${String(e)}`;
  }
}

function clone(req: SignedRequest): SignedRequest {
  const headers: IncomingHttpHeaders = {};
  for (const [k, v] of Object.entries(req.headers)) headers[k] = Array.isArray(v) ? [...v] : v;
  return { ...req, headers, body: Buffer.from(req.body) };
}

// ------------------------------------------------ requests as the SDK signs them

/** Characters of path segments and query names and values: reserved, unicode, the escape character itself. */
const textChar = fc.constantFrom('a', 'Z', '0', '-', '_', '.', '~', ' ', '%', '+', '!', '*', '(', ')', "'", ':', '@', '=', '&', ';', ',', '/', '?', '#', 'é', '€', '中', '😀');
/** How a character travels on the wire: as encodeURIComponent leaves it, or every UTF-8 byte escaped (upper or lower case hex). */
const escapeMode = fc.constantFrom('uri', 'upper', 'lower');
const wireChar = fc.tuple(textChar, escapeMode);
const wireText = (maxLength: number) => fc.array(wireChar, { maxLength });

function toWire(chars: [string, string][]): string {
  return chars
    .map(([c, mode]) => {
      const uri = encodeURIComponent(c);
      if (mode === 'uri') return uri;
      const all = [...Buffer.from(c, 'utf8')].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');
      return mode === 'upper' ? all.toUpperCase() : all;
    })
    .join('');
}
const plain = (chars: [string, string][]) => chars.map(([c]) => c).join('');

/** Path segments: '' and '.' and '..' as well (the signer resolves them). '/' inside a segment travels escaped. */
const segment = fc.oneof({ arbitrary: wireText(6), weight: 6 }, { arbitrary: fc.constantFrom<[string, string][]>([], [['.', 'uri']], [['.', 'uri'], ['.', 'uri']]), weight: 1 });

/** Header values with the white space the canonical form folds: runs of spaces and tabs, leading and trailing. */
const headerValue = fc.array(fc.constantFrom('a', 'B', '7', ' ', '  ', '\t', ' \t ', ';', '=', '/', '"', ',', '-', '.', '(', ')'), { maxLength: 12 }).map((p) => p.join(''));
const HEADER_NAMES = [
  'content-type',
  'x-amz-target',
  'x-amz-user-agent',
  'amz-sdk-invocation-id',
  'amz-sdk-request',
  'content-length',
  'x-custom',
  'accept',
  'user-agent',
  'x-amz-meta-note',
  'x-amzn-trace-id',
  'cache-control',
  'x-forwarded-for',
];
const extraHeader = fc.record({
  name: fc.constantFrom(...HEADER_NAMES),
  /** As the signer is handed it: Content-Type, CONTENT-TYPE ... */
  nameCase: fc.constantFrom('lower', 'upper', 'title'),
  /** A string, or several values (node:http hands repeated set-cookie headers over as a list; they are signed joined with ','). */
  value: fc.oneof({ arbitrary: headerValue, weight: 4 }, { arbitrary: fc.array(headerValue, { minLength: 2, maxLength: 3 }), weight: 1 }),
  signed: fc.boolean(),
});

const sdkCase = fc.record({
  method: fc.constantFrom('POST', 'GET', 'PUT', 'DELETE'),
  host: fc.constantFrom('127.0.0.1:8080', 'kms.internal.example', 'localhost'),
  segments: fc.array(segment, { maxLength: 4 }),
  trailingSlash: fc.boolean(),
  query: fc.array(
    fc.record({
      // __proto__ too: @smithy/signature-v4 5.x signs its pairs as "[object Object]".
      name: fc.oneof({ arbitrary: wireText(5), weight: 5 }, { arbitrary: fc.constant([...'__proto__'].map((ch): [string, string] => [ch, 'uri'])), weight: 1 }),
      value: wireText(6),
      bare: fc.boolean(),
    }),
    { maxLength: 5 },
  ),
  headers: fc.uniqueArray(extraHeader, { selector: (h) => h.name, maxLength: 8 }),
  body: fc.oneof(fc.uint8Array({ maxLength: 600 }), fc.string({ maxLength: 300 }).map((s) => new TextEncoder().encode(`{"KeyId":"alias/demo-aes","Plaintext":"${s}"}`))),
  applyChecksum: fc.boolean(),
  key: fc.constantFrom(0, 1),
  /** The gateway's clock, any second from 2001 to 2099 ... */
  nowSeconds: fc.integer({ min: Date.UTC(2001, 0, 1) / 1000, max: Date.UTC(2099, 0, 1) / 1000 }),
  /** ... and the client's, up to 290 s off. */
  skewSeconds: fc.integer({ min: -290, max: 290 }),
  // Which mutation to try where.
  pick: fc.nat(),
  flip: fc.integer({ min: 1, max: 255 }),
  dateShift: fc.oneof(fc.integer({ min: -9, max: -1 }), fc.integer({ min: 1, max: 9 })),
});
type SdkCase = typeof sdkCase extends fc.Arbitrary<infer T> ? T : never;

function caseName(name: string, nameCase: string): string {
  if (nameCase === 'upper') return name.toUpperCase();
  if (nameCase === 'title') return name.replace(/(^|-)([a-z])/g, (_, d: string, c: string) => d + c.toUpperCase());
  return name;
}

/** The request signed by @smithy/signature-v4 as the SDK signs, and as node:http hands it to the gateway. */
async function sdkSigned(c: SdkCase): Promise<{ req: SignedRequest; signedAt: number }> {
  const key = KEYS[c.key] as (typeof KEYS)[number];
  const signedAt = (c.nowSeconds + c.skewSeconds) * 1000;
  // The signer is given the path and query the gateway decodes from the wire.
  const path = `/${c.segments.map(plain).join('/')}${c.trailingSlash && c.segments.length > 0 ? '/' : ''}`;
  const wirePath = `/${c.segments.map(toWire).join('/')}${c.trailingSlash && c.segments.length > 0 ? '/' : ''}`;
  const query: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
  const wirePairs: string[] = [];
  for (const { name, value, bare } of c.query) {
    const n = plain(name);
    const v = plain(value);
    // A bare name (`?a`) reads as an empty value; a bare empty name is no pair at all.
    const isBare = bare && v === '' && n !== '';
    wirePairs.push(isBare ? toWire(name) : `${toWire(name)}=${toWire(value)}`);
    const prev = query[n];
    query[n] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  const headers: Record<string, string> = { host: c.host };
  const wireValues = new Map<string, string | string[]>();
  const signable = new Set(['host']);
  const unsignable = new Set<string>();
  for (const h of c.headers) {
    // The gateway refuses X-Amz-Target unless it is signed; the SDK always signs it.
    const signed = h.signed || h.name === 'x-amz-target';
    headers[caseName(h.name, h.nameCase)] = Array.isArray(h.value) ? h.value.join(',') : h.value;
    wireValues.set(h.name, h.value);
    (signed ? signable : unsignable).add(h.name);
  }
  const signer = new SignatureV4({
    credentials: { accessKeyId: key.accessKeyId, secretAccessKey: key.secret },
    region: REGION,
    service: 'kms',
    sha256: Sha256,
    applyChecksum: c.applyChecksum,
  });
  const out = await signer.sign(
    { method: c.method, protocol: 'http:', hostname: c.host, path, query, headers, body: c.body },
    { signingDate: new Date(signedAt), signableHeaders: signable, unsignableHeaders: unsignable },
  );
  const wireHeaders: IncomingHttpHeaders = {};
  for (const [k, v] of Object.entries(out.headers)) wireHeaders[k.toLowerCase()] = wireValues.get(k.toLowerCase()) ?? (v as string);
  return { req: { method: c.method, path: wirePath, query: wirePairs.join('&'), headers: wireHeaders, body: Buffer.from(c.body) }, signedAt };
}

function signedNames(req: SignedRequest): string[] {
  return (/SignedHeaders=([^,\s]+)/.exec(String(req.headers['authorization']))?.[1] ?? '').split(';');
}

async function expectRefused(req: SignedRequest, what: string, message?: string): Promise<void> {
  const got = await outcome(verifier, req);
  expect(got, what).to.match(/^InvalidSignatureException: /);
  if (message !== undefined) expect(got, what).to.equal(`InvalidSignatureException: ${message}`);
}

describe('SigV4 verification (property-based, @smithy/signature-v4 as the oracle)', function () {
  this.timeout(120_000);

  it('accepts every request the SDK signs, and refuses it with one body byte, one signed header value, the date or the signature changed', async () => {
    await fc.assert(
      fc.asyncProperty(sdkCase, async (c) => {
        now = c.nowSeconds * 1000;
        const { req, signedAt } = await sdkSigned(c);
        const key = KEYS[c.key] as (typeof KEYS)[number];
        expect(await outcome(verifier, req), 'as signed').to.equal(`accepted: ${key.name} ${key.accessKeyId}`);

        const body = clone(req);
        if (body.body.length === 0) body.body = Buffer.from([c.flip]);
        else {
          const i = c.pick % body.body.length;
          body.body[i] = (body.body[i] as number) ^ c.flip;
        }
        await expectRefused(body, 'one body byte changed', MISMATCH);

        const header = clone(req);
        const names = signedNames(req).filter((n) => n !== 'x-amz-date');
        const name = names[c.pick % names.length] as string;
        const value = header.headers[name];
        if (Array.isArray(value)) value[value.length - 1] += 'x';
        else header.headers[name] = `${String(value)}x`;
        await expectRefused(header, `signed header ${name} changed`, MISMATCH);

        // A date a few seconds off: still inside the window, so refused for the signature
        // (or, across midnight UTC, for the credential scope's date).
        const date = clone(req);
        date.headers['x-amz-date'] = basicFormat(signedAt + c.dateShift * 1000);
        await expectRefused(date, 'the date changed');

        const signature = clone(req);
        const auth = String(req.headers['authorization']);
        const at = auth.length - 64 + (c.pick % 64);
        const digit = parseInt(auth.charAt(at), 16);
        signature.headers['authorization'] = auth.slice(0, at) + ((digit + (c.flip % 15) + 1) % 16).toString(16) + auth.slice(at + 1);
        await expectRefused(signature, 'one signature digit changed', MISMATCH);
      }),
      { numRuns: 400 },
    );
  });

  it('gives exactly the answers of the verifier it replaced, on requests well-formed or not', async () => {
    const seen = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(hostileCase, async (c) => {
        now = c.nowSeconds * 1000;
        const req = await hostileRequest(c);
        const expected = await outcome(reference, req);
        const got = await outcome(verifier, req);
        expect(got, `request: ${JSON.stringify({ ...req, body: req.body.toString('latin1') })}`).to.equal(expected);
        const kind = expected.replace(/:.*$/s, '');
        seen.set(kind, (seen.get(kind) ?? 0) + 1);
      }),
      { numRuns: 1500 },
    );
    // Not vacuous: the cases reach the signature check, and pass it too.
    expect(seen.get('accepted') ?? 0, JSON.stringify([...seen])).to.be.greaterThan(100);
    expect(seen.get('InvalidSignatureException') ?? 0, JSON.stringify([...seen])).to.be.greaterThan(100);
  });
});

// ------------------------------------------------ hostile requests, for the comparison with the replaced verifier

const anyText = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.string({ unit: 'binary', maxLength: 12 }),
  fc.string({ unit: 'grapheme', maxLength: 6 }),
  fc.constantFrom('', ' ', '\t', '\r\n', ' a  b ', '\ta\t\tb\t', '\f\v', '%', '%zz', '%E0%A4', '\uD800', '\uDC00x', '__proto__', 'constructor', 'é', '😀'),
);
const HOSTILE_HEADER_NAMES = [
  ...HEADER_NAMES,
  'x-amz-content-sha256',
  'x-amz-security-token',
  'date',
  '__proto__',
  'constructor',
  'proxy-authorization',
  'sec-fetch-mode',
  'x-multi',
];

/** `good` about 7 times in 8, else one of `bad`: a case is hostile in a few ways at once, not in all. */
function mostly<T extends string>(good: T, ...bad: T[]): fc.Arbitrary<T> {
  return fc.oneof({ arbitrary: fc.constant(good), weight: 7 }, { arbitrary: fc.constantFrom(...bad), weight: 1 });
}

const hostileCase = fc.record({
  method: fc.oneof({ arbitrary: fc.constantFrom('POST', 'GET', '', 'post'), weight: 4 }, { arbitrary: anyText, weight: 1 }),
  path: fc.oneof(
    { arbitrary: fc.constantFrom('/', '', 'a', '/a/../..', '/./', '//x//y/', '/%', '/%zz', '/%E0%A4', '/\uD800', '/a%2Fb', '/%2e%2E/x', '/é', '/%C3%A9', '/a b', '/!*()\''), weight: 4 },
    { arbitrary: fc.array(segment, { maxLength: 3 }).map((s) => `/${s.map(toWire).join('/')}`), weight: 2 },
    { arbitrary: anyText, weight: 1 },
  ),
  query: fc.oneof(
    { arbitrary: fc.constant(''), weight: 4 },
    {
      arbitrary: fc.constantFrom('__proto__=1', '__proto__=1&__proto__=2&a=b', 'a=1&a=&a', '&&', '=', '=x', 'X-Amz-Signature=1&b=2', 'x-amz-SIGNATURE=', '%ZZ=%', 'x=\uDC00', 'a+b=c+d', 'k=%2B%20', 'b=2&a=1&B=3', 'a=%E2%82%AC&a=%e2%82%ac'),
      weight: 3,
    },
    { arbitrary: fc.array(fc.tuple(anyText, anyText), { maxLength: 4 }).map((p) => p.map(([k, v]) => `${k}=${v}`).join('&')), weight: 2 },
  ),
  headers: fc.uniqueArray(
    fc.record({
      name: fc.constantFrom(...HOSTILE_HEADER_NAMES),
      value: fc.oneof({ arbitrary: anyText, weight: 4 }, { arbitrary: headerValue, weight: 4 }, { arbitrary: fc.array(anyText, { minLength: 1, maxLength: 3 }), weight: 1 }),
    }),
    { selector: (h) => h.name, maxLength: 6 },
  ),
  host: fc.oneof(fc.constantFrom('127.0.0.1:8080', ' spaced  host '), anyText),
  /** Extra names in SignedHeaders: another case, repeats, headers not sent, the ones a signer writes itself. */
  signedExtras: fc.subarray(['Host', 'HOST', 'x-amz-date', 'X-Amz-Date', 'missing-header', 'date', 'authorization', '', 'host', 'x-amz-target', 'x-amz-security-token', 'x-amz-content-sha256']),
  signAll: mostly('all', 'host and x-amz-*'),
  dropHost: fc.integer({ min: 0, max: 19 }),
  body: fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.constantFrom(new Uint8Array(0), new TextEncoder().encode('{}'))),
  contentSha: fc.constantFrom('none', 'none', 'right', 'right', 'upper', 'padded', 'wrong'),
  dateMode: mostly('x-amz-date', 'date', 'both', 'none', 'empty', 'garbage', 'iso', 'rollover'),
  nowSeconds: fc.integer({ min: Date.UTC(2001, 0, 1) / 1000, max: Date.UTC(2099, 0, 1) / 1000 }),
  skewSeconds: fc.oneof({ arbitrary: fc.integer({ min: -300, max: 300 }), weight: 6 }, { arbitrary: fc.constantFrom(-301, 301, -86_400, 86_400), weight: 1 }),
  credential: mostly('good', 'other-key', 'unknown', 'region', 'service', 'terminator', 'day', 'slashes', 'short', 'long', 'empty'),
  algorithm: mostly('AWS4-HMAC-SHA256', 'AWS4-HMAC-SHA1', 'aws4-hmac-sha256', ''),
  layout: fc.oneof(
    { arbitrary: fc.constantFrom('sdk', 'commas', 'spaces', 'padded'), weight: 7 },
    { arbitrary: fc.constantFrom('no-signature', 'no-credential', 'no-signed-headers', 'bare-part', 'absent', 'blank', 'array'), weight: 1 },
  ),
  signature: mostly('computed', 'upper', 'short', 'random', 'empty'),
  securityToken: fc.integer({ min: 0, max: 19 }),
  key: fc.constantFrom(0, 1),
  randomHex: fc.uint8Array({ minLength: 32, maxLength: 32 }),
});
type HostileCase = typeof hostileCase extends fc.Arbitrary<infer T> ? T : never;

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(',') : value;
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/**
 * The signature of `req` as a client that signed exactly what the gateway
 * reads would have computed it, with @smithy/signature-v4: the decoded path
 * and query, the listed headers as they arrived, the request's date. Lets
 * hostile requests still carry signatures that verify, so the comparison
 * reaches the end of the checks.
 */
async function signatureAsRead(req: SignedRequest, list: string, secret: string, accessKeyId: string, signedAt: number): Promise<string | undefined> {
  const names = list.split(';').map((n) => n.toLowerCase());
  const headers: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const name of names) {
    const value = Object.hasOwn(req.headers, name) ? single(req.headers[name]) : undefined;
    if (typeof value === 'string') headers[name] = value;
  }
  const query: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
  for (const pair of req.query === '' ? [] : req.query.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const n = decode(eq < 0 ? pair : pair.slice(0, eq));
    const v = eq < 0 ? '' : decode(pair.slice(eq + 1));
    const prev = query[n];
    query[n] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  const signer = new SignatureV4({ credentials: { accessKeyId, secretAccessKey: secret }, region: REGION, service: 'kms', sha256: Sha256, applyChecksum: false });
  try {
    const out = await signer.sign(
      { method: req.method, protocol: 'http:', hostname: 'h', path: decode(req.path), query, headers, body: req.body },
      { signingDate: new Date(signedAt), signableHeaders: new Set(names) },
    );
    return /Signature=([0-9a-f]{64})$/.exec(String(out.headers['authorization']))?.[1];
  } catch {
    return undefined;
  }
}

async function hostileRequest(c: HostileCase): Promise<SignedRequest> {
  const key = KEYS[c.key] as (typeof KEYS)[number];
  const signedAt = (c.nowSeconds + c.skewSeconds) * 1000;
  const body = Buffer.from(c.body);
  const headers: IncomingHttpHeaders = { host: c.host };
  for (const h of c.headers) {
    // node:http never makes a __proto__ header; a SignedRequest can still carry one, as an own property.
    if (h.name === '__proto__') Object.defineProperty(headers, '__proto__', { value: h.value, enumerable: true, writable: true, configurable: true });
    else headers[h.name] = h.value;
  }

  const date = basicFormat(signedAt);
  delete headers['date'];
  if (c.dateMode === 'x-amz-date' || c.dateMode === 'both') headers['x-amz-date'] = date;
  if (c.dateMode === 'date') headers['date'] = date;
  if (c.dateMode === 'both') headers['date'] = new Date(signedAt).toUTCString();
  if (c.dateMode === 'empty') headers['x-amz-date'] = '';
  if (c.dateMode === 'garbage') headers['x-amz-date'] = 'yesterday';
  if (c.dateMode === 'iso') headers['x-amz-date'] = new Date(signedAt).toISOString();
  if (c.dateMode === 'rollover') headers['x-amz-date'] = '20260231T120000Z';

  const bodyHash = createHash('sha256').update(body).digest('hex');
  if (c.contentSha === 'right') headers['x-amz-content-sha256'] = bodyHash;
  if (c.contentSha === 'upper') headers['x-amz-content-sha256'] = bodyHash.toUpperCase();
  if (c.contentSha === 'padded') headers['x-amz-content-sha256'] = ` ${bodyHash} `;
  if (c.contentSha === 'wrong') headers['x-amz-content-sha256'] = bodyHash.replace(/^./, (d) => (d === '0' ? '1' : '0'));
  if (c.securityToken === 0) headers['x-amz-security-token'] = 'FwoGZXIvYXdzEXAMPLE';

  const sent = Object.keys(headers).filter((n) => n !== 'host' || c.dropHost !== 0);
  const listed = [...(c.signAll === 'all' ? sent : sent.filter((n) => n === 'host' || n.startsWith('x-amz-'))), ...c.signedExtras];
  const list = (c.dropHost === 0 ? listed.filter((n) => n.toLowerCase() !== 'host') : listed).join(';');

  const scopeDate = date.slice(0, 8);
  const accessKeyId = c.credential === 'other-key' ? (KEYS[1 - c.key] as (typeof KEYS)[number]).accessKeyId : c.credential === 'unknown' ? 'AKIANOBODYANYWHERE00' : key.accessKeyId;
  const scope = {
    good: `${accessKeyId}/${scopeDate}/${REGION}/kms/aws4_request`,
    'other-key': `${accessKeyId}/${scopeDate}/${REGION}/kms/aws4_request`,
    unknown: `${accessKeyId}/${scopeDate}/${REGION}/kms/aws4_request`,
    region: `${accessKeyId}/${scopeDate}/eu-west-1/kms/aws4_request`,
    service: `${accessKeyId}/${scopeDate}/${REGION}/s3/aws4_request`,
    terminator: `${accessKeyId}/${scopeDate}/${REGION}/kms/aws5_request`,
    day: `${accessKeyId}/19991231/${REGION}/kms/aws4_request`,
    slashes: `${accessKeyId}/${scopeDate}/${REGION}/kms/aws4_request///`,
    short: `${accessKeyId}/${scopeDate}/${REGION}/kms`,
    long: `${accessKeyId}/${scopeDate}/${REGION}/kms/aws4_request/x`,
    empty: '',
  }[c.credential];

  const req: SignedRequest = { method: c.method, path: c.path, query: c.query, headers, body };
  const computed = await signatureAsRead(req, list, key.secret, key.accessKeyId, signedAt);
  const random = Buffer.from(c.randomHex).toString('hex');
  const signature = {
    computed: computed ?? random,
    upper: (computed ?? random).toUpperCase(),
    short: (computed ?? random).slice(0, 63),
    random,
    empty: '',
  }[c.signature];

  const parts = [`Credential=${scope}`, `SignedHeaders=${list}`, `Signature=${signature}`];
  const authorization = {
    sdk: `${c.algorithm} ${parts.join(', ')}`,
    commas: `${c.algorithm} ${parts.join(',')}`,
    spaces: `${c.algorithm}   ${parts.join(' \t ')}`,
    padded: `  ${c.algorithm} ${parts.join(', ')}  `,
    'no-signature': `${c.algorithm} ${parts.slice(0, 2).join(', ')}`,
    'no-credential': `${c.algorithm} ${parts.slice(1).join(', ')}`,
    'no-signed-headers': `${c.algorithm} ${[parts[0], parts[2]].join(', ')}`,
    'bare-part': `${c.algorithm} ${parts.join(', ')}, junk`,
    absent: undefined,
    blank: '   ',
    array: `${c.algorithm} ${parts.join(', ')}`,
  }[c.layout];
  // A repeated Authorization header, as a list (node:http keeps only the first; a SignedRequest may carry both).
  if (authorization !== undefined) (headers as Record<string, string | string[]>)['authorization'] = c.layout === 'array' ? [authorization, 'x'] : authorization;
  return req;
}
