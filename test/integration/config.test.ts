/**
 * Start-up configuration through the real gateway process: a bad config
 * stops start-up with exit code 2 and a message naming the field; an
 * unreachable token stops it with a non-zero code naming the token; the
 * environment overrides work; and a restart on the same token finds the keys
 * it created before instead of creating them again.
 */
import { chmodSync, copyFileSync, mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DecryptCommand, EncryptCommand, GenerateRandomCommand } from '@aws-sdk/client-kms';
import { expect } from 'chai';
import {
  defaultConfig,
  keyArn,
  kmsClient,
  makeToken,
  startExpectingFailure,
  startGateway,
  type TokenDir,
} from '../support/gateway.js';
import { failure } from '../support/sdk-errors.js';

type Json = Record<string, any>;

const AES_KEY_ID = '0b5e6a1c-7d43-4f0e-9a35-2c8d1e6f4a01';

/** The default config, edited by `edit`. */
function configWith(edit: (c: Json) => void): Json {
  const c = defaultConfig() as Json;
  edit(c);
  return c;
}

/** One AES key only: a fast start (no RSA key generation). */
function aesOnlyConfig(): Json {
  return configWith((c) => {
    c['keys'] = [(c['keys'] as Json[])[0]];
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

describe('gateway start-up configuration', function () {
  this.timeout(60_000);
  let token: TokenDir;

  before(() => {
    // Shared by the failure cases: none of them gets as far as creating keys.
    token = makeToken('kmsgw-dev');
  });

  async function expectConfigError(config: unknown, ...needles: string[]): Promise<string> {
    const { code, stderr } = await startExpectingFailure({ config, token });
    expect(code, stderr).to.equal(2);
    expect(stderr).to.contain('configuration error');
    for (const n of needles) expect(stderr).to.contain(n);
    expect(stderr).not.to.contain('listening');
    return stderr;
  }

  describe('a bad config stops start-up with exit code 2, naming the field', () => {
    it('hsm.token with both label and slot', async () => {
      await expectConfigError(
        configWith((c) => (c['hsm']['token'] = { label: 'kmsgw-dev', slot: 0 })),
        'hsm.token',
        'exactly one of label or slot',
      );
    });

    it('a keyId that is not a UUID', async () => {
      await expectConfigError(configWith((c) => (c['keys'][0]['keyId'] = 'demo-aes')), 'keys[0].keyId', 'UUID');
    });

    it('an alias without the alias/ prefix', async () => {
      await expectConfigError(configWith((c) => (c['keys'][0]['aliases'] = ['demo-aes'])), 'keys[0].aliases[0]', 'alias/');
    });

    it('an alias under the reserved alias/aws/', async () => {
      await expectConfigError(configWith((c) => (c['keys'][0]['aliases'] = ['alias/aws/x'])), 'keys[0].aliases[0]', 'reserved');
    });

    it('the same alias on two keys', async () => {
      await expectConfigError(
        configWith((c) => (c['keys'][1]['aliases'] = ['alias/demo-rsa-2048', 'alias/demo-aes'])),
        'keys[1].aliases[1]',
        'alias/demo-aes',
      );
    });

    it('a missing hsm.module', async () => {
      await expectConfigError(configWith((c) => delete c['hsm']['module']), 'hsm.module');
    });

    it('a file that is not JSON', async () => {
      await expectConfigError('{ "hsm": { "module": "/usr/lib/softhsm/libsofthsm2.so", ', 'not valid JSON');
    });

    it('a bad KMSGW_PORT', async () => {
      const { code, stderr } = await startExpectingFailure({ config: aesOnlyConfig(), token, env: { KMSGW_PORT: 'eighty' } });
      expect(code, stderr).to.equal(2);
      expect(stderr).to.contain('KMSGW_PORT');
    });

    it('a PIN file readable by others (mode 644)', async () => {
      chmodSync(token.pinFile, 0o644);
      try {
        await expectConfigError(aesOnlyConfig(), 'hsm.pin.file', 'chmod 600');
      } finally {
        chmodSync(token.pinFile, 0o600);
      }
    });

    it('a PIN environment variable that is not set', async () => {
      await expectConfigError(
        configWith((c) => (c['hsm']['pin'] = { env: 'KMSGW_IT_UNSET_PIN' })),
        'hsm.pin.env',
        'KMSGW_IT_UNSET_PIN',
      );
    });
  });

  it('a token label that does not exist does not stop start-up: the gateway listens, names the label in its log, and /readyz says not ready', async () => {
    const gw = await startGateway({ config: configWith((c) => (c['hsm']['token'] = { label: 'no-such-token' })), token });
    try {
      expect(gw.logs()).to.contain("'no-such-token'");
      const ready = await fetch(`${gw.url}/readyz`);
      expect(ready.status).to.equal(503);
    } finally {
      await gw.stop();
    }
  });

  it('a PIN the token refuses does not stop start-up, and is tried only once: KMS calls answer KeyUnavailableException and /readyz says why', async () => {
    const gw = await startGateway({
      config: configWith((c) => (c['hsm'] = { ...c['hsm'], pin: { env: 'KMSGW_TEST_WRONG_PIN' }, probeIntervalMs: 100 })),
      token,
      env: { KMSGW_TEST_WRONG_PIN: '000000' },
    });
    try {
      await new Promise((r) => setTimeout(r, 1000));
      const err = await failure(kmsClient(gw.url).send(new GenerateRandomCommand({ NumberOfBytes: 8 })));
      expect(err.name).to.equal('KeyUnavailableException');
      const ready = await fetch(`${gw.url}/readyz`);
      expect(ready.status).to.equal(503);
      expect(await ready.text()).to.contain('HSM refused the PIN');
      // One login attempt in all, whatever the number of lanes and probes: a retry could lock the HSM user.
      expect(gw.logs().match(/the HSM refused the PIN; not logging in again/g)).to.have.length(1);
      expect(gw.logs()).not.to.contain('000000');
    } finally {
      await gw.stop();
    }
  });

  it('a module path that does not exist stops start-up with exit code 2 naming hsm.module', async () => {
    const { code, stderr } = await startExpectingFailure({
      config: configWith((c) => (c['hsm']['module'] = '/no/such/module.so')),
      token,
    });
    expect(code, stderr).to.equal(2);
    expect(stderr).to.contain('hsm.module');
    expect(stderr).not.to.contain('listening');
  });

  it('KMSGW_PORT overrides listen.port and ${KMSGW_DATA_DIR} is substituted', async () => {
    // A data dir other than the token dir, holding only copies of the PIN and
    // the credentials file: the gateway can log in only if the file's
    // ${KMSGW_DATA_DIR} became this dir.
    const dataDir = mkdtempSync(join(process.env['KMSGW_TEST_TMP'] ?? tmpdir(), 'datadir-'));
    copyFileSync(token.pinFile, join(dataDir, 'pin'));
    chmodSync(join(dataDir, 'pin'), 0o600);
    copyFileSync(join(token.dir, 'credentials.json'), join(dataDir, 'credentials.json'));
    chmodSync(join(dataDir, 'credentials.json'), 0o600);
    const config = aesOnlyConfig();
    expect(config['hsm']['pin']).to.deep.equal({ file: '${KMSGW_DATA_DIR}/pin' });
    config['listen'] = { host: '127.0.0.1', port: 1 };
    const port = await freePort();
    const gw = await startGateway({ config, token, env: { KMSGW_PORT: String(port), KMSGW_DATA_DIR: dataDir } });
    const kms = kmsClient(gw.url);
    try {
      expect(gw.port).to.equal(port);
      const enc = await kms.send(new EncryptCommand({ KeyId: 'alias/demo-aes', Plaintext: Buffer.from('port') }));
      expect(enc.KeyId).to.equal(keyArn(AES_KEY_ID));
      const dec = await kms.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob }));
      expect(Buffer.from(dec.Plaintext as Uint8Array).toString()).to.equal('port');
    } finally {
      kms.destroy();
      await gw.stop();
    }
  });

  it('a restart on the same token finds the keys it created and decrypts earlier ciphertexts', async () => {
    const fresh = makeToken('kmsgw-dev');
    const plaintext = Buffer.from('survives a restart');
    let aesBlob: Uint8Array | undefined;
    let rsaBlob: Uint8Array | undefined;

    const first = await startGateway({ token: fresh });
    let kms = kmsClient(first.url);
    try {
      expect(first.logs().match(/created key on the token/g) ?? []).to.have.length(4);
      aesBlob = (await kms.send(new EncryptCommand({ KeyId: 'alias/demo-aes', Plaintext: plaintext, EncryptionContext: { run: '1' } })))
        .CiphertextBlob;
      rsaBlob = (
        await kms.send(new EncryptCommand({ KeyId: 'alias/demo-rsa-2048', Plaintext: plaintext, EncryptionAlgorithm: 'RSAES_OAEP_SHA_256' }))
      ).CiphertextBlob;
    } finally {
      kms.destroy();
      await first.stop();
    }

    const second = await startGateway({ token: fresh });
    kms = kmsClient(second.url);
    try {
      const logs = second.logs();
      expect(logs).not.to.contain('created key on the token');
      expect(logs).not.to.contain('generated key material');
      expect(logs).not.to.contain('not found on the token');
      const aes = await kms.send(new DecryptCommand({ CiphertextBlob: aesBlob, EncryptionContext: { run: '1' } }));
      expect(Buffer.from(aes.Plaintext as Uint8Array).equals(plaintext)).to.equal(true);
      const rsa = await kms.send(
        new DecryptCommand({ CiphertextBlob: rsaBlob, KeyId: 'alias/demo-rsa-2048', EncryptionAlgorithm: 'RSAES_OAEP_SHA_256' }),
      );
      expect(Buffer.from(rsa.Plaintext as Uint8Array).equals(plaintext)).to.equal(true);
    } finally {
      kms.destroy();
      await second.stop();
    }
  });
});
