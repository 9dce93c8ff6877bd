// Parses civicbus's AsyncAPI documents with the AsyncAPI initiative's own parser and checks every message's examples
// against its payload schema (the parser checks the document, not the examples): a contract others can trust.
// Usage: node web/asyncapi-check.mjs DOCUMENT.json... ; exit status 1 on any error.
import { Parser } from '@asyncapi/parser';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';
import { readFileSync } from 'node:fs';

const parser = new Parser();
const ajv = new Ajv({ strict: false, allErrors: true });
addFormats(ajv);
let failures = 0;
for (const path of process.argv.slice(2)) {
  const { document, diagnostics } = await parser.parse(readFileSync(path, 'utf8'));
  for (const diagnostic of diagnostics.filter((item) => item.severity === 0)) {
    console.log(`${path}: ${diagnostic.code}: ${diagnostic.message} at ${JSON.stringify(diagnostic.path)}`);
    failures += 1;
  }
  if (!document) continue;
  for (const message of document.allMessages()) {
    const validate = ajv.compile(message.payload().json());
    const examples = message.examples().all();
    if (examples.length === 0) {
      console.log(`${path}: message ${message.id()} has no example`);
      failures += 1;
    }
    for (const example of examples) {
      if (!validate(example.payload())) {
        console.log(`${path}: example of ${message.id()} does not match its schema: ${ajv.errorsText(validate.errors)}`);
        failures += 1;
      }
    }
  }
  console.log(`${path}: ${document.channels().length} channels, ${document.allMessages().length} messages checked`);
}
process.exit(failures ? 1 : 0);
