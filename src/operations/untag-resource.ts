/**
 * UntagResource: removes tags by key; a tag key the key does not have is
 * not an error. The reserved aws: prefix: TagException. A key pending
 * deletion: KMSInvalidStateException.
 */
import { z } from 'zod';
import { KMSInvalidStateException } from '../errors.js';
import { defineOperation } from './operation.js';
import { awsString } from './schema.js';
import { assertTagKeysAllowed, tagKeyList } from './tag-rules.js';

export const untagResource = defineOperation(z.object({ KeyId: awsString(1, 2048), TagKeys: tagKeyList() }), async (req, { keys }) => {
  assertTagKeysAllowed(req.TagKeys);
  const key = keys.resolve(req.KeyId);
  const removed = new Set(req.TagKeys);
  await keys.updateKey(key.keyId, (r) => {
    if (r.keyState === 'PendingDeletion') throw new KMSInvalidStateException(`${key.arn} is pending deletion.`);
    r.tags = r.tags.filter((t) => !removed.has(t.TagKey));
    return r;
  });
  return {};
});
