/**
 * DeleteAlias: removes an alias; its key is untouched, in whatever state it
 * is. Afterwards the alias answers NotFoundException wherever it is used.
 */
import { z } from 'zod';
import { NotFoundException } from '../errors.js';
import { aliasName, assertAliasName } from './alias-name.js';
import { defineOperation } from './operation.js';

export const deleteAlias = defineOperation(
  z.object({
    AliasName: aliasName(),
  }),
  async (req, { keys }) => {
    assertAliasName(req.AliasName, { reserved: 'allow' });
    await keys.deleteAlias(req.AliasName, () => new NotFoundException(`Alias ${keys.aliasArn(req.AliasName)} is not found.`));
    return {};
  },
);
