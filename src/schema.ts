import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { gql } from 'graphql-tag';
import type { DocumentNode } from 'graphql';

/** The schema files in ../schema, one document, read once at start-up. */
export const SCHEMA_DIR = fileURLToPath(new URL('../schema/', import.meta.url));

export function loadTypeDefs(dir = SCHEMA_DIR): DocumentNode {
  const sdl = readdirSync(dir)
    .filter((file) => file.endsWith('.graphql'))
    .sort()
    .map((file) => readFileSync(`${dir}${file}`, 'utf8'))
    .join('\n');
  return gql(sdl);
}
