/**
 * Data keys, data key pairs, random bytes and ReEncrypt as an application
 * sees them through @aws-sdk/client-kms, against one real gateway process on
 * a throwaway SoftHSM2 token. The expected texts are AWS's (see
 * /work/shared/notes/kms-wire-facts.md and the sources named in
 * src/operations/generate-data-key.ts).
 */
import { expect } from 'chai';
import { createPrivateKey, createPublicKey, privateDecrypt, publicEncrypt, randomBytes, sign, verify, constants } from 'node:crypto';
import {
  DecryptCommand,
  EncryptCommand,
  GenerateDataKeyCommand,
  GenerateDataKeyPairCommand,
  GenerateDataKeyPairWithoutPlaintextCommand,
  GenerateDataKeyWithoutPlaintextCommand,
  GenerateRandomCommand,
  ReEncryptCommand,
  type DataKeyPairSpec,
  type DataKeySpec,
  type DecryptCommandInput,
  type GenerateDataKeyCommandInput,
  type GenerateDataKeyPairCommandInput,
  type GenerateRandomCommandInput,
  type KMSClient,
  type ReEncryptCommandInput,
} from '@aws-sdk/client-kms';
import { defaultConfig, keyArn, kmsClient, rawRequest, startGateway, type GatewayProcess } from '../support/gateway.js';
import { failure, expectClientError } from '../support/sdk-errors.js';

const AES = '0b5e6a1c-7d43-4f0e-9a35-2c8d1e6f4a01';
const RSA_2048 = '0b5e6a1c-7d43-4f0e-9a35-2c8d1e6f4a02';
const DISABLED = '6d2a0c1e-3b4d-4e6f-8a9b-0c1d2e3f4b01';
const AES_2 = '6d2a0c1e-3b4d-4e6f-8a9b-0c1d2e3f4b02';
const DISABLED_RSA = '6d2a0c1e-3b4d-4e6f-8a9b-0c1d2e3f4b03';
const UNKNOWN = '6d2a0c1e-3b4d-4e6f-8a9b-0c1d2e3f4bff';
const ALIAS_ARN = 'arn:aws:kms:us-east-1:111122223333:alias/demo-aes';

const KEY_ID_FORMS: Array<[string, string]> = [
  ['key id', AES],
  ['key ARN', keyArn(AES)],
  ['alias name', 'alias/demo-aes'],
  ['alias ARN', ALIAS_ARN],
];

const DRY_RUN = 'The request would have succeeded, but the DryRun option is set.';
const NEITHER_OR_BOTH = 'Please specify either number of bytes or key spec.';
const ASYMMETRIC = 'You cannot generate a data key with an asymmetric CMK';
const KEY_SPEC_SET =
  '[RSA_2048, RSA_3072, RSA_4096, ECC_NIST_P256, ECC_NIST_P384, ECC_NIST_P521, ECC_SECG_P256K1, ECC_NIST_EDWARDS25519, ' +
  'SYMMETRIC_DEFAULT, HMAC_224, HMAC_256, HMAC_384, HMAC_512, SM2, ML_DSA_44, ML_DSA_65, ML_DSA_87]';

const buf = (b: Uint8Array | undefined): Buffer => Buffer.from(b as Uint8Array);

