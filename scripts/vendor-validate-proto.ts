/**
 * Regenerates proto/buf/validate/validate.proto from the npm package @bufbuild/protovalidate.
 *
 *   npx tsx scripts/vendor-validate-proto.ts           # (re)write the file
 *   npx tsx scripts/vendor-validate-proto.ts --check   # exit 1 if the file is missing or stale
 *
 * Why: our API protos use protovalidate annotations (`import "buf/validate/validate.proto"`), but neither the
 * Buf Schema Registry nor GitHub is reachable from our build, and we do not copy files out of other repositories.
 * The npm package we already depend on ships generated code that embeds the complete serialized
 * FileDescriptorProto of buf/validate/validate.proto (`file_buf_validate_validate`). This script prints that
 * descriptor back to .proto source with a small, general FileDescriptorProto -> .proto printer
 * (`printProtoFile`). Custom options are decoded through a registry holding the file and its imports, so
 * option values such as `[(buf.validate.predefined).cel = {...}]` are rendered in the protobuf text format.
 *
 * The printed file compiles (buf build) back to the embedded descriptor; test/unit/vendor-validate-proto.test.ts
 * checks that field for field. Comments are not recoverable: protobuf-es strips source_code_info when embedding.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import {
  createRegistry,
  type DescExtension,
  type DescField,
  type DescFile,
  type DescMessage,
  getExtension,
  isFieldSet,
  type Message,
  type Registry,
  ScalarType,
} from "@bufbuild/protobuf";
import { protoCamelCase } from "@bufbuild/protobuf/reflect";
import { toText } from "@bufbuild/protobuf/txtpb";
import {
  type DescriptorProto,
  Edition,
  type EnumDescriptorProto,
  EnumOptionsSchema,
  EnumValueOptionsSchema,
  ExtensionRangeOptionsSchema,
  type FieldDescriptorProto,
  FieldDescriptorProtoSchema,
  FieldOptionsSchema,
  type FileDescriptorProto,
  FileOptionsSchema,
  FieldDescriptorProto_Label as Label,
  MessageOptionsSchema,
  MethodOptionsSchema,
  OneofOptionsSchema,
  type ServiceDescriptorProto,
  ServiceOptionsSchema,
  FieldDescriptorProto_Type as Type,
} from "@bufbuild/protobuf/wkt";
import { file_buf_validate_validate } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";

// ---------------------------------------------------------------------------------------------------------------
// FileDescriptorProto -> .proto printer
// ---------------------------------------------------------------------------------------------------------------

/** The largest field number (message `max`). */
const MAX_FIELD_NUMBER = 536_870_911;
/** The largest enum number (enum `max`), also the largest extension number of a message-set. */
const MAX_INT32 = 2_147_483_647;

const scalarTypeNames: Partial<Record<Type, string>> = {
  [Type.DOUBLE]: "double",
  [Type.FLOAT]: "float",
  [Type.INT64]: "int64",
  [Type.UINT64]: "uint64",
  [Type.INT32]: "int32",
  [Type.FIXED64]: "fixed64",
  [Type.FIXED32]: "fixed32",
  [Type.BOOL]: "bool",
  [Type.STRING]: "string",
  [Type.BYTES]: "bytes",
  [Type.UINT32]: "uint32",
  [Type.SFIXED32]: "sfixed32",
  [Type.SFIXED64]: "sfixed64",
  [Type.SINT32]: "sint32",
  [Type.SINT64]: "sint64",
};

type Syntax = "proto2" | "proto3" | "editions";

/** A field of a message, or an extension: the two share the value shapes we render. */
type FieldLike = DescField | DescExtension;

/** `name = value` of one option; value may span lines (indented relative to the option). */
interface OptionEntry {
  name: string;
  value: string;
}

export interface PrintOptions {
  /** Lines of the leading comment block, without the `// ` prefix. */
  header?: string[];
}

/**
 * Print a file descriptor as .proto source that compiles back to the same descriptor (minus source_code_info).
 * The DescFile supplies the FileDescriptorProto (`file.proto`) and its imports, which are needed to resolve
 * custom options and to print type names as short as they can be without changing what they resolve to.
 */
export function printProtoFile(file: DescFile, options: PrintOptions = {}): string {
  return new ProtoPrinter(file).print(options);
}

class ProtoPrinter {
  private readonly fd: FileDescriptorProto;
  private readonly syntax: Syntax;
  private readonly registry: Registry;
  /** Every full name declared by the file and its transitive imports (without leading dot). */
  private readonly symbols = new Set<string>();
  private readonly out: string[] = [];

