import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { sha256File, sha256FileInBackground } from '../src/file-hash.ts';

const dir = mkdtempSync(join(tmpdir(), 'mp-hash-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function fileOf(name: string, bytes: number): { path: string; expected: string } {
  const data = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) data[i] = (i * 2654435761) >>> 24;
  const path = join(dir, name);
  writeFileSync(path, data);
  return { path, expected: createHash('sha256').update(data).digest('hex') };
}

describe('file hashing', () => {
  it('hashes a large file on a worker thread to the same digest as hashing it in memory', async () => {
    const { path, expected } = fileOf('large.bin', (9 << 20) + 123); // past the background threshold, not a whole 1 MiB read
    expect(await sha256FileInBackground(path, (9 << 20) + 123)).toBe(expected);
    expect(sha256File(path)).toBe(expected);
  });

  it('hashes a small file on the calling thread', async () => {
    const { path, expected } = fileOf('small.bin', 1000);
    expect(await sha256FileInBackground(path, 1000)).toBe(expected);
  });

  it('rejects (does not hang) when the file is gone, on either thread', async () => {
    const missing = join(dir, 'missing.bin');
    await expect(sha256FileInBackground(missing, 64 << 20)).rejects.toThrow(/missing\.bin/);
    await expect(sha256FileInBackground(missing, 10)).rejects.toThrow(/missing\.bin/);
  });
});
