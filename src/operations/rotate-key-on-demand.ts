/**
 * RotateKeyOnDemand: new key material on the token, current from now on;
 * ciphertexts under older material still decrypt (the blob names its material
 * version). It does not move the automatic schedule. AWS allows 25 on-demand
 * rotations per key (the current KMS model's documentation; it was 10); the
 * next one is LimitExceededException with AWS's text (recorded against AWS in
 * localstack's test_key_rotations_limits). Checks run inside the key's lock,
 * so concurrent calls cannot pass the quota together.
 */
import { z } from 'zod';
import { LimitExceededException } from '../errors.js';
import { defineOperation } from './operation.js';
import { assertRotatable } from './key-rotation.js';
import { awsString } from './schema.js';

export const ON_DEMAND_ROTATION_LIMIT = 25;

export const rotateKeyOnDemand = defineOperation(
  z.object({
    KeyId: awsString(1, 2048),
  }),
  async (req, { keys }) => {
    const key = keys.resolve(req.KeyId);
    await keys.rotate(key.keyId, 'ON_DEMAND', (r) => {
      assertRotatable(r, key.arn);
      const done = r.materials.filter((m) => m.rotationType === 'ON_DEMAND').length;
      if (done >= ON_DEMAND_ROTATION_LIMIT)
        throw new LimitExceededException(
          `The on-demand rotations limit has been reached for the given keyId. No more on-demand rotations can be performed for this key: ${key.arn}`,
        );
    });
    return { KeyId: key.keyId };
  },
);
