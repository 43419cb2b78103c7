/**
 * Hostile input, property-based (fast-check): thousands of generated
 * malformed requests, sent over real TCP connections (a raw HTTP/1.1 client,
 * so duplicated and missing headers, odd methods and paths reach the
 * gateway as written) to a running gateway process. Most are SigV4-signed
 * with the demo credentials, so what is fuzzed gets past authentication to
 * the body checks; a share is unsigned or carries a garbled signature.
 *
 * For every answer: a status below 500; on every non-2xx answer a KMS error
 * envelope (`__type` in the JSON body and the same name in X-Amzn-ErrorType).
 * At the end: the process alive and serving, no "unexpected error" in its
 * log, and the token's objects unchanged (their count, and their labels,
 * which carry the key and alias records' generations), read over PKCS#11
 * from the test process.
 *
 * Operations that change state only ever get key ids that do not exist or a
 * member that cannot validate, so every request that reaches them is a
 * client's mistake; the read-only ones also get the real demo key, so valid
 * requests are mixed in and go all the way to the token.
 */
import { connect } from 'node:net';
import { expect } from 'chai';
import fc from 'fast-check';
import { operations } from '../../src/operations/registry.js';
import { UNSUPPORTED_OPERATIONS } from '../../src/operations/unsupported.js';
import {
  ACCOUNT,
  REGION,
  defaultConfig,
  kmsClient,
  makeToken,
  signHeaders,
  startGateway,
  type GatewayProcess,
  type TokenDir,
} from '../support/gateway.js';
import { tokenLabels } from '../support/token.js';
import { EncryptCommand } from '@aws-sdk/client-kms';

type Json = Record<string, any>;

/** 3,000 by default (well under a minute); KMSGW_FUZZ_RUNS asks for a longer hunt. */
const RUNS = Number(process.env['KMSGW_FUZZ_RUNS'] ?? 3_000);
const AES_KEY_ID = '0b5e6a1c-7d43-4f0e-9a35-2c8d1e6f4a01';
const RSA_KEY_ID = '0b5e6a1c-7d43-4f0e-9a35-2c8d1e6f4a02';

/** Operations that change what is on the token: never handed a real key. */
const MUTATING = new Set([
  'CreateKey',
  'EnableKey',
  'DisableKey',
  'UpdateKeyDescription',
  'ScheduleKeyDeletion',
  'CancelKeyDeletion',
  'TagResource',
  'UntagResource',
  'CreateAlias',
  'UpdateAlias',
  'DeleteAlias',
  'EnableKeyRotation',
  'DisableKeyRotation',
  'RotateKeyOnDemand',
]);
const KNOWN_OPERATIONS = [...operations.keys()];
const SERVED_OPERATIONS = KNOWN_OPERATIONS.filter((o) => !(UNSUPPORTED_OPERATIONS as readonly string[]).includes(o));

const MEMBERS = [
  'KeyId', 'Plaintext', 'CiphertextBlob', 'EncryptionContext', 'EncryptionAlgorithm', 'GrantTokens', 'DryRun',
  'KeySpec', 'NumberOfBytes', 'KeyPairSpec', 'SourceKeyId', 'DestinationKeyId', 'SourceEncryptionContext',
  'DestinationEncryptionContext', 'SourceEncryptionAlgorithm', 'DestinationEncryptionAlgorithm', 'Limit', 'Marker',
  'AliasName', 'TargetKeyId', 'Description', 'KeyUsage', 'Origin', 'Tags', 'TagKeys', 'Policy',
  'PendingWindowInDays', 'RotationPeriodInDays', 'CustomKeyStoreId', 'MultiRegion', 'Recipient',
  'BypassPolicyLockoutSafetyCheck', 'XksKeyId', 'IncludeKeyMaterial', 'CustomerMasterKeySpec', 'RotationType',
];
const ENUM_VALUES = [
  'SYMMETRIC_DEFAULT', 'RSAES_OAEP_SHA_1', 'RSAES_OAEP_SHA_256', 'SM2PKE', 'AES_256', 'AES_128', 'RSA_2048',
  'RSA_4096', 'ECC_NIST_P256', 'ENCRYPT_DECRYPT', 'SIGN_VERIFY', 'AWS_KMS', 'EXTERNAL', 'ON_DEMAND', '',
];
const REAL_KEY_IDS = [
  AES_KEY_ID,
  RSA_KEY_ID,
  'alias/demo-aes',
  'alias/demo-rsa-2048',
  `arn:aws:kms:${REGION}:${ACCOUNT}:key/${AES_KEY_ID}`,
  `arn:aws:kms:${REGION}:${ACCOUNT}:alias/demo-aes`,
];

