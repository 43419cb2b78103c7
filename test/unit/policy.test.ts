/**
 * Per-key permissions: the policy evaluation rules of src/auth/policy.ts
 * (the default, Allow/Deny, Principal, Action and resource wildcards,
 * encryption-context conditions, AWS's AccessDenied texts), and the checks
 * each operation needs (src/operations/authorization.ts) against a key store
 * on the in-memory fake HSM.
 */
import { expect } from 'chai';
import { PolicyAuthorizer } from '../../src/auth/policy.js';
import type { AuthorizationCheck, Principal } from '../../src/auth/types.js';
import type { PolicyConfig, PolicyStatement } from '../../src/config/config.js';
import { AccessDeniedException, NotFoundException, ValidationException } from '../../src/errors.js';
import { blobHeader, encodeBlob } from '../../src/keys/ciphertext-blob.js';
import { KeyStore, type KmsKey } from '../../src/keys/key-store.js';
import { AUTHORIZED_OPERATIONS, checksFor } from '../../src/operations/authorization.js';
import { operations } from '../../src/operations/registry.js';
import { FakeHsm } from '../support/fake-hsm.js';

const ACCOUNT = '111122223333';
const ARN_PREFIX = `arn:aws:kms:us-east-1:${ACCOUNT}:`;

function key(keyId: string, aliases: string[] = []): KmsKey {
  return { keyId, arn: `${ARN_PREFIX}key/${keyId}`, aliases, keySpec: 'SYMMETRIC_DEFAULT' } as unknown as KmsKey;
}

const PAYMENTS = key('0b5e6a1c-7d43-4f0e-9a35-2c8d1e6f4a01', ['alias/payments/cards', 'alias/shared']);
const REPORTS = key('0b5e6a1c-7d43-4f0e-9a35-2c8d1e6f4a02', ['alias/reports']);
const BARE = key('0b5e6a1c-7d43-4f0e-9a35-2c8d1e6f4a03');

const admin: Principal = { name: 'ops', admin: true, accessKeyId: 'AKIAOPS' };
const app: Principal = { name: 'app', admin: false, accessKeyId: 'AKIAAPP' };
const other: Principal = { name: 'other', admin: false, accessKeyId: 'AKIAOTHER' };

const allow = (s: Partial<PolicyStatement> & Pick<PolicyStatement, 'Action'>): PolicyStatement => ({
  Effect: 'Allow',
  Principal: ['app'],
  ...s,
});
const deny = (s: Partial<PolicyStatement> & Pick<PolicyStatement, 'Action'>): PolicyStatement => ({
  Effect: 'Deny',
  Principal: '*',
  ...s,
});
const on = (resources: string[], ...statements: PolicyStatement[]): PolicyConfig => ({ resources, statements });

function authorizer(...policies: PolicyConfig[]): PolicyAuthorizer {
  return new PolicyAuthorizer(policies, ACCOUNT);
}

function refusal(a: PolicyAuthorizer, who: Principal, checks: AuthorizationCheck[]): AccessDeniedException {
  try {
    a.authorize(who, checks);
  } catch (e) {
    expect(e).to.be.instanceOf(AccessDeniedException);
    return e as AccessDeniedException;
  }
  throw new Error('expected AccessDeniedException, the checks were allowed');
}

const allowed = (a: PolicyAuthorizer, who: Principal, checks: AuthorizationCheck[]) => expect(() => a.authorize(who, checks)).not.to.throw();

