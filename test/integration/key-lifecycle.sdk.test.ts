/**
 * Key lifecycle, tags and public keys as an application sees them through
 * @aws-sdk/client-kms, against one real gateway process on a throwaway
 * SoftHSM2 token: CreateKey, DescribeKey, ListKeys, EnableKey, DisableKey,
 * UpdateKeyDescription, ScheduleKeyDeletion, CancelKeyDeletion,
 * GetPublicKey, TagResource, UntagResource and ListResourceTags, with AWS's
 * validation answers. (The destruction of a key after its deletion window is
 * in key-deletion.test.ts.)
 */
import { expect } from 'chai';
import { constants, createPublicKey, publicEncrypt, randomBytes } from 'node:crypto';
import {
  CancelKeyDeletionCommand,
  CreateKeyCommand,
  DecryptCommand,
  DescribeKeyCommand,
  DisableKeyCommand,
  EnableKeyCommand,
  EncryptCommand,
  GetPublicKeyCommand,
  ListKeysCommand,
  ListResourceTagsCommand,
  ScheduleKeyDeletionCommand,
  TagResourceCommand,
  UntagResourceCommand,
  UpdateKeyDescriptionCommand,
  type CreateKeyCommandInput,
  type KeyMetadata,
  type KMSClient,
  type Tag,
} from '@aws-sdk/client-kms';
import { ACCOUNT, REGION, defaultConfig, keyArn, kmsClient, rawRequest, startGateway, type GatewayProcess } from '../support/gateway.js';
import { failure, expectClientError } from '../support/sdk-errors.js';

const DEMO = [
  { alias: 'alias/demo-aes', keyId: '0b5e6a1c-7d43-4f0e-9a35-2c8d1e6f4a01', spec: 'SYMMETRIC_DEFAULT', description: 'Demo AES-256 key of the embedded SoftHSM2 default' },
  { alias: 'alias/demo-rsa-2048', keyId: '0b5e6a1c-7d43-4f0e-9a35-2c8d1e6f4a02', spec: 'RSA_2048', description: 'Demo RSA-2048 key of the embedded SoftHSM2 default' },
  { alias: 'alias/demo-rsa-3072', keyId: '0b5e6a1c-7d43-4f0e-9a35-2c8d1e6f4a03', spec: 'RSA_3072', description: 'Demo RSA-3072 key of the embedded SoftHSM2 default' },
  { alias: 'alias/demo-rsa-4096', keyId: '0b5e6a1c-7d43-4f0e-9a35-2c8d1e6f4a04', spec: 'RSA_4096', description: 'Demo RSA-4096 key of the embedded SoftHSM2 default' },
] as const;
const DISABLED = '6a7b8c9d-0e1f-4a2b-8c3d-4e5f6a7b8c01';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const DAY_MS = 24 * 60 * 60 * 1000;
const SYMMETRIC_ALGORITHMS = ['SYMMETRIC_DEFAULT'];
const RSA_ALGORITHMS = ['RSAES_OAEP_SHA_1', 'RSAES_OAEP_SHA_256'];
/** AWS's KeySpec enum in the order AWS prints it (the newer values appended). */
const KEY_SPEC_ENUM =
  '[RSA_2048, ECC_NIST_P384, ECC_NIST_P256, ECC_NIST_P521, HMAC_384, RSA_3072, ECC_SECG_P256K1, RSA_4096, SYMMETRIC_DEFAULT, HMAC_256, HMAC_224, HMAC_512, SM2, ECC_NIST_EDWARDS25519, ML_DSA_44, ML_DSA_65, ML_DSA_87, ML_KEM_512, ML_KEM_768, ML_KEM_1024]';

const validation1 = (item: string) => `1 validation error detected: ${item}`;