// ---------------------------------------------------------------- generators

const anyString = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
);

/** Key ids that name nothing on this gateway, in every form and malformed. */
const unknownKeyId = fc.oneof(
  fc.uuid(),
  anyString,
  fc.uuid().map((u) => `arn:aws:kms:${REGION}:${ACCOUNT}:key/${u}`),
  fc.uuid().map((u) => `arn:aws:kms:eu-west-9:${ACCOUNT}:key/${u}`),
  anyString.map((s) => `alias/${s}`),
  anyString.map((s) => `arn:aws:kms:${REGION}:${ACCOUNT}:alias/fuzz-${s}`),
  fc.constantFrom('alias/', 'alias/aws/x', 'arn:aws:kms', 'arn:aws:kms:::key/', 'key/', '../../etc/passwd'),
);

const base64Of = (max: number) => fc.uint8Array({ maxLength: max }).map((b) => Buffer.from(b).toString('base64'));
const invalidBase64 = fc.oneof(
  fc.constantFrom('!!!!', 'abc', 'a===', '====', 'YWJj\nZGVm', 'YW Jj', '-_-_', '\u0000\u0001', 'é'),
  anyString.filter((s) => !/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(s)),
);
const oversizeString = fc.integer({ min: 4_097, max: 70_000 }).map((n) => 'A'.repeat(n));

/** A member's value: wrong types, odd numbers, blobs valid and not, oversize strings, nested values. */
const memberValue = (keyIds: fc.Arbitrary<string>): fc.Arbitrary<unknown> =>
  fc.oneof(
    { arbitrary: fc.jsonValue({ maxDepth: 3 }), weight: 4 },
    { arbitrary: keyIds, weight: 3 },
    { arbitrary: base64Of(5_000), weight: 3 },
    { arbitrary: invalidBase64, weight: 2 },
    { arbitrary: fc.constantFrom(...ENUM_VALUES), weight: 2 },
    { arbitrary: fc.oneof(fc.integer(), fc.double(), fc.constantFrom(0, -1, 1024, 1025, 2 ** 31, 2 ** 53 + 2, -0, 1e308)), weight: 2 },
    { arbitrary: oversizeString, weight: 1 },
    { arbitrary: fc.dictionary(anyString, fc.oneof(anyString, fc.jsonValue({ maxDepth: 2 })), { maxKeys: 5 }), weight: 2 },
    { arbitrary: fc.array(fc.oneof(anyString, fc.jsonValue({ maxDepth: 2 })), { maxLength: 12 }), weight: 2 },
  );

/** A JSON object body for `operation`: known and unknown members. */
function objectBody(operation: string | undefined): fc.Arbitrary<string> {
  const mutating = operation !== undefined && MUTATING.has(operation);
  const keyIds = mutating ? unknownKeyId : fc.oneof(fc.constantFrom(...REAL_KEY_IDS), unknownKeyId);
  const name = fc.oneof({ arbitrary: fc.constantFrom(...MEMBERS), weight: 4 }, { arbitrary: anyString, weight: 1 });
  return fc.dictionary(name, memberValue(keyIds), { maxKeys: 6 }).map((o) => JSON.stringify(o));
}