  constructor(file: DescFile) {
    this.fd = file.proto;
    const syntax = this.fd.syntax === "" ? "proto2" : this.fd.syntax;
    if (syntax !== "proto2" && syntax !== "proto3" && syntax !== "editions") {
      throw new Error(`${this.fd.name}: unsupported syntax "${syntax}"`);
    }
    this.syntax = syntax;
    const files = transitiveFiles(file);
    // The registry includes the file itself, so that its own extensions (used as options inside the very same
    // file, as validate.proto does with (buf.validate.predefined)) resolve.
    this.registry = createRegistry(...files);
    for (const f of files) {
      collectSymbols(f.proto, this.symbols);
    }
  }

  print(options: PrintOptions): string {
    const fd = this.fd;
    for (const line of options.header ?? []) {
      this.line(0, line === "" ? "//" : `// ${line}`);
    }
    if (options.header?.length) {
      this.line(0, "");
    }
    if (this.syntax === "editions") {
      this.line(0, `edition = ${quoteString(editionName(fd.edition))};`);
    } else {
      this.line(0, `syntax = ${quoteString(this.syntax)};`);
    }
    this.line(0, "");
    if (fd.package !== "") {
      this.line(0, `package ${fd.package};`);
      this.line(0, "");
    }
    const imports = fd.dependency.map((dep, i) => {
      const modifier = fd.publicDependency.includes(i) ? "public " : fd.weakDependency.includes(i) ? "weak " : "";
      return `import ${modifier}${quoteString(dep)};`;
    });
    imports.push(...fd.optionDependency.map((dep) => `import option ${quoteString(dep)};`));
    if (imports.length > 0) {
      for (const imp of imports) this.line(0, imp);
      this.line(0, "");
    }
    const scope = fd.package;
    const fileOptions = this.optionEntries(FileOptionsSchema, fd.options, [`${scope}.dummy`]);
    if (fileOptions.length > 0) {
      this.statementOptions(0, fileOptions);
      this.line(0, "");
    }
    const blocks: (() => void)[] = [
      ...this.extendBlocks(0, scope, fd.extension),
      ...fd.messageType.map((m) => () => this.message(0, scope, m)),
      ...fd.enumType.map((e) => () => this.enumType(0, scope, e)),
      ...fd.service.map((s) => () => this.service(0, scope, s)),
    ];
    blocks.forEach((block, i) => {
      if (i > 0) this.line(0, "");
      block();
    });
    return this.out.join("\n").replace(/\n+$/, "") + "\n";
  }

  private line(indent: number, text: string): void {
    this.out.push(text === "" ? "" : "  ".repeat(indent) + text);
  }

  // --- messages --------------------------------------------------------------------------------------------------

  private message(indent: number, scope: string, m: DescriptorProto): void {
    this.line(indent, `message ${m.name} {`);
    this.messageBody(indent + 1, join2(scope, m.name), m);
    this.line(indent, "}");
  }

  private messageBody(indent: number, fullName: string, m: DescriptorProto): void {
    const sections: (() => void)[] = [];
    const opts = this.optionEntries(MessageOptionsSchema, m.options, [fullName, `${fullName}.x`]);
    if (opts.length > 0) sections.push(() => this.statementOptions(indent, opts));
    for (const e of m.enumType) sections.push(() => this.enumType(indent, fullName, e));

    // Map entries and groups are nested types declared implicitly by their field. protoc appends nested types in
    // declaration order, so explicit nested messages are interleaved with the fields exactly where the implicit
    // ones fall, which reproduces the original nested_type order.
    const implicitBy = new Map<number, number>(); // nested type index -> index of the field declaring it
    m.field.forEach((f, i) => {
      const nested = this.implicitNestedType(fullName, m, f);
      if (nested !== undefined) implicitBy.set(nested, i);
    });
    const fieldPrinter = this.fieldPrinter(indent, fullName, m);
    const body: (() => void)[] = [];
    m.nestedType.forEach((nested, i) => {
      const fieldIndex = implicitBy.get(i);
      if (fieldIndex === undefined) {
        body.push(() => this.message(indent, fullName, nested));
      } else {
        body.push(() => fieldPrinter.upTo(fieldIndex));
      }
    });
    body.push(() => fieldPrinter.upTo(m.field.length - 1));
    sections.push(() => {
      for (const b of body) b();
    });

    const ranges = m.extensionRange.map((r) => ({
      r,
      text: this.range(r.start, r.end - 1, m.options?.messageSetWireFormat ? MAX_INT32 - 1 : MAX_FIELD_NUMBER),
    }));
    if (ranges.length > 0) {
      sections.push(() => {
        for (const { r, text } of ranges) {
          const entries = this.optionEntries(ExtensionRangeOptionsSchema, r.options, [fullName, `${fullName}.x`]);
          this.line(indent, `extensions ${text}${this.compactOptions(indent, entries)};`);
        }
      });
    }
    if (m.reservedRange.length > 0 || m.reservedName.length > 0) {
      sections.push(() =>
        this.reserved(
          indent,
          m.reservedRange.map((r) => this.range(r.start, r.end - 1, MAX_FIELD_NUMBER)),
          m.reservedName,
        ),
      );
    }
    for (const block of this.extendBlocks(indent, fullName, m.extension)) sections.push(block);

    sections.forEach((s, i) => {
      if (i > 0) this.line(indent, "");
      s();
    });
  }

