/**
 * CreateAlias, UpdateAlias, DeleteAlias and ListAliases as an application
 * sees them through @aws-sdk/client-kms, against one real gateway process on
 * a throwaway SoftHSM2 token. Expected texts are AWS's where AWS's are known
 * (see the operations' comments for the sources).
 */
import { expect } from 'chai';
import {
  CreateAliasCommand,
  DeleteAliasCommand,
  EncryptCommand,
  ListAliasesCommand,
  ScheduleKeyDeletionCommand,
  UpdateAliasCommand,
  type AliasListEntry,
  type KMSClient,
  type ListAliasesCommandInput,
} from '@aws-sdk/client-kms';
import { defaultConfig, keyArn, kmsClient, rawRequest, startGateway, tableKey, type GatewayProcess } from '../support/gateway.js';
import { expectClientError, failure } from '../support/sdk-errors.js';

const AES = '0b5e6a1c-7d43-4f0e-9a35-2c8d1e6f4a01';
const RSA_2048 = '0b5e6a1c-7d43-4f0e-9a35-2c8d1e6f4a02';
const RSA_3072 = '0b5e6a1c-7d43-4f0e-9a35-2c8d1e6f4a03';
const AES_B = '6a2e0d1f-1c2b-4a3d-8e4f-5a6b7c8d9e01';
const AES_C = '6a2e0d1f-1c2b-4a3d-8e4f-5a6b7c8d9e02';
const DISABLED = '6a2e0d1f-1c2b-4a3d-8e4f-5a6b7c8d9e03';
const PENDING = '6a2e0d1f-1c2b-4a3d-8e4f-5a6b7c8d9e04';
const UNKNOWN = '6a2e0d1f-1c2b-4a3d-8e4f-5a6b7c8d9eff';
const ALIAS_ARN_PREFIX = 'arn:aws:kms:us-east-1:111122223333:';

const PREFIX_TEXT =
  'Alias must start with the prefix "alias/". Please see https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html';

