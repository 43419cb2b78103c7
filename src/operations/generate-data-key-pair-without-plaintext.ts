/**
 * GenerateDataKeyPairWithoutPlaintext: GenerateDataKeyPair
 * (generate-data-key-pair.ts) without PrivateKeyPlaintext; the private key
 * is wiped as soon as it is encrypted. The request has no Recipient member.
 */
import { z } from 'zod';
import { dataKeyPairRequest, makeDataKeyPair } from './generate-data-key-pair.js';
import { defineOperation } from './operation.js';

export const generateDataKeyPairWithoutPlaintext = defineOperation(z.object(dataKeyPairRequest), (req, { keys, hsm }) =>
  makeDataKeyPair(keys, hsm, req, false),
);
