/**
 * The permissions each operation needs, from its parsed request: the KMS
 * action (as in key policies), the key it acts on and the encryption context
 * that `kms:EncryptionContext:<k>` conditions see. The api layer authorizes
 * every check before the handler runs (src/api/kms-json.ts; the policy rules
 * are src/auth/policy.ts).
 *
 * Keys are resolved with `keys.resolve`, which throws the NotFoundException
 * the handler would throw, so a key that does not exist answers
 * NotFoundException, not AccessDeniedException. Pure input checks the
 * handler makes before it looks a key up (alias name rules) are made here
 * first, so their answers keep their order.
 *
 * | operation | action | on |
 * | --- | --- | --- |
 * | Encrypt, GenerateDataKey, GenerateDataKeyWithoutPlaintext, GenerateDataKeyPair, GenerateDataKeyPairWithoutPlaintext | kms:<Operation> | KeyId, with EncryptionContext |
 * | Decrypt | kms:Decrypt | KeyId, or without it the key the symmetric blob names, with EncryptionContext |
 * | ReEncrypt | kms:ReEncryptFrom and kms:ReEncryptTo | the source key (as Decrypt) with SourceEncryptionContext; DestinationKeyId with DestinationEncryptionContext |
 * | DescribeKey, GetPublicKey, EnableKey, DisableKey, UpdateKeyDescription, ScheduleKeyDeletion, CancelKeyDeletion, TagResource, UntagResource, ListResourceTags, EnableKeyRotation, DisableKeyRotation, GetKeyRotationStatus, RotateKeyOnDemand, ListKeyRotations | kms:<Operation> | KeyId |
 * | CreateAlias | kms:CreateAlias | TargetKeyId |
 * | UpdateAlias | kms:UpdateAlias | the alias's current key and TargetKeyId |
 * | DeleteAlias | kms:DeleteAlias | the alias's key |
 * | ListAliases | kms:ListAliases | KeyId when given, else the account |
 * | CreateKey, ListKeys, GenerateRandom | kms:<Operation> | the account |
 * | unsupported operations | none | (they answer UnsupportedOperationException) |
 *
 * Differences from AWS, on purpose: AWS also authorizes the alias resource
 * itself for CreateAlias/UpdateAlias/DeleteAlias; the gateway's policies
 * name keys, so only the key(s) are checked (UpdateAlias checks both the key
 * the alias leaves and the one it moves to, as AWS does, so no one moves an
 * alias off a key they have no rights on). CreateKey with Tags does not also
 * need kms:TagResource.
 *
 * A Decrypt (or ReEncrypt source) without KeyId whose blob names no key of
 * this gateway gets no check: the handler answers InvalidCiphertextException,
 * whoever asks, and nothing is decrypted.
 */
import type { AuthorizationCheck } from '../auth/types.js';
import { NotFoundException } from '../errors.js';
import { parseBlob } from '../keys/ciphertext-blob.js';
import type { EncryptionContext } from '../keys/encryption-context.js';
import type { KeyStore, KmsKey } from '../keys/key-store.js';
import { assertAliasName, assertNamesAKey } from './alias-name.js';
import { UNSUPPORTED_OPERATIONS } from './unsupported.js';

type Request = Record<string, unknown>;
type ChecksOf = (request: Request, keys: KeyStore) => AuthorizationCheck[];

const str = (request: Request, member: string): string | undefined => {
  const v = request[member];
  return typeof v === 'string' ? v : undefined;
};

const context = (request: Request, member: string): EncryptionContext | undefined =>
  request[member] as EncryptionContext | undefined;

/** `kms:<operation>` on the key named by `member` (required by the operation's schema). */
const onKey =
  (action: string, member = 'KeyId', contextMember?: string): ChecksOf =>
  (request, keys) => [
    {
      action,
      key: keys.resolve(str(request, member) as string),
      encryptionContext: contextMember === undefined ? undefined : context(request, contextMember),
    },
  ];

const onAccount =
  (action: string): ChecksOf =>
  () => [{ action }];

/** The key a ciphertext is opened with: the given KeyId, or the key a symmetric blob names (undefined: none of ours). */
function sourceKey(keys: KeyStore, keyId: string | undefined, blob: unknown): KmsKey | undefined {
  if (keyId !== undefined) return keys.resolve(keyId);
  if (!Buffer.isBuffer(blob)) return undefined;
  const parsed = parseBlob(blob);
  const key = parsed === undefined ? undefined : keys.findById(parsed.keyId);
  // Decrypt refuses a symmetric blob naming an RSA key (InvalidCiphertextException) before it touches the token.
  return key?.keySpec === 'SYMMETRIC_DEFAULT' ? key : undefined;
}

