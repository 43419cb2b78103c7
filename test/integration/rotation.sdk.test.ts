/**
 * Key rotation as an application sees it through @aws-sdk/client-kms:
 * EnableKeyRotation, DisableKeyRotation, GetKeyRotationStatus,
 * RotateKeyOnDemand and ListKeyRotations against real gateway processes on
 * throwaway SoftHSM2 tokens, and automatic rotation with a test clock whose
 * day lasts 10 ms.
 */
import { expect } from 'chai';
import {
  DecryptCommand,
  DisableKeyRotationCommand,
  EnableKeyRotationCommand,
  EncryptCommand,
  GetKeyRotationStatusCommand,
  ListKeyRotationsCommand,
  RotateKeyOnDemandCommand,
  ScheduleKeyDeletionCommand,
  type KMSClient,
  type ListKeyRotationsCommandInput,
  type RotationsListEntry,
} from '@aws-sdk/client-kms';
import { defaultConfig, keyArn, kmsClient, rawRequest, startGateway, tableKey, type GatewayProcess } from '../support/gateway.js';
import { expectClientError, failure } from '../support/sdk-errors.js';

const RSA_2048 = '0b5e6a1c-7d43-4f0e-9a35-2c8d1e6f4a02';
const AES_STATUS = '7b3f1e20-2d3c-4b4e-9f50-6b7c8d9e0f01';
const AES_ROTATE = '7b3f1e20-2d3c-4b4e-9f50-6b7c8d9e0f02';
const AES_LIMIT = '7b3f1e20-2d3c-4b4e-9f50-6b7c8d9e0f03';
const AES_SCHEDULE = '7b3f1e20-2d3c-4b4e-9f50-6b7c8d9e0f04';
const DISABLED = '7b3f1e20-2d3c-4b4e-9f50-6b7c8d9e0f05';
const PENDING = '7b3f1e20-2d3c-4b4e-9f50-6b7c8d9e0f06';
const AES_AUTO = '7b3f1e20-2d3c-4b4e-9f50-6b7c8d9e0f07';
const UNKNOWN = '7b3f1e20-2d3c-4b4e-9f50-6b7c8d9e0fff';

/** AWS's on-demand quota per key (the current KMS model's documentation). */
const ON_DEMAND_LIMIT = 25;
const DAY_MS = 24 * 60 * 60 * 1000;
/** Symmetric blob layout (README): the material version is a uint32 at offset 17. */
const materialVersion = (blob: Uint8Array | undefined): number => Buffer.from(blob as Uint8Array).readUInt32BE(17);

const aesKey = (keyId: string, label: string, enabled = true) => tableKey(keyId, label, { enabled });

function clients(getKms: () => KMSClient) {
  const kms = () => getKms();
  return {
    enable: (KeyId: string, RotationPeriodInDays?: number) => kms().send(new EnableKeyRotationCommand({ KeyId, RotationPeriodInDays })),
    disable: (KeyId: string) => kms().send(new DisableKeyRotationCommand({ KeyId })),
    status: (KeyId: string) => kms().send(new GetKeyRotationStatusCommand({ KeyId })),
    rotate: (KeyId: string) => kms().send(new RotateKeyOnDemandCommand({ KeyId })),
    rotations: (input: ListKeyRotationsCommandInput) => kms().send(new ListKeyRotationsCommand(input)),
    encrypt: (KeyId: string, text: string) => kms().send(new EncryptCommand({ KeyId, Plaintext: new TextEncoder().encode(text) })),
    decrypt: async (blob: Uint8Array | undefined) =>
      new TextDecoder().decode((await kms().send(new DecryptCommand({ CiphertextBlob: blob }))).Plaintext),
  };
}

