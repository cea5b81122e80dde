// Experiment, not a fix: preloaded into the controller (node --import) to
// measure what the per-certificate Kubernetes Event costs, by answering
// every Event create locally instead of sending it.
import { CoreV1Api } from '@kubernetes/client-node';

(CoreV1Api.prototype as unknown as { createNamespacedEvent: () => Promise<object> }).createNamespacedEvent =
  () => Promise.resolve({});
