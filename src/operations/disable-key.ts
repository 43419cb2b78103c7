/**
 * DisableKey: Enabled -> Disabled (a disabled key stays so, nothing
 * written); cryptographic operations then answer DisabledException. A key
 * pending deletion: KMSInvalidStateException.
 */
import { z } from 'zod';
import { KMSInvalidStateException } from '../errors.js';
import { defineOperation } from './operation.js';
import { awsString } from './schema.js';

export const disableKey = defineOperation(z.object({ KeyId: awsString(1, 2048) }), async (req, { keys }) => {
  const key = keys.resolve(req.KeyId);
  if (key.state === 'Disabled') return {};
  await keys.updateKey(key.keyId, (r) => {
    if (r.keyState === 'PendingDeletion') throw new KMSInvalidStateException(`${key.arn} is pending deletion.`);
    r.keyState = 'Disabled';
    return r;
  });
  return {};
});
