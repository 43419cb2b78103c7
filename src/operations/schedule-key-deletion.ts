/**
 * ScheduleKeyDeletion: the key becomes PendingDeletion (unusable, and
 * Enabled false) until now + PendingWindowInDays days (7..30, default 30);
 * then KeyStore.destroyDueKeys destroys its token objects, its aliases and
 * its record. The model allows 1..365 (ValidationException outside); AWS
 * itself then refuses anything outside 7..30 with its own text. Scheduling
 * a key already pending deletion: KMSInvalidStateException.
 */
import { z } from 'zod';
import { KMSInvalidStateException, ValidationException } from '../errors.js';
import { epochSeconds } from './key-metadata.js';
import { defineOperation } from './operation.js';
import { awsInteger, awsString } from './schema.js';

export const scheduleKeyDeletion = defineOperation(
  z.object({ KeyId: awsString(1, 2048), PendingWindowInDays: awsInteger(1, 365).optional() }),
  async (req, { keys }) => {
    const days = req.PendingWindowInDays ?? 30;
    // AWS's text, as a real AWS answer shows it (no trailing period).
    if (days < 7 || days > 30) throw new ValidationException('PendingWindowInDays must be between 7 and 30');
    const key = keys.resolve(req.KeyId);
    const scheduled = await keys.updateKey(key.keyId, (r) => {
      if (r.keyState === 'PendingDeletion') throw new KMSInvalidStateException(`${key.arn} is pending deletion.`);
      r.keyState = 'PendingDeletion';
      r.deletionDate = new Date(keys.clock.now() + days * keys.clock.dayMs).toISOString();
      r.pendingWindowInDays = days;
      return r;
    });
    return {
      KeyId: scheduled.arn,
      DeletionDate: epochSeconds(scheduled.deletionDate as Date),
      KeyState: scheduled.state,
      PendingWindowInDays: days,
    };
  },
);