  /** Index of the nested type implicitly declared by field f (map entry or proto2 group), if any. */
  private implicitNestedType(fullName: string, m: DescriptorProto, f: FieldDescriptorProto): number | undefined {
    const i = m.nestedType.findIndex((n) => `.${join2(fullName, n.name)}` === f.typeName);
    if (i < 0) return undefined;
    const nested = m.nestedType[i]!;
    if (nested.options?.mapEntry && f.label === Label.REPEATED) return i;
    if (f.type === Type.GROUP && this.syntax !== "editions" && nested.name.toLowerCase() === f.name) return i;
    return undefined;
  }

  /** Prints the fields of m in order; oneofs are printed as one block at the position of their first field. */
  private fieldPrinter(indent: number, fullName: string, m: DescriptorProto): { upTo(last: number): void } {
    let next = 0;
    let nextOneof = 0;
    const isRealOneofMember = (f: FieldDescriptorProto | undefined): boolean =>
      f !== undefined && isFieldSet(f, FieldDescriptorProtoSchema.field.oneofIndex) && !f.proto3Optional;
    return {
      upTo: (last: number) => {
        while (next <= last && next < m.field.length) {
          const f = m.field[next]!;
          if (!isRealOneofMember(f)) {
            this.field(indent, fullName, m, f, false);
            next++;
            continue;
          }
          const index = f.oneofIndex!;
          if (index !== nextOneof) {
            throw new Error(`${fullName}: oneof ${m.oneofDecl[index]?.name} cannot be printed in declaration order`);
          }
          nextOneof++;
          const oneof = m.oneofDecl[index]!;
          this.line(indent, `oneof ${oneof.name} {`);
          const oneofName = join2(fullName, oneof.name);
          const opts = this.optionEntries(OneofOptionsSchema, oneof.options, [oneofName, `${oneofName}.x`]);
          this.statementOptions(indent + 1, opts);
          while (next < m.field.length && isRealOneofMember(m.field[next]) && m.field[next]!.oneofIndex === index) {
            this.field(indent + 1, fullName, m, m.field[next]!, true);
            next++;
          }
          this.line(indent, "}");
        }
        const stray = m.field.slice(next).find((f) => isRealOneofMember(f) && f.oneofIndex! < nextOneof);
        if (stray) {
          throw new Error(`${fullName}: fields of oneof ${m.oneofDecl[stray.oneofIndex!]?.name} are not contiguous`);
        }
      },
    };
  }

  // --- fields ----------------------------------------------------------------------------------------------------

