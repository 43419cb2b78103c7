/**
 * SigV4 verification in-process, with a fixed clock: every refusal, its
 * error class and AWS's text, and the credentials file's validation. The
 * requests are signed by @smithy/signature-v4 as the SDK signs them.
 */
import { createHmac } from 'node:crypto';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { Sha256 } from '@smithy/core/checksum';
import { SignatureV4 } from '@smithy/signature-v4';
import { expect } from 'chai';
import { parseCredentials, readCredentialsFile, type Credential } from '../../src/auth/credentials.js';
import { SigV4Authenticator } from '../../src/auth/sigv4.js';
import type { SignedRequest } from '../../src/auth/types.js';
import { ConfigError } from '../../src/config/config.js';
import { KmsError } from '../../src/errors.js';

const NOW = Date.UTC(2026, 0, 1, 12, 0, 0);
const KEY_ID = 'AKIAUNITTEST00000001';
const SECRET = 'unit-test-secret-0123456789abcdefghijklmn';
const HOST = '127.0.0.1:8080';
const BODY = '{"KeyId":"alias/demo-aes","Plaintext":"aGVsbG8="}';

const credentials = new Map<string, Credential>([[KEY_ID, { principal: { name: 'unit', admin: false, accessKeyId: KEY_ID }, secret: SECRET }]]);
const authenticator = new SigV4Authenticator({ region: 'us-east-1', credentials: { lookup: (id) => credentials.get(id) }, now: () => NOW });

interface SignOpts {
  at?: number;
  region?: string;
  service?: string;
  secret?: string;
  accessKeyId?: string;
  sessionToken?: string;
  path?: string;
  query?: Record<string, string>;
  headers?: Record<string, string>;
}

/** A request as the gateway would see it, signed as the SDK signs. */
async function signed(opts: SignOpts = {}, body = BODY): Promise<SignedRequest> {
  const signer = new SignatureV4({
    credentials: { accessKeyId: opts.accessKeyId ?? KEY_ID, secretAccessKey: opts.secret ?? SECRET, sessionToken: opts.sessionToken },
    region: opts.region ?? 'us-east-1',
    service: opts.service ?? 'kms',
    sha256: Sha256,
  });
  const out = await signer.sign(
    {
      method: 'POST',
      protocol: 'http:',
      hostname: '127.0.0.1',
      path: opts.path ?? '/',
      query: opts.query ?? {},
      // A header given as '' is left out of the request (and so of the signature).
      headers: Object.fromEntries(
        Object.entries({ host: HOST, 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': 'TrentService.Encrypt', ...opts.headers }).filter(
          ([, v]) => v !== '',
        ),
      ),
      body,
    },
    { signingDate: new Date(opts.at ?? NOW) },
  );
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(out.headers)) headers[k.toLowerCase()] = v as string;
  const query = Object.entries(opts.query ?? {})
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
    .join('&');
  return { method: 'POST', path: opts.path ?? '/', query, headers, body: Buffer.from(body) };
}

async function refusal(req: SignedRequest): Promise<KmsError> {
  try {
    await authenticator.authenticate(req);
  } catch (e) {
    expect(e).to.be.instanceOf(KmsError);
    return e as KmsError;
  }
  throw new Error('the request was accepted');
}

async function expectRefusedBy(auth: SigV4Authenticator, req: SignedRequest, message: string | RegExp): Promise<void> {
  let err: unknown;
  try {
    await auth.authenticate(req);
  } catch (e) {
    err = e;
  }
  expect(err, 'the request was accepted').to.be.instanceOf(KmsError);
  expect((err as KmsError).name).to.equal('InvalidSignatureException');
  if (typeof message === 'string') expect((err as KmsError).message).to.equal(message);
  else expect((err as KmsError).message).to.match(message);
}

async function expectRefused(req: SignedRequest, name: string, message?: string | RegExp): Promise<void> {
  const err = await refusal(req);
  expect(err.name, err.message).to.equal(name);
  expect(err.status).to.equal(400);
  expect(err.retryable).to.equal(false);
  if (typeof message === 'string') expect(err.message).to.equal(message);
  else if (message !== undefined) expect(err.message).to.match(message);
}

