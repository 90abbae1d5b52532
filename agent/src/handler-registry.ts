import { accessSync, constants } from "node:fs";
import path from "node:path";
import type { Handler, HandlerName } from "./handler.js";
import { AnsibleHandler } from "./handlers/ansible.js";
import { MockHandler } from "./handlers/mock.js";
import { ShellHandler } from "./handlers/shell.js";
import { TofuHandler } from "./handlers/tofu.js";

/** Binaries of the tool handlers; unset = looked up on PATH. */
export interface HandlerBinaries {
  /** @default `tofu` on PATH */
  tofu?: string | undefined;
  /** @default `terraform` on PATH */
  terraform?: string | undefined;
  /** @default `ansible-playbook` on PATH */
  ansiblePlaybook?: string | undefined;
}

/** The default binary name of each tool handler. */
const TOOL_BINARY: Partial<Record<HandlerName, string>> = {
  tofu: "tofu",
  terraform: "terraform",
  ansible: "ansible-playbook",
};

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Absolute path of `name` on PATH (or `name` itself when it is a path and executable), else undefined. */
export function findExecutable(name: string, envPath: string = process.env.PATH ?? ""): string | undefined {
  if (name.includes("/")) return isExecutable(name) ? path.resolve(name) : undefined;
  for (const dir of envPath.split(path.delimiter)) {
    if (dir !== "" && isExecutable(path.join(dir, name))) return path.join(dir, name);
  }
  return undefined;
}

/** The binary a handler needs: the configured one, else its default name on PATH; undefined when not found. */
export function handlerBinary(name: HandlerName, binaries: HandlerBinaries): string | undefined | null {
  const configured =
    name === "tofu"
      ? binaries.tofu
      : name === "terraform"
        ? binaries.terraform
        : name === "ansible"
          ? binaries.ansiblePlaybook
          : undefined;
  const wanted = configured ?? TOOL_BINARY[name];
  if (wanted === undefined) return null; // needs no binary
  return findExecutable(wanted);
}

/** Handlers by name. Throws naming the handler and binary when a tool is missing. */
export function createHandlers(names: readonly HandlerName[], binaries: HandlerBinaries): Map<string, Handler> {
  const out = new Map<string, Handler>();
  for (const name of names) {
    const bin = handlerBinary(name, binaries);
    if (bin === undefined) {
      const flag = name === "ansible" ? "--ansible-playbook-bin" : `--${name}-bin`;
      throw new Error(`handler "${name}": ${TOOL_BINARY[name]} not found (set ${flag} or put it on PATH)`);
    }
    switch (name) {
      case "shell":
        out.set(name, new ShellHandler());
        break;
      case "mock":
        out.set(name, new MockHandler());
        break;
      case "tofu":
      case "terraform":
        out.set(name, new TofuHandler(name, bin!));
        break;
      case "ansible":
        out.set(name, new AnsibleHandler(bin!));
        break;
      default: {
        const unreachable: never = name;
        throw new Error(`unknown handler ${String(unreachable)}`);
      }
    }
  }
  return out;
}

/** Default handler set: shell, plus each tool handler whose binary is found. */
export function availableHandlers(binaries: HandlerBinaries): HandlerName[] {
  const out: HandlerName[] = ["shell"];
  for (const name of ["tofu", "terraform", "ansible"] as const) {
    if (handlerBinary(name, binaries)) out.push(name);
  }
  return out;
}
