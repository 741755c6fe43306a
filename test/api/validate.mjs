// validate.mjs — checks views/openapi.json with a real OpenAPI 3.1
// validator (@apidevtools/swagger-parser), then every JSON API response
// the e2e suite recorded against the schema of its route and status (ajv,
// JSON Schema 2020-12, as OpenAPI 3.1 uses).
//   node test/api/validate.mjs views/openapi.json [responses.json]
// responses.json: [{"method", "path", "status", "body"}], path without the
// query.  Exit 1 on the first document error, or listing every response
// that has no schema or does not match it.
import fs from 'node:fs';
import SwaggerParser from '@apidevtools/swagger-parser';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

const [docPath, recPath] = process.argv.slice(2);
const raw = JSON.parse(fs.readFileSync(docPath, 'utf8'));
await SwaggerParser.validate(structuredClone(raw));
const doc = await SwaggerParser.dereference(structuredClone(raw));
console.log(`openapi: ${docPath} is a valid OpenAPI ${doc.openapi} document (${Object.keys(doc.paths).length} paths)`);
if (!recPath)
  process.exit(0);

const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);
const routes = Object.keys(doc.paths).map((p) => ({
  p, re: new RegExp('^' + p.replace(/\{[^}]+\}/g, '[^/]+') + '$'),
}));
const recs = JSON.parse(fs.readFileSync(recPath, 'utf8'));
const bad = [];
let checked = 0;
for (const r of recs) {
  const route = routes.find((x) => x.re.test(r.path));
  const op = route && doc.paths[route.p][r.method.toLowerCase()];
  let resp = op && op.responses[String(r.status)];
  // a path or method the document does not list: the generic error responses
  if (!op && r.status >= 400)
    resp = doc.components.responses['E' + r.status];
  const schema = resp && resp.content && resp.content['application/json'] &&
    resp.content['application/json'].schema;
  if (!schema) {
    bad.push(`${r.method} ${r.path} ${r.status}: no schema in the document for this response`);
    continue;
  }
  const v = ajv.compile(schema);
  if (!v(r.body))
    bad.push(`${r.method} ${r.path} ${r.status}: ${ajv.errorsText(v.errors)} in ${JSON.stringify(r.body).slice(0, 300)}`);
  checked++;
}
for (const b of bad)
  console.log('MISMATCH ' + b);
console.log(`openapi: ${checked} of ${recs.length} recorded responses match their schema`);
process.exit(bad.length ? 1 : 0);
