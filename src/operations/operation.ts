/**
 * What an operation is: a request schema and a handler. The api layer looks
 * operations up in the explicit registry (registry.ts) by their exact KMS
 * name, validates the body with the schema and calls the handler with the
 * parsed request and the gateway's dependencies.
 */
import type { z } from 'zod';
import type { Hsm } from '../hsm/hsm.js';
import type { KeyStore } from '../keys/key-store.js';

export interface OperationContext {
  keys: KeyStore;
  hsm: Hsm;
}

export interface Operation<S extends z.ZodType = z.ZodType> {
  schema: S;
  handler(request: z.output<S>, ctx: OperationContext): Promise<Record<string, unknown>>;
}

export function defineOperation<S extends z.ZodType>(schema: S, handler: Operation<S>['handler']): Operation<S> {
  return { schema, handler };
}