/**
 * A body for a state-changing operation that cannot succeed: whatever parses
 * as a JSON object (an empty body is `{}`) gets a key that does not exist,
 * or for CreateKey, which has no key to get wrong, a KeyUsage that does not
 * validate. Bodies that are not a JSON object fail as they are.
 */
function poisoned(operation: string | undefined, body: Buffer): Buffer {
  if (operation === undefined || !MUTATING.has(operation)) return body;
  let parsed: unknown = {};
  if (body.length > 0) {
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      return body;
    }
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return body;
  const nowhere = 'alias/fuzz-does-not-exist';
  const poison: Json =
    operation === 'CreateKey'
      ? { KeyUsage: 'FUZZ_NOT_A_KEY_USAGE' }
      : operation === 'DeleteAlias'
        ? { AliasName: nowhere }
        : operation === 'CreateAlias'
          ? { TargetKeyId: nowhere }
          : operation === 'UpdateAlias'
            ? { AliasName: nowhere, TargetKeyId: nowhere }
            : { KeyId: nowhere };
  const o = { ...(parsed as Json), ...poison };
  try {
    return Buffer.from(JSON.stringify(o));
  } catch {
    // Nested too deep for JSON.stringify (JSON.parse copes): the poison goes
    // last, where it wins over the same member earlier (JSON.parse keeps the last).
    const text = body.toString('utf8');
    const end = text.lastIndexOf('}');
    return Buffer.from(`${text.slice(0, end)},${JSON.stringify(poison).slice(1, -1)}}`);
  }
}

/** Numbers JavaScript cannot hold, as raw JSON text, in integer members. */
const hugeNumberBody = fc
  .tuple(
    fc.constantFrom('NumberOfBytes', 'Limit', 'PendingWindowInDays', 'RotationPeriodInDays', 'KeyId', 'Plaintext'),
    fc.constantFrom('1e400', '-1e400', '123456789012345678901234567890', '9'.repeat(5_000), '0.0000000000000000001', '-0', '1E+2', '2e-400', '0x10', 'NaN', 'Infinity', '01'),
  )
  .map(([member, num]) => `{"${member}": ${num}, "KeyId": "${AES_KEY_ID}", "KeySpec": "AES_256"}`);

/** Deep nesting: arrays and objects thousands of levels deep, bare or inside a member. */
const deepMember = fc
  .tuple(fc.constantFrom(...MEMBERS), fc.integer({ min: 100, max: 30_000 }), fc.constantFrom('[', '{"k":'))
  .map(([member, depth, open]) => {
    const levels = open === '[' ? depth : Math.min(depth, 12_000);
    const close = open === '[' ? ']' : '}';
    return `{"KeyId":"${AES_KEY_ID}","${member}":${open.repeat(levels)}"v"${close.repeat(levels)}}`;
  });
const deepBody = fc
  .tuple(fc.integer({ min: 100, max: 60_000 }), fc.constantFrom('[', '{"a":', '{"EncryptionContext":', '{"Tags":['), fc.boolean())
  .map(([depth, kind, closed]) => {
    if (kind === '[') return '['.repeat(depth) + (closed ? ']'.repeat(depth) : '');
    const levels = Math.min(depth, 12_000);
    const open = kind === '{"Tags":[' ? '{"Tags":[' + '['.repeat(levels) : kind.repeat(levels);
    return open + '1' + (closed ? (kind === '{"Tags":[' ? ']'.repeat(levels + 1) + '}' : '}'.repeat(levels)) : '');
  });

const validEncrypt = JSON.stringify({ KeyId: AES_KEY_ID, Plaintext: Buffer.from('fuzz').toString('base64') });

