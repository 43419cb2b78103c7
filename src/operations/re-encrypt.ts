/**
 * ReEncrypt: Decrypt then Encrypt inside one call, so the plaintext never
 * leaves the gateway (and is wiped before the call returns). The source side
 * is decrypt-any.ts (exactly Decrypt: SourceKeyId optional for a symmetric
 * blob, IncorrectKeyException when it names another key, RSA needs
 * SourceKeyId and SourceEncryptionAlgorithm), the destination side
 * encrypt-any.ts (exactly Encrypt). Checks in order: shape, source key and
 * its state, destination key, its state, algorithm and context, the source
 * ciphertext on the token (InvalidCiphertextException), the destination's
 * RSA size limit, DryRun last. DryRun decrypts the source to make every
 * check but does not encrypt; AWS's DryRunModifiers (IGNORE_CIPHERTEXT) is
 * not supported, so CiphertextBlob is required as in Decrypt.
 */
import { z } from 'zod';
import { DryRunOperationException } from '../errors.js';
import { decryptSource, openSource } from './decrypt-any.js';
import { assertPlaintextFits, encryptTarget, sealFor } from './encrypt-any.js';
import { defineOperation } from './operation.js';
import { awsBlob, awsBoolean, awsString, encryptionAlgorithm, encryptionContext, grantTokens } from './schema.js';

export const reEncrypt = defineOperation(
  z.object({
    CiphertextBlob: awsBlob(1, 6144),
    SourceEncryptionContext: encryptionContext().optional(),
    SourceKeyId: awsString(1, 2048).optional(),
    DestinationKeyId: awsString(1, 2048),
    DestinationEncryptionContext: encryptionContext().optional(),
    SourceEncryptionAlgorithm: encryptionAlgorithm().optional(),
    DestinationEncryptionAlgorithm: encryptionAlgorithm().optional(),
    GrantTokens: grantTokens().optional(),
    DryRun: awsBoolean().optional(),
  }),
  async (req, { keys, hsm }) => {
    const source = decryptSource(keys, {
      ciphertext: req.CiphertextBlob,
      keyId: req.SourceKeyId,
      context: req.SourceEncryptionContext,
      algorithm: req.SourceEncryptionAlgorithm,
    });
    const target = encryptTarget(keys, req.DestinationKeyId, req.DestinationEncryptionAlgorithm, req.DestinationEncryptionContext);
    const plaintext = await openSource(hsm, source);
    try {
      assertPlaintextFits(target, plaintext);
      if (req.DryRun === true) throw new DryRunOperationException();
      const blob = await sealFor(hsm, target, plaintext);
      return {
        CiphertextBlob: blob.toString('base64'),
        SourceKeyId: source.key.arn,
        KeyId: target.key.arn,
        SourceEncryptionAlgorithm: source.algorithm,
        DestinationEncryptionAlgorithm: target.algorithm,
      };
    } finally {
      plaintext.fill(0);
    }
  },
);
