// Writes the JSON schemas kubeconform validates manifests/ and crds/ against, without the network.
//
// kubeconform normally downloads schemas generated from Kubernetes' OpenAPI document from GitHub.
// That document ships in the k8s.io/kubernetes Go module (api/openapi-spec/swagger.json), the very
// module hack/controlplane builds the test control plane from, so the schemas here come from the
// same pinned release as the API server the integration tests run against, fetched (once) through
// the Go module proxy. The CRDs in crds/ become schemas the same way.
//
// Conversion, as kubeconform's own "standalone-strict" schemas do it: every object that lists its
// properties rejects others (additionalProperties: false), int-or-string fields accept either,
// and a Quantity accepts a string or a number. $refs stay references into a `definitions` section
// of each file, so recursive types (JSONSchemaProps in a CRD) need no special casing.
//
// The Prometheus Operator's PrometheusRule and ServiceMonitor (manifests/monitoring/, the chart's
// monitoring toggles) are checked against the CRDs that operator publishes in its Go module
// (example/prometheus-operator-crd/), fetched the same way and pinned below.
//
// Prints the schema directory; the result is cached under ~/.cache/alcazar/schemas/ (or
// $ALCAZAR_CACHE_DIR), keyed by the Kubernetes version, the CRDs and this file.
//
// Usage: node --import tsx hack/manifest-schemas.ts
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import yaml from 'js-yaml';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Schema = { [key: string]: Json };
type Definitions = Record<string, Schema>;

interface GroupVersionKind {
  group: string;
  version: string;
  kind: string;
}

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const crdDir = join(repoRoot, 'crds');
const DEFINITION_PREFIX = '#/definitions/';
const QUANTITY = 'io.k8s.apimachinery.pkg.api.resource.Quantity';
const OBJECT_META = 'io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta';
/** Schema keywords whose value is one schema, a list of schemas, or a map of name to schema. */
const SCHEMA_KEYWORDS = ['items', 'additionalProperties', 'not'] as const;
const SCHEMA_LIST_KEYWORDS = ['allOf', 'anyOf', 'oneOf'] as const;
const SCHEMA_MAP_KEYWORDS = ['properties', 'patternProperties'] as const;

const isSchema = (value: Json | undefined): value is Schema =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** The Prometheus Operator release whose CRDs validate PrometheusRule and ServiceMonitor objects. */
const PROMETHEUS_OPERATOR = 'github.com/prometheus-operator/prometheus-operator@v0.85.0';
const PROMETHEUS_OPERATOR_CRDS = [
  'monitoring.coreos.com_prometheusrules.yaml',
  'monitoring.coreos.com_servicemonitors.yaml',
];

/** The Prometheus Operator's CRD files for the kinds alcazar ships, from the Go module cache. */
export function prometheusOperatorCrdFiles(): string[] {
  const out = execFileSync('go', ['mod', 'download', '-json', PROMETHEUS_OPERATOR], {
    cwd: join(repoRoot, 'hack'),
    encoding: 'utf8',
  });
  const info = JSON.parse(out) as { Dir?: string; Error?: string };
  if (info.Error || !info.Dir)
    throw new Error(`go mod download ${PROMETHEUS_OPERATOR} failed: ${info.Error ?? out}`);
  return PROMETHEUS_OPERATOR_CRDS.map((f) => join(info.Dir!, 'example', 'prometheus-operator-crd', f));
}

/** The k8s.io/kubernetes module hack/controlplane pins: its version and its directory. */
function kubernetesModule(): { version: string; dir: string } {
  const out = execFileSync('go', ['mod', 'download', '-json', 'k8s.io/kubernetes'], {
    cwd: join(repoRoot, 'hack', 'controlplane'),
    encoding: 'utf8',
  });
  const info = JSON.parse(out) as { Version?: string; Dir?: string; Error?: string };
  if (info.Error || !info.Version || !info.Dir) {
    throw new Error(`go mod download k8s.io/kubernetes failed: ${info.Error ?? out}`);
  }
  return { version: info.Version, dir: info.Dir };
}

/**
 * One schema node converted for kubeconform's strict mode; recurses into every sub-schema.
 * `crd` turns on the CRD structural-schema extensions (x-kubernetes-*, nullable).
 */
function convert(node: Schema, crd: boolean): Schema {
  if (node.format === 'int-or-string' || (crd && node['x-kubernetes-int-or-string'] === true)) {
    return { oneOf: [{ type: 'string' }, { type: 'integer' }] };
  }
  const out: Schema = { ...node };
  for (const keyword of SCHEMA_KEYWORDS) {
    const value = out[keyword];
    if (isSchema(value)) out[keyword] = convert(value, crd);
  }
  for (const keyword of SCHEMA_LIST_KEYWORDS) {
    const value = out[keyword];
    if (Array.isArray(value)) out[keyword] = value.map((v) => (isSchema(v) ? convert(v, crd) : v));
  }
  for (const keyword of SCHEMA_MAP_KEYWORDS) {
    const value = out[keyword];
    if (!isSchema(value)) continue;
    out[keyword] = Object.fromEntries(
      Object.entries(value).map(([name, v]) => [name, isSchema(v) ? convert(v, crd) : v]),
    );
  }
  const preservesUnknown = crd && out['x-kubernetes-preserve-unknown-fields'] === true;
  if (out.properties !== undefined && out.additionalProperties === undefined && !preservesUnknown) {
    out.additionalProperties = false;
  }
  if (crd && out.nullable === true && typeof out.type === 'string') out.type = [out.type, 'null'];
  return out;
}

