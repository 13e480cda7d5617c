// SPDX-License-Identifier: Apache-2.0
// Validates Kubernetes objects against the API's JSON schemas with kubernetes-models (the OpenAPI schemas of
// Kubernetes, and prometheus-operator's CRDs, compiled into validators).
//
//   node validate.mjs OBJECTS.json      OBJECTS.json: a JSON array of objects (apiVersion, kind, ...)
//
// Prints one line per object: "ok <apiVersion> <kind> <name>" or "invalid <apiVersion> <kind> <name>: <errors>";
// an object whose apiVersion/kind has no schema here is invalid too. Exits 1 when any object is invalid.
import { readFileSync } from "node:fs";

const GROUPS = {
  "monitoring.coreos.com/v1": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1",
};

async function modelFor(apiVersion, kind) {
  const path = GROUPS[apiVersion] ?? `kubernetes-models/${apiVersion}`;
  try {
    return (await import(path))[kind];
  } catch (e) {
    return undefined;
  }
}

const objects = JSON.parse(readFileSync(process.argv[2], "utf8"));
let invalid = 0;
for (const object of objects) {
  const { apiVersion, kind } = object;
  const name = object.metadata?.name ?? "(no name)";
  const Model = await modelFor(apiVersion, kind);
  if (!Model) {
    invalid++;
    console.log(`invalid ${apiVersion} ${kind} ${name}: no schema for this apiVersion and kind`);
    continue;
  }
  try {
    new Model(object).validate();
    console.log(`ok ${apiVersion} ${kind} ${name}`);
  } catch (e) {
    invalid++;
    console.log(`invalid ${apiVersion} ${kind} ${name}: ${e.message.replace(/\s+/g, " ")}`);
  }
}
process.exit(invalid === 0 ? 0 : 1);
