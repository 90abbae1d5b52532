/**
 * A configuration value is missing, malformed or out of range. The message always starts with the name of the
 * variable (and flag) that holds the bad value, e.g. `STACKL_PORT: expected an integer 0-65535, got "abc"`.
 * The CLI prints it and exits non-zero before anything starts.
 */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  /** Environment variables (or flags) the error is about, e.g. `["STACKL_PORT"]`. */
  readonly variables: readonly string[];

  constructor(message: string, variables: readonly string[], options?: { cause?: unknown }) {
    super(message, options);
    this.variables = variables;
  }
}
