/**
 * Apollo's cache of parsed and validated documents, bounded by the memory its entries really hold.
 *
 * Apollo's default (an InMemoryLRUCache of 30 MiB) sizes a document by its JSON, which leaves out
 * what a parsed document keeps alive: the request's whole query text (`loc.source`) and the lexer's
 * linked list of every token (`loc.startToken`), comments included, which the token limit does not
 * count. A document of 20 000 `#` comment lines, 60 KB in a request, holds ~1.7 MB of heap and was
 * charged ~0.5 KB: any client, unauthenticated (a document is cached once it validates, before any
 * resolver checks the caller), could fill the heap with distinct documents until the process died
 * (README, "Limits").
 */
import { InMemoryLRUCache } from '@apollo/utils.keyvaluecache';
import type { DocumentNode } from 'graphql';

/** What the cache may hold, in estimated heap bytes: Apollo's own default budget, now counted truthfully. */
export const DOCUMENT_CACHE_BYTES = 30 * 2 ** 20;

// Measured on Node 20 and graphql 16 (parse() of documents of each shape, heap after a full
// collection), rounded up: an AST holds ~3-4.5 times its JSON's bytes, and each token ~88 bytes.
const AST_BYTES_PER_JSON_BYTE = 5;
const BYTES_PER_TOKEN = 100;
// The query text, at two bytes a character, as V8 keeps a string with any non-Latin-1 character.
const BYTES_PER_SOURCE_CHAR = 2;

/** A document's heap, estimated from above: its nodes, its tokens and the query text it keeps. */
export function documentHeapBytes(document: DocumentNode): number {
  let tokens = 0;
  for (let token = document.loc?.startToken ?? null; token !== null; token = token.next) tokens += 1;
  const json = Buffer.byteLength(JSON.stringify(document), 'utf8');
  return json * AST_BYTES_PER_JSON_BYTE + tokens * BYTES_PER_TOKEN + (document.loc?.source.body.length ?? 0) * BYTES_PER_SOURCE_CHAR;
}

/** The documentStore Apollo Server is given in place of its default. */
export function boundedDocumentStore(maxBytes: number = DOCUMENT_CACHE_BYTES): InMemoryLRUCache<DocumentNode> {
  return new InMemoryLRUCache<DocumentNode>({ maxSize: maxBytes, sizeCalculation: documentHeapBytes });
}
