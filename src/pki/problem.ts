/**
 * The one shape every alcazar validator reports in: `reason` is a stable PascalCase token for code, Events
 * and metric labels; `message` explains it to a human.
 */
export interface Problem<Reason extends string = string> {
  reason: Reason;
  message: string;
}
