// One shutdown path for the controller process, whatever asks for it and however often.
// The first SIGINT/SIGTERM starts a graceful stop (drain writers, release the Lease). Further
// signals do not start another one or abort it: the second is acknowledged, the third forces an
// exit, for a person who would rather lose the Lease hand-over than wait.

export interface SignalSource {
  on(signal: NodeJS.Signals, listener: () => void): unknown;
  off(signal: NodeJS.Signals, listener: () => void): unknown;
}

export interface ShutdownOptions {
  /** Where signals come from (process, in production). */
  signals: SignalSource;
  /** Tells a person what is happening. */
  say: (message: string, signal: NodeJS.Signals) => void;
  /** Ends the process at once (the third signal). */
  forceExit: (code: number) => void;
}

export const SHUTDOWN_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];

/** Exit status of a forced exit: 128 + SIGINT, as a shell reports an interrupted command. */
export const FORCED_EXIT_CODE = 130;

export class Shutdown {
  private received = 0;
  private resolveRequested!: (signal: NodeJS.Signals) => void;
  /** Resolves with the first signal. */
  readonly requested: Promise<NodeJS.Signals>;
  private readonly listeners = new Map<NodeJS.Signals, () => void>();

  constructor(private readonly opts: ShutdownOptions) {
    this.requested = new Promise((resolve) => {
      this.resolveRequested = resolve;
    });
    for (const signal of SHUTDOWN_SIGNALS) {
      const listener = () => this.onSignal(signal);
      this.listeners.set(signal, listener);
      opts.signals.on(signal, listener);
    }
  }

  /** Stops listening (after the graceful stop has finished). */
  dispose(): void {
    for (const [signal, listener] of this.listeners) this.opts.signals.off(signal, listener);
    this.listeners.clear();
  }

  private onSignal(signal: NodeJS.Signals): void {
    this.received += 1;
    if (this.received === 1) {
      this.opts.say('shutting down', signal);
      this.resolveRequested(signal);
    } else if (this.received === 2) {
      this.opts.say(
        'already shutting down (releasing the Lease); send the signal again to exit at once',
        signal,
      );
    } else {
      this.opts.say('exiting at once; the Lease is not released and expires on its own', signal);
      this.opts.forceExit(FORCED_EXIT_CODE);
    }
  }
}