  /** Print a field; m is the enclosing message (undefined for extensions, which are printed with the same code). */
  private field(
    indent: number,
    scope: string,
    m: DescriptorProto | undefined,
    f: FieldDescriptorProto,
    inOneof: boolean,
  ): void {
    const fieldName = join2(scope, f.name);
    const rel = [fieldName];
    const nestedIndex = m ? this.implicitNestedType(scope, m, f) : undefined;
    const nested = nestedIndex === undefined ? undefined : m?.nestedType[nestedIndex];

    const pseudo: OptionEntry[] = [];
    if (isFieldSet(f, FieldDescriptorProtoSchema.field.defaultValue)) {
      pseudo.push({ name: "default", value: this.defaultValue(f) });
    }
    if (isFieldSet(f, FieldDescriptorProtoSchema.field.jsonName) && f.jsonName !== protoCamelCase(f.name)) {
      pseudo.push({ name: "json_name", value: quoteString(f.jsonName) });
    }
    const entries = [...pseudo, ...this.optionEntries(FieldOptionsSchema, f.options, [fieldName, `${fieldName}.x`])];
    const opts = this.compactOptions(indent, entries);

    if (nested?.options?.mapEntry) {
      const key = nested.field.find((x) => x.number === 1);
      const value = nested.field.find((x) => x.number === 2);
      if (!key || !value) throw new Error(`${fieldName}: malformed map entry ${nested.name}`);
      this.line(
        indent,
        `map<${this.typeName(key, rel)}, ${this.typeName(value, rel)}> ${f.name} = ${f.number}${opts};`,
      );
      return;
    }
    const label = this.label(f, inOneof);
    if (!nested && f.type === Type.GROUP && this.syntax !== "editions") {
      throw new Error(`${fieldName}: groups outside of their declaring message are not supported`);
    }
    if (nested) {
      // proto2 group: the field and its message type are declared together.
      this.line(indent, `${label}group ${nested.name} = ${f.number}${opts} {`);
      this.messageBody(indent + 1, join2(scope, nested.name), nested);
      this.line(indent, "}");
      return;
    }
    this.line(indent, `${label}${this.typeName(f, rel)} ${f.name} = ${f.number}${opts};`);
  }

  private label(f: FieldDescriptorProto, inOneof: boolean): string {
    if (inOneof) return "";
    if (f.label === Label.REPEATED) return "repeated ";
    switch (this.syntax) {
      case "editions":
        // Presence (incl. LEGACY_REQUIRED) is expressed by features, which are printed as options.
        return "";
      case "proto3":
        return f.proto3Optional ? "optional " : "";
      default:
        return f.label === Label.REQUIRED ? "required " : "optional ";
    }
  }

  private typeName(f: FieldDescriptorProto, relativeTo: string[]): string {
    const scalar = scalarTypeNames[f.type];
    if (scalar !== undefined) return scalar;
    if (f.typeName === "") throw new Error(`field ${f.name} has neither a scalar type nor a type name`);
    return this.name(f.typeName, relativeTo);
  }

  private defaultValue(f: FieldDescriptorProto): string {
    const v = f.defaultValue;
    switch (f.type) {
      case Type.STRING:
        return quoteString(v);
      case Type.BYTES:
        // FieldDescriptorProto.default_value of a bytes field is already C-escaped.
        return `"${v}"`;
      default:
        // Numbers (incl. inf/-inf/nan), true/false, and enum value names are written as-is.
        return v;
    }
  }

  private extendBlocks(indent: number, scope: string, extensions: FieldDescriptorProto[]): (() => void)[] {
    const groups: { extendee: string; fields: FieldDescriptorProto[] }[] = [];
    for (const ext of extensions) {
      const last = groups[groups.length - 1];
      if (last && last.extendee === ext.extendee) {
        last.fields.push(ext);
      } else {
        groups.push({ extendee: ext.extendee, fields: [ext] });
      }
    }
    return groups.map((g) => () => {
      this.line(indent, `extend ${this.name(g.extendee, [join2(scope, g.fields[0]!.name)])} {`);
      for (const f of g.fields) this.field(indent + 1, scope, undefined, f, false);
      this.line(indent, "}");
    });
  }

  private reserved(indent: number, ranges: string[], names: string[]): void {
    if (ranges.length > 0) this.line(indent, `reserved ${ranges.join(", ")};`);
    if (names.length > 0) {
      // Editions write reserved names as identifiers, proto2/proto3 as string literals.
      const list = names.map((n) => (this.syntax === "editions" ? n : quoteString(n)));
      this.line(indent, `reserved ${list.join(", ")};`);
    }
  }

  /** An inclusive range as `a`, `a to b`, or `a to max`. */
  private range(start: number, end: number, max: number): string {
    if (start === end) return String(start);
    return `${start} to ${end === max ? "max" : end}`;
  }

  // --- enums and services ----------------------------------------------------------------------------------------

