import { readFileSync } from "node:fs";
import path from "node:path";
import { writePrivateFile } from "./state-files.js";

/**
 * The agent credential issued at enrollment (Welcome.agent_credential), kept in `<state-dir>/credential.json`
 * (mode 0600, directory 0700). While it exists the agent presents it instead of an enrollment token. Delete the
 * file to enroll again with a new token.
 */
export interface StoredCredential {
  agent_credential: string;
  /** Server it was issued by, and the agent name: informational. */
  server: string;
  name: string;
  enrolled_at: string;
}

export class CredentialStore {
  readonly file: string;

  constructor(stateDir: string) {
    this.file = path.join(stateDir, "credential.json");
  }

  /** The stored credential, or undefined when there is none. Throws when the file exists but is unreadable. */
  load(): StoredCredential | undefined {
    let text: string;
    try {
      text = readFileSync(this.file, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw new Error(`cannot read ${this.file}: ${(err as Error).message}`);
    }
    let doc: Partial<StoredCredential>;
    try {
      doc = JSON.parse(text) as Partial<StoredCredential>;
    } catch {
      throw new Error(`${this.file} is not valid JSON; delete it to enroll again`);
    }
    if (typeof doc.agent_credential !== "string" || doc.agent_credential === "") {
      throw new Error(`${this.file} holds no agent_credential; delete it to enroll again`);
    }
    return {
      agent_credential: doc.agent_credential,
      server: doc.server ?? "",
      name: doc.name ?? "",
      enrolled_at: doc.enrolled_at ?? "",
    };
  }

  save(credential: string, server: string, name: string): StoredCredential {
    const doc: StoredCredential = {
      agent_credential: credential,
      server,
      name,
      enrolled_at: new Date().toISOString(),
    };
    writePrivateFile(this.file, `${JSON.stringify(doc, null, 2)}\n`);
    return doc;
  }
}
