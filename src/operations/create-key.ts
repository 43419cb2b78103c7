/**
 * CreateKey: a new KMS key generated on the HSM (sensitive, non-extractable
 * token objects), SYMMETRIC_DEFAULT (AES-256) or RSA_2048/3072/4096 for
 * ENCRYPT_DECRYPT. Every other value AWS's model accepts is refused with
 * UnsupportedOperationException (other key specs and usages, other origins,
 * multi-Region keys, external key stores); combinations AWS itself rejects
 * (a symmetric signing key, an asymmetric key without KeyUsage, KeySpec and
 * CustomerMasterKeySpec together) get AWS's ValidationException first.
 *
 * Policy and BypassPolicyLockoutSafetyCheck are validated as the model says
 * and otherwise ignored: key policies come with a later issue.
 */
import { z } from 'zod';
import { KEY_SPECS, type KeySpec } from '../config/config.js';
import { CustomKeyStoreNotFoundException, UnsupportedOperationException, ValidationException } from '../errors.js';
import { keyMetadata } from './key-metadata.js';
import { defineOperation } from './operation.js';
import { awsBoolean, awsEnum, awsString } from './schema.js';
import { assertTagsAllowed, sortTags, tagList } from './tag-rules.js';

/**
 * The model's KeySpec values, in the order AWS prints them in an enum
 * validation message (recorded against AWS in 2023 for the values it had
 * then; the newer ones, SM2 included, are appended: their place is unverified).
 */
const KEY_SPEC_VALUES = [
  'RSA_2048',
  'ECC_NIST_P384',
  'ECC_NIST_P256',
  'ECC_NIST_P521',
  'HMAC_384',
  'RSA_3072',
  'ECC_SECG_P256K1',
  'RSA_4096',
  'SYMMETRIC_DEFAULT',
  'HMAC_256',
  'HMAC_224',
  'HMAC_512',
  'SM2',
  'ECC_NIST_EDWARDS25519',
  'ML_DSA_44',
  'ML_DSA_65',
  'ML_DSA_87',
  'ML_KEM_512',
  'ML_KEM_768',
  'ML_KEM_1024',
] as const;
/** The deprecated CustomerMasterKeySpec: the same values as KeySpec had before ECC_NIST_EDWARDS25519 and ML-*. */
const CMK_SPEC_VALUES = KEY_SPEC_VALUES.slice(0, 13) as unknown as readonly [string, ...string[]];
const KEY_USAGE_VALUES = ['ENCRYPT_DECRYPT', 'SIGN_VERIFY', 'GENERATE_VERIFY_MAC', 'KEY_AGREEMENT', 'ENCAPSULATE_DECAPSULATE'] as const;
const ORIGIN_VALUES = ['EXTERNAL', 'AWS_CLOUDHSM', 'AWS_KMS', 'EXTERNAL_KEY_STORE'] as const;

type AnyKeySpec = (typeof KEY_SPEC_VALUES)[number];
type KeyUsage = (typeof KEY_USAGE_VALUES)[number];

/** Which key usages AWS allows for each key spec. */
function usagesOf(spec: AnyKeySpec): readonly KeyUsage[] {
  if (spec === 'SYMMETRIC_DEFAULT') return ['ENCRYPT_DECRYPT'];
  if (spec.startsWith('RSA_')) return ['ENCRYPT_DECRYPT', 'SIGN_VERIFY'];
  if (spec.startsWith('HMAC_')) return ['GENERATE_VERIFY_MAC'];
  if (spec === 'SM2') return ['ENCRYPT_DECRYPT', 'SIGN_VERIFY', 'KEY_AGREEMENT'];
  if (spec.startsWith('ECC_NIST_P')) return ['SIGN_VERIFY', 'KEY_AGREEMENT'];
  if (spec.startsWith('ML_KEM_')) return ['ENCAPSULATE_DECAPSULATE'];
  return ['SIGN_VERIFY']; // ECC_SECG_P256K1, ECC_NIST_EDWARDS25519, ML_DSA_*
}

const SERVED_SPECS: readonly string[] = KEY_SPECS;