  private enumType(indent: number, scope: string, e: EnumDescriptorProto): void {
    const fullName = join2(scope, e.name);
    this.line(indent, `enum ${e.name} {`);
    this.statementOptions(indent + 1, this.optionEntries(EnumOptionsSchema, e.options, [fullName, `${fullName}.x`]));
    for (const v of e.value) {
      // Enum values are siblings of their enum in the scope hierarchy.
      const valueName = join2(scope, v.name);
      const entries = this.optionEntries(EnumValueOptionsSchema, v.options, [valueName, `${valueName}.x`]);
      this.line(indent + 1, `${v.name} = ${v.number}${this.compactOptions(indent + 1, entries)};`);
    }
    this.reserved(
      indent + 1,
      e.reservedRange.map((r) => this.range(r.start, r.end, MAX_INT32)), // enum ranges are inclusive
      e.reservedName,
    );
    this.line(indent, "}");
  }

  private service(indent: number, scope: string, s: ServiceDescriptorProto): void {
    const fullName = join2(scope, s.name);
    this.line(indent, `service ${s.name} {`);
    this.statementOptions(indent + 1, this.optionEntries(ServiceOptionsSchema, s.options, [fullName, `${fullName}.x`]));
    for (const m of s.method) {
      const methodName = join2(fullName, m.name);
      const rel = [methodName];
      const input = `${m.clientStreaming ? "stream " : ""}${this.name(m.inputType, rel)}`;
      const output = `${m.serverStreaming ? "stream " : ""}${this.name(m.outputType, rel)}`;
      const opts = this.optionEntries(MethodOptionsSchema, m.options, [methodName, `${methodName}.x`]);
      if (opts.length === 0) {
        // `rpc ... {}` (vs `;`) makes protoc create an empty MethodOptions, which the descriptor preserves.
        this.line(indent + 1, `rpc ${m.name}(${input}) returns (${output})${m.options ? " {}" : ";"}`);
      } else {
        this.line(indent + 1, `rpc ${m.name}(${input}) returns (${output}) {`);
        this.statementOptions(indent + 2, opts);
        this.line(indent + 1, "}");
      }
    }
    this.line(indent, "}");
  }

  // --- names -----------------------------------------------------------------------------------------------------

  /**
   * The shortest form of a fully-qualified name (".pkg.Msg") that resolves to it from every one of the given
   * scopes. Resolution follows protoc: the first component is looked up in the innermost scope, then outwards, and
   * the first scope declaring it wins. We treat *any* declared symbol as a hit (protoc skips some non-types), which
   * only makes us more conservative; if nothing shorter is safe the name stays fully qualified with a leading dot.
   */
  private name(fullyQualified: string, relativeTo: string[]): string {
    const target = fullyQualified.replace(/^\./, "");
    const parts = target.split(".");
    for (let i = parts.length - 1; i >= 0; i--) {
      const candidate = parts.slice(i).join(".");
      if (relativeTo.every((rel) => this.resolve(candidate, rel) === target)) return candidate;
    }
    return `.${target}`;
  }

  private resolve(name: string, relativeTo: string): string | undefined {
    const first = name.split(".")[0]!;
    let scope = relativeTo;
    for (;;) {
      const dot = scope.lastIndexOf(".");
      scope = dot < 0 ? "" : scope.slice(0, dot);
      if (this.symbols.has(join2(scope, first))) return join2(scope, name);
      if (scope === "") return undefined;
    }
  }

  // --- options ---------------------------------------------------------------------------------------------------

  private statementOptions(indent: number, entries: OptionEntry[]): void {
    const pad = "  ".repeat(indent);
    for (const e of entries) {
      this.line(indent, `option ${e.name} = ${e.value.replaceAll("\n", `\n${pad}`)};`);
    }
  }

  /** Options in brackets after a field, enum value or extension range; "" if there are none. */
  private compactOptions(indent: number, entries: OptionEntry[]): string {
    if (entries.length === 0) return "";
    const pad = "  ".repeat(indent);
    if (entries.length === 1) {
      const e = entries[0]!;
      return ` [${e.name} = ${e.value.replaceAll("\n", `\n${pad}`)}]`;
    }
    const inner = `${pad}  `;
    const items = entries.map((e) => `${inner}${e.name} = ${e.value.replaceAll("\n", `\n${inner}`)}`);
    return ` [\n${items.join(",\n")}\n${pad}]`;
  }

  /**
   * The set fields of an options message as option entries: standard options by name, custom options (extensions,
   * which protobuf-es keeps as unknown fields) by `(name)`, resolved through the registry.
   */
  private optionEntries(schema: DescMessage, options: Message | undefined, scopes: string[]): OptionEntry[] {
    if (options === undefined) return [];
    this.assertResolvable(schema, options);
    const entries: OptionEntry[] = [];
    for (const field of schema.fields) {
      // uninterpreted_option only exists before options are interpreted; a compiled descriptor never has it.
      if (field.name === "uninterpreted_option" || !isFieldSet(options, field)) continue;
      entries.push(...this.entriesFor(field.name, field, fieldValue(options, field)));
    }
    for (const ext of this.extensionsOf(schema, options)) {
      const name = `(${this.name(ext.typeName, scopes)})`;
      entries.push(...this.entriesFor(name, ext, getExtension(options, ext)));
    }
    return entries;
  }

