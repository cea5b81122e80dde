import { describe, expect, it } from 'vitest';
import { everyPage } from './gather.js';

describe('everyPage', () => {
  it('follows the continue token to the last page, and reduces each item as it comes', async () => {
    const items = Array.from({ length: 5 }, (_, i) => ({ n: i }));
    const asked: Array<{ limit: number; _continue?: string }> = [];
    const views = await everyPage(
      async (page) => {
        asked.push(page);
        const from = Number(page._continue ?? 0);
        const to = Math.min(from + 2, items.length);
        return { items: items.slice(from, to), metadata: to < items.length ? { _continue: String(to) } : {} };
      },
      (item) => item.n * 10,
    );
    expect(views).toEqual([0, 10, 20, 30, 40]);
    expect(asked.map((p) => p._continue)).toEqual([undefined, '2', '4']);
    expect(asked.every((p) => p.limit === 500)).toBe(true);
  });
});
