/**
 * The AWS Encryption SDK for JavaScript (@aws-crypto/client-node) with KMS
 * keyrings whose KMS client is pointed at the gateway: envelope encryption
 * as applications do it, through GenerateDataKey, Encrypt and Decrypt. The
 * keyring calls the aggregated `KMS` client's generateDataKey/encrypt/
 * decrypt methods, so the client provider returns `new KMS(...)` (a bare
 * KMSClient has only `send`).
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { buildClient, CommitmentPolicy, KmsKeyringNode } from '@aws-crypto/client-node';
import { KMS } from '@aws-sdk/client-kms';
import { DEMO_ACCESS_KEY_ID, DEMO_SECRET, defaultConfig, keyArn, REGION, startGateway, type GatewayProcess } from '../support/gateway.js';

const AES = '0b5e6a1c-7d43-4f0e-9a35-2c8d1e6f4a01';
const AES_2 = '7e3b1d2f-4c5e-4f70-9b8c-1d2e3f4a5b01';
const AES_3 = '7e3b1d2f-4c5e-4f70-9b8c-1d2e3f4a5b02';

const { encrypt, decrypt } = buildClient(CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT);

describe('the AWS Encryption SDK with KMS keyrings pointed at the gateway', function () {
  this.timeout(60_000);
  let gw: GatewayProcess;
  /** What the keyrings asked the gateway: "GenerateDataKeyCommand ok", "DecryptCommand InvalidCiphertextException", ... */
  let calls: string[] = [];

  /** A KMS client for the ESDK, recording each command and its outcome. */
  function clientProvider(region: string): KMS {
    expect(region, 'the region the keyring took from the key ARN').to.equal(REGION);
    const client = new KMS({
      endpoint: gw.url,
      region,
      credentials: { accessKeyId: DEMO_ACCESS_KEY_ID, secretAccessKey: DEMO_SECRET },
      maxAttempts: 1,
    });
    client.middlewareStack.add(
      (next, context) => async (args) => {
        try {
          const out = await next(args);
          calls.push(`${context.commandName} ok`);
          return out;
        } catch (e) {
          calls.push(`${context.commandName} ${(e as Error).name}`);
          throw e;
        }
      },
      { step: 'initialize', name: 'recordCalls' },
    );
    return client;
  }

  const keyring = (generatorKeyId: string | undefined, keyIds: string[] = []) =>
    new KmsKeyringNode({ generatorKeyId, keyIds, clientProvider });

  before(async function () {
    const config = defaultConfig();
    const keys = (config['keys'] as Array<Record<string, unknown>>).filter((k) => k['keySpec'] === 'SYMMETRIC_DEFAULT');
    keys.push(
      { keySpec: 'SYMMETRIC_DEFAULT', keyId: AES_2, aliases: ['alias/esdk-2'], pkcs11: { label: 'kmsgw-esdk-2' }, createIfMissing: true },
      { keySpec: 'SYMMETRIC_DEFAULT', keyId: AES_3, aliases: ['alias/esdk-3'], pkcs11: { label: 'kmsgw-esdk-3' }, createIfMissing: true },
    );
    config['keys'] = keys;
    gw = await startGateway({ config });
  });

  beforeEach(function () {
    calls = [];
  });

  after(async function () {
    await gw?.stop();
  });

  const context = { purpose: 'esdk-test', tenant: 'alpha-tenant' };

  it('encrypts and decrypts a message under an encryption context: GenerateDataKey, then Decrypt', async function () {
    const plaintext = randomBytes(10_000);
    const { result, messageHeader } = await encrypt(keyring(keyArn(AES)), plaintext, { encryptionContext: context });
    expect(calls).to.deep.equal(['GenerateDataKeyCommand ok']);
    expect(messageHeader.encryptedDataKeys.map((k) => k.providerInfo)).to.deep.equal([keyArn(AES)]);
    expect(messageHeader.encryptionContext).to.include(context);

    calls = [];
    const out = await decrypt(keyring(keyArn(AES)), result);
    expect(calls).to.deep.equal(['DecryptCommand ok']);
    expect(Buffer.from(out.plaintext).equals(plaintext)).to.equal(true);
    expect(out.messageHeader.encryptionContext).to.include(context);
  });

  /**
   * The ESDK's documented pattern: decrypt, then check that the context the
   * message was bound to holds every pair the application expects.
   */
  async function openExpecting(message: Uint8Array, expected: Record<string, string>): Promise<Buffer> {
    const { plaintext, messageHeader } = await decrypt(keyring(keyArn(AES)), message);
    for (const [k, v] of Object.entries(expected))
      if (messageHeader.encryptionContext[k] !== v) throw new Error(`encryption context mismatch on "${k}"`);
    return plaintext;
  }

  it('a wrong context fails: the application’s expected context is checked against the authenticated one', async function () {
    const { result } = await encrypt(keyring(keyArn(AES)), 'for alpha only', { encryptionContext: context });
    expect((await openExpecting(result, context)).toString()).to.equal('for alpha only');
    let error: Error | undefined;
    try {
      await openExpecting(result, { ...context, tenant: 'beta-tenant' });
    } catch (e) {
      error = e as Error;
    }
    expect(error?.message).to.equal('encryption context mismatch on "tenant"');
  });

  it('a wrong context fails: a message whose stored context was altered is refused by KMS Decrypt (InvalidCiphertextException)', async function () {
    const { result } = await encrypt(keyring(keyArn(AES)), 'bound to its context', { encryptionContext: context });
    const message = Buffer.from(result);
    const at = message.indexOf(Buffer.from('alpha-tenant'));
    expect(at, 'the context is stored in the message header').to.be.greaterThan(0);
    message.write('gamma', at, 'utf8'); // same length: "gamma-tenant"

    calls = [];
    let error: Error | undefined;
    try {
      await decrypt(keyring(keyArn(AES)), message);
    } catch (e) {
      error = e as Error;
    }
    expect(error, 'decrypting the altered message must fail').to.not.equal(undefined);
    expect(calls).to.deep.equal(['DecryptCommand InvalidCiphertextException']);
  });

  it('with a generator and a second key: GenerateDataKey and Encrypt; a keyring with only the second key decrypts', async function () {
    const plaintext = randomBytes(300);
    const { result, messageHeader } = await encrypt(keyring(keyArn(AES), [keyArn(AES_2)]), plaintext, { encryptionContext: context });
    expect(calls).to.deep.equal(['GenerateDataKeyCommand ok', 'EncryptCommand ok']);
    expect(messageHeader.encryptedDataKeys.map((k) => k.providerInfo)).to.deep.equal([keyArn(AES), keyArn(AES_2)]);

    calls = [];
    const out = await decrypt(keyring(undefined, [keyArn(AES_2)]), result);
    expect(Buffer.from(out.plaintext).equals(plaintext)).to.equal(true);
    expect(calls).to.deep.equal(['DecryptCommand ok']);
  });

  it('a keyring holding neither key cannot decrypt the message', async function () {
    const { result } = await encrypt(keyring(keyArn(AES), [keyArn(AES_2)]), 'not for the third key', { encryptionContext: context });
    calls = [];
    let error: Error | undefined;
    try {
      await decrypt(keyring(keyArn(AES_3)), result);
    } catch (e) {
      error = e as Error;
    }
    expect(error, 'decrypting without any of the message’s keys must fail').to.not.equal(undefined);
    // The keyring only asks KMS about the data keys of its own keys: none here.
    expect(calls).to.deep.equal([]);
  });
});