  private entriesFor(name: string, field: FieldLike, value: unknown): OptionEntry[] {
    switch (field.fieldKind) {
      case "list":
        return (value as unknown[]).flatMap((item) => {
          switch (field.listKind) {
            case "message":
              return this.messageEntries(name, field.message, item as Message, field.delimitedEncoding);
            case "enum":
              return [{ name, value: enumValueName(field.enum.values, item as number) }];
            default:
              return [{ name, value: scalarText(field.scalar, item) }];
          }
        });
      case "map":
        return Object.entries(value as Record<string, unknown>).map(([k, v]) => {
          const key = field.mapKey === ScalarType.STRING ? quoteString(k) : k;
          let val: string;
          switch (field.mapKind) {
            case "message":
              val = this.messageLiteral(field.message, v as Message);
              break;
            case "enum":
              val = enumValueName(field.enum.values, v as number);
              break;
            default:
              val = scalarText(field.scalar, v);
          }
          return { name, value: `{\n  key: ${key}\n  value: ${val.replaceAll("\n", "\n  ")}\n}` };
        });
      case "message":
        return this.messageEntries(name, field.message, value as Message, field.delimitedEncoding);
      case "enum":
        return [{ name, value: enumValueName(field.enum.values, value as number) }];
      default:
        return [{ name, value: scalarText(field.scalar, value) }];
    }
  }

  /**
   * A message-typed option value. A message with exactly one (non-extension) field set is flattened into the option
   * name, the way people write them: `(buf.validate.predefined).cel = {...}`, `features.field_presence = IMPLICIT`.
   */
  private messageEntries(name: string, desc: DescMessage, value: Message, delimited: boolean): OptionEntry[] {
    const set = desc.fields.filter((f) => isFieldSet(value, f));
    const only = set.length === 1 && (value.$unknown?.length ?? 0) === 0 && !delimited ? set[0]! : undefined;
    if (only !== undefined && only.fieldKind !== "map") {
      const v = fieldValue(value, only);
      if (only.fieldKind !== "list" || (v as unknown[]).length === 1) {
        return this.entriesFor(`${name}.${only.name}`, only, v);
      }
    }
    return [{ name, value: this.messageLiteral(desc, value) }];
  }

  /** A message in the text format between braces, as used for aggregate option values. */
  private messageLiteral(desc: DescMessage, value: Message): string {
    const body = toText(desc, value, { registry: this.registry }).replace(/\n+$/, "");
    if (body.trim() === "") return "{}";
    return `{\n${body
      .split("\n")
      .map((l) => `  ${l}`)
      .join("\n")}\n}`;
  }

  private extensionsOf(schema: DescMessage, message: Message): DescExtension[] {
    const seen = new Set<number>();
    const extensions: DescExtension[] = [];
    for (const uf of message.$unknown ?? []) {
      if (seen.has(uf.no)) continue;
      seen.add(uf.no);
      const ext = this.registry.getExtensionFor(schema, uf.no);
      if (ext === undefined) {
        throw new Error(`${schema.typeName} has unknown field ${uf.no} that is no extension in the registry`);
      }
      extensions.push(ext);
    }
    return extensions;
  }

  /** toText silently drops unknown fields, so make sure every unknown field is a resolvable extension. */
  private assertResolvable(schema: DescMessage, message: Message): void {
    const check = (desc: DescMessage, value: unknown) => {
      if (value !== undefined) this.assertResolvable(desc, value as Message);
    };
    for (const field of schema.fields) {
      if (!isFieldSet(message, field)) continue;
      const v = fieldValue(message, field);
      if (field.fieldKind === "message") check(field.message, v);
      if (field.fieldKind === "list" && field.listKind === "message") {
        for (const item of v as unknown[]) check(field.message, item);
      }
      if (field.fieldKind === "map" && field.mapKind === "message") {
        for (const item of Object.values(v as Record<string, unknown>)) check(field.message, item);
      }
    }
    for (const ext of this.extensionsOf(schema, message)) {
      const v: unknown = getExtension(message, ext);
      if (ext.fieldKind === "message") check(ext.message, v);
      if (ext.fieldKind === "list" && ext.listKind === "message") {
        for (const item of v as unknown[]) check(ext.message, item);
      }
    }
  }
}

