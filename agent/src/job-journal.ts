import { readdirSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { fromJson, type JsonValue, toJson } from "@bufbuild/protobuf";
import { type JobResult, JobResultSchema } from "../../gen/stackl/v1/agents_pb.js";
import { writePrivateFile } from "./state-files.js";
import { safeSegment } from "./work-paths.js";

/**
 * The on-disk journal of jobs the agent holds (`<state-dir>/jobs/<job id>.json`, 0600): written when a job is
 * accepted, when it starts a process (its process group, to clean up after an agent crash) and when it finishes
 * (its result, so a result produced while the server was unreachable survives an agent restart); removed when the
 * server confirmed the result or said to drop the job.
 *
 * On start the agent reads the journal back: finished jobs are reported in Hello with `finished: true` and their
 * result; jobs that were running when the agent died have their leftover process group stopped and are reported
 * finished with outcome FAILED.
 */
export interface JournalEntry {
  jobId: string;
  epoch: bigint;
  /** Next log sequence number at the last write (a lower bound once the job produced more output). */
  nextLogSeq: bigint;
  /** Process group of the job's current process, with its start time (clock ticks) to recognise pid reuse. */
  pgid?: number | undefined;
  pgidStartTicks?: string | undefined;
  result?: JobResult | undefined;
}

interface StoredEntry {
  job_id: string;
  epoch: string;
  next_log_seq: string;
  pgid?: number;
  pgid_start_ticks?: string;
  result?: JsonValue;
}

/** Start time of `pid` in clock ticks since boot (/proc/<pid>/stat field 22), or undefined. */
export function processStartTicks(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

export class JobJournal {
  readonly dir: string;

  constructor(stateDir: string) {
    this.dir = path.join(stateDir, "jobs");
  }

  private file(jobId: string): string {
    return path.join(this.dir, `${safeSegment(jobId)}.json`);
  }

  write(entry: JournalEntry): void {
    const doc: StoredEntry = {
      job_id: entry.jobId,
      epoch: String(entry.epoch),
      next_log_seq: String(entry.nextLogSeq),
    };
    if (entry.pgid !== undefined) doc.pgid = entry.pgid;
    if (entry.pgidStartTicks !== undefined) doc.pgid_start_ticks = entry.pgidStartTicks;
    if (entry.result) doc.result = toJson(JobResultSchema, entry.result);
    writePrivateFile(this.file(entry.jobId), `${JSON.stringify(doc)}\n`);
  }

  remove(jobId: string): void {
    rmSync(this.file(jobId), { force: true });
  }

  /** Every readable entry; unreadable files are returned in `broken` (and left alone). */
  load(): { entries: JournalEntry[]; broken: string[] } {
    const entries: JournalEntry[] = [];
    const broken: string[] = [];
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return { entries, broken };
    }
    for (const name of names.filter((n) => n.endsWith(".json")).sort()) {
      const file = path.join(this.dir, name);
      try {
        const doc = JSON.parse(readFileSync(file, "utf8")) as StoredEntry;
        entries.push({
          jobId: doc.job_id,
          epoch: BigInt(doc.epoch),
          nextLogSeq: BigInt(doc.next_log_seq),
          pgid: doc.pgid,
          pgidStartTicks: doc.pgid_start_ticks,
          result: doc.result === undefined ? undefined : fromJson(JobResultSchema, doc.result),
        });
      } catch {
        broken.push(file);
      }
    }
    return { entries, broken };
  }
}