/** Bodies, raw bytes. */
function bodyFor(operation: string | undefined): fc.Arbitrary<Buffer> {
  return fc.oneof(
    { arbitrary: objectBody(operation).map((s) => Buffer.from(s)), weight: 10 },
    { arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => Buffer.from(JSON.stringify(v) ?? 'null')), weight: 2 },
    { arbitrary: anyString.map((s) => Buffer.from(s)), weight: 2 },
    { arbitrary: fc.uint8Array({ maxLength: 2_000 }).map((b) => Buffer.from(b)), weight: 2 },
    { arbitrary: fc.integer({ min: 0, max: validEncrypt.length - 1 }).map((n) => Buffer.from(validEncrypt.slice(0, n))), weight: 1 },
    { arbitrary: hugeNumberBody.map((s) => Buffer.from(s)), weight: 2 },
    { arbitrary: deepBody.map((s) => Buffer.from(s)), weight: 2 },
    { arbitrary: deepMember.map((s) => Buffer.from(s)), weight: 2 },
    { arbitrary: fc.integer({ min: 60_000, max: 90_000 }).map((n) => Buffer.from(`{"Plaintext":"${'A'.repeat(n)}"}`)), weight: 1 },
    { arbitrary: fc.constant(Buffer.alloc(0)), weight: 1 },
  );
}

type Target = { header: string | undefined; operation: string | undefined };
const target: fc.Arbitrary<Target> = fc.oneof(
  { arbitrary: fc.constantFrom(...SERVED_OPERATIONS).map((op) => ({ header: `TrentService.${op}`, operation: op })), weight: 10 },
  { arbitrary: fc.constantFrom(...UNSUPPORTED_OPERATIONS).map((op) => ({ header: `TrentService.${op}`, operation: op })), weight: 2 },
  { arbitrary: anyString.map((s) => ({ header: `TrentService.${s}`, operation: undefined })), weight: 1 },
  { arbitrary: fc.constantFrom(...KNOWN_OPERATIONS).map((op) => ({ header: `TrentService.${op.toLowerCase()}`, operation: undefined })), weight: 1 },
  { arbitrary: fc.constantFrom('DynamoDB_20120810.GetItem', 'TrentService.', 'TrentService', 'trentservice.Encrypt', ' TrentService.Encrypt', 'TrentService.Encrypt.Encrypt', 'TrentService.__proto__', 'TrentService.constructor', 'TrentService.toString', 'TrentService.hasOwnProperty').map((h) => ({ header: h, operation: undefined })), weight: 1 },
  { arbitrary: fc.constant({ header: undefined, operation: undefined }), weight: 1 },
);

type Signing = 'signed' | 'unsigned' | 'garbled' | 'wrong-secret' | 'stale';
const signing: fc.Arbitrary<Signing> = fc.oneof(
  { arbitrary: fc.constant<Signing>('signed'), weight: 16 },
  { arbitrary: fc.constantFrom<Signing>('unsigned', 'garbled', 'wrong-secret', 'stale'), weight: 4 },
);

type Mutation =
  | 'none' | 'dup-target' | 'dup-content-type' | 'dup-content-length' | 'conflicting-content-length'
  | 'no-content-type' | 'no-host' | 'no-date' | 'dup-authorization' | 'chunked' | 'chunked-and-length'
  | 'garbage-header-line' | 'huge-header' | 'expect-continue' | 'expect-other' | 'upgrade' | 'http10'
  | 'absolute-uri' | 'bare-lf';
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { arbitrary: fc.constant<Mutation>('none'), weight: 20 },
  {
    arbitrary: fc.constantFrom<Mutation>(
      'dup-target', 'dup-content-type', 'dup-content-length', 'conflicting-content-length', 'no-content-type', 'no-host',
      'no-date', 'dup-authorization', 'chunked', 'chunked-and-length', 'garbage-header-line', 'huge-header',
      'expect-continue', 'expect-other', 'upgrade', 'http10', 'absolute-uri', 'bare-lf',
    ),
    weight: 8,
  },
);

