// Vitest orders test files by past duration and size, not by name. Files
// named zz-*.test.ts must run after every other file of their project (the
// key-leak scan reads the logs the others wrote), so this sequencer keeps
// vitest's order and moves them to the end.
// Use it in vitest.config.ts: test.sequence.sequencer = LastFilesSequencer.
import { basename } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

export const runsLast = (moduleId: string) => basename(moduleId).startsWith('zz-');

export class LastFilesSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    return [...sorted.filter((f) => !runsLast(f.moduleId)), ...sorted.filter((f) => runsLast(f.moduleId))];
  }
}
