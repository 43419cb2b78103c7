/**
 * The audit log, through a real gateway process writing `audit.file` in its
 * token dir: one JSON line per request with who, what, on which key, the
 * outcome and the error type; and none of the secrets the requests carried
 * (plaintext, data key, ciphertext, encryption context values, the PIN, the
 * secret key, the signature) in the audit file or in the gateway's log.
 * Without `audit.file` the lines go to stdout; a sink that fails does not
 * hold requests and is reported once.
 */
import { readFileSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import {
  DecryptCommand,
  EncryptCommand,
  GenerateDataKeyCommand,
  type KMSClient,
} from '@aws-sdk/client-kms';
import { expect } from 'chai';
import {
  DEMO_ACCESS_KEY_ID,
  DEMO_SECRET,
  defaultConfig,
  keyArn,
  kmsClient,
  makeToken,
  rawRequest,
  startGateway,
  type GatewayProcess,
  type TokenDir,
} from '../support/gateway.js';
import { failure } from '../support/sdk-errors.js';

type Json = Record<string, any>;

const AES_KEY_ID = '0b5e6a1c-7d43-4f0e-9a35-2c8d1e6f4a01';
const FIELDS = [
  'time',
  'requestId',
  'principal',
  'accessKeyId',
  'sourceAddress',
  'operation',
  'keyArn',
  'encryptionContextKeys',
  'outcome',
  'errorType',
  'httpStatus',
  'latencyMs',
].sort();

/** The default config with one AES key (a fast start), edited by `edit`. */
function aesOnly(edit: (c: Json) => void = () => {}): Json {
  const c = defaultConfig() as Json;
  c['keys'] = [(c['keys'] as Json[])[0]];
  edit(c);
  return c;
}

function parseLines(text: string): Json[] {
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Json);
}

