import type { z } from 'zod';

/** "spec.namespaces.alwaysManaged[2]" from a root name and a zod issue path. */
export function formatFieldPath(root: string, path: readonly PropertyKey[]): string {
  let text = root;
  for (const key of path) {
    if (typeof key === 'number') text += `[${key}]`;
    else text += text === '' ? String(key) : `.${String(key)}`;
  }
  return text;
}

/** One line per issue, each starting with the field it is about, joined with "; ". */
export function formatIssues(issues: readonly z.core.$ZodIssue[], root: string): string {
  return issues.map((issue) => `${formatFieldPath(root, issue.path)}: ${issue.message}`).join('; ');
}
