// Scratch: in-process server with DocumentService on PGlite in memory, for manual CLI checks. Not committed.
import { DocumentService } from "../gen/stackl/v1/documents_pb.js";
import { createDocumentService } from "../src/services/document-service.js";
import { ChangeNotifier } from "../src/store/change-notifier.js";
import { DocumentRepo } from "../src/store/document-repo.js";
import { openDb } from "../src/store/open-db.js";
import { startTestServer } from "../test/support/server.js";

const db = await openDb({ memory: true });
const notifier = new ChangeNotifier(db);
const srv = await startTestServer({
  env: { STACKL_PORT: process.argv[2] ?? "0" },
  register: (router) => router.service(DocumentService, createDocumentService({ repo: new DocumentRepo(db), notifier }) as never),
});
console.log(srv.url);