const MISMATCH =
  'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.';

describe('SigV4 verification (unit, fixed clock)', () => {
  it('accepts a request signed as the SDK signs it and names its principal', async () => {
    const principal = await authenticator.authenticate(await signed());
    expect(principal).to.deep.equal({ name: 'unit', admin: false, accessKeyId: KEY_ID });
  });

  it('accepts a signed query string and an empty body', async () => {
    await authenticator.authenticate(await signed({ query: { a: 'b c', 'x/y': '1' } }, ''));
  });

  it('accepts a date exactly 5 minutes off either way, and refuses one a second beyond', async () => {
    await authenticator.authenticate(await signed({ at: NOW - 300_000 }));
    await authenticator.authenticate(await signed({ at: NOW + 300_000 }));
    await expectRefused(
      await signed({ at: NOW - 301_000 }),
      'InvalidSignatureException',
      'Signature expired: 20260101T115459Z is now earlier than 20260101T115500Z (20260101T120000Z - 5 min.)',
    );
    await expectRefused(
      await signed({ at: NOW + 301_000 }),
      'InvalidSignatureException',
      'Signature not yet current: 20260101T120501Z is still later than 20260101T120500Z (20260101T120000Z + 5 min.)',
    );
  });

  it('answers MissingAuthenticationTokenException without an Authorization header', async () => {
    const req = await signed();
    delete req.headers['authorization'];
    await expectRefused(req, 'MissingAuthenticationTokenException', 'Missing Authentication Token');
  });

  it('refuses query-string (presigned) signatures as incomplete', async () => {
    const req = await signed({ query: { 'X-Amz-Algorithm': 'AWS4-HMAC-SHA256', 'X-Amz-Signature': 'ab' } });
    delete req.headers['authorization'];
    await expectRefused(req, 'IncompleteSignatureException', /presigned/);
  });

  it("lists every missing part of the header in AWS's words, with the header", async () => {
    const req = await signed();
    req.headers['authorization'] = 'AWS4-HMAC-SHA256 Credential=AKIAUNITTEST00000001/20260101/us-east-1/kms/aws4_request';
    delete req.headers['x-amz-date'];
    await expectRefused(
      req,
      'IncompleteSignatureException',
      "Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. " +
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. " +
        'Authorization=AWS4-HMAC-SHA256 Credential=AKIAUNITTEST00000001/20260101/us-east-1/kms/aws4_request',
    );
  });

  it('names a part that is not key=value (a Basic header, a stray space after Credential=)', async () => {
    const basic = await signed();
    basic.headers['authorization'] = 'Basic dXNlcjpwYXNz';
    await expectRefused(basic, 'IncompleteSignatureException', "'dXNlcjpwYXNz' not a valid key=value pair (missing equal-sign) in Authorization header: 'Basic dXNlcjpwYXNz'.");
    const spaced = await signed();
    spaced.headers['authorization'] = String(spaced.headers['authorization']).replace('Credential=', 'Credential= ');
    await expectRefused(spaced, 'IncompleteSignatureException', /^'AKIAUNITTEST00000001\/20260101\/us-east-1\/kms\/aws4_request' not a valid key=value pair/);
  });

  it('refuses a date that is not ISO-8601 basic format', async () => {
    const req = await signed();
    req.headers['x-amz-date'] = '2026-01-01T12:00:00Z';
    await expectRefused(req, 'IncompleteSignatureException', "Date must be in ISO-8601 'basic format'. Got '2026-01-01T12:00:00Z'. See http://en.wikipedia.org/wiki/ISO_8601");
    req.headers['x-amz-date'] = '20260231T120000Z';
    await expectRefused(req, 'IncompleteSignatureException', /^Date must be in ISO-8601 'basic format'/);
  });

  it('requires host among the signed headers', async () => {
    const req = await signed();
    req.headers['authorization'] = String(req.headers['authorization']).replace('SignedHeaders=content-type;host;', 'SignedHeaders=content-type;');
    await expectRefused(req, 'InvalidSignatureException', "'Host' must be a 'SignedHeader' in the AWS Authorization.");
  });

  it('refuses another algorithm and a credential of the wrong shape', async () => {
    const alg = await signed();
    alg.headers['authorization'] = String(alg.headers['authorization']).replace('AWS4-HMAC-SHA256', 'AWS4-HMAC-SHA1');
    await expectRefused(alg, 'IncompleteSignatureException', "Unsupported AWS 'algorithm': 'AWS4-HMAC-SHA1' (only AWS4-HMAC-SHA256 for now). ");
    const cred = await signed();
    cred.headers['authorization'] = String(cred.headers['authorization']).replace('/kms/aws4_request', '/kms');
    await expectRefused(
      cred,
      'IncompleteSignatureException',
      "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got 'AKIAUNITTEST00000001/20260101/us-east-1/kms'",
    );
  });

  it('refuses a scope for another region, another service, or another day, naming each', async () => {
    await expectRefused(await signed({ region: 'eu-west-1' }), 'InvalidSignatureException', "Credential should be scoped to a valid region, not 'eu-west-1'. ");
    await expectRefused(await signed({ service: 'dynamodb' }), 'InvalidSignatureException', "Credential should be scoped to correct service: 'kms'. ");
    await expectRefused(
      await signed({ region: 'eu-west-1', service: 's3' }),
      'InvalidSignatureException',
      "Credential should be scoped to a valid region, not 'eu-west-1'. Credential should be scoped to correct service: 'kms'. ",
    );
    const day = await signed();
    day.headers['authorization'] = String(day.headers['authorization']).replace('/20260101/', '/20251231/');
    await expectRefused(
      day,
      'InvalidSignatureException',
      "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '20251231' != '20260101', from '20260101T120000Z'.",
    );
  });

  it('answers UnrecognizedClientException for an unknown access key id and for a session token', async () => {
    await expectRefused(await signed({ accessKeyId: 'AKIANOBODY0000000000' }), 'UnrecognizedClientException', 'The security token included in the request is invalid.');
    await expectRefused(await signed({ sessionToken: 'FwoGZXIvYXdzEXAMPLE' }), 'UnrecognizedClientException', 'The security token included in the request is invalid.');
  });

  it('refuses a wrong secret, a changed body, a changed signed header and a wrong declared body hash', async () => {
    await expectRefused(await signed({ secret: `${SECRET}x` }), 'InvalidSignatureException', MISMATCH);
    const body = await signed();
    body.body = Buffer.from(BODY.replace('aGVsbG8=', 'aGVsbG9='));
    await expectRefused(body, 'InvalidSignatureException', MISMATCH);
    const target = await signed();
    target.headers['x-amz-target'] = 'TrentService.CreateKey';
    await expectRefused(target, 'InvalidSignatureException', MISMATCH);
    // The body and its declared hash changed together: the declared hash is signed, so still refused.
    const both = await signed();
    const other = '{}';
    both.body = Buffer.from(other);
    both.headers['x-amz-content-sha256'] = '44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a';
    await expectRefused(both, 'InvalidSignatureException', MISMATCH);
    const truncated = await signed();
    truncated.headers['authorization'] = String(truncated.headers['authorization']).slice(0, -2);
    await expectRefused(truncated, 'InvalidSignatureException', MISMATCH);
  });

  it('refuses an X-Amz-Target the signature does not cover, so a signed request cannot be turned into another operation', async () => {
    const unsignedTarget = await signed({ headers: { 'x-amz-target': '' } });
    const auth = String(unsignedTarget.headers['authorization']);
    expect(auth).to.not.contain('x-amz-target');
    await authenticator.authenticate(unsignedTarget);
    unsignedTarget.headers['x-amz-target'] = 'TrentService.DisableKey';
    await expectRefused(unsignedTarget, 'InvalidSignatureException', "'x-amz-target' must be a 'SignedHeader' in the AWS Authorization.");
  });

  it('ignores headers the client did not sign', async () => {
    const req = await signed();
    req.headers['user-agent'] = 'changed after signing';
    req.headers['x-forwarded-for'] = '10.0.0.1';
    await authenticator.authenticate(req);
  });

  it('verifies a client that signed user-agent too (signs exactly the listed headers)', async () => {
    const signer = new SignatureV4({ credentials: { accessKeyId: KEY_ID, secretAccessKey: SECRET }, region: 'us-east-1', service: 'kms', sha256: Sha256 });
    const out = await signer.sign(
      { method: 'POST', protocol: 'http:', hostname: '127.0.0.1', path: '/', query: {}, headers: { host: HOST, 'user-agent': 'ua/1', 'x-amz-target': 'TrentService.ListKeys' }, body: '{}' },
      { signingDate: new Date(NOW), signableHeaders: new Set(['user-agent']) },
    );
    expect(String(out.headers['authorization'])).to.contain('user-agent');
    await authenticator.authenticate({ method: 'POST', path: '/', query: '', headers: { ...(out.headers as Record<string, string>) }, body: Buffer.from('{}') });
  });

  it('answers synchronously through verify() exactly what authenticate() answers', async () => {
    expect(authenticator.verify(await signed())).to.deep.equal({ name: 'unit', admin: false, accessKeyId: KEY_ID });
    const bad = await signed({ secret: `${SECRET}x` });
    expect(() => authenticator.verify(bad)).to.throw(KmsError, MISMATCH);
  });

  describe('signing keys, derived once per access key and day', () => {
    const MIDNIGHT = Date.UTC(2026, 0, 2, 0, 0, 0);
    let clock = NOW;
    const rotating = new Map(credentials);
    const auth = new SigV4Authenticator({ region: 'us-east-1', credentials: { lookup: (id) => rotating.get(id) }, now: () => clock });
    const ROTATED = 'unit-test-rotated-secret-9876543210zyxwvu';
    const withSecret = (secret: string) => rotating.set(KEY_ID, { principal: { name: 'unit', admin: false, accessKeyId: KEY_ID }, secret });

    it('follows a rotated secret at once: the old one is refused, the new one accepted, and back', async () => {
      clock = NOW;
      withSecret(SECRET);
      await auth.authenticate(await signed());
      withSecret(ROTATED);
      await expectRefusedBy(auth, await signed(), MISMATCH);
      await auth.authenticate(await signed({ secret: ROTATED }));
      withSecret(SECRET);
      await auth.authenticate(await signed());
      await expectRefusedBy(auth, await signed({ secret: ROTATED }), MISMATCH);
    });

    it('verifies requests dated either side of midnight UTC, each with its own day in the scope', async () => {
      clock = MIDNIGHT;
      withSecret(SECRET);
      for (const at of [MIDNIGHT - 2_000, MIDNIGHT + 2_000, MIDNIGHT - 1_000, MIDNIGHT]) await auth.authenticate(await signed({ at }));
      // A request signed with yesterday's scope but today's date is refused for its scope, not let through by a cached key.
      const req = await signed({ at: MIDNIGHT - 2_000 });
      req.headers['x-amz-date'] = '20260102T000001Z';
      await expectRefusedBy(auth, req, /^Date in Credential scope does not match/);
    });

    it('serves more access keys than it keeps keys for', async () => {
      clock = NOW;
      const many = new Map<string, Credential>();
      for (let i = 0; i < 300; i++) {
        const id = `AKIAMANYKEYS${String(i).padStart(8, '0')}`;
        many.set(id, { principal: { name: `p${i}`, admin: false, accessKeyId: id }, secret: `many-keys-secret-${i}-abcdefgh` });
      }
      const crowd = new SigV4Authenticator({ region: 'us-east-1', credentials: { lookup: (id) => many.get(id) }, now: () => NOW });
      for (const round of [0, 1])
        for (const [id, cred] of many) {
          const principal = await crowd.authenticate(await signed({ accessKeyId: id, secret: cred.secret }));
          expect(principal.name, `round ${round}`).to.equal(cred.principal.name);
        }
    });

    it('never shows a secret or a signing key, even to util.inspect', async () => {
      clock = NOW;
      withSecret(SECRET);
      await auth.authenticate(await signed());
      let key: Buffer = createHmac('sha256', `AWS4${SECRET}`).update('20260101').digest();
      for (const part of ['us-east-1', 'kms', 'aws4_request']) key = createHmac('sha256', key).update(part).digest();
      const shown = `${inspect(auth, { showHidden: true, depth: 10 })} ${JSON.stringify(auth)} ${String(auth)}`;
      expect(shown).not.to.contain(SECRET);
      expect(shown).not.to.contain(key.toString('hex'));
      expect(shown).not.to.contain(key.toString('base64'));
    });
  });
});