const method = fc.oneof(
  { arbitrary: fc.constant('POST'), weight: 30 },
  { arbitrary: fc.constantFrom('GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD', 'TRACE', 'CONNECT', 'FOO', 'post', 'PROPFIND', 'M-SEARCH'), weight: 3 },
);
const path = fc.oneof(
  { arbitrary: fc.constant('/'), weight: 30 },
  { arbitrary: fc.constantFrom('/?Action=Encrypt', '//', '/2014-11-01/keys', '/%00', '/..', '/./', '*', '/%2F', '/index.html', '/' + 'a'.repeat(5_000)), weight: 2 },
  { arbitrary: fc.webPath().map((p) => (p.startsWith('/') ? p : `/${p}`)), weight: 2 },
);

interface Case {
  method: string;
  path: string;
  target: Target;
  body: Buffer;
  signing: Signing;
  mutation: Mutation;
  extra: string;
}

const caseArb: fc.Arbitrary<Case> = fc
  // `extra` names the second X-Amz-Target of 'dup-target'. When the request had
  // none, that one is the only target, and unsigned: a request the SigV4
  // check lets through (only signed headers are covered), so it names no
  // state-changing operation, whose body was not made to fail.
  .record({ method, path, target, signing, mutation, extra: fc.constantFrom(...KNOWN_OPERATIONS.filter((o) => !MUTATING.has(o)), 'x') })
  .chain((c) => bodyFor(c.target.operation).map((body) => ({ ...c, body: poisoned(c.target.operation, body) })));

// ---------------------------------------------------------------- the raw client

interface Answer {
  status: number;
  headers: Map<string, string>;
  body: Buffer;
}

