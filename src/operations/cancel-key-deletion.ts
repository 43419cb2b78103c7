/**
 * CancelKeyDeletion: a key pending deletion becomes Disabled (as AWS leaves
 * it: EnableKey makes it usable again). Any other state:
 * KMSInvalidStateException.
 */
import { z } from 'zod';
import { KMSInvalidStateException } from '../errors.js';
import { defineOperation } from './operation.js';
import { awsString } from './schema.js';

export const cancelKeyDeletion = defineOperation(z.object({ KeyId: awsString(1, 2048) }), async (req, { keys }) => {
  const key = keys.resolve(req.KeyId);
  await keys.updateKey(key.keyId, (r) => {
    if (r.keyState !== 'PendingDeletion') throw new KMSInvalidStateException(`${key.arn} is not pending deletion.`);
    r.keyState = 'Disabled';
    delete r.deletionDate;
    delete r.pendingWindowInDays;
    return r;
  });
  return { KeyId: key.arn };
});
