/**
 * SigV4 authentication of a real gateway process: the real
 * @aws-sdk/client-kms and the AWS CLI with good and bad credentials, raw
 * requests signed at chosen dates or tampered with after signing, and the
 * credentials file: two keys per principal, rotation while requests run,
 * reload on SIGHUP and on file change, refusal of a file others may read.
 */
import { execFile } from 'node:child_process';
import { chmodSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CreateKeyCommand, EncryptCommand, DecryptCommand, GenerateRandomCommand, KMSClient, ListKeysCommand } from '@aws-sdk/client-kms';
import { expect } from 'chai';
import {
  DEMO_ACCESS_KEY_ID,
  DEMO_SECRET,
  REGION,
  awsCliEnv,
  defaultConfig,
  kmsClient,
  makeToken,
  rawRequest,
  signHeaders,
  startExpectingFailure,
  startGateway,
  type GatewayProcess,
} from '../support/gateway.js';
import { expectClientError, failure } from '../support/sdk-errors.js';

const run = promisify(execFile);
const AES = '0b5e6a1c-7d43-4f0e-9a35-2c8d1e6f4a01';
const UNRECOGNIZED = 'The security token included in the request is invalid.';
const MISMATCH =
  'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.';

/** The embedded default with only its AES key: quick to start. */
function quickConfig(): Record<string, unknown> {
  const config = defaultConfig();
  config['keys'] = (config['keys'] as Array<{ keySpec: string }>).filter((k) => k.keySpec === 'SYMMETRIC_DEFAULT');
  return config;
}

function client(url: string, accessKeyId: string, secretAccessKey: string, extra: Partial<ConstructorParameters<typeof KMSClient>[0]> = {}): KMSClient {
  return new KMSClient({ endpoint: url, region: REGION, credentials: { accessKeyId, secretAccessKey }, maxAttempts: 1, ...extra });
}

async function keyCount(url: string): Promise<number> {
  const out = await kmsClient(url).send(new ListKeysCommand({ Limit: 1000 }));
  return out.Keys?.length ?? 0;
}

type Key = { accessKeyId: string; secretAccessKey: string };
const key = (n: number): Key => ({ accessKeyId: `AKIAROTATETEST00000${n}`, secretAccessKey: `rotation-secret-${n}-0123456789abcdefghij` });
const DEMO = { name: 'demo', admin: true, accessKeys: [{ accessKeyId: DEMO_ACCESS_KEY_ID, secretAccessKey: DEMO_SECRET }] };

function credentialsJson(rotatorKeys: Key[]): string {
  return JSON.stringify({ principals: [DEMO, { name: 'rotator', admin: true, accessKeys: rotatorKeys }] }, null, 2);
}

