// Metrics of the CSR API (Istio's IstioCertificateService), registered on the process's registry.
// The counters keep Citadel's server names (no `_total`), so Istio dashboards read them as they
// read Citadel's and istiod's.
import { Counter, Histogram, type Registry } from 'prom-client';

/** CSR latencies: a cached token and an ECDSA signature take about a millisecond; a TokenReview or RSA more. */
const CSR_BUCKETS_SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export class CsrServerMetrics {
  private readonly requests: Counter;
  private readonly authenticationFailures: Counter;
  private readonly parsingErrors: Counter;
  private readonly idExtractionErrors: Counter;
  private readonly signErrors: Counter;
  private readonly issued: Counter;
  private readonly duration: Histogram<'code'>;
  private readonly tokenReviews: Counter<'cache'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.requests = new Counter({
      name: 'citadel_server_csr_count',
      help: 'CreateCertificate requests received (Citadel-compatible name).',
      registers,
    });
    this.authenticationFailures = new Counter({
      name: 'citadel_server_authentication_failure_count',
      help: 'CreateCertificate requests whose caller could not be authenticated (Citadel-compatible name).',
      registers,
    });
    this.parsingErrors = new Counter({
      name: 'citadel_server_csr_parsing_err_count',
      help: 'CSRs that could not be parsed or whose signature or key was refused (Citadel-compatible name).',
      registers,
    });
    this.idExtractionErrors = new Counter({
      name: 'citadel_server_id_extraction_err_count',
      help: "CSRs refused because their names are not exactly the caller's identity (Citadel-compatible name).",
      registers,
    });
    this.signErrors = new Counter({
      name: 'citadel_server_csr_sign_err_count',
      help: 'CSRs that failed to be signed (Citadel-compatible name).',
      registers,
    });
    this.issued = new Counter({
      name: 'citadel_server_success_cert_issuance_count',
      help: 'Certificates issued through the CSR API (Citadel-compatible name).',
      registers,
    });
    this.duration = new Histogram({
      name: 'alcazar_csr_request_duration_seconds',
      help: 'CreateCertificate latency from receipt to answer, by gRPC status code name.',
      labelNames: ['code'],
      buckets: CSR_BUCKETS_SECONDS,
      registers,
    });
    this.tokenReviews = new Counter({
      name: 'alcazar_csr_token_reviews_total',
      help: 'Bearer tokens checked: cache "hit" reused a positive TokenReview, "miss" asked the API server.',
      labelNames: ['cache'],
      registers,
    });
  }

  requestReceived(): void {
    this.requests.inc();
  }

  authenticationFailed(): void {
    this.authenticationFailures.inc();
  }

  csrUnparsable(): void {
    this.parsingErrors.inc();
  }

  identityMismatch(): void {
    this.idExtractionErrors.inc();
  }

  signFailed(): void {
    this.signErrors.inc();
  }

  certificateIssued(): void {
    this.issued.inc();
  }

  observe(code: string, durationMs: number): void {
    this.duration.observe({ code }, durationMs / 1000);
  }

  tokenReviewed(cache: 'hit' | 'miss'): void {
    this.tokenReviews.inc({ cache });
  }
}
