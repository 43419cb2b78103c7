/**
 * Encrypt and Decrypt as an application sees them through
 * @aws-sdk/client-kms, against one real gateway process on a throwaway
 * SoftHSM2 token. The expected texts are AWS's (see
 * /work/shared/notes/kms-wire-facts.md).
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import {
  DecryptCommand,
  EncryptCommand,
  type DecryptCommandInput,
  type EncryptCommandInput,
  type EncryptionAlgorithmSpec,
  type KMSClient,
} from '@aws-sdk/client-kms';
import { defaultConfig, keyArn, kmsClient, rawRequest, startGateway, type GatewayProcess } from '../support/gateway.js';
import { failure, expectClientError } from '../support/sdk-errors.js';

const AES = '0b5e6a1c-7d43-4f0e-9a35-2c8d1e6f4a01';
const RSA_2048 = '0b5e6a1c-7d43-4f0e-9a35-2c8d1e6f4a02';
const RSA_3072 = '0b5e6a1c-7d43-4f0e-9a35-2c8d1e6f4a03';
const RSA_4096 = '0b5e6a1c-7d43-4f0e-9a35-2c8d1e6f4a04';
const DISABLED = '5e1f0c2a-3b4d-4e6f-8a9b-0c1d2e3f4a01';
const MISSING = '5e1f0c2a-3b4d-4e6f-8a9b-0c1d2e3f4a02';
const AES_2 = '5e1f0c2a-3b4d-4e6f-8a9b-0c1d2e3f4a03';
const UNKNOWN = '5e1f0c2a-3b4d-4e6f-8a9b-0c1d2e3f4aff';

const RSA_KEYS = [
  { spec: 'RSA_2048', id: RSA_2048, modulus: 256, max: { RSAES_OAEP_SHA_1: 214, RSAES_OAEP_SHA_256: 190 } },
  { spec: 'RSA_3072', id: RSA_3072, modulus: 384, max: { RSAES_OAEP_SHA_1: 342, RSAES_OAEP_SHA_256: 318 } },
  { spec: 'RSA_4096', id: RSA_4096, modulus: 512, max: { RSAES_OAEP_SHA_1: 470, RSAES_OAEP_SHA_256: 446 } },
] as const;
const RSA_ALGORITHMS = ['RSAES_OAEP_SHA_1', 'RSAES_OAEP_SHA_256'] as const;

/** Symmetric blob layout (src/keys/ciphertext-blob.ts): header 21 (version 1, key id 16, material 4), IV 12, ciphertext n, tag 16. */
const BLOB = { version: 0, keyId: 1, material: 17, iv: 21, ciphertext: 33, tagFromEnd: 16 } as const;

function flip(blob: Uint8Array, offset: number): Uint8Array {
  const copy = Uint8Array.from(blob);
  const i = offset < 0 ? copy.length + offset : offset;
  copy[i] = (copy[i] as number) ^ 0x01;
  return copy;
}