describe('SigV4 authentication of a real gateway', function () {
  this.timeout(60_000);
  let gw: GatewayProcess;

  before(async function () {
    gw = await startGateway({ config: quickConfig() });
  });

  after(async function () {
    await gw?.stop();
  });

  describe('good credentials', function () {
    it('lets @aws-sdk/client-kms with the demo credential encrypt and decrypt', async function () {
      const kms = kmsClient(gw.url);
      const enc = await kms.send(new EncryptCommand({ KeyId: AES, Plaintext: Buffer.from('signed') }));
      const dec = await kms.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob }));
      expect(Buffer.from(dec.Plaintext as Uint8Array).toString()).to.equal('signed');
    });

    it('lets the AWS CLI (botocore, an independent signer) with the demo credential call the gateway', async function () {
      const { stdout } = await run('aws', ['kms', 'generate-random', '--number-of-bytes', '16', '--endpoint-url', gw.url, '--output', 'json'], { env: awsCliEnv() });
      expect(Buffer.from((JSON.parse(stdout) as { Plaintext: string }).Plaintext, 'base64')).to.have.length(16);
      const enc = await run('aws', ['kms', 'encrypt', '--key-id', 'alias/demo-aes', '--plaintext', Buffer.from('cli').toString('base64'), '--endpoint-url', gw.url, '--output', 'json'], {
        env: awsCliEnv(),
      });
      expect((JSON.parse(enc.stdout) as { KeyId: string }).KeyId).to.contain(AES);
    });

    it('lets a client whose clock is 6 minutes slow in after one refusal: the SDK corrects its clock from the answer, as with AWS', async function () {
      const skewed = client(gw.url, DEMO_ACCESS_KEY_ID, DEMO_SECRET, { systemClockOffset: -6 * 60_000, maxAttempts: 2 });
      const out = await skewed.send(new GenerateRandomCommand({ NumberOfBytes: 8 }));
      expect(out.$metadata.attempts).to.equal(2);
    });
  });

  describe('bad credentials', function () {
    it('answers InvalidSignatureException to a wrong secret, and the SDK does not retry it', async function () {
      const kms = client(gw.url, DEMO_ACCESS_KEY_ID, `${DEMO_SECRET.slice(0, -1)}X`, { maxAttempts: 3 });
      const err = await failure(kms.send(new GenerateRandomCommand({ NumberOfBytes: 8 })));
      expectClientError(err, 'InvalidSignatureException', MISMATCH);
      expect((err.$metadata as { attempts?: number }).attempts).to.equal(1);
    });

    it('answers UnrecognizedClientException to an unknown access key id, not retried', async function () {
      const kms = client(gw.url, 'AKIANOBODYKNOWSTHIS1', DEMO_SECRET, { maxAttempts: 3 });
      const err = await failure(kms.send(new GenerateRandomCommand({ NumberOfBytes: 8 })));
      expectClientError(err, 'UnrecognizedClientException', UNRECOGNIZED);
      expect((err.$metadata as { attempts?: number }).attempts).to.equal(1);
    });

    it('answers UnrecognizedClientException to session (STS) credentials: there is no STS here', async function () {
      const kms = new KMSClient({
        endpoint: gw.url,
        region: REGION,
        credentials: { accessKeyId: DEMO_ACCESS_KEY_ID, secretAccessKey: DEMO_SECRET, sessionToken: 'FwoGZXIvYXdzEXAMPLETOKEN' },
        maxAttempts: 1,
      });
      expectClientError(await failure(kms.send(new GenerateRandomCommand({ NumberOfBytes: 8 }))), 'UnrecognizedClientException', UNRECOGNIZED);
    });

    it('shows the AWS CLI the same InvalidSignatureException for a wrong secret', async function () {
      const env = { ...awsCliEnv(), AWS_SECRET_ACCESS_KEY: 'wrong-secret-wrong-secret-wrong-secret-00' };
      const err = await run('aws', ['kms', 'list-keys', '--endpoint-url', gw.url], { env }).then(
        () => undefined,
        (e: { code?: number; stderr?: string }) => e,
      );
      expect(err, 'the CLI call succeeded').not.to.equal(undefined);
      expect(err?.code).to.be.a('number').and.not.equal(0);
      expect(err?.stderr).to.contain('(InvalidSignatureException)');
      expect(err?.stderr).to.contain('The request signature we calculated does not match');
    });

    it('refuses a request signed 6 minutes ago, and one signed 6 minutes ahead, with AWS\'s texts', async function () {
      const past = await rawRequest(gw.url, { target: 'TrentService.GenerateRandom', body: '{"NumberOfBytes":8}', sign: { signingDate: new Date(Date.now() - 6 * 60_000) } });
      expect(past.status).to.equal(400);
      expect(past.body?.['__type']).to.equal('InvalidSignatureException');
      expect(String(past.body?.['message'])).to.match(/^Signature expired: \d{8}T\d{6}Z is now earlier than \d{8}T\d{6}Z \(\d{8}T\d{6}Z - 5 min\.\)$/);
      const ahead = await rawRequest(gw.url, { target: 'TrentService.GenerateRandom', body: '{"NumberOfBytes":8}', sign: { signingDate: new Date(Date.now() + 6 * 60_000) } });
      expect(ahead.status).to.equal(400);
      expect(ahead.body?.['__type']).to.equal('InvalidSignatureException');
      expect(String(ahead.body?.['message'])).to.match(/^Signature not yet current: \d{8}T\d{6}Z is still later than \d{8}T\d{6}Z \(\d{8}T\d{6}Z \+ 5 min\.\)$/);
    });

    it('refuses a body changed after signing', async function () {
      const body = JSON.stringify({ KeyId: AES, Plaintext: Buffer.from('original').toString('base64') });
      const headers = await signHeaders(gw.url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': 'TrentService.Encrypt' },
        body,
      });
      const res = await fetch(gw.url, { method: 'POST', headers, body: body.replace('b3JpZ2luYWw=', 'dGFtcGVyZWQ=') });
      expect(res.status).to.equal(400);
      expect(await res.json()).to.deep.equal({ __type: 'InvalidSignatureException', message: MISMATCH });
      // The same headers with the signed body pass: only the change was refused.
      const ok = await fetch(gw.url, { method: 'POST', headers, body });
      expect(ok.status).to.equal(200);
    });

    it('answers MissingAuthenticationTokenException to an unsigned request', async function () {
      const res = await rawRequest(gw.url, { target: 'TrentService.ListKeys', body: '{}', signed: false });
      expect(res.status).to.equal(400);
      expect(res.body).to.deep.equal({ __type: 'MissingAuthenticationTokenException', message: 'Missing Authentication Token' });
    });

    it('answers IncompleteSignatureException to a malformed Authorization header, naming what is missing', async function () {
      const auth = `AWS4-HMAC-SHA256 Credential=${DEMO_ACCESS_KEY_ID}/20260101/${REGION}/kms/aws4_request`;
      const res = await rawRequest(gw.url, { target: 'TrentService.ListKeys', body: '{}', headers: { authorization: auth } });
      expect(res.status).to.equal(400);
      expect(res.body?.['__type']).to.equal('IncompleteSignatureException');
      expect(res.body?.['message']).to.equal(
        "Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. " +
          `Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization=${auth}`,
      );
    });

    it('refuses a credential scoped to another region or another service', async function () {
      const region = await rawRequest(gw.url, { target: 'TrentService.ListKeys', body: '{}', sign: { region: 'eu-west-1' } });
      expect(region.status).to.equal(400);
      expect(region.body).to.deep.equal({ __type: 'InvalidSignatureException', message: "Credential should be scoped to a valid region, not 'eu-west-1'. " });
      const service = await rawRequest(gw.url, { target: 'TrentService.ListKeys', body: '{}', sign: { service: 'dynamodb' } });
      expect(service.status).to.equal(400);
      expect(service.body).to.deep.equal({ __type: 'InvalidSignatureException', message: "Credential should be scoped to correct service: 'kms'. " });
    });

    it('lets no refused request reach the token: refused CreateKeys create no key, and the gateway stays up', async function () {
      const before = await keyCount(gw.url);
      const create = { target: 'TrentService.CreateKey', body: '{"Description":"must not exist"}' };
      const refused = [
        await rawRequest(gw.url, { ...create, signed: false }),
        await rawRequest(gw.url, { ...create, headers: { authorization: 'AWS4-HMAC-SHA256 Credential=x' } }),
        await rawRequest(gw.url, { ...create, sign: { secretAccessKey: 'not-the-secret-not-the-secret-0000000000' } }),
        await rawRequest(gw.url, { ...create, sign: { accessKeyId: 'AKIANOBODYKNOWSTHIS1' } }),
        await rawRequest(gw.url, { ...create, sign: { signingDate: new Date(Date.now() - 6 * 60_000) } }),
        await rawRequest(gw.url, { ...create, sign: { region: 'eu-west-1' } }),
        await rawRequest(gw.url, { ...create, sign: { service: 'dynamodb' } }),
        await rawRequest(gw.url, { ...create, sign: { sessionToken: 'FwoGZXIvYXdzEXAMPLETOKEN' } }),
      ];
      for (const res of refused) {
        expect(res.status, res.text).to.equal(400);
        expect(res.headers.get('x-amzn-errortype')).to.be.oneOf([
          'MissingAuthenticationTokenException',
          'IncompleteSignatureException',
          'InvalidSignatureException',
          'UnrecognizedClientException',
        ]);
      }
      const sdkRefused = await failure(client(gw.url, DEMO_ACCESS_KEY_ID, 'wrong-secret-wrong-secret-wrong-secret-00').send(new CreateKeyCommand({})));
      expectClientError(sdkRefused, 'InvalidSignatureException');
      expect(await keyCount(gw.url)).to.equal(before);
      expect(gw.child.exitCode).to.equal(null);
    });
  });
});

