import type { DescFile, DescService } from "@bufbuild/protobuf";
import { toBinary } from "@bufbuild/protobuf";
import {
  type DescriptorProto,
  type EnumDescriptorProto,
  type FieldDescriptorProto,
  FileDescriptorProtoSchema,
} from "@bufbuild/protobuf/wkt";

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
  private readonly messages = new Set<string>();

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
    if (!this.messages.has(typeName)) return undefined;
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

  /** Indexes a file by walking its FileDescriptorProto, so that every name protoc knows is found (map entries too). */
  private addFile(file: DescFile): void {
    const name = fileName(file);
    if (this.files.has(name)) return;
    this.files.set(name, file);
    for (const dep of file.dependencies) this.addFile(dep);
    const proto = file.proto;
    const scope = proto.package === "" ? "" : `${proto.package}.`;
    for (const message of proto.messageType) this.addMessage(file, scope, message);
    for (const e of proto.enumType) this.addEnum(file, scope, e);
    for (const ext of proto.extension) this.addExtension(file, scope, ext);
    for (const service of proto.service) {
      const serviceName = `${scope}${service.name}`;
      this.symbols.set(serviceName, file);
      for (const method of service.method) this.symbols.set(`${serviceName}.${method.name}`, file);
    }
  }

  private addMessage(file: DescFile, scope: string, message: DescriptorProto): void {
    const typeName = `${scope}${message.name}`;
    this.symbols.set(typeName, file);
    this.messages.add(typeName);
    for (const field of message.field) this.symbols.set(`${typeName}.${field.name}`, file);
    for (const oneof of message.oneofDecl) this.symbols.set(`${typeName}.${oneof.name}`, file);
    for (const nested of message.nestedType) this.addMessage(file, `${typeName}.`, nested);
    for (const e of message.enumType) this.addEnum(file, `${typeName}.`, e);
    for (const ext of message.extension) this.addExtension(file, `${typeName}.`, ext);
  }

  private addEnum(file: DescFile, scope: string, e: EnumDescriptorProto): void {
    this.symbols.set(`${scope}${e.name}`, file);
    // Enum values are scoped like siblings of their enum (protobuf scoping rules).
    for (const value of e.value) this.symbols.set(`${scope}${value.name}`, file);
  }

  private addExtension(file: DescFile, scope: string, ext: FieldDescriptorProto): void {
    this.symbols.set(`${scope}${ext.name}`, file);
    const extendee = ext.extendee.startsWith(".") ? ext.extendee.slice(1) : ext.extendee;
    let byNumber = this.extensions.get(extendee);
    if (byNumber === undefined) {
      byNumber = new Map();
      this.extensions.set(extendee, byNumber);
    }
    byNumber.set(ext.number, file);
  }
}

/** The file's name as in `import` statements, e.g. `google/protobuf/struct.proto`. */
export function fileName(file: DescFile): string {
  return file.proto.name;
}
