/**
 * The SigV4 verifier as it was before issue 5, kept verbatim as a test
 * oracle: it re-signs the request with `@smithy/signature-v4` (the signer
 * of the AWS SDK for JavaScript) and compares. The property test checks
 * that src/auth/sigv4.ts gives exactly its answers (the same principal, or
 * the same error class and message) on random requests, well-formed or
 * not; the SigV4 micro-benchmark can run it for a side-by-side figure
 * (`--impl reference`). Test and bench code only: never imported by src/.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { Sha256 } from '@smithy/core/checksum';
import { SignatureV4 } from '@smithy/signature-v4';
import {
  IncompleteSignatureException,
  InvalidSignatureException,
  MissingAuthenticationTokenException,
  UnrecognizedClientException,
} from '../../src/errors.js';
import type { Credential } from '../../src/auth/credentials.js';
import type { Authenticator, Principal, SignedRequest } from '../../src/auth/types.js';

const ALGORITHM = 'AWS4-HMAC-SHA256';
const SERVICE = 'kms';
const TERMINATOR = 'aws4_request';
/** Headers that change what the gateway does: when sent, they must be signed. */
const MUST_BE_SIGNED = ['x-amz-target', 'x-amz-date', 'x-amz-content-sha256', 'x-amz-security-token'] as const;
const MAX_SKEW_MS = 5 * 60 * 1000;

const SIGNATURE_MISMATCH =
  'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.';

/** Where access key ids are looked up (a CredentialStore). */
interface CredentialLookup {
  lookup(accessKeyId: string): Credential | undefined;
}

interface SigV4Options {
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

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(',') : value;
}

/** decodeURIComponent that leaves a malformed escape as it is. */
function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** The raw query string as the signer expects it: decoded names and values, repeated names as lists. */
function parseQuery(raw: string): Record<string, string | string[]> {
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

export class ReferenceSigV4Authenticator implements Authenticator {
  readonly #region: string;
  readonly #credentials: CredentialLookup;
  readonly #now: () => number;

  constructor(opts: SigV4Options) {
    this.#region = opts.region;
    this.#credentials = opts.credentials;
    this.#now = opts.now ?? Date.now;
  }

  async authenticate(req: SignedRequest): Promise<Principal> {
    const header = single(req.headers['authorization']);
    if (header === undefined || header.trim() === '') {
      const query = parseQuery(req.query);
      if ('X-Amz-Signature' in query || 'X-Amz-Credential' in query || 'X-Amz-Algorithm' in query)
        throw new IncompleteSignatureException('Query-string (presigned) authentication is not supported by this gateway; sign the Authorization header.');
      throw new MissingAuthenticationTokenException();
    }
    const auth = parseAuthorization(header, req.headers);

    // Step 3: the date, and the 5-minute window.
    const signedAt = parseBasicFormat(auth.date);
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
    const computed = await this.#signature(req, auth, signedNames, signedAt, accessKeyId, known.secret);
    const given = Buffer.from(auth.signature, 'utf8');
    const expected = Buffer.from(computed ?? '', 'utf8');
    if (computed === undefined || given.length !== expected.length || !timingSafeEqual(given, expected))
      throw new InvalidSignatureException(SIGNATURE_MISMATCH);
    return known.principal;
  }

  /** The signature the request should carry, or undefined when it cannot be computed. */
  async #signature(
    req: SignedRequest,
    auth: ParsedAuthorization,
    signedNames: string[],
    signedAt: number,
    accessKeyId: string,
    secretAccessKey: string,
  ): Promise<string | undefined> {
    // The body is signed through its hash; a declared hash must be the real one.
    const bodyHash = createHash('sha256').update(req.body).digest('hex');
    const declared = single(req.headers['x-amz-content-sha256']);
    if (declared !== undefined && declared.trim().toLowerCase() !== bodyHash) return undefined;
    // Only the headers the client signed, as they arrived.
    const headers: Record<string, string> = Object.create(null) as Record<string, string>;
    for (const name of signedNames) {
      const value = Object.hasOwn(req.headers, name) ? single(req.headers[name]) : undefined;
      if (typeof value === 'string') headers[name] = value;
    }
    // A new signer per request is cheap: the derived signing key (HMAC chain of
    // secret, date, region, service) is cached inside @smithy/signature-v4,
    // module-wide, keyed by date, region, service and an HMAC of the secret and
    // key id (up to 50 entries), so it is derived once per key and day.
    const signer = new SignatureV4({
      credentials: { accessKeyId, secretAccessKey },
      region: this.#region,
      service: SERVICE,
      sha256: Sha256,
      // Add nothing the client did not sign (no X-Amz-Content-Sha256 of our own).
      applyChecksum: false,
      uriEscapePath: true,
    });
    try {
      const signed = await signer.sign(
        {
          method: req.method,
          protocol: 'http:',
          hostname: headers['host'] ?? '',
          path: decode(req.path),
          query: parseQuery(req.query),
          headers,
          body: req.body,
        },
        // Sign exactly the client's list, even headers the SDK would leave out (user-agent ...).
        { signingDate: new Date(signedAt), signableHeaders: new Set(signedNames) },
      );
      const authorization = single(signed.headers['authorization']) ?? '';
      return /Signature=([0-9a-f]{64})$/.exec(authorization)?.[1];
    } catch {
      // A request the signer cannot even canonicalize cannot carry a valid signature.
      return undefined;
    }
  }
}