describe('the credentials file (unit)', () => {
  const key = (n: number) => ({ accessKeyId: `AKIAFILETEST0000000${n}`, secretAccessKey: `file-test-secret-${n}-abcdefghijklmnop` });

  function errorOf(raw: unknown): string {
    try {
      parseCredentials(raw, '/x/credentials.json');
    } catch (e) {
      expect(e).to.be.instanceOf(ConfigError);
      const message = (e as Error).message;
      expect(message).to.match(/^auth\.credentialsFile: /);
      expect(message).not.to.contain('file-test-secret');
      return message;
    }
    throw new Error('the file was accepted');
  }

  it('maps every access key to its principal; admin defaults to false', () => {
    const map = parseCredentials({ principals: [{ name: 'app', accessKeys: [key(1), key(2)] }, { name: 'ops', admin: true, accessKeys: [key(3)] }] }, 'f');
    expect(map.get(key(2).accessKeyId)).to.deep.equal({ principal: { name: 'app', admin: false, accessKeyId: key(2).accessKeyId }, secret: key(2).secretAccessKey });
    expect(map.get(key(3).accessKeyId)?.principal.admin).to.equal(true);
    expect(map.size).to.equal(3);
  });

  it('allows at most two access keys per principal', () => {
    expect(errorOf({ principals: [{ name: 'app', accessKeys: [key(1), key(2), key(3)] }] })).to.contain('principals[0].accessKeys: at most 2 access keys');
  });

  it('refuses a principal name or an access key id used twice', () => {
    expect(errorOf({ principals: [{ name: 'app', accessKeys: [key(1)] }, { name: 'app', accessKeys: [key(2)] }] })).to.contain('principals[1].name: principal app is defined twice');
    expect(errorOf({ principals: [{ name: 'a', accessKeys: [key(1)] }, { name: 'b', accessKeys: [key(1)] }] })).to.contain(
      `principals[1].accessKeys[0].accessKeyId: access key id ${key(1).accessKeyId} is used twice`,
    );
  });

  it('refuses unknown fields, short secrets and wildcard names', () => {
    expect(errorOf({ principals: [{ name: 'app', accessKeys: [{ ...key(1), extra: 1 }] }] })).to.contain('principals[0].accessKeys[0]');
    expect(errorOf({ principals: [{ name: 'app', accessKeys: [{ accessKeyId: key(1).accessKeyId, secretAccessKey: 'short' }] }] })).to.contain(
      'principals[0].accessKeys[0].secretAccessKey: must be at least 16 characters',
    );
    expect(errorOf({ principals: [{ name: '*', accessKeys: [key(1)] }] })).to.contain('principals[0].name');
  });

  it('refuses a file group or others may read, and bad JSON without quoting it', () => {
    const dir = mkdtempSync(join(process.env['KMSGW_TEST_TMP'] ?? tmpdir(), 'creds-'));
    const file = join(dir, 'credentials.json');
    writeFileSync(file, JSON.stringify({ principals: [{ name: 'app', accessKeys: [key(1)] }] }), { mode: 0o640 });
    chmodSync(file, 0o640);
    expect(() => readCredentialsFile(file)).to.throw(ConfigError, /^auth\.credentialsFile: .* is readable by group or others \(mode 640\)/);
    chmodSync(file, 0o600);
    expect(readCredentialsFile(file).size).to.equal(1);
    writeFileSync(file, '{"principals": [{"name": "app", "accessKeys": [{"secretAccessKey": file-test-secret-1}]}]}');
    let message = '';
    try {
      readCredentialsFile(file);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).to.match(/^auth\.credentialsFile: .* is not valid JSON/);
    expect(message).not.to.contain('file-test-secret');
  });
});
