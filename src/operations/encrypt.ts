/**
 * Encrypt: SYMMETRIC_DEFAULT (AES-256-GCM on the token, self-describing
 * blob) or RSAES_OAEP_SHA_1/256 (raw OAEP output, modulus-length bytes).
 * Checks in AWS's order: shape, key, state, algorithm vs key spec, context,
 * size limits, DryRun last.
 */
import { z } from 'zod';
import { DryRunOperationException } from '../errors.js';
import {
  assertAlgorithmFits,
  assertNoContextForAsymmetric,
  assertRsaPlaintextFits,
  encryptSymmetric,
  isRsaAlgorithm,
  rsaEncrypt,
} from '../keys/key-crypto.js';
import { defineOperation } from './operation.js';
import { awsBlob, awsBoolean, awsString, encryptionAlgorithm, encryptionContext, grantTokens } from './schema.js';

export const encrypt = defineOperation(
  z.object({
    KeyId: awsString(1, 2048),
    Plaintext: awsBlob(1, 4096),
    EncryptionContext: encryptionContext().optional(),
    GrantTokens: grantTokens().optional(),
    EncryptionAlgorithm: encryptionAlgorithm().optional(),
    DryRun: awsBoolean().optional(),
  }),
  async (req, { keys, hsm }) => {
    const key = keys.resolve(req.KeyId);
    keys.assertUsable(key);
    const algorithm = req.EncryptionAlgorithm ?? 'SYMMETRIC_DEFAULT';
    assertAlgorithmFits(key, algorithm);
    if (isRsaAlgorithm(algorithm)) {
      assertNoContextForAsymmetric(req.EncryptionContext);
      assertRsaPlaintextFits(key, algorithm, req.Plaintext);
    }
    if (req.DryRun === true) throw new DryRunOperationException();
    let blob: Buffer;
    try {
      blob = isRsaAlgorithm(algorithm)
        ? await rsaEncrypt(hsm, key, algorithm, req.Plaintext)
        : await encryptSymmetric(hsm, key, req.Plaintext, req.EncryptionContext);
    } finally {
      req.Plaintext.fill(0);
    }
    return { CiphertextBlob: blob.toString('base64'), KeyId: key.arn, EncryptionAlgorithm: algorithm };
  },
);