describe('the credentials file of a real gateway', function () {
  this.timeout(60_000);
  let gw: GatewayProcess;
  let file: string;

  /** Requests with one key, one after another, until stopped (bounded in count and time). */
  function loop(k: Key): { stop(): Promise<{ ok: number; failures: string[] }> } {
    const kms = client(gw.url, k.accessKeyId, k.secretAccessKey);
    let stopped = false;
    const failures: string[] = [];
    let ok = 0;
    const started = Date.now();
    const done = (async () => {
      while (!stopped && ok + failures.length < 2000 && Date.now() - started < 20_000) {
        try {
          await kms.send(new GenerateRandomCommand({ NumberOfBytes: 4 }));
          ok++;
        } catch (e) {
          failures.push(`${(e as Error).name}: ${(e as Error).message}`);
        }
      }
    })();
    return {
      async stop() {
        stopped = true;
        await done;
        return { ok, failures };
      },
    };
  }

  async function works(k: Key): Promise<boolean> {
    try {
      await client(gw.url, k.accessKeyId, k.secretAccessKey).send(new GenerateRandomCommand({ NumberOfBytes: 4 }));
      return true;
    } catch (e) {
      expectClientError(e as never, 'UnrecognizedClientException', UNRECOGNIZED);
      return false;
    }
  }

  async function until(what: string, check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
    const end = Date.now() + ms;
    while (!(await check())) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  const reloads = (reason: string) => gw.logs().split('\n').filter((l) => l.includes('credentials reloaded') && l.includes(`"reason":"${reason}"`)).length;

  before(async function () {
    const token = makeToken('kmsgw-dev');
    file = join(token.dir, 'credentials.json');
    writeFileSync(file, credentialsJson([key(1), key(2)]));
    chmodSync(file, 0o600);
    gw = await startGateway({ config: quickConfig(), token });
  });

  after(async function () {
    await gw?.stop();
  });

  it('lets a principal sign with either of its two access keys', async function () {
    expect(await works(key(1))).to.equal(true);
    expect(await works(key(2))).to.equal(true);
  });

  it('rotates on SIGHUP: the first key removed and a third added while requests with the second run, none failing', async function () {
    const running = loop(key(2));
    await new Promise((r) => setTimeout(r, 300));
    // Written beside the file and renamed over it, as careful tools do (mode 600).
    const next = `${file}.new`;
    writeFileSync(next, credentialsJson([key(2), key(3)]), { mode: 0o600 });
    const seenChange = reloads('file change');
    renameSync(next, file);
    const seen = reloads('SIGHUP');
    gw.child.kill('SIGHUP');
    await until('the SIGHUP reload', () => reloads('SIGHUP') > seen);
    // The poll notices the rename too (a new inode), up to a poll interval
    // later: waited for here, so that the next test's count of file-change
    // reloads starts after it (counted there, it let that test look before
    // its own write was loaded).
    await until('the poll noticing the rename', () => reloads('file change') > seenChange);
    await new Promise((r) => setTimeout(r, 300));
    const { ok, failures } = await running.stop();
    expect(failures).to.deep.equal([]);
    expect(ok).to.be.greaterThan(0);
    expect(await works(key(1))).to.equal(false);
    expect(await works(key(3))).to.equal(true);
    expect(gw.child.exitCode, 'SIGHUP must not stop the gateway').to.equal(null);
  });

  it('rotates on a file change alone (rewritten in place, no signal), requests with the kept key never failing', async function () {
    const running = loop(key(2));
    await new Promise((r) => setTimeout(r, 300));
    const seen = reloads('file change');
    writeFileSync(file, credentialsJson([key(2), key(4)]));
    await until('the file-change reload', () => reloads('file change') > seen);
    await new Promise((r) => setTimeout(r, 300));
    const { ok, failures } = await running.stop();
    expect(failures).to.deep.equal([]);
    expect(ok).to.be.greaterThan(0);
    expect(await works(key(3))).to.equal(false);
    expect(await works(key(4))).to.equal(true);
  });

  it('keeps the credentials in force when a reload fails (bad JSON, three keys, readable by others), warning without secrets', async function () {
    const warnings = () => gw.logs().split('\n').filter((l) => l.includes('credentials not reloaded')).length;
    const bad: Array<[string, () => void]> = [
      ['bad JSON', () => writeFileSync(file, `{"principals": [${key(5).secretAccessKey}`)],
      ['three keys', () => writeFileSync(file, credentialsJson([key(2), key(4), key(5)]))],
      [
        'readable by others',
        () => {
          writeFileSync(file, credentialsJson([key(5)]));
          chmodSync(file, 0o644);
        },
      ],
    ];
    for (const [what, write] of bad) {
      const seen = warnings();
      write();
      gw.child.kill('SIGHUP');
      await until(`the warning for ${what}`, () => warnings() > seen);
      expect(await works(key(2)), what).to.equal(true);
      expect(await works(key(4)), what).to.equal(true);
      expect(await works(key(5)), what).to.equal(false);
    }
    expect(gw.logs()).to.contain('auth.credentialsFile');
    expect(gw.logs()).to.contain('is readable by group or others');
    for (const n of [1, 2, 3, 4, 5]) expect(gw.logs(), `secret ${n} in the log`).not.to.contain(key(n).secretAccessKey);
    expect(gw.logs()).not.to.contain(DEMO_SECRET);
    chmodSync(file, 0o600);
  });
});

describe('start-up refuses an unusable credentials file', function () {
  this.timeout(60_000);

  async function refused(content: string | undefined, mode: number): Promise<string> {
    const token = makeToken('kmsgw-dev');
    const file = join(token.dir, 'credentials.json');
    if (content !== undefined) writeFileSync(file, content);
    chmodSync(file, mode);
    const { code, stderr } = await startExpectingFailure({ config: quickConfig(), token });
    expect(code, stderr).to.equal(2);
    expect(stderr).to.contain('auth.credentialsFile');
    return stderr;
  }

  it('stops with exit code 2 on a world-readable file, naming auth.credentialsFile', async function () {
    const stderr = await refused(undefined, 0o644);
    expect(stderr).to.match(/is readable by group or others \(mode 644\); chmod 600 it/);
    expect(stderr).not.to.contain(DEMO_SECRET);
  });

  it('stops with exit code 2 on three keys for one principal, without printing a secret', async function () {
    const stderr = await refused(credentialsJson([key(1), key(2), key(3)]), 0o600);
    expect(stderr).to.contain('principals[1].accessKeys: at most 2 access keys');
    for (const n of [1, 2, 3]) expect(stderr).not.to.contain(key(n).secretAccessKey);
  });
});
