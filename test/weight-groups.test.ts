// Weights cut into groups by a byte budget (weight-only, dynamic and palettize passes).
import { describe, expect, it } from 'vitest';
import { groupsByBytes } from '../src/passes/weight-groups.ts';

describe('groupsByBytes', () => {
  it('keeps order, fills each group up to the budget, gives an oversized weight its own group', () => {
    const sizes = [3, 4, 2, 10, 1, 1, 5];
    expect(groupsByBytes(sizes, (b) => b, 7)).toEqual([[3, 4], [2], [10], [1, 1, 5]]);
    expect(groupsByBytes(sizes, (b) => b, 1)).toEqual(sizes.map((b) => [b]));
    expect(groupsByBytes(sizes, (b) => b, Infinity)).toEqual([sizes]);
    expect(groupsByBytes([], (b: number) => b, 7)).toEqual([]);
  });
});
