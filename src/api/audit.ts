/**
 * The audit log: one JSON line per request, written when the answer has
 * been sent (or the connection closed before it was), to `audit.file` or to
 * stdout. What it records comes from the AuditRecord that the KMS framing
 * fills in as the request goes (api/kms-json.ts: operation, principal, key
 * ARN, encryption context keys) and from the answer itself (status, error
 * type). It never sees a request or response body, so it cannot write
 * plaintext, data keys, ciphertexts or secrets; it never reads the
 * Authorization header.
 *
 * Writes are asynchronous and never hold a request: an I/O error is logged
 * once as a warning, and the lines that cannot be written are counted and
 * reported when the sink closes.
 */
import { createWriteStream, openSync, statSync, type Stats, type WriteStream } from 'node:fs';
import type { RequestHandler, Response } from 'express';
import { ConfigError } from '../config/config.js';
import type { Logger } from '../log.js';
import { auditOf } from './kms-json.js';

export type AuditOutcome = 'success' | 'client_error' | 'server_error';

/** One line of the audit log. Absent facts are null, so every line has the same fields. */
export interface AuditLine {
  time: string;
  requestId: string | null;
  principal: string | null;
  accessKeyId: string | null;
  sourceAddress: string | null;
  operation: string | null;
  keyArn: string | null;
  /** The keys of the request's encryption context, sorted; never its values. */
  encryptionContextKeys: string[] | null;
  outcome: AuditOutcome;
  /** The answer's X-Amzn-ErrorType when it failed. */
  errorType: string | null;
  /** null when the connection closed before an answer was sent. */
  httpStatus: number | null;
  latencyMs: number;
  /** Present (true) only when the client went away before the answer was complete. */
  aborted?: true;
}

export interface AuditSink {
  /** Queues one line (a newline is appended); never throws, never waits. */
  write(line: string): void;
  /** Flushes what is queued and closes the file (stdout is left open). */
  close(): Promise<void>;
}

/** Warns once on the first failure, counts the lines lost after it. */
class FailureReporter {
  private warned = false;
  dropped = 0;
  constructor(
    private readonly log: Logger,
    private readonly where: string,
  ) {}
  fail(e: unknown): void {
    if (this.warned) return;
    this.warned = true;
    this.log.warn({ where: this.where, code: (e as NodeJS.ErrnoException)?.code, message: (e as Error)?.message }, 'audit log write failed; audit lines are being lost');
  }
}

/** Appends to a file opened with O_APPEND (created 0600): each line is one write at the file's end. */
class FileSink implements AuditSink {
  private readonly stream: WriteStream;
  private readonly failures: FailureReporter;
  private broken = false;
  private closed = false;

  constructor(
    fd: number,
    private readonly path: string,
    private readonly log: Logger,
  ) {
    this.failures = new FailureReporter(log, path);
    this.stream = createWriteStream('', { fd, autoClose: true });
    this.stream.on('error', (e) => {
      this.broken = true;
      this.failures.fail(e);
    });
  }

  write(line: string): void {
    if (this.broken || this.closed) {
      this.failures.dropped++;
      return;
    }
    // Backpressure is not applied to requests: a slow disk costs memory for
    // the queued lines, never a request's latency.
    this.stream.write(line + '\n');
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    return new Promise((resolve) => {
      const done = () => {
        if (this.failures.dropped > 0) this.log.warn({ where: this.path, dropped: this.failures.dropped }, 'audit lines lost');
        resolve();
      };
      if (this.broken || this.stream.destroyed) return done();
      this.stream.end(done);
    });
  }
}

/** stdout (a pipe to a log collector, typically). */
class StdoutSink implements AuditSink {
  private readonly failures: FailureReporter;
  private broken = false;
  private readonly onError = (e: unknown) => {
    this.broken = true;
    this.failures.fail(e);
  };

  constructor(private readonly log: Logger) {
    this.failures = new FailureReporter(log, 'stdout');
    // An EPIPE on stdout must not become an uncaught 'error' that kills the process.
    process.stdout.on('error', this.onError);
  }

  write(line: string): void {
    if (this.broken) {
      this.failures.dropped++;
      return;
    }
    try {
      process.stdout.write(line + '\n');
    } catch (e) {
      this.onError(e);
    }
  }

  close(): Promise<void> {
    if (this.failures.dropped > 0) this.log.warn({ where: 'stdout', dropped: this.failures.dropped }, 'audit lines lost');
    return new Promise((resolve) => {
      if (this.broken) return resolve();
      // Resolves once what was queued has been handed to the OS. The error
      // listener stays: a late EPIPE must not kill a process that is stopping.
      process.stdout.write('', () => resolve());
    });
  }
}

/**
 * Opens the configured sink: `file` appended to (created with mode 0600),
 * or stdout when there is none. The file is opened now, so a path that
 * cannot be written stops start-up with a ConfigError naming audit.file.
 */
export function openAuditSink(file: string | undefined, log: Logger): AuditSink {
  if (file === undefined) return new StdoutSink(log);
  // A FIFO without a reader would hold start-up in open(2) forever.
  let existing: Stats | undefined;
  try {
    existing = statSync(file);
  } catch {
    existing = undefined;
  }
  if (existing !== undefined && !existing.isFile() && !existing.isCharacterDevice())
    throw new ConfigError(`audit.file: ${file} is neither a regular file nor a character device`);
  let fd: number;
  try {
    fd = openSync(file, 'a', 0o600);
  } catch (e) {
    throw new ConfigError(`audit.file: cannot open ${file} for appending (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
  return new FileSink(fd, file, log);
}

function outcomeOf(status: number): AuditOutcome {
  if (status >= 500) return 'server_error';
  if (status >= 400) return 'client_error';
  return 'success';
}

function headerText(res: Response, name: string): string | null {
  const v = res.getHeader(name);
  if (v === undefined) return null;
  return Array.isArray(v) ? v.join(',') : String(v);
}

/**
 * The audit middleware: mount it first, so every request, including those
 * refused before the KMS framing (wrong method or path), gets its line.
 */
export function auditMiddleware(sink: AuditSink): RequestHandler {
  return (req, res, next) => {
    const started = process.hrtime.bigint();
    const time = new Date().toISOString();
    // Read now: after the socket closes, remoteAddress is gone.
    const sourceAddress = req.socket.remoteAddress ?? null;
    let written = false;
    const finish = (aborted: boolean) => {
      if (written) return;
      written = true;
      const audit = auditOf(res);
      const sent = !aborted || res.headersSent;
      const httpStatus = sent ? res.statusCode : null;
      const line: AuditLine = {
        time,
        requestId: headerText(res, 'x-amzn-RequestId'),
        principal: audit.principal ?? null,
        accessKeyId: audit.accessKeyId ?? null,
        sourceAddress,
        operation: audit.operation ?? null,
        keyArn: audit.keyArn ?? null,
        encryptionContextKeys: audit.encryptionContextKeys ?? null,
        // A client that leaves without an answer is the client's doing.
        outcome: httpStatus === null ? 'client_error' : outcomeOf(httpStatus),
        errorType: httpStatus !== null && httpStatus >= 400 ? headerText(res, 'X-Amzn-ErrorType') : null,
        httpStatus,
        latencyMs: Math.round(Number(process.hrtime.bigint() - started) / 1e3) / 1e3,
      };
      if (aborted) line.aborted = true;
      sink.write(JSON.stringify(line));
    };
    res.once('finish', () => finish(false));
    // 'close' follows 'finish' on a complete answer; alone, the connection went away first.
    res.once('close', () => finish(!res.writableFinished));
    next();
  };
}