/** Builds the request's bytes: signed as asked, then mutated. */
async function requestBytes(c: Case, port: number): Promise<Buffer> {
  const url = `http://127.0.0.1:${port}`;
  const base: Record<string, string> = { 'content-type': 'application/x-amz-json-1.1' };
  if (c.target.header !== undefined) base['x-amz-target'] = c.target.header;
  let headers: Record<string, string> = base;
  if (c.signing !== 'unsigned') {
    const opts =
      c.signing === 'wrong-secret'
        ? { secretAccessKey: 'not-the-secret-0123456789abcdefghijklmn' }
        : c.signing === 'stale'
          ? { signingDate: new Date(Date.now() - 15 * 60_000) }
          : {};
    // A path the URL parser would normalise is signed as '/': its signature then fails, as a client's would.
    const signUrl = c.path.startsWith('/') && !c.path.includes('%') && !c.path.includes('..') ? url + c.path : url;
    headers = await signHeaders(signUrl, { method: c.method, headers: base, body: c.body }, opts);
    if (c.signing === 'garbled') {
      const auth = headers['authorization'] ?? '';
      const garbles = [
        auth.replace(/Signature=[0-9a-f]+/, `Signature=${'f'.repeat(64)}`),
        auth.slice(0, Math.floor(auth.length / 2)),
        auth.replace('SignedHeaders=', 'SignedHeaderz='),
        auth.replace('AWS4-HMAC-SHA256', 'AWS4-HMAC-SHA512'),
        auth.replace(/Credential=[^,]+/, 'Credential=AKIAFUZZFUZZFUZZFUZZ/20260101/us-east-1/kms/aws4_request'),
        auth.replace(/Credential=[^,]+/, 'Credential=//////'),
        'AWS4-HMAC-SHA256',
        'Basic dXNlcjpwYXNz',
        'AWS4-HMAC-SHA256 Credential=, SignedHeaders=, Signature=',
        auth + ', Signature=00',
      ];
      headers['authorization'] = garbles[c.body.length % garbles.length] as string;
    }
  }
  const lines: Array<[string, string]> = [['Host', `127.0.0.1:${port}`], ...Object.entries(headers)];
  let body = c.body;
  let contentLength: string | undefined = String(body.length);
  const set = (name: string, value: string) => lines.push([name, value]);
  const drop = (name: string) => {
    for (let i = lines.length - 1; i >= 0; i--) if ((lines[i] as [string, string])[0].toLowerCase() === name) lines.splice(i, 1);
  };
  let version = 'HTTP/1.1';
  let requestTarget = c.path;
  let eol = '\r\n';
  const rawExtra: string[] = [];
  switch (c.mutation) {
    case 'dup-target': set('X-Amz-Target', `TrentService.${c.extra}`); break;
    case 'dup-content-type': set('Content-Type', 'text/plain'); break;
    case 'dup-content-length': rawExtra.push(`Content-Length: ${body.length}`); break;
    case 'conflicting-content-length': rawExtra.push(`Content-Length: ${body.length + 1}`); break;
    case 'no-content-type': drop('content-type'); break;
    case 'no-host': drop('host'); break;
    case 'no-date': drop('x-amz-date'); break;
    case 'dup-authorization': set('Authorization', 'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260101/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=00'); break;
    case 'chunked': {
      contentLength = undefined;
      set('Transfer-Encoding', 'chunked');
      const parts: Buffer[] = [];
      for (let i = 0; i < body.length; i += 1_000) {
        const chunk = body.subarray(i, i + 1_000);
        parts.push(Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n'));
      }
      parts.push(Buffer.from('0\r\n\r\n'));
      body = Buffer.concat(parts);
      break;
    }
    case 'chunked-and-length': set('Transfer-Encoding', 'chunked'); break;
    case 'garbage-header-line': rawExtra.push('this line has no colon'); break;
    case 'huge-header': set('X-Fuzz', 'x'.repeat(20_000)); break;
    case 'expect-continue': set('Expect', '100-continue'); break;
    case 'expect-other': set('Expect', 'the-unexpected'); break;
    case 'upgrade': set('Upgrade', 'websocket'); break;
    case 'http10': version = 'HTTP/1.0'; break;
    case 'absolute-uri': requestTarget = `http://127.0.0.1:${port}${c.path.startsWith('/') ? c.path : '/'}`; break;
    case 'bare-lf': eol = '\n'; break;
    case 'none': break;
  }
  const connection = c.mutation === 'upgrade' ? 'Upgrade' : 'close';
  const head =
    `${c.method} ${requestTarget} ${version}${eol}` +
    lines.map(([k, v]) => `${k}: ${v}${eol}`).join('') +
    (contentLength === undefined ? '' : `Content-Length: ${contentLength}${eol}`) +
    rawExtra.map((l) => `${l}${eol}`).join('') +
    `Connection: ${connection}${eol}${eol}`;
  return Buffer.concat([Buffer.from(head, 'latin1'), body]);
}

/** Parses the first complete HTTP answer (skipping 1xx) out of what arrived. */
function parseAnswer(data: Buffer, headRequest: boolean): Answer | undefined {
  let rest = data;
  for (;;) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) return undefined;
    const lines = rest.subarray(0, end).toString('latin1').split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
    if (m === null) throw new Error(`not an HTTP answer: ${JSON.stringify(lines[0])}`);
    const status = Number(m[1]);
    const headers = new Map<string, string>();
    for (const l of lines.slice(1)) {
      const at = l.indexOf(':');
      if (at > 0 && !headers.has(l.slice(0, at).trim().toLowerCase())) headers.set(l.slice(0, at).trim().toLowerCase(), l.slice(at + 1).trim());
    }
    const after = rest.subarray(end + 4);
    if (status >= 100 && status < 200) {
      rest = after;
      continue;
    }
    const length = headRequest ? 0 : Number(headers.get('content-length') ?? after.length);
    return { status, headers, body: after.subarray(0, length) };
  }
}

