// `alcazar inspect`'s public surface, re-exported from the files that hold each part.
//
// `alcazar inspect`: one workload Secret as the controller sees it (identity, validity, chains of
// trust, key/certificate match, when it renews) from GETs only. Reading the API (gatherObservation),
// judging (buildInspectReport) and printing (formatInspectText) are apart, so the last two are
// tested without a cluster. Key material is read, never printed: the report says whether the key
// matches, and nothing else about it.
export {
  EXIT,
  INSPECT_USAGE,
  type InspectArgs,
  type InspectTarget,
  InspectUsageError,
  parseInspectArgs,
} from './args.js';
export { type InspectIo, runInspectCommand } from './command.js';
export {
  describeTimeLeft,
  exitStatusOf,
  formatDurationShort,
  formatInspectText,
  formatProblemList,
} from './format.js';
export {
  type CaSecretName,
  type GatherResult,
  gatherObservation,
  type InspectObservation,
  type Read,
} from './gather.js';
export { buildInspectReport, type ChainCheck, describeDecision, type InspectReport } from './report.js';
