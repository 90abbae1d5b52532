/**
 * Realistic documents for the document benchmarks: clones of the STACKL fixture tree's environments, locations,
 * zones, functional requirements and services (test/fixtures/stackl-tree/) under unique names. Services in a batch
 * reference the functional requirements cloned into the same batch, so every batch passes the reference checks.
 */
import { clone } from "@bufbuild/protobuf";
import { type Document, DocumentKind, DocumentSchema } from "../../gen/stackl/v1/documents_pb.js";
import { kindOfDocument } from "../../src/services/document-codec.js";
import { loadStacklTree } from "../../test/fixtures/stackl-tree.js";

export type LayerCase = "environment" | "location" | "zone" | "functionalRequirement" | "service";

/** The whole fixture tree (policy templates, SAT, SIT included): applied once so layer policies resolve. */
export function fixtureTree(): Document[] {
  const parsed = loadStacklTree();
  const bad = parsed.filter((p) => p.doc === undefined || p.violations.length > 0);
  if (bad.length > 0) throw new Error(`fixture tree does not parse: ${JSON.stringify(bad.map((b) => b.path))}`);
  return parsed.map((p) => p.doc as Document);
}

/** Templates by kind, from the fixture tree. */
export function templates(tree: Document[] = fixtureTree()): Record<LayerCase, Document[]> {
  const by = (c: LayerCase) => tree.filter((d) => d.spec.case === c);
  const out = {
    environment: by("environment"),
    location: by("location"),
    zone: by("zone"),
    functionalRequirement: by("functionalRequirement"),
    service: by("service"),
  };
  for (const [k, v] of Object.entries(out)) if (v.length === 0) throw new Error(`fixture tree has no ${k}`);
  return out;
}

/** Kinds per batch of 100 (scaled for other sizes): 10 environments, 10 locations, 20 zones, 30 FRs, 30 services. */
const MIX: ReadonlyArray<[LayerCase, number]> = [
  ["environment", 0.1],
  ["location", 0.1],
  ["zone", 0.2],
  ["functionalRequirement", 0.3],
  ["service", 0.3],
];

function renamed(template: Document, name: string): Document {
  const d = clone(DocumentSchema, template);
  d.meta = { ...(d.meta as NonNullable<Document["meta"]>), name };
  return d;
}

export class DocumentFactory {
  readonly #t: Record<LayerCase, Document[]>;
  #single = 0;

  constructor(t: Record<LayerCase, Document[]> = templates()) {
    this.#t = t;
  }

  /**
   * A batch of `size` new documents named `<template>-<tag>-<i>`; its services reference functional requirements
   * cloned into the same batch (renamed the same way).
   */
  batch(tag: string, size = 100): Document[] {
    const out: Document[] = [];
    const counts = MIX.map(([c, share]) => [c, Math.max(1, Math.round(size * share))] as const);
    let total = counts.reduce((a, [, n]) => a + n, 0);
    const adjusted = counts.map(([c, n]) => [c, n] as [LayerCase, number]);
    // Make the batch exactly `size`: adjust the last kind.
    const last = adjusted[adjusted.length - 1] as [LayerCase, number];
    last[1] += size - total;
    total = size;
    const frTemplates = this.#t.functionalRequirement;
    const frCount = adjusted.find(([c]) => c === "functionalRequirement")?.[1] ?? 0;
    const frCopies = Math.max(1, Math.floor(frCount / frTemplates.length));
    for (const [c, n] of adjusted) {
      const list = this.#t[c];
      for (let i = 0; i < n; i++) {
        const template = list[i % list.length] as Document;
        const base = template.meta?.name ?? c;
        if (c === "functionalRequirement") {
          out.push(renamed(template, `${base}-${tag}-c${Math.floor(i / frTemplates.length)}`));
        } else {
          const d = renamed(template, `${base}-${tag}-${i}`);
          if (d.spec.case === "service") {
            const copy = i % frCopies;
            d.spec.value.functionalRequirements = d.spec.value.functionalRequirements.map(
              (fr) => `${fr}-${tag}-c${copy}`,
            );
          }
          out.push(d);
        }
      }
    }
    if (out.length !== total) throw new Error(`batch has ${out.length} documents, wanted ${total}`);
    return out;
  }

  /** One new document (kinds in turn); services reference the fixture tree's own functional requirements. */
  single(tag: string): Document {
    const i = this.#single++;
    const [c] = MIX[i % MIX.length] as [LayerCase, number];
    const list = this.#t[c];
    const template = list[Math.floor(i / MIX.length) % list.length] as Document;
    return renamed(template, `${template.meta?.name ?? c}-${tag}-s${i}`);
  }
}

/** The API kind enum of a document. */
export function kindOf(doc: Document): DocumentKind {
  return kindOfDocument(doc) ?? DocumentKind.UNSPECIFIED;
}