describe('Key rotation through @aws-sdk/client-kms', function () {
  this.timeout(60_000);
  let gw: GatewayProcess;
  let kms: KMSClient;
  const { enable, disable, status, rotate, rotations, encrypt, decrypt } = clients(() => kms);

  async function allRotations(KeyId: string): Promise<RotationsListEntry[]> {
    const out: RotationsListEntry[] = [];
    let Marker: string | undefined;
    do {
      const page = await rotations({ KeyId, Marker });
      out.push(...(page.Rotations ?? []));
      Marker = page.Truncated === true ? page.NextMarker : undefined;
    } while (Marker !== undefined);
    return out;
  }

  before(async function () {
    const config = defaultConfig();
    (config['keys'] as unknown[]).push(
      aesKey(AES_STATUS, 'kmsgw-it-rot-status'),
      aesKey(AES_ROTATE, 'kmsgw-it-rot-rotate'),
      aesKey(AES_LIMIT, 'kmsgw-it-rot-limit'),
      aesKey(AES_SCHEDULE, 'kmsgw-it-rot-schedule'),
      aesKey(DISABLED, 'kmsgw-it-rot-disabled', false),
      aesKey(PENDING, 'kmsgw-it-rot-pending'),
    );
    gw = await startGateway({ config });
    kms = kmsClient(gw.url);
    await kms.send(new ScheduleKeyDeletionCommand({ KeyId: PENDING, PendingWindowInDays: 7 }));
  });

  after(async function () {
    kms?.destroy();
    await gw?.stop();
  });

  describe('automatic rotation settings', function () {
    it('reports rotation off for a new key, naming the key by its key id', async function () {
      const s = await status(AES_STATUS);
      expect(s.KeyRotationEnabled).to.equal(false);
      expect(s.KeyId).to.equal(AES_STATUS);
      expect(s.RotationPeriodInDays).to.equal(undefined);
      expect(s.NextRotationDate).to.equal(undefined);
    });

    it('enables rotation with the default period of 365 days, the next rotation a period from now', async function () {
      const before = Date.now();
      await enable(keyArn(AES_STATUS));
      const s = await status(AES_STATUS);
      expect(s.KeyRotationEnabled).to.equal(true);
      expect(s.RotationPeriodInDays).to.equal(365);
      expect(s.NextRotationDate?.getTime()).to.be.within(before + 365 * DAY_MS - 60_000, Date.now() + 365 * DAY_MS + 60_000);
    });

    it('sets a custom period of 90 and of 2560 days', async function () {
      for (const days of [90, 2560]) {
        await enable(AES_STATUS, days);
        const s = await status(keyArn(AES_STATUS));
        expect(s.RotationPeriodInDays).to.equal(days);
        expect(s.NextRotationDate?.getTime()).to.be.within(Date.now() + days * DAY_MS - 120_000, Date.now() + days * DAY_MS + 60_000);
      }
    });

    it('disables rotation: status false, no period, no next date', async function () {
      await enable(AES_STATUS, 180);
      await disable(AES_STATUS);
      const s = await status(AES_STATUS);
      expect(s.KeyRotationEnabled).to.equal(false);
      expect(s.RotationPeriodInDays).to.equal(undefined);
      expect(s.NextRotationDate).to.equal(undefined);
    });

    for (const [days, text] of [
      [89, 'Member must have value greater than or equal to 90'],
      [2561, 'Member must have value less than or equal to 2560'],
    ] as const) {
      it(`answers ValidationException for RotationPeriodInDays ${days} and changes nothing`, async function () {
        await disable(AES_STATUS);
        const err = await failure(enable(AES_STATUS, days));
        expectClientError(
          err,
          'ValidationException',
          `1 validation error detected: Value '${days}' at 'rotationPeriodInDays' failed to satisfy constraint: ${text}`,
        );
        expect((await status(AES_STATUS)).KeyRotationEnabled).to.equal(false);
      });
    }

    it('answers DisabledException "<arn> is disabled." for a disabled key, whose status still reads', async function () {
      expectClientError(await failure(enable(DISABLED)), 'DisabledException', `${keyArn(DISABLED)} is disabled.`);
      expectClientError(await failure(disable(DISABLED)), 'DisabledException', `${keyArn(DISABLED)} is disabled.`);
      expect((await status(DISABLED)).KeyRotationEnabled).to.equal(false);
    });

    it('answers KMSInvalidStateException for a key pending deletion, whose status reads false', async function () {
      expectClientError(await failure(enable(PENDING)), 'KMSInvalidStateException', `${keyArn(PENDING)} is pending deletion.`);
      expect((await status(PENDING)).KeyRotationEnabled).to.equal(false);
    });

    it('answers UnsupportedOperationException, with no message as AWS, for an RSA key, whose status reads false', async function () {
      expectClientError(await failure(enable(RSA_2048)), 'UnsupportedOperationException');
      expectClientError(await failure(disable(RSA_2048)), 'UnsupportedOperationException');
      const raw = await rawRequest(gw.url, { target: 'TrentService.EnableKeyRotation', body: JSON.stringify({ KeyId: RSA_2048 }) });
      expect(raw.status).to.equal(400);
      expect(raw.body).to.deep.equal({ __type: 'UnsupportedOperationException' });
      expect(await status(RSA_2048)).to.include({ KeyRotationEnabled: false, KeyId: RSA_2048 });
    });

    it(`answers NotFoundException "Key '<arn>' does not exist" for an unknown key`, async function () {
      expectClientError(await failure(enable(UNKNOWN)), 'NotFoundException', `Key '${keyArn(UNKNOWN)}' does not exist`);
      expectClientError(await failure(status(UNKNOWN)), 'NotFoundException', `Key '${keyArn(UNKNOWN)}' does not exist`);
    });
  });

  describe('RotateKeyOnDemand', function () {
    it('makes new ciphertexts use new material while older ones still decrypt', async function () {
      const before = await encrypt(AES_ROTATE, 'before the rotation');
      const answer = await rotate(AES_ROTATE);
      expect(answer.KeyId).to.equal(AES_ROTATE);
      const after = await encrypt(AES_ROTATE, 'after the rotation');
      expect(materialVersion(after.CiphertextBlob)).to.not.equal(materialVersion(before.CiphertextBlob));
      expect(await decrypt(before.CiphertextBlob)).to.equal('before the rotation');
      expect(await decrypt(after.CiphertextBlob)).to.equal('after the rotation');
    });

    it('keeps three ciphertexts of three materials decryptable after two more rotations', async function () {
      const first = await encrypt(AES_ROTATE, 'one');
      await rotate(AES_ROTATE);
      const second = await encrypt(AES_ROTATE, 'two');
      await rotate(keyArn(AES_ROTATE));
      const third = await encrypt(AES_ROTATE, 'three');
      const versions = [first, second, third].map((c) => materialVersion(c.CiphertextBlob));
      expect(new Set(versions).size).to.equal(3);
      expect(await decrypt(first.CiphertextBlob)).to.equal('one');
      expect(await decrypt(second.CiphertextBlob)).to.equal('two');
      expect(await decrypt(third.CiphertextBlob)).to.equal('three');
    });

    it('lists every on-demand rotation, oldest first, the latest material CURRENT', async function () {
      const list = await allRotations(AES_ROTATE);
      expect(list).to.have.length(3);
      for (const r of list) {
        expect(r.KeyId).to.equal(AES_ROTATE);
        expect(r.RotationType).to.equal('ON_DEMAND');
        expect(r.RotationDate).to.be.instanceOf(Date);
      }
      const times = list.map((r) => r.RotationDate?.getTime() ?? 0);
      expect(times).to.deep.equal([...times].sort((a, b) => a - b));
      expect(list.map((r) => r.KeyMaterialState)).to.deep.equal(['NON_CURRENT', 'NON_CURRENT', 'CURRENT']);
    });

    it('lists the first material too with IncludeKeyMaterial ALL_KEY_MATERIAL', async function () {
      const page = await rotations({ KeyId: AES_ROTATE, IncludeKeyMaterial: 'ALL_KEY_MATERIAL' });
      expect(page.Rotations).to.have.length(4);
      expect(page.Rotations?.[0]?.RotationType).to.equal(undefined);
    });

    it('pages rotations with Limit and Marker', async function () {
      const one = await rotations({ KeyId: AES_ROTATE, Limit: 2 });
      expect(one.Rotations).to.have.length(2);
      expect(one.Truncated).to.equal(true);
      const two = await rotations({ KeyId: AES_ROTATE, Limit: 2, Marker: one.NextMarker });
      expect(two.Rotations).to.have.length(1);
      expect(two.Truncated).to.equal(false);
      expect(two.NextMarker).to.equal(undefined);
      const dates = [...(one.Rotations ?? []), ...(two.Rotations ?? [])].map((r) => r.RotationDate?.getTime());
      expect(dates).to.deep.equal((await allRotations(AES_ROTATE)).map((r) => r.RotationDate?.getTime()));
    });

    it('answers ValidationException for ListKeyRotations Limit 0 and for an unknown IncludeKeyMaterial', async function () {
      expectClientError(
        await failure(rotations({ KeyId: AES_ROTATE, Limit: 0 })),
        'ValidationException',
        "1 validation error detected: Value '0' at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1",
      );
      const raw = await rawRequest(gw.url, {
        target: 'TrentService.ListKeyRotations',
        body: JSON.stringify({ KeyId: AES_ROTATE, IncludeKeyMaterial: 'SOME' }),
      });
      expect(raw.status).to.equal(400);
      expect(raw.body?.['__type']).to.equal('ValidationException');
    });

    it('answers InvalidMarkerException for a marker it did not issue', async function () {
      expectClientError(await failure(rotations({ KeyId: AES_ROTATE, Marker: 'bogus' })), 'InvalidMarkerException');
    });

    it('lists no rotations for a key never rotated', async function () {
      const page = await rotations({ KeyId: AES_SCHEDULE });
      expect(page.Rotations).to.deep.equal([]);
      expect(page.Truncated).to.equal(false);
    });

    it('leaves the automatic schedule where it was', async function () {
      await enable(AES_SCHEDULE, 400);
      const before = await status(AES_SCHEDULE);
      await rotate(AES_SCHEDULE);
      const after = await status(AES_SCHEDULE);
      expect(after.NextRotationDate?.getTime()).to.equal(before.NextRotationDate?.getTime());
      expect(after.RotationPeriodInDays).to.equal(400);
      await disable(AES_SCHEDULE);
    });

    it(`allows ${ON_DEMAND_LIMIT} on-demand rotations per key, then answers LimitExceededException with AWS's text`, async function () {
      for (let i = 0; i < ON_DEMAND_LIMIT; i += 1) await rotate(AES_LIMIT);
      const err = await failure(rotate(AES_LIMIT));
      expectClientError(
        err,
        'LimitExceededException',
        `The on-demand rotations limit has been reached for the given keyId. No more on-demand rotations can be performed for this key: ${keyArn(AES_LIMIT)}`,
      );
      expect(await allRotations(AES_LIMIT)).to.have.length(ON_DEMAND_LIMIT);
      const c = await encrypt(AES_LIMIT, 'still works');
      expect(materialVersion(c.CiphertextBlob)).to.equal(ON_DEMAND_LIMIT);
      expect(await decrypt(c.CiphertextBlob)).to.equal('still works');
    });

    it('answers DisabledException for a disabled key and KMSInvalidStateException for one pending deletion', async function () {
      expectClientError(await failure(rotate(DISABLED)), 'DisabledException', `${keyArn(DISABLED)} is disabled.`);
      expectClientError(await failure(rotate(PENDING)), 'KMSInvalidStateException', `${keyArn(PENDING)} is pending deletion.`);
      expect(await allRotations(PENDING)).to.deep.equal([]);
    });

    it('answers UnsupportedOperationException for an RSA key, for rotation and for its list', async function () {
      expectClientError(await failure(rotate(RSA_2048)), 'UnsupportedOperationException');
      expectClientError(await failure(rotations({ KeyId: RSA_2048 })), 'UnsupportedOperationException');
    });

    it(`answers NotFoundException "Key '<arn>' does not exist" for an unknown key`, async function () {
      expectClientError(await failure(rotate(UNKNOWN)), 'NotFoundException', `Key '${keyArn(UNKNOWN)}' does not exist`);
      expectClientError(await failure(rotations({ KeyId: UNKNOWN })), 'NotFoundException', `Key '${keyArn(UNKNOWN)}' does not exist`);
    });
  });

  describe('automatic rotation (a test day of 10 ms)', function () {
    let fast: GatewayProcess;
    let fastKms: KMSClient;
    const fastOps = clients(() => fastKms);

    before(async function () {
      const config = defaultConfig();
      config['state'] = { refreshMs: 200 };
      (config['keys'] as unknown[]).push(aesKey(AES_AUTO, 'kmsgw-it-rot-auto'));
      fast = await startGateway({ config, env: { KMSGW_TEST_ONLY_SECONDS_PER_DAY: '0.01' } });
      fastKms = kmsClient(fast.url);
    });

    after(async function () {
      fastKms?.destroy();
      await fast?.stop();
    });

    it('rotates a key a period (90 test days) after EnableKeyRotation; older ciphertexts still decrypt', async function () {
      const before = await fastOps.encrypt(AES_AUTO, 'before automatic rotation');
      await fastOps.enable(AES_AUTO, 90);
      let automatic: RotationsListEntry | undefined;
      for (let i = 0; i < 100 && automatic === undefined; i += 1) {
        await new Promise((r) => setTimeout(r, 100));
        const page = await fastOps.rotations({ KeyId: AES_AUTO });
        automatic = page.Rotations?.find((r) => r.RotationType === 'AUTOMATIC');
      }
      await fastOps.disable(AES_AUTO);
      expect(automatic, 'an AUTOMATIC rotation within 10 s').to.not.equal(undefined);
      expect(automatic?.KeyId).to.equal(AES_AUTO);
      const after = await fastOps.encrypt(AES_AUTO, 'after automatic rotation');
      expect(materialVersion(after.CiphertextBlob)).to.be.above(materialVersion(before.CiphertextBlob));
      expect(await fastOps.decrypt(before.CiphertextBlob)).to.equal('before automatic rotation');
      expect(await fastOps.decrypt(after.CiphertextBlob)).to.equal('after automatic rotation');
    });
  });
});
