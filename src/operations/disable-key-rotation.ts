/**
 * DisableKeyRotation: no more automatic rotations (the next date is dropped;
 * a later EnableKeyRotation starts a new schedule). Rotations already made
 * stay: their material still decrypts.
 */
import { z } from 'zod';
import { defineOperation } from './operation.js';
import { assertRotatable } from './key-rotation.js';
import { awsString } from './schema.js';

export const disableKeyRotation = defineOperation(
  z.object({
    KeyId: awsString(1, 2048),
  }),
  async (req, { keys }) => {
    const key = keys.resolve(req.KeyId);
    await keys.updateKey(key.keyId, (r) => {
      assertRotatable(r, key.arn);
      r.rotation = { enabled: false, periodDays: r.rotation.periodDays };
      return r;
    });
    return {};
  },
);
