/**
 * Key deletion after its window, end to end: a gateway whose "day" lasts
 * 0.2 s (KMSGW_TEST_ONLY_SECONDS_PER_DAY, test only) and whose background
 * refresh runs every 200 ms. Keys scheduled for deletion in 7 "days" are
 * refused at once (KMSInvalidStateException) and gone about 1.4 s later:
 * DescribeKey answers NotFoundException, their aliases are gone, and their
 * token objects are destroyed (checked on the token itself with pkcs11js,
 * after the gateway stopped). A key whose deletion was cancelled stays.
 */
import {
  CancelKeyDeletionCommand,
  CreateKeyCommand,
  DescribeKeyCommand,
  EncryptCommand,
  ListKeysCommand,
  ScheduleKeyDeletionCommand,
  type KMSClient,
} from '@aws-sdk/client-kms';
import { expect } from 'chai';
import { ACCOUNT, REGION, defaultConfig, keyArn, kmsClient, startGateway, type GatewayProcess } from '../support/gateway.js';
import { hsmIdle } from '../support/ops.js';
import { tokenLabels } from '../support/token.js';
import { expectClientError, failure, type SdkError } from '../support/sdk-errors.js';

/** The config table's key that is deleted, with an alias (its token object is named by the config's label). */
const DOOMED = { keyId: '7c8d9e0f-1a2b-4c3d-8e4f-5a6b7c8d9e01', alias: 'alias/doomed', label: 'kmsgw-it-doomed' };
const SURVIVOR_LABEL = 'kmsgw-demo-aes';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('Key deletion after the pending window (a test day of 0.2 s)', function () {
  this.timeout(40_000);
  let gw: GatewayProcess;
  let kms: KMSClient;
  let aes: string;
  let rsa: string;
  let cancelled: string;

  const describeKey = (KeyId: string) => kms.send(new DescribeKeyCommand({ KeyId }));

  /** Polls DescribeKey until the key is gone (NotFoundException) or the deadline passes. */
  async function untilGone(keyId: string, deadlineMs: number): Promise<void> {
    const end = Date.now() + deadlineMs;
    for (;;) {
      try {
        await describeKey(keyId);
      } catch (e) {
        if ((e as SdkError).name === 'NotFoundException') return;
        throw e;
      }
      if (Date.now() > end) throw new Error(`key ${keyId} still exists after ${deadlineMs} ms`);
      await sleep(100);
    }
  }

  before(async function () {
    const config = defaultConfig();
    (config['keys'] as unknown[]).push({
      keyId: DOOMED.keyId,
      aliases: [DOOMED.alias, 'alias/doomed-too'],
      keySpec: 'SYMMETRIC_DEFAULT',
      pkcs11: { label: DOOMED.label },
      createIfMissing: true,
    });
    config['state'] = { refreshMs: 200 };
    gw = await startGateway({ config, env: { KMSGW_TEST_ONLY_SECONDS_PER_DAY: '0.2' } });
    kms = kmsClient(gw.url);
    aes = (await kms.send(new CreateKeyCommand({ Description: 'doomed AES' }))).KeyMetadata?.KeyId as string;
    rsa = (await kms.send(new CreateKeyCommand({ KeySpec: 'RSA_2048', KeyUsage: 'ENCRYPT_DECRYPT' }))).KeyMetadata?.KeyId as string;
    cancelled = (await kms.send(new CreateKeyCommand({ Description: 'saved in time' }))).KeyMetadata?.KeyId as string;
    // The first test reads every object on the token: not while a CreateKey's mark replacement runs.
    await hsmIdle(gw.url);
  });

  after(async function () {
    kms?.destroy();
    await gw?.stop();
  });

  it('starts with the created keys on the token under kmsgw-<keyId>-v0 (the RSA key as a private and a public object)', async function () {
    const labels = tokenLabels(gw.token);
    expect(labels.filter((l) => l === `kmsgw-${aes}-v0`)).to.have.length(1);
    expect(labels.filter((l) => l === `kmsgw-${rsa}-v0`)).to.have.length(2);
    expect(labels).to.include(DOOMED.label);
  });

  it('refuses Encrypt with KMSInvalidStateException "<arn> is pending deletion." as soon as the deletion is scheduled', async function () {
    await kms.send(new EncryptCommand({ KeyId: aes, Plaintext: Buffer.from('before') }));
    for (const keyId of [aes, rsa, DOOMED.keyId, cancelled]) {
      const res = await kms.send(new ScheduleKeyDeletionCommand({ KeyId: keyId, PendingWindowInDays: 7 }));
      expect(res.KeyState).to.equal('PendingDeletion');
    }
    expectClientError(
      await failure(kms.send(new EncryptCommand({ KeyId: aes, Plaintext: Buffer.from('after') }))),
      'KMSInvalidStateException',
      `${keyArn(aes)} is pending deletion.`,
    );
    expectClientError(
      await failure(kms.send(new EncryptCommand({ KeyId: DOOMED.alias, Plaintext: Buffer.from('after') }))),
      'KMSInvalidStateException',
      `${keyArn(DOOMED.keyId)} is pending deletion.`,
    );
    await kms.send(new CancelKeyDeletionCommand({ KeyId: cancelled }));
  });

  it('destroys the keys once the 7 "days" (1.4 s) have passed: DescribeKey answers NotFoundException', async function () {
    for (const keyId of [aes, rsa, DOOMED.keyId]) await untilGone(keyId, 15_000);
    for (const keyId of [aes, rsa, DOOMED.keyId])
      expectClientError(await failure(describeKey(keyId)), 'NotFoundException', `Key '${keyArn(keyId)}' does not exist`);
  });

  it('removes their aliases', async function () {
    for (const alias of [DOOMED.alias, 'alias/doomed-too'])
      expectClientError(await failure(describeKey(alias)), 'NotFoundException', `Alias arn:aws:kms:${REGION}:${ACCOUNT}:${alias} is not found.`);
  });

  it('no longer lists them, and keeps the key whose deletion was cancelled (Disabled)', async function () {
    const ids = ((await kms.send(new ListKeysCommand({}))).Keys ?? []).map((k) => k.KeyId);
    expect(ids).to.not.include(aes);
    expect(ids).to.not.include(rsa);
    expect(ids).to.not.include(DOOMED.keyId);
    expect(ids).to.include(cancelled);
    expect((await describeKey(cancelled)).KeyMetadata?.KeyState).to.equal('Disabled');
  });

  it('leaves no token object of theirs, key material or state record (checked on the token after the gateway stopped)', async function () {
    await gw.stop();
    const labels = tokenLabels(gw.token);
    expect(labels, 'the surviving demo key is found: the search works').to.include(SURVIVOR_LABEL);
    expect(labels).to.include(`kmsgw-${cancelled}-v0`);
    for (const keyId of [aes, rsa]) expect(labels).to.not.include(`kmsgw-${keyId}-v0`);
    expect(labels).to.not.include(DOOMED.label);
    const records = labels.filter((l) => l.startsWith('kmsgw/v1/'));
    expect(records.some((l) => l.endsWith(`/${cancelled}`)), 'the cancelled key keeps its record').to.equal(true);
    for (const gone of [aes, rsa, DOOMED.keyId, DOOMED.alias, 'alias/doomed-too'])
      expect(records.filter((l) => l.endsWith(`/${gone}`)), `records of ${gone}`).to.deep.equal([]);
  });
});