// --- helpers -----------------------------------------------------------------------------------------------------

function join2(scope: string, name: string): string {
  return scope === "" ? name : `${scope}.${name}`;
}

function transitiveFiles(file: DescFile): DescFile[] {
  const seen = new Map<string, DescFile>();
  const visit = (f: DescFile) => {
    if (seen.has(f.name)) return;
    seen.set(f.name, f);
    f.dependencies.forEach(visit);
  };
  visit(file);
  return [...seen.values()];
}

/** Every full name a file declares (packages, types, fields, oneofs, enum values, extensions, services, methods). */
function collectSymbols(fd: FileDescriptorProto, out: Set<string>): void {
  const pkg = fd.package;
  if (pkg !== "") {
    const parts = pkg.split(".");
    for (let i = 1; i <= parts.length; i++) out.add(parts.slice(0, i).join("."));
  }
  const enumType = (scope: string, e: EnumDescriptorProto) => {
    out.add(join2(scope, e.name));
    for (const v of e.value) out.add(join2(scope, v.name));
  };
  const message = (scope: string, m: DescriptorProto) => {
    const name = join2(scope, m.name);
    out.add(name);
    for (const f of [...m.field, ...m.extension]) out.add(join2(name, f.name));
    for (const o of m.oneofDecl) out.add(join2(name, o.name));
    for (const e of m.enumType) enumType(name, e);
    for (const n of m.nestedType) message(name, n);
  };
  for (const m of fd.messageType) message(pkg, m);
  for (const e of fd.enumType) enumType(pkg, e);
  for (const x of fd.extension) out.add(join2(pkg, x.name));
  for (const s of fd.service) {
    out.add(join2(pkg, s.name));
    for (const m of s.method) out.add(join2(join2(pkg, s.name), m.name));
  }
}

/** The plain value of a set field of a protobuf-es message (oneof members live under the oneof's property). */
function fieldValue(message: Message, field: DescField): unknown {
  const record = message as unknown as Record<string, unknown>;
  if (field.oneof !== undefined) {
    const oneof = record[field.oneof.localName] as { case: string | undefined; value?: unknown };
    return oneof.case === field.localName ? oneof.value : undefined;
  }
  return record[field.localName];
}

function enumValueName(values: readonly { number: number; name: string }[], n: number): string {
  return values.find((v) => v.number === n)?.name ?? String(n);
}

function editionName(edition: Edition): string {
  const name = Edition[edition];
  if (name === undefined || !/^EDITION_\d+$/.test(name)) throw new Error(`unsupported edition ${edition}`);
  return name.slice("EDITION_".length);
}

function scalarText(type: ScalarType, value: unknown): string {
  switch (type) {
    case ScalarType.STRING:
      return quoteString(value as string);
    case ScalarType.BYTES:
      return quoteBytes(value as Uint8Array);
    case ScalarType.BOOL:
      return value ? "true" : "false";
    case ScalarType.FLOAT:
    case ScalarType.DOUBLE: {
      const n = value as number;
      if (Number.isNaN(n)) return "nan";
      if (n === Number.POSITIVE_INFINITY) return "inf";
      if (n === Number.NEGATIVE_INFINITY) return "-inf";
      return Object.is(n, -0) ? "-0" : String(n);
    }
    default:
      return String(value); // integers; 64-bit ones are bigint or decimal strings
  }
}

const simpleEscapes: Record<string, string> = { "\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t" };

/** A .proto string literal; non-ASCII text stays as UTF-8, control characters are escaped. */
function quoteString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const code = ch.codePointAt(0)!;
    out += simpleEscapes[ch] ?? (code < 0x20 || code === 0x7f ? `\\${code.toString(8).padStart(3, "0")}` : ch);
  }
  return `${out}"`;
}

/** A .proto string literal for bytes: printable ASCII as-is, everything else octal-escaped. */
function quoteBytes(bytes: Uint8Array): string {
  let out = '"';
  for (const b of bytes) {
    const ch = String.fromCharCode(b);
    out += simpleEscapes[ch] ?? (b >= 0x20 && b < 0x7f ? ch : `\\${b.toString(8).padStart(3, "0")}`);
  }
  return `${out}"`;
}