describe('per-key permissions: policy evaluation', () => {
  describe('the default, with no policy that applies', () => {
    it('lets an admin do anything on any key and on the account, and refuses everyone else', () => {
      const a = authorizer();
      allowed(a, admin, [{ action: 'kms:Decrypt', key: PAYMENTS }, { action: 'kms:CreateKey' }, { action: 'kms:ScheduleKeyDeletion', key: BARE }]);
      refusal(a, app, [{ action: 'kms:DescribeKey', key: PAYMENTS }]);
      refusal(a, app, [{ action: 'kms:ListKeys' }]);
    });

    it('keeps a key that no policy names admin-only even when other keys have policies', () => {
      const a = authorizer(on([PAYMENTS.keyId], allow({ Action: ['kms:*'] })));
      allowed(a, app, [{ action: 'kms:Decrypt', key: PAYMENTS }]);
      refusal(a, app, [{ action: 'kms:Decrypt', key: REPORTS }]);
      allowed(a, admin, [{ action: 'kms:Decrypt', key: REPORTS }]);
    });
  });

  describe('Allow', () => {
    it('allows a principal named in the statement, for the listed actions only', () => {
      const a = authorizer(on([PAYMENTS.keyId], allow({ Action: ['kms:Encrypt', 'kms:Decrypt'] })));
      allowed(a, app, [{ action: 'kms:Encrypt', key: PAYMENTS }, { action: 'kms:Decrypt', key: PAYMENTS }]);
      refusal(a, app, [{ action: 'kms:GenerateDataKey', key: PAYMENTS }]);
      refusal(a, other, [{ action: 'kms:Encrypt', key: PAYMENTS }]);
    });

    it('allows every principal with Principal "*"', () => {
      const a = authorizer(on([REPORTS.keyId], allow({ Principal: '*', Action: ['kms:DescribeKey'] })));
      allowed(a, app, [{ action: 'kms:DescribeKey', key: REPORTS }]);
      allowed(a, other, [{ action: 'kms:DescribeKey', key: REPORTS }]);
    });

    it('matches Action wildcards as IAM does: kms:GenerateDataKey* covers every data key action, kms:* everything', () => {
      const a = authorizer(on([PAYMENTS.keyId], allow({ Action: ['kms:GenerateDataKey*'] })), on([REPORTS.keyId], allow({ Action: ['kms:*'] })));
      for (const action of ['kms:GenerateDataKey', 'kms:GenerateDataKeyWithoutPlaintext', 'kms:GenerateDataKeyPair', 'kms:GenerateDataKeyPairWithoutPlaintext'])
        allowed(a, app, [{ action, key: PAYMENTS }]);
      refusal(a, app, [{ action: 'kms:Encrypt', key: PAYMENTS }]);
      allowed(a, app, [{ action: 'kms:ScheduleKeyDeletion', key: REPORTS }]);
    });

    it('compares action names case-insensitively, as AWS does', () => {
      const a = authorizer(on([PAYMENTS.keyId], allow({ Action: ['KMS:encrypt', 'kms:reencrypt*'] })));
      allowed(a, app, [{ action: 'kms:Encrypt', key: PAYMENTS }, { action: 'kms:ReEncryptFrom', key: PAYMENTS }, { action: 'kms:ReEncryptTo', key: PAYMENTS }]);
    });

    it('needs every check of a request: ReEncrypt from an allowed key to a key without ReEncryptTo is refused', () => {
      const a = authorizer(on([PAYMENTS.keyId, REPORTS.keyId], allow({ Action: ['kms:ReEncryptFrom'] })));
      const err = refusal(a, app, [{ action: 'kms:ReEncryptFrom', key: PAYMENTS }, { action: 'kms:ReEncryptTo', key: REPORTS }]);
      expect(err.message).to.contain(`kms:ReEncryptTo on resource: ${REPORTS.arn}`);
    });
  });

  describe('Deny', () => {
    it('beats an Allow for the same principal, action and key, wherever the statements are', () => {
      const a = authorizer(
        on([PAYMENTS.keyId], allow({ Action: ['kms:*'] })),
        on(['alias/payments/*'], deny({ Action: ['kms:Decrypt'] })),
        on(['*'], allow({ Action: ['kms:Decrypt'] })),
      );
      refusal(a, app, [{ action: 'kms:Decrypt', key: PAYMENTS }]);
      allowed(a, app, [{ action: 'kms:Encrypt', key: PAYMENTS }]);
    });

    it('refuses an admin on the key it names, and nowhere else', () => {
      const a = authorizer(on([REPORTS.keyId], deny({ Principal: ['ops'], Action: ['kms:Decrypt', 'kms:ScheduleKeyDeletion'] })));
      refusal(a, admin, [{ action: 'kms:Decrypt', key: REPORTS }]);
      refusal(a, admin, [{ action: 'kms:ScheduleKeyDeletion', key: REPORTS }]);
      allowed(a, admin, [{ action: 'kms:Encrypt', key: REPORTS }, { action: 'kms:Decrypt', key: PAYMENTS }]);
    });

    it('does not touch principals it does not name', () => {
      const a = authorizer(on([PAYMENTS.keyId], deny({ Principal: ['other'], Action: ['kms:*'] }), allow({ Action: ['kms:Encrypt'] })));
      allowed(a, app, [{ action: 'kms:Encrypt', key: PAYMENTS }]);
      refusal(a, other, [{ action: 'kms:Encrypt', key: PAYMENTS }]);
    });
  });

  describe('resources', () => {
    it('name a key by id, key ARN, alias name or alias ARN', () => {
      for (const resource of [PAYMENTS.keyId, PAYMENTS.arn, 'alias/shared', `${ARN_PREFIX}alias/payments/cards`]) {
        const a = authorizer(on([resource], allow({ Action: ['kms:Encrypt'] })));
        allowed(a, app, [{ action: 'kms:Encrypt', key: PAYMENTS }]);
        refusal(a, app, [{ action: 'kms:Encrypt', key: REPORTS }]);
      }
    });

    it('match alias patterns with *: alias/payments/* covers the keys whose aliases are under it, only those', () => {
      const a = authorizer(on(['alias/payments/*'], allow({ Action: ['kms:Decrypt'] })));
      allowed(a, app, [{ action: 'kms:Decrypt', key: PAYMENTS }]);
      refusal(a, app, [{ action: 'kms:Decrypt', key: REPORTS }]);
      refusal(a, app, [{ action: 'kms:Decrypt', key: BARE }]);
      const prefix = authorizer(on(['alias/rep*'], allow({ Action: ['kms:Decrypt'] })));
      allowed(prefix, app, [{ action: 'kms:Decrypt', key: REPORTS }]);
      refusal(prefix, app, [{ action: 'kms:Decrypt', key: PAYMENTS }]);
    });

    it('treat regular-expression characters in a pattern literally', () => {
      const a = authorizer(on(['alias/pay.ents/*'], allow({ Action: ['kms:Decrypt'] })));
      refusal(a, app, [{ action: 'kms:Decrypt', key: PAYMENTS }]);
    });

    it('"*" covers every key and the account-level actions; nothing else covers the account', () => {
      const everything = authorizer(on(['*'], allow({ Action: ['kms:CreateKey', 'kms:ListKeys', 'kms:DescribeKey'] })));
      allowed(everything, app, [{ action: 'kms:CreateKey' }, { action: 'kms:ListKeys' }, { action: 'kms:DescribeKey', key: BARE }]);
      const keysOnly = authorizer(on(['alias/*', `${ARN_PREFIX}key/*`], allow({ Action: ['kms:*'] })));
      allowed(keysOnly, app, [{ action: 'kms:DescribeKey', key: BARE }]);
      refusal(keysOnly, app, [{ action: 'kms:ListKeys' }]);
      refusal(keysOnly, app, [{ action: 'kms:GenerateRandom' }]);
    });
  });

  describe('encryption context conditions', () => {
    const ctx = (encryptionContext: Record<string, string> | undefined): AuthorizationCheck[] => [
      { action: 'kms:Encrypt', key: PAYMENTS, encryptionContext },
    ];

    it('StringEquals: allows only the exact value (case-sensitive), the condition key name matched case-insensitively', () => {
      const a = authorizer(on([PAYMENTS.keyId], allow({ Action: ['kms:Encrypt'], Condition: { StringEquals: { 'kms:EncryptionContext:app': 'payments' } } })));
      allowed(a, app, ctx({ app: 'payments', other: 'x' }));
      allowed(a, app, ctx({ App: 'payments' }));
      refusal(a, app, ctx({ app: 'Payments' }));
      refusal(a, app, ctx({ app: 'payments-2' }));
    });

    it('StringLike: * and ? wildcards', () => {
      const a = authorizer(
        on([PAYMENTS.keyId], allow({ Action: ['kms:Encrypt'], Condition: { StringLike: { 'kms:EncryptionContext:path': 'invoices/*/v?' } } })),
      );
      allowed(a, app, ctx({ path: 'invoices/2026/v1' }));
      allowed(a, app, ctx({ path: 'invoices//v9' }));
      refusal(a, app, ctx({ path: 'invoices/2026/v10' }));
      refusal(a, app, ctx({ path: 'receipts/2026/v1' }));
    });

    it('StringLike answers a many-wildcard pattern against a long, near-miss value (matched without backtracking regexes)', () => {
      const a = authorizer(
        on([PAYMENTS.keyId], allow({ Action: ['kms:Encrypt'], Condition: { StringLike: { 'kms:EncryptionContext:v': '*a*a*a*a*a*a*a*a*b' } } })),
      );
      refusal(a, app, ctx({ v: 'a'.repeat(8000) }));
      allowed(a, app, ctx({ v: `${'a'.repeat(8000)}b` }));
      allowed(a, app, ctx({ v: 'x😀a?a*aaaaaab' }));
    });

    it('a context key missing from the request fails the condition: no Allow without it, and no context at all is refused', () => {
      const a = authorizer(on([PAYMENTS.keyId], allow({ Action: ['kms:Encrypt'], Condition: { StringEquals: { 'kms:EncryptionContext:app': 'payments' } } })));
      refusal(a, app, ctx({ purpose: 'payments' }));
      refusal(a, app, ctx(undefined));
      refusal(a, app, ctx({}));
    });

    it('a Deny with a condition applies only when the condition holds', () => {
      const a = authorizer(
        on(
          [PAYMENTS.keyId],
          allow({ Action: ['kms:Encrypt'] }),
          deny({ Action: ['kms:Encrypt'], Condition: { StringEquals: { 'kms:EncryptionContext:tenant': 'blocked' } } }),
        ),
      );
      allowed(a, app, ctx({ tenant: 'fine' }));
      allowed(a, app, ctx(undefined));
      refusal(a, app, ctx({ tenant: 'blocked' }));
    });

    it('a list of values is any-of; several condition keys and operators must all hold', () => {
      const a = authorizer(
        on(
          [PAYMENTS.keyId],
          allow({
            Action: ['kms:Encrypt'],
            Condition: {
              StringEquals: { 'kms:EncryptionContext:app': ['payments', 'billing'], 'kms:EncryptionContext:env': 'prod' },
              StringLike: { 'kms:EncryptionContext:record': ['card-*', 'iban-*'] },
            },
          }),
        ),
      );
      allowed(a, app, ctx({ app: 'billing', env: 'prod', record: 'iban-7' }));
      allowed(a, app, ctx({ app: 'payments', env: 'prod', record: 'card-1' }));
      refusal(a, app, ctx({ app: 'payments', env: 'dev', record: 'card-1' }));
      refusal(a, app, ctx({ app: 'payments', env: 'prod' }));
      refusal(a, app, ctx({ app: 'shop', env: 'prod', record: 'card-1' }));
    });
  });

  describe("AccessDeniedException, in AWS's message shape", () => {
    it('names the principal as an IAM user ARN, the action and the key ARN, for a key no policy allows', () => {
      const err = refusal(authorizer(), app, [{ action: 'kms:Decrypt', key: PAYMENTS }]);
      expect(err.name).to.equal('AccessDeniedException');
      expect(err.status).to.equal(400);
      expect(err.message).to.equal(
        `User: arn:aws:iam::${ACCOUNT}:user/app is not authorized to perform: kms:Decrypt on resource: ${PAYMENTS.arn} ` +
          'because no resource-based policy allows the kms:Decrypt action',
      );
    });

    it('says "with an explicit deny in a resource-based policy" for a Deny on a key', () => {
      const a = authorizer(on([REPORTS.keyId], deny({ Action: ['kms:Encrypt'] })));
      expect(refusal(a, admin, [{ action: 'kms:Encrypt', key: REPORTS }]).message).to.equal(
        `User: arn:aws:iam::${ACCOUNT}:user/ops is not authorized to perform: kms:Encrypt on resource: ${REPORTS.arn} ` +
          'with an explicit deny in a resource-based policy',
      );
    });

    it('names resource * and identity-based policies for account-level actions', () => {
      expect(refusal(authorizer(), app, [{ action: 'kms:CreateKey' }]).message).to.equal(
        `User: arn:aws:iam::${ACCOUNT}:user/app is not authorized to perform: kms:CreateKey on resource: * ` +
          'because no identity-based policy allows the kms:CreateKey action',
      );
      const a = authorizer(on(['*'], deny({ Action: ['kms:GenerateRandom'] })));
      expect(refusal(a, admin, [{ action: 'kms:GenerateRandom' }]).message).to.equal(
        `User: arn:aws:iam::${ACCOUNT}:user/ops is not authorized to perform: kms:GenerateRandom on resource: * ` +
          'with an explicit deny in an identity-based policy',
      );
    });
  });
});

