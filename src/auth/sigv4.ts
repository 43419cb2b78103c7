/**
 * AWS Signature Version 4 verification of header-signed requests, as the AWS
 * SDKs and CLI send them:
 *
 *   Authorization: AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/kms/aws4_request,
 *                  SignedHeaders=host;x-amz-date;x-amz-target, Signature=<64 hex>
 *   X-Amz-Date: 20260101T120000Z
 *
 * The signature is recomputed with node:crypto over the canonical request
 * (sigv4-canonical.ts: method, path, query, the signed headers only, the
 * hash of the exact raw body), exactly as `@smithy/signature-v4` (the signer
 * the AWS SDK for JavaScript uses) computes it, and compared in constant
 * time. The signing key (the HMAC chain of secret, date, region, service)
 * is cached per access key, secret and day. Checks and answers follow AWS's
 * JSON-protocol services, in their order:
 *
 * 1. no Authorization header: MissingAuthenticationTokenException;
 * 2. a part that is not key=value; Credential, Signature or SignedHeaders
 *    missing; neither X-Amz-Date nor Date: IncompleteSignatureException;
 * 3. a date not in ISO-8601 basic format: IncompleteSignatureException; more
 *    than 5 minutes off the gateway's clock: InvalidSignatureException
 *    ("Signature expired: ..." / "Signature not yet current: ...");
 * 4. `host` not signed, or X-Amz-Target, X-Amz-Date, X-Amz-Content-Sha256
 *    or X-Amz-Security-Token sent but not signed: InvalidSignatureException;
 * 5. an algorithm other than AWS4-HMAC-SHA256, a credential that is not
 *    keyid/date/region/service/aws4_request: IncompleteSignatureException;
 * 6. a scope for another region or service, another terminator, or another
 *    date than the request's: InvalidSignatureException;
 * 7. an unknown access key id, or a session token (there is no STS):
 *    UnrecognizedClientException;
 * 8. a signature (or X-Amz-Content-Sha256) that does not match:
 *    InvalidSignatureException.
 *
 * Only X-Amz-Date-dated requests verify (every AWS SDK and the CLI send it);
 * query-string (presigned) signatures are refused.
 */
import { createHmac, hash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import {
  IncompleteSignatureException,
  InvalidSignatureException,
  MissingAuthenticationTokenException,
  UnrecognizedClientException,
} from '../errors.js';
import type { Credential } from './credentials.js';
import { canonicalRequest, parseQuery } from './sigv4-canonical.js';
import type { Authenticator, Principal, SignedRequest } from './types.js';

export const ALGORITHM = 'AWS4-HMAC-SHA256';
export const SERVICE = 'kms';
const TERMINATOR = 'aws4_request';
/** Headers that change what the gateway does: when sent, they must be signed. */
export const MUST_BE_SIGNED = ['x-amz-target', 'x-amz-date', 'x-amz-content-sha256', 'x-amz-security-token'] as const;
/** AWS's clock-skew window. */
const MAX_SKEW_MS = 5 * 60 * 1000;

/**
 * Headers a signer writes itself: @smithy/signature-v4 drops them from the
 * request it is given and signs its own X-Amz-Date (the request's date), so
 * a client's signed `date` or `authorization` is not part of the signature.
 */
const GENERATED_HEADERS: ReadonlySet<string> = new Set(['authorization', 'date', 'x-amz-date']);

/**
 * Derived signing keys kept at most: one per access key and day (two around
 * midnight UTC), so a few hundred cover any credentials file. Only requests
 * from known access key ids with a date inside the skew window get this far,
 * so unknown callers cannot fill it.
 */
const SIGNING_KEY_CACHE_SIZE = 256;

const SIGNATURE_MISMATCH =
  'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.';

/** Where access key ids are looked up (a CredentialStore). */
export interface CredentialLookup {
  lookup(accessKeyId: string): Credential | undefined;
}

export interface SigV4Options {
  /** The region every credential scope must name (config.region). */
  region: string;
  credentials: CredentialLookup;
  /** Milliseconds since the epoch; tests inject their own. */
  now?: () => number;
}

/** 20260101T120000Z, the form of X-Amz-Date. */
function basicFormat(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '');
}

const BASIC_FORMAT = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;

/** The instant of an ISO-8601 basic-format date, or undefined when it is not one. */
function parseBasicFormat(value: string): number | undefined {
  const m = BASIC_FORMAT.exec(value);
  if (m === null) return undefined;
  const [y, mo, d, h, mi, s] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  const ms = Date.UTC(y, mo - 1, d, h, mi, s);
  // Reject dates that Date.UTC would roll over (20260231T250000Z).
  return basicFormat(ms) === value ? ms : undefined;
}

/** The last date parsed: the requests of one second all carry the same X-Amz-Date. */
let lastDate: { value: string; ms: number | undefined } = { value: '', ms: undefined };

