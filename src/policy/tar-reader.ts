/**
 * A minimal reader of (gzipped) tar archives — enough for OPA bundles (`opa build` writes them with Go's
 * archive/tar): ustar headers, GNU long names (`L`), pax extended headers (`x`, `g`: `path` and `size`), base-256
 * sizes. Regular files only; directories, links and devices are skipped. No dependencies beyond node:zlib.
 */
import { gunzipSync } from "node:zlib";

const BLOCK = 512;
const decoder = new TextDecoder();

/** Largest archive, uncompressed, that `readTarGz` accepts (a gzip bomb stops here). */
export const MAX_TAR_BYTES = 64 * 1024 * 1024;

export interface TarEntry {
  /** Path inside the archive, without a leading `/` or `./` (OPA writes `/policy.wasm`; this reads `policy.wasm`). */
  readonly path: string;
  readonly bytes: Uint8Array;
}

export class TarFormatError extends Error {
  override readonly name = "TarFormatError";
}

/** Gunzips then reads `archive`. */
export function readTarGz(archive: Uint8Array, maxBytes: number = MAX_TAR_BYTES): TarEntry[] {
  let tar: Uint8Array;
  try {
    tar = new Uint8Array(gunzipSync(archive, { maxOutputLength: maxBytes }));
  } catch (err) {
    const tooBig = (err as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE";
    throw new TarFormatError(
      tooBig ? `archive is larger than ${maxBytes} bytes uncompressed` : `not a gzip stream: ${(err as Error).message}`,
    );
  }
  return readTar(tar);
}

/** The regular files of an uncompressed tar archive, in archive order. */
export function readTar(tar: Uint8Array): TarEntry[] {
  const entries: TarEntry[] = [];
  let offset = 0;
  let longName: string | undefined;
  let pax: Record<string, string> = {};
  let globalPax: Record<string, string> = {};

  while (offset + BLOCK <= tar.length) {
    const header = tar.subarray(offset, offset + BLOCK);
    if (header.every((b) => b === 0)) break; // end-of-archive marker
    verifyChecksum(header, offset);

    const type = String.fromCharCode(header[156] ?? 0);
    const size = Number(pax.size ?? globalPax.size ?? readSize(header.subarray(124, 136), offset));
    if (!Number.isSafeInteger(size) || size < 0) throw new TarFormatError(`bad size in the header at ${offset}`);
    const dataStart = offset + BLOCK;
    const dataEnd = dataStart + size;
    if (dataEnd > tar.length) throw new TarFormatError(`entry at ${offset} runs past the end of the archive`);
    const data = tar.subarray(dataStart, dataEnd);
    offset = dataStart + Math.ceil(size / BLOCK) * BLOCK;

    switch (type) {
      case "L":
        longName = cString(data);
        continue;
      case "x":
        pax = parsePax(data);
        continue;
      case "g":
        globalPax = { ...globalPax, ...parsePax(data) };
        continue;
      default:
        break;
    }

    const path = normalisePath(longName ?? pax.path ?? globalPax.path ?? ustarName(header));
    longName = undefined;
    pax = {};
    if (type === "0" || type === "\0" || type === "7") entries.push({ path, bytes: new Uint8Array(data) }); // a copy (Buffer#slice would not copy)
  }
  return entries;
}

function verifyChecksum(header: Uint8Array, offset: number): void {
  const recorded = parseOctal(header.subarray(148, 156));
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (header[i] ?? 0);
  if (recorded !== sum) throw new TarFormatError(`bad header checksum at ${offset}`);
}

function readSize(field: Uint8Array, offset: number): number {
  if (((field[0] ?? 0) & 0x80) !== 0) {
    // GNU base-256: big-endian, high bit of the first byte set.
    let n = BigInt((field[0] ?? 0) & 0x7f);
    for (let i = 1; i < field.length; i++) n = (n << 8n) | BigInt(field[i] ?? 0);
    if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw new TarFormatError(`entry at ${offset} is too large`);
    return Number(n);
  }
  return parseOctal(field);
}

function parseOctal(field: Uint8Array): number {
  let n = 0;
  for (const b of field) {
    if (b === 0 || b === 0x20) {
      if (n > 0) break;
      continue;
    }
    if (b < 0x30 || b > 0x37) throw new TarFormatError("bad octal number in a tar header");
    n = n * 8 + (b - 0x30);
  }
  return n;
}

function cString(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return decoder.decode(end === -1 ? bytes : bytes.subarray(0, end));
}

function ustarName(header: Uint8Array): string {
  const name = cString(header.subarray(0, 100));
  const magic = cString(header.subarray(257, 263));
  const prefix = magic.startsWith("ustar") ? cString(header.subarray(345, 500)) : "";
  return prefix === "" ? name : `${prefix}/${name}`;
}

/** Pax records: `<length> <key>=<value>\n`, length counting the whole record. */
function parsePax(data: Uint8Array): Record<string, string> {
  const out: Record<string, string> = {};
  let at = 0;
  while (at < data.length) {
    const space = data.indexOf(0x20, at);
    if (space === -1) break;
    const length = Number(decoder.decode(data.subarray(at, space)));
    if (!Number.isSafeInteger(length) || length <= 0 || at + length > data.length) {
      throw new TarFormatError("bad pax record");
    }
    const record = decoder.decode(data.subarray(space + 1, at + length - 1));
    const eq = record.indexOf("=");
    if (eq > 0) out[record.slice(0, eq)] = record.slice(eq + 1);
    at += length;
  }
  return out;
}

function normalisePath(path: string): string {
  let p = path;
  while (p.startsWith("/") || p.startsWith("./")) p = p.startsWith("/") ? p.slice(1) : p.slice(2);
  return p;
}
