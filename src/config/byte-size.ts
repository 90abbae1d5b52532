/** Byte sizes in configuration: a plain integer (bytes) or an integer with a binary unit, e.g. `4MiB`, `512KiB`. */

const UNIT_BYTES = { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 } as const;
type Unit = keyof typeof UNIT_BYTES;

const SIZE = /^(\d+)\s*(B|KiB|MiB|GiB)?$/;

/** Bytes in `text`, or `undefined` when it is not a size. */
export function parseByteSize(text: string): number | undefined {
  const m = SIZE.exec(text.trim());
  if (m === null) return undefined;
  const n = Number(m[1]) * UNIT_BYTES[(m[2] ?? "B") as Unit];
  return Number.isSafeInteger(n) ? n : undefined;
}

/** A short human form: `4MiB`, `1536B`. */
export function formatByteSize(bytes: number): string {
  for (const unit of ["GiB", "MiB", "KiB"] as const) {
    const size = UNIT_BYTES[unit];
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return `${bytes}B`;
}
