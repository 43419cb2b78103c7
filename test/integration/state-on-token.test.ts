/**
 * All key state lives on the HSM: a restart loses nothing, and two gateway
 * processes on one token agree within the refresh interval.
 */
import {
  CreateAliasCommand,
  CreateKeyCommand,
  DecryptCommand,
  DescribeKeyCommand,
  DisableKeyCommand,
  EnableKeyCommand,
  EncryptCommand,
  ListAliasesCommand,
  ListKeyRotationsCommand,
  ListResourceTagsCommand,
  RotateKeyOnDemandCommand,
  ScheduleKeyDeletionCommand,
  TagResourceCommand,
  type KMSClient,
} from '@aws-sdk/client-kms';
import { expect } from 'chai';
import { defaultConfig, kmsClient, makeToken, startGateway, type GatewayProcess } from '../support/gateway.js';

async function encrypt(kms: KMSClient, KeyId: string, text: string, context?: Record<string, string>): Promise<Uint8Array> {
  const out = await kms.send(new EncryptCommand({ KeyId, Plaintext: Buffer.from(text), EncryptionContext: context }));
  return out.CiphertextBlob as Uint8Array;
}

async function decrypt(kms: KMSClient, blob: Uint8Array, context?: Record<string, string>): Promise<string> {
  const out = await kms.send(new DecryptCommand({ CiphertextBlob: blob, EncryptionContext: context }));
  return Buffer.from(out.Plaintext as Uint8Array).toString();
}

async function errorName(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'no error';
  } catch (e) {
    return (e as Error).name;
  }
}

