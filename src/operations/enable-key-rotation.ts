/**
 * EnableKeyRotation: automatic rotation every RotationPeriodInDays (90..2560,
 * default 365), the first one a period from now. Calling it again sets a new
 * period and restarts the schedule from now. The key store's background round
 * (KeyStore.rotateDueKeys) does the rotations.
 */
import { z } from 'zod';
import { defineOperation } from './operation.js';
import { assertRotatable } from './key-rotation.js';
import { awsInteger, awsString } from './schema.js';

const DEFAULT_PERIOD_DAYS = 365;

export const enableKeyRotation = defineOperation(
  z.object({
    KeyId: awsString(1, 2048),
    RotationPeriodInDays: awsInteger(90, 2560).optional(),
  }),
  async (req, { keys }) => {
    const key = keys.resolve(req.KeyId);
    const periodDays = req.RotationPeriodInDays ?? DEFAULT_PERIOD_DAYS;
    await keys.updateKey(key.keyId, (r) => {
      assertRotatable(r, key.arn);
      const next = keys.clock.now() + periodDays * keys.clock.dayMs;
      r.rotation = { enabled: true, periodDays, nextRotationDate: new Date(next).toISOString() };
      return r;
    });
    return {};
  },
);