describe('audit log: one JSON line per request, no secrets', function () {
  this.timeout(60_000);

  describe('to audit.file', function () {
    let gw: GatewayProcess;
    let token: TokenDir;
    let sdk: KMSClient;
    let lines: Json[];
    let auditText: string;
    const plaintext = Buffer.from('audit-canary-plaintext-7f3a9c0e');
    const context = { tenant: 'ctx-value-canary-41b2e8', purpose: 'ctx-value-canary-9d07aa' };
    /** Everything the requests carried that must never be written, by what it is. */
    const secrets = new Map<string, string>();
    const ids: Record<string, string> = {};

    before(async function () {
      token = makeToken('kmsgw-dev');
      gw = await startGateway({
        token,
        config: aesOnly((c) => {
          c['audit'] = { file: '${KMSGW_DATA_DIR}/audit.log' };
          c['listen'] = { ...c['listen'], requestTimeoutMs: 1_000 };
        }),
      });
      sdk = kmsClient(gw.url);

      const enc = await sdk.send(new EncryptCommand({ KeyId: 'alias/demo-aes', Plaintext: plaintext, EncryptionContext: context }));
      ids['encrypt'] = enc.$metadata.requestId as string;
      const dec = await sdk.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob, EncryptionContext: context }));
      ids['decrypt'] = dec.$metadata.requestId as string;
      expect(Buffer.from(dec.Plaintext ?? new Uint8Array()).equals(plaintext)).to.equal(true);
      const gdk = await sdk.send(new GenerateDataKeyCommand({ KeyId: AES_KEY_ID, KeySpec: 'AES_256', EncryptionContext: context }));
      ids['generateDataKey'] = gdk.$metadata.requestId as string;
      const wrongContext = await failure(sdk.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob, EncryptionContext: { tenant: 'someone-else' } })));
      expect(wrongContext.name).to.equal('InvalidCiphertextException');
      ids['failed'] = (wrongContext.$metadata as { requestId?: string }).requestId as string;
      const unsigned = await rawRequest(gw.url, {
        signed: false,
        target: 'TrentService.Encrypt',
        body: JSON.stringify({ KeyId: 'alias/demo-aes', Plaintext: plaintext.toString('base64'), EncryptionContext: context }),
      });
      expect(unsigned.status).to.equal(400);
      ids['unsigned'] = unsigned.headers.get('x-amzn-requestid') as string;
      const get = await rawRequest(gw.url, { method: 'GET' });
      ids['get'] = get.headers.get('x-amzn-requestid') as string;
      // A client that sends its headers and part of the body, then stalls until the gateway cuts it off.
      await new Promise<void>((resolve) => {
        const socket = connect(gw.port, '127.0.0.1');
        socket.on('error', () => {});
        socket.on('close', () => resolve());
        socket.resume(); // read (and drop) the 408, so the close can complete
        socket.write('POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Target: TrentService.Encrypt\r\nContent-Length: 100\r\n\r\n{');
      });
      ids['stalled'] = 'unknown to the client';

      secrets.set('plaintext', plaintext.toString());
      secrets.set('plaintext (base64)', plaintext.toString('base64'));
      secrets.set('ciphertext (base64)', Buffer.from(enc.CiphertextBlob ?? []).toString('base64'));
      secrets.set('data key (base64)', Buffer.from(gdk.Plaintext ?? []).toString('base64'));
      secrets.set('data key ciphertext (base64)', Buffer.from(gdk.CiphertextBlob ?? []).toString('base64'));
      secrets.set('context value tenant', context.tenant);
      secrets.set('context value purpose', context.purpose);
      secrets.set('PIN', readFileSync(token.pinFile, 'utf8').trim());
      secrets.set('secret access key', DEMO_SECRET);
      secrets.set('Authorization header', 'AWS4-HMAC-SHA256');
      secrets.set('signature', 'Signature=');

      sdk.destroy();
      // Stopping flushes and closes the audit file.
      await gw.stop();
      auditText = readFileSync(join(token.dir, 'audit.log'), 'utf8');
      lines = parseLines(auditText);
    });

    after(async function () {
      sdk?.destroy();
      await gw?.stop();
    });

    const line = (which: string): Json => {
      if (which === 'stalled') {
        const aborted = lines.filter((l) => l['aborted'] === true);
        expect(aborted, 'the aborted request').to.have.length(1);
        return aborted[0] as Json;
      }
      const found = lines.filter((l) => l['requestId'] === ids[which]);
      expect(found, `audit lines of the ${which} request (${ids[which]})`).to.have.length(1);
      return found[0] as Json;
    };

    it('creates the file readable by its owner only (0600)', function () {
      expect(statSync(join(token.dir, 'audit.log')).mode & 0o777).to.equal(0o600);
    });

    it('writes one line per request, each with the same fields', function () {
      expect(lines).to.have.length(Object.keys(ids).length);
      for (const l of lines) expect(Object.keys(l).filter((k) => k !== 'aborted').sort()).to.deep.equal(FIELDS);
      expect(new Set(lines.map((l) => l['requestId'])).size).to.equal(lines.length);
    });

    it('records a successful Encrypt: who, from where, what, on which key, the context keys', function () {
      const l = line('encrypt');
      expect(l['principal']).to.equal('demo');
      expect(l['accessKeyId']).to.equal(DEMO_ACCESS_KEY_ID);
      expect(l['sourceAddress']).to.match(/127\.0\.0\.1$/);
      expect(l['operation']).to.equal('Encrypt');
      expect(l['keyArn']).to.equal(keyArn(AES_KEY_ID));
      expect(l['encryptionContextKeys']).to.deep.equal(['purpose', 'tenant']);
      expect(l['outcome']).to.equal('success');
      expect(l['errorType']).to.equal(null);
      expect(l['httpStatus']).to.equal(200);
      expect(l['latencyMs']).to.be.a('number').and.at.least(0);
      expect(Number.isNaN(Date.parse(l['time']))).to.equal(false);
      expect(l['time']).to.equal(new Date(l['time']).toISOString());
    });

    it('records Decrypt (key from the ciphertext) and GenerateDataKey', function () {
      const d = line('decrypt');
      expect([d['operation'], d['keyArn'], d['outcome'], d['httpStatus']]).to.deep.equal(['Decrypt', keyArn(AES_KEY_ID), 'success', 200]);
      expect(d['encryptionContextKeys']).to.deep.equal(['purpose', 'tenant']);
      const g = line('generateDataKey');
      expect([g['operation'], g['keyArn'], g['outcome'], g['httpStatus']]).to.deep.equal(['GenerateDataKey', keyArn(AES_KEY_ID), 'success', 200]);
    });

    it('records a failed call as client_error with its error type', function () {
      const l = line('failed');
      expect(l['operation']).to.equal('Decrypt');
      expect(l['principal']).to.equal('demo');
      expect(l['outcome']).to.equal('client_error');
      expect(l['errorType']).to.equal('InvalidCiphertextException');
      expect(l['httpStatus']).to.equal(400);
      expect(l['encryptionContextKeys']).to.deep.equal(['tenant']);
    });

    it('records an unsigned call with no principal and MissingAuthenticationTokenException', function () {
      const l = line('unsigned');
      expect(l['operation']).to.equal('Encrypt');
      expect(l['principal']).to.equal(null);
      expect(l['accessKeyId']).to.equal(null);
      expect(l['keyArn'], 'an unsigned request never gets as far as the key').to.equal(null);
      expect(l['outcome']).to.equal('client_error');
      expect(l['errorType']).to.equal('MissingAuthenticationTokenException');
    });

    it('records a request that is not a KMS call', function () {
      const l = line('get');
      expect(l['operation']).to.equal(null);
      expect(l['outcome']).to.equal('client_error');
      expect(l['errorType']).to.equal('UnknownOperationException');
    });

    it('records a client cut off before its request was complete as aborted, with no status', function () {
      const l = line('stalled');
      expect(l['aborted']).to.equal(true);
      expect(l['httpStatus']).to.equal(null);
      expect(l['outcome']).to.equal('client_error');
      expect(l['principal']).to.equal(null);
      expect(l['requestId']).to.be.a('string');
    });

    it('writes none of the secrets the requests carried, in the audit file or the gateway log', function () {
      const logs = gw.logs();
      for (const [what, value] of secrets) {
        expect(value.length, what).to.be.at.least(8);
        expect(auditText.includes(value), `${what} in the audit file`).to.equal(false);
        expect(logs.includes(value), `${what} in the gateway log`).to.equal(false);
      }
    });
  });

  describe('to stdout, and a failing sink', function () {
    it('writes the lines to stdout when audit.file is absent', async function () {
      const gw = await startGateway({ config: aesOnly() });
      const sdk = kmsClient(gw.url);
      try {
        const enc = await sdk.send(new EncryptCommand({ KeyId: 'alias/demo-aes', Plaintext: Buffer.from('to stdout') }));
        sdk.destroy();
        await gw.stop();
        const mine = gw
          .logs()
          .split('\n')
          .filter((l) => l.includes(`"requestId":"${enc.$metadata.requestId}"`))
          .map((l) => JSON.parse(l) as Json);
        expect(mine).to.have.length(1);
        expect(mine[0]?.['operation']).to.equal('Encrypt');
        expect(mine[0]?.['outcome']).to.equal('success');
      } finally {
        sdk.destroy();
        await gw.stop();
      }
    });

    it('keeps serving when the audit file cannot be written, and warns once', async function () {
      const gw = await startGateway({ config: aesOnly((c) => (c['audit'] = { file: '/dev/full' })) });
      const sdk = kmsClient(gw.url);
      try {
        for (let i = 0; i < 3; i++) {
          const enc = await sdk.send(new EncryptCommand({ KeyId: 'alias/demo-aes', Plaintext: Buffer.from(`still served ${i}`) }));
          expect(enc.KeyId).to.equal(keyArn(AES_KEY_ID));
        }
        sdk.destroy();
        await gw.stop();
        const warnings = gw.logs().split('\n').filter((l) => l.includes('audit log write failed'));
        expect(warnings).to.have.length(1);
        expect(gw.logs()).to.include('audit lines lost');
      } finally {
        sdk.destroy();
        await gw.stop();
      }
    });
  });
});