function parseBasicFormatMemo(value: string): number | undefined {
  if (value !== lastDate.value) lastDate = { value, ms: parseBasicFormat(value) };
  return lastDate.ms;
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(',') : value;
}

interface ParsedAuthorization {
  algorithm: string;
  credential: string;
  signedHeaders: string;
  signature: string;
  /** The request's date as sent (X-Amz-Date, else Date). */
  date: string;
}

/** Step 2: the header's shape, with AWS's IncompleteSignatureException texts. */
function parseAuthorization(header: string, headers: IncomingHttpHeaders): ParsedAuthorization {
  const trimmed = header.trim();
  const space = trimmed.search(/\s/);
  const algorithm = space < 0 ? trimmed : trimmed.slice(0, space);
  const params = new Map<string, string>();
  // AWS splits the rest on white space and commas; every piece must be key=value.
  for (const part of (space < 0 ? '' : trimmed.slice(space)).split(/[\s,]+/)) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    if (eq < 0) throw new IncompleteSignatureException(`'${part}' not a valid key=value pair (missing equal-sign) in Authorization header: '${header}'.`);
    params.set(part.slice(0, eq), part.slice(eq + 1));
  }
  const date = single(headers['x-amz-date']) ?? single(headers['date']);
  let missing = '';
  for (const name of ['Credential', 'Signature', 'SignedHeaders']) {
    if ((params.get(name) ?? '') === '') missing += `Authorization header requires '${name}' parameter. `;
  }
  if (date === undefined || date === '') missing += "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. ";
  if (missing !== '') throw new IncompleteSignatureException(`${missing}Authorization=${header}`);
  return {
    algorithm,
    credential: params.get('Credential') as string,
    signedHeaders: params.get('SignedHeaders') as string,
    signature: params.get('Signature') as string,
    date: date as string,
  };
}

function hmac(key: string | Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest();
}

/**
 * Derived SigV4 signing keys, HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date),
 * region), service), "aws4_request"), by access key id, date, region and
 * service; an entry is used only for the very secret it was derived from, so
 * a rotated secret (a reloaded credentials file) derives a new key. Bounded:
 * the oldest entry goes first. Neither secrets nor keys ever leave this
 * object (private fields, not shown by util.inspect, never logged).
 */
class SigningKeyCache {
  readonly #entries = new Map<string, { secret: string; key: Buffer }>();

  key(accessKeyId: string, secret: string, date: string, region: string, service: string): Buffer {
    const id = `${accessKeyId}/${date}/${region}/${service}`;
    const hit = this.#entries.get(id);
    if (hit !== undefined && hit.secret === secret) return hit.key;
    const key = hmac(hmac(hmac(hmac(`AWS4${secret}`, date), region), service), TERMINATOR);
    this.#entries.delete(id);
    if (this.#entries.size >= SIGNING_KEY_CACHE_SIZE) this.#entries.delete(this.#entries.keys().next().value as string);
    this.#entries.set(id, { secret, key });
    return key;
  }
}

export class SigV4Authenticator implements Authenticator {
  readonly #region: string;
  readonly #credentials: CredentialLookup;
  readonly #now: () => number;
  readonly #signingKeys = new SigningKeyCache();

  constructor(opts: SigV4Options) {
    this.#region = opts.region;
    this.#credentials = opts.credentials;
    this.#now = opts.now ?? Date.now;
  }

  /** The Authenticator contract: rejects with the errors verify() throws. */
  async authenticate(req: SignedRequest): Promise<Principal> {
    return this.verify(req);
  }

