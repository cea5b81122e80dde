// What the CRL controller publishes in the shared state.

/** Whether the published CRL is current, for the CertificateAuthority status and alerts. */
export type CrlHealth =
  | { state: 'unknown'; message: string }
  | { state: 'current'; nextUpdate: number; revoked: number }
  | { state: 'failing'; nextUpdate?: number; message: string };
