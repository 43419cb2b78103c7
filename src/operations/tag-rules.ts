/**
 * KMS tag rules shared by CreateKey, TagResource, UntagResource and
 * ListResourceTags. The model constrains TagKey to 1..128 and TagValue to
 * 0..256 characters (ValidationException, from the schema); the service then
 * answers TagException for duplicate keys in one request, more than 50 tags
 * in one request, and keys with the reserved `aws:` prefix (any case).
 * Texts as AWS sends them (recorded against AWS by LocalStack's KMS tests).
 */
import { LimitExceededException, TagException } from '../errors.js';
import type { Tag } from '../keys/records.js';
import { awsList, awsString, awsStruct } from './schema.js';

/** Tags per KMS key (AWS quota; also the most one request may carry). */
export const MAX_TAGS_PER_KEY = 50;

export const tagList = () => awsList(awsStruct({ TagKey: awsString(1, 128), TagValue: awsString(0, 256) }));
export const tagKeyList = () => awsList(awsString(1, 128));

function assertNotReserved(tagKey: string): void {
  if (tagKey.toLowerCase().startsWith('aws:')) throw new TagException('Tags beginning with aws: are reserved');
}

/** The request's own tag rules, in AWS's order: duplicates, count, reserved prefix. */
export function assertTagsAllowed(tags: readonly Tag[]): void {
  if (new Set(tags.map((t) => t.TagKey)).size < tags.length) throw new TagException('Duplicate tag keys');
  if (tags.length > MAX_TAGS_PER_KEY) throw new TagException('Too many tags');
  for (const t of tags) assertNotReserved(t.TagKey);
}

export function assertTagKeysAllowed(tagKeys: readonly string[]): void {
  for (const k of tagKeys) assertNotReserved(k);
}

/** Tags in the order ListResourceTags returns them: by tag key. */
export function sortTags(tags: readonly Tag[]): Tag[] {
  return [...tags].sort((a, b) => (a.TagKey < b.TagKey ? -1 : a.TagKey > b.TagKey ? 1 : 0));
}

/**
 * A key's tags with `added` set (a tag key already there gets the new
 * value). More than the per-key quota in total: LimitExceededException.
 */
export function mergeTags(current: readonly Tag[], added: readonly Tag[]): Tag[] {
  const byKey = new Map(current.map((t) => [t.TagKey, t.TagValue]));
  for (const t of added) byKey.set(t.TagKey, t.TagValue);
  if (byKey.size > MAX_TAGS_PER_KEY)
    throw new LimitExceededException(`The request was rejected because a quota was exceeded: a KMS key can have at most ${MAX_TAGS_PER_KEY} tags.`);
  return sortTags([...byKey].map(([TagKey, TagValue]) => ({ TagKey, TagValue })));
}