describe('Key lifecycle, tags and public keys through @aws-sdk/client-kms', function () {
  this.timeout(60_000);
  let gw: GatewayProcess;
  let kms: KMSClient;

  const send = {
    createKey: (input: CreateKeyCommandInput = {}) => kms.send(new CreateKeyCommand(input)),
    describe: (KeyId: string) => kms.send(new DescribeKeyCommand({ KeyId })),
    enable: (KeyId: string) => kms.send(new EnableKeyCommand({ KeyId })),
    disable: (KeyId: string) => kms.send(new DisableKeyCommand({ KeyId })),
    schedule: (KeyId: string, PendingWindowInDays?: number) => kms.send(new ScheduleKeyDeletionCommand({ KeyId, PendingWindowInDays })),
    cancel: (KeyId: string) => kms.send(new CancelKeyDeletionCommand({ KeyId })),
    describeText: (KeyId: string, Description: string) => kms.send(new UpdateKeyDescriptionCommand({ KeyId, Description })),
    encrypt: (KeyId: string) => kms.send(new EncryptCommand({ KeyId, Plaintext: new Uint8Array(randomBytes(32)) })),
    tag: (KeyId: string, Tags: Tag[]) => kms.send(new TagResourceCommand({ KeyId, Tags })),
    untag: (KeyId: string, TagKeys: string[]) => kms.send(new UntagResourceCommand({ KeyId, TagKeys })),
    listTags: (KeyId: string, Limit?: number, Marker?: string) => kms.send(new ListResourceTagsCommand({ KeyId, Limit, Marker })),
    publicKey: (KeyId: string) => kms.send(new GetPublicKeyCommand({ KeyId })),
  };

  /** Every key id ListKeys gives, following NextMarker. */
  async function listAllKeyIds(limit?: number): Promise<string[]> {
    const ids: string[] = [];
    let marker: string | undefined;
    do {
      const page = await kms.send(new ListKeysCommand({ Limit: limit, Marker: marker }));
      for (const k of page.Keys ?? []) {
        expect(k.KeyArn).to.equal(keyArn(k.KeyId as string));
        ids.push(k.KeyId as string);
      }
      marker = page.Truncated === true ? page.NextMarker : undefined;
    } while (marker !== undefined);
    return ids;
  }

  async function newKey(input: CreateKeyCommandInput = {}): Promise<KeyMetadata> {
    return (await send.createKey(input)).KeyMetadata as KeyMetadata;
  }

  async function expectRoundTrip(keyId: string, spec: string): Promise<void> {
    const plaintext = new Uint8Array(randomBytes(100));
    const EncryptionAlgorithm = spec === 'SYMMETRIC_DEFAULT' ? 'SYMMETRIC_DEFAULT' : 'RSAES_OAEP_SHA_256';
    const enc = await kms.send(new EncryptCommand({ KeyId: keyId, Plaintext: plaintext, EncryptionAlgorithm }));
    const dec = await kms.send(
      new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob, KeyId: spec === 'SYMMETRIC_DEFAULT' ? undefined : keyId, EncryptionAlgorithm }),
    );
    expect(Buffer.from(dec.Plaintext as Uint8Array).equals(Buffer.from(plaintext))).to.equal(true);
    expect(dec.KeyId).to.equal(keyArn(keyId.startsWith('arn:') ? (keyId.split('/')[1] as string) : keyId));
  }

  before(async function () {
    const config = defaultConfig();
    (config['keys'] as unknown[]).push({
      keyId: DISABLED,
      aliases: ['alias/lifecycle-disabled'],
      keySpec: 'SYMMETRIC_DEFAULT',
      description: 'disabled in the config table',
      enabled: false,
      pkcs11: { label: 'kmsgw-lifecycle-disabled' },
      createIfMissing: true,
    });
    gw = await startGateway({ config });
    kms = kmsClient(gw.url);
  });

  after(async function () {
    kms?.destroy();
    await gw?.stop();
  });

  describe('CreateKey', function () {
    it('creates an enabled SYMMETRIC_DEFAULT ENCRYPT_DECRYPT key by default, described as AWS describes one', async function () {
      const before = Date.now();
      const md = await newKey();
      expect(md.KeyId).to.match(UUID);
      expect(md).to.deep.include({
        AWSAccountId: ACCOUNT,
        Arn: keyArn(md.KeyId as string),
        Enabled: true,
        Description: '',
        KeyUsage: 'ENCRYPT_DECRYPT',
        KeyState: 'Enabled',
        Origin: 'AWS_KMS',
        KeyManager: 'CUSTOMER',
        CustomerMasterKeySpec: 'SYMMETRIC_DEFAULT',
        KeySpec: 'SYMMETRIC_DEFAULT',
        MultiRegion: false,
      });
      expect(md.EncryptionAlgorithms).to.deep.equal(SYMMETRIC_ALGORITHMS);
      expect(md.CurrentKeyMaterialId).to.match(/^[0-9a-f]{64}$/);
      expect(md.DeletionDate).to.equal(undefined);
      const created = (md.CreationDate as Date).getTime();
      expect(created).to.be.within(before - 2000, Date.now() + 2000);
      await expectRoundTrip(md.KeyId as string, 'SYMMETRIC_DEFAULT');
    });

    it('sends dates as epoch seconds (JSON numbers) on the wire', async function () {
      const md = await newKey({ Description: 'wire' });
      const raw = await rawRequest(gw.url, { target: 'TrentService.DescribeKey', body: JSON.stringify({ KeyId: md.KeyId }) });
      expect(raw.status).to.equal(200);
      const wire = raw.body?.['KeyMetadata'] as Record<string, unknown>;
      expect(wire['CreationDate']).to.be.a('number');
      expect(Math.abs((wire['CreationDate'] as number) * 1000 - (md.CreationDate as Date).getTime())).to.be.below(1);
    });

    it('keeps Description and Tags, and ignores Policy and BypassPolicyLockoutSafetyCheck (no key policies yet)', async function () {
      const md = await newKey({
        Description: 'payroll',
        Tags: [
          { TagKey: 'Purpose', TagValue: 'Test' },
          { TagKey: 'CostCenter', TagValue: '' },
        ],
        Policy: '{"Version":"2012-10-17","Statement":[]}',
        BypassPolicyLockoutSafetyCheck: true,
      });
      expect(md.Description).to.equal('payroll');
      const tags = await send.listTags(md.KeyId as string);
      expect(tags.Tags).to.deep.equal([
        { TagKey: 'CostCenter', TagValue: '' },
        { TagKey: 'Purpose', TagValue: 'Test' },
      ]);
      expect(tags.Truncated).to.equal(false);
    });

    for (const [spec, input] of [
      ['RSA_2048', { CustomerMasterKeySpec: 'RSA_2048', KeyUsage: 'ENCRYPT_DECRYPT' }],
      ['RSA_3072', { KeySpec: 'RSA_3072', KeyUsage: 'ENCRYPT_DECRYPT' }],
      ['RSA_4096', { KeySpec: 'RSA_4096', KeyUsage: 'ENCRYPT_DECRYPT' }],
    ] as const) {
      it(`creates an ${spec} ENCRYPT_DECRYPT key (${Object.keys(input)[0]}) that encrypts and decrypts with OAEP`, async function () {
        const md = await newKey(input);
        expect(md).to.deep.include({ KeySpec: spec, CustomerMasterKeySpec: spec, KeyUsage: 'ENCRYPT_DECRYPT', KeyState: 'Enabled' });
        expect(md.EncryptionAlgorithms).to.deep.equal(RSA_ALGORITHMS);
        expect(md.CurrentKeyMaterialId).to.equal(undefined);
        await expectRoundTrip(md.KeyId as string, spec);
      });
    }

    describe('refusals (nothing is created)', function () {
      let keysBefore: number;
      before(async function () {
        keysBefore = (await listAllKeyIds()).length;
      });
      after(async function () {
        expect((await listAllKeyIds()).length, 'keys after the refused CreateKey calls').to.equal(keysBefore);
      });

      const refusals: Array<[string, CreateKeyCommandInput, string, string?]> = [
        [
          'KeySpec and CustomerMasterKeySpec together',
          { KeySpec: 'RSA_2048', CustomerMasterKeySpec: 'RSA_2048', KeyUsage: 'ENCRYPT_DECRYPT' },
          'ValidationException',
          'You cannot specify KeySpec and CustomerMasterKeySpec in the same request. CustomerMasterKeySpec is deprecated.',
        ],
        [
          'an RSA key without KeyUsage',
          { KeySpec: 'RSA_2048' },
          'ValidationException',
          'You must specify a KeyUsage value for all KMS keys except for symmetric encryption keys.',
        ],
        [
          'a SYMMETRIC_DEFAULT key for SIGN_VERIFY',
          { KeyUsage: 'SIGN_VERIFY' },
          'ValidationException',
          'The operation failed because the KeyUsage value of the CMK is SIGN_VERIFY. To perform this operation, the KeyUsage value must be ENCRYPT_DECRYPT.',
        ],
        [
          'an RSA key for GENERATE_VERIFY_MAC',
          { KeySpec: 'RSA_2048', KeyUsage: 'GENERATE_VERIFY_MAC' },
          'ValidationException',
          'KeyUsage GENERATE_VERIFY_MAC is not compatible with KeySpec RSA_2048',
        ],
        [
          'a KeySpec outside the model',
          { KeySpec: 'AES_256' as never },
          'ValidationException',
          validation1(`Value 'AES_256' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set: ${KEY_SPEC_ENUM}`),
        ],
        [
          'a KeyUsage outside the model',
          { KeyUsage: 'RANDOM' as never },
          'ValidationException',
          validation1(
            "Value 'RANDOM' at 'keyUsage' failed to satisfy constraint: Member must satisfy enum value set: [ENCRYPT_DECRYPT, SIGN_VERIFY, GENERATE_VERIFY_MAC, KEY_AGREEMENT, ENCAPSULATE_DECAPSULATE]",
          ),
        ],
        [
          'a description of 8193 characters',
          { Description: 'd'.repeat(8193) },
          'ValidationException',
          validation1(`Value '${'d'.repeat(8193)}' at 'description' failed to satisfy constraint: Member must have length less than or equal to 8192`),
        ],
        [
          'an empty tag key',
          { Tags: [{ TagKey: '', TagValue: 'v' }] },
          'ValidationException',
          validation1("Value '' at 'tags.1.member.tagKey' failed to satisfy constraint: Member must have length greater than or equal to 1"),
        ],
        [
          'a tag key of 129 characters',
          { Tags: [{ TagKey: 'ok', TagValue: 'v' }, { TagKey: 'k'.repeat(129), TagValue: 'v' }] },
          'ValidationException',
          validation1(`Value '${'k'.repeat(129)}' at 'tags.2.member.tagKey' failed to satisfy constraint: Member must have length less than or equal to 128`),
        ],
        [
          'a tag value of 257 characters',
          { Tags: [{ TagKey: 'k', TagValue: 'v'.repeat(257) }] },
          'ValidationException',
          validation1(`Value '${'v'.repeat(257)}' at 'tags.1.member.tagValue' failed to satisfy constraint: Member must have length less than or equal to 256`),
        ],
        ['a tag key given twice', { Tags: [{ TagKey: 'k', TagValue: '1' }, { TagKey: 'k', TagValue: '2' }] }, 'TagException', 'Duplicate tag keys'],
        [
          '51 tags',
          { Tags: Array.from({ length: 51 }, (_, i) => ({ TagKey: `k${i}`, TagValue: '' })) },
          'TagException',
          'Too many tags',
        ],
        ['a tag key with the reserved aws: prefix', { Tags: [{ TagKey: 'aws:owner', TagValue: 'me' }] }, 'TagException', 'Tags beginning with aws: are reserved'],
        ['a tag key with the reserved prefix in capitals', { Tags: [{ TagKey: 'AWS:owner', TagValue: 'me' }] }, 'TagException', 'Tags beginning with aws: are reserved'],
        ['an ECC signing key', { KeySpec: 'ECC_NIST_P256', KeyUsage: 'SIGN_VERIFY' }, 'UnsupportedOperationException'],
        ['an ECC key-agreement key', { KeySpec: 'ECC_NIST_P384', KeyUsage: 'KEY_AGREEMENT' }, 'UnsupportedOperationException'],
        ['an HMAC key', { KeySpec: 'HMAC_256', KeyUsage: 'GENERATE_VERIFY_MAC' }, 'UnsupportedOperationException'],
        ['an SM2 key', { KeySpec: 'SM2', KeyUsage: 'ENCRYPT_DECRYPT' }, 'UnsupportedOperationException'],
        ['an ML-DSA key', { KeySpec: 'ML_DSA_65', KeyUsage: 'SIGN_VERIFY' }, 'UnsupportedOperationException'],
        ['an RSA signing key', { KeySpec: 'RSA_3072', KeyUsage: 'SIGN_VERIFY' }, 'UnsupportedOperationException'],
        ['Origin EXTERNAL', { Origin: 'EXTERNAL' }, 'UnsupportedOperationException'],
        ['Origin AWS_CLOUDHSM', { Origin: 'AWS_CLOUDHSM' }, 'UnsupportedOperationException'],
        ['Origin EXTERNAL_KEY_STORE', { Origin: 'EXTERNAL_KEY_STORE' }, 'UnsupportedOperationException'],
        ['a multi-Region key', { MultiRegion: true }, 'UnsupportedOperationException', 'Multi-Region keys are not supported by this gateway.'],
        ['a custom key store', { CustomKeyStoreId: 'cks-1234567890abcdef0' }, 'CustomKeyStoreNotFoundException'],
      ];
      for (const [what, input, name, message] of refusals) {
        it(`answers ${name} for ${what}`, async function () {
          const err = await failure(send.createKey(input));
          expectClientError(err, name, message);
          if (name === 'UnsupportedOperationException') expect(err.message).to.match(/not supported by this gateway/);
        });
      }

      it('accepts Origin AWS_KMS and MultiRegion false (and creates that key)', async function () {
        const md = await newKey({ Origin: 'AWS_KMS', MultiRegion: false });
        expect(md.Origin).to.equal('AWS_KMS');
        keysBefore += 1;
      });
    });
  });

  describe('DescribeKey', function () {
    for (const demo of DEMO) {
      it(`describes the config table's ${demo.spec} key ${demo.alias} like a created one`, async function () {
        const md = (await send.describe(demo.alias)).KeyMetadata as KeyMetadata;
        expect(md).to.deep.include({
          AWSAccountId: ACCOUNT,
          KeyId: demo.keyId,
          Arn: keyArn(demo.keyId),
          Enabled: true,
          Description: demo.description,
          KeyUsage: 'ENCRYPT_DECRYPT',
          KeyState: 'Enabled',
          Origin: 'AWS_KMS',
          KeyManager: 'CUSTOMER',
          CustomerMasterKeySpec: demo.spec,
          KeySpec: demo.spec,
          MultiRegion: false,
        });
        expect(md.EncryptionAlgorithms).to.deep.equal(demo.spec === 'SYMMETRIC_DEFAULT' ? SYMMETRIC_ALGORITHMS : RSA_ALGORITHMS);
        expect(md.CreationDate).to.be.instanceOf(Date);
      });
    }

    it('gives the same metadata for all four KeyId forms', async function () {
      const { keyId, alias } = DEMO[1];
      const forms = [keyId, keyArn(keyId), alias, `arn:aws:kms:${REGION}:${ACCOUNT}:${alias}`];
      const described = await Promise.all(forms.map(async (f) => (await send.describe(f)).KeyMetadata));
      for (const md of described) expect(md).to.deep.equal(described[0]);
    });

    it('describes a key disabled in the config table as Disabled', async function () {
      const md = (await send.describe('alias/lifecycle-disabled')).KeyMetadata as KeyMetadata;
      expect(md).to.deep.include({ KeyId: DISABLED, KeyState: 'Disabled', Enabled: false, Description: 'disabled in the config table' });
    });

    it(`answers NotFoundException "Key '<arn>' does not exist" for an unknown key`, async function () {
      const unknown = '6a7b8c9d-0e1f-4a2b-8c3d-4e5f6a7b8cff';
      expectClientError(await failure(send.describe(unknown)), 'NotFoundException', `Key '${keyArn(unknown)}' does not exist`);
    });

    it('answers NotFoundException "Alias <alias-arn> is not found." for an unknown alias', async function () {
      expectClientError(
        await failure(send.describe('alias/nope')),
        'NotFoundException',
        `Alias arn:aws:kms:${REGION}:${ACCOUNT}:alias/nope is not found.`,
      );
    });

    it('answers ValidationException for 11 grant tokens', async function () {
      const GrantTokens = Array.from({ length: 11 }, (_, i) => `token-${i}`);
      expectClientError(
        await failure(kms.send(new DescribeKeyCommand({ KeyId: DEMO[0].keyId, GrantTokens }))),
        'ValidationException',
        validation1(`Value '[${GrantTokens.join(', ')}]' at 'grantTokens' failed to satisfy constraint: Member must have length less than or equal to 10`),
      );
    });

    it(`answers NotFoundException "Key '<arn>' does not exist" to every key operation for an unknown key`, async function () {
      const unknown = '6a7b8c9d-0e1f-4a2b-8c3d-4e5f6a7b8cfe';
      const calls: Array<[string, () => Promise<unknown>]> = [
        ['DescribeKey', () => send.describe(unknown)],
        ['EnableKey', () => send.enable(unknown)],
        ['DisableKey', () => send.disable(unknown)],
        ['UpdateKeyDescription', () => send.describeText(unknown, 'x')],
        ['ScheduleKeyDeletion', () => send.schedule(unknown, 7)],
        ['CancelKeyDeletion', () => send.cancel(unknown)],
        ['GetPublicKey', () => send.publicKey(unknown)],
        ['TagResource', () => send.tag(unknown, [{ TagKey: 'a', TagValue: 'b' }])],
        ['UntagResource', () => send.untag(unknown, ['a'])],
        ['ListResourceTags', () => send.listTags(unknown)],
      ];
      for (const [op, call] of calls) {
        const err = await failure(call());
        expect(err.name, op).to.equal('NotFoundException');
        expect(err.message, op).to.equal(`Key '${keyArn(unknown)}' does not exist`);
      }
    });

    it('answers ValidationException for an empty KeyId', async function () {
      expectClientError(
        await failure(send.describe('')),
        'ValidationException',
        validation1("Value '' at 'keyId' failed to satisfy constraint: Member must have length greater than or equal to 1"),
      );
    });
  });

  describe('ListKeys', function () {
    let created: string[];
    before(async function () {
      created = [];
      for (let i = 0; i < 5; i++) created.push((await newKey({ Description: `list ${i}` })).KeyId as string);
    });

    it('pages with Limit 3 over more than two pages, every key exactly once, oldest first', async function () {
      const pages: string[][] = [];
      let marker: string | undefined;
      for (;;) {
        const page = await kms.send(new ListKeysCommand({ Limit: 3, Marker: marker }));
        pages.push((page.Keys ?? []).map((k) => k.KeyId as string));
        expect(page.Keys?.length).to.be.at.most(3);
        if (page.Truncated !== true) {
          expect(page.NextMarker).to.equal(undefined);
          break;
        }
        expect(page.NextMarker).to.be.a('string');
        marker = page.NextMarker;
      }
      expect(pages.length).to.be.above(2);
      const ids = pages.flat();
      expect(new Set(ids).size).to.equal(ids.length);
      expect(ids).to.include.members([...DEMO.map((d) => d.keyId), DISABLED, ...created]);
      expect(ids.slice(-5)).to.have.members(created);
      expect(await listAllKeyIds()).to.deep.equal(ids);
    });

    it('answers Truncated false and no NextMarker when everything fits (default Limit 100)', async function () {
      const page = await kms.send(new ListKeysCommand({}));
      expect(page.Truncated).to.equal(false);
      expect(page.NextMarker).to.equal(undefined);
    });

    it('answers ValidationException for Limit 0 and Limit 1001', async function () {
      expectClientError(
        await failure(kms.send(new ListKeysCommand({ Limit: 0 }))),
        'ValidationException',
        validation1("Value '0' at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1"),
      );
      expectClientError(
        await failure(kms.send(new ListKeysCommand({ Limit: 1001 }))),
        'ValidationException',
        validation1("Value '1001' at 'limit' failed to satisfy constraint: Member must have value less than or equal to 1000"),
      );
    });

    it('answers InvalidMarkerException for a marker it did not issue', async function () {
      expectClientError(await failure(kms.send(new ListKeysCommand({ Marker: 'bm90LWEta2V5' }))), 'InvalidMarkerException');
    });
  });

  describe('the key state machine', function () {
    let keyId: string;
    let arn: string;
    let ciphertext: Uint8Array;

    before(async function () {
      keyId = (await newKey({ Description: 'state machine' })).KeyId as string;
      arn = keyArn(keyId);
      ciphertext = (await send.encrypt(keyId)).CiphertextBlob as Uint8Array;
    });

    const state = async () => (await send.describe(keyId)).KeyMetadata as KeyMetadata;

    it('disables the key (twice: DisableKey is idempotent); Encrypt and Decrypt then answer DisabledException', async function () {
      await send.disable(keyId);
      await send.disable(arn);
      expect(await state()).to.deep.include({ KeyState: 'Disabled', Enabled: false });
      expectClientError(await failure(send.encrypt(keyId)), 'DisabledException', `${arn} is disabled.`);
      expectClientError(await failure(kms.send(new DecryptCommand({ CiphertextBlob: ciphertext }))), 'DisabledException', `${arn} is disabled.`);
    });

    it('enables it again (twice: EnableKey is idempotent); it encrypts and decrypts', async function () {
      await send.enable(keyId);
      await send.enable(keyId);
      expect(await state()).to.deep.include({ KeyState: 'Enabled', Enabled: true });
      await send.encrypt(keyId);
      await kms.send(new DecryptCommand({ CiphertextBlob: ciphertext }));
    });

    it('schedules its deletion in 7 days: KeyId (ARN), DeletionDate, KeyState PendingDeletion, PendingWindowInDays', async function () {
      const before = Date.now();
      const res = await send.schedule(keyId, 7);
      expect(res.KeyId).to.equal(arn);
      expect(res.KeyState).to.equal('PendingDeletion');
      expect(res.PendingWindowInDays).to.equal(7);
      expect((res.DeletionDate as Date).getTime()).to.be.within(before + 7 * DAY_MS - 2000, Date.now() + 7 * DAY_MS + 2000);
      const md = await state();
      expect(md).to.deep.include({ KeyState: 'PendingDeletion', Enabled: false });
      expect((md.DeletionDate as Date).getTime()).to.equal((res.DeletionDate as Date).getTime());
      // The model: PendingDeletionWindowInDays is "present only when the KeyState ... is PendingReplicaDeletion".
      expect(md.PendingDeletionWindowInDays).to.equal(undefined);
    });

    it('lists the key pending deletion', async function () {
      expect(await listAllKeyIds()).to.include(keyId);
    });

    it('answers KMSInvalidStateException "<arn> is pending deletion." to Encrypt, Decrypt and every state change', async function () {
      const pending = `${arn} is pending deletion.`;
      expectClientError(await failure(send.encrypt(keyId)), 'KMSInvalidStateException', pending);
      expectClientError(await failure(kms.send(new DecryptCommand({ CiphertextBlob: ciphertext }))), 'KMSInvalidStateException', pending);
      expectClientError(await failure(send.enable(keyId)), 'KMSInvalidStateException', pending);
      expectClientError(await failure(send.disable(keyId)), 'KMSInvalidStateException', pending);
      expectClientError(await failure(send.describeText(keyId, 'x')), 'KMSInvalidStateException', pending);
      expectClientError(await failure(send.tag(keyId, [{ TagKey: 'a', TagValue: 'b' }])), 'KMSInvalidStateException', pending);
      expectClientError(await failure(send.untag(keyId, ['a'])), 'KMSInvalidStateException', pending);
      expectClientError(await failure(send.schedule(keyId, 10)), 'KMSInvalidStateException', pending);
      expect((await send.listTags(keyId)).Tags).to.deep.equal([]);
    });

    it('cancels the deletion: {KeyId (ARN)}, and the key is Disabled with no DeletionDate', async function () {
      const res = await send.cancel(keyId);
      expect(res.KeyId).to.equal(arn);
      const md = await state();
      expect(md).to.deep.include({ KeyState: 'Disabled', Enabled: false });
      expect(md.DeletionDate).to.equal(undefined);
      expectClientError(await failure(send.encrypt(keyId)), 'DisabledException', `${arn} is disabled.`);
    });

    it('answers KMSInvalidStateException "<arn> is not pending deletion." to a second CancelKeyDeletion', async function () {
      expectClientError(await failure(send.cancel(keyId)), 'KMSInvalidStateException', `${arn} is not pending deletion.`);
    });

    it('enables the key again: its old ciphertext decrypts and it encrypts', async function () {
      await send.enable(keyId);
      const dec = await kms.send(new DecryptCommand({ CiphertextBlob: ciphertext }));
      expect(dec.KeyId).to.equal(arn);
      await send.encrypt(keyId);
    });
  });

  describe('ScheduleKeyDeletion windows', function () {
    let keyId: string;
    before(async function () {
      keyId = (await newKey({ Description: 'windows' })).KeyId as string;
    });
    afterEach(async function () {
      if (((await send.describe(keyId)).KeyMetadata as KeyMetadata).KeyState === 'PendingDeletion') await send.cancel(keyId);
    });

    it('defaults to 30 days', async function () {
      const before = Date.now();
      const res = await send.schedule(keyId);
      expect(res.PendingWindowInDays).to.equal(30);
      expect((res.DeletionDate as Date).getTime()).to.be.within(before + 30 * DAY_MS - 2000, Date.now() + 30 * DAY_MS + 2000);
    });

    for (const days of [6, 31, 365]) {
      it(`answers ValidationException "PendingWindowInDays must be between 7 and 30" for ${days}`, async function () {
        expectClientError(await failure(send.schedule(keyId, days)), 'ValidationException', 'PendingWindowInDays must be between 7 and 30');
      });
    }

    it("answers the model's ValidationException for 0 and 366, and changes nothing", async function () {
      const before = (await send.describe(keyId)).KeyMetadata;
      expectClientError(
        await failure(send.schedule(keyId, 0)),
        'ValidationException',
        validation1("Value '0' at 'pendingWindowInDays' failed to satisfy constraint: Member must have value greater than or equal to 1"),
      );
      expectClientError(
        await failure(send.schedule(keyId, 366)),
        'ValidationException',
        validation1("Value '366' at 'pendingWindowInDays' failed to satisfy constraint: Member must have value less than or equal to 365"),
      );
      expect((await send.describe(keyId)).KeyMetadata).to.deep.equal(before);
    });
  });

  describe('UpdateKeyDescription', function () {
    it('replaces the description, and clears it with the empty string', async function () {
      const keyId = (await newKey({ Description: 'old' })).KeyId as string;
      await send.describeText(keyId, 'new');
      expect(((await send.describe(keyId)).KeyMetadata as KeyMetadata).Description).to.equal('new');
      await send.describeText(keyId, '');
      expect(((await send.describe(keyId)).KeyMetadata as KeyMetadata).Description).to.equal('');
    });

    it('updates a disabled key too', async function () {
      await send.describeText(DISABLED, 'disabled in the config table');
    });

    it('answers ValidationException for 8193 characters and for a missing Description', async function () {
      expectClientError(
        await failure(send.describeText(DEMO[0].keyId, 'x'.repeat(8193))),
        'ValidationException',
        validation1(`Value '${'x'.repeat(8193)}' at 'description' failed to satisfy constraint: Member must have length less than or equal to 8192`),
      );
      const raw = await rawRequest(gw.url, { target: 'TrentService.UpdateKeyDescription', body: JSON.stringify({ KeyId: DEMO[0].keyId }) });
      expect(raw.status).to.equal(400);
      expect(raw.body).to.deep.equal({
        __type: 'ValidationException',
        message: validation1("Value null at 'description' failed to satisfy constraint: Member must not be null"),
      });
    });
  });

  describe('GetPublicKey', function () {
    for (const demo of DEMO.slice(1)) {
      it(`gives ${demo.alias}'s public key as DER SPKI; node:crypto encrypts with it and the gateway decrypts (OAEP SHA-256 and SHA-1)`, async function () {
        const res = await send.publicKey(demo.alias);
        expect(res).to.deep.include({ KeyId: keyArn(demo.keyId), KeySpec: demo.spec, CustomerMasterKeySpec: demo.spec, KeyUsage: 'ENCRYPT_DECRYPT' });
        expect(res.EncryptionAlgorithms).to.deep.equal(RSA_ALGORITHMS);
        const pub = createPublicKey({ key: Buffer.from(res.PublicKey as Uint8Array), format: 'der', type: 'spki' });
        expect(pub.asymmetricKeyDetails?.modulusLength).to.equal(Number(demo.spec.slice(4)));
        for (const [oaepHash, EncryptionAlgorithm] of [
          ['sha256', 'RSAES_OAEP_SHA_256'],
          ['sha1', 'RSAES_OAEP_SHA_1'],
        ] as const) {
          const plaintext = randomBytes(64);
          const CiphertextBlob = publicEncrypt({ key: pub, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash }, plaintext);
          const dec = await kms.send(new DecryptCommand({ KeyId: demo.keyId, CiphertextBlob, EncryptionAlgorithm }));
          expect(Buffer.from(dec.Plaintext as Uint8Array).equals(plaintext)).to.equal(true);
        }
      });
    }

    it('gives the public key of a created RSA key, by key ARN', async function () {
      const md = await newKey({ KeySpec: 'RSA_2048', KeyUsage: 'ENCRYPT_DECRYPT' });
      const res = await send.publicKey(md.Arn as string);
      const pub = createPublicKey({ key: Buffer.from(res.PublicKey as Uint8Array), format: 'der', type: 'spki' });
      const plaintext = randomBytes(32);
      const CiphertextBlob = publicEncrypt({ key: pub, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, plaintext);
      const dec = await kms.send(new DecryptCommand({ KeyId: md.KeyId, CiphertextBlob, EncryptionAlgorithm: 'RSAES_OAEP_SHA_256' }));
      expect(Buffer.from(dec.Plaintext as Uint8Array).equals(plaintext)).to.equal(true);
    });

    it('answers UnsupportedOperationException for a symmetric key', async function () {
      const err = await failure(send.publicKey(DEMO[0].alias));
      expectClientError(err, 'UnsupportedOperationException', `${keyArn(DEMO[0].keyId)} key spec is SYMMETRIC_DEFAULT which is not valid for GetPublicKey.`);
    });

    it('answers DisabledException for a disabled RSA key and KMSInvalidStateException for one pending deletion', async function () {
      const md = await newKey({ KeySpec: 'RSA_2048', KeyUsage: 'ENCRYPT_DECRYPT' });
      await send.disable(md.KeyId as string);
      expectClientError(await failure(send.publicKey(md.KeyId as string)), 'DisabledException', `${md.Arn} is disabled.`);
      await send.schedule(md.KeyId as string, 7);
      expectClientError(await failure(send.publicKey(md.KeyId as string)), 'KMSInvalidStateException', `${md.Arn} is pending deletion.`);
    });
  });

  describe('TagResource, UntagResource, ListResourceTags', function () {
    let keyId: string;
    beforeEach(async function () {
      keyId = (await newKey({ Description: 'tags', Tags: [{ TagKey: 'Purpose', TagValue: 'Test' }] })).KeyId as string;
    });

    it('adds tags and overwrites the value of an existing tag key; lists them sorted by tag key', async function () {
      await send.tag(keyId, [
        { TagKey: 'purpose', TagValue: 'lower case is another key' },
        { TagKey: 'Purpose', TagValue: 'Prod' },
        { TagKey: 'CreatedBy', TagValue: 'ExampleUser' },
      ]);
      expect((await send.listTags(keyId)).Tags).to.deep.equal([
        { TagKey: 'CreatedBy', TagValue: 'ExampleUser' },
        { TagKey: 'Purpose', TagValue: 'Prod' },
        { TagKey: 'purpose', TagValue: 'lower case is another key' },
      ]);
    });

    it('tags by alias and untags by alias ARN (all four KeyId forms work)', async function () {
      const res = await kms.send(new ListResourceTagsCommand({ KeyId: keyArn(keyId) }));
      expect(res.Tags).to.deep.equal([{ TagKey: 'Purpose', TagValue: 'Test' }]);
      await send.tag('alias/lifecycle-disabled', [{ TagKey: 'Team', TagValue: 'crypto' }]);
      expect((await send.listTags(DISABLED)).Tags).to.deep.include({ TagKey: 'Team', TagValue: 'crypto' });
      await send.untag(`arn:aws:kms:${REGION}:${ACCOUNT}:alias/lifecycle-disabled`, ['Team']);
      expect((await send.listTags(DISABLED)).Tags).to.deep.equal([]);
    });

    it('untags, and ignores tag keys the key does not have', async function () {
      await send.tag(keyId, [{ TagKey: 'Keep', TagValue: '1' }]);
      await send.untag(keyId, ['Purpose', 'NotThere']);
      expect((await send.listTags(keyId)).Tags).to.deep.equal([{ TagKey: 'Keep', TagValue: '1' }]);
    });

    it('pages 50 tags with Limit 20, and never gives more than 50 in one page', async function () {
      await send.tag(keyId, Array.from({ length: 49 }, (_, i) => ({ TagKey: `t${String(i).padStart(2, '0')}`, TagValue: String(i) })));
      const keys: string[] = [];
      let marker: string | undefined;
      let pages = 0;
      do {
        const page = await send.listTags(keyId, 20, marker);
        pages += 1;
        keys.push(...(page.Tags ?? []).map((t) => t.TagKey as string));
        marker = page.Truncated === true ? page.NextMarker : undefined;
      } while (marker !== undefined);
      expect(pages).to.equal(3);
      expect(keys).to.have.length(50);
      expect(keys).to.deep.equal([...keys].sort());
      const all = await send.listTags(keyId, 1000);
      expect(all.Tags).to.have.length(50);
      expect(all.Truncated).to.equal(false);
    });

    it('answers LimitExceededException when the key would have more than 50 tags', async function () {
      await send.tag(keyId, Array.from({ length: 49 }, (_, i) => ({ TagKey: `t${i}`, TagValue: '' })));
      expectClientError(await failure(send.tag(keyId, [{ TagKey: 'one-too-many', TagValue: '' }])), 'LimitExceededException');
      expect((await send.listTags(keyId)).Tags).to.have.length(50);
    });

    it('answers TagException for the reserved aws: prefix, duplicate keys and more than 50 tags in a request', async function () {
      expectClientError(await failure(send.tag(keyId, [{ TagKey: 'aws:x', TagValue: '' }])), 'TagException', 'Tags beginning with aws: are reserved');
      expectClientError(await failure(send.untag(keyId, ['aws:x'])), 'TagException', 'Tags beginning with aws: are reserved');
      expectClientError(
        await failure(send.tag(keyId, [{ TagKey: 'a', TagValue: '1' }, { TagKey: 'a', TagValue: '2' }])),
        'TagException',
        'Duplicate tag keys',
      );
      expectClientError(
        await failure(send.tag(keyId, Array.from({ length: 51 }, (_, i) => ({ TagKey: `n${i}`, TagValue: '' })))),
        'TagException',
        'Too many tags',
      );
      expect((await send.listTags(keyId)).Tags).to.deep.equal([{ TagKey: 'Purpose', TagValue: 'Test' }]);
    });

    it("answers the model's ValidationException for missing Tags, an empty tag key to remove, and Limit 0", async function () {
      const raw = await rawRequest(gw.url, { target: 'TrentService.TagResource', body: JSON.stringify({ KeyId: keyId }) });
      expect(raw.body).to.deep.equal({
        __type: 'ValidationException',
        message: validation1("Value null at 'tags' failed to satisfy constraint: Member must not be null"),
      });
      expectClientError(
        await failure(send.untag(keyId, [''])),
        'ValidationException',
        validation1("Value '' at 'tagKeys.1.member' failed to satisfy constraint: Member must have length greater than or equal to 1"),
      );
      expectClientError(
        await failure(send.listTags(keyId, 0)),
        'ValidationException',
        validation1("Value '0' at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1"),
      );
    });

    it('answers InvalidMarkerException for a marker it did not issue', async function () {
      expectClientError(await failure(send.listTags(keyId, 10, 'bm9wZQ')), 'InvalidMarkerException');
    });
  });
});
