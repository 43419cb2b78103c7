/**
 * Per-key permissions against a real gateway process: two principals in the
 * token dir's credentials file (the demo admin and a non-admin `app` with its
 * own access key), a policy config, and @aws-sdk/client-kms signing as each
 * of them. What a policy refuses answers AccessDeniedException (400) in
 * AWS's message shape and changes nothing on the token.
 */
import { writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import {
  CreateKeyCommand,
  DecryptCommand,
  DescribeKeyCommand,
  EncryptCommand,
  GenerateDataKeyCommand,
  KMSClient,
  ListKeysCommand,
  ScheduleKeyDeletionCommand,
} from '@aws-sdk/client-kms';
import { defaultConfig, keyArn, kmsClient, makeToken, REGION, startGateway, tableKey, type GatewayProcess } from '../support/gateway.js';
import { expectClientError, failure } from '../support/sdk-errors.js';

const DEMO_AES = '0b5e6a1c-7d43-4f0e-9a35-2c8d1e6f4a01';
const DEMO_RSA = '0b5e6a1c-7d43-4f0e-9a35-2c8d1e6f4a02';
const OPEN = '7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e01';
const CONTEXT = '7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e02';
const LOCKED = '7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e03';
const UNKNOWN = '7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3eff';

const APP_ACCESS_KEY_ID = 'AKIAAPPEXAMPLE000001';
const APP_SECRET = 'appSecretKeyForTheAuthorizationTest/0000';
const APP_USER = 'arn:aws:iam::111122223333:user/app';
const DEMO_USER = 'arn:aws:iam::111122223333:user/demo';

const text = (s: string) => new TextEncoder().encode(s);

describe('per-key permissions through a real gateway (SigV4 principals, key policies)', function () {
  this.timeout(60_000);
  let gw: GatewayProcess;
  let admin: KMSClient;
  let app: KMSClient;

  before(async function () {
    const token = makeToken('kmsgw-dev');
    const credentials = join(token.dir, 'credentials.json');
    writeFileSync(
      credentials,
      JSON.stringify({
        principals: [
          {
            name: 'demo',
            admin: true,
            accessKeys: [{ accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' }],
          },
          { name: 'app', admin: false, accessKeys: [{ accessKeyId: APP_ACCESS_KEY_ID, secretAccessKey: APP_SECRET }] },
        ],
      }),
    );
    chmodSync(credentials, 0o600);

    const config = defaultConfig();
    const aes = (keyId: string, alias: string) => tableKey(keyId, `kmsgw-it-${alias.slice('alias/'.length)}`, { aliases: [alias] });
    (config['keys'] as unknown[]).push(aes(OPEN, 'alias/it-open'), aes(CONTEXT, 'alias/it-context'), aes(LOCKED, 'alias/it-locked'));
    config['policies'] = [
      {
        // app may only encrypt with the demo key: it gets no kms:Decrypt on it.
        resources: [DEMO_AES],
        statements: [{ Sid: 'AppEncryptsOnly', Effect: 'Allow', Principal: ['app'], Action: ['kms:Encrypt'] }],
      },
      {
        resources: ['alias/it-open*'],
        statements: [
          { Effect: 'Allow', Principal: ['app'], Action: ['kms:Encrypt', 'kms:Decrypt', 'kms:GenerateDataKey*', 'kms:DescribeKey'] },
        ],
      },
      {
        resources: ['alias/it-context'],
        statements: [
          {
            Effect: 'Allow',
            Principal: ['app'],
            Action: ['kms:Encrypt'],
            Condition: { StringEquals: { 'kms:EncryptionContext:tenant': 'acme' } },
          },
        ],
      },
      {
        resources: [LOCKED],
        statements: [{ Sid: 'NotEvenAdmins', Effect: 'Deny', Principal: ['demo'], Action: ['kms:Decrypt', 'kms:ScheduleKeyDeletion'] }],
      },
    ];
    gw = await startGateway({ config, token });
    admin = kmsClient(gw.url);
    app = new KMSClient({
      endpoint: gw.url,
      region: REGION,
      credentials: { accessKeyId: APP_ACCESS_KEY_ID, secretAccessKey: APP_SECRET },
      maxAttempts: 1,
    });
  });

  after(async () => {
    admin?.destroy();
    app?.destroy();
    await gw?.stop();
  });

  it('a principal without kms:Decrypt on a key is refused on that key, and allowed on a key where a policy allows it', async () => {
    const onDemo = await app.send(new EncryptCommand({ KeyId: 'alias/demo-aes', Plaintext: text('for demo') }));
    const refused = await failure(app.send(new DecryptCommand({ CiphertextBlob: onDemo.CiphertextBlob })));
    expectClientError(
      refused,
      'AccessDeniedException',
      `User: ${APP_USER} is not authorized to perform: kms:Decrypt on resource: ${keyArn(DEMO_AES)} ` +
        'because no resource-based policy allows the kms:Decrypt action',
    );
    // Naming the key does not help; the admin (no policy refuses it) decrypts the same blob.
    expectClientError(await failure(app.send(new DecryptCommand({ CiphertextBlob: onDemo.CiphertextBlob, KeyId: DEMO_AES }))), 'AccessDeniedException');
    const byAdmin = await admin.send(new DecryptCommand({ CiphertextBlob: onDemo.CiphertextBlob }));
    expect(new TextDecoder().decode(byAdmin.Plaintext)).to.equal('for demo');

    const onOpen = await app.send(new EncryptCommand({ KeyId: 'alias/it-open', Plaintext: text('for app') }));
    const back = await app.send(new DecryptCommand({ CiphertextBlob: onOpen.CiphertextBlob }));
    expect(back.KeyId).to.equal(keyArn(OPEN));
    expect(new TextDecoder().decode(back.Plaintext)).to.equal('for app');
    const dataKey = await app.send(new GenerateDataKeyCommand({ KeyId: OPEN, KeySpec: 'AES_256' }));
    expect(dataKey.KeyId).to.equal(keyArn(OPEN));
  });

  it('a key no policy names is admin-only: the non-admin cannot even describe it', async () => {
    expectClientError(
      await failure(app.send(new DescribeKeyCommand({ KeyId: 'alias/demo-rsa-2048' }))),
      'AccessDeniedException',
      `User: ${APP_USER} is not authorized to perform: kms:DescribeKey on resource: ${keyArn(DEMO_RSA)} ` +
        'because no resource-based policy allows the kms:DescribeKey action',
    );
    expect((await admin.send(new DescribeKeyCommand({ KeyId: 'alias/demo-rsa-2048' }))).KeyMetadata?.KeyId).to.equal(DEMO_RSA);
  });

  it('an EncryptionContext condition allows Encrypt only with the right context', async () => {
    const ok = await app.send(new EncryptCommand({ KeyId: 'alias/it-context', Plaintext: text('x'), EncryptionContext: { tenant: 'acme', more: 'y' } }));
    expect(ok.KeyId).to.equal(keyArn(CONTEXT));
    const wrong: Array<Record<string, string> | undefined> = [{ tenant: 'globex' }, { purpose: 'acme' }, { Tenant: 'ACME' }, undefined];
    for (const EncryptionContext of wrong)
      expectClientError(
        await failure(app.send(new EncryptCommand({ KeyId: 'alias/it-context', Plaintext: text('x'), EncryptionContext }))),
        'AccessDeniedException',
        `User: ${APP_USER} is not authorized to perform: kms:Encrypt on resource: ${keyArn(CONTEXT)} ` +
          'because no resource-based policy allows the kms:Encrypt action',
      );
  });

  it('a Deny naming the admin refuses the admin on that key, and only for the denied actions', async () => {
    const blob = await admin.send(new EncryptCommand({ KeyId: 'alias/it-locked', Plaintext: text('sealed') }));
    expectClientError(
      await failure(admin.send(new DecryptCommand({ CiphertextBlob: blob.CiphertextBlob }))),
      'AccessDeniedException',
      `User: ${DEMO_USER} is not authorized to perform: kms:Decrypt on resource: ${keyArn(LOCKED)} ` +
        'with an explicit deny in a resource-based policy',
    );
    expectClientError(
      await failure(admin.send(new ScheduleKeyDeletionCommand({ KeyId: LOCKED, PendingWindowInDays: 7 }))),
      'AccessDeniedException',
    );
    expect((await admin.send(new DescribeKeyCommand({ KeyId: LOCKED }))).KeyMetadata?.KeyState).to.equal('Enabled');
  });

  it('a key that does not exist answers NotFoundException, not AccessDeniedException, to anyone', async () => {
    for (const client of [app, admin]) {
      expectClientError(
        await failure(client.send(new EncryptCommand({ KeyId: UNKNOWN, Plaintext: text('x') }))),
        'NotFoundException',
        `Key '${keyArn(UNKNOWN)}' does not exist`,
      );
      expectClientError(
        await failure(client.send(new DescribeKeyCommand({ KeyId: 'alias/it-nope' }))),
        'NotFoundException',
        'Alias arn:aws:kms:us-east-1:111122223333:alias/it-nope is not found.',
      );
    }
  });

  it('a refused call changes nothing on the token: no key from a refused CreateKey, no deletion from a refused ScheduleKeyDeletion', async () => {
    const before = (await admin.send(new ListKeysCommand({ Limit: 1000 }))).Keys?.map((k) => k.KeyId).sort();
    expectClientError(
      await failure(app.send(new CreateKeyCommand({ Description: 'should not exist' }))),
      'AccessDeniedException',
      `User: ${APP_USER} is not authorized to perform: kms:CreateKey on resource: * ` +
        'because no identity-based policy allows the kms:CreateKey action',
    );
    expectClientError(
      await failure(app.send(new ScheduleKeyDeletionCommand({ KeyId: 'alias/it-open', PendingWindowInDays: 7 }))),
      'AccessDeniedException',
    );
    expectClientError(await failure(app.send(new ListKeysCommand({}))), 'AccessDeniedException');
    const after = (await admin.send(new ListKeysCommand({ Limit: 1000 }))).Keys?.map((k) => k.KeyId).sort();
    expect(after).to.deep.equal(before);
    expect((await admin.send(new DescribeKeyCommand({ KeyId: OPEN }))).KeyMetadata?.KeyState).to.equal('Enabled');
  });
});
