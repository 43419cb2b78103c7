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
import type { AuditRecord } from '../auth/types.js';

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

/**
 * Lines are handed to the OS in writes of at most this many bytes, each
 * ending on a line boundary: POSIX makes a write of up to PIPE_BUF bytes
 * to a pipe atomic (4096 on Linux), so the lines of several processes
 * writing to one stdout (the workers of a cluster, see src/cluster/) never
 * interleave within a line. A regular file or a terminal keeps every
 * write whole anyway. A single line longer than this (a very large
 * encryption context) goes in a write of its own, which a pipe may then
 * split.
 */
export const ATOMIC_WRITE_BYTES = 4096;

/** Cuts `text` (whole lines) into pieces of at most `max` bytes that end on a newline; a longer line is a piece of its own. */
export function wholeLineChunks(text: string, max = ATOMIC_WRITE_BYTES): string[] {
  if (Buffer.byteLength(text) <= max) return [text];
  const out: string[] = [];
  let piece = '';
  let pieceBytes = 0;
  let start = 0;
  while (start < text.length) {
    const nl = text.indexOf('\n', start);
    const end = nl === -1 ? text.length : nl + 1;
    const line = text.slice(start, end);
    const bytes = Buffer.byteLength(line);
    if (pieceBytes > 0 && pieceBytes + bytes > max) {
      out.push(piece);
      piece = '';
      pieceBytes = 0;
    }
    piece += line;
    pieceBytes += bytes;
    start = end;
  }
  if (piece !== '') out.push(piece);
  return out;
}

/**
 * stdout (a pipe to a log collector, typically). Every cluster worker
 * writes to the stdout it inherited from the primary, in whole-line writes
 * of at most ATOMIC_WRITE_BYTES, and only one at a time: Node's stream
 * would otherwise gather writes queued behind a slow pipe into one writev,
 * which the pipe may split anywhere. (Relaying each worker's lines through
 * the primary instead cost the primary ~20 us of CPU per request, on the
 * same two cores as the workers.) Lines are gathered during one turn of the
 * event loop and written together: one write per turn instead of one per
 * request.
 */
class StdoutSink implements AuditSink {
  private readonly failures: FailureReporter;
  private broken = false;
  private queued = '';
  private flushScheduled = false;
  /** Pieces cut from the queued lines, waiting for the write in flight. */
  private pieces: string[] = [];
  private writing = false;
  /** Called when the last piece has been written (close() waits for it). */
  private idle: (() => void) | undefined;
  private readonly onError = (e: unknown) => {
    this.broken = true;
    this.failures.fail(e);
    this.failures.dropped += this.pieces.reduce((n, p) => n + p.split('\n').length - 1, 0);
    this.pieces = [];
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
    this.queued += line + '\n';
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    const text = this.queued;
    this.queued = '';
    if (text === '' || this.broken) return;
    for (const piece of wholeLineChunks(text)) this.pieces.push(piece);
    this.pump();
  }

  /** Writes the next piece once the one in flight has been handed to the OS. */
  private pump(): void {
    if (this.writing) return;
    const piece = this.pieces.shift();
    if (piece === undefined || this.broken) {
      this.idle?.();
      return;
    }
    this.writing = true;
    try {
      process.stdout.write(piece, (err) => {
        this.writing = false;
        if (err) this.onError(err);
        this.pump();
      });
    } catch (e) {
      this.writing = false;
      this.onError(e);
      this.idle?.();
    }
  }

  close(): Promise<void> {
    this.flush();
    return new Promise((resolve) => {
      const done = () => {
        this.idle = undefined;
        if (this.failures.dropped > 0) this.log.warn({ where: 'stdout', dropped: this.failures.dropped }, 'audit lines lost');
        resolve();
      };
      // Resolves once what was queued has been handed to the OS. The error
      // listener stays: a late EPIPE must not kill a process that is stopping.
      if (this.broken || (!this.writing && this.pieces.length === 0)) return done();
      this.idle = done;
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

/** The facts of one answered (or abandoned) request. */
export interface AuditFacts {
  /** When the request arrived (ISO-8601). */
  time: string;
  /** process.hrtime.bigint() when the request arrived. */
  started: bigint;
  requestId: string | null;
  sourceAddress: string | null;
  record: AuditRecord;
  /** null when the connection closed before an answer was sent. */
  httpStatus: number | null;
  errorType: string | null;
  aborted: boolean;
}

/** One audit line's JSON text (without the newline). */
export function auditLine(f: AuditFacts): string {
  const { record, httpStatus } = f;
  const line: AuditLine = {
    time: f.time,
    requestId: f.requestId,
    principal: record.principal ?? null,
    accessKeyId: record.accessKeyId ?? null,
    sourceAddress: f.sourceAddress,
    operation: record.operation ?? null,
    keyArn: record.keyArn ?? null,
    encryptionContextKeys: record.encryptionContextKeys ?? null,
    // A client that leaves without an answer is the client's doing.
    outcome: httpStatus === null ? 'client_error' : outcomeOf(httpStatus),
    errorType: httpStatus !== null && httpStatus >= 400 ? f.errorType : null,
    httpStatus,
    latencyMs: Math.round(Number(process.hrtime.bigint() - f.started) / 1e3) / 1e3,
  };
  if (f.aborted) line.aborted = true;
  return JSON.stringify(line);
}

function headerText(res: Response, name: string): string | null {
  const v = res.getHeader(name);
  if (v === undefined) return null;
  return Array.isArray(v) ? v.join(',') : String(v);
}

/**
 * The audit middleware of what express serves (everything but `POST /`,
 * whose lines kms-listener.ts writes): mount it first, so every request,
 * including those refused for their method or path, gets its line.
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
      const sent = !aborted || res.headersSent;
      const httpStatus = sent ? res.statusCode : null;
      sink.write(
        auditLine({
          time,
          started,
          requestId: headerText(res, 'x-amzn-RequestId'),
          sourceAddress,
          record: {},
          httpStatus,
          errorType: headerText(res, 'X-Amzn-ErrorType'),
          aborted,
        }),
      );
    };
    res.once('finish', () => finish(false));
    // 'close' follows 'finish' on a complete answer; alone, the connection went away first.
    res.once('close', () => finish(!res.writableFinished));
    next();
  };
}
