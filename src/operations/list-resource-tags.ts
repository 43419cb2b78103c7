/**
 * ListResourceTags: a key's tags (in any key state), sorted by tag key.
 * Limit: the model allows 1..1000, AWS documents 1..50 with a default of
 * 50, so a page never holds more than 50 tags. Marker as ListKeys.
 */
import { z } from 'zod';
import { marker } from './list-keys.js';
import { defineOperation } from './operation.js';
import { paginate } from './pagination.js';
import { awsInteger, awsString } from './schema.js';
import { MAX_TAGS_PER_KEY, sortTags } from './tag-rules.js';

export const listResourceTags = defineOperation(
  z.object({ KeyId: awsString(1, 2048), Limit: awsInteger(1, 1000).optional(), Marker: marker().optional() }),
  async (req, { keys }) => {
    const key = keys.resolve(req.KeyId);
    const limit = Math.min(req.Limit ?? MAX_TAGS_PER_KEY, MAX_TAGS_PER_KEY);
    const page = paginate(sortTags(key.tags), (t) => t.TagKey, limit, req.Marker);
    return {
      Tags: page.items.map((t) => ({ TagKey: t.TagKey, TagValue: t.TagValue })),
      Truncated: page.truncated,
      ...(page.nextMarker === undefined ? {} : { NextMarker: page.nextMarker }),
    };
  },
);
