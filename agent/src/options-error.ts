/** A bad command-line flag, environment variable or config file entry; the message names the option. */
export class OptionsError extends Error {
  override readonly name = "OptionsError";
}
