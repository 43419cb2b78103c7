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
    // Synchronous writes: the gateway logs little on the request path (the audit
    // log has its own sink), and a process ended by signal (see main.ts) loses no line.
    pino.destination({ dest: 2, sync: true }),
  );
}
