/**
 * The invocation tools STACKL knows. `shell`, `tofu`, `terraform`, `ansible` and `mock` have agent handlers;
 * `packer` is kept from the original (agents without the handler report it as unsupported).
 */

export const INVOCATION_TOOLS = ["shell", "tofu", "terraform", "ansible", "mock", "packer"] as const;
export type InvocationTool = (typeof INVOCATION_TOOLS)[number];

const known: ReadonlySet<string> = new Set(INVOCATION_TOOLS);

export function isInvocationTool(tool: string): tool is InvocationTool {
  return known.has(tool);
}
