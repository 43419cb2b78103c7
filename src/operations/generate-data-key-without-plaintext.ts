/**
 * GenerateDataKeyWithoutPlaintext: GenerateDataKey (generate-data-key.ts)
 * without the Plaintext member; the data key is wiped as soon as it is
 * encrypted. The request has no Recipient member.
 */
import { z } from 'zod';
import { dataKeyRequest, makeDataKey } from './generate-data-key.js';
import { defineOperation } from './operation.js';

export const generateDataKeyWithoutPlaintext = defineOperation(z.object(dataKeyRequest), (req, { keys, hsm }) =>
  makeDataKey(keys, hsm, req, false),
);
