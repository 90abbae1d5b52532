/**
 * Cancel the statement running on a `pg` connection with PostgreSQL's CancelRequest (what libpq's `PQcancel` and
 * psql's Ctrl-C send): a 16-byte packet on a fresh socket naming the backend's PID and secret key. The statement then
 * fails with 57014 and the connection stays usable. Closing our socket instead would leave the statement running on
 * the server (holding its locks) until it next writes to the client.
 */
import { connect, type Socket } from "node:net";
import type pg from "pg";

/** The backend key `pg` keeps after the handshake (not in @types/pg). */
interface BackendKey {
  processID: number | null;
  secretKey: number | null;
}

/** CancelRequest code: 1234 in the high 16 bits, 5678 in the low 16 bits. */
const cancelRequestCode = (1234 << 16) | 5678;

/**
 * Send a CancelRequest for `client`'s backend. Resolves when the server has closed the cancel socket (or after
 * `timeoutMs`); never rejects: cancellation is best effort and the caller has its own fallback.
 */
export function sendCancelRequest(client: pg.Client, timeoutMs: number): Promise<boolean> {
  const { processID, secretKey } = client as unknown as BackendKey;
  if (processID === null || secretKey === null) return Promise.resolve(false);
  const packet = Buffer.alloc(16);
  packet.writeInt32BE(16, 0);
  packet.writeInt32BE(cancelRequestCode, 4);
  packet.writeInt32BE(processID, 8);
  packet.writeInt32BE(secretKey, 12);

  return new Promise((resolve) => {
    let socket: Socket;
    const host = client.host;
    if (host.startsWith("/")) socket = connect({ path: `${host}/.s.PGSQL.${client.port}` });
    else socket = connect({ host, port: client.port });
    const timer = setTimeout(() => finish(false), timeoutMs);
    let done = false;
    const finish = (ok: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    socket.once("connect", () => socket.write(packet));
    socket.once("error", () => finish(false));
    socket.once("close", () => finish(true));
  });
}