describe('Data keys, random bytes and ReEncrypt through @aws-sdk/client-kms', function () {
  this.timeout(60_000);
  let gw: GatewayProcess;
  let kms: KMSClient;

  const generateDataKey = (input: GenerateDataKeyCommandInput) => kms.send(new GenerateDataKeyCommand(input));
  const generateDataKeyWithoutPlaintext = (input: GenerateDataKeyCommandInput) =>
    kms.send(new GenerateDataKeyWithoutPlaintextCommand(input));
  const generateDataKeyPair = (input: GenerateDataKeyPairCommandInput) => kms.send(new GenerateDataKeyPairCommand(input));
  const generateDataKeyPairWithoutPlaintext = (input: GenerateDataKeyPairCommandInput) =>
    kms.send(new GenerateDataKeyPairWithoutPlaintextCommand(input));
  const generateRandom = (input: GenerateRandomCommandInput) => kms.send(new GenerateRandomCommand(input));
  const reEncrypt = (input: ReEncryptCommandInput) => kms.send(new ReEncryptCommand(input));
  const decrypt = (input: DecryptCommandInput) => kms.send(new DecryptCommand(input));
  const bytes = (n: number) => new Uint8Array(randomBytes(n));
  const raw = (operation: string, body: unknown) =>
    rawRequest(gw.url, { target: `TrentService.${operation}`, body: JSON.stringify(body) });

  before(async function () {
    const config = defaultConfig();
    // The 3072- and 4096-bit demo keys are not needed here: leaving them out keeps start-up short.
    const keys = (config['keys'] as Array<Record<string, unknown>>).filter((k) => k['keySpec'] === 'SYMMETRIC_DEFAULT' || k['keySpec'] === 'RSA_2048');
    keys.push(
      { keySpec: 'SYMMETRIC_DEFAULT', keyId: DISABLED, aliases: ['alias/dk-disabled'], pkcs11: { label: 'kmsgw-dk-disabled' }, enabled: false, createIfMissing: true },
      { keySpec: 'SYMMETRIC_DEFAULT', keyId: AES_2, aliases: ['alias/dk-aes-2'], pkcs11: { label: 'kmsgw-dk-aes-2' }, createIfMissing: true },
      { keySpec: 'RSA_2048', keyId: DISABLED_RSA, aliases: [], pkcs11: { label: 'kmsgw-dk-disabled-rsa' }, enabled: false, createIfMissing: true },
    );
    config['keys'] = keys;
    gw = await startGateway({ config });
    kms = kmsClient(gw.url);
  });

  after(async function () {
    kms?.destroy();
    await gw?.stop();
  });

  describe('GenerateDataKey and GenerateDataKeyWithoutPlaintext', function () {
    const sizes: Array<[string, Partial<GenerateDataKeyCommandInput>, number]> = [
      ['KeySpec AES_256', { KeySpec: 'AES_256' }, 32],
      ['KeySpec AES_128', { KeySpec: 'AES_128' }, 16],
      ['NumberOfBytes 1', { NumberOfBytes: 1 }, 1],
      ['NumberOfBytes 1024', { NumberOfBytes: 1024 }, 1024],
    ];
    for (const [what, member, length] of sizes) {
      it(`gives a ${length}-byte data key for ${what} that Decrypt opens under the same encryption context`, async function () {
        const EncryptionContext = { purpose: 'data-key', tenant: 'ünï' };
        const out = await generateDataKey({ KeyId: AES, EncryptionContext, ...member });
        expect(out.KeyId).to.equal(keyArn(AES));
        expect(out.Plaintext?.length).to.equal(length);
        expect(out.CiphertextBlob?.length, 'the Encrypt blob: 49 bytes of header, IV and tag').to.equal(length + 49);
        const dec = await decrypt({ CiphertextBlob: out.CiphertextBlob, EncryptionContext });
        expect(buf(dec.Plaintext).equals(buf(out.Plaintext))).to.equal(true);
        expect(dec.KeyId).to.equal(keyArn(AES));
      });
    }

    it('binds the encryption context: Decrypt without it or with another answers InvalidCiphertextException', async function () {
      const out = await generateDataKey({ KeyId: AES, KeySpec: 'AES_256', EncryptionContext: { a: 'b' } });
      expectClientError(await failure(decrypt({ CiphertextBlob: out.CiphertextBlob })), 'InvalidCiphertextException');
      expectClientError(await failure(decrypt({ CiphertextBlob: out.CiphertextBlob, EncryptionContext: { a: 'c' } })), 'InvalidCiphertextException');
    });

    it('gives a fresh data key every call', async function () {
      const a = await generateDataKey({ KeyId: AES, KeySpec: 'AES_256' });
      const b = await generateDataKey({ KeyId: AES, KeySpec: 'AES_256' });
      expect(buf(a.Plaintext).equals(buf(b.Plaintext))).to.equal(false);
    });

    for (const [form, keyId] of KEY_ID_FORMS) {
      it(`accepts the ${form} and answers KeyId as the key ARN`, async function () {
        const out = await generateDataKey({ KeyId: keyId, NumberOfBytes: 24 });
        expect(out.KeyId).to.equal(keyArn(AES));
        const bare = await generateDataKeyWithoutPlaintext({ KeyId: keyId, KeySpec: 'AES_128' });
        expect(bare.KeyId).to.equal(keyArn(AES));
      });
    }

    it('WithoutPlaintext answers CiphertextBlob and KeyId only, and Decrypt gives the data key', async function () {
      const EncryptionContext = { purpose: 'later' };
      const res = await raw('GenerateDataKeyWithoutPlaintext', { KeyId: 'alias/dk-aes-2', KeySpec: 'AES_256', EncryptionContext });
      expect(res.status, res.text).to.equal(200);
      expect(Object.keys(res.body ?? {}).sort()).to.deep.equal(['CiphertextBlob', 'KeyId']);
      expect(res.body?.['KeyId']).to.equal(keyArn(AES_2));
      const CiphertextBlob = new Uint8Array(Buffer.from(String(res.body?.['CiphertextBlob']), 'base64'));
      const dec = await decrypt({ CiphertextBlob, EncryptionContext });
      expect(dec.Plaintext?.length).to.equal(32);
      expect(dec.KeyId).to.equal(keyArn(AES_2));
    });

    it('GenerateDataKey answers exactly CiphertextBlob, Plaintext and KeyId on the wire', async function () {
      const res = await raw('GenerateDataKey', { KeyId: AES, NumberOfBytes: 8 });
      expect(res.status, res.text).to.equal(200);
      expect(Object.keys(res.body ?? {}).sort()).to.deep.equal(['CiphertextBlob', 'KeyId', 'Plaintext']);
    });

    for (const op of ['GenerateDataKey', 'GenerateDataKeyWithoutPlaintext'] as const) {
      const call = (input: GenerateDataKeyCommandInput) =>
        op === 'GenerateDataKey' ? generateDataKey(input) : generateDataKeyWithoutPlaintext(input);

      describe(`${op} refusals`, function () {
        it('answers ValidationException when neither KeySpec nor NumberOfBytes is given', async function () {
          expectClientError(await failure(call({ KeyId: AES })), 'ValidationException', NEITHER_OR_BOTH);
        });

        it('answers ValidationException when both KeySpec and NumberOfBytes are given', async function () {
          expectClientError(await failure(call({ KeyId: AES, KeySpec: 'AES_256', NumberOfBytes: 32 })), 'ValidationException', NEITHER_OR_BOTH);
        });

        it('checks KeySpec/NumberOfBytes before the key state (a disabled key still gets the ValidationException)', async function () {
          expectClientError(await failure(call({ KeyId: DISABLED })), 'ValidationException', NEITHER_OR_BOTH);
        });

        for (const [n, constraint] of [
          [0, 'greater than or equal to 1'],
          [1025, 'less than or equal to 1024'],
        ] as const) {
          it(`answers ValidationException for NumberOfBytes ${n}`, async function () {
            expectClientError(
              await failure(call({ KeyId: AES, NumberOfBytes: n })),
              'ValidationException',
              `1 validation error detected: Value '${n}' at 'numberOfBytes' failed to satisfy constraint: Member must have value ${constraint}`,
            );
          });
        }

        for (const spec of ['AES_512', 'RSA_2048']) {
          it(`answers ValidationException for KeySpec ${spec}, listing the set AWS lists`, async function () {
            expectClientError(
              await failure(call({ KeyId: AES, KeySpec: spec as DataKeySpec })),
              'ValidationException',
              `1 validation error detected: Value '${spec}' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set: ${KEY_SPEC_SET}`,
            );
          });
        }

        it('answers ValidationException for a missing KeyId', async function () {
          const res = await raw(op, { KeySpec: 'AES_256' });
          expect(res.status).to.equal(400);
          expect(res.body).to.deep.equal({
            __type: 'ValidationException',
            message: "1 validation error detected: Value null at 'keyId' failed to satisfy constraint: Member must not be null",
          });
        });

        it('answers SerializationException for NumberOfBytes sent as a string or a fraction', async function () {
          for (const NumberOfBytes of ['32', 1.5]) {
            const res = await raw(op, { KeyId: AES, NumberOfBytes });
            expect(res.status).to.equal(400);
            expect(res.body?.['__type']).to.equal('SerializationException');
          }
        });

        it('answers ValidationException for 11 grant tokens', async function () {
          const err = await failure(call({ KeyId: AES, KeySpec: 'AES_256', GrantTokens: Array.from({ length: 11 }, (_, i) => `t${i}`) }));
          expectClientError(err, 'ValidationException');
          expect(err.message).to.contain("at 'grantTokens' failed to satisfy constraint: Member must have length less than or equal to 10");
        });

        it('answers NotFoundException for an unknown key', async function () {
          expectClientError(await failure(call({ KeyId: UNKNOWN, KeySpec: 'AES_256' })), 'NotFoundException', `Key '${keyArn(UNKNOWN)}' does not exist`);
        });

        it('answers InvalidKeyUsageException for an RSA key', async function () {
          expectClientError(await failure(call({ KeyId: 'alias/demo-rsa-2048', KeySpec: 'AES_256' })), 'InvalidKeyUsageException', ASYMMETRIC);
        });

        it('answers DisabledException for a disabled key, even with DryRun, and for a disabled RSA key (state before key spec)', async function () {
          for (const DryRun of [false, true])
            expectClientError(await failure(call({ KeyId: DISABLED, KeySpec: 'AES_256', DryRun })), 'DisabledException', `${keyArn(DISABLED)} is disabled.`);
          expectClientError(
            await failure(call({ KeyId: DISABLED_RSA, KeySpec: 'AES_256' })),
            'DisabledException',
            `${keyArn(DISABLED_RSA)} is disabled.`,
          );
        });

        it('answers DryRunOperationException for a call that would succeed', async function () {
          expectClientError(await failure(call({ KeyId: AES, KeySpec: 'AES_256', DryRun: true })), 'DryRunOperationException', DRY_RUN);
        });
      });
    }

    it('refuses a Recipient (attested environments) with UnsupportedOperationException', async function () {
      const err = await failure(
        generateDataKey({ KeyId: AES, KeySpec: 'AES_256', Recipient: { KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256', AttestationDocument: bytes(64) } }),
      );
      expectClientError(err, 'UnsupportedOperationException');
      expect(err.message).to.contain('Recipient');
    });
  });

  describe('GenerateDataKeyPair and GenerateDataKeyPairWithoutPlaintext', function () {
    const specs: Array<[DataKeyPairSpec, number]> = [
      ['RSA_2048', 2048],
      ['RSA_3072', 3072],
      ['RSA_4096', 4096],
    ];
    for (const [spec, bits] of specs) {
      it(`gives a ${spec} pair whose private key node:crypto loads, matches PublicKey and Decrypt opens`, async function () {
        const EncryptionContext = { pair: spec };
        const out = await generateDataKeyPair({ KeyId: AES, KeyPairSpec: spec, EncryptionContext });
        expect(out.KeyId).to.equal(keyArn(AES));
        expect(out.KeyPairSpec).to.equal(spec);

        const privateKey = createPrivateKey({ key: buf(out.PrivateKeyPlaintext), format: 'der', type: 'pkcs8' });
        const publicKey = createPublicKey({ key: buf(out.PublicKey), format: 'der', type: 'spki' });
        expect(privateKey.asymmetricKeyType).to.equal('rsa');
        expect(privateKey.asymmetricKeyDetails?.modulusLength).to.equal(bits);
        const derived = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
        expect(derived.equals(buf(out.PublicKey)), 'PublicKey is the private key’s public half').to.equal(true);
        const message = Buffer.from('signed with the data key pair');
        const signature = sign('sha256', message, privateKey);
        expect(verify('sha256', message, publicKey, signature)).to.equal(true);

        const dec = await decrypt({ CiphertextBlob: out.PrivateKeyCiphertextBlob, EncryptionContext });
        expect(buf(dec.Plaintext).equals(buf(out.PrivateKeyPlaintext))).to.equal(true);
        expectClientError(await failure(decrypt({ CiphertextBlob: out.PrivateKeyCiphertextBlob })), 'InvalidCiphertextException');
      });
    }

    it('WithoutPlaintext answers no private key; the decrypted ciphertext opens what PublicKey encrypts', async function () {
      const res = await raw('GenerateDataKeyPairWithoutPlaintext', { KeyId: keyArn(AES_2), KeyPairSpec: 'RSA_2048' });
      expect(res.status, res.text).to.equal(200);
      expect(Object.keys(res.body ?? {}).sort()).to.deep.equal(['KeyId', 'KeyPairSpec', 'PrivateKeyCiphertextBlob', 'PublicKey']);
      expect(res.body?.['KeyId']).to.equal(keyArn(AES_2));
      expect(res.body?.['KeyPairSpec']).to.equal('RSA_2048');
      const blob = new Uint8Array(Buffer.from(String(res.body?.['PrivateKeyCiphertextBlob']), 'base64'));
      const dec = await decrypt({ CiphertextBlob: blob });
      const privateKey = createPrivateKey({ key: buf(dec.Plaintext), format: 'der', type: 'pkcs8' });
      const publicKey = createPublicKey({ key: Buffer.from(String(res.body?.['PublicKey']), 'base64'), format: 'der', type: 'spki' });
      const secret = Buffer.from('for the private key only');
      const sealed = publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, secret);
      const opened = privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, sealed);
      expect(opened.equals(secret)).to.equal(true);
    });

    it('gives a different pair every call, through the SDK’s WithoutPlaintext command and the alias ARN', async function () {
      const a = await generateDataKeyPairWithoutPlaintext({ KeyId: ALIAS_ARN, KeyPairSpec: 'RSA_2048' });
      const b = await generateDataKeyPairWithoutPlaintext({ KeyId: 'alias/demo-aes', KeyPairSpec: 'RSA_2048' });
      expect(a.KeyId).to.equal(keyArn(AES));
      expect(buf(a.PublicKey).equals(buf(b.PublicKey))).to.equal(false);
    });

    for (const spec of ['ECC_NIST_P256', 'ECC_NIST_P384', 'ECC_NIST_P521', 'ECC_SECG_P256K1', 'SM2', 'ECC_NIST_EDWARDS25519'] as const) {
      it(`answers UnsupportedOperationException for KeyPairSpec ${spec}, naming it`, async function () {
        for (const call of [generateDataKeyPair, generateDataKeyPairWithoutPlaintext]) {
          const err = await failure(call({ KeyId: AES, KeyPairSpec: spec }));
          expectClientError(err, 'UnsupportedOperationException');
          expect(err.message).to.contain(spec);
        }
      });
    }

    it('answers ValidationException for a KeyPairSpec outside the set, and for none', async function () {
      expectClientError(
        await failure(generateDataKeyPair({ KeyId: AES, KeyPairSpec: 'RSA_1024' as DataKeyPairSpec })),
        'ValidationException',
        "1 validation error detected: Value 'RSA_1024' at 'keyPairSpec' failed to satisfy constraint: Member must satisfy enum value set: " +
          '[RSA_2048, RSA_3072, RSA_4096, ECC_NIST_P256, ECC_NIST_P384, ECC_NIST_P521, ECC_SECG_P256K1, SM2, ECC_NIST_EDWARDS25519]',
      );
      const res = await raw('GenerateDataKeyPair', { KeyId: AES });
      expect(res.body).to.deep.equal({
        __type: 'ValidationException',
        message: "1 validation error detected: Value null at 'keyPairSpec' failed to satisfy constraint: Member must not be null",
      });
    });

    it('answers InvalidKeyUsageException for an RSA KMS key', async function () {
      for (const call of [generateDataKeyPair, generateDataKeyPairWithoutPlaintext])
        expectClientError(await failure(call({ KeyId: RSA_2048, KeyPairSpec: 'RSA_2048' })), 'InvalidKeyUsageException', ASYMMETRIC);
    });

    it('answers DisabledException for a disabled key and NotFoundException for an unknown one', async function () {
      expectClientError(
        await failure(generateDataKeyPair({ KeyId: 'alias/dk-disabled', KeyPairSpec: 'RSA_2048', DryRun: true })),
        'DisabledException',
        `${keyArn(DISABLED)} is disabled.`,
      );
      expectClientError(
        await failure(generateDataKeyPairWithoutPlaintext({ KeyId: UNKNOWN, KeyPairSpec: 'RSA_2048' })),
        'NotFoundException',
        `Key '${keyArn(UNKNOWN)}' does not exist`,
      );
    });

    it('answers DryRunOperationException for a call that would succeed', async function () {
      for (const call of [generateDataKeyPair, generateDataKeyPairWithoutPlaintext])
        expectClientError(await failure(call({ KeyId: AES, KeyPairSpec: 'RSA_4096', DryRun: true })), 'DryRunOperationException', DRY_RUN);
    });
  });

  describe('GenerateRandom', function () {
    for (const n of [1, 32, 1024]) {
      it(`gives ${n} random byte(s) from the token`, async function () {
        const out = await generateRandom({ NumberOfBytes: n });
        expect(out.Plaintext?.length).to.equal(n);
      });
    }

    it('gives different bytes every call', async function () {
      const a = await generateRandom({ NumberOfBytes: 32 });
      const b = await generateRandom({ NumberOfBytes: 32 });
      expect(buf(a.Plaintext).equals(buf(b.Plaintext))).to.equal(false);
    });

    it('answers exactly {Plaintext} on the wire', async function () {
      const res = await raw('GenerateRandom', { NumberOfBytes: 16 });
      expect(res.status, res.text).to.equal(200);
      expect(Object.keys(res.body ?? {})).to.deep.equal(['Plaintext']);
    });

    it('answers ValidationException "NumberOfBytes is required." without NumberOfBytes', async function () {
      expectClientError(await failure(generateRandom({})), 'ValidationException', 'NumberOfBytes is required.');
    });

    for (const [n, constraint] of [
      [0, 'greater than or equal to 1'],
      [1025, 'less than or equal to 1024'],
    ] as const) {
      it(`answers ValidationException for NumberOfBytes ${n}`, async function () {
        expectClientError(
          await failure(generateRandom({ NumberOfBytes: n })),
          'ValidationException',
          `1 validation error detected: Value '${n}' at 'numberOfBytes' failed to satisfy constraint: Member must have value ${constraint}`,
        );
      });
    }

    it('answers CustomKeyStoreNotFoundException for a CustomKeyStoreId: the gateway has no custom key stores', async function () {
      const err = await failure(generateRandom({ NumberOfBytes: 8, CustomKeyStoreId: 'cks-1234567890abcdef0' }));
      expectClientError(err, 'CustomKeyStoreNotFoundException');
      expect(err.message).to.contain('cks-1234567890abcdef0');
    });

    it('answers ValidationException for a CustomKeyStoreId over 64 characters', async function () {
      const id = 'c'.repeat(65);
      expectClientError(
        await failure(generateRandom({ NumberOfBytes: 8, CustomKeyStoreId: id })),
        'ValidationException',
        `1 validation error detected: Value '${id}' at 'customKeyStoreId' failed to satisfy constraint: Member must have length less than or equal to 64`,
      );
    });

    it('answers UnsupportedOperationException for a Recipient', async function () {
      const err = await failure(
        generateRandom({ NumberOfBytes: 8, Recipient: { KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256', AttestationDocument: bytes(32) } }),
      );
      expectClientError(err, 'UnsupportedOperationException');
    });
  });

  describe('ReEncrypt', function () {
    const plaintext = bytes(100);
    const sourceContext = { stage: 'source' };
    let blob: Uint8Array;

    before(async function () {
      blob = (await kms.send(new EncryptCommand({ KeyId: AES, Plaintext: plaintext, EncryptionContext: sourceContext }))).CiphertextBlob as Uint8Array;
    });

    it('moves a symmetric ciphertext to another AES key and a new context', async function () {
      const out = await reEncrypt({
        CiphertextBlob: blob,
        SourceEncryptionContext: sourceContext,
        DestinationKeyId: 'alias/dk-aes-2',
        DestinationEncryptionContext: { stage: 'destination' },
      });
      expect(out.SourceKeyId).to.equal(keyArn(AES));
      expect(out.KeyId).to.equal(keyArn(AES_2));
      expect(out.SourceEncryptionAlgorithm).to.equal('SYMMETRIC_DEFAULT');
      expect(out.DestinationEncryptionAlgorithm).to.equal('SYMMETRIC_DEFAULT');
      const dec = await decrypt({ CiphertextBlob: out.CiphertextBlob, EncryptionContext: { stage: 'destination' } });
      expect(buf(dec.Plaintext).equals(buf(plaintext))).to.equal(true);
      expect(dec.KeyId).to.equal(keyArn(AES_2));
      expectClientError(await failure(decrypt({ CiphertextBlob: out.CiphertextBlob, EncryptionContext: sourceContext })), 'InvalidCiphertextException');
    });

    it('answers exactly the five AWS members on the wire', async function () {
      const res = await raw('ReEncrypt', {
        CiphertextBlob: Buffer.from(blob).toString('base64'),
        SourceEncryptionContext: sourceContext,
        DestinationKeyId: AES,
      });
      expect(res.status, res.text).to.equal(200);
      expect(Object.keys(res.body ?? {}).sort()).to.deep.equal([
        'CiphertextBlob',
        'DestinationEncryptionAlgorithm',
        'KeyId',
        'SourceEncryptionAlgorithm',
        'SourceKeyId',
      ]);
    });

    for (const [form, keyId] of KEY_ID_FORMS) {
      it(`re-encrypts under the same key with SourceKeyId and DestinationKeyId as the ${form}: a new ciphertext`, async function () {
        const out = await reEncrypt({ CiphertextBlob: blob, SourceEncryptionContext: sourceContext, SourceKeyId: keyId, DestinationKeyId: keyId });
        expect(out.SourceKeyId).to.equal(keyArn(AES));
        expect(out.KeyId).to.equal(keyArn(AES));
        expect(buf(out.CiphertextBlob).equals(buf(blob))).to.equal(false);
        const dec = await decrypt({ CiphertextBlob: out.CiphertextBlob });
        expect(buf(dec.Plaintext).equals(buf(plaintext))).to.equal(true);
      });
    }

    it('moves a symmetric ciphertext to the RSA key (raw OAEP, 256 bytes) and back', async function () {
      const toRsa = await reEncrypt({
        CiphertextBlob: blob,
        SourceEncryptionContext: sourceContext,
        DestinationKeyId: 'alias/demo-rsa-2048',
        DestinationEncryptionAlgorithm: 'RSAES_OAEP_SHA_256',
      });
      expect(toRsa.KeyId).to.equal(keyArn(RSA_2048));
      expect(toRsa.SourceEncryptionAlgorithm).to.equal('SYMMETRIC_DEFAULT');
      expect(toRsa.DestinationEncryptionAlgorithm).to.equal('RSAES_OAEP_SHA_256');
      expect(toRsa.CiphertextBlob?.length).to.equal(256);
      const dec = await decrypt({ CiphertextBlob: toRsa.CiphertextBlob, KeyId: RSA_2048, EncryptionAlgorithm: 'RSAES_OAEP_SHA_256' });
      expect(buf(dec.Plaintext).equals(buf(plaintext))).to.equal(true);

      const back = await reEncrypt({
        CiphertextBlob: toRsa.CiphertextBlob,
        SourceKeyId: keyArn(RSA_2048),
        SourceEncryptionAlgorithm: 'RSAES_OAEP_SHA_256',
        DestinationKeyId: AES,
        DestinationEncryptionContext: { stage: 'back' },
      });
      expect(back.SourceKeyId).to.equal(keyArn(RSA_2048));
      expect(back.SourceEncryptionAlgorithm).to.equal('RSAES_OAEP_SHA_256');
      expect(back.DestinationEncryptionAlgorithm).to.equal('SYMMETRIC_DEFAULT');
      const again = await decrypt({ CiphertextBlob: back.CiphertextBlob, EncryptionContext: { stage: 'back' } });
      expect(buf(again.Plaintext).equals(buf(plaintext))).to.equal(true);
    });

    it('answers IncorrectKeyException when SourceKeyId is not the key that encrypted the blob', async function () {
      expectClientError(
        await failure(reEncrypt({ CiphertextBlob: blob, SourceEncryptionContext: sourceContext, SourceKeyId: AES_2, DestinationKeyId: AES })),
        'IncorrectKeyException',
        'The key ID in the request does not identify a CMK that can perform this operation.',
      );
    });

    it('answers InvalidCiphertextException, with no message on the wire, for a wrong source context or a tampered blob', async function () {
      expectClientError(await failure(reEncrypt({ CiphertextBlob: blob, DestinationKeyId: AES })), 'InvalidCiphertextException');
      const tampered = Uint8Array.from(blob);
      tampered[40] = (tampered[40] as number) ^ 1;
      expectClientError(
        await failure(reEncrypt({ CiphertextBlob: tampered, SourceEncryptionContext: sourceContext, DestinationKeyId: AES })),
        'InvalidCiphertextException',
      );
      const res = await raw('ReEncrypt', { CiphertextBlob: Buffer.from(tampered).toString('base64'), SourceEncryptionContext: sourceContext, DestinationKeyId: AES });
      expect(res.status).to.equal(400);
      expect(res.body).to.deep.equal({ __type: 'InvalidCiphertextException' });
    });

    it('answers InvalidCiphertextException for an RSA ciphertext without SourceKeyId', async function () {
      const rsa = await reEncrypt({ CiphertextBlob: blob, SourceEncryptionContext: sourceContext, DestinationKeyId: RSA_2048, DestinationEncryptionAlgorithm: 'RSAES_OAEP_SHA_1' });
      expectClientError(
        await failure(reEncrypt({ CiphertextBlob: rsa.CiphertextBlob, SourceEncryptionAlgorithm: 'RSAES_OAEP_SHA_1', DestinationKeyId: AES })),
        'InvalidCiphertextException',
      );
    });

    it('answers DisabledException for a disabled destination and for a blob of a disabled source key', async function () {
      expectClientError(
        await failure(reEncrypt({ CiphertextBlob: blob, SourceEncryptionContext: sourceContext, DestinationKeyId: 'alias/dk-disabled' })),
        'DisabledException',
        `${keyArn(DISABLED)} is disabled.`,
      );
      const other = Uint8Array.from(blob);
      other.set(Buffer.from(DISABLED.replace(/-/g, ''), 'hex'), 1);
      expectClientError(
        await failure(reEncrypt({ CiphertextBlob: other, SourceEncryptionContext: sourceContext, DestinationKeyId: AES, DryRun: true })),
        'DisabledException',
        `${keyArn(DISABLED)} is disabled.`,
      );
    });

    it('answers NotFoundException for an unknown destination', async function () {
      expectClientError(
        await failure(reEncrypt({ CiphertextBlob: blob, SourceEncryptionContext: sourceContext, DestinationKeyId: 'alias/no-such-key' })),
        'NotFoundException',
        'Alias arn:aws:kms:us-east-1:111122223333:alias/no-such-key is not found.',
      );
    });

    it('answers InvalidKeyUsageException for a destination algorithm the destination key does not support', async function () {
      expectClientError(
        await failure(reEncrypt({ CiphertextBlob: blob, SourceEncryptionContext: sourceContext, DestinationKeyId: AES_2, DestinationEncryptionAlgorithm: 'RSAES_OAEP_SHA_256' })),
        'InvalidKeyUsageException',
        'Algorithm RSAES_OAEP_SHA_256 is incompatible with key spec SYMMETRIC_DEFAULT.',
      );
      expectClientError(
        await failure(reEncrypt({ CiphertextBlob: blob, SourceEncryptionContext: sourceContext, DestinationKeyId: RSA_2048 })),
        'InvalidKeyUsageException',
        'Algorithm SYMMETRIC_DEFAULT is incompatible with key spec RSA_2048.',
      );
    });

    it('answers ValidationException when the plaintext is over the RSA destination’s limit', async function () {
      const big = (await kms.send(new EncryptCommand({ KeyId: AES, Plaintext: bytes(191) }))).CiphertextBlob as Uint8Array;
      expectClientError(
        await failure(reEncrypt({ CiphertextBlob: big, DestinationKeyId: RSA_2048, DestinationEncryptionAlgorithm: 'RSAES_OAEP_SHA_256' })),
        'ValidationException',
        'Algorithm RSAES_OAEP_SHA_256 and key spec RSA_2048 cannot encrypt data larger than 190 bytes.',
      );
      const ok = await reEncrypt({ CiphertextBlob: big, DestinationKeyId: RSA_2048, DestinationEncryptionAlgorithm: 'RSAES_OAEP_SHA_1' });
      expect(ok.CiphertextBlob?.length).to.equal(256);
    });

    it('answers ValidationException for a destination encryption context on an RSA destination', async function () {
      const err = await failure(
        reEncrypt({
          CiphertextBlob: blob,
          SourceEncryptionContext: sourceContext,
          DestinationKeyId: RSA_2048,
          DestinationEncryptionAlgorithm: 'RSAES_OAEP_SHA_256',
          DestinationEncryptionContext: { a: 'b' },
        }),
      );
      expectClientError(err, 'ValidationException');
      expect(err.message).to.contain('EncryptionContext');
    });

    it('answers ValidationException for a missing DestinationKeyId or CiphertextBlob', async function () {
      const noDestination = await raw('ReEncrypt', { CiphertextBlob: Buffer.from(blob).toString('base64') });
      expect(noDestination.body).to.deep.equal({
        __type: 'ValidationException',
        message: "1 validation error detected: Value null at 'destinationKeyId' failed to satisfy constraint: Member must not be null",
      });
      const noBlob = await raw('ReEncrypt', { DestinationKeyId: AES });
      expect(noBlob.body).to.deep.equal({
        __type: 'ValidationException',
        message: "1 validation error detected: Value null at 'ciphertextBlob' failed to satisfy constraint: Member must not be null",
      });
    });

    it('answers DryRunOperationException for a ReEncrypt that would succeed, and still refuses a bad ciphertext under DryRun', async function () {
      expectClientError(
        await failure(reEncrypt({ CiphertextBlob: blob, SourceEncryptionContext: sourceContext, DestinationKeyId: AES_2, DryRun: true })),
        'DryRunOperationException',
        DRY_RUN,
      );
      expectClientError(
        await failure(reEncrypt({ CiphertextBlob: blob, SourceEncryptionContext: { stage: 'wrong' }, DestinationKeyId: AES_2, DryRun: true })),
        'InvalidCiphertextException',
      );
    });
  });
});
