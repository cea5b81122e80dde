import { defineConfig } from 'vitest/config';
import { LastFilesSequencer } from './test/integration/support/last-sequencer.js';

export default defineConfig({
  test: {
    // zz-*.test.ts (the key-leak scan of every controller log) must run after everything else.
    sequence: { sequencer: LastFilesSequencer },
    projects: [
      {
        test: {
          name: 'unit',
          include: ['src/**/*.test.ts', 'bench/**/*.test.ts', 'test/fuzz/**/*.test.ts'],
          environment: 'node',
          // Above the waits for a condition in the tests (10 s of real time: ControllerTestBed.until),
          // so a slow machine gets their message, not a bare timeout; a passing test is not slower.
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          environment: 'node',
          globalSetup: ['test/integration/global-setup.ts'],
          testTimeout: 120_000,
          hookTimeout: 300_000,
          // Test files share one control plane, and a controller manages every namespace:
          // files run one after another; each works in namespaces of its own.
          fileParallelism: false,
        },
      },
    ],
  },
});