  /** The principal who signed the request, synchronously; throws the errors listed at the top of this file. */
  verify(req: SignedRequest): Principal {
    const header = single(req.headers['authorization']);
    if (header === undefined || header.trim() === '') {
      const query = parseQuery(req.query);
      if ('X-Amz-Signature' in query || 'X-Amz-Credential' in query || 'X-Amz-Algorithm' in query)
        throw new IncompleteSignatureException('Query-string (presigned) authentication is not supported by this gateway; sign the Authorization header.');
      throw new MissingAuthenticationTokenException();
    }
    const auth = parseAuthorization(header, req.headers);

    // Step 3: the date, and the 5-minute window.
    const signedAt = parseBasicFormatMemo(auth.date);
    if (signedAt === undefined)
      throw new IncompleteSignatureException(`Date must be in ISO-8601 'basic format'. Got '${auth.date}'. See http://en.wikipedia.org/wiki/ISO_8601`);
    const now = this.#now();
    if (signedAt < now - MAX_SKEW_MS)
      throw new InvalidSignatureException(
        `Signature expired: ${auth.date} is now earlier than ${basicFormat(now - MAX_SKEW_MS)} (${basicFormat(now)} - 5 min.)`,
      );
    if (signedAt > now + MAX_SKEW_MS)
      throw new InvalidSignatureException(
        `Signature not yet current: ${auth.date} is still later than ${basicFormat(now + MAX_SKEW_MS)} (${basicFormat(now)} + 5 min.)`,
      );

    // Step 4: host must be signed.
    const signedNames = auth.signedHeaders.split(';').map((n) => n.toLowerCase());
    if (!signedNames.includes('host')) throw new InvalidSignatureException("'Host' must be a 'SignedHeader' in the AWS Authorization.");
    // The headers the gateway acts on must be covered by the signature:
    // otherwise a signed Encrypt could be replayed with `X-Amz-Target`
    // changed to DisableKey (found by the fuzz test). The AWS SDKs and CLI
    // always sign them. Other unsigned x-amz-* headers (a proxy's) are let be.
    for (const name of MUST_BE_SIGNED)
      if (req.headers[name] !== undefined && !signedNames.includes(name))
        throw new InvalidSignatureException(`'${name}' must be a 'SignedHeader' in the AWS Authorization.`);

    // Step 5: algorithm and credential shape (trailing slashes are ignored, as AWS does).
    if (auth.algorithm !== ALGORITHM)
      throw new IncompleteSignatureException(`Unsupported AWS 'algorithm': '${auth.algorithm}' (only ${ALGORITHM} for now). `);
    const credential = auth.credential.replace(/\/+$/, '');
    const scope = credential.split('/');
    if (scope.length !== 5)
      throw new IncompleteSignatureException(
        `Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '${credential}'`,
      );
    const [accessKeyId, scopeDate, region, service, terminator] = scope as [string, string, string, string, string];

    // Step 6: the scope's pieces, all reported at once.
    let scopeErrors = '';
    if (region !== this.#region) scopeErrors += `Credential should be scoped to a valid region, not '${region}'. `;
    if (service !== SERVICE) scopeErrors += `Credential should be scoped to correct service: '${SERVICE}'. `;
    if (terminator !== TERMINATOR) scopeErrors += `Credential should be scoped with a valid terminator: '${TERMINATOR}', not '${terminator}'. `;
    if (scopeDate !== auth.date.slice(0, 8))
      scopeErrors += `Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '${scopeDate}' != '${auth.date.slice(0, 8)}', from '${auth.date}'.`;
    if (scopeErrors !== '') throw new InvalidSignatureException(scopeErrors);

    // Step 7: who signed. A session token implies STS credentials, which this gateway never issues.
    const known = this.#credentials.lookup(accessKeyId);
    if (known === undefined || req.headers['x-amz-security-token'] !== undefined) throw new UnrecognizedClientException();

    // Step 8: the signature.
    const computed = this.#signature(req, auth, signedNames, accessKeyId, known.secret);
    const given = Buffer.from(auth.signature, 'utf8');
    const expected = Buffer.from(computed ?? '', 'utf8');
    if (computed === undefined || given.length !== expected.length || !timingSafeEqual(given, expected))
      throw new InvalidSignatureException(SIGNATURE_MISMATCH);
    return known.principal;
  }

  /** The signature (64 lower-case hex digits) the request should carry, or undefined when it cannot be computed. */
  #signature(req: SignedRequest, auth: ParsedAuthorization, signedNames: string[], accessKeyId: string, secret: string): string | undefined {
    // The body is signed through its hash; a declared hash must be the real one.
    const bodyHash = hash('sha256', req.body, 'hex');
    const declared = single(req.headers['x-amz-content-sha256']);
    if (declared !== undefined && declared.trim().toLowerCase() !== bodyHash) return undefined;
    // Only the headers the client signed, as they arrived, and the request's
    // date as X-Amz-Date (step 3 checked it is in exactly that form).
    const headers = new Map<string, string>();
    for (const name of signedNames) {
      if (GENERATED_HEADERS.has(name)) continue;
      const value = Object.hasOwn(req.headers, name) ? single(req.headers[name]) : undefined;
      if (typeof value === 'string') headers.set(name, value);
    }
    headers.set('x-amz-date', auth.date);
    // A signed X-Amz-Content-Sha256 (equal to the body's, checked above) is the payload hash as sent.
    const payloadHash = headers.get('x-amz-content-sha256') ?? bodyHash;
    let request: string;
    try {
      request = canonicalRequest({ method: req.method, path: req.path, query: req.query, headers, payloadHash });
    } catch {
      // A request that cannot even be canonicalized (a lone surrogate) cannot carry a valid signature.
      return undefined;
    }
    // Step 6 checked that the scope's date is the request's and its region and service are ours.
    const date = auth.date.slice(0, 8);
    const stringToSign = `${ALGORITHM}\n${auth.date}\n${date}/${this.#region}/${SERVICE}/${TERMINATOR}\n${hash('sha256', request, 'hex')}`;
    const key = this.#signingKeys.key(accessKeyId, secret, date, this.#region, SERVICE);
    return createHmac('sha256', key).update(stringToSign, 'utf8').digest('hex');
  }
}