/** The key an existing alias points to; NotFoundException as the handlers give it. */
function aliasTarget(keys: KeyStore, aliasName: string): KmsKey | undefined {
  const alias = keys.findAlias(aliasName);
  if (alias === undefined) throw new NotFoundException(`Alias ${keys.aliasArn(aliasName)} is not found.`);
  // A dangling alias (its key gone) is checked as an account-level action: admins only, unless `*` says otherwise.
  return keys.findById(alias.targetKeyId);
}

const dataKey = (operation: string): ChecksOf => onKey(`kms:${operation}`, 'KeyId', 'EncryptionContext');

const TABLE: ReadonlyMap<string, ChecksOf> = new Map<string, ChecksOf>([
  ['Encrypt', dataKey('Encrypt')],
  [
    'Decrypt',
    (request, keys) => {
      const key = sourceKey(keys, str(request, 'KeyId'), request['CiphertextBlob']);
      return key === undefined ? [] : [{ action: 'kms:Decrypt', key, encryptionContext: context(request, 'EncryptionContext') }];
    },
  ],
  [
    'ReEncrypt',
    (request, keys) => {
      const source = sourceKey(keys, str(request, 'SourceKeyId'), request['CiphertextBlob']);
      const destination = keys.resolve(str(request, 'DestinationKeyId') as string);
      return [
        ...(source === undefined
          ? []
          : [{ action: 'kms:ReEncryptFrom', key: source, encryptionContext: context(request, 'SourceEncryptionContext') }]),
        { action: 'kms:ReEncryptTo', key: destination, encryptionContext: context(request, 'DestinationEncryptionContext') },
      ];
    },
  ],
  ['GenerateDataKey', dataKey('GenerateDataKey')],
  ['GenerateDataKeyWithoutPlaintext', dataKey('GenerateDataKeyWithoutPlaintext')],
  ['GenerateDataKeyPair', dataKey('GenerateDataKeyPair')],
  ['GenerateDataKeyPairWithoutPlaintext', dataKey('GenerateDataKeyPairWithoutPlaintext')],
  ['GenerateRandom', onAccount('kms:GenerateRandom')],
  // -- key lifecycle, tags, public keys --
  ['CreateKey', onAccount('kms:CreateKey')],
  ['ListKeys', onAccount('kms:ListKeys')],
  ...[
    'DescribeKey',
    'GetPublicKey',
    'EnableKey',
    'DisableKey',
    'UpdateKeyDescription',
    'ScheduleKeyDeletion',
    'CancelKeyDeletion',
    'TagResource',
    'UntagResource',
    'ListResourceTags',
    'EnableKeyRotation',
    'DisableKeyRotation',
    'GetKeyRotationStatus',
    'RotateKeyOnDemand',
    'ListKeyRotations',
  ].map((op): [string, ChecksOf] => [op, onKey(`kms:${op}`)]),
  // -- aliases --
  [
    'CreateAlias',
    (request, keys) => {
      assertAliasName(str(request, 'AliasName') as string, { reserved: 'refuse' });
      assertNamesAKey(str(request, 'TargetKeyId') as string);
      return onKey('kms:CreateAlias', 'TargetKeyId')(request, keys);
    },
  ],
  [
    'UpdateAlias',
    (request, keys) => {
      const aliasName = str(request, 'AliasName') as string;
      assertAliasName(aliasName, { reserved: 'refuse' });
      assertNamesAKey(str(request, 'TargetKeyId') as string);
      const current = aliasTarget(keys, aliasName);
      const target = keys.resolve(str(request, 'TargetKeyId') as string);
      return [
        { action: 'kms:UpdateAlias', key: target },
        ...(current?.keyId === target.keyId ? [] : [{ action: 'kms:UpdateAlias', key: current }]),
      ];
    },
  ],
  [
    'DeleteAlias',
    (request, keys) => {
      const aliasName = str(request, 'AliasName') as string;
      assertAliasName(aliasName, { reserved: 'allow' });
      return [{ action: 'kms:DeleteAlias', key: aliasTarget(keys, aliasName) }];
    },
  ],
  [
    'ListAliases',
    (request, keys) => {
      const keyId = str(request, 'KeyId');
      return keyId === undefined ? [{ action: 'kms:ListAliases' }] : [{ action: 'kms:ListAliases', key: keys.resolve(keyId) }];
    },
  ],
  // -- unsupported operations: no checks, they answer UnsupportedOperationException --
  ...UNSUPPORTED_OPERATIONS.map((op): [string, ChecksOf] => [op, () => []]),
]);

/** The operations this table knows (a test holds it equal to the registry). */
export const AUTHORIZED_OPERATIONS: ReadonlySet<string> = new Set(TABLE.keys());

/**
 * The checks a request needs. An operation missing from the table (a new
 * one added to the registry without a row here) fails closed: an
 * account-level `kms:<Operation>` check, so by default only admins may call it.
 */
export function checksFor(operation: string, request: Record<string, unknown>, keys: KeyStore): AuthorizationCheck[] {
  const checksOf = TABLE.get(operation) ?? onAccount(`kms:${operation}`);
  return checksOf(request, keys);
}
