/**
 * DescribeKey: the KeyMetadata of a key in any state (disabled, pending
 * deletion, material missing on the token), named by any of the four KeyId
 * forms. GrantTokens are validated and otherwise ignored (no grants yet).
 */
import { z } from 'zod';
import { keyMetadata } from './key-metadata.js';
import { defineOperation } from './operation.js';
import { awsString, grantTokens } from './schema.js';

export const describeKey = defineOperation(
  z.object({
    KeyId: awsString(1, 2048),
    GrantTokens: grantTokens().optional(),
  }),
  async (req, { keys }) => ({ KeyMetadata: keyMetadata(keys.resolve(req.KeyId), keys) }),
);
