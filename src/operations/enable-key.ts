/**
 * EnableKey: Disabled -> Enabled (an enabled key stays so, nothing written).
 * A key pending deletion: KMSInvalidStateException; CancelKeyDeletion first.
 */
import { z } from 'zod';
import { KMSInvalidStateException } from '../errors.js';
import { defineOperation } from './operation.js';
import { awsString } from './schema.js';

export const enableKey = defineOperation(z.object({ KeyId: awsString(1, 2048) }), async (req, { keys }) => {
  const key = keys.resolve(req.KeyId);
  if (key.state === 'Enabled') return {};
  await keys.updateKey(key.keyId, (r) => {
    if (r.keyState === 'PendingDeletion') throw new KMSInvalidStateException(`${key.arn} is pending deletion.`);
    r.keyState = 'Enabled';
    return r;
  });
  return {};
});