export const createKey = defineOperation(
  z.object({
    Policy: awsString(1, 131072)
      .refine((p) => /^[\u0009\u000A\u000D\u0020-\u00FF]+$/.test(p), {
        error: 'Member must satisfy regular expression pattern: [\\u0009\\u000A\\u000D\\u0020-\\u00FF]+',
      })
      .optional(),
    Description: awsString(0, 8192).optional(),
    KeyUsage: awsEnum(KEY_USAGE_VALUES).optional(),
    CustomerMasterKeySpec: awsEnum(CMK_SPEC_VALUES).optional(),
    KeySpec: awsEnum(KEY_SPEC_VALUES).optional(),
    Origin: awsEnum(ORIGIN_VALUES).optional(),
    CustomKeyStoreId: awsString(1, 64).optional(),
    BypassPolicyLockoutSafetyCheck: awsBoolean().optional(),
    Tags: tagList().optional(),
    MultiRegion: awsBoolean().optional(),
    XksKeyId: awsString(1, 128)
      .refine((x) => /^[a-zA-Z0-9-_.]+$/.test(x), { error: 'Member must satisfy regular expression pattern: ^[a-zA-Z0-9-_.]+$' })
      .optional(),
  }),
  async (req, { keys }) => {
    // Key spec and usage: AWS's own refusals first.
    if (req.KeySpec !== undefined && req.CustomerMasterKeySpec !== undefined)
      throw new ValidationException(
        'You cannot specify KeySpec and CustomerMasterKeySpec in the same request. CustomerMasterKeySpec is deprecated.',
      );
    const spec = (req.KeySpec ?? req.CustomerMasterKeySpec ?? 'SYMMETRIC_DEFAULT') as AnyKeySpec;
    if (req.KeyUsage === undefined && spec !== 'SYMMETRIC_DEFAULT')
      throw new ValidationException('You must specify a KeyUsage value for all KMS keys except for symmetric encryption keys.');
    const usage: KeyUsage = req.KeyUsage ?? 'ENCRYPT_DECRYPT';
    if (!usagesOf(spec).includes(usage))
      throw new ValidationException(
        spec === 'SYMMETRIC_DEFAULT'
          ? `The operation failed because the KeyUsage value of the CMK is ${usage}. To perform this operation, the KeyUsage value must be ENCRYPT_DECRYPT.`
          : `KeyUsage ${usage} is not compatible with KeySpec ${spec}`,
      );
    const tags = req.Tags ?? [];
    assertTagsAllowed(tags);

    // Valid for AWS, but not what this gateway serves.
    if (req.CustomKeyStoreId !== undefined)
      throw new CustomKeyStoreNotFoundException(`Custom key store ${req.CustomKeyStoreId} does not exist: this gateway has no custom key stores.`);
    if (req.XksKeyId !== undefined)
      throw new UnsupportedOperationException('External key stores are not supported by this gateway: XksKeyId cannot be used.');
    if (req.Origin !== undefined && req.Origin !== 'AWS_KMS')
      throw new UnsupportedOperationException(
        `Origin ${req.Origin} is not supported by this gateway: its keys are generated on its HSM (origin AWS_KMS).`,
      );
    if (req.MultiRegion === true) throw new UnsupportedOperationException('Multi-Region keys are not supported by this gateway.');
    if (!SERVED_SPECS.includes(spec))
      throw new UnsupportedOperationException(
        `KeySpec ${spec} is not supported by this gateway: it creates SYMMETRIC_DEFAULT, RSA_2048, RSA_3072 and RSA_4096 keys.`,
      );
    if (usage !== 'ENCRYPT_DECRYPT')
      throw new UnsupportedOperationException(`KeyUsage ${usage} is not supported by this gateway: it creates ENCRYPT_DECRYPT keys only.`);

    // req.Policy and req.BypassPolicyLockoutSafetyCheck: accepted and ignored until key policies exist.
    const key = await keys.createKey({ keySpec: spec as KeySpec, description: req.Description ?? '', tags: sortTags(tags) });
    return { KeyMetadata: keyMetadata(key, keys) };
  },
);
