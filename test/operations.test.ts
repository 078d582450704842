import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { buildASTSchema, Kind, parse, validate, type OperationDefinitionNode } from 'graphql';
import { loadTypeDefs } from '../src/schema.js';

// The documents apps ship (operations/*.graphql): a schema change that breaks one fails here,
// before it reaches a client.
const OPERATIONS_DIR = fileURLToPath(new URL('../operations/', import.meta.url));
const files = readdirSync(OPERATIONS_DIR).filter((file) => file.endsWith('.graphql')).sort();
const schema = buildASTSchema(loadTypeDefs());

describe('client operations', () => {
  it('exist', () => {
    expect(files).toContain('StartVerification.graphql');
  });

  it.each(files)('%s is valid against the schema', (file) => {
    const document = parse(readFileSync(`${OPERATIONS_DIR}${file}`, 'utf8'));
    expect(validate(schema, document).map((error) => error.message)).toEqual([]);
  });

  it.each(files)('%s holds one operation named after the file', (file) => {
    // Apollo Kotlin and Apollo iOS generate one class per operation name: one file, one name.
    const document = parse(readFileSync(`${OPERATIONS_DIR}${file}`, 'utf8'));
    const operations = document.definitions.filter((node): node is OperationDefinitionNode => node.kind === Kind.OPERATION_DEFINITION);
    expect(operations.map((operation) => operation.name?.value)).toEqual([file.replace(/\.graphql$/, '')]);
  });
});
