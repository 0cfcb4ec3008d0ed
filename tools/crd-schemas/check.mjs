// Checks custom resources against the models the @kubernetes-models packages generate from each
// project's API types (package.json pins which versions), in two passes:
//   1. the package's own validator (JSON Schema: types, enums, patterns, required fields, limits);
//   2. the TypeScript compiler over the package's type definitions, each object as an object
//      literal of its kind's interface: this refuses unknown fields (the validators of pass 1
//      let them through), as a strict API server does.
// CEL rules (x-kubernetes-validations) and webhooks are a cluster's to check.
//
// stdin: a JSON array of {"object": {...}, "package": "@kubernetes-models/..."}
// stdout: a JSON array, one {"errors": [...]} per input, in the same order (empty: valid).
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const HERE = dirname(fileURLToPath(import.meta.url));
const MAX_ERRORS = 5;

function modulePath(item) {
  const { apiVersion, kind } = item.object;
  const [group, version] = apiVersion.split("/");
  return `${item.package}/${group}/${version}/${kind}`;
}

async function schemaErrors(item) {
  let model;
  try {
    model = await import(modulePath(item));
  } catch {
    const { apiVersion, kind } = item.object;
    return { missing: true, errors: [`${item.package} has no ${kind} in ${apiVersion}`] };
  }
  const Model = model[item.object.kind];
  try {
    new Model(item.object).validate();
    return { missing: false, errors: [] };
  } catch (error) {
    return { missing: false, errors: [String(error.message).replace(/^data\//, "")] };
  }
}

// One TypeScript file: each object assigned to a constant of its kind's interface.
function typeErrors(items) {
  const file = join(HERE, "__objects__.ts");
  const lines = [];
  const firstLine = [];
  items.forEach((item, i) => {
    if (item === null) return;
    lines.push(`import type { I${item.object.kind} as T${i} } from "${modulePath(item)}";`);
  });
  items.forEach((item, i) => {
    firstLine[i] = lines.length;
    if (item === null) return;
    const body = JSON.stringify(item.object, null, 1).split("\n");
    lines.push(`export const o${i}: T${i} = ${body[0]}`, ...body.slice(1));
  });
  const source = lines.join("\n") + "\n";
  const options = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const { getSourceFile, fileExists, readFile } = host;
  host.getSourceFile = (name, ...rest) =>
    name === file ? ts.createSourceFile(name, source, ts.ScriptTarget.ES2022) : getSourceFile(name, ...rest);
  host.fileExists = (name) => name === file || fileExists(name);
  host.readFile = (name) => (name === file ? source : readFile(name));
  const program = ts.createProgram([file], options, host);
  const errors = items.map(() => []);
  for (const diagnostic of ts.getPreEmitDiagnostics(program)) {
    if (!diagnostic.file || diagnostic.file.fileName !== file) {
      throw new Error(ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n"));
    }
    const { line } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start);
    let owner = -1;
    firstLine.forEach((start, i) => {
      if (start <= line) owner = i;
    });
    const text = source.split("\n")[line].trim();
    const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, " ");
    errors[owner].push(`${message} (at ${text.slice(0, 80)})`);
  }
  return errors;
}

const items = JSON.parse(readFileSync(0, "utf8"));
const results = [];
for (const item of items) results.push(await schemaErrors(item));
// Objects whose kind the package lacks have no interface to check against either.
const typed = typeErrors(items.map((item, i) => (results[i].missing ? null : item)));
const out = results.map((result, i) => ({ errors: [...result.errors, ...typed[i]].slice(0, MAX_ERRORS) }));
process.stdout.write(JSON.stringify(out));
