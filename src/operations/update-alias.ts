/**
 * UpdateAlias: points an existing alias at another key. AWS requires the new
 * target to be the same type as the current one (both symmetric or both
 * asymmetric) with the same key usage; the new target must not be pending
 * deletion (the current one may be). An unknown alias: NotFoundException
 * "Alias <alias-arn> is not found.".
 */
import { z } from 'zod';
import { KMSInvalidStateException, NotFoundException, ValidationException } from '../errors.js';
import type { KmsKey } from '../keys/key-store.js';
import { aliasName, assertAliasName, assertNamesAKey } from './alias-name.js';
import { defineOperation } from './operation.js';
import { awsString } from './schema.js';

const symmetric = (k: KmsKey): boolean => k.keySpec === 'SYMMETRIC_DEFAULT';

export const updateAlias = defineOperation(
  z.object({
    AliasName: aliasName(),
    TargetKeyId: awsString(1, 2048),
  }),
  async (req, { keys }) => {
    assertAliasName(req.AliasName, { reserved: 'refuse' });
    assertNamesAKey(req.TargetKeyId);
    const aliasArn = keys.aliasArn(req.AliasName);
    const missing = () => new NotFoundException(`Alias ${aliasArn} is not found.`);
    const current = keys.findAlias(req.AliasName);
    if (current === undefined) throw missing();
    const key = keys.resolve(req.TargetKeyId);
    if (key.state === 'PendingDeletion') throw new KMSInvalidStateException(`${key.arn} is pending deletion.`);
    const was = keys.findById(current.targetKeyId);
    if (was !== undefined && (symmetric(was) !== symmetric(key) || was.keyUsage !== key.keyUsage))
      throw new ValidationException(
        `${aliasArn} is associated with a ${symmetric(was) ? 'symmetric' : 'asymmetric'} ${was.keyUsage} key; ` +
          `UpdateAlias can only move it to a key of the same type and key usage, and ${key.arn} is a ` +
          `${symmetric(key) ? 'symmetric' : 'asymmetric'} ${key.keyUsage} key.`,
      );
    await keys.updateAlias(req.AliasName, key.keyId, missing);
    return {};
  },
);