function convertDefinitions(swagger: { definitions: Definitions }): Definitions {
  const converted: Definitions = {};
  for (const [name, schema] of Object.entries(swagger.definitions)) {
    converted[name] =
      name === QUANTITY
        ? {
            description: 'A quantity such as 100m, 128Mi or 2.',
            oneOf: [{ type: 'string' }, { type: 'number' }],
          }
        : convert(schema, false);
  }
  return converted;
}

/** The definitions `root` refers to, directly or through others. */
function reachable(root: Json, definitions: Definitions): Definitions {
  const found: Definitions = {};
  const visit = (node: Json) => {
    if (Array.isArray(node)) {
      for (const item of node) visit(item);
      return;
    }
    if (!isSchema(node)) return;
    const ref = node.$ref;
    if (typeof ref === 'string' && ref.startsWith(DEFINITION_PREFIX)) {
      const name = ref.slice(DEFINITION_PREFIX.length);
      const target = definitions[name];
      if (!target) throw new Error(`unresolved $ref ${ref}`);
      if (!(name in found)) {
        found[name] = target;
        visit(target);
      }
    }
    for (const value of Object.values(node)) visit(value);
  };
  visit(root);
  return found;
}

/** kubeconform's file name for a kind: {{ .ResourceKind }}{{ .KindSuffix }}.json */
function schemaFileName({ group, version, kind }: GroupVersionKind): string {
  const suffix = group === '' ? `-${version}` : `-${group.split('.')[0]}-${version}`;
  return `${kind}${suffix}.json`.toLowerCase();
}

function standalone(schema: Schema, definitions: Definitions): Schema {
  return {
    $schema: 'http://json-schema.org/draft-04/schema#',
    ...schema,
    definitions: reachable(schema, definitions),
  };
}

function builtInSchemas(definitions: Definitions): Map<string, Schema> {
  const files = new Map<string, Schema>();
  for (const schema of Object.values(definitions)) {
    const gvks = schema['x-kubernetes-group-version-kind'];
    // DeleteOptions and WatchEvent claim every group; they are never applied from a manifest.
    if (!Array.isArray(gvks) || gvks.length !== 1) continue;
    const name = schemaFileName(gvks[0] as unknown as GroupVersionKind);
    if (files.has(name)) throw new Error(`two kinds map to the schema file ${name}`);
    files.set(name, standalone(schema, definitions));
  }
  return files;
}

interface CustomResourceDefinition {
  kind?: string;
  spec: {
    group: string;
    names: { kind: string };
    versions: Array<{ name: string; schema?: { openAPIV3Schema?: Schema } }>;
  };
}

function crdSchemas(files: string[], definitions: Definitions): Map<string, Schema> {
  const schemas = new Map<string, Schema>();
  for (const file of files) {
    for (const doc of yaml.loadAll(readFileSync(file, 'utf8')) as CustomResourceDefinition[]) {
      if (doc?.kind !== 'CustomResourceDefinition') continue;
      for (const version of doc.spec.versions) {
        const openApi = version.schema?.openAPIV3Schema;
        if (!openApi) throw new Error(`${file}: version ${version.name} has no openAPIV3Schema`);
        const schema = convert(openApi, true);
        // A CRD's schema says only "metadata: object"; check it as strictly as a built-in's.
        if (isSchema(schema.properties)) {
          schema.properties = {
            ...schema.properties,
            metadata: { $ref: `${DEFINITION_PREFIX}${OBJECT_META}` },
          };
        }
        const gvk = { group: doc.spec.group, version: version.name, kind: doc.spec.names.kind };
        schemas.set(schemaFileName(gvk), standalone(schema, definitions));
      }
    }
  }
  return schemas;
}

function cacheRoot(): string {
  const base = process.env.ALCAZAR_CACHE_DIR ?? process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache');
  return join(base, 'alcazar', 'schemas');
}

function main(): void {
  const kubernetes = kubernetesModule();
  const crdFiles = readdirSync(crdDir)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    .map((f) => join(crdDir, f));
  crdFiles.push(...prometheusOperatorCrdFiles());
  const key = createHash('sha256')
    .update(kubernetes.version)
    .update(readFileSync(fileURLToPath(import.meta.url)));
  for (const file of crdFiles) key.update(file).update(readFileSync(file));
  const outDir = join(cacheRoot(), `${kubernetes.version}-${key.digest('hex').slice(0, 12)}`);
  if (!existsSync(outDir)) {
    const swagger = JSON.parse(
      readFileSync(join(kubernetes.dir, 'api', 'openapi-spec', 'swagger.json'), 'utf8'),
    ) as { definitions: Definitions };
    const definitions = convertDefinitions(swagger);
    const staging = `${outDir}.partial-${process.pid}`;
    rmSync(staging, { recursive: true, force: true });
    mkdirSync(staging, { recursive: true });
    const schemas = builtInSchemas(definitions);
    for (const [name, schema] of crdSchemas(crdFiles, definitions)) {
      if (schemas.has(name))
        throw new Error(`a CRD in crds/ has the same schema file as a built-in: ${name}`);
      schemas.set(name, schema);
    }
    for (const [name, schema] of schemas) writeFileSync(join(staging, name), JSON.stringify(schema));
    // Another run may have finished the same key meanwhile: either copy is as good.
    if (existsSync(outDir)) rmSync(staging, { recursive: true, force: true });
    else renameSync(staging, outDir);
  }
  console.log(outDir);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
