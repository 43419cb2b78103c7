/**
 * ListKeys: every key of the gateway, pending deletion included (destroyed
 * keys are gone), oldest first, as {KeyId, KeyArn}; Limit 1..1000 (default
 * 100) and an opaque Marker (InvalidMarkerException for one it did not issue).
 */
import { z } from 'zod';
import { defineOperation } from './operation.js';
import { paginate } from './pagination.js';
import { awsInteger, awsString } from './schema.js';

/** The model's MarkerType: 1..1024 characters of [\u0020-\u00FF]. */
export const marker = () =>
  awsString(1, 1024).refine((m) => /^[\u0020-\u00FF]*$/.test(m), {
    error: 'Member must satisfy regular expression pattern: [\\u0020-\\u00FF]*',
  });

export const listKeys = defineOperation(
  z.object({
    Limit: awsInteger(1, 1000).optional(),
    Marker: marker().optional(),
  }),
  async (req, { keys }) => {
    const page = paginate(keys.list(), (k) => k.keyId, req.Limit ?? 100, req.Marker);
    return {
      Keys: page.items.map((k) => ({ KeyId: k.keyId, KeyArn: k.arn })),
      Truncated: page.truncated,
      ...(page.nextMarker === undefined ? {} : { NextMarker: page.nextMarker }),
    };
  },
);
