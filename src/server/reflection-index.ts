import type { DescEnum, DescExtension, DescFile, DescMessage, DescService } from "@bufbuild/protobuf";
import { toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";

/**
 * What gRPC server reflection answers from: the files of every served service and all their imports (transitively,
 * down to the google/protobuf well-known types), indexed by file name, by fully-qualified symbol and by extension.
 * Built once at start-up from the generated `file_*` descriptors; serialised descriptors are cached.
 */
export class ReflectionIndex {
  /** Served services, sorted. */
  readonly serviceNames: readonly string[];
  private readonly files = new Map<string, DescFile>();
  private readonly symbols = new Map<string, DescFile>();
  private readonly extensions = new Map<string, Map<number, DescFile>>();
  private readonly encoded = new Map<string, Uint8Array>();

  constructor(services: Iterable<DescService>) {
    const names = new Set<string>();
    for (const service of services) {
      names.add(service.typeName);
      this.addFile(service.file);
    }
    this.serviceNames = [...names].sort();
  }

  /** The file named `fileName` (e.g. `stackl/v1/documents.proto`), if indexed. */
  fileByName(fileName: string): DescFile | undefined {
    return this.files.get(fileName);
  }

  /**
   * The file defining `symbol`: a service, method (`pkg.Service.Method`), message (nested too), field, oneof, enum,
   * enum value or extension, by fully-qualified name without a leading dot.
   */
  fileContainingSymbol(symbol: string): DescFile | undefined {
    return this.symbols.get(symbol.startsWith(".") ? symbol.slice(1) : symbol);
  }

  /** The file defining extension `number` of message `extendee`. */
  fileContainingExtension(extendee: string, number: number): DescFile | undefined {
    return this.extensions.get(extendee)?.get(number);
  }

  /** Extension numbers of message `typeName`, sorted; `undefined` when the message is unknown. */
  extensionNumbersOf(typeName: string): number[] | undefined {
    const file = this.symbols.get(typeName);
    if (file === undefined || !isMessageIn(file, typeName)) return undefined;
    return [...(this.extensions.get(typeName)?.keys() ?? [])].sort((a, b) => a - b);
  }

  /**
   * `file` serialised, followed by its transitive imports that are not in `alreadySent` (which is updated), in
   * breadth-first order. The requested file itself is always included. Clients such as grpcurl need the imports to
   * build the descriptor; a stream remembers what it sent so that it does not send them again.
   */
  withDependencies(file: DescFile, alreadySent: Set<string>): Uint8Array[] {
    const out: Uint8Array[] = [];
    const queue: DescFile[] = [file];
    let first = true;
    for (let f = queue.shift(); f !== undefined; f = queue.shift()) {
      const name = fileName(f);
      if (first || !alreadySent.has(name)) {
        alreadySent.add(name);
        out.push(this.encode(f));
        queue.push(...f.dependencies);
      }
      first = false;
    }
    return out;
  }

  /** All indexed file names, sorted. */
  fileNames(): string[] {
    return [...this.files.keys()].sort();
  }

  private encode(file: DescFile): Uint8Array {
    const name = fileName(file);
    let bytes = this.encoded.get(name);
    if (bytes === undefined) {
      bytes = toBinary(FileDescriptorProtoSchema, file.proto);
      this.encoded.set(name, bytes);
    }
    return bytes;
  }

  private addFile(file: DescFile): void {
    const name = fileName(file);
    if (this.files.has(name)) return;
    this.files.set(name, file);
    for (const dep of file.dependencies) this.addFile(dep);
    for (const message of file.messages) this.addMessage(file, message);
    for (const e of file.enums) this.addEnum(file, e);
    for (const ext of file.extensions) this.addExtension(file, ext);
    for (const service of file.services) {
      this.symbols.set(service.typeName, file);
      for (const method of service.methods) this.symbols.set(`${service.typeName}.${method.name}`, file);
    }
  }

  private addMessage(file: DescFile, message: DescMessage): void {
    this.symbols.set(message.typeName, file);
    for (const field of message.fields) this.symbols.set(`${message.typeName}.${field.name}`, file);
    for (const oneof of message.oneofs) this.symbols.set(`${message.typeName}.${oneof.name}`, file);
    for (const nested of message.nestedMessages) this.addMessage(file, nested);
    for (const e of message.nestedEnums) this.addEnum(file, e);
    for (const ext of message.nestedExtensions) this.addExtension(file, ext);
  }

  private addEnum(file: DescFile, e: DescEnum): void {
    this.symbols.set(e.typeName, file);
    // Enum values are scoped like siblings of their enum (protobuf scoping rules).
    const scope = e.typeName.includes(".") ? e.typeName.slice(0, e.typeName.lastIndexOf(".") + 1) : "";
    for (const value of e.values) this.symbols.set(`${scope}${value.name}`, file);
  }

  private addExtension(file: DescFile, ext: DescExtension): void {
    this.symbols.set(ext.typeName, file);
    let byNumber = this.extensions.get(ext.extendee.typeName);
    if (byNumber === undefined) {
      byNumber = new Map();
      this.extensions.set(ext.extendee.typeName, byNumber);
    }
    byNumber.set(ext.number, file);
  }
}

/** The file's name as in `import` statements, e.g. `google/protobuf/struct.proto`. */
export function fileName(file: DescFile): string {
  return file.proto.name;
}

function isMessageIn(file: DescFile, typeName: string): boolean {
  const visit = (messages: readonly DescMessage[]): boolean =>
    messages.some((m) => m.typeName === typeName || visit(m.nestedMessages));
  return visit(file.messages);
}