/** Sends the bytes on a new connection; the answer, once the server has closed it (Connection: close). */
function exchange(port: number, bytes: Buffer, headRequest: boolean): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('no answer within 10 s'));
    }, 10_000);
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      // An Upgrade or keep-alive answer may leave the connection open: stop once the answer is whole.
      const answer = parseAnswer(Buffer.concat(chunks), headRequest);
      if (answer !== undefined && (headRequest || answer.body.length >= Number(answer.headers.get('content-length') ?? 0))) socket.end();
    });
    let failed: Error | undefined;
    socket.on('error', (e) => (failed = e));
    socket.on('close', () => {
      clearTimeout(timer);
      const data = Buffer.concat(chunks);
      try {
        const answer = parseAnswer(data, headRequest);
        if (answer !== undefined) return resolve(answer);
        reject(new Error(`connection closed without an answer (${failed?.message ?? 'clean close'}; got ${data.length} bytes)`));
      } catch (e) {
        reject(e as Error);
      }
    });
    socket.write(bytes);
  });
}

// ---------------------------------------------------------------- the token

/** The token's objects, as their sorted labels (records carry their generation in the label). */
function tokenObjects(token: TokenDir): string[] {
  return tokenLabels(token).sort();
}

// ---------------------------------------------------------------- the test

function describeCase(c: Case): string {
  const body = c.body.length > 200 ? `${c.body.subarray(0, 200).toString('latin1')}... (${c.body.length} bytes)` : c.body.toString('latin1');
  return `${c.method} ${c.path.slice(0, 100)} target=${JSON.stringify(c.target.header)} signing=${c.signing} mutation=${c.mutation} body=${JSON.stringify(body)}`;
}

