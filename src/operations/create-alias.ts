/**
 * CreateAlias: a new alias for a key named by key id or key ARN. Checks in
 * AWS's order: shape, alias name rules, target not an alias, name not taken
 * (AlreadyExistsException names the alias ARN, as AWS does), target key
 * exists and is not pending deletion (disabled keys may get aliases).
 */
import { z } from 'zod';
import { AlreadyExistsException, KMSInvalidStateException } from '../errors.js';
import { aliasName, assertAliasName, assertNamesAKey } from './alias-name.js';
import { defineOperation } from './operation.js';
import { awsString } from './schema.js';

export const createAlias = defineOperation(
  z.object({
    AliasName: aliasName(),
    TargetKeyId: awsString(1, 2048),
  }),
  async (req, { keys }) => {
    assertAliasName(req.AliasName, { reserved: 'refuse' });
    assertNamesAKey(req.TargetKeyId);
    const taken = () => new AlreadyExistsException(`An alias with the name ${keys.aliasArn(req.AliasName)} already exists`);
    if (keys.findAlias(req.AliasName) !== undefined) throw taken();
    const key = keys.resolve(req.TargetKeyId);
    if (key.state === 'PendingDeletion') throw new KMSInvalidStateException(`${key.arn} is pending deletion.`);
    await keys.createAlias(req.AliasName, key.keyId, taken);
    return {};
  },
);
