/**
 * Encrypt: SYMMETRIC_DEFAULT (AES-256-GCM on the token, self-describing
 * blob) or RSAES_OAEP_SHA_1/256 (raw OAEP output, modulus-length bytes).
 * Checks in AWS's order: shape, key, state, algorithm vs key spec, context,
 * size limits, DryRun last. The encrypting itself is encrypt-any.ts, shared
 * with ReEncrypt.
 */
import { z } from 'zod';
import { DryRunOperationException } from '../errors.js';
import { assertPlaintextFits, encryptTarget, sealFor } from './encrypt-any.js';
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
    try {
      const target = encryptTarget(keys, req.KeyId, req.EncryptionAlgorithm, req.EncryptionContext);
      assertPlaintextFits(target, req.Plaintext);
      if (req.DryRun === true) throw new DryRunOperationException();
      const blob = await sealFor(hsm, target, req.Plaintext);
      return { CiphertextBlob: blob.toString('base64'), KeyId: target.key.arn, EncryptionAlgorithm: target.algorithm };
    } finally {
      req.Plaintext.fill(0);
    }
  },
);