describe('per-key permissions: the checks each operation needs', () => {
  let keys: KeyStore;
  let aes: KmsKey;
  let aes2: KmsKey;
  let rsa: KmsKey;

  before(async () => {
    keys = new KeyStore({ region: 'us-east-1', accountId: ACCOUNT }, new FakeHsm(), { log: { info() {}, warn() {} } });
    await keys.init({ keys: [] });
    aes = await keys.createKey({ keySpec: 'SYMMETRIC_DEFAULT', description: '', tags: [] });
    aes2 = await keys.createKey({ keySpec: 'SYMMETRIC_DEFAULT', description: '', tags: [] });
    rsa = await keys.createKey({ keySpec: 'RSA_2048', description: '', tags: [] });
    const exists = () => new Error('exists');
    await keys.createAlias('alias/app', aes.keyId, exists);
  });

  const blobOf = (keyId: string) => encodeBlob(blobHeader(keyId, 0), Buffer.alloc(12), Buffer.alloc(32));
  const summary = (checks: AuthorizationCheck[]) =>
    checks.map((c) => ({ action: c.action, key: c.key?.keyId, context: c.encryptionContext }));
  const thrown = (fn: () => unknown): Error => {
    try {
      fn();
    } catch (e) {
      return e as Error;
    }
    throw new Error('expected a throw');
  };

  it('has a row for every operation of the registry', () => {
    expect([...operations.keys()].filter((op) => !AUTHORIZED_OPERATIONS.has(op))).to.deep.equal([]);
  });

  it('Encrypt and the data key operations: their own action on KeyId (any form), with the encryption context', () => {
    const EncryptionContext = { app: 'x' };
    expect(summary(checksFor('Encrypt', { KeyId: 'alias/app', EncryptionContext }, keys))).to.deep.equal([
      { action: 'kms:Encrypt', key: aes.keyId, context: EncryptionContext },
    ]);
    for (const op of ['GenerateDataKey', 'GenerateDataKeyWithoutPlaintext', 'GenerateDataKeyPair', 'GenerateDataKeyPairWithoutPlaintext'])
      expect(summary(checksFor(op, { KeyId: aes.arn, EncryptionContext }, keys))).to.deep.equal([
        { action: `kms:${op}`, key: aes.keyId, context: EncryptionContext },
      ]);
  });

  it('Decrypt: on KeyId when given, else on the key the blob names; no check for a blob naming no key of ours', () => {
    const EncryptionContext = { a: 'b' };
    expect(summary(checksFor('Decrypt', { CiphertextBlob: blobOf(aes.keyId), EncryptionContext }, keys))).to.deep.equal([
      { action: 'kms:Decrypt', key: aes.keyId, context: EncryptionContext },
    ]);
    expect(summary(checksFor('Decrypt', { CiphertextBlob: Buffer.alloc(300), KeyId: rsa.keyId }, keys))).to.deep.equal([
      { action: 'kms:Decrypt', key: rsa.keyId, context: undefined },
    ]);
    expect(checksFor('Decrypt', { CiphertextBlob: blobOf('6a2e0d1f-1c2b-4a3d-8e4f-5a6b7c8d9eff') }, keys)).to.deep.equal([]);
    expect(checksFor('Decrypt', { CiphertextBlob: blobOf(rsa.keyId) }, keys)).to.deep.equal([]);
    expect(checksFor('Decrypt', { CiphertextBlob: Buffer.from('not a blob') }, keys)).to.deep.equal([]);
  });

  it('ReEncrypt: kms:ReEncryptFrom on the source key with the source context, kms:ReEncryptTo on the destination with its own', () => {
    expect(
      summary(
        checksFor(
          'ReEncrypt',
          { CiphertextBlob: blobOf(aes.keyId), SourceEncryptionContext: { s: '1' }, DestinationKeyId: aes2.keyId, DestinationEncryptionContext: { d: '2' } },
          keys,
        ),
      ),
    ).to.deep.equal([
      { action: 'kms:ReEncryptFrom', key: aes.keyId, context: { s: '1' } },
      { action: 'kms:ReEncryptTo', key: aes2.keyId, context: { d: '2' } },
    ]);
  });

  it('the key management operations: kms:<Operation> on KeyId', () => {
    for (const op of ['DescribeKey', 'EnableKey', 'DisableKey', 'ScheduleKeyDeletion', 'TagResource', 'ListResourceTags', 'RotateKeyOnDemand', 'ListKeyRotations'])
      expect(summary(checksFor(op, { KeyId: aes.keyId }, keys))).to.deep.equal([{ action: `kms:${op}`, key: aes.keyId, context: undefined }]);
  });

  it('aliases: CreateAlias on the target key, UpdateAlias on the key the alias leaves and the one it moves to, DeleteAlias on its key', () => {
    expect(summary(checksFor('CreateAlias', { AliasName: 'alias/new', TargetKeyId: aes2.keyId }, keys))).to.deep.equal([
      { action: 'kms:CreateAlias', key: aes2.keyId, context: undefined },
    ]);
    expect(summary(checksFor('UpdateAlias', { AliasName: 'alias/app', TargetKeyId: aes2.keyId }, keys))).to.deep.equal([
      { action: 'kms:UpdateAlias', key: aes2.keyId, context: undefined },
      { action: 'kms:UpdateAlias', key: aes.keyId, context: undefined },
    ]);
    expect(summary(checksFor('DeleteAlias', { AliasName: 'alias/app' }, keys))).to.deep.equal([
      { action: 'kms:DeleteAlias', key: aes.keyId, context: undefined },
    ]);
  });

  it('account-level: CreateKey, ListKeys, GenerateRandom and ListAliases without KeyId (with KeyId: on that key)', () => {
    for (const op of ['CreateKey', 'ListKeys', 'GenerateRandom', 'ListAliases'])
      expect(summary(checksFor(op, {}, keys))).to.deep.equal([{ action: `kms:${op}`, key: undefined, context: undefined }]);
    expect(summary(checksFor('ListAliases', { KeyId: aes.keyId }, keys))).to.deep.equal([
      { action: 'kms:ListAliases', key: aes.keyId, context: undefined },
    ]);
  });

  it('unsupported operations need nothing (they answer UnsupportedOperationException); an operation missing from the table is admin-only', () => {
    expect(checksFor('CreateGrant', { KeyId: aes.keyId }, keys)).to.deep.equal([]);
    expect(summary(checksFor('SomeFutureOperation', {}, keys))).to.deep.equal([{ action: 'kms:SomeFutureOperation', key: undefined, context: undefined }]);
  });

  it("a key or alias that does not exist answers the handler's NotFoundException, before any permission is looked at", () => {
    const missing = '6a2e0d1f-1c2b-4a3d-8e4f-5a6b7c8d9eff';
    const e1 = thrown(() => checksFor('Encrypt', { KeyId: missing }, keys));
    expect(e1).to.be.instanceOf(NotFoundException);
    expect(e1.message).to.equal(`Key '${ARN_PREFIX}key/${missing}' does not exist`);
    const e2 = thrown(() => checksFor('DeleteAlias', { AliasName: 'alias/nope' }, keys));
    expect(e2).to.be.instanceOf(NotFoundException);
    expect(e2.message).to.equal(`Alias ${ARN_PREFIX}alias/nope is not found.`);
    expect(thrown(() => checksFor('CreateAlias', { AliasName: 'nope', TargetKeyId: missing }, keys))).to.be.instanceOf(ValidationException);
  });
});
