/**
 * UpdateKeyDescription: replaces the description (0..8192 characters; the
 * empty string clears it) of an enabled or disabled key. A key pending
 * deletion: KMSInvalidStateException.
 */
import { z } from 'zod';
import { KMSInvalidStateException } from '../errors.js';
import { defineOperation } from './operation.js';
import { awsString } from './schema.js';

export const updateKeyDescription = defineOperation(
  z.object({ KeyId: awsString(1, 2048), Description: awsString(0, 8192) }),
  async (req, { keys }) => {
    const key = keys.resolve(req.KeyId);
    await keys.updateKey(key.keyId, (r) => {
      if (r.keyState === 'PendingDeletion') throw new KMSInvalidStateException(`${key.arn} is pending deletion.`);
      r.description = req.Description;
      return r;
    });
    return {};
  },
);
