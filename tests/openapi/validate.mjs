// validate.mjs DOC EXAMPLES - checks the OpenAPI document DOC against the
// OpenAPI 3.1 schema (@seriousme/openapi-schema-validator), then each
// answer of EXAMPLES (a JSON array of {method, path, status, body}: path
// is the document's template, body what the server really answered)
// against the schema the document gives for that operation and status,
// with Ajv's JSON Schema 2020-12 validator (the dialect of OpenAPI 3.1).
// Prints one line per problem and exits 1 when there is any; used by
// tests/integration/test_operator_api.c.
import { readFileSync } from "node:fs";
import { Validator } from "@seriousme/openapi-schema-validator";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";

const [docPath, examplesPath] = process.argv.slice(2);
const doc = JSON.parse(readFileSync(docPath, "utf8"));
const examples = JSON.parse(readFileSync(examplesPath, "utf8"));
let problems = 0;

const v = new Validator();
const res = await v.validate(doc);
if (!res.valid) {
  console.log("document: not valid OpenAPI " + doc.openapi + ": " +
    JSON.stringify(res.errors));
  problems++;
}

// The whole document as one schema resource, so that the answers'
// schemas are reached by JSON pointer and their $refs resolve.  strict
// off: the document's other members (openapi, paths, ...) are not
// JSON Schema keywords.
const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);
ajv.addSchema({ ...doc, $id: "https://workq.invalid/openapi.json" });

const seg = (s) => encodeURIComponent(s.replace(/~/g, "~0").replace(/\//g, "~1"));
let checked = 0;
for (const ex of examples) {
  const op = doc.paths?.[ex.path]?.[ex.method.toLowerCase()];
  let resp = op?.responses?.[String(ex.status)];
  let ptr = "#/paths/" + seg(ex.path) + "/" + ex.method.toLowerCase() +
    "/responses/" + ex.status;
  if (resp?.$ref !== undefined) {       // "#/components/responses/NAME"
    ptr = "#" + resp.$ref.slice(1).split("/").map((x) => x === "" ? x
      : seg(x)).join("/");
    resp = resp.$ref.slice(2).split("/").reduce((o, k) => o?.[k], doc);
  }
  const schema = resp?.content?.["application/json"]?.schema;
  const what = `${ex.method} ${ex.path} ${ex.status}`;
  if (schema === undefined) {
    console.log(`${what}: the document has no JSON schema for this answer`);
    problems++;
    continue;
  }
  const ref = "https://workq.invalid/openapi.json" + ptr + "/content/" +
    seg("application/json") + "/schema";
  const validate = ajv.getSchema(ref);
  if (validate === undefined) {
    console.log(`${what}: cannot compile ${ref}`);
    problems++;
    continue;
  }
  if (!validate(ex.body)) {
    console.log(`${what}: the answer does not match: ` +
      JSON.stringify(validate.errors) + " answer: " +
      JSON.stringify(ex.body).slice(0, 600));
    problems++;
  }
  checked++;
}
console.log(`openapi: document ${res.valid ? "valid" : "INVALID"}, ` +
  `${checked} answers checked, ${problems} problem(s)`);
process.exit(problems > 0 ? 1 : 0);