describe('hostile input: thousands of generated malformed requests (fast-check)', function () {
  this.timeout(120_000);
  let gw: GatewayProcess;
  let token: TokenDir;

  before(async function () {
    token = makeToken('kmsgw-dev');
    const config = defaultConfig() as Json;
    // The AES key and one RSA key: both kinds of key are reached.
    config['keys'] = (config['keys'] as Json[]).slice(0, 2);
    config['listen'] = { ...(config['listen'] as Json), requestTimeoutMs: 2_000 };
    gw = await startGateway({ token, config });
  });

  after(async function () {
    await gw?.stop();
  });

  it('cuts off a plain-HTTP client that sends its headers and then nothing', async function () {
    const socket = connect(gw.port, '127.0.0.1');
    const got = await new Promise<string>((resolve) => {
      let data = '';
      socket.on('data', (d: Buffer) => (data += d.toString('latin1')));
      socket.on('error', () => {});
      socket.on('close', () => resolve(data));
      socket.write('POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Target: TrentService.ListKeys\r\nContent-Length: 10\r\n\r\n{');
    }).finally(() => socket.destroy());
    expect(got).to.match(/^HTTP\/1\.1 408/);
  });

  it('answers every one with a 4xx KMS error (or a 2xx), stays alive and changes nothing on the token', async function () {
    // The gateway's own session does not stop a second reader from listing the token.
    const before = tokenObjects(token);
    expect(before.length, 'objects on the token before').to.be.greaterThan(0);
    let cases = 0;
    const byStatus = new Map<number, number>();
    const byError = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(caseArb, async (c) => {
        cases++;
        const bytes = await requestBytes(c, gw.port);
        const answer = await exchange(gw.port, bytes, c.method === 'HEAD').catch((e: Error) => {
          throw new Error(`${e.message}\n  case: ${describeCase(c)}`);
        });
        byStatus.set(answer.status, (byStatus.get(answer.status) ?? 0) + 1);
        const where = `answer ${answer.status} ${answer.body.toString('utf8').slice(0, 300)}\n  case: ${describeCase(c)}`;
        expect(answer.status, where).to.be.below(500);
        if (answer.status >= 200 && answer.status < 300) return;
        const errorType = answer.headers.get('x-amzn-errortype');
        expect(errorType, `X-Amzn-ErrorType: ${where}`).to.be.a('string').and.match(/^[A-Za-z]+$/);
        byError.set(errorType as string, (byError.get(errorType as string) ?? 0) + 1);
        if (c.method === 'HEAD') return;
        let envelope: Json;
        try {
          envelope = JSON.parse(answer.body.toString('utf8')) as Json;
        } catch {
          throw new Error(`body is not JSON: ${where}`);
        }
        expect(envelope['__type'], where).to.equal(errorType);
      }),
      {
        numRuns: RUNS,
        // Always among the cases: the ones the issue names.
        examples: [
          [{ method: 'POST', path: '/', target: { header: 'TrentService.Encrypt', operation: 'Encrypt' }, body: Buffer.from('['.repeat(50_000)), signing: 'signed', mutation: 'none', extra: 'x' }],
          [{ method: 'POST', path: '/', target: { header: 'TrentService.Decrypt', operation: 'Decrypt' }, body: Buffer.from(`{"CiphertextBlob":${'['.repeat(50_000)}`), signing: 'signed', mutation: 'none', extra: 'x' }],
          [{ method: 'POST', path: '/', target: { header: 'TrentService.Encrypt', operation: 'Encrypt' }, body: Buffer.from(`{"KeyId":"${AES_KEY_ID}","Plaintext":"Zm9v","EncryptionContext":{"k":${'['.repeat(50_000)}"v"${']'.repeat(50_000)}}}`), signing: 'signed', mutation: 'none', extra: 'x' }],
          [{ method: 'POST', path: '/', target: { header: 'TrentService.Encrypt', operation: 'Encrypt' }, body: Buffer.from(`{"KeyId":"${AES_KEY_ID}","GrantTokens":${'['.repeat(30_000)}"v"${']'.repeat(30_000)}}`), signing: 'signed', mutation: 'none', extra: 'x' }],
          [{ method: 'POST', path: '/', target: { header: 'TrentService.GenerateRandom', operation: 'GenerateRandom' }, body: Buffer.from('{"NumberOfBytes": 1e400}'), signing: 'signed', mutation: 'none', extra: 'x' }],
          [{ method: 'POST', path: '/', target: { header: 'TrentService.Encrypt', operation: 'Encrypt' }, body: Buffer.from(`{"KeyId":"${AES_KEY_ID}","Plaintext":"not base64!"}`), signing: 'signed', mutation: 'none', extra: 'x' }],
          [{ method: 'GET', path: '/', target: { header: undefined, operation: undefined }, body: Buffer.alloc(0), signing: 'unsigned', mutation: 'none', extra: 'x' }],
          [{ method: 'CONNECT', path: '127.0.0.1:443', target: { header: undefined, operation: undefined }, body: Buffer.alloc(0), signing: 'unsigned', mutation: 'none', extra: 'x' }],
        ],
      },
    );
    // The closing note quotes this line.
    console.log(
      `      fuzz: ${cases} generated requests; statuses ${JSON.stringify(Object.fromEntries([...byStatus].sort((a, b) => a[0] - b[0])))}; errors ${JSON.stringify(Object.fromEntries([...byError].sort((a, b) => b[1] - a[1])))}`,
    );
    expect(cases).to.be.at.least(RUNS);

    // Alive, serving, and no bug of ours surfaced as an unexpected error.
    expect(gw.child.exitCode, 'the gateway process is still running').to.equal(null);
    const sdk = kmsClient(gw.url);
    try {
      const enc = await sdk.send(new EncryptCommand({ KeyId: 'alias/demo-aes', Plaintext: Buffer.from('still here') }));
      expect(enc.CiphertextBlob).to.have.length.greaterThan(0);
    } finally {
      sdk.destroy();
    }
    expect(gw.logs()).to.not.include('unexpected error');
    await gw.stop();
    expect(tokenObjects(token), 'the token objects after the fuzz run').to.deep.equal(before);
  });

});
