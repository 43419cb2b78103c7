/**
 * ListKeyRotations: one entry per completed rotation (every material after
 * the key's first), oldest first, with RotationDate (epoch seconds) and
 * RotationType, KeyMaterialState CURRENT for the material in use. With
 * IncludeKeyMaterial ALL_KEY_MATERIAL the first material is listed too (it
 * has no rotation date or type). Any key state; RSA keys have no rotations:
 * UnsupportedOperationException. Limit 1..1000, default 100.
 */
import { z } from 'zod';
import type { MaterialRecord } from '../keys/records.js';
import { defineOperation } from './operation.js';
import { assertRotatableSpec, epochSeconds } from './key-rotation.js';
import { paginate } from './pagination.js';
import { awsEnum, awsInteger, awsString } from './schema.js';

const DEFAULT_LIMIT = 100;

export const listKeyRotations = defineOperation(
  z.object({
    KeyId: awsString(1, 2048),
    IncludeKeyMaterial: awsEnum(['ALL_KEY_MATERIAL', 'ROTATIONS_ONLY']).optional(),
    Limit: awsInteger(1, 1000).optional(),
    Marker: awsString(1, 1024).optional(),
  }),
  async (req, { keys }) => {
    const key = keys.resolve(req.KeyId);
    assertRotatableSpec(key);
    const all = req.IncludeKeyMaterial === 'ALL_KEY_MATERIAL';
    const materials = [...key.materials]
      .sort((a, b) => a.version - b.version)
      .filter((m) => all || m.rotationType !== undefined);
    const page = paginate(materials, (m) => String(m.version), req.Limit ?? DEFAULT_LIMIT, req.Marker);
    const entry = (m: MaterialRecord) => ({
      KeyId: key.keyId,
      KeyMaterialState: m.version === key.currentMaterial.version ? 'CURRENT' : 'NON_CURRENT',
      ...(m.rotationType === undefined ? {} : { RotationDate: epochSeconds(m.createdAt), RotationType: m.rotationType }),
    });
    return {
      Rotations: page.items.map(entry),
      Truncated: page.truncated,
      ...(page.nextMarker === undefined ? {} : { NextMarker: page.nextMarker }),
    };
  },
);
