// Which namespaces get workload certificates (Citadel-compatible labels).

export const OVERRIDE_LABEL = 'ca.istio.io/override';
export const ENV_LABEL = 'ca.istio.io/env';

export interface NamespaceTargeting {
  /** Namespaces without labels that decide are managed when this is true. */
  managedByDefault: boolean;
  /** Always managed, whatever their labels say. */
  alwaysManaged: readonly string[];
}

/**
 * A namespace in the always-managed list is managed. Otherwise the override
 * label, when "true" or "false", decides; otherwise an env label must name the
 * CA's namespace; otherwise the default applies.
 */
export function isManagedNamespace(
  namespace: string,
  labels: Readonly<Record<string, string>>,
  targeting: NamespaceTargeting,
  caNamespace: string,
): boolean {
  if (targeting.alwaysManaged.includes(namespace)) return true;
  const override = labels[OVERRIDE_LABEL];
  if (override === 'true') return true;
  if (override === 'false') return false;
  const env = labels[ENV_LABEL];
  if (env !== undefined) return env === caNamespace;
  return targeting.managedByDefault;
}
