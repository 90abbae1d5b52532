import type { NodeRequest, NodeResponse } from "./listener.js";

/**
 * connect-es writes the `grpc-message` header with `encodeURIComponent`, which also escapes `; , / ? : @ & = + $ #`.
 * The gRPC spec only asks to percent-encode bytes outside 0x20-0x7E and `%`, and some clients decode only that much
 * (@grpc/grpc-js uses `decodeURI`, so `field: bad` arrives as `field%3A bad`). This re-encodes the header the way the
 * spec says, which every client decodes correctly.
 */
export function specEncodeGrpcMessage(componentEncoded: string): string {
  let text: string;
  try {
    text = decodeURIComponent(componentEncoded);
  } catch {
    return componentEncoded; // not ours to fix
  }
  let out = "";
  for (const byte of Buffer.from(text, "utf8")) {
    out +=
      byte >= 0x20 && byte <= 0x7e && byte !== 0x25
        ? String.fromCharCode(byte)
        : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

function fix(headers: unknown): void {
  if (headers === null || typeof headers !== "object") return;
  const h = headers as Record<string, unknown>;
  const value = h["grpc-message"];
  if (typeof value === "string") h["grpc-message"] = specEncodeGrpcMessage(value);
}

/** For gRPC (not gRPC-Web) requests: re-encode `grpc-message` in the response headers and trailers. */
export function useSpecGrpcMessageEncoding(req: NodeRequest, res: NodeResponse): void {
  const type = req.headers["content-type"];
  if (typeof type !== "string" || !type.startsWith("application/grpc") || type.startsWith("application/grpc-web")) {
    return;
  }
  const r = res as unknown as {
    writeHead: (status: number, ...rest: unknown[]) => unknown;
    addTrailers: (headers: unknown) => void;
  };
  const writeHead = r.writeHead;
  const addTrailers = r.addTrailers;
  r.writeHead = function patchedWriteHead(status: number, ...rest: unknown[]) {
    fix(rest[rest.length - 1]);
    return writeHead.call(this, status, ...rest);
  };
  r.addTrailers = function patchedAddTrailers(headers: unknown) {
    fix(headers);
    addTrailers.call(this, headers);
  };
}