// ---------------------------------------------------------------------------------------------------------------
// buf/validate/validate.proto from @bufbuild/protovalidate
// ---------------------------------------------------------------------------------------------------------------

export const VALIDATE_PROTO_PATH = "buf/validate/validate.proto";
const PACKAGE_NAME = "@bufbuild/protovalidate";
const EMBEDDING_MODULE = "dist/esm/gen/buf/validate/validate_pb.js";
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
/** Where the vendored file lives: proto/ is the root of our buf module. */
export const OUTPUT_FILE = join(repoRoot, "proto", VALIDATE_PROTO_PATH);

export interface ProtovalidatePackage {
  version: string;
  license: string;
  /** The copyright line of the package's generated validate_pb.js (the original's is not in the descriptor). */
  copyright: string;
}

export function protovalidatePackage(): ProtovalidatePackage {
  // The package's "exports" do not expose package.json, so find it from the resolved entry point.
  let dir = dirname(fileURLToPath(import.meta.resolve(PACKAGE_NAME)));
  for (;;) {
    const candidate = join(dir, "package.json");
    if (existsSync(candidate)) {
      const pkg = JSON.parse(readFileSync(candidate, "utf8")) as { name?: string; version: string; license: string };
      if (pkg.name === PACKAGE_NAME) {
        const generated = readFileSync(join(dir, EMBEDDING_MODULE), "utf8");
        const copyright = /Copyright [^\n]*/.exec(generated)?.[0];
        if (!copyright) throw new Error(`no copyright line in ${EMBEDDING_MODULE}`);
        return { version: pkg.version, license: pkg.license, copyright };
      }
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`package.json of ${PACKAGE_NAME} not found`);
    dir = parent;
  }
}

/** The complete text of proto/buf/validate/validate.proto. */
export function renderValidateProto(): string {
  const pkg = protovalidatePackage();
  if (pkg.license !== "Apache-2.0") {
    throw new Error(`${PACKAGE_NAME}@${pkg.version} is licensed "${pkg.license}", not Apache-2.0: review the header`);
  }
  const file = file_buf_validate_validate;
  if (file.proto.name !== VALIDATE_PROTO_PATH) throw new Error(`unexpected embedded file ${file.proto.name}`);
  const header = [
    "Code generated by scripts/vendor-validate-proto.ts. DO NOT EDIT.",
    "",
    `Generated from the FileDescriptorProto of ${VALIDATE_PROTO_PATH} that is embedded in the npm package`,
    `${PACKAGE_NAME}@${pkg.version} (${EMBEDDING_MODULE}, export file_buf_validate_validate),`,
    "by scripts/vendor-validate-proto.ts. Regenerate with: npx tsx scripts/vendor-validate-proto.ts",
    "This is a derived work of the original buf/validate/validate.proto (protovalidate, Buf Technologies):",
    "it is equivalent as a descriptor, but the formatting differs and the original comments (documentation)",
    "are not included, because the embedded descriptor carries no source_code_info.",
    "",
    "Original work:",
    `${pkg.copyright}`,
    "",
    `SPDX-License-Identifier: ${pkg.license}`,
    'Licensed under the Apache License, Version 2.0 (the "License");',
    "you may not use this file except in compliance with the License.",
    "You may obtain a copy of the License at",
    "",
    "     http://www.apache.org/licenses/LICENSE-2.0",
    "",
    "Unless required by applicable law or agreed to in writing, software",
    'distributed under the License is distributed on an "AS IS" BASIS,',
    "WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.",
    "See the License for the specific language governing permissions and",
    "limitations under the License.",
  ];
  return printProtoFile(file, { header });
}

function main(args: string[]): number {
  const text = renderValidateProto();
  const display = `proto/${VALIDATE_PROTO_PATH}`;
  if (args.includes("--check")) {
    const current = existsSync(OUTPUT_FILE) ? readFileSync(OUTPUT_FILE, "utf8") : undefined;
    if (current === text) {
      console.log(`${display} is up to date`);
      return 0;
    }
    console.error(
      `${display} is ${current === undefined ? "missing" : "stale"}: run npx tsx scripts/vendor-validate-proto.ts`,
    );
    return 1;
  }
  mkdirSync(dirname(OUTPUT_FILE), { recursive: true });
  writeFileSync(OUTPUT_FILE, text);
  console.log(`wrote ${display} (${text.split("\n").length - 1} lines)`);
  return 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  process.exitCode = main(process.argv.slice(2));
}
