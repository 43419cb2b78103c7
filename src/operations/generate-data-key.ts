/**
 * GenerateDataKey: a fresh data key from the token's RNG, returned in
 * plaintext and encrypted under a SYMMETRIC_DEFAULT KMS key exactly as
 * Encrypt encrypts (the same blob, the context bound as AAD), so Decrypt
 * opens the CiphertextBlob with the same context. Exactly one of KeySpec
 * (AES_128: 16 bytes, AES_256: 32) or NumberOfBytes (1..1024).
 * Checks in AWS's order: shape, key, KeySpec/NumberOfBytes, state, key spec,
 * DryRun last. GenerateDataKeyWithoutPlaintext shares all of it.
 */
import { z } from 'zod';
import {
  DryRunOperationException,
  InvalidKeyUsageException,
  UnsupportedOperationException,
  ValidationException,
} from '../errors.js';
import type { Hsm } from '../hsm/hsm.js';
import type { EncryptionContext } from '../keys/encryption-context.js';
import { blobAad, blobHeader, encodeBlob } from '../keys/ciphertext-blob.js';
import { encryptSymmetric } from '../keys/key-crypto.js';
import type { KeyStore, KmsKey } from '../keys/key-store.js';
import { takeBase64 } from './decrypt-any.js';
import { defineOperation } from './operation.js';
import {
  awsBoolean,
  awsEnum,
  awsInteger,
  awsString,
  awsStructure,
  encryptionContext,
  grantTokens,
} from './schema.js';

const DATA_KEY_SPECS = ['AES_256', 'AES_128'] as const;
const DATA_KEY_BYTES: Record<(typeof DATA_KEY_SPECS)[number], number> = { AES_256: 32, AES_128: 16 };

/**
 * The set AWS prints for a bad KeySpec here is CreateKey's KeySpec set, not
 * the two values it accepts (recorded against AWS by a public emulator's
 * tests, which also show 'RSA_2048' refused with this very list; unverified
 * here). Only AES_256 and AES_128 are accepted.
 */
const KEY_SPEC_LISTED = [
  'RSA_2048', 'RSA_3072', 'RSA_4096', 'ECC_NIST_P256', 'ECC_NIST_P384', 'ECC_NIST_P521', 'ECC_SECG_P256K1',
  'ECC_NIST_EDWARDS25519', 'SYMMETRIC_DEFAULT', 'HMAC_224', 'HMAC_256', 'HMAC_384', 'HMAC_512', 'SM2', 'ML_DSA_44',
  'ML_DSA_65', 'ML_DSA_87',
];

export const dataKeyRequest = {
  KeyId: awsString(1, 2048),
  EncryptionContext: encryptionContext().optional(),
  NumberOfBytes: awsInteger(1, 1024).optional(),
  KeySpec: awsEnum(DATA_KEY_SPECS, KEY_SPEC_LISTED).optional(),
  GrantTokens: grantTokens().optional(),
  DryRun: awsBoolean().optional(),
};

/** AWS's texts (GenerateDataKey; GenerateDataKeyPair answers the same, see its file). */
export const NEITHER_OR_BOTH = 'Please specify either number of bytes or key spec.';
export const ASYMMETRIC_KEY = 'You cannot generate a data key with an asymmetric CMK';
export const RECIPIENT_UNSUPPORTED =
  'Recipient is not supported: this gateway does not support attested environments (Nitro Enclaves, NitroTPM).';

/** The state and key-spec checks for a KMS key that is to encrypt a data key (or data key pair). */
export function assertDataKeyWrapper(keys: KeyStore, key: KmsKey): void {
  keys.assertUsable(key);
  if (key.keySpec !== 'SYMMETRIC_DEFAULT') throw new InvalidKeyUsageException(ASYMMETRIC_KEY);
}

export interface DataKeyInput {
  KeyId: string;
  EncryptionContext?: EncryptionContext | undefined;
  NumberOfBytes?: number | undefined;
  KeySpec?: (typeof DATA_KEY_SPECS)[number] | undefined;
  DryRun?: boolean | undefined;
  /** Only GenerateDataKey has it; refused when given. */
  Recipient?: Record<string, unknown> | undefined;
}

/**
 * Makes a data key and its ciphertext. `withPlaintext` false: the plaintext
 * is wiped without ever being encoded.
 */
export async function makeDataKey(
  keys: KeyStore,
  hsm: Hsm,
  req: DataKeyInput,
  withPlaintext: boolean,
): Promise<Record<string, unknown>> {
  const key = keys.resolve(req.KeyId);
  if ((req.KeySpec === undefined) === (req.NumberOfBytes === undefined)) throw new ValidationException(NEITHER_OR_BOTH);
  assertDataKeyWrapper(keys, key);
  if (req.Recipient !== undefined) throw new UnsupportedOperationException(RECIPIENT_UNSUPPORTED);
  if (req.DryRun === true) throw new DryRunOperationException();
  const length = req.NumberOfBytes ?? DATA_KEY_BYTES[req.KeySpec ?? 'AES_256'];
  const sealed = await sealNewDataKey(hsm, key, length, req.EncryptionContext, withPlaintext);
  const response: Record<string, unknown> = { CiphertextBlob: sealed.ciphertext };
  if (sealed.plaintext !== undefined) response['Plaintext'] = sealed.plaintext;
  response['KeyId'] = key.arn;
  return response;
}

/**
 * A data key drawn from the token's RNG and sealed under the KMS key in the
 * same HSM call (one round trip instead of two), in exactly the blob
 * Encrypt makes. The plaintext buffer is wiped whatever happens.
 */
async function sealNewDataKey(
  hsm: Hsm,
  key: KmsKey,
  length: number,
  context: EncryptionContext | undefined,
  withPlaintext: boolean,
): Promise<{ ciphertext: string; plaintext?: string }> {
  const { version, name } = key.currentMaterial;
  const header = blobHeader(key.keyId, version);
  const { plaintext, iv, sealed } = await hsm.aesGcmSealRandom(name, length, blobAad(header, context));
  try {
    const ciphertext = encodeBlob(header, iv, sealed).toString('base64');
    return withPlaintext ? { ciphertext, plaintext: takeBase64(plaintext) } : { ciphertext };
  } finally {
    plaintext.fill(0);
  }
}

/**
 * A secret made for the caller (a data key, a key pair's private half),
 * encrypted under the KMS key as Encrypt would, returned base64 with its
 * plaintext when asked. The secret's buffer is wiped whatever happens.
 */
export async function sealSecret(
  hsm: Hsm,
  key: KmsKey,
  secret: Buffer,
  context: EncryptionContext | undefined,
  withPlaintext: boolean,
): Promise<{ ciphertext: string; plaintext?: string }> {
  try {
    const blob = await encryptSymmetric(hsm, key, secret, context);
    return withPlaintext ? { ciphertext: blob.toString('base64'), plaintext: takeBase64(secret) } : { ciphertext: blob.toString('base64') };
  } finally {
    secret.fill(0);
  }
}

export const generateDataKey = defineOperation(
  z.object({ ...dataKeyRequest, Recipient: awsStructure().optional() }),
  (req, { keys, hsm }) => makeDataKey(keys, hsm, req, true),
);