describe('Aliases through @aws-sdk/client-kms', function () {
  this.timeout(60_000);
  let gw: GatewayProcess;
  let kms: KMSClient;

  const create = (AliasName: string, TargetKeyId: string) => kms.send(new CreateAliasCommand({ AliasName, TargetKeyId }));
  const update = (AliasName: string, TargetKeyId: string) => kms.send(new UpdateAliasCommand({ AliasName, TargetKeyId }));
  const remove = (AliasName: string) => kms.send(new DeleteAliasCommand({ AliasName }));
  const list = (input: ListAliasesCommandInput = {}) => kms.send(new ListAliasesCommand(input));
  const encryptWith = (KeyId: string) => kms.send(new EncryptCommand({ KeyId, Plaintext: new TextEncoder().encode('alias test') }));

  async function allAliases(KeyId?: string): Promise<AliasListEntry[]> {
    const out: AliasListEntry[] = [];
    let Marker: string | undefined;
    do {
      const page = await list({ KeyId, Marker, Limit: 100 });
      out.push(...(page.Aliases ?? []));
      Marker = page.Truncated === true ? page.NextMarker : undefined;
    } while (Marker !== undefined);
    return out;
  }

  const find = async (name: string) => (await allAliases()).find((a) => a.AliasName === name);

  before(async function () {
    const config = defaultConfig();
    const keys = config['keys'] as unknown[];
    const aes = (keyId: string, label: string, enabled = true, aliases: string[] = []) => tableKey(keyId, label, { enabled, aliases });
    keys.push(
      aes(AES_B, 'kmsgw-it-alias-b'),
      aes(AES_C, 'kmsgw-it-alias-c'),
      aes(DISABLED, 'kmsgw-it-alias-disabled', false),
      aes(PENDING, 'kmsgw-it-alias-pending', true, ['alias/it-pending']),
    );
    gw = await startGateway({ config });
    kms = kmsClient(gw.url);
    await kms.send(new ScheduleKeyDeletionCommand({ KeyId: PENDING, PendingWindowInDays: 7 }));
  });

  after(async function () {
    kms?.destroy();
    await gw?.stop();
  });

  describe('CreateAlias', function () {
    it('creates an alias that Encrypt accepts at once, by name and by alias ARN', async function () {
      await create('alias/it-new', AES_B);
      expect((await encryptWith('alias/it-new')).KeyId).to.equal(keyArn(AES_B));
      expect((await encryptWith(`${ALIAS_ARN_PREFIX}alias/it-new`)).KeyId).to.equal(keyArn(AES_B));
    });

    it('lists the new alias with its ARN, the bare key id and its dates', async function () {
      const before = Date.now();
      await create('alias/it-listed', AES_B);
      const entry = await find('alias/it-listed');
      expect(entry?.AliasArn).to.equal(`${ALIAS_ARN_PREFIX}alias/it-listed`);
      expect(entry?.TargetKeyId).to.equal(AES_B);
      expect(entry?.CreationDate).to.be.instanceOf(Date);
      expect(entry?.CreationDate?.getTime()).to.be.within(before - 60_000, Date.now() + 60_000);
      expect(entry?.LastUpdatedDate?.getTime()).to.equal(entry?.CreationDate?.getTime());
    });

    it('accepts the key ARN as TargetKeyId', async function () {
      await create('alias/it-by-arn', keyArn(AES_C));
      expect((await find('alias/it-by-arn'))?.TargetKeyId).to.equal(AES_C);
    });

    it('gives a disabled key an alias (the key stays disabled)', async function () {
      await create('alias/it-on-disabled', DISABLED);
      expectClientError(await failure(encryptWith('alias/it-on-disabled')), 'DisabledException', `${keyArn(DISABLED)} is disabled.`);
    });

    it('answers AlreadyExistsException naming the alias ARN for a name in use, and leaves the alias alone', async function () {
      await create('alias/it-taken', AES_B);
      const err = await failure(create('alias/it-taken', AES_C));
      expectClientError(err, 'AlreadyExistsException', `An alias with the name ${ALIAS_ARN_PREFIX}alias/it-taken already exists`);
      expect((await find('alias/it-taken'))?.TargetKeyId).to.equal(AES_B);
    });

    it('answers AlreadyExistsException for a name the config file gave a key', async function () {
      const err = await failure(create('alias/demo-aes', AES_B));
      expectClientError(err, 'AlreadyExistsException', `An alias with the name ${ALIAS_ARN_PREFIX}alias/demo-aes already exists`);
    });

    for (const target of ['alias/demo-aes', `${ALIAS_ARN_PREFIX}alias/demo-aes`]) {
      it(`answers ValidationException "Aliases must refer to keys. Not aliases" for the target ${target}`, async function () {
        const err = await failure(create('alias/it-to-alias', target));
        expectClientError(err, 'ValidationException', 'Aliases must refer to keys. Not aliases');
        expect(await find('alias/it-to-alias')).to.equal(undefined);
      });
    }

    it(`answers NotFoundException "Key '<arn>' does not exist" for an unknown target and creates nothing`, async function () {
      const err = await failure(create('alias/it-nowhere', UNKNOWN));
      expectClientError(err, 'NotFoundException', `Key '${keyArn(UNKNOWN)}' does not exist`);
      expect(await find('alias/it-nowhere')).to.equal(undefined);
    });

    it('answers KMSInvalidStateException for a target pending deletion', async function () {
      const err = await failure(create('alias/it-doomed', PENDING));
      expectClientError(err, 'KMSInvalidStateException', `${keyArn(PENDING)} is pending deletion.`);
      expect(await find('alias/it-doomed')).to.equal(undefined);
    });

    it(`answers ValidationException with AWS's text for a name without the alias/ prefix`, async function () {
      expectClientError(await failure(create('it-no-prefix', AES_B)), 'ValidationException', PREFIX_TEXT);
    });

    it('answers ValidationException with the model pattern for a name with a space', async function () {
      const err = await failure(create('alias/has space', AES_B));
      expectClientError(
        err,
        'ValidationException',
        "1 validation error detected: Value 'alias/has space' at 'aliasName' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$",
      );
    });

    it('answers ValidationException for a name of 257 characters, and accepts 256', async function () {
      const long = `alias/${'a'.repeat(251)}`;
      const err = await failure(create(long, AES_B));
      expectClientError(
        err,
        'ValidationException',
        `1 validation error detected: Value '${long}' at 'aliasName' failed to satisfy constraint: Member must have length less than or equal to 256`,
      );
      await create(long.slice(0, 256), AES_B);
    });

    it('answers ValidationException "<name> contains invalid characters for an alias" for a colon', async function () {
      expectClientError(await failure(create('alias/a:b', AES_B)), 'ValidationException', 'alias/a:b contains invalid characters for an alias');
    });

    it('answers NotAuthorizedException, with no message on the wire, for the reserved alias/aws/ namespace', async function () {
      const err = await failure(create('alias/aws/it-mine', AES_B));
      expect(err.name).to.equal('NotAuthorizedException');
      expect(err.$metadata.httpStatusCode).to.equal(400);
      const raw = await rawRequest(gw.url, {
        target: 'TrentService.CreateAlias',
        body: JSON.stringify({ AliasName: 'alias/aws/it-mine', TargetKeyId: AES_B }),
      });
      expect(raw.status).to.equal(400);
      expect(raw.body).to.deep.equal({ __type: 'NotAuthorizedException' });
      expect(await find('alias/aws/it-mine')).to.equal(undefined);
    });

    it('answers ValidationException "Member must not be null" without TargetKeyId', async function () {
      const raw = await rawRequest(gw.url, { target: 'TrentService.CreateAlias', body: JSON.stringify({ AliasName: 'alias/it-x' }) });
      expect(raw.status).to.equal(400);
      expect(raw.body).to.deep.equal({
        __type: 'ValidationException',
        message: "1 validation error detected: Value null at 'targetKeyId' failed to satisfy constraint: Member must not be null",
      });
    });
  });

  describe('UpdateAlias', function () {
    it('moves an alias to another key: Encrypt through it uses the new key at once', async function () {
      await create('alias/it-moving', AES_B);
      const created = await find('alias/it-moving');
      await update('alias/it-moving', AES_C);
      expect((await encryptWith('alias/it-moving')).KeyId).to.equal(keyArn(AES_C));
      const moved = await find('alias/it-moving');
      expect(moved?.TargetKeyId).to.equal(AES_C);
      expect(moved?.CreationDate?.getTime()).to.equal(created?.CreationDate?.getTime());
      expect(moved?.LastUpdatedDate?.getTime()).to.be.at.least(created?.LastUpdatedDate?.getTime() ?? Infinity);
    });

    it('lists the alias under its new key only', async function () {
      await create('alias/it-moved-list', AES_B);
      await update('alias/it-moved-list', keyArn(AES_C));
      expect((await allAliases(AES_B)).map((a) => a.AliasName)).to.not.include('alias/it-moved-list');
      expect((await allAliases(AES_C)).map((a) => a.AliasName)).to.include('alias/it-moved-list');
    });

    it('moves an alias between two asymmetric keys with the same key usage (RSA_2048 to RSA_3072)', async function () {
      await create('alias/it-rsa', RSA_2048);
      await update('alias/it-rsa', RSA_3072);
      expect((await find('alias/it-rsa'))?.TargetKeyId).to.equal(RSA_3072);
    });

    it('answers ValidationException for a new target of another type (symmetric to RSA), and changes nothing', async function () {
      await create('alias/it-typed', AES_B);
      const err = await failure(update('alias/it-typed', RSA_2048));
      expectClientError(err, 'ValidationException');
      expect(err.message).to.include(keyArn(RSA_2048));
      expect((await find('alias/it-typed'))?.TargetKeyId).to.equal(AES_B);
    });

    it('answers NotFoundException "Alias <alias-arn> is not found." for an unknown alias', async function () {
      const err = await failure(update('alias/it-never-made', AES_B));
      expectClientError(err, 'NotFoundException', `Alias ${ALIAS_ARN_PREFIX}alias/it-never-made is not found.`);
    });

    it('answers KMSInvalidStateException for a new target pending deletion', async function () {
      await create('alias/it-keeps', AES_B);
      const err = await failure(update('alias/it-keeps', PENDING));
      expectClientError(err, 'KMSInvalidStateException', `${keyArn(PENDING)} is pending deletion.`);
      expect((await find('alias/it-keeps'))?.TargetKeyId).to.equal(AES_B);
    });

    it('answers ValidationException "Aliases must refer to keys. Not aliases" for an alias as the new target', async function () {
      await create('alias/it-upd-alias', AES_B);
      expectClientError(await failure(update('alias/it-upd-alias', 'alias/demo-aes')), 'ValidationException', 'Aliases must refer to keys. Not aliases');
    });

    it(`answers ValidationException with AWS's text for a name without the alias/ prefix`, async function () {
      expectClientError(await failure(update('demo-aes', AES_B)), 'ValidationException', PREFIX_TEXT);
    });
  });

  describe('DeleteAlias', function () {
    it('deletes an alias: it then answers NotFoundException, and the key still works by id', async function () {
      await create('alias/it-short-lived', AES_B);
      await remove('alias/it-short-lived');
      const err = await failure(encryptWith('alias/it-short-lived'));
      expectClientError(err, 'NotFoundException', `Alias ${ALIAS_ARN_PREFIX}alias/it-short-lived is not found.`);
      expect(await find('alias/it-short-lived')).to.equal(undefined);
      expect((await encryptWith(AES_B)).KeyId).to.equal(keyArn(AES_B));
    });

    it('lets the name be used again after deletion', async function () {
      await create('alias/it-reused', AES_B);
      await remove('alias/it-reused');
      await create('alias/it-reused', AES_C);
      expect((await encryptWith('alias/it-reused')).KeyId).to.equal(keyArn(AES_C));
    });

    it('answers NotFoundException "Alias <alias-arn> is not found." for an unknown alias', async function () {
      const err = await failure(remove('alias/it-not-there'));
      expectClientError(err, 'NotFoundException', `Alias ${ALIAS_ARN_PREFIX}alias/it-not-there is not found.`);
    });

    it('deletes the alias of a key pending deletion', async function () {
      expect((await allAliases(PENDING)).map((a) => a.AliasName)).to.deep.equal(['alias/it-pending']);
      await remove('alias/it-pending');
      expect(await allAliases(PENDING)).to.deep.equal([]);
    });

    it(`answers ValidationException with AWS's text for a name without the alias/ prefix`, async function () {
      expectClientError(await failure(remove('demo-aes')), 'ValidationException', PREFIX_TEXT);
    });
  });

  describe('ListAliases', function () {
    it('lists the config file aliases, sorted by name', async function () {
      const all = await allAliases();
      const names = all.map((a) => a.AliasName as string);
      expect(names).to.include.members(['alias/demo-aes', 'alias/demo-rsa-2048', 'alias/demo-rsa-3072', 'alias/demo-rsa-4096']);
      expect(names).to.deep.equal([...names].sort());
      expect(all.find((a) => a.AliasName === 'alias/demo-aes')?.TargetKeyId).to.equal(AES);
    });

    it('lists only the aliases of the key named by KeyId, in any of the four forms', async function () {
      await create('alias/it-filter-1', AES_C);
      await create('alias/it-filter-2', AES_C);
      for (const form of [AES_C, keyArn(AES_C), 'alias/it-filter-1', `${ALIAS_ARN_PREFIX}alias/it-filter-2`]) {
        const page = await list({ KeyId: form });
        expect(page.Aliases?.every((a) => a.TargetKeyId === AES_C), form).to.equal(true);
        expect(page.Aliases?.map((a) => a.AliasName)).to.include.members(['alias/it-filter-1', 'alias/it-filter-2']);
      }
      expect((await list({ KeyId: RSA_2048 })).Aliases?.map((a) => a.AliasName)).to.not.include('alias/it-filter-1');
    });

    it('pages with Limit and Marker through every alias exactly once', async function () {
      const everything = (await allAliases()).map((a) => a.AliasName);
      const seen: Array<string | undefined> = [];
      let Marker: string | undefined;
      let pages = 0;
      do {
        const page = await list({ Limit: 2, Marker });
        expect(page.Aliases?.length).to.be.at.most(2);
        seen.push(...(page.Aliases ?? []).map((a) => a.AliasName));
        if (page.Truncated === true) expect(page.NextMarker).to.be.a('string');
        else expect(page.NextMarker).to.equal(undefined);
        Marker = page.Truncated === true ? page.NextMarker : undefined;
        pages += 1;
      } while (Marker !== undefined);
      expect(seen).to.deep.equal(everything);
      expect(pages).to.equal(Math.ceil(everything.length / 2));
    });

    it('answers Truncated false and no NextMarker when everything fits', async function () {
      const page = await list({ KeyId: RSA_3072 });
      expect(page.Truncated).to.equal(false);
      expect(page.NextMarker).to.equal(undefined);
    });

    it('accepts the model’s largest Limit, 1000, and sends dates as epoch seconds', async function () {
      const raw = await rawRequest(gw.url, { target: 'TrentService.ListAliases', body: JSON.stringify({ Limit: 1000 }) });
      expect(raw.status).to.equal(200);
      const first = (raw.body?.['Aliases'] as Array<Record<string, unknown>>)[0];
      expect(first?.['CreationDate']).to.be.a('number');
      expect(first?.['LastUpdatedDate']).to.be.a('number');
      expect(raw.body?.['Truncated']).to.equal(false);
    });

    it('answers InvalidMarkerException for a marker it did not issue', async function () {
      expectClientError(await failure(list({ Marker: 'not-a-marker' })), 'InvalidMarkerException');
    });

    for (const [limit, text] of [
      [0, 'Member must have value greater than or equal to 1'],
      [1001, 'Member must have value less than or equal to 1000'],
    ] as const) {
      it(`answers ValidationException for Limit ${limit}`, async function () {
        const err = await failure(list({ Limit: limit }));
        expectClientError(err, 'ValidationException', `1 validation error detected: Value '${limit}' at 'limit' failed to satisfy constraint: ${text}`);
      });
    }

    it(`answers NotFoundException "Key '<arn>' does not exist" for an unknown KeyId`, async function () {
      expectClientError(await failure(list({ KeyId: UNKNOWN })), 'NotFoundException', `Key '${keyArn(UNKNOWN)}' does not exist`);
    });
  });

  describe('on the token', function () {
    it('keeps created, moved and deleted aliases across a restart of the gateway', async function () {
      await create('alias/it-durable', AES_B);
      await update('alias/it-durable', AES_C);
      await create('alias/it-gone', AES_B);
      await remove('alias/it-gone');
      kms.destroy();
      await gw.stop();
      const config = JSON.parse(JSON.stringify(defaultConfig())) as Record<string, unknown>;
      gw = await startGateway({ config, token: gw.token });
      kms = kmsClient(gw.url);
      expect((await encryptWith('alias/it-durable')).KeyId).to.equal(keyArn(AES_C));
      expect(await find('alias/it-gone')).to.equal(undefined);
    });
  });
});
