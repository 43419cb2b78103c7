/**
 * GetKeyRotationStatus, for a key in any state. RotationPeriodInDays and
 * NextRotationDate only while automatic rotation is on (as AWS answers,
 * recorded in localstack's AWS-validated test_key_enable_rotation_status).
 * A key pending deletion reports false ("While a KMS key is pending deletion,
 * its key rotation status is false"); a disabled key keeps its status. RSA
 * keys report false, as AWS now answers for asymmetric keys (it used to be
 * UnsupportedOperationException; floci-io/floci#618). On-demand rotations
 * finish before RotateKeyOnDemand answers, so OnDemandRotationStartDate is
 * never sent.
 */
import { z } from 'zod';
import { defineOperation } from './operation.js';
import { epochSeconds } from './key-rotation.js';
import { awsString } from './schema.js';

export const getKeyRotationStatus = defineOperation(
  z.object({
    KeyId: awsString(1, 2048),
  }),
  async (req, { keys }) => {
    const key = keys.resolve(req.KeyId);
    const { enabled, periodDays, nextRotationDate } = key.rotation;
    const on = enabled && key.state !== 'PendingDeletion' && key.keySpec === 'SYMMETRIC_DEFAULT';
    if (!on) return { KeyRotationEnabled: false, KeyId: key.keyId };
    return {
      KeyRotationEnabled: true,
      KeyId: key.keyId,
      RotationPeriodInDays: periodDays,
      ...(nextRotationDate === undefined ? {} : { NextRotationDate: epochSeconds(nextRotationDate) }),
    };
  },
);
