/**
 * The structured logger (pino, JSON lines on stderr). Request bodies are never
 * logged: they carry plaintext, data keys and ciphertexts. The redact list is
 * a second line of defence for fields that must never appear.
 */
import { pino, type Logger as PinoLogger } from 'pino';

export type Logger = PinoLogger;

export function createLogger(level: string = process.env['KMSGW_LOG_LEVEL'] ?? 'info'): Logger {
  return pino(
    {
      level,
      base: { service: 'kms-hsm-gateway' },
      redact: { paths: ['pin', '*.pin', 'Plaintext', '*.Plaintext', 'CiphertextBlob', '*.CiphertextBlob'], censor: '[redacted]' },
    },
    pino.destination(2),
  );
}
