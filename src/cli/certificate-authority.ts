// Reading the one CertificateAuthority, for the commands that report on it (inspect, status).
import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { CERTIFICATE_AUTHORITY_NAME, certificateAuthorityResource } from '../config/ca-resource.js';
import { type Read, readOptional } from '../kube/client.js';

/** The CertificateAuthority `default`, as the caller types it; a missing one reads as undefined. */
export function readCertificateAuthority<T>(kubeConfig: KubeConfig): Promise<Read<T>> {
  const customObjects = kubeConfig.makeApiClient(CustomObjectsApi);
  return readOptional(
    () =>
      customObjects.getClusterCustomObject({
        group: certificateAuthorityResource.group,
        version: certificateAuthorityResource.version,
        plural: certificateAuthorityResource.plural,
        name: CERTIFICATE_AUTHORITY_NAME,
      }) as Promise<T>,
  );
}
