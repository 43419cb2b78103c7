/**
 * GenerateRandom: 1..1024 bytes from the token's RNG. NumberOfBytes is
 * optional in AWS's model but required by the service ("NumberOfBytes is
 * required."). This gateway has no custom key stores, so any
 * CustomKeyStoreId names one that does not exist
 * (CustomKeyStoreNotFoundException), and it serves no attested
 * environments, so Recipient is refused (UnsupportedOperationException).
 */
import { z } from 'zod';
import { CustomKeyStoreNotFoundException, UnsupportedOperationException, ValidationException } from '../errors.js';
import { takeBase64 } from './decrypt-any.js';
import { RECIPIENT_UNSUPPORTED } from './generate-data-key.js';
import { defineOperation } from './operation.js';
import { awsInteger, awsString, awsStructure } from './schema.js';

export const generateRandom = defineOperation(
  z.object({
    NumberOfBytes: awsInteger(1, 1024).optional(),
    CustomKeyStoreId: awsString(1, 64).optional(),
    Recipient: awsStructure().optional(),
  }),
  async (req, { hsm }) => {
    if (req.NumberOfBytes === undefined) throw new ValidationException('NumberOfBytes is required.');
    if (req.CustomKeyStoreId !== undefined)
      throw new CustomKeyStoreNotFoundException(
        `Custom key store '${req.CustomKeyStoreId}' does not exist: this gateway has no custom key stores.`,
      );
    if (req.Recipient !== undefined) throw new UnsupportedOperationException(RECIPIENT_UNSUPPORTED);
    const bytes = await hsm.random(req.NumberOfBytes);
    return { Plaintext: takeBase64(bytes) };
  },
);
