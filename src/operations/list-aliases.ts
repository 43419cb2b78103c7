/**
 * ListAliases: every alias by name, or only those of the key named by KeyId
 * (any of the four KeyId forms). Limit: the model allows 1..1000 (so larger
 * values fail validation with the model's text) but AWS's reference says
 * 1..100, default 50; KMS "might return fewer" items than asked, so a Limit
 * over 100 is served as 100. Unlike AWS there are no AWS managed aliases.
 * Dates are epoch seconds, TargetKeyId the bare key id, as AWS sends them.
 */
import { z } from 'zod';
import { defineOperation } from './operation.js';
import { paginate } from './pagination.js';
import { awsInteger, awsString } from './schema.js';

const DEFAULT_LIMIT = 50;
const MAX_LIMIT = 100;

const epochSeconds = (d: Date): number => d.getTime() / 1000;

export const listAliases = defineOperation(
  z.object({
    KeyId: awsString(1, 2048).optional(),
    Limit: awsInteger(1, 1000).optional(),
    Marker: awsString(1, 1024).optional(),
  }),
  async (req, { keys }) => {
    const keyId = req.KeyId === undefined ? undefined : keys.resolve(req.KeyId).keyId;
    const all = keys.listAliases().filter((a) => keyId === undefined || a.targetKeyId === keyId);
    const limit = Math.min(req.Limit ?? DEFAULT_LIMIT, MAX_LIMIT);
    const page = paginate(all, (a) => a.aliasName, limit, req.Marker);
    return {
      Aliases: page.items.map((a) => ({
        AliasName: a.aliasName,
        AliasArn: a.aliasArn,
        TargetKeyId: a.targetKeyId,
        CreationDate: epochSeconds(a.creationDate),
        LastUpdatedDate: epochSeconds(a.lastUpdatedDate),
      })),
      Truncated: page.truncated,
      ...(page.nextMarker === undefined ? {} : { NextMarker: page.nextMarker }),
    };
  },
);
