/**
 * TagResource: adds tags to a key, or gives existing tag keys new values.
 * TagException for duplicate keys in the request, more than 50 tags in it,
 * or the reserved aws: prefix; LimitExceededException when the key would end
 * with more than 50 tags. A key pending deletion: KMSInvalidStateException.
 */
import { z } from 'zod';
import { KMSInvalidStateException } from '../errors.js';
import { defineOperation } from './operation.js';
import { awsString } from './schema.js';
import { assertTagsAllowed, mergeTags, tagList } from './tag-rules.js';

export const tagResource = defineOperation(z.object({ KeyId: awsString(1, 2048), Tags: tagList() }), async (req, { keys }) => {
  assertTagsAllowed(req.Tags);
  const key = keys.resolve(req.KeyId);
  await keys.updateKey(key.keyId, (r) => {
    if (r.keyState === 'PendingDeletion') throw new KMSInvalidStateException(`${key.arn} is pending deletion.`);
    r.tags = mergeTags(r.tags, req.Tags);
    return r;
  });
  return {};
});
