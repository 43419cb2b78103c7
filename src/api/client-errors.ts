/**
 * What never reaches express: requests that Node's HTTP parser refuses (a
 * method token it does not know, a malformed header line, two different
 * Content-Lengths, headers too large), CONNECT requests and an Expect
 * header Node does not know. Node's own
 * answer is a bare `400 Bad Request`, or a closed connection for CONNECT;
 * the gateway answers with a KMS JSON error envelope instead, so every answer
 * a client gets is one its SDK can read. A stalled request keeps Node's
 * bare `408` (the client is not listening anyway). On the HTTPS listener the
 * failed TLS handshakes come here too (https.Server forwards them): those
 * connections are dropped, as there is no channel to answer on.
 */
import { randomUUID } from 'node:crypto';
import { STATUS_CODES, type Server } from 'node:http';
import type { Duplex } from 'node:stream';

/** Sends the last bytes of a connection; a peer that does not read them is not waited for long. */
function endAnswer(socket: Duplex, answer: string): void {
  socket.end(answer);
  const timer = setTimeout(() => socket.destroy(), 2_000);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}

/** Writes a complete KMS error answer on a raw socket and closes it. */
function endWithKmsError(socket: Duplex, status: number, name: string, message: string): void {
  const body = JSON.stringify({ __type: name, message });
  endAnswer(
    socket,
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n` +
      `Content-Type: application/x-amz-json-1.1\r\n` +
      `X-Amzn-ErrorType: ${name}\r\n` +
      `x-amzn-RequestId: ${randomUUID()}\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      `Connection: close\r\n\r\n` +
      body,
  );
}

export function answerClientErrors(server: Server): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    // Mirrors Node's own handler: write only on a socket that can take it
    // and whose current answer (keep-alive) has not started.
    const current = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (err.code === 'ECONNRESET' || !socket.writable || current?.headersSent === true) {
      socket.destroy();
      return;
    }
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      endAnswer(socket, 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n');
      return;
    }
    // Not the HTTP parser's (a TLS handshake that failed or timed out, a socket error): nothing to answer on.
    if (err.code === undefined || !err.code.startsWith('HPE_')) {
      socket.destroy();
      return;
    }
    if (err.code === 'HPE_INVALID_METHOD') {
      endWithKmsError(socket, 400, 'UnknownOperationException', 'The gateway serves POST / only.');
      return;
    }
    if (err.code === 'HPE_HEADER_OVERFLOW') {
      endWithKmsError(socket, 431, 'SerializationException', 'The request headers are larger than the gateway accepts.');
      return;
    }
    endWithKmsError(socket, 400, 'SerializationException', 'The request is not valid HTTP/1.1.');
  });
  // Node answers an Expect other than 100-continue with a bare 417; RFC 9110
  // lets a server ignore it instead (a 417 is a MAY), so the request is served.
  server.on('checkExpectation', (req, res) => server.emit('request', req, res));
  // Without a listener Node closes a CONNECT's connection without a word.
  server.on('connect', (_req, socket: Duplex) => {
    endWithKmsError(socket, 400, 'UnknownOperationException', 'The gateway serves POST / only.');
  });
}