describe('Encrypt and Decrypt through @aws-sdk/client-kms', function () {
  this.timeout(60_000);
  let gw: GatewayProcess;
  let kms: KMSClient;

  const encrypt = (input: EncryptCommandInput) => kms.send(new EncryptCommand(input));
  const decrypt = (input: DecryptCommandInput) => kms.send(new DecryptCommand(input));
  const bytes = (n: number) => new Uint8Array(randomBytes(n));

  /** The raw wire answer to a Decrypt, for what the SDK hides (an absent `message`). */
  async function rawDecrypt(input: { CiphertextBlob: Uint8Array; KeyId?: string; EncryptionContext?: Record<string, string>; EncryptionAlgorithm?: string }) {
    return rawRequest(gw.url, {
      target: 'TrentService.Decrypt',
      body: JSON.stringify({ ...input, CiphertextBlob: Buffer.from(input.CiphertextBlob).toString('base64') }),
    });
  }

  /** InvalidCiphertextException through the SDK (400, client) and on the wire with no message at all. */
  async function expectInvalidCiphertext(input: DecryptCommandInput & { CiphertextBlob: Uint8Array }): Promise<void> {
    expectClientError(await failure(decrypt(input)), 'InvalidCiphertextException');
    const raw = await rawDecrypt(input as Parameters<typeof rawDecrypt>[0]);
    expect(raw.status).to.equal(400);
    expect(raw.headers.get('x-amzn-errortype')).to.equal('InvalidCiphertextException');
    expect(raw.body).to.deep.equal({ __type: 'InvalidCiphertextException' });
  }

  before(async function () {
    const config = defaultConfig();
    const keys = config['keys'] as unknown[];
    keys.push(
      {
        keyId: DISABLED,
        aliases: ['alias/it-disabled'],
        keySpec: 'SYMMETRIC_DEFAULT',
        pkcs11: { label: 'kmsgw-it-disabled' },
        enabled: false,
        createIfMissing: true,
      },
      {
        keyId: MISSING,
        aliases: ['alias/it-missing'],
        keySpec: 'SYMMETRIC_DEFAULT',
        pkcs11: { label: 'kmsgw-it-not-on-token' },
        createIfMissing: false,
      },
      {
        keyId: AES_2,
        aliases: ['alias/it-aes-2'],
        keySpec: 'SYMMETRIC_DEFAULT',
        pkcs11: { label: 'kmsgw-it-aes-2' },
        createIfMissing: true,
      },
    );
    gw = await startGateway({ config });
    kms = kmsClient(gw.url);
  });

  after(async function () {
    kms?.destroy();
    await gw?.stop();
  });

  describe('round trips', function () {
    for (const size of [1, 4096]) {
      it(`encrypts and decrypts ${size} byte(s) with the AES key and no encryption context`, async function () {
        const plaintext = bytes(size);
        const enc = await encrypt({ KeyId: 'alias/demo-aes', Plaintext: plaintext });
        expect(enc.KeyId).to.equal(keyArn(AES));
        expect(enc.EncryptionAlgorithm).to.equal('SYMMETRIC_DEFAULT');
        expect(enc.CiphertextBlob?.length).to.equal(size + 49);
        const dec = await decrypt({ CiphertextBlob: enc.CiphertextBlob });
        expect(Buffer.from(dec.Plaintext as Uint8Array).equals(Buffer.from(plaintext))).to.equal(true);
        expect(dec.KeyId).to.equal(keyArn(AES));
        expect(dec.EncryptionAlgorithm).to.equal('SYMMETRIC_DEFAULT');
      });

      it(`encrypts and decrypts ${size} byte(s) with the AES key under an encryption context`, async function () {
        const plaintext = bytes(size);
        const EncryptionContext = { purpose: 'test', tenant: 'ünïcødé ✓', empty: '' };
        const enc = await encrypt({ KeyId: AES, Plaintext: plaintext, EncryptionContext });
        const dec = await decrypt({ CiphertextBlob: enc.CiphertextBlob, EncryptionContext: { ...EncryptionContext } });
        expect(Buffer.from(dec.Plaintext as Uint8Array).equals(Buffer.from(plaintext))).to.equal(true);
        expect(dec.KeyId).to.equal(keyArn(AES));
      });
    }

    it('gives a different ciphertext for the same plaintext every time (fresh IV)', async function () {
      const plaintext = new TextEncoder().encode('same every time');
      const a = await encrypt({ KeyId: AES, Plaintext: plaintext });
      const b = await encrypt({ KeyId: AES, Plaintext: plaintext });
      expect(Buffer.from(a.CiphertextBlob as Uint8Array).equals(Buffer.from(b.CiphertextBlob as Uint8Array))).to.equal(false);
    });

    for (const key of RSA_KEYS) {
      for (const algorithm of RSA_ALGORITHMS) {
        for (const size of [key.max[algorithm], 1]) {
          it(`round-trips ${size} byte(s) with ${key.spec} and ${algorithm}, ciphertext ${key.modulus} bytes`, async function () {
            const plaintext = bytes(size);
            const enc = await encrypt({ KeyId: key.id, Plaintext: plaintext, EncryptionAlgorithm: algorithm });
            expect(enc.KeyId).to.equal(keyArn(key.id));
            expect(enc.EncryptionAlgorithm).to.equal(algorithm);
            expect(enc.CiphertextBlob?.length).to.equal(key.modulus);
            const dec = await decrypt({ CiphertextBlob: enc.CiphertextBlob, KeyId: key.id, EncryptionAlgorithm: algorithm });
            expect(Buffer.from(dec.Plaintext as Uint8Array).equals(Buffer.from(plaintext))).to.equal(true);
            expect(dec.KeyId).to.equal(keyArn(key.id));
            expect(dec.EncryptionAlgorithm).to.equal(algorithm);
          });
        }
      }
    }
  });

  describe('key identifiers', function () {
    const forms: Array<[string, string]> = [
      ['key id', AES],
      ['key ARN', keyArn(AES)],
      ['alias name', 'alias/demo-aes'],
      ['alias ARN', 'arn:aws:kms:us-east-1:111122223333:alias/demo-aes'],
    ];

    for (const [form, keyId] of forms) {
      it(`encrypts with the ${form} and answers KeyId as the key ARN`, async function () {
        const enc = await encrypt({ KeyId: keyId, Plaintext: bytes(16) });
        expect(enc.KeyId).to.equal(keyArn(AES));
      });

      it(`decrypts with the ${form} as KeyId`, async function () {
        const plaintext = bytes(16);
        const enc = await encrypt({ KeyId: AES, Plaintext: plaintext });
        const dec = await decrypt({ CiphertextBlob: enc.CiphertextBlob, KeyId: keyId });
        expect(Buffer.from(dec.Plaintext as Uint8Array).equals(Buffer.from(plaintext))).to.equal(true);
        expect(dec.KeyId).to.equal(keyArn(AES));
      });
    }

    it('decrypts an RSA ciphertext with the alias ARN as KeyId', async function () {
      const plaintext = bytes(32);
      const enc = await encrypt({ KeyId: 'alias/demo-rsa-2048', Plaintext: plaintext, EncryptionAlgorithm: 'RSAES_OAEP_SHA_256' });
      const dec = await decrypt({
        CiphertextBlob: enc.CiphertextBlob,
        KeyId: 'arn:aws:kms:us-east-1:111122223333:alias/demo-rsa-2048',
        EncryptionAlgorithm: 'RSAES_OAEP_SHA_256',
      });
      expect(Buffer.from(dec.Plaintext as Uint8Array).equals(Buffer.from(plaintext))).to.equal(true);
      expect(dec.KeyId).to.equal(keyArn(RSA_2048));
    });

    it(`answers NotFoundException "Key '<arn>' does not exist" for an unknown key id`, async function () {
      const err = await failure(encrypt({ KeyId: UNKNOWN, Plaintext: bytes(1) }));
      expectClientError(err, 'NotFoundException', `Key 'arn:aws:kms:us-east-1:111122223333:key/${UNKNOWN}' does not exist`);
    });

    it(`answers NotFoundException "Key '<arn>' does not exist" for an unknown key ARN`, async function () {
      const err = await failure(encrypt({ KeyId: keyArn(UNKNOWN), Plaintext: bytes(1) }));
      expectClientError(err, 'NotFoundException', `Key 'arn:aws:kms:us-east-1:111122223333:key/${UNKNOWN}' does not exist`);
    });

    it('answers NotFoundException "Alias <alias-arn> is not found." for an unknown alias', async function () {
      const err = await failure(encrypt({ KeyId: 'alias/nope', Plaintext: bytes(1) }));
      expectClientError(err, 'NotFoundException', 'Alias arn:aws:kms:us-east-1:111122223333:alias/nope is not found.');
    });

    it(`answers NotFoundException "Invalid keyId 'not a key'" for a malformed KeyId`, async function () {
      const err = await failure(encrypt({ KeyId: 'not a key', Plaintext: bytes(1) }));
      expectClientError(err, 'NotFoundException', "Invalid keyId 'not a key'");
    });

    it('answers NotFoundException "Invalid arn eu-west-1" for a key ARN of another region', async function () {
      const err = await failure(encrypt({ KeyId: `arn:aws:kms:eu-west-1:111122223333:key/${AES}`, Plaintext: bytes(1) }));
      expectClientError(err, 'NotFoundException', 'Invalid arn eu-west-1');
    });

    it('answers NotFoundException for an unknown KeyId on Decrypt too', async function () {
      const enc = await encrypt({ KeyId: AES, Plaintext: bytes(8) });
      const err = await failure(decrypt({ CiphertextBlob: enc.CiphertextBlob, KeyId: 'alias/nope' }));
      expectClientError(err, 'NotFoundException', 'Alias arn:aws:kms:us-east-1:111122223333:alias/nope is not found.');
    });
  });

  describe('Encrypt refusals', function () {
    it('answers ValidationException for 4097 bytes of plaintext, without echoing it', async function () {
      const err = await failure(encrypt({ KeyId: AES, Plaintext: bytes(4097) }));
      expectClientError(
        err,
        'ValidationException',
        "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member must have length less than or equal to 4096",
      );
    });

    for (const key of RSA_KEYS) {
      for (const algorithm of RSA_ALGORITHMS) {
        const limit = key.max[algorithm];
        it(`answers ValidationException for ${limit + 1} bytes with ${key.spec} and ${algorithm}`, async function () {
          const err = await failure(encrypt({ KeyId: key.id, Plaintext: bytes(limit + 1), EncryptionAlgorithm: algorithm }));
          expectClientError(
            err,
            'ValidationException',
            `Algorithm ${algorithm} and key spec ${key.spec} cannot encrypt data larger than ${limit} bytes.`,
          );
        });
      }
    }

    it('answers InvalidKeyUsageException for an RSA key without EncryptionAlgorithm', async function () {
      const err = await failure(encrypt({ KeyId: RSA_2048, Plaintext: bytes(1) }));
      expectClientError(err, 'InvalidKeyUsageException', 'Algorithm SYMMETRIC_DEFAULT is incompatible with key spec RSA_2048.');
    });

    it('answers InvalidKeyUsageException for an RSA key with SYMMETRIC_DEFAULT', async function () {
      const err = await failure(encrypt({ KeyId: RSA_4096, Plaintext: bytes(1), EncryptionAlgorithm: 'SYMMETRIC_DEFAULT' }));
      expectClientError(err, 'InvalidKeyUsageException', 'Algorithm SYMMETRIC_DEFAULT is incompatible with key spec RSA_4096.');
    });

    it('answers InvalidKeyUsageException for the AES key with RSAES_OAEP_SHA_256', async function () {
      const err = await failure(encrypt({ KeyId: AES, Plaintext: bytes(1), EncryptionAlgorithm: 'RSAES_OAEP_SHA_256' }));
      expectClientError(err, 'InvalidKeyUsageException', 'Algorithm RSAES_OAEP_SHA_256 is incompatible with key spec SYMMETRIC_DEFAULT.');
    });

    for (const [name, keyId] of [['AES', AES], ['RSA_2048', RSA_2048]] as const) {
      it(`answers InvalidKeyUsageException for SM2PKE with the ${name} key`, async function () {
        const err = await failure(encrypt({ KeyId: keyId, Plaintext: bytes(1), EncryptionAlgorithm: 'SM2PKE' }));
        expectClientError(err, 'InvalidKeyUsageException');
        expect(err.message).to.contain('SM2PKE');
      });
    }

    it('answers ValidationException for an encryption context with an RSA key', async function () {
      const err = await failure(
        encrypt({ KeyId: RSA_2048, Plaintext: bytes(1), EncryptionAlgorithm: 'RSAES_OAEP_SHA_256', EncryptionContext: { a: 'b' } }),
      );
      expectClientError(err, 'ValidationException');
      expect(err.message).to.contain('EncryptionContext');
    });

    it('accepts 10 grant tokens', async function () {
      const enc = await encrypt({ KeyId: AES, Plaintext: bytes(1), GrantTokens: Array.from({ length: 10 }, (_, i) => `token-${i}`) });
      expect(enc.KeyId).to.equal(keyArn(AES));
    });

    it('answers ValidationException for 11 grant tokens', async function () {
      const err = await failure(encrypt({ KeyId: AES, Plaintext: bytes(1), GrantTokens: Array.from({ length: 11 }, (_, i) => `token-${i}`) }));
      expectClientError(err, 'ValidationException');
      expect(err.message).to.match(/^1 validation error detected: .* at 'grantTokens' failed to satisfy constraint: Member must have length less than or equal to 10$/);
    });

    it('answers DryRunOperationException "The request would have succeeded, but the DryRun option is set."', async function () {
      const err = await failure(encrypt({ KeyId: AES, Plaintext: bytes(1), DryRun: true }));
      expectClientError(err, 'DryRunOperationException', 'The request would have succeeded, but the DryRun option is set.');
    });

    it('answers DryRunOperationException for an RSA Encrypt that would succeed', async function () {
      const err = await failure(encrypt({ KeyId: RSA_3072, Plaintext: bytes(318), EncryptionAlgorithm: 'RSAES_OAEP_SHA_256', DryRun: true }));
      expectClientError(err, 'DryRunOperationException', 'The request would have succeeded, but the DryRun option is set.');
    });

    it('checks DryRun last: a DryRun on a disabled key answers DisabledException', async function () {
      const err = await failure(encrypt({ KeyId: DISABLED, Plaintext: bytes(1), DryRun: true }));
      expectClientError(err, 'DisabledException', `${keyArn(DISABLED)} is disabled.`);
    });

    it('checks DryRun last: a DryRun with an over-size RSA plaintext answers ValidationException', async function () {
      const err = await failure(encrypt({ KeyId: RSA_2048, Plaintext: bytes(191), EncryptionAlgorithm: 'RSAES_OAEP_SHA_256', DryRun: true }));
      expectClientError(err, 'ValidationException', 'Algorithm RSAES_OAEP_SHA_256 and key spec RSA_2048 cannot encrypt data larger than 190 bytes.');
    });

    it('answers DisabledException "<arn> is disabled." for a disabled key, by alias too', async function () {
      for (const keyId of [DISABLED, 'alias/it-disabled']) {
        const err = await failure(encrypt({ KeyId: keyId, Plaintext: bytes(1) }));
        expectClientError(err, 'DisabledException', `${keyArn(DISABLED)} is disabled.`);
      }
    });

    it('answers KeyUnavailableException, a retryable server fault (HTTP 5xx), when the key material is not on the token', async function () {
      const err = await failure(encrypt({ KeyId: 'alias/it-missing', Plaintext: bytes(1) }));
      expect(err.name).to.equal('KeyUnavailableException');
      expect(err.$metadata.httpStatusCode).to.be.within(500, 599);
      expect(err.$fault).to.equal('server');
      expect(err.message).to.contain(keyArn(MISSING));
    });
  });

  describe('Decrypt', function () {
    let blob: Uint8Array;
    let plaintext: Uint8Array;
    const context = { purpose: 'decrypt-tests', 'ab': 'c' };

    before(async function () {
      plaintext = bytes(64);
      blob = (await encrypt({ KeyId: AES, Plaintext: plaintext, EncryptionContext: context })).CiphertextBlob as Uint8Array;
    });

    it('needs no KeyId for a symmetric ciphertext', async function () {
      const dec = await decrypt({ CiphertextBlob: blob, EncryptionContext: context });
      expect(Buffer.from(dec.Plaintext as Uint8Array).equals(Buffer.from(plaintext))).to.equal(true);
      expect(dec.KeyId).to.equal(keyArn(AES));
      expect(dec.EncryptionAlgorithm).to.equal('SYMMETRIC_DEFAULT');
    });

    it('accepts the encryption context in any member order', async function () {
      const dec = await decrypt({ CiphertextBlob: blob, EncryptionContext: { ab: 'c', purpose: 'decrypt-tests' } });
      expect(Buffer.from(dec.Plaintext as Uint8Array).equals(Buffer.from(plaintext))).to.equal(true);
    });

    it('answers IncorrectKeyException when KeyId names another AES key', async function () {
      const err = await failure(decrypt({ CiphertextBlob: blob, EncryptionContext: context, KeyId: 'alias/it-aes-2' }));
      expectClientError(
        err,
        'IncorrectKeyException',
        'The key ID in the request does not identify a CMK that can perform this operation.',
      );
    });

    it('decrypts with the second AES key only what it encrypted', async function () {
      const mine = bytes(10);
      const enc = await encrypt({ KeyId: AES_2, Plaintext: mine });
      expect(enc.KeyId).to.equal(keyArn(AES_2));
      const dec = await decrypt({ CiphertextBlob: enc.CiphertextBlob, KeyId: keyArn(AES_2) });
      expect(Buffer.from(dec.Plaintext as Uint8Array).equals(Buffer.from(mine))).to.equal(true);
      const err = await failure(decrypt({ CiphertextBlob: enc.CiphertextBlob, KeyId: AES }));
      expectClientError(err, 'IncorrectKeyException');
    });

    it('answers DryRunOperationException for a Decrypt that would succeed', async function () {
      const err = await failure(decrypt({ CiphertextBlob: blob, EncryptionContext: context, DryRun: true }));
      expectClientError(err, 'DryRunOperationException', 'The request would have succeeded, but the DryRun option is set.');
    });

    it('answers DisabledException for a blob naming the disabled key, even with DryRun', async function () {
      const other = Uint8Array.from(blob);
      other.set(Buffer.from(DISABLED.replace(/-/g, ''), 'hex'), BLOB.keyId);
      for (const DryRun of [false, true]) {
        const err = await failure(decrypt({ CiphertextBlob: other, EncryptionContext: context, DryRun }));
        expectClientError(err, 'DisabledException', `${keyArn(DISABLED)} is disabled.`);
      }
    });

    it('answers KeyUnavailableException (5xx, server) for a blob naming the key whose material is not on the token', async function () {
      const other = Uint8Array.from(blob);
      other.set(Buffer.from(MISSING.replace(/-/g, ''), 'hex'), BLOB.keyId);
      const err = await failure(decrypt({ CiphertextBlob: other, EncryptionContext: context }));
      expect(err.name).to.equal('KeyUnavailableException');
      expect(err.$metadata.httpStatusCode).to.be.within(500, 599);
      expect(err.$fault).to.equal('server');
    });

    describe('InvalidCiphertextException, with no message on the wire', function () {
      it('for a wrong encryption context value', async function () {
        await expectInvalidCiphertext({ CiphertextBlob: blob, EncryptionContext: { ...context, purpose: 'other' } });
      });

      it('for a missing encryption context', async function () {
        await expectInvalidCiphertext({ CiphertextBlob: blob });
      });

      it('for an extra encryption context pair', async function () {
        await expectInvalidCiphertext({ CiphertextBlob: blob, EncryptionContext: { ...context, extra: 'x' } });
      });

      it('for an encryption context given when encrypting had none', async function () {
        const enc = await encrypt({ KeyId: AES, Plaintext: bytes(4) });
        await expectInvalidCiphertext({ CiphertextBlob: enc.CiphertextBlob as Uint8Array, EncryptionContext: { a: 'b' } });
      });

      it('for {"a":"bc"} when encrypting used {"ab":"c"} (no concatenation collision)', async function () {
        const enc = await encrypt({ KeyId: AES, Plaintext: bytes(4), EncryptionContext: { ab: 'c' } });
        await expectInvalidCiphertext({ CiphertextBlob: enc.CiphertextBlob as Uint8Array, EncryptionContext: { a: 'bc' } });
        const dec = await decrypt({ CiphertextBlob: enc.CiphertextBlob, EncryptionContext: { ab: 'c' } });
        expect(dec.Plaintext?.length).to.equal(4);
      });

      it('for a missing "__proto__" pair: that key is bound like any other', async function () {
        // The SDK's serializer cannot send an own "__proto__" member; a raw client can.
        const ctx = '{"__proto__":"x","k":"v"}';
        const body = `{"KeyId":"${AES}","Plaintext":"${Buffer.from('proto').toString('base64')}","EncryptionContext":${ctx}}`;
        const enc = await rawRequest(gw.url, { target: 'TrentService.Encrypt', body });
        expect(enc.status, enc.text).to.equal(200);
        const ciphertext = new Uint8Array(Buffer.from(String(enc.body?.['CiphertextBlob']), 'base64'));
        await expectInvalidCiphertext({ CiphertextBlob: ciphertext, EncryptionContext: { k: 'v' } });
        const dec = await rawRequest(gw.url, {
          target: 'TrentService.Decrypt',
          body: `{"CiphertextBlob":"${String(enc.body?.['CiphertextBlob'])}","EncryptionContext":${ctx}}`,
        });
        expect(dec.status, dec.text).to.equal(200);
        expect(dec.body?.['Plaintext']).to.equal(Buffer.from('proto').toString('base64'));
      });

      const regions: Array<[string, number]> = [
        ['the format version byte', BLOB.version],
        ['the key id in the header', BLOB.keyId + 5],
        ['the key material version', BLOB.material + 3],
        ['the IV', BLOB.iv + 4],
        ['the ciphertext', BLOB.ciphertext + 10],
        ['the GCM tag', -1],
        ['the first byte of the GCM tag', -BLOB.tagFromEnd],
      ];
      for (const [region, offset] of regions) {
        it(`for one flipped bit in ${region}`, async function () {
          await expectInvalidCiphertext({ CiphertextBlob: flip(blob, offset), EncryptionContext: context });
        });
      }

      it('for a blob whose header names an RSA key (a client fault, not a retryable KeyUnavailableException)', async function () {
        const forged = Uint8Array.from(blob);
        forged.set(Buffer.from(RSA_2048.replace(/-/g, ''), 'hex'), BLOB.keyId);
        await expectInvalidCiphertext({ CiphertextBlob: forged, EncryptionContext: context });
        await expectInvalidCiphertext({ CiphertextBlob: forged, EncryptionContext: context, KeyId: RSA_2048 });
      });

      it('for a blob truncated by one byte', async function () {
        await expectInvalidCiphertext({ CiphertextBlob: blob.subarray(0, blob.length - 1), EncryptionContext: context });
      });

      it('for a blob truncated to its header', async function () {
        await expectInvalidCiphertext({ CiphertextBlob: blob.subarray(0, 21), EncryptionContext: context });
      });

      it('for a blob with a byte appended', async function () {
        await expectInvalidCiphertext({ CiphertextBlob: Uint8Array.from([...blob, 0]), EncryptionContext: context });
      });

      it('for random bytes', async function () {
        await expectInvalidCiphertext({ CiphertextBlob: bytes(100) });
      });

      describe('of an RSA ciphertext', function () {
        let rsaBlob: Uint8Array;
        const rsaPlain = bytes(100);

        before(async function () {
          rsaBlob = (await encrypt({ KeyId: RSA_2048, Plaintext: rsaPlain, EncryptionAlgorithm: 'RSAES_OAEP_SHA_256' }))
            .CiphertextBlob as Uint8Array;
        });

        it('decrypted with RSAES_OAEP_SHA_1 when it was made with RSAES_OAEP_SHA_256', async function () {
          await expectInvalidCiphertext({ CiphertextBlob: rsaBlob, KeyId: RSA_2048, EncryptionAlgorithm: 'RSAES_OAEP_SHA_1' });
        });

        it('decrypted with RSAES_OAEP_SHA_256 when it was made with RSAES_OAEP_SHA_1', async function () {
          const sha1 = await encrypt({ KeyId: RSA_2048, Plaintext: rsaPlain, EncryptionAlgorithm: 'RSAES_OAEP_SHA_1' });
          await expectInvalidCiphertext({ CiphertextBlob: sha1.CiphertextBlob as Uint8Array, KeyId: RSA_2048, EncryptionAlgorithm: 'RSAES_OAEP_SHA_256' });
        });

        it('given the RSA KeyId but no EncryptionAlgorithm', async function () {
          await expectInvalidCiphertext({ CiphertextBlob: rsaBlob, KeyId: RSA_2048 });
        });

        it('given an RSA algorithm but no KeyId', async function () {
          await expectInvalidCiphertext({ CiphertextBlob: rsaBlob, EncryptionAlgorithm: 'RSAES_OAEP_SHA_256' });
        });

        it('made by the RSA_3072 key but given the RSA_2048 KeyId', async function () {
          const big = await encrypt({ KeyId: RSA_3072, Plaintext: rsaPlain, EncryptionAlgorithm: 'RSAES_OAEP_SHA_256' });
          await expectInvalidCiphertext({ CiphertextBlob: big.CiphertextBlob as Uint8Array, KeyId: RSA_2048, EncryptionAlgorithm: 'RSAES_OAEP_SHA_256' });
        });

        for (const length of [255, 257, 1]) {
          it(`of the wrong length (${length} bytes for RSA_2048)`, async function () {
            await expectInvalidCiphertext({ CiphertextBlob: bytes(length), KeyId: RSA_2048, EncryptionAlgorithm: 'RSAES_OAEP_SHA_256' });
          });
        }

        it('of 256 random bytes below the modulus', async function () {
          const random = bytes(256);
          random[0] = 0x00;
          await expectInvalidCiphertext({ CiphertextBlob: random, KeyId: RSA_2048, EncryptionAlgorithm: 'RSAES_OAEP_SHA_256' });
          await expectInvalidCiphertext({ CiphertextBlob: random, KeyId: RSA_2048, EncryptionAlgorithm: 'RSAES_OAEP_SHA_1' });
        });

        it('of 256 random bytes not below the modulus', async function () {
          const random = bytes(256);
          random.fill(0xff, 0, 8);
          await expectInvalidCiphertext({ CiphertextBlob: random, KeyId: RSA_2048, EncryptionAlgorithm: 'RSAES_OAEP_SHA_256' });
        });

        it('with one flipped bit', async function () {
          await expectInvalidCiphertext({ CiphertextBlob: flip(rsaBlob, 100), KeyId: RSA_2048, EncryptionAlgorithm: 'RSAES_OAEP_SHA_256' });
        });

        it('still decrypts the untouched RSA ciphertext afterwards', async function () {
          const dec = await decrypt({ CiphertextBlob: rsaBlob, KeyId: RSA_2048, EncryptionAlgorithm: 'RSAES_OAEP_SHA_256' });
          expect(Buffer.from(dec.Plaintext as Uint8Array).equals(Buffer.from(rsaPlain))).to.equal(true);
        });
      });
    });

    describe('other RSA refusals', function () {
      let rsaBlob: Uint8Array;
      before(async function () {
        rsaBlob = (await encrypt({ KeyId: RSA_2048, Plaintext: bytes(10), EncryptionAlgorithm: 'RSAES_OAEP_SHA_1' })).CiphertextBlob as Uint8Array;
      });

      it('answers ValidationException for an encryption context on an RSA Decrypt', async function () {
        const err = await failure(
          decrypt({ CiphertextBlob: rsaBlob, KeyId: RSA_2048, EncryptionAlgorithm: 'RSAES_OAEP_SHA_1', EncryptionContext: { a: 'b' } }),
        );
        expectClientError(err, 'ValidationException');
        expect(err.message).to.contain('EncryptionContext');
      });

      it('answers InvalidKeyUsageException for the AES key with an RSA algorithm', async function () {
        const err = await failure(decrypt({ CiphertextBlob: rsaBlob, KeyId: AES, EncryptionAlgorithm: 'RSAES_OAEP_SHA_1' }));
        expectClientError(err, 'InvalidKeyUsageException', 'Algorithm RSAES_OAEP_SHA_1 is incompatible with key spec SYMMETRIC_DEFAULT.');
      });

      it('answers DryRunOperationException for an RSA Decrypt that would succeed', async function () {
        const err = await failure(decrypt({ CiphertextBlob: rsaBlob, KeyId: RSA_2048, EncryptionAlgorithm: 'RSAES_OAEP_SHA_1', DryRun: true }));
        expectClientError(err, 'DryRunOperationException', 'The request would have succeeded, but the DryRun option is set.');
      });
    });
  });

  it('serves 64 concurrent calls, valid and tampered mixed, without one spoiling a pooled session', async function () {
    const plaintext = bytes(48);
    const good = (await encrypt({ KeyId: AES, Plaintext: plaintext })).CiphertextBlob as Uint8Array;
    const rsaGood = (await encrypt({ KeyId: RSA_2048, Plaintext: plaintext, EncryptionAlgorithm: 'RSAES_OAEP_SHA_1' }))
      .CiphertextBlob as Uint8Array;
    const calls = Array.from({ length: 64 }, async (_, i) => {
      switch (i % 4) {
        case 0: {
          const d = await decrypt({ CiphertextBlob: good });
          return Buffer.from(d.Plaintext as Uint8Array).equals(Buffer.from(plaintext)) ? 'ok' : 'wrong plaintext';
        }
        case 1: {
          const err = await failure(decrypt({ CiphertextBlob: flip(good, -3) }));
          return err.name;
        }
        case 2: {
          const d = await decrypt({ CiphertextBlob: rsaGood, KeyId: RSA_2048, EncryptionAlgorithm: 'RSAES_OAEP_SHA_1' });
          return Buffer.from(d.Plaintext as Uint8Array).equals(Buffer.from(plaintext)) ? 'ok' : 'wrong plaintext';
        }
        default: {
          const err = await failure(decrypt({ CiphertextBlob: flip(rsaGood, 7), KeyId: RSA_2048, EncryptionAlgorithm: 'RSAES_OAEP_SHA_1' }));
          return err.name;
        }
      }
    });
    const results = await Promise.all(calls);
    results.forEach((r, i) => expect(r, `call ${i}`).to.equal(i % 2 === 0 ? 'ok' : 'InvalidCiphertextException'));
  });

  it('still serves every key after all the refusals', async function () {
    const plaintext = bytes(32);
    const enc = await encrypt({ KeyId: AES, Plaintext: plaintext });
    const dec = await decrypt({ CiphertextBlob: enc.CiphertextBlob });
    expect(Buffer.from(dec.Plaintext as Uint8Array).equals(Buffer.from(plaintext))).to.equal(true);
    for (const key of RSA_KEYS) {
      const algorithm: EncryptionAlgorithmSpec = 'RSAES_OAEP_SHA_256';
      const e = await encrypt({ KeyId: key.id, Plaintext: plaintext, EncryptionAlgorithm: algorithm });
      const d = await decrypt({ CiphertextBlob: e.CiphertextBlob, KeyId: key.id, EncryptionAlgorithm: algorithm });
      expect(Buffer.from(d.Plaintext as Uint8Array).equals(Buffer.from(plaintext))).to.equal(true);
    }
  });
});