/** Polls until check passes; fails after `withinMs`. Returns how long it took. */
async function eventually(withinMs: number, check: () => Promise<boolean>): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await check()) return Date.now() - start;
    if (Date.now() - start > withinMs) throw new Error(`not seen within ${withinMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('key state kept on the HSM', function () {
  this.timeout(120_000);

  describe('across a restart', () => {
    const token = makeToken('kmsgw-dev');
    let gw: GatewayProcess;
    const earlier: Record<string, unknown> = {};
    const blobs: { keyId: string; blob: Uint8Array; text: string; context?: Record<string, string> }[] = [];
    let aesId = '';
    let rsaId = '';
    let disabledId = '';
    let doomedId = '';

    before(async () => {
      gw = await startGateway({ token });
      const kms = kmsClient(gw.url);
      aesId = (await kms.send(new CreateKeyCommand({ Description: 'restart survivor', Tags: [{ TagKey: 'team', TagValue: 'core' }] }))).KeyMetadata!.KeyId!;
      await kms.send(new CreateAliasCommand({ AliasName: 'alias/restart-test', TargetKeyId: aesId }));
      blobs.push({ keyId: aesId, blob: await encrypt(kms, 'alias/restart-test', 'before rotation', { a: 'b' }), text: 'before rotation', context: { a: 'b' } });
      await kms.send(new RotateKeyOnDemandCommand({ KeyId: aesId }));
      blobs.push({ keyId: aesId, blob: await encrypt(kms, aesId, 'after rotation'), text: 'after rotation' });
      await kms.send(new TagResourceCommand({ KeyId: aesId, Tags: [{ TagKey: 'env', TagValue: 'test' }] }));
      rsaId = (await kms.send(new CreateKeyCommand({ KeySpec: 'RSA_2048', KeyUsage: 'ENCRYPT_DECRYPT' }))).KeyMetadata!.KeyId!;
      const rsaBlob = (await kms.send(new EncryptCommand({ KeyId: rsaId, Plaintext: Buffer.from('rsa'), EncryptionAlgorithm: 'RSAES_OAEP_SHA_256' }))).CiphertextBlob!;
      earlier['rsaBlob'] = rsaBlob;
      disabledId = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
      blobs.push({ keyId: disabledId, blob: await encrypt(kms, disabledId, 'disabled later'), text: 'disabled later' });
      await kms.send(new DisableKeyCommand({ KeyId: disabledId }));
      doomedId = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
      await kms.send(new ScheduleKeyDeletionCommand({ KeyId: doomedId, PendingWindowInDays: 30 }));
      for (const id of [aesId, rsaId, disabledId, doomedId])
        earlier[id] = (await kms.send(new DescribeKeyCommand({ KeyId: id }))).KeyMetadata;
      earlier['aliases'] = (await kms.send(new ListAliasesCommand({}))).Aliases;
      earlier['rotations'] = (await kms.send(new ListKeyRotationsCommand({ KeyId: aesId }))).Rotations;
      earlier['tags'] = (await kms.send(new ListResourceTagsCommand({ KeyId: aesId }))).Tags;
      await gw.stop();
      gw = await startGateway({ token });
    });
    after(() => gw?.stop());

    it('describes every key exactly as before: state, description, dates, deletion date', async () => {
      const kms = kmsClient(gw.url);
      for (const id of [aesId, rsaId, disabledId, doomedId]) {
        const now = (await kms.send(new DescribeKeyCommand({ KeyId: id }))).KeyMetadata;
        expect(now).to.deep.equal(earlier[id]);
      }
    });

    it('keeps aliases, tags and the rotation history', async () => {
      const kms = kmsClient(gw.url);
      expect((await kms.send(new ListAliasesCommand({}))).Aliases).to.deep.equal(earlier['aliases']);
      expect((await kms.send(new ListKeyRotationsCommand({ KeyId: aesId }))).Rotations).to.deep.equal(earlier['rotations']);
      expect((await kms.send(new ListResourceTagsCommand({ KeyId: aesId }))).Tags).to.deep.equal(earlier['tags']);
    });

    it('still decrypts every earlier ciphertext, from before and after the rotation', async () => {
      const kms = kmsClient(gw.url);
      for (const b of blobs.filter((x) => x.keyId !== disabledId)) expect(await decrypt(kms, b.blob, b.context)).to.equal(b.text);
      const rsa = await kms.send(
        new DecryptCommand({ KeyId: rsaId, CiphertextBlob: earlier['rsaBlob'] as Uint8Array, EncryptionAlgorithm: 'RSAES_OAEP_SHA_256' }),
      );
      expect(Buffer.from(rsa.Plaintext!).toString()).to.equal('rsa');
    });

    it('keeps the disabled key disabled, and its ciphertext decrypts once it is enabled again', async () => {
      const kms = kmsClient(gw.url);
      const b = blobs.find((x) => x.keyId === disabledId)!;
      expect(await errorName(decrypt(kms, b.blob))).to.equal('DisabledException');
      await kms.send(new EnableKeyCommand({ KeyId: disabledId }));
      expect(await decrypt(kms, b.blob)).to.equal(b.text);
    });

    it('keeps the key pending deletion refused', async () => {
      const kms = kmsClient(gw.url);
      expect(await errorName(encrypt(kms, doomedId, 'x'))).to.equal('KMSInvalidStateException');
    });

    it('does not re-create the demo keys of the key table on the second start', () => {
      expect(gw.logs()).to.not.contain('created key on the token');
    });
  });

  describe('with two gateway processes on one token', () => {
    const REFRESH_MS = 500;
    /** The README's bound: one refresh interval, plus the time of one refresh and a request. */
    const BOUND_MS = 2 * REFRESH_MS + 1000;
    const token = makeToken('kmsgw-dev');
    let one: GatewayProcess;
    let two: GatewayProcess;

    before(async () => {
      const config = { ...defaultConfig(), state: { refreshMs: REFRESH_MS } };
      one = await startGateway({ token, config });
      two = await startGateway({ token, config });
    });
    after(async () => {
      await one?.stop();
      await two?.stop();
    });

    it('a key created through one is usable through the other within the refresh bound', async () => {
      const a = kmsClient(one.url);
      const b = kmsClient(two.url);
      const keyId = (await a.send(new CreateKeyCommand({ Description: 'made by one' }))).KeyMetadata!.KeyId!;
      await eventually(BOUND_MS, async () => (await errorName(encrypt(b, keyId, 'x'))) === 'no error');
      const blob = await encrypt(b, keyId, 'from two');
      expect(await decrypt(a, blob)).to.equal('from two');
    });

    it('a key disabled through one is refused by the other within the refresh bound, and enabled again likewise', async () => {
      const a = kmsClient(one.url);
      const b = kmsClient(two.url);
      const keyId = (await a.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
      await eventually(BOUND_MS, async () => (await errorName(encrypt(b, keyId, 'x'))) === 'no error');
      await a.send(new DisableKeyCommand({ KeyId: keyId }));
      await eventually(BOUND_MS, async () => (await errorName(encrypt(b, keyId, 'x'))) === 'DisabledException');
      await a.send(new EnableKeyCommand({ KeyId: keyId }));
      await eventually(BOUND_MS, async () => (await errorName(encrypt(b, keyId, 'x'))) === 'no error');
    });

    it('an alias created through the second is usable through the first', async () => {
      const a = kmsClient(one.url);
      const b = kmsClient(two.url);
      const keyId = (await b.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
      await b.send(new CreateAliasCommand({ AliasName: 'alias/shared-between-two', TargetKeyId: keyId }));
      await eventually(BOUND_MS, async () => (await errorName(encrypt(a, 'alias/shared-between-two', 'x'))) === 'no error');
    });

    it('a rotation through one is used by the other for decryption of new ciphertexts', async () => {
      const a = kmsClient(one.url);
      const b = kmsClient(two.url);
      const keyId = (await a.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
      await a.send(new RotateKeyOnDemandCommand({ KeyId: keyId }));
      const blob = await encrypt(a, keyId, 'new material');
      await eventually(BOUND_MS, async () => (await errorName(decrypt(b, blob))) === 'no error');
      expect(await decrypt(b, blob)).to.equal('new material');
    });
  });
});
